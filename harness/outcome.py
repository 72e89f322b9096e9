"""Outcome classification: what an exception from the ``docker`` SDK means for a step.

Jepsen's outcomes: ``ok`` (it happened), ``fail`` (it certainly did not: the daemon answered
with an error, or could not be reached at all), ``unknown`` (the call was cut off or the
connection broke mid-call: it may or may not have happened).
"""

from __future__ import annotations

#: Phrases of a connection that never reached the daemon (the request certainly did nothing).
NOT_SENT = ("No such file or directory", "FileNotFoundError", "Connection refused", "ConnectionRefusedError",
            "Cannot connect to the Docker daemon", "ConnectTimeout", "permission denied")


def classify_exception(e: BaseException) -> tuple[str, str, int | None]:
    """``(outcome, error text, HTTP status)`` for an exception from the docker SDK: an API error
    is ``fail`` with its explanation and status; a connect timeout or a connection never made is
    ``fail``; a read timeout or a connection broken mid-call is ``unknown``."""
    import docker
    import requests
    if isinstance(e, docker.errors.APIError):
        text = e.explanation if isinstance(e.explanation, str) and e.explanation else str(e)
        return "fail", text, e.status_code
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return "fail", text, None
    if isinstance(e, (requests.exceptions.ReadTimeout, requests.exceptions.ChunkedEncodingError)):
        return "unknown", text, None
    if isinstance(e, requests.exceptions.ConnectionError):
        return ("fail" if any(s in text for s in NOT_SENT) else "unknown"), text, None
    if isinstance(e, docker.errors.DockerException):
        return "fail", text, None
    return "unknown", text, None
