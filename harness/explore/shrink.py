"""Shrinking a failing schedule: fewer kills, then fewer workload steps, while it still fails.

Greedy (delta debugging with single removals, as QuickCheck-style shrinkers): drop each kill of
the schedule in turn and keep the drop if the run still fails; then drop workload steps from the
last to the first (a step whose container the remaining steps no longer name goes with it) and
keep each drop that still fails. The minimal schedule is written as an ordinary scenario file,
``<run>/shrunk/<name>.yaml``, that ``capsize run`` replays alone.
"""

from __future__ import annotations

import os

from harness.explore import build
from harness.explore.schedule import Schedule


def shrink(workload: dict, schedule: Schedule, run_dir: str, ledger, origin: str, fails, max_tries: int = 12) -> dict:
    """Shrink *schedule* on *workload*; returns ``{"from", "key", "steps", "scenario", "fails"}``.
    *fails(doc, directory, name, ledger) -> bool* runs one scenario document and says whether it
    failed (:mod:`harness.explore.run` gives its runner: this module does not import it)."""
    def _fails(workload, sch, steps, directory, ledger, n) -> bool:
        return fails(build.schedule_doc(workload, sch, steps), directory, f"try-{n:03d}", ledger)

    directory = os.path.join(run_dir, "shrink", origin.replace("@", "-at-")[:120])
    steps = list(workload["steps"])
    tries = 0
    kills = list(schedule.kills)
    for k in list(kills):
        if len(kills) == 1 or tries >= max_tries:
            break
        tries += 1
        trial = [x for x in kills if x != k]
        if _fails(workload, Schedule(tuple(trial)), steps, directory, ledger, tries):
            kills = trial
    for i in range(len(steps) - 1, -1, -1):
        if len(steps) == 1 or tries >= max_tries:
            break
        tries += 1
        trial = steps[:i] + steps[i + 1:]
        if _fails(workload, Schedule(tuple(kills)), trial, directory, ledger, tries):
            steps = trial
    final = Schedule(tuple(kills))
    doc = build.schedule_doc(workload, final, steps)
    doc["name"] = "shrunk-" + doc["name"]
    tries += 1
    still = _fails(workload, final, steps, directory, ledger, tries)
    out = os.path.join(run_dir, "shrunk")
    os.makedirs(out, exist_ok=True)
    import yaml
    path = os.path.join(out, doc["name"][:150] + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False, width=110)
    return {"from": origin, "key": final.key, "steps": len(steps), "scenario": os.path.relpath(path, run_dir),
            "fails": still, "tries": tries}
