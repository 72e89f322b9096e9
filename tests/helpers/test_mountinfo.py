"""runtime.mountinfo: proc(5) mountinfo lines, every octal escape, bad lines (no root needed)."""

import os

import pytest

from runtime import mountinfo

LINE = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue"


def test_parse_the_proc5_example_line():
    (m,) = mountinfo.parse(LINE + "\n")
    assert (m.mount_id, m.parent_id, m.device, m.root, m.mount_point) == (36, 35, "98:0", "/mnt1", "/mnt2")
    assert (m.options, m.optional, m.fstype, m.source, m.super_options) == \
        ("rw,noatime", ("master:1", "shared:7"), "ext3", "/dev/root", "rw,errors=continue")


def test_no_optional_fields_and_an_empty_super_options_field():
    (m,) = mountinfo.parse("25 1 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs")
    assert m.optional == () and m.fstype == "tmpfs" and m.super_options == ""


@pytest.mark.parametrize("escaped, plain", [
    ("/mnt/with\\040space", "/mnt/with space"),
    ("/mnt/tab\\011here", "/mnt/tab\there"),
    ("/mnt/new\\012line", "/mnt/new\nline"),
    ("/mnt/back\\134slash", "/mnt/back\\slash"),
    ("/mnt/\\134040", "/mnt/\\040"),  # an escaped backslash before digits stays a backslash
    ("/mnt/all\\040\\011\\012\\134", "/mnt/all \t\n\\"),
    ("/mnt/not\\9escape", "/mnt/not\\9escape"),  # no octal digits: kept as is
    ("/mnt/short\\04", "/mnt/short\\04"),  # too short at the end: kept
    ("/plain", "/plain"),
])
def test_unescape(escaped, plain):
    assert mountinfo.unescape(escaped) == plain


def test_path_fields_are_unescaped_in_parse():
    (m,) = mountinfo.parse("40 25 0:30 /a\\040b /mnt/x\\011y rw - overlay my\\040src rw,lowerdir=/l")
    assert (m.root, m.mount_point, m.source) == ("/a b", "/mnt/x\ty", "my src")


def test_kernel_escaped_mount_point_round_trips(tmp_path):
    """The kernel's own escaping of a real mount point with a space, tab, newline and backslash
    (``mangle`` in fs/proc_namespace.c), read through /proc/self/mountinfo."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    from runtime.host import HOST, MNT_DETACH
    target = tmp_path / "we ird\tna\nme\\x"
    target.mkdir()
    HOST.mount("tmpfs", str(target), "tmpfs", 0, "size=64k")
    try:
        assert str(target) in mountinfo.points_under(str(tmp_path))
        assert mountinfo.is_mount_point(str(target))
        raw = open(mountinfo.SELF).read()
        assert "we\\040ird\\011na\\012me\\134x" in raw
    finally:
        HOST.umount(str(target), MNT_DETACH)
    assert not mountinfo.is_mount_point(str(target))


@pytest.mark.parametrize("bad", ["garbage", "36 35 98:0 / /mnt rw shared:1 ext3 /dev/root rw",  # no "-"
                                 "x 35 98:0 / /mnt rw - ext3 /dev/root rw",  # mount id not a number
                                 "36 35 98:0 / /mnt rw - ext3"])  # too few fields after "-"
def test_bad_lines_raise_value_error_naming_the_line(bad):
    with pytest.raises(ValueError, match="not a mountinfo line") as e:
        mountinfo.parse("25 1 0:22 / / rw - ext4 /dev/sda1 rw\n" + bad + "\n")
    assert repr(bad) in str(e.value)


def test_points_under_and_is_mount_point_on_given_mounts():
    mounts = mountinfo.parse("1 0 0:1 / / rw - ext4 /dev/sda rw\n"
                             "2 1 0:2 / /run rw - tmpfs tmpfs rw\n"
                             "3 2 0:3 / /run/a rw - tmpfs tmpfs rw\n"
                             "4 2 0:4 / /running rw - tmpfs tmpfs rw\n"
                             "5 2 0:5 / /run/a rw - tmpfs tmpfs rw\n")
    assert mountinfo.points_under("/run", mounts) == ["/run", "/run/a", "/run/a"]
    assert mountinfo.points_under("/run/", mounts) == ["/run", "/run/a", "/run/a"]
    assert mountinfo.points_under("/", mounts) == ["/", "/run", "/run/a", "/running", "/run/a"]
    assert mountinfo.is_mount_point("/running", mounts) and not mountinfo.is_mount_point("/run/b", mounts)


def test_read_this_process_mountinfo():
    mounts = mountinfo.read()
    assert any(m.mount_point == "/" for m in mounts) and all(isinstance(m.mount_id, int) for m in mounts)
    assert mountinfo.is_mount_point("/proc")
