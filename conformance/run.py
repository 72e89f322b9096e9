"""Runs the two pinned OCI conformance suites against capsize-runc and runc, side by side.

Usage: ``python -m conformance.run [--build DIR] [--runtime NAME=PATH ...] [--suite rt|bats ...]
[--only FILE ...] [--manifest-runtime NAME] [--write-manifest] [-v]``

- ``rt``: OCI runtime-tools' validation programs (``validation/<name>/<name>.t``, TAP), run from
  the tree's root as root with ``RUNTIME=<path>`` in a private mount namespace
  (``unshare -m --propagation unchanged``) and a private ``TMPDIR``; one verdict per file:
  ``pass`` (assertions, none ``not ok``, exit 0), ``none`` (no assertion, exit 0) or ``fail``.
- ``bats``: runc v1.1.5's ``tests/integration/<name>.bats`` under ``script`` (a pty) with
  ``RUNC=<path>``; one verdict per test: ``pass``, ``skip`` or ``fail``.

The first runtime (capsize-runc by default) is compared with the manifests
``conformance/expected-runtime-tools.txt`` and ``conformance/expected-bats.txt``: one line per
test, ``VERDICT FILE [TEST NAME] [# reason]``, a reason on every line that is not ``pass``. Exit
status: 0 when no test did worse than its line (``fail`` < ``skip``/``none`` < ``pass``), 1 when
one did, 2 on a usage or set-up error. The suites' known leftovers (containers left in the
runtimes' default roots, the ``cgrouptest``/``runc-cgroups-integration-test`` cgroups, the plain
directories ``helpers.bash`` makes on the ``/sys/fs/cgroup`` tmpfs, stray processes) are removed
afterwards, only those that appeared during the run. Build the suites first: ``conformance/build.sh``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BUILD = os.environ.get("CONFORMANCE_DIR", "/var/tmp/capsize-conformance")
MANIFESTS = {"rt": os.path.join(HERE, "expected-runtime-tools.txt"), "bats": os.path.join(HERE, "expected-bats.txt")}
#: The 30 runc bats files the reference results cover (../shared/conformance/README.md).
BATS_FILES = ("create start kill delete state list start_detached start_hello run exec pause ps spec help "
              "version mask dev root umask cwd hooks mounts tty cgroups update events debug userns seccomp "
              "no_pivot").split()
RANK = {"fail": 0, "skip": 1, "none": 1, "pass": 2}
RT_TIMEOUT = 180      # seconds per runtime-tools file
BATS_TIMEOUT = 300    # seconds per bats file (events.bats hangs on a missing feature otherwise)
DEFAULT_ROOTS = {"runc": "/run/runc", "crun": "/run/crun", "capsize-runc": "/run/capsize/runc"}
TOKEN_ENV = "CAPSIZE_CONFORMANCE_RUN"

_TAP = re.compile(r"^(not ok|ok) \d+(?: -)? ?(.*?)\s*$")


@dataclass
class Result:
    """One test's outcome: ``verdict`` (pass/fail/skip/none) and, for a runtime-tools file, the
    assertion counts ``(ok, not_ok, skip)``."""
    verdict: str
    counts: tuple[int, int, int] = (0, 0, 0)
    note: str = ""


@dataclass
class Line:
    """One manifest line: ``verdict file [name] [# reason]``."""
    verdict: str
    file: str
    name: str = ""
    reason: str = ""


def parse_manifest(path: str) -> dict[tuple[str, str], Line]:
    """The manifest at *path* keyed by ``(file, name)``; ValueError names the bad line."""
    out: dict[tuple[str, str], Line] = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            text = raw.rstrip("\n")
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            body, _, reason = text.partition(" # ")
            parts = body.strip().split(None, 2)
            if len(parts) < 2 or parts[0] not in RANK:
                raise ValueError(f"{path}:{n}: expected 'VERDICT FILE [NAME] [# reason]', got {text!r}")
            line = Line(parts[0], parts[1], parts[2].strip() if len(parts) > 2 else "", reason.strip())
            if line.verdict != "pass" and not line.reason:
                raise ValueError(f"{path}:{n}: a {line.verdict} line needs its reason after ' # '")
            out[(line.file, line.name)] = line
    return out


def write_manifest(path: str, results: dict[tuple[str, str], Result], old: dict[tuple[str, str], Line],
                   header: str) -> None:
    """Rewrites the manifest from *results*, keeping the reasons of *old* lines whose verdict
    still holds; a new non-pass line gets ``# REASON?`` (which parse_manifest accepts, a person
    replaces)."""
    rows = [header.rstrip("\n")]
    for (file, name), res in results.items():
        prev = old.get((file, name))
        reason = prev.reason if prev and prev.verdict == res.verdict and prev.reason else "REASON?"
        body = f"{res.verdict} {file}" + (f" {name}" if name else "")
        rows.append(body if res.verdict == "pass" else f"{body} # {reason}")
    with open(path, "w") as f:
        f.write("\n".join(rows) + "\n")


# ---------------------------------------------------------------------------------------------
# leftovers, scoped to the run

def _cgroup_dirs() -> set[str]:
    """Directories under /sys/fs/cgroup (4 levels) named as the suites name their cgroups, and
    /sys/fs/cgroup's own entries."""
    found = set(os.path.join("/sys/fs/cgroup", e) for e in os.listdir("/sys/fs/cgroup"))
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        depth = top.count("/") - 3
        if depth >= 4:
            dirs[:] = []
            continue
        for d in dirs:
            if d in ("testdir", "cgrouptest", "runc-cgroups-integration-test") or d.startswith("test-cgroup-"):
                found.add(os.path.join(top, d))
    return found


def _rmdir_tree(path: str) -> None:
    """Removes an (empty) cgroup directory and its child cgroups, deepest first."""
    for top, dirs, _ in os.walk(path, topdown=False):
        try:
            os.rmdir(top)
        except OSError:
            pass


class Leftovers:
    """What existed before the run, to remove only what the run added."""

    def __init__(self, runtimes: dict[str, str]):
        self.token = f"{os.getpid()}-{time.monotonic_ns()}"
        self.cgroups = _cgroup_dirs()
        self.roots = {name: self._ids(DEFAULT_ROOTS.get(name)) for name in runtimes}
        self.runtimes = runtimes

    @staticmethod
    def _ids(root: str | None) -> set[str]:
        try:
            return set(os.listdir(root)) if root else set()
        except OSError:
            return set()

    def kill_strays(self) -> None:
        """SIGKILLs processes that carry this run's token in their environment (recvtty, bats
        helpers left holding a pipe) — never anything else."""
        marker = f"{TOKEN_ENV}={self.token}".encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass

    def clean(self) -> list[str]:
        """Removes what the run left; returns what was removed (for the report)."""
        removed = []
        self.kill_strays()
        for name, path in self.runtimes.items():
            root = DEFAULT_ROOTS.get(name)
            for cid in sorted(c for c in self._ids(root) - self.roots[name] if not c.startswith("@")):
                subprocess.run([path, "delete", "--force", cid], capture_output=True, timeout=60)
                removed.append(f"container {name}:{cid}")
        for path in sorted(_cgroup_dirs() - self.cgroups, key=len, reverse=True):
            if not os.path.isdir(path):
                continue
            if os.path.dirname(path) == "/sys/fs/cgroup":
                if os.path.ismount(path):
                    continue
                shutil.rmtree(path, ignore_errors=True)   # helpers.bash's plain dirs on the tmpfs
            else:
                _rmdir_tree(path)
            removed.append(path)
        return removed


# ---------------------------------------------------------------------------------------------
# runners

def _run_bounded(cmd: list[str], *, cwd: str, env: dict, timeout: int) -> tuple[int | None, str]:
    """Runs *cmd* in its own session; on *timeout* kills the session. Returns (status, output)."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            status = p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            status = None
        out.seek(0)
        return status, out.read().decode(errors="replace")


def run_rt_file(build: str, name: str, runtime: str, env: dict) -> Result:
    """One runtime-tools validation file against *runtime*."""
    tree = os.path.join(build, "runtime-tools")
    tmp = tempfile.mkdtemp(prefix=f"rt-{name}-", dir=os.path.join(build, "tmp"))
    os.chmod(tmp, 0o755)   # a container in a user namespace walks into its bundle as another uid
    try:
        e = dict(env, RUNTIME=runtime, TMPDIR=tmp)
        status, out = _run_bounded(["unshare", "-m", "--propagation", "unchanged",
                                    f"validation/{name}/{name}.t"], cwd=tree, env=e, timeout=RT_TIMEOUT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ok = bad = skip = 0
    for line in out.splitlines():
        m = _TAP.match(line)
        if not m:
            continue
        if "# SKIP" in line.upper():
            skip += 1
        elif m.group(1) == "ok":
            ok += 1
        else:
            bad += 1
    if status is None:
        return Result("fail", (ok, bad, skip), f"timed out after {RT_TIMEOUT}s")
    if bad or status != 0:
        return Result("fail", (ok, bad, skip), "" if bad else f"exit {status}")
    return Result("pass" if ok or skip else "none", (ok, bad, skip))


def rt_files(build: str) -> list[str]:
    """The validation programs: ``validation/<name>/<name>.t``."""
    top = os.path.join(build, "runtime-tools", "validation")
    return sorted(n for n in os.listdir(top) if os.path.exists(os.path.join(top, n, n + ".t")))


def run_bats_file(build: str, name: str, runtime: str, env: dict) -> tuple[dict[str, Result], str]:
    """One runc bats file against *runtime*: ``({test name: Result}, raw output)``."""
    tree = os.path.join(build, "runc", "tests", "integration")
    tmp = tempfile.mkdtemp(prefix=f"bats-{name}-", dir=os.path.join(build, "tmp"))
    os.chmod(tmp, 0o755)   # a container user other than root (cwd, userns tests) walks into its bundle
    try:
        e = dict(env, RUNC=runtime, TMPDIR=tmp, GOPATH=os.path.join(build, "gopath"),
                 GIT_CONFIG_GLOBAL=os.path.join(build, "gitconfig"), GOFLAGS="", GOPROXY="off",
                 GOCACHE=os.path.join(build, "gocache"), GIT_TERMINAL_PROMPT="0")
        e.pop("BATS_TEST_TIMEOUT", None)
        inner = f"bats --tap {name}.bats"
        status, out = _run_bounded(["script", "-qec", inner, "/dev/null"], cwd=tree, env=e, timeout=BATS_TIMEOUT)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results: dict[str, Result] = {}
    for line in out.replace("\r", "").splitlines():
        m = _TAP.match(line)
        if not m:
            continue
        title = m.group(2)
        verdict = "pass" if m.group(1) == "ok" else "fail"
        if re.search(r" # skip\b", title):
            title, verdict = title.split(" # skip", 1)[0], "skip"
        results[title.strip()] = Result(verdict)
    if status is None:
        for title in _bats_titles(os.path.join(tree, f"{name}.bats")):
            results.setdefault(title, Result("fail", note=f"file timed out after {BATS_TIMEOUT}s"))
    return results, out


def _bats_titles(path: str) -> list[str]:
    with open(path) as f:
        return [m.group(1) for m in re.finditer(r'^@test "(.*)" \{', f.read(), re.M)]


# ---------------------------------------------------------------------------------------------
# report

def _fmt_rt(r: Result | None) -> str:
    if r is None:
        return "-"
    return f"{r.verdict} {r.counts[0]}/{r.counts[1]}/{r.counts[2]}" + (f" ({r.note})" if r.note else "")


def _tally(results: dict) -> tuple[int, int, int]:
    v = [r.verdict for r in results.values()]
    return v.count("pass"), v.count("fail"), v.count("skip") + v.count("none")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="conformance", description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=DEFAULT_BUILD, help="the suites' build dir (conformance/build.sh)")
    ap.add_argument("--runtime", action="append", metavar="NAME=PATH",
                    help="a runtime to run (repeatable; the first is checked against the manifest); "
                         "default capsize-runc (next to this Python) and runc")
    ap.add_argument("--suite", action="append", choices=("rt", "bats"), help="default both")
    ap.add_argument("--only", action="append", metavar="FILE",
                    help="only these files (runtime-tools names, or bats names ending in .bats)")
    ap.add_argument("--write-manifest", action="store_true",
                    help="rewrite the manifests from the first runtime's results (keeps reasons)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each failing bats test's output")
    a = ap.parse_args(argv)

    if os.geteuid() != 0:
        print("conformance: the suites need root", file=sys.stderr)
        return 2
    runtimes: dict[str, str] = {}
    for spec in a.runtime or [f"capsize-runc={os.path.join(os.path.dirname(sys.executable), 'capsize-runc')}",
                              f"runc={shutil.which('runc') or '/usr/sbin/runc'}"]:
        name, sep, path = spec.partition("=")
        if not sep or not os.access(path, os.X_OK):
            print(f"conformance: --runtime {spec!r}: expected NAME=PATH to an executable", file=sys.stderr)
            return 2
        runtimes[name] = os.path.abspath(path)
    for part in ("runtime-tools/.built", "runc/.built", "runtime-spec.git/.built"):
        if not os.path.exists(os.path.join(a.build, part)):
            print(f"conformance: {a.build} is not built ({part} missing): run conformance/build.sh {a.build}",
                  file=sys.stderr)
            return 2
    try:
        manifests = {s: parse_manifest(p) for s, p in MANIFESTS.items()}
    except ValueError as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    suites = a.suite or ["rt", "bats"]
    only = set(a.only or [])
    os.makedirs(os.path.join(a.build, "tmp"), exist_ok=True)
    leftovers = Leftovers(runtimes)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATS_", "PYTEST", "VIRTUAL_ENV"))}
    env[TOKEN_ENV] = leftovers.token
    first = next(iter(runtimes))
    worse: list[str] = []
    names = list(runtimes)
    started = time.monotonic()
    try:
        if "rt" in suites:
            files = [f for f in rt_files(a.build) if not only or f in only]
            res: dict[str, dict[tuple[str, str], Result]] = {n: {} for n in names}
            walls = dict.fromkeys(names, 0.0)
            for n in names:
                t0 = time.monotonic()
                for f in files:
                    res[n][(f, "")] = run_rt_file(a.build, f, runtimes[n], env)
                leftovers.clean()
                walls[n] = time.monotonic() - t0
            w = max([len(f) for f in files] + [24])
            print(f"\nOCI runtime-tools ({len(files)} files; verdict ok/not ok/skip)")
            print(f"  {'file':<{w}}  " + "  ".join(f"{n:<24}" for n in names) + "  manifest")
            for f in files:
                exp = manifests["rt"].get((f, ""))
                print(f"  {f:<{w}}  " + "  ".join(f"{_fmt_rt(res[n][(f, '')]):<24}" for n in names)
                      + f"  {exp.verdict if exp else '-'}")
            print(f"  {'files pass/fail/none':<{w}}  " + "  ".join(f"{'/'.join(map(str, _tally(res[n]))):<24}"
                                                                for n in names))
            print(f"  {'assertions ok/not/skip':<{w}}  " + "  ".join(
                f"{'/'.join(str(sum(r.counts[i] for r in res[n].values())) for i in range(3)):<24}" for n in names))
            print(f"  {'wall':<{w}}  " + "  ".join(f"{walls[n]:<24.0f}" for n in names))
            worse += _compare("runtime-tools", res[first], manifests["rt"], only=bool(only))
            if a.write_manifest and not only:
                write_manifest(MANIFESTS["rt"], res[first], manifests["rt"], _RT_HEADER)
        if "bats" in suites:
            files = [f for f in BATS_FILES if not only or f + ".bats" in only]
            bres: dict[str, dict[tuple[str, str], Result]] = {n: {} for n in names}
            walls = dict.fromkeys(names, 0.0)
            for n in names:
                t0 = time.monotonic()
                for f in files:
                    got, out = run_bats_file(a.build, f, runtimes[n], env)
                    for title, r in got.items():
                        bres[n][(f + ".bats", title)] = r
                    if a.verbose and n == first and any(r.verdict == "fail" for r in got.values()):
                        print(f"--- {f}.bats on {n}:\n{out}")
                    leftovers.clean()
                walls[n] = time.monotonic() - t0
            w = max([len(f) for f in files] + [20]) + 5
            print(f"\nrunc v1.1.5 bats ({len(files)} files; ok/not ok/skip)")
            print(f"  {'file':<{w}}  " + "  ".join(f"{n:<14}" for n in names))
            for f in files:
                cells = []
                for n in names:
                    sub = {k: r for k, r in bres[n].items() if k[0] == f + ".bats"}
                    cells.append("/".join(map(str, _tally(sub))))
                print(f"  {f + '.bats':<{w}}  " + "  ".join(f"{c:<14}" for c in cells))
            print(f"  {'total':<{w}}  " + "  ".join(f"{'/'.join(map(str, _tally(bres[n]))):<14}" for n in names))
            print(f"  {'wall':<{w}}  " + "  ".join(f"{walls[n]:<14.0f}" for n in names))
            worse += _compare("bats", bres[first], manifests["bats"], only=bool(only))
            if a.write_manifest and not only:
                write_manifest(MANIFESTS["bats"], bres[first], manifests["bats"], _BATS_HEADER)
    finally:
        removed = leftovers.clean()
    print(f"\nleftovers removed: {len(removed)}" + "".join(f"\n  {r}" for r in removed[:20]))
    print(f"wall {time.monotonic() - started:.0f} s")
    if worse:
        print(f"\n{first}: {len(worse)} test(s) worse than the manifest:")
        for line in worse:
            print(f"  {line}")
        return 1
    print(f"\n{first}: no test worse than the manifest")
    return 0


def _compare(suite: str, got: dict[tuple[str, str], Result], manifest: dict[tuple[str, str], Line],
             only: bool) -> list[str]:
    """The tests of *got* worse than their manifest line, and manifest lines with no result."""
    out = []
    for key, line in manifest.items():
        label = f"{suite}: {key[0]}" + (f" {key[1]}" if key[1] else "")
        r = got.get(key)
        if r is None:
            if not only:
                out.append(f"{label}: expected {line.verdict}, did not run")
        elif RANK[r.verdict] < RANK[line.verdict]:
            out.append(f"{label}: expected {line.verdict}, got {r.verdict}" + (f" ({r.note})" if r.note else ""))
    for key, r in got.items():
        if key not in manifest and r.verdict == "fail":
            out.append(f"{suite}: {key[0]}" + (f" {key[1]}" if key[1] else "") + ": fails and has no manifest line")
    return out


_RT_HEADER = """\
# capsize-runc's expected OCI runtime-tools verdicts (conformance/run.py): VERDICT FILE [# reason]
# pass: assertions, none 'not ok'; none: no assertion printed (hooks, *_fail files refusing); fail.
# Every non-pass line says why: host lacks X / test bug (fails for runc and crun too) / not implemented.
"""
_BATS_HEADER = """\
# capsize-runc's expected runc v1.1.5 bats results (conformance/run.py): VERDICT FILE TEST NAME [# reason]
# Every non-pass line says why: host lacks X / runc-specific wording / not implemented.
"""


if __name__ == "__main__":
    sys.exit(main())
