"""Where an exit status comes from, from the shim up to the Engine API: the contract, once.

An exit status is either *recorded* or *made up*. Every tier labels it with the same three
provenances (the harness's ``container.exit`` check reads the same names):

===============  ==========================================  ==================================
provenance       meaning                                     exit status
===============  ==========================================  ==================================
``real``         the init's own status: reported by the      the init's (128 + signal for a
                 live shim, or read back from the exit file  signal)
                 the shim wrote before it died
``cleanup-kill`` the shim was dead and the init alive; the   137 (SIGKILL), made by the clean-up
                 clean-up of the dead shim (``<runtime>
                 delete --force``) killed it
``unknown``      nobody recorded the status: the init        255, made up (as dockerd's)
                 exited while its shim was dead, or the
                 clean-up itself failed
===============  ==========================================  ==================================

The runtime's ``exit_source`` (``/tasks/exit``, a task's view, the shim's ``delete`` action's
``source``) is one of :data:`EXIT_SOURCES`: ``shim`` and ``exit-file`` are ``real``; the other
two are their provenance's name. A made-up status comes with a reason (``exit_reason``;
the shim's ``reason``), which capsized puts into ``State.Error`` (:func:`state_error`) and the
``die`` event's ``exitCodeSource`` attribute names the provenance (absent for a real exit, so a
real exit looks exactly like Docker's). Standard library only, no imports: the shim loads it.
"""

from __future__ import annotations

SHIM = "shim"
EXIT_FILE = "exit-file"
CLEANUP_KILL = "cleanup-kill"
UNKNOWN = "unknown"

#: The runtime's ``exit_source`` values.
EXIT_SOURCES = (SHIM, EXIT_FILE, CLEANUP_KILL, UNKNOWN)

REAL = "real"
#: The provenances, as the harness names them.
PROVENANCES = (REAL, CLEANUP_KILL, UNKNOWN)

#: The status of an init the clean-up killed (128 + SIGKILL) and of an exit nobody knows.
CLEANUP_KILL_STATUS = 137
UNKNOWN_STATUS = 255

#: ``State.Error``'s first words for each made-up provenance (what :func:`provenance_of_error` reads).
_ERROR_PREFIX = {CLEANUP_KILL: "exit status 137 from the clean-up: ",
                 UNKNOWN: "exit status unknown: "}


def provenance(exit_source: str | None) -> str:
    """The provenance (:data:`PROVENANCES`) of a runtime ``exit_source``; anything unrecognised
    (None, a name of an older version such as ``default``) is ``unknown``."""
    if exit_source in (SHIM, EXIT_FILE):
        return REAL
    if exit_source == CLEANUP_KILL:
        return CLEANUP_KILL
    return UNKNOWN


def state_error(prov: str, reason: str = "") -> str:
    """capsized's ``State.Error`` for an exit of provenance *prov*: empty for ``real``, else a
    one-line label starting with the provenance's fixed words, then *reason*."""
    if prov == REAL:
        return ""
    if prov == CLEANUP_KILL:
        return _ERROR_PREFIX[CLEANUP_KILL] + (
            reason or "the container's shim was dead and the clean-up killed its init (SIGKILL)")
    return _ERROR_PREFIX[UNKNOWN] + (reason or "the container exited while nothing could record it") \
        + "; 255 is made up"


def provenance_of_error(error: str | None) -> str | None:
    """The made-up provenance a ``State.Error`` written by :func:`state_error` names, or None."""
    for prov, prefix in _ERROR_PREFIX.items():
        if (error or "").startswith(prefix):
            return prov
    return None


def event_attrs(prov: str) -> dict:
    """The event attributes naming an exit's provenance *prov*: ``{"exitCodeSource": prov}`` for
    a made-up one (``die``, ``exec_die``), ``{}`` for ``real`` (exactly Docker's attributes)."""
    return {} if prov == REAL else {"exitCodeSource": prov}
