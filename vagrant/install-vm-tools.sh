#!/bin/sh
# Install, from Debian's apt archive, what the full VM run (vagrant/ci.sh) needs on a Debian 12
# host: vagrant + vagrant-libvirt, libvirt's daemons and qemu (software emulation), dnsmasq and
# iptables for libvirt's network (inside ci.sh's network namespace), and the box builder's tools.
# Not part of scripts/setup.sh: the normal test suite needs only vagrant, vagrant-libvirt and
# ShellCheck, which setup.sh installs. Idempotent; as root.
set -eu
PACKAGES="vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils \
dnsmasq-base iptables iproute2 debootstrap extlinux syslinux-common e2fsprogs rsync openssh-client"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "install-vm-tools: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# Without systemd as PID 1 the packages' services cannot start; keep their postinst scripts from
# trying (libvirtd and virtlogd are started by ci.sh, inside its network namespace, when needed).
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086 # word splitting of the package list is intended
apt-get install -y -q --no-install-recommends $missing >/dev/null
