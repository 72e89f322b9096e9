"""``HostConfig.Init`` (``docker run --init``): an init process as the container's pid 1.

As dockerd (daemon/oci_linux.go, ``WithInit``): the host's ``docker-init`` (Debian's ``tini``
package: ``/usr/bin/docker-init`` -> ``tini-static``; a static binary, since the image may have no
libc) is bind-mounted read-only at ``/sbin/docker-init`` and the process becomes
``["/sbin/docker-init", "--", <entrypoint + cmd>...]``. tini runs the command as its child,
forwards signals to it, reaps every orphan re-parented to it and exits with the command's status.

Lookup (:func:`binary`): ``docker-init`` on PATH, then ``tini-static``; a dynamically linked
``tini`` is not used (it would not run in a busybox image). Errors: FailedPrecondition (409)
naming what is missing when neither exists.
"""

from __future__ import annotations

import os
import shutil

from runtime.errors import FailedPrecondition

#: Where dockerd mounts its init inside the container (daemon/oci_linux.go ``inContainerInitPath``).
IN_CONTAINER_PATH = "/sbin/docker-init"
CANDIDATES = ("docker-init", "tini-static")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def binary() -> str:
    """The host path of the init binary (module docstring); FailedPrecondition if none."""
    search = os.environ.get("PATH", "") + ":" + _PATH
    for name in CANDIDATES:
        found = shutil.which(name, path=search)
        if found:
            return os.path.realpath(found)
    raise FailedPrecondition("--init needs docker-init or tini-static on the host (Debian's tini package): "
                             "neither was found")


def apply(spec: dict, host: dict) -> None:
    """With ``HostConfig.Init`` true: prefix the process with the init and mount it (module docstring)."""
    if not host.get("Init"):
        return
    spec["process"]["args"] = [IN_CONTAINER_PATH, "--"] + list(spec["process"]["args"])
    spec.setdefault("mounts", []).append({"destination": IN_CONTAINER_PATH, "type": "bind", "source": binary(),
                                          "options": ["bind", "ro", "nosuid", "nodev"]})
