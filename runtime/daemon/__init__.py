"""capsized: capsize's engine daemon (dockerd's role), speaking the Docker Engine API 1.41.

The real ``docker`` CLI and the ``docker`` Python SDK drive capsize through it unchanged. It
listens on unix sockets (``-H unix://PATH``, default ``<exec-root>/capsized.sock``, mode 0660)
or on sockets handed over by systemd (``-H fd://``), keeps container configs and states under
``<data-root>/daemon/`` and runs containers through capsize-runtimed (containerd's role).

Modules:

=====================  ===========================================================================
``cli``                command line (``capsized -H ... --data-root ... --live-restore``)
``server``             aiohttp application, listeners, pidfile, sd_notify, shutdown
``api``                request helpers: JSON bodies, query flags, Docker's error bodies
``routes_system``      ``/_ping``, ``/version``, ``/info``, ``/events``
``routes_containers``  ``/containers/...``
``routes_images``      ``/images/...``
``daemon``             the container manager (create/start/stop/kill/wait/remove/...)
``names``              Docker's name rules, random names, id/prefix resolution
``store``              container records on disk (atomic, crash-safe)
``backend``            every call to capsize-runtimed (the one module that knows its API)
``events``             the event bus: ``docker events`` messages, filters, since/until
``logs``               the json-file log reader and the multiplexed stream framing
``stop``               stop and kill semantics (grace period, SIGKILL, bounded waits)
``restart``            restart policies (no, always, on-failure[:N], unless-stopped)
``reconcile``          start-up and reconnect: live-restore, adoption, exits seen late
``model``              the container record and its API views (inspect, list)
``images``             image references (Docker's familiar names) and the image API views
``oci``                the OCI runtime spec built for a container (dockerd's defaults)
``hostconfig``         HostConfig mounts (Binds, Mounts, Tmpfs) and the fields capsize refuses
``filters``            the ``filters`` query parameter
``clock``              RFC 3339 times, Docker's human durations, since/until parsing
``log``                the daemon's JSON-lines log (or journald)
=====================  ===========================================================================
"""

VERSION = "0.1.0"
