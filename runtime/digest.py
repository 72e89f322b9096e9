"""SHA-256 in hex, cheap to import: capsize-runc and ``capsize-shim start`` hash on every start.

``hashlib`` loads OpenSSL (about 3 ms per process); CPython's builtin ``_sha256`` (``_sha2`` from
3.12) does the same digest without it.
"""

from __future__ import annotations


def sha256_hex(data: str | bytes) -> str:
    """SHA-256 of *data* (a str is UTF-8 encoded), as 64 lowercase hex digits."""
    try:
        from _sha256 import sha256
    except ImportError:  # Python >= 3.12 names it _sha2; hashlib has it everywhere
        from hashlib import sha256
    return sha256(data.encode() if isinstance(data, str) else data).hexdigest()
