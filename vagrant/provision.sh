#!/bin/sh
# Provision a Debian 12 VM (systemd as PID 1) for capsize's resilience checks. Plain script, run as
# root inside the VM; it does not depend on Vagrant (Lima, plain qemu or a test box work the same).
#
#   provision.sh --cgroup v1|v2 --cmdline-only     only set the kernel command line for that cgroup
#                                                  version (exit 0; a reboot applies it)
#   provision.sh --cgroup v1|v2 [--tree DIR] [--wheels DIR]
#                                                  full provisioning (exit 100: reboot needed first)
#
# Full provisioning, offline (the VM reaches no registry):
#   - checks the running cgroup version is the one asked for;
#   - creates /opt/capsize (a venv from Debian's python3) and installs capsize from the wheels the
#     host built (DIR/vagrant/.wheels by default: `pip install --no-index --find-links`);
#   - enables and starts Debian's containerd.service, docker.socket and docker.service, and imports
#     the lab's busybox image (made by `capsize image rootfs`, offline) into Docker;
#   - installs capsize's units from DIR/vagrant/units (capsized.socket, capsized.service,
#     capsize-runtimed.service) and enables those whose command exists in this capsize.
# Re-running it is harmless.
set -eu

cgroup=""
tree=/capsize
wheels=""
cmdline_only=0
while [ $# -gt 0 ]; do
    case $1 in
        --cgroup) cgroup=$2; shift 2 ;;
        --tree) tree=$2; shift 2 ;;
        --wheels) wheels=$2; shift 2 ;;
        --cmdline-only) cmdline_only=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "provision: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $cgroup in v1|v2) ;; *) echo "provision: --cgroup v1|v2 is required" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "provision: must run as root" >&2; exit 1; }
[ -n "$wheels" ] || wheels=$tree/vagrant/.wheels

log() { echo "provision: $*"; }

V1_ARG=systemd.unified_cgroup_hierarchy=0

# --- kernel command line ------------------------------------------------------------------------
set_cmdline() {
    want=$1
    if [ -f /boot/extlinux/extlinux.conf ]; then
        conf=/boot/extlinux/extlinux.conf
        if [ "$want" = v1 ]; then
            grep -q "$V1_ARG" "$conf" || sed -i "s/^\([[:space:]]*APPEND .*\)$/\1 $V1_ARG/" "$conf"
        else
            sed -i "s/ $V1_ARG//" "$conf"
        fi
    elif [ -f /etc/default/grub ]; then
        conf=/etc/default/grub
        if [ "$want" = v1 ]; then
            grep -q "$V1_ARG" "$conf" || sed -i "s/^GRUB_CMDLINE_LINUX=\"\(.*\)\"/GRUB_CMDLINE_LINUX=\"\1 $V1_ARG\"/" "$conf"
        else
            sed -i "s/ $V1_ARG//" "$conf"
        fi
        update-grub >/dev/null 2>&1
    else
        echo "provision: no extlinux.conf or /etc/default/grub: cannot set the kernel command line" >&2
        return 1
    fi
    log "boot command line for cgroup $want set in $conf"
}

running_cgroup() {
    if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then echo v2; else echo v1; fi
}

set_cmdline "$cgroup"
if [ "$cmdline_only" = 1 ]; then
    exit 0
fi
now=$(running_cgroup)
if [ "$now" != "$cgroup" ]; then
    log "running with cgroup $now, $cgroup asked for: reboot, then run again"
    exit 100
fi
log "cgroup $now ($(stat -fc %T /sys/fs/cgroup) on /sys/fs/cgroup), systemd $(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')"

# --- capsize from the host-built wheels -----------------------------------------------------------
[ -d "$tree/runtime" ] || { echo "provision: $tree is not a capsize tree" >&2; exit 1; }
ls "$wheels"/capsize-*.whl >/dev/null 2>&1 || { echo "provision: no capsize wheel in $wheels (vagrant/build-wheels.sh on the host)" >&2; exit 1; }
if [ ! -x /opt/capsize/bin/python ]; then
    log "creating /opt/capsize"
    python3 -m venv /opt/capsize
fi
log "installing capsize from $wheels (no index)"
wheel=$(find "$wheels" -maxdepth 1 -name 'capsize-*.whl' | sort | tail -1)
/opt/capsize/bin/pip install -q --no-index --find-links "$wheels" "$wheel"
# pytest-timeout for the privileged cgroup tests (run-checks.sh --cgroup-tests), when built
if ls "$wheels"/pytest_timeout-*.whl >/dev/null 2>&1; then
    /opt/capsize/bin/pip install -q --no-index --find-links "$wheels" pytest-timeout
fi
# the version does not change between commits: always put this tree's code in place
/opt/capsize/bin/pip install -q --no-index --no-deps --force-reinstall "$wheel"
for cmd in capsize capsized capsize-runtimed capsize-shim capsize-runc; do
    ln -sf "/opt/capsize/bin/$cmd" "/usr/local/bin/$cmd"
done
/opt/capsize/bin/python -c 'import systemd.journal, systemd.daemon, docker, psutil, yaml' \
    || { echo "provision: capsize's dependencies do not import" >&2; exit 1; }

# --- Debian's Docker under systemd ----------------------------------------------------------------
log "enabling containerd.service, docker.socket, docker.service"
systemctl enable --now containerd.service docker.socket >/dev/null 2>&1
systemctl enable --now docker.service >/dev/null 2>&1
if ! docker image inspect busybox:latest >/dev/null 2>&1; then
    log "importing the lab's busybox image (capsize image rootfs | docker import)"
    tar=$(mktemp /var/tmp/capsize-busybox.XXXXXX.tar)
    /opt/capsize/bin/capsize image rootfs --out "$tar" 2>/dev/null
    docker import "$tar" busybox:latest >/dev/null
    rm -f "$tar"
fi

# --- capsize's units ------------------------------------------------------------------------------
has_module() { /opt/capsize/bin/python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }
install -m 644 "$tree"/vagrant/units/capsized.socket "$tree"/vagrant/units/capsized.service \
    "$tree"/vagrant/units/capsize-runtimed.service /etc/systemd/system/
systemctl daemon-reload
if has_module runtime.highlevel.cli; then
    systemctl enable capsize-runtimed.service >/dev/null 2>&1
    if systemctl start capsize-runtimed.service; then
        log "capsize-runtimed.service enabled and started"
    else   # run-checks.sh reports it (capsize.runtimed); provisioning itself goes on
        log "capsize-runtimed.service enabled, but it did not start: $(journalctl -u capsize-runtimed.service -n 1 -o cat --no-pager)"
    fi
else
    log "capsize-runtimed not in this capsize yet: unit installed, not enabled"
fi
if has_module runtime.daemon.cli; then
    systemctl enable capsized.socket >/dev/null 2>&1
    systemctl start capsized.socket
    log "capsized.socket enabled and listening"
else
    log "capsized not in this capsize yet: capsized.socket/.service installed, not enabled"
fi
log "done"
