"""What the harness records while a scenario runs: process trees and orphans (:mod:`.proctree`),
daemon and runtime events (:mod:`.events`), component logs (:mod:`.logs`). Host state (mounts,
cgroups, netns, sockets, state dirs under the engine's roots) comes from the engine adapter's
``host_state``."""
