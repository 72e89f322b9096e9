#!/bin/sh
# Build capsize's Debian 12 Vagrant box offline, from Debian's archive only, and `vagrant box add` it.
#
#   vagrant/build-box.sh [--force] [--no-add]
#
# Result (outside the repository, never committed):
#   $CAPSIZE_VM_CACHE/capsize-debian12.box        libvirt box (metadata.json + box.img, qcow2)
#   $CAPSIZE_VM_CACHE/ssh/capsize_vagrant_ed25519 the key the box's `vagrant` user accepts
# CAPSIZE_VM_CACHE defaults to /var/cache/capsize/vagrant; the box is reused unless --force.
#
# How: debootstrap (minbase) of bookworm from the apt mirror this machine is configured with into
# an ext4 file system that fills a raw disk image (no partition table: the loop driver here does
# not scan partitions, so the file system starts at sector 0 and extlinux's boot sector is the
# disk's first sector, which SeaBIOS boots); then, with a policy-rc.d in the chroot so that no
# package starts a daemon on the build host, apt installs the kernel, systemd, openssh-server,
# sudo, python3 + venv, docker.io, containerd, runc and busybox-static (and apparmor: Debian's
# kernel enables AppArmor, and dockerd then refuses to run containers without apparmor_parser).
# The image is converted to qcow2 and packed as a libvirt box. Needs root, debootstrap, extlinux,
# qemu-utils.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CAPSIZE_VM_CACHE:-/var/cache/capsize/vagrant}
BOX_NAME=${CAPSIZE_BOX_NAME:-capsize-debian12}
BOX=$CACHE/$BOX_NAME.box
KEY=$CACHE/ssh/capsize_vagrant_ed25519
DISK_GB=${CAPSIZE_BOX_DISK_GB:-12}
SUITE=bookworm
LABEL=capsize-root

force=0
add=1
for a in "$@"; do
    case $a in
        --force) force=1 ;;
        --no-add) add=0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "build-box: unknown argument $a" >&2; exit 2 ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "build-box: must run as root" >&2; exit 1; }
for t in debootstrap extlinux qemu-img mkfs.ext4 python3; do
    command -v "$t" >/dev/null || { echo "build-box: $t missing (run vagrant/install-vm-tools.sh)" >&2; exit 1; }
done

now() { date +%s; }
T0=$(now)
say() { echo "build-box: [$(( $(now) - T0 ))s] $*"; }

add_box() {
    [ "$add" = 1 ] || return 0
    command -v vagrant >/dev/null || { say "vagrant not installed: box not added"; return 0; }
    say "vagrant box add $BOX_NAME (VAGRANT_HOME=${VAGRANT_HOME:-~/.vagrant.d})"
    vagrant box add --force --name "$BOX_NAME" --provider libvirt "$BOX" >/dev/null
}

mkdir -p "$CACHE/ssh"
chmod 700 "$CACHE/ssh"
if [ ! -e "$KEY" ]; then
    ssh-keygen -q -t ed25519 -N '' -C capsize-vagrant -f "$KEY"
fi

# Bump BOX_REV whenever what goes into the image changes: a cached box of another revision is rebuilt.
BOX_REV=2
if [ -e "$BOX" ] && [ "$force" = 0 ] && [ "$(cat "$BOX.rev" 2>/dev/null)" = "$BOX_REV" ]; then
    say "reusing $BOX"
    add_box
    exit 0
fi

# The apt mirror (and the security archive) this machine already uses; CAPSIZE_MIRROR overrides.
mirrors=$(python3 - <<'EOF'
import glob, re
main = sec = None
def consider(uri, suites):
    global main, sec
    if "debian" not in uri:
        return
    for s in suites:
        if s == "bookworm" and main is None:
            main = uri
        if s == "bookworm-security" and sec is None:
            sec = uri
for f in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for para in re.split(r"\n\s*\n", open(f).read()):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", para, re.M))
        if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
            for uri in fields.get("URIs", "").split():
                consider(uri, fields.get("Suites", "").split())
for f in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(f).read().splitlines()
    except OSError:
        continue
    for line in lines:
        w = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(w) >= 3 and w[0] == "deb":
            consider(w[1], [w[2]])
print(main or "", sec or "")
EOF
)
MIRROR=${CAPSIZE_MIRROR:-${mirrors%% *}}
SECURITY=${mirrors#* }
[ -n "$MIRROR" ] || { echo "build-box: no Debian bookworm mirror found in /etc/apt/sources.list*" >&2; exit 1; }
say "mirror $MIRROR${SECURITY:+, security $SECURITY}"

WORK=$(mktemp -d "$CACHE/build.XXXXXX")
ROOT=$WORK/root
RAW=$WORK/disk.raw
mkdir "$ROOT"
cleanup() {
    rc=$?
    if mountpoint -q "$ROOT"; then
        umount -R "$ROOT" 2>/dev/null || umount -R -l "$ROOT"
    fi
    rm -rf "$WORK"
    [ "$rc" = 0 ] || echo "build-box: failed (rc $rc); nothing kept" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "disk image ${DISK_GB}G, ext4 (no 64bit/metadata_csum/orphan_file: extlinux 6.04 reads it)"
truncate -s "${DISK_GB}G" "$RAW"
mkfs.ext4 -q -L "$LABEL" -O ^64bit,^metadata_csum,^orphan_file "$RAW"
mount -o loop "$RAW" "$ROOT"

say "debootstrap --variant=minbase $SUITE"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }

# From here on apt runs inside the chroot: no package may start a service on the build host.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"
{
    echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    [ -z "$SECURITY" ] || echo "deb $SECURITY $SUITE-security main"
} >"$ROOT/etc/apt/sources.list"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount -t devpts devpts "$ROOT/dev/pts" -o newinstance,ptmxmode=0666
mount -t tmpfs tmpfs "$ROOT/run"

in_root() { LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$ROOT" "$@"; }

PKGS="linux-image-amd64 initramfs-tools systemd systemd-sysv udev dbus libpam-systemd \
openssh-server sudo python3 python3-venv docker.io containerd runc busybox-static \
iproute2 iptables procps psmisc kmod rsync less apparmor"
say "apt-get install (kernel, systemd, openssh-server, sudo, python3, docker.io, containerd, runc, ...)"
in_root apt-get update -q >"$WORK/apt.log" 2>&1 || { tail -20 "$WORK/apt.log" >&2; exit 1; }
# shellcheck disable=SC2086 # word splitting of the package list is intended
in_root apt-get install -y -q --no-install-recommends $PKGS >>"$WORK/apt.log" 2>&1 \
    || { tail -30 "$WORK/apt.log" >&2; exit 1; }
in_root apt-get clean

say "configuring the guest"
echo capsize-vm >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcapsize-vm\n' >"$ROOT/etc/hosts"
printf 'LABEL=%s\t/\text4\tdefaults,errors=remount-ro\t0\t1\n' "$LABEL" >"$ROOT/etc/fstab"
: >"$ROOT/etc/machine-id"            # systemd makes a fresh one at first boot
rm -f "$ROOT/var/lib/dbus/machine-id"
rm -f "$ROOT/etc/resolv.conf"; : >"$ROOT/etc/resolv.conf"   # offline guest: no resolver

# Network: DHCP on every ethernet interface (the provider's management network), by systemd-networkd.
cat >"$ROOT/etc/systemd/network/80-capsize-dhcp.network" <<'EOF'
[Match]
Name=en* eth*

[Network]
DHCP=yes
EOF
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
in_root systemctl enable ssh.service >/dev/null 2>&1

# Host keys are made per VM at first boot, not baked into the box.
rm -f "$ROOT"/etc/ssh/ssh_host_*
mkdir -p "$ROOT/etc/systemd/system/ssh.service.d"
cat >"$ROOT/etc/systemd/system/ssh.service.d/capsize-hostkeys.conf" <<'EOF'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
EOF
printf 'UseDNS no\n' >"$ROOT/etc/ssh/sshd_config.d/capsize.conf"

# The vagrant user: passwordless sudo, the generated key, member of docker.
in_root useradd -m -s /bin/bash -G sudo,docker vagrant
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n' >"$ROOT/etc/sudoers.d/vagrant"
chmod 440 "$ROOT/etc/sudoers.d/vagrant"
install -d -m 700 -o 1000 -g 1000 "$ROOT/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "$KEY.pub" "$ROOT/home/vagrant/.ssh/authorized_keys"
chroot "$ROOT" chown -R vagrant:vagrant /home/vagrant/.ssh

# Boot: extlinux in the file system's boot sector (sector 0 of the disk), serial + VGA console.
# provision.sh --cgroup v1 appends systemd.unified_cgroup_hierarchy=0 to the APPEND line.
kernel=$(find "$ROOT/boot" -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sort -V | tail -1)
initrd=initrd.img-${kernel#vmlinuz-}
[ -e "$ROOT/boot/$initrd" ] || { echo "build-box: no $initrd" >&2; exit 1; }
mkdir -p "$ROOT/boot/extlinux"
cat >"$ROOT/boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT debian
TIMEOUT 1
PROMPT 0
LABEL debian
  LINUX /boot/$kernel
  INITRD /boot/$initrd
  APPEND root=LABEL=$LABEL ro console=tty0 console=ttyS0,115200n8 net.ifnames=0
EOF
extlinux --install "$ROOT/boot/extlinux" >/dev/null 2>&1
rm -f "$ROOT/usr/sbin/policy-rc.d"
du -shx "$ROOT" | sed 's/^/build-box: root file system /'

umount -R "$ROOT/run" "$ROOT/dev/pts" "$ROOT/dev" "$ROOT/sys" "$ROOT/proc"
fstrim "$ROOT" 2>/dev/null || true     # freed blocks become holes: a smaller qcow2
umount "$ROOT"
say "qcow2 + box"
mkdir "$WORK/box"
qemu-img convert -O qcow2 "$RAW" "$WORK/box/box.img"
rm -f "$RAW"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$DISK_GB" >"$WORK/box/metadata.json"
cp "$HERE/box.Vagrantfile" "$WORK/box/Vagrantfile"
tar -C "$WORK/box" -cf "$BOX.tmp" metadata.json Vagrantfile box.img
mv "$BOX.tmp" "$BOX"
echo "$BOX_REV" >"$BOX.rev"
say "built $BOX ($(du -h "$BOX" | cut -f1))"
add_box
say "done"
