"""Docker's container names and ids: validation, random names, and how references resolve.

* Names follow Docker's rule ``^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$``, are stored with a leading
  ``/`` (``/web``) and are unique; :func:`validate_name` raises InvalidArgument (HTTP 400) with
  Docker's text ``Invalid container name (NAME), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed``.
* :func:`new_id` gives 64 lower-case hex digits (32 random bytes), never all digits (Docker
  avoids those because they could be mistaken for numbers). :func:`short_id` is its first 12.
* :func:`random_name` gives ``adjective_noun`` (``brave_turing``), with a number appended
  when taken, as ``docker run`` without ``--name`` does.
* :class:`NameIndex` resolves a reference as ``GetContainer`` in dockerd does: a full id, then an
  exact name (with or without ``/``), then a unique id prefix. Unknown: NotFound (404)
  ``No such container: REF``; an ambiguous prefix: InvalidArgument (400)
  ``multiple IDs found with provided prefix: REF``. A name in use: AlreadyExists (409) with
  Docker's conflict text.
"""

from __future__ import annotations

import os
import random
import re

from runtime.errors import AlreadyExists, InvalidArgument, NotFound

NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

_ADJECTIVES = ("agile", "bold", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "fair",
               "fierce", "gentle", "glad", "grand", "happy", "keen", "kind", "lively", "lucid", "merry",
               "mighty", "modest", "nimble", "noble", "plucky", "proud", "quick", "quiet", "rapid",
               "serene", "sharp", "shy", "silent", "steady", "stoic", "sunny", "swift", "tender", "tidy",
               "vivid", "warm", "wise", "witty", "zesty")
_NOUNS = ("anchor", "barge", "beacon", "buoy", "canoe", "cargo", "clipper", "compass", "cutter", "dinghy",
          "dory", "ferry", "frigate", "galley", "harbor", "hull", "jetty", "keel", "ketch", "lagoon",
          "lantern", "mast", "marina", "oar", "pier", "pontoon", "raft", "reef", "rudder", "sail",
          "schooner", "skiff", "sloop", "tide", "trawler", "tugboat", "wharf", "yacht", "yawl")


def new_id() -> str:
    """A new 64-hex container id that is not all digits."""
    while True:
        h = os.urandom(32).hex()
        if not h.isdigit():
            return h


def short_id(cid: str) -> str:
    return cid[:12]


def validate_name(name: str) -> str:
    """Return *name* with one leading ``/``, or raise InvalidArgument (Docker's message)."""
    if not NAME_PATTERN.match(name or ""):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return "/" + name.lstrip("/")


def random_name(taken) -> str:
    """``adjective_noun`` not in *taken* (a container of ``/name`` strings); a digit is added on collision."""
    rng = random.SystemRandom()
    for attempt in range(100):
        name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_NOUNS)}"
        if attempt:
            name += str(rng.randint(0, 99))
        if "/" + name not in taken:
            return name
    return "c_" + new_id()[:12]


class NameIndex:
    """Names and ids of the containers that exist; not thread-safe (the daemon's event loop owns it)."""

    def __init__(self):
        self._by_name: dict[str, str] = {}   # "/name" -> id
        self._ids: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return ("/" + name.lstrip("/")) in self._by_name

    @property
    def names(self):
        return self._by_name.keys()

    def reserve(self, name: str, cid: str) -> None:
        """Bind ``/name`` to *cid*; AlreadyExists (409, Docker's conflict text) if taken."""
        name = "/" + name.lstrip("/")
        owner = self._by_name.get(name)
        if owner is not None and owner != cid:
            raise AlreadyExists(f'Conflict. The container name "{name}" is already in use by container '
                                f'"{owner}". You have to remove (or rename) that container to be able to '
                                f'reuse that name.')
        self._by_name[name] = cid
        self._ids.add(cid)

    def release(self, name: str) -> None:
        self._by_name.pop("/" + name.lstrip("/"), None)

    def add_id(self, cid: str) -> None:
        self._ids.add(cid)

    def remove(self, cid: str) -> None:
        self._ids.discard(cid)
        for name in [n for n, i in self._by_name.items() if i == cid]:
            del self._by_name[name]

    def resolve(self, ref: str) -> str:
        """The full id *ref* names (see the module docstring); NotFound / InvalidArgument."""
        if not ref:
            raise NotFound("No such container: ")
        if ref in self._ids:
            return ref
        cid = self._by_name.get("/" + ref.lstrip("/"))
        if cid is not None:
            return cid
        if re.fullmatch(r"[0-9a-f]+", ref):
            matches = [i for i in self._ids if i.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")
