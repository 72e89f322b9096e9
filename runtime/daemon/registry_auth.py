"""Registry credentials in the Engine API: the ``X-Registry-Auth`` header (pull, push).

Engine API v1.41, "Authentication": the header is the base64url encoding of a JSON AuthConfig
``{"username", "password", "email"?, "serveraddress"}`` or ``{"identitytoken"}``. The docker
CLI sends it (padding or not) with every pull and push, an empty object when it has no
credentials for the registry. :func:`decode_auth` returns what capsize-runtimed's registry
client takes (``{"username", "password"}`` / ``{"identitytoken"}``), or None.
"""

from __future__ import annotations

import base64
import json

from runtime.errors import InvalidArgument


def decode_auth(header: str | None) -> dict | None:
    """See the module docstring; InvalidArgument when the header is not base64url JSON."""
    if not header or not header.strip():
        return None
    try:
        padded = header.strip() + "=" * (-len(header.strip()) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("invalid X-Registry-Auth header: want base64url-encoded JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: want a JSON object")
    out = {k: data[k] for k in ("username", "password", "identitytoken")
           if isinstance(data.get(k), str) and data[k]}
    return out if ("username" in out or "identitytoken" in out) else None
