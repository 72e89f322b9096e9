"""``capsize explore``: systematic crash-point exploration of a workload (DESIGN.md, "Crash points").

A workload is a short scenario file (``scenarios/explore/``: its ``steps`` and ``setup``). The
explorer makes a trace run (:mod:`.schedule`: every named crash point the workload passes, in
order, from ``failpoint.arm {trace: true}``), turns each point (depth 1) and seeded pairs
(depth 2) into schedules, and runs each as an ordinary scenario (:mod:`.build`): arm the kill,
the workload (any outcome), bring the engine back as a user would, remove what the workload
made, the workload again (it must succeed: a name is reusable), and the invariants
(``failpoint.fired``, ``consistency``, ``orphans.none``, ``cleanup.complete``). :mod:`.run`
drives them and writes ``<out>/<run>/explore.json`` and ``report.md``; :mod:`.shrink` turns a
failing schedule into a minimal scenario file that ``capsize run`` replays.
"""
