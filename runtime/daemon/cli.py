"""``capsized``: the engine daemon's command line (dockerd's flags, where capsize has them).

::

    capsized [-H unix:///run/capsize/capsized.sock | -H fd://]... [--data-root /var/lib/capsize]
             [--exec-root /run/capsize] [--pidfile PATH] [--live-restore]
             [--runtime-address unix://<exec-root>/runtimed.sock] [--group GROUP]
             [--log-file PATH] [--log-level info] [--shutdown-timeout 15]
             [--default-runtime capsize-runc|runc|PATH] [--fsync-state] [--runtime-wait 5]
             [--cgroup-parent /capsize] [--config-file /etc/capsize/daemon.json]

``--cgroup-parent`` is dockerd's flag: the parent cgroup of containers whose
``HostConfig.CgroupParent`` is empty (their cgroup is ``<parent>/<id>``; dockerd's default is
``/docker``, capsized's ``/capsize``), so that several engines on one host can keep apart.

``--config-file`` is dockerd's: a JSON object of dockerd's ``daemon.json`` keys for these options
(``{"live-restore": true}``; :mod:`runtime.daemon.config_file`); a key also given as a flag is
an error, as with dockerd.

Exit status 0 after a clean shutdown (SIGTERM/SIGINT); 1 with one line ``capsized: <message>``
on stderr when it cannot start (a live pidfile, a socket in use, no activation sockets...).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass, field

from runtime.errors import CapsizeError


@dataclass
class Config:
    hosts: list = field(default_factory=list)
    data_root: str = "/var/lib/capsize"
    exec_root: str = "/run/capsize"
    pidfile: str | None = None
    live_restore: bool = False
    runtime_address: str = ""
    group: str | None = "docker"
    log_file: str | None = None
    log_level: str = "info"
    shutdown_timeout: float = 15.0
    runtime_wait: float = 5.0
    default_runtime: str | None = None
    fsync_state: bool = False
    cgroup_parent: str = "/capsize"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="capsized", description="capsize's engine daemon (Docker Engine API 1.41)")
    p.add_argument("--config-file", default=None,
                   help="daemon configuration file, dockerd's daemon.json keys (default /etc/capsize/daemon.json)")
    p.add_argument("-H", "--host", action="append", default=[], help="unix://PATH or fd:// (repeatable)")
    p.add_argument("--data-root", default="/var/lib/capsize")
    p.add_argument("--exec-root", default="/run/capsize")
    p.add_argument("-p", "--pidfile", default=None)
    p.add_argument("--live-restore", action="store_true")
    p.add_argument("--runtime-address", "--containerd", dest="runtime_address", default=None,
                   help="capsize-runtimed's socket (default unix://<exec-root>/runtimed.sock)")
    p.add_argument("-G", "--group", default="docker")
    p.add_argument("--log-file", default=None)
    p.add_argument("-l", "--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--shutdown-timeout", type=float, default=15.0)
    p.add_argument("--runtime-wait", type=float, default=5.0,
                   help="seconds to wait for capsize-runtimed at start-up before serving anyway")
    p.add_argument("--default-runtime", default=None,
                   help="low-level runtime for new containers (a name or an absolute path; default capsize-runc)")
    p.add_argument("--fsync-state", action="store_true",
                   help="fsync every container record write (survives power loss; ~9 ms per write)")
    p.add_argument("--cgroup-parent", default="/capsize",
                   help="parent cgroup of containers without HostConfig.CgroupParent (default /capsize)")
    return p


def parse_args(argv=None) -> Config:
    """The configuration from *argv* and the configuration file (:mod:`runtime.daemon.config_file`);
    a bad flag exits 2 with the usage, a bad configuration file exits 1 with one line."""
    from runtime.daemon import config_file
    p = _parser()
    a = p.parse_args(argv)
    unset = object()   # the same flags with a default no flag gives: which ones were given
    given_parser = _parser()
    given_parser.set_defaults(**{dest: None if dest == "host" else unset for dest, _ in config_file.KEYS.values()})
    given = {k: v for k, v in vars(given_parser.parse_args(argv)).items() if v is not unset and v is not None}
    path = a.config_file or config_file.DEFAULT_PATH
    try:
        config_file.merge(path, config_file.read(path, required=a.config_file is not None), given, a)
    except CapsizeError as e:
        p.exit(1, f"capsized: {e.message}\n")
    if not a.cgroup_parent or ".." in a.cgroup_parent.split("/"):
        p.error(f"invalid --cgroup-parent {a.cgroup_parent!r}")
    data_root, exec_root = os.path.abspath(a.data_root), os.path.abspath(a.exec_root)
    hosts = a.host or ["unix://" + os.path.join(exec_root, "capsized.sock")]
    addr = a.runtime_address or os.path.join(exec_root, "runtimed.sock")
    if addr.startswith("unix://"):
        addr = addr[len("unix://"):]
    return Config(hosts=hosts, data_root=data_root, exec_root=exec_root,
                  pidfile=os.path.abspath(a.pidfile) if a.pidfile else None, live_restore=a.live_restore,
                  runtime_address=os.path.abspath(addr), group=a.group, log_file=a.log_file,
                  log_level=a.log_level, shutdown_timeout=a.shutdown_timeout, runtime_wait=a.runtime_wait,
                  default_runtime=a.default_runtime, fsync_state=a.fsync_state,
                  cgroup_parent=a.cgroup_parent)


def main(argv=None) -> int:
    from runtime.daemon.log import Logger, fatal
    from runtime.daemon.server import serve
    config = parse_args(argv)
    log = Logger(config.log_file, config.log_level)
    log.info("Starting up", pid=os.getpid(), data_root=config.data_root, live_restore=config.live_restore)
    try:
        return asyncio.run(serve(config, log))
    except CapsizeError as e:
        log.error("failed to start daemon: " + e.message)
        fatal(f"failed to start daemon: {e.message}")
        return 1
    except OSError as e:
        log.error(f"failed to start daemon: {e}")
        fatal(f"failed to start daemon: {e}")
        return 1
    except KeyboardInterrupt:
        return 0
    except Exception as e:  # noqa: BLE001 - a bug: one line for the user, the traceback in the log
        import traceback
        log.error(f"failed to start daemon: {e!r}", traceback=traceback.format_exc())
        fatal(f"failed to start daemon: {e!r}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
