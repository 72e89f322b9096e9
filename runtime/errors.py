"""The one error hierarchy every tier of capsize's engine shares.

Each class carries a stable ``code`` (a word, as gRPC status names and containerd's errdefs use),
a process exit code for the command-line tools and an HTTP status for the APIs. A tier raises
the class that says what went wrong; whoever reports it (a CLI, an API handler) maps it with
:func:`exit_code_for` / :func:`http_status_for` and prints ``str(err)`` as the one line a user
sees; whoever receives one rebuilds it with :func:`from_dict` (an API's JSON error body) or
:func:`error_for_exit_code` (a command's exit code and last stderr line). The tables are part of the public contract and never change meaning:

============================  ====  ====  ==========================================
class                         exit  HTTP  meaning
============================  ====  ====  ==========================================
``CapsizeError`` (internal)   1     500   a bug or an unexpected host failure
``InvalidArgument``           2     400   the request or the configuration is wrong
``NotFound``                  3     404   the named object does not exist
``AlreadyExists``             4     409   an object with that id/name already exists
``FailedPrecondition``        5     409   the object is in the wrong state for this
``Unavailable``               6     503   a peer (daemon, shim, socket) cannot be reached
``DeadlineExceeded``          7     504   a bounded wait ran out
``PermissionDenied``          8     403   the caller may not do this
``Unimplemented``             9     501   capsize does not support this (yet)
============================  ====  ====  ==========================================

The exit codes are those of capsize's own commands (``capsize-shim``, ``capsize-runtimed``...).
``capsize-runc`` is the exception: it exits as runc does (1 for its own errors, 255 when ``exec``
fails) and puts the class's ``code`` in its ``--log`` error record instead (runtime/lowlevel/cli.py).

This module is imported by the shim, so it must stay free of heavy imports.
"""

from __future__ import annotations


class CapsizeError(Exception):
    """Base class: an internal error. ``str(err)`` is the one-line message for the user."""

    code = "internal"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, **fields):
        super().__init__(message)
        self.message = message
        #: Extra structured context (ids, paths, fields) for JSON logs and API error bodies.
        self.fields = fields

    def to_dict(self) -> dict:
        """The JSON shape used on the wire between tiers: ``{"code", "message", **fields}``."""
        d = {"code": self.code, "message": self.message}
        d.update(self.fields)
        return d


class InvalidArgument(CapsizeError):
    code = "invalid-argument"
    exit_code = 2
    http_status = 400


class NotFound(CapsizeError):
    code = "not-found"
    exit_code = 3
    http_status = 404


class AlreadyExists(CapsizeError):
    code = "already-exists"
    exit_code = 4
    http_status = 409


class FailedPrecondition(CapsizeError):
    code = "failed-precondition"
    exit_code = 5
    http_status = 409


class Unavailable(CapsizeError):
    code = "unavailable"
    exit_code = 6
    http_status = 503


class DeadlineExceeded(CapsizeError):
    code = "deadline-exceeded"
    exit_code = 7
    http_status = 504


class PermissionDenied(CapsizeError):
    code = "permission-denied"
    exit_code = 8
    http_status = 403


class Unimplemented(CapsizeError):
    code = "unimplemented"
    exit_code = 9
    http_status = 501


class RequestTooLarge(InvalidArgument):
    """An :class:`InvalidArgument` whose cause is size: a request body over an API's bound. Same
    code and exit code as its parent (a peer rebuilds it as InvalidArgument); HTTP 413 (Request
    Entity Too Large), the status HTTP servers give a body past their limit."""

    http_status = 413


#: Every class, in the table's order: the one place the code, exit code and HTTP status meet.
CLASSES = (CapsizeError, InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Unavailable,
           DeadlineExceeded, PermissionDenied, Unimplemented)
_BY_CODE = {cls.code: cls for cls in CLASSES}
_BY_EXIT = {cls.exit_code: cls for cls in CLASSES}


def exit_code_for(err: BaseException) -> int:
    """Process exit code for *err*: the class's code for capsize errors, 1 for anything else."""
    return err.exit_code if isinstance(err, CapsizeError) else 1


def http_status_for(err: BaseException) -> int:
    """HTTP status for *err*: the class's status for capsize errors, 500 for anything else."""
    return err.http_status if isinstance(err, CapsizeError) else 500


def class_for_exit_code(code: int) -> type:
    """The class a capsize command's exit *code* stands for (the inverse of :func:`exit_code_for`):
    0, 1 and any code outside the table give :class:`CapsizeError`."""
    return _BY_EXIT.get(code, CapsizeError)


def error_for_exit_code(code: int, message: str, **fields) -> CapsizeError:
    """Rebuild the error a capsize command (``capsize-shim``, ``capsize-runc``,
    ``capsize-runtimed``) reported by exiting with *code*, with its one-line *message*."""
    return class_for_exit_code(code)(message, **fields)


def from_dict(d: dict) -> CapsizeError:
    """Rebuild an error received from another tier (the inverse of :meth:`CapsizeError.to_dict`).

    An unknown ``code`` gives a plain :class:`CapsizeError`, so a newer peer never breaks an older one.
    """
    d = dict(d)
    cls = _BY_CODE.get(d.pop("code", "internal"), CapsizeError)
    message = d.pop("message", "unknown error")
    return cls(message, **d)
