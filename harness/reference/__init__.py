"""The reference stack: Debian's runc, crun, containerd and dockerd, started privately.

Tests, benchmarks and the harness's ``docker`` engine run the real Docker stack side by side
with capsize, each instance under a private directory, and remove it completely afterwards.

* the runtimes themselves (runc, crun through the ``crun-hybrid`` wrapper on hybrid-cgroup
  hosts, capsize-runc) are found by :mod:`runtime.runtimes` (``runtime_path(name)``,
  ``available(name)``, ``which(name)``), which the engine uses too;
* :mod:`harness.reference.containerd` — :class:`ContainerdStack`, a private containerd 1.6;
* :mod:`harness.reference.docker` — :class:`DockerStack`, a private dockerd 20.10 on its own
  ContainerdStack, in a network namespace of its own;
* :mod:`harness.reference.cleanup` — finding and removing mounts, cgroups and processes.
"""
