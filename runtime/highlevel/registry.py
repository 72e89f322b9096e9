"""The registry client of capsize-runtimed: Docker Registry HTTP API v2 / OCI distribution-spec.

Reference: the OCI distribution spec (``/v2/`` base, ``/v2/<name>/manifests/<reference>``,
``/v2/<name>/blobs/<digest>``, ``/v2/<name>/blobs/uploads/``), the Docker Registry HTTP API v2
and its token authentication (docs/spec/auth/token.md) as distribution 2.8 serves them.

:func:`parse_reference` splits ``[host[:port]/]path[:tag][@digest]`` as the docker CLI does
(``docker.io`` when the first component has no ``.``/``:`` and is not ``localhost``).
:class:`Client` speaks to one registry: plain HTTP for loopback hosts (``127.0.0.0/8``,
``localhost``, ``::1``: dockerd's default insecure-registry rule), HTTPS otherwise, verified
against *ca_file* when given (else the system's CAs). Authentication follows the registry's
``WWW-Authenticate`` challenge on a 401: ``Basic`` (the credentials as they are) or ``Bearer``
(a token from ``realm?service=&scope=repository:<name>:<actions>``, fetched with the
credentials when given; ``token`` or ``access_token`` of the answer), cached per scope.
Credentials are ``{"username", "password"}`` or ``{"identitytoken"}`` (capsized decodes them
from the Engine API's ``X-Registry-Auth``: :mod:`runtime.daemon.registry_auth`).

Errors, with the texts dockerd shows (moby's distribution/errors.go, errcode's
``"<code in words>: <message>"``): a registry that cannot be reached is
:class:`~runtime.errors.Unavailable` (``Get "http://H/v2/": dial tcp H: connect: connection
refused``); a 401 is :class:`~runtime.errors.PermissionDenied` (``unauthorized: authentication
required``; a ``Basic`` challenge with no credentials: ``<Method> "<url>": no basic auth
credentials``, Go's url.Error around distribution's ErrNoBasicAuthCredentials, the bare cause in
the error's ``cause`` field); a missing manifest or repository is
:class:`~runtime.errors.NotFound`; anything else the registry answers is
:class:`RegistryError` (the status and the registry's errors). Docker Hub is never contacted:
pulling from ``docker.io`` is :class:`~runtime.errors.Unavailable`.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import re
import ssl
import threading
from urllib.parse import quote, urlencode, urljoin, urlsplit

from runtime.errors import CapsizeError, InvalidArgument, NotFound, PermissionDenied, Unavailable

DEFAULT_DOMAIN = "docker.io"
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
TIMEOUT = 30.0
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
#: Go's distribution client's ErrNoBasicAuthCredentials, as dockerd shows it.
NO_BASIC_AUTH = "no basic auth credentials"


class RegistryError(CapsizeError):
    """The registry answered an error (``status``, ``errors``: its ``[{"code", "message"}]``)."""


class Reference:
    """``domain`` (``host[:port]``), ``path`` (``library/busybox``), ``tag``, ``digest``."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None, digest: str | None):
        self.domain, self.path, self.tag, self.digest = domain, path, tag, digest

    @property
    def repository(self) -> str:
        """``domain/path`` as docker names it (``127.0.0.1:5000/busybox``)."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar(self) -> str:
        """The name as the CLI shows it (``busybox`` for ``docker.io/library/busybox``)."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix("library/")
        return self.repository

    @property
    def object(self) -> str:
        """The manifest reference: the digest if given, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return self.familiar + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(ref: str, default_tag: str | None = "latest") -> Reference:
    """Split an image reference (see the module docstring); InvalidArgument when malformed
    (``invalid reference format``, the CLI's text)."""
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise InvalidArgument("invalid reference format")
    name, _, digest = ref.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = name.rpartition(":")
        if not _TAG.match(tag):
            raise InvalidArgument("invalid reference format")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
        if "/" not in path:
            path = "library/" + path
    if not _PATH.match(path):
        raise InvalidArgument(f"invalid reference format: repository name ({path}) must be lowercase"
                              if path.lower() != path else "invalid reference format")
    if digest:
        from runtime.highlevel.content import check_digest
        check_digest(digest)
    elif tag is None:
        tag = default_tag
    return Reference(domain, path, tag, digest or None)


def is_loopback(domain: str) -> bool:
    host = urlsplit("//" + domain).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def error_text(status: int, body: bytes) -> tuple[str, list]:
    """(``"<code in words>: <message>"`` joined, the errors list) of a registry error body."""
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError, UnicodeDecodeError):
        errors = []
    parts = [f"{str(e.get('code', 'unknown')).lower().replace('_', ' ')}: {e.get('message', '')}"
             for e in errors if isinstance(e, dict)]
    return ("; ".join(parts) or f"unexpected status {status} {http.client.responses.get(status, '')}".strip()), errors


class Response:
    """An answered request: ``status``, ``headers`` (lower-case), and the open response to read."""

    def __init__(self, conn, resp):
        self.conn, self.raw = conn, resp
        self.status = resp.status
        self.headers = {k.lower(): v for k, v in resp.getheaders()}

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n) if n >= 0 else self.raw.read()

    def read_some(self, n: int) -> bytes:
        """Up to *n* bytes, as soon as some have arrived (b"" at the end): a slow transfer
        reaches the disk as it comes, so an interruption leaves what was received."""
        return self.raw.read1(n)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Client:
    """One registry (*domain*), for repository *path*; thread-safe (one connection per request).

    *credentials*: see the module docstring; *ca_file*: a PEM bundle for TLS registries."""

    def __init__(self, domain: str, credentials: dict | None = None, ca_file: str | None = None,
                 timeout: float = TIMEOUT):
        if domain == DEFAULT_DOMAIN:
            raise Unavailable("capsize never contacts Docker Hub: name a registry, e.g. 127.0.0.1:5000/busybox")
        self.domain = domain
        self.scheme = "http" if is_loopback(domain) else "https"
        self.credentials = credentials or None
        self.timeout = timeout
        self._ssl = ssl.create_default_context(cafile=ca_file) if self.scheme == "https" else None
        self._lock = threading.Lock()
        self._auth: dict[str, str] = {}    # scope -> Authorization header value
        self._challenge: dict | None = None

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.domain}{path}"

    # -- transport ----------------------------------------------------------------------------
    def _connect(self, netloc: str, scheme: str):
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=self._ssl)
        return http.client.HTTPConnection(netloc, timeout=self.timeout)

    def _send(self, method: str, url: str, headers: dict, body=None) -> Response:
        parts = urlsplit(url)
        conn = self._connect(parts.netloc, parts.scheme)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request(method, target, body=body, headers=headers)
            return Response(conn, conn.getresponse())
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise Unavailable(f'{method.capitalize()} "{url}": {_dial_text(parts.netloc, e)}') from None

    def request(self, method: str, path: str, scope: str, headers: dict | None = None, body=None,
                ok=(200,), follow: bool = True) -> Response:
        """*method* *path* (under the registry) with auth for *scope* (``repository:N:pull``);
        a status not in *ok* raises (see the module docstring). The caller closes the answer."""
        headers = dict(headers or {})
        url = self.url(path)
        for attempt in range(2):
            auth = self._auth.get(scope)
            h = dict(headers)
            if auth:
                h["Authorization"] = auth
            if hasattr(body, "seek") and attempt:
                body.seek(0)
            resp = self._send(method, url, h, body)
            if resp.status == 401 and attempt == 0:
                if 401 not in ok and self._needs_basic_credentials(resp):
                    resp.close()
                    raise PermissionDenied(f'{method.capitalize()} "{url}": {NO_BASIC_AUTH}', status=401,
                                           cause=NO_BASIC_AUTH)
                if self._authorize(resp, scope):
                    resp.close()
                    continue
            break
        if follow and resp.status in (301, 302, 303, 307, 308) and "location" in resp.headers:
            target = urljoin(url, resp.headers["location"])
            resp.close()
            h = dict(headers)
            if urlsplit(target).netloc == self.domain and self._auth.get(scope):
                h["Authorization"] = self._auth[scope]
            resp = self._send(method, target, h, body)
        if resp.status not in ok:
            data = resp.read()
            resp.close()
            raise self._error(method, url, resp.status, data)
        return resp

    def _error(self, method: str, url: str, status: int, data: bytes) -> CapsizeError:
        text, errors = error_text(status, data)
        codes = {str(e.get("code")) for e in errors if isinstance(e, dict)}
        if status == 401:
            return PermissionDenied(text if errors else "unauthorized: authentication required", status=status)
        if status == 404 or codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"}:
            return NotFound(text, status=status, registry_codes=sorted(codes))
        return RegistryError(text, status=status, registry_codes=sorted(codes))

    # -- authentication -----------------------------------------------------------------------
    def _needs_basic_credentials(self, resp: Response) -> bool:
        """A ``Basic`` challenge and no username to answer it with (Go's distribution client's
        ``ErrNoBasicAuthCredentials``: dockerd reports it without asking the registry again)."""
        kind = resp.headers.get("www-authenticate", "").partition(" ")[0].lower()
        return kind == "basic" and not (self.credentials and "username" in self.credentials)

    def _authorize(self, resp: Response, scope: str) -> bool:
        """Answer a 401's challenge; True when there is something new to retry with."""
        challenge = resp.headers.get("www-authenticate", "")
        kind, _, params = challenge.partition(" ")
        kind = kind.lower()
        if kind == "basic":
            c = self.credentials
            if not c or "username" not in c:
                return False
            value = "Basic " + base64.b64encode(f"{c['username']}:{c.get('password', '')}".encode()).decode()
        elif kind == "bearer":
            value = "Bearer " + self._token(dict(_CHALLENGE.findall(params)), scope)
        else:
            return False
        with self._lock:
            if self._auth.get(scope) == value:
                return False
            self._auth[scope] = value
        return True

    def _token(self, params: dict, scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise PermissionDenied("unauthorized: the registry's bearer challenge names no realm")
        query = {"service": params.get("service", ""), "scope": scope}
        headers = {}
        c = self.credentials or {}
        if "username" in c:
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{c['username']}:{c.get('password', '')}".encode()).decode()
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        with self._send("GET", url, headers) as resp:
            data = resp.read()
            if resp.status != 200:
                text, _ = error_text(resp.status, data)
                raise PermissionDenied(f"unauthorized: {text}" if resp.status == 401 else
                                       f"cannot get a token from {realm}: {text}", status=resp.status)
        try:
            answer = json.loads(data)
            return answer.get("token") or answer["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise PermissionDenied(f"the token server at {realm} answered no token") from None

    def ping(self, check_credentials: bool = True) -> None:
        """``GET /v2/`` (the API version check): Unavailable when unreachable; with credentials
        and *check_credentials*, PermissionDenied when they are refused (what ``docker login``
        and a pull check; a push, as dockerd's, finds refused credentials at its first upload)."""
        if not check_credentials:
            with self._send("GET", self.url("/v2/"), {}) as resp:
                return
        with self.request("GET", "/v2/", scope="", ok=(200, 401)) as resp:
            if resp.status == 401 and self.credentials:
                raise PermissionDenied("unauthorized: authentication required")
            if resp.status == 401 and not resp.headers.get("www-authenticate"):
                raise PermissionDenied("unauthorized: authentication required")


def repo_path(path: str) -> str:
    return "/v2/" + quote(path, safe="/")


def scope(path: str, actions: str = "pull") -> str:
    return f"repository:{path}:{actions}"


def _dial_text(netloc: str, e: BaseException) -> str:
    """Go's net/http wording for a failed dial (``dial tcp H: connect: connection refused``)."""
    if isinstance(e, ConnectionRefusedError):
        return f"dial tcp {netloc}: connect: connection refused"
    if isinstance(e, TimeoutError):
        return f"dial tcp {netloc}: i/o timeout"
    if isinstance(e, ssl.SSLError):
        return f"tls: {e.reason or e}"
    return str(getattr(e, "strerror", None) or e) or type(e).__name__


def short(digest: str) -> str:
    """The 12 hex digits the CLI's progress lines name a blob by (``sha256:abc...`` -> ``abc...``)."""
    return digest.split(":", 1)[-1][:12]
