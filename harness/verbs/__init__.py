"""Every scenario verb (action, fault, check), registered once per verb in one family module.

Importing this package imports every family, which fills the registry
(:mod:`harness.verbs.registry`): container actions (:mod:`.container`), image builds (:mod:`.build`), the docker CLI
(:mod:`.cli`), the docker CLI on a pty (:mod:`.terminal`), flow (:mod:`.flow`: sleep, wait, await, snapshot), faults on components
(:mod:`.faults`), syscall faults (:mod:`.syscall`), systemd units (:mod:`.systemd`) and the
checks (:mod:`.checks`, :mod:`.lifecycle_checks`, :mod:`.storage_checks`) and the network verbs (:mod:`.network`). A new verb is one registration in one of these modules (or a new
module listed here).
"""

# isort: off -- the order of registration is the order of the tables and of the Step fields
from harness.verbs import container, build, cli, terminal, flow, faults, syscall, checks, lifecycle_checks, storage_checks, systemd, network  # noqa: F401
# isort: on
from harness.verbs.registry import check_verbs, get, step_verbs, verbs

__all__ = ["check_verbs", "get", "step_verbs", "verbs"]
