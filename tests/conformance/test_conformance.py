"""conformance/: the manifest format and its check, and a fast subset of both suites against
capsize-runc checked with the manifest (the full run is ``make conformance``, ~9 minutes)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conformance import run as conf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAPSIZE_RUNC = os.path.join(os.path.dirname(sys.executable), "capsize-runc")
#: quick files of each suite (seconds each): lifecycle, state, signals, namespaces, masks (tty.bats has a
#: test that races under load: "exec [tty consolesize]" reads a file a detached exec writes)
RT_SUBSET = ["create", "state", "kill", "killsig", "linux_ns_path", "linux_uid_mappings"]
BATS_SUBSET = ["kill.bats", "state.bats", "start_hello.bats", "userns.bats", "mask.bats"]


def test_manifest_lines_parse_and_a_non_pass_needs_its_reason(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("# comment\npass create\nfail delete # test bug: fails for runc and crun too\n"
                    "skip kill.bats runc kill [v2] # host lacks cgroup v2\n")
    lines = conf.parse_manifest(str(good))
    assert lines[("delete", "")].reason == "test bug: fails for runc and crun too"
    assert lines[("kill.bats", "runc kill [v2]")].verdict == "skip"
    bad = tmp_path / "bad.txt"
    bad.write_text("fail delete\n")
    with pytest.raises(ValueError, match="bad.txt:1: a fail line needs its reason"):
        conf.parse_manifest(str(bad))
    bad.write_text("passed create\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected"):
        conf.parse_manifest(str(bad))


def test_worse_than_the_manifest_is_reported_and_better_is_not():
    manifest = {("a", ""): conf.Line("pass", "a"), ("b", ""): conf.Line("skip", "b", reason="r"),
                ("c", ""): conf.Line("fail", "c", reason="r"), ("d", ""): conf.Line("pass", "d")}
    got = {("a", ""): conf.Result("fail"), ("b", ""): conf.Result("pass"), ("c", ""): conf.Result("fail"),
           ("e", ""): conf.Result("fail")}
    worse = conf._compare("rt", got, manifest, only=False)
    assert worse == ["rt: a: expected pass, got fail", "rt: d: expected pass, did not run",
                     "rt: e: fails and has no manifest line"]
    assert conf._compare("rt", got, manifest, only=True) == [worse[0], worse[2]]


def test_write_manifest_keeps_reasons_of_unchanged_verdicts(tmp_path):
    path = tmp_path / "m.txt"
    old = {("x.bats", "t1"): conf.Line("fail", "x.bats", "t1", "not implemented: y")}
    conf.write_manifest(str(path), {("x.bats", "t1"): conf.Result("fail"), ("x.bats", "t2"): conf.Result("pass"),
                                    ("x.bats", "t3"): conf.Result("skip")}, old, "# header\n")
    assert path.read_text() == ("# header\nfail x.bats t1 # not implemented: y\npass x.bats t2\n"
                                "skip x.bats t3 # REASON?\n")


def test_the_checked_in_manifests_give_every_non_pass_a_reason():
    for path in conf.MANIFESTS.values():
        lines = conf.parse_manifest(path)
        assert lines, path
        assert not [ln for ln in lines.values() if ln.reason == "REASON?"], path


@pytest.mark.privileged
@pytest.mark.slow
def test_a_fast_subset_of_both_suites_is_no_worse_than_the_manifest(tmp_path):
    for tool in ("go", "bats", "jq", "gawk", "script", "unshare"):
        assert shutil.which(tool), f"{tool} is missing: ./scripts/setup.sh installs it"
    build = os.environ.get("CONFORMANCE_DIR", conf.DEFAULT_BUILD)
    p = subprocess.run([os.path.join(ROOT, "conformance", "build.sh"), build], capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    only = [a for f in RT_SUBSET + BATS_SUBSET for a in ("--only", f)]
    p = subprocess.run([sys.executable, os.path.join(ROOT, "conformance", "run.py"), "--build", build,
                        "--runtime", f"capsize-runc={CAPSIZE_RUNC}", *only], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "no test worse than the manifest" in p.stdout
    assert f"{len(RT_SUBSET)} files" in p.stdout and f"{len(BATS_SUBSET)} files" in p.stdout
