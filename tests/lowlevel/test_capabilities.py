"""The CAP_* table and the OCI capability sets, applied to real processes (in forked children)."""

from __future__ import annotations

import os
import re

import pytest

from tests.lowlevel.forkrun import run_in_child, status_fields
from runtime.errors import InvalidArgument
from runtime.host import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE,
                          PR_CAPBSET_DROP, RecordingHost)
from runtime.lowlevel import capabilities as caps
from runtime.lowlevel import process

DEFAULT = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]  # runc spec's default set
DEFAULT_MASK = (1 << 29) | (1 << 5) | (1 << 10)


# -- the table ------------------------------------------------------------------------------------

def test_table_matches_the_kernel_header():
    header = "/usr/include/linux/capability.h"
    if not os.path.exists(header):
        pytest.skip("linux-libc-dev's capability.h is not installed")
    with open(header) as f:
        defined = {m[1]: int(m[2]) for m in re.finditer(r"#define\s+(CAP_[A-Z_]+)\s+(\d+)\s*$", f.read(), re.M)}
    assert defined == caps.CAPABILITIES
    assert caps.CAP_LAST_KNOWN == 40 == caps.number("CAP_CHECKPOINT_RESTORE")


def test_names_and_masks_round_trip():
    assert caps.number("CAP_SYS_ADMIN") == 21
    assert caps.name(21) == "CAP_SYS_ADMIN"
    assert caps.name(63) == "63"
    assert caps.to_mask(DEFAULT, last=40) == DEFAULT_MASK
    assert caps.to_names(DEFAULT_MASK) == ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    assert caps.to_mask([], last=40) == 0 and caps.to_mask(None) == 0


def test_unknown_name_is_rejected_with_the_field_named():
    with pytest.raises(InvalidArgument) as err:
        caps.parse({"bounding": ["CAP_KILL", "CAP_FOO"]})
    assert err.value.fields["field"] == "process.capabilities.bounding[1]"
    assert str(err.value) == "process.capabilities.bounding[1]: unknown capability 'CAP_FOO'"
    with pytest.raises(InvalidArgument, match=r"process.capabilities.effective: must be a list"):
        caps.parse({"effective": "CAP_KILL"})
    with pytest.raises(InvalidArgument, match="unknown capability 'cap_kill'"):
        caps.to_mask(["cap_kill"])  # names are case-sensitive, as in runc


def test_capabilities_beyond_the_kernels_last_cap_are_ignored():
    sets = caps.parse({"bounding": ["CAP_KILL", "CAP_PERFMON", "CAP_BPF"]}, last=37)
    assert sets["bounding"] == 1 << 5
    assert caps.last_cap() == int(open("/proc/sys/kernel/cap_last_cap").read())


def test_parse_gives_all_five_sets_and_none_means_empty():
    assert caps.parse(None) == {s: 0 for s in caps.SETS}
    sets = caps.parse({"bounding": DEFAULT, "ambient": ["CAP_KILL"], "futureSet": ["CAP_X"]})
    assert sets == {"bounding": DEFAULT_MASK, "effective": 0, "permitted": 0, "inheritable": 0,
                    "ambient": 1 << 5}


def test_read_sets_reads_proc_status():
    fields = status_fields()
    sets = caps.read_sets()
    for oci, field in caps.STATUS_FIELDS.items():
        assert sets[oci] == int(fields[field], 16)


# -- applied to a real process --------------------------------------------------------------------

def _apply_and_read(config):
    process.apply_capabilities(config)
    return caps.read_sets()


@pytest.mark.privileged
def test_apply_sets_every_set_on_the_real_kernel():
    config = {s: DEFAULT for s in caps.SETS}
    out = run_in_child(_apply_and_read, config)
    assert out.error is None, out
    assert out.value == {s: DEFAULT_MASK for s in caps.SETS}


@pytest.mark.privileged
def test_apply_none_drops_everything():
    out = run_in_child(_apply_and_read, None)
    assert out.error is None, out
    assert out.value == {s: 0 for s in caps.SETS}


@pytest.mark.privileged
def test_ambient_needs_inheritable_and_is_skipped_without_it_as_runc_does():
    # runc's default config has no inheritable set: runc 1.1 ends up with an empty CapAmb.
    config = {"bounding": DEFAULT, "effective": DEFAULT, "permitted": DEFAULT, "ambient": DEFAULT}
    out = run_in_child(_apply_and_read, config)
    assert out.error is None, out
    assert out.value["ambient"] == 0 and out.value["inheritable"] == 0
    assert out.value["effective"] == DEFAULT_MASK


def _apply_bad_then_read(config):
    try:
        process.apply_capabilities(config)
    except InvalidArgument as e:
        return {"error": str(e), "sets": caps.read_sets()}
    return None


def test_bad_sets_change_nothing():
    before = caps.read_sets()
    out = run_in_child(_apply_bad_then_read, {"bounding": DEFAULT, "effective": ["CAP_KILL"], "permitted": []})
    assert out.value["error"] == "process.capabilities.effective: CAP_KILL not in the permitted set"
    assert out.value["sets"]["bounding"] == before["bounding"]  # checked before the bounding drop
    out = run_in_child(_apply_bad_then_read, {"bounding": ["CAP_NOPE"]})
    assert "process.capabilities.bounding[0]" in out.value["error"]
    assert out.value["sets"] == before


def test_recording_host_shows_the_prctl_capset_sequence():
    host = RecordingHost()
    config = {"bounding": DEFAULT, "effective": DEFAULT, "permitted": DEFAULT,
              "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"], "ambient": DEFAULT}
    process.apply_capabilities(config, host=host)
    last = caps.last_cap()
    drops = [("prctl", (PR_CAPBSET_DROP, n)) for n in range(last + 1) if n not in (5, 10, 29)]
    inh = (1 << 5) | (1 << 10)
    assert host.calls == drops + [
        ("capset", (DEFAULT_MASK, DEFAULT_MASK, inh)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 5)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 10)),
        # CAP_AUDIT_WRITE is not inheritable: not raised
    ]


def test_unknown_name_makes_no_call():
    host = RecordingHost()
    with pytest.raises(InvalidArgument, match=r"process.capabilities.ambient\[0\]"):
        process.apply_capabilities({"bounding": DEFAULT, "ambient": ["CAP_NOT_A_CAP"]}, host=host)
    assert host.calls == []
