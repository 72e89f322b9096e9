"""System endpoints (Engine API 1.41): ``GET|HEAD /_ping``, ``GET /version``, ``GET /info``,
``GET /events``.

``/_ping`` answers ``OK`` (text/plain) with the headers the docker CLI negotiates its API
version from: ``API-Version: 1.41``, ``OSType: linux``, ``Docker-Experimental: false``,
``Builder-Version: 1``. ``/events`` streams one JSON object per event (see
:mod:`runtime.daemon.events`) with ``since``/``until`` (Unix seconds[.nanos] or RFC 3339) and
``filters``; with ``until`` in the past it returns the matching history and ends, with
``until`` in the future it ends then.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time

from aiohttp import web

from runtime.daemon import VERSION
from runtime.daemon.api import json_response
from runtime.daemon.clock import parse_api_time, rfc3339
from runtime.daemon.events import FILTER_KEYS
from runtime.daemon.filters import parse_filters

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"


def ping_headers() -> dict:
    return {"API-Version": API_VERSION, "OSType": "linux", "Docker-Experimental": "false",
            "Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


async def ping(request: web.Request) -> web.Response:
    if request.method == "HEAD":
        return web.Response(status=200, headers=ping_headers(), content_type="text/plain")
    return web.Response(status=200, text="OK", headers=ping_headers())


async def version(request: web.Request) -> web.Response:
    d = request.app["daemon"]
    uname = os.uname()
    components = [{"Name": "Engine", "Version": VERSION,
                   "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "capsize",
                               "GoVersion": "python" + platform.python_version(), "Os": "linux",
                               "Arch": _arch(), "KernelVersion": uname.release, "Experimental": "false",
                               "BuildTime": ""}}]
    rv = await d.backend.runtime_version()
    components.append({"Name": "capsize-runtimed", "Version": rv or "unavailable",
                       "Details": {"GitCommit": "capsize"}})
    return json_response({"Platform": {"Name": "capsize Engine"}, "Components": components, "Version": VERSION,
                          "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "capsize",
                          "GoVersion": "python" + platform.python_version(), "Os": "linux", "Arch": _arch(),
                          "KernelVersion": uname.release, "BuildTime": ""})


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _security_options() -> list[str]:
    """What ``docker info`` lists under Security Options: seccomp only when containers get it by
    default (:data:`runtime.daemon.seccomp_profile.DEFAULT_ENABLED`)."""
    from runtime.daemon.seccomp_profile import DEFAULT_ENABLED
    return ["name=seccomp,profile=default"] if DEFAULT_ENABLED else []


async def info(request: web.Request) -> web.Response:
    d = request.app["daemon"]
    cs = list(d.containers.values())
    running = sum(1 for c in cs if c.State.Status == "running")
    paused = sum(1 for c in cs if c.State.Status == "paused")
    images = await d.backend.count_images()
    uname = os.uname()
    warnings = [] if d.backend.healthy else [f"WARNING: capsize-runtimed at {d.backend.address} is not reachable"]
    return json_response({
        "ID": d.daemon_id, "Containers": len(cs), "ContainersRunning": running, "ContainersPaused": paused,
        "ContainersStopped": len(cs) - running - paused, "Images": images, "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "overlayfs"]],
        "Plugins": {"Volume": [], "Network": ["none"], "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": False, "KernelMemory": False, "KernelMemoryTCP": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": False, "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": True, "NGoroutines": len(asyncio.all_tasks()),
        "SystemTime": rfc3339(time.time_ns()), "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": _cgroup_version(), "NEventsListener": len(d.events._subs),
        "KernelVersion": uname.release, "OperatingSystem": _os_name(), "OSVersion": "", "OSType": "linux",
        "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
        "DockerRootDir": d.config.data_root, "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": uname.nodename, "Labels": [], "ExperimentalBuild": False, "ServerVersion": VERSION,
        "Runtimes": {"capsize-runc": {"path": "capsize-runc"}}, "DefaultRuntime": "capsize-runc",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": d.config.live_restore, "Isolation": "", "InitBinary": "",
        "ContainerdCommit": {"ID": "capsize-runtimed", "Expected": "capsize-runtimed"},
        "RuncCommit": {"ID": "capsize-runc", "Expected": "capsize-runc"},
        "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": _security_options(),
        "Warnings": warnings,
    })


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /events``: history since ``since`` then live events, until ``until`` or disconnect."""
    d = request.app["daemon"]
    now = time.time_ns()
    since = parse_api_time(request.query["since"], "since") if request.query.get("since") else None
    until = parse_api_time(request.query["until"], "until") if request.query.get("until") else None
    filters = parse_filters(request.query.get("filters"), FILTER_KEYS)
    sub = d.events.subscribe(json.dumps(filters)) if until is None or until > now else None
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        last = 0
        if since is not None:
            for ev in d.events.since(since, until, filters):
                await resp.write(json.dumps(ev).encode() + b"\n")
                last = ev["timeNano"]
        if sub is None:
            return resp
        deadline = None if until is None else (until - time.time_ns()) / 1e9
        loop = asyncio.get_running_loop()
        end_at = None if deadline is None else loop.time() + deadline
        transport = request.transport
        while True:
            timeout = 5.0 if end_at is None else min(5.0, end_at - loop.time())
            if timeout <= 0 or transport is None or transport.is_closing() or sub.dropped:
                break
            try:
                ev = await asyncio.wait_for(sub.queue.get(), timeout)
            except asyncio.TimeoutError:
                continue   # a periodic look at whether the client is still there
            if ev["timeNano"] <= last:
                continue   # already sent from the history
            if until is not None and ev["timeNano"] > until:
                break
            await resp.write(json.dumps(ev).encode() + b"\n")
        return resp
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    finally:
        if sub is not None:
            sub.close()


def routes():
    return [("GET", "/_ping", ping), ("HEAD", "/_ping", ping), ("GET", "/version", version),
            ("GET", "/info", info), ("GET", "/events", events)]
