#!/bin/bash
# The full VM run of capsize's CI resilience checks -- one command, as root, on a Debian 12 host
# without systemd and without usable KVM:
#
#   vagrant/ci.sh [--machines "cgv2 cgv1"] [--rebuild-box] [--mode full|systemd]
#                 [--engines "docker-systemd capsize-systemd"] [--private-engines "capsize docker"]
#                 [--shards N]
#
# --mode full (the default; CAPSIZE_VM_MODE): in each VM the systemd scenarios on the engines under
# systemd (--engines, CAPSIZE_VM_ENGINES), the whole scenario library on the private engines
# (--private-engines, CAPSIZE_VM_PRIVATE_ENGINES) in --shards shards side by side (default: the
# VM's vCPUs, CAPSIZE_VM_CPUS), and the test suite's privileged cgroup tests; --mode systemd: only
# the systemd scenarios and checks (the quick run, ~17 min).
# 1. installs the VM tools from apt (install-vm-tools.sh), takes a snapshot of the tree (what the
#    wheels are built from and what the VMs get: one consistent tree even while people edit) and
#    builds the wheels from it (build-wheels.sh);
# 2. builds the box offline, or reuses the cached one (build-box.sh; $CAPSIZE_VM_CACHE,
#    default /var/cache/capsize/vagrant) and adds it to a Vagrant home inside that cache;
# 3. creates a network namespace and starts virtlogd and libvirtd in it (no systemd on the host):
#    libvirt's management network, its bridge, dnsmasq and the VMs' NICs exist only there, and
#    vagrant runs there too -- nothing appears in the host's namespace, nothing leaves the machine;
# 4. for each machine, one at a time: `vagrant up` (qemu, TCG), run-checks.sh inside over ssh,
#    the results copied back to reports/vagrant/<run>/<machine>/, `vagrant destroy`;
# 5. renders reports/vagrant/<run>/comparison.md (host vs VMs, cgroup v1 vs v2, capsize vs Docker:
#    which scenario or cgroup test differs between the VMs, and the failed checks that say why);
# 6. always, even on failure or Ctrl-C: destroys the VMs, removes libvirt's network and pool,
#    stops libvirtd and virtlogd, deletes the namespace, and checks that nothing is left.
# Exits 0 only if every VM came up, no check failed, and the clean-up left nothing behind.
# Expected duration on 2 cores under TCG: --mode systemd about 17 min with a cached box (+2 min to
# build it); --mode full: see vagrant/README.md (the library's estimate, per VM).
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TREE=$(cd "$HERE/.." && pwd)
CACHE=${CAPSIZE_VM_CACHE:-/var/cache/capsize/vagrant}
BOX=${CAPSIZE_BOX:-capsize-debian12}
MACHINES="cgv2 cgv1"
ENGINES=${CAPSIZE_VM_ENGINES:-docker-systemd capsize-systemd}   # harness engines under systemd
PRIVATE_ENGINES=${CAPSIZE_VM_PRIVATE_ENGINES:-capsize docker}     # the library's engines (full mode)
MODE=${CAPSIZE_VM_MODE:-full}
SHARDS=${CAPSIZE_VM_SHARDS:-${CAPSIZE_VM_CPUS:-2}}
REBUILD=""
while [ $# -gt 0 ]; do
    case $1 in
        --machines) MACHINES=$2; shift 2 ;;
        --rebuild-box) REBUILD=--force; shift ;;
        --engines) ENGINES=$2; shift 2 ;;
        --private-engines) PRIVATE_ENGINES=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        --shards) SHARDS=$2; shift 2 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "ci: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $MODE in
    full) CHECK_ARGS="--library --shards $SHARDS --cgroup-tests" ;;
    systemd) CHECK_ARGS="" ;;
    *) echo "ci: --mode full|systemd, not $MODE" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "ci: must run as root" >&2; exit 1; }

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$TREE/reports/vagrant/$RUN_ID
NS=capsize-vm-$$
POOL=capsize
NET=capsize-vagrant
STATE=""
SNAP=""
T0=$(date +%s)
mkdir -p "$OUT"
TIMES=$OUT/timings.tsv
printf 'step\tseconds\n' >"$TIMES"

say() { echo "ci: [$(( $(date +%s) - T0 ))s] $*"; }
timed() {  # timed NAME CMD...: run, record the duration, return the command's status
    local name=$1 t rc
    shift
    t=$(date +%s)
    "$@"
    rc=$?
    printf '%s\t%s\n' "$name" "$(( $(date +%s) - t ))" >>"$TIMES"
    return $rc
}

export CAPSIZE_VM_CACHE=$CACHE CAPSIZE_BOX=$BOX CAPSIZE_LIBVIRT_POOL=$POOL
export VAGRANT_HOME=$CACHE/vagrant.d
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_DEFAULT_PROVIDER=libvirt
export LIBVIRT_DEFAULT_URI=qemu:///system

in_ns() { ip netns exec "$NS" "$@"; }
tidy_log() { sed -i -E 's/\x1b\[K//g; s/(Progress: [0-9]+%\r?)+//g' "$1"; }   # vagrant's upload progress
vg() { (cd "$SNAP/vagrant" && in_ns vagrant "$@"); }   # the snapshot's Vagrantfile and scripts

# ------------------------------------------------------------------------------ clean-up (always)
started_ns=0
had_run_libvirt=0
[ ! -d /run/libvirt ] || had_run_libvirt=1
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    local rc=$? left=""
    trap - EXIT INT TERM
    say "clean-up"
    if [ "$started_ns" = 1 ]; then
        if [ -n "$STATE" ] && [ -d "$STATE/dot" ]; then
            for m in $MACHINES; do
                vg destroy -f "$m" >>"$OUT/cleanup.log" 2>&1
            done
        fi
        if virsh -q version >/dev/null 2>&1; then
            for d in $(virsh list --all --name 2>/dev/null | grep '^vagrant_'); do
                virsh destroy "$d" >>"$OUT/cleanup.log" 2>&1
                virsh undefine --remove-all-storage "$d" >>"$OUT/cleanup.log" 2>&1
            done
            if virsh net-info "$NET" >/dev/null 2>&1; then
                virsh net-destroy "$NET" >>"$OUT/cleanup.log" 2>&1
                virsh net-undefine "$NET" >>"$OUT/cleanup.log" 2>&1
            fi
            if virsh pool-info "$POOL" >/dev/null 2>&1; then   # the box volume stays in the cache
                virsh pool-destroy "$POOL" >>"$OUT/cleanup.log" 2>&1
                virsh pool-undefine "$POOL" >>"$OUT/cleanup.log" 2>&1
            fi
        fi
        for d in libvirtd virtlogd; do
            [ -s "$STATE/$d.pid" ] || continue
            pid=$(cat "$STATE/$d.pid")
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; left="$left $d"; fi
        done
        ip netns pids "$NS" 2>/dev/null | grep -q . && left="$left processes-in-netns($(ip netns pids "$NS" | tr '\n' ' '))"
        ip netns del "$NS" 2>/dev/null
        for m in $MACHINES; do   # libvirt's per-domain qemu log goes with the run's reports
            [ ! -f "/var/log/libvirt/qemu/vagrant_$m.log" ] || mv "/var/log/libvirt/qemu/vagrant_$m.log" "$OUT/$m/qemu.log" 2>/dev/null
        done
        [ "$had_run_libvirt" = 1 ] || rm -rf /run/libvirt
    fi
    [ -z "$STATE" ] || rm -rf "$STATE"
    [ -z "$SNAP" ] || rm -rf "$SNAP"
    ip netns list 2>/dev/null | grep -q "^$NS\b" && left="$left netns"
    pgrep -f "qemu-system.*guest=vagrant_" >/dev/null && left="$left qemu"
    ip -br link 2>/dev/null | grep -qE '^(virbr|vnet)' && left="$left host-bridge"
    if [ -n "$left" ]; then
        say "clean-up LEFT:$left"
        [ "$rc" != 0 ] || rc=3
    else
        say "clean-up: no VM, daemon, network or namespace left"
    fi
    say "exit $rc; reports in ${OUT#"$TREE"/}"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------ 1-2: tools, wheels, box
timed install-vm-tools "$HERE/install-vm-tools.sh" || exit 1
SNAP=$(mktemp -d "${CAPSIZE_VM_SNAPSHOT_DIR:-/var/tmp}/capsize-tree.XXXXXX")
rsync -a --exclude .git/ --exclude .venv/ --exclude reports/ --exclude vagrant/.wheels/ \
    --exclude vagrant/.vagrant/ --exclude __pycache__/ --exclude .pytest_cache/ "$TREE/" "$SNAP/" || exit 1
{
    echo "tree: $TREE"
    echo "commit: $(git -C "$TREE" rev-parse HEAD 2>/dev/null)"
    echo "uncommitted changes (git status --short):"
    git -C "$TREE" status --short 2>/dev/null
} >"$OUT/tree.txt"
export CAPSIZE_TREE=$SNAP
[ ! -x "$TREE/.venv/bin/pip" ] || export CAPSIZE_PIP=$TREE/.venv/bin/pip
export CAPSIZE_WHEEL_CACHE=${CAPSIZE_WHEEL_CACHE:-$CACHE/wheels}   # the dependencies' wheels, kept
timed build-wheels "$SNAP/vagrant/build-wheels.sh" >"$OUT/build-wheels.log" 2>&1 || { say "build-wheels failed"; exit 1; }
say "box: build or reuse"
timed build-box "$HERE/build-box.sh" --no-add $REBUILD >"$OUT/build-box.log" 2>&1
brc=$?
grep -v '^du:' "$OUT/build-box.log"
[ "$brc" = 0 ] || exit 1
BOXFILE=$CACHE/$BOX.box
added=$VAGRANT_HOME/boxes/$BOX
readded=0
if [ ! -d "$added" ] || [ "$BOXFILE" -nt "$added" ]; then
    say "vagrant box add $BOX"
    timed box-add vagrant box add --force --name "$BOX" --provider libvirt "$BOXFILE" >"$OUT/box-add.log" 2>&1 \
        || { say "vagrant box add failed: $(tail -3 "$OUT/box-add.log")"; exit 1; }
    touch "$added"
    readded=1
fi

# ------------------------------------------------------------------------------ 3: netns + libvirt
if pgrep -x libvirtd >/dev/null || pgrep -x virtlogd >/dev/null; then
    say "a libvirtd/virtlogd not started by this script is running: refusing to touch it"
    exit 1
fi
STATE=$(mktemp -d /run/capsize-vm.XXXXXX)
ip netns add "$NS" || exit 1
started_ns=1
ip -n "$NS" link set lo up
export VAGRANT_DOTFILE_PATH=$STATE/dot
say "netns $NS: starting virtlogd and libvirtd in it"
in_ns virtlogd --daemon --pid-file "$STATE/virtlogd.pid" || exit 1
in_ns libvirtd --daemon --pid-file "$STATE/libvirtd.pid" || exit 1
for _ in $(seq 100); do virsh -q version >/dev/null 2>&1 && break; sleep 0.2; done
virsh -q version >/dev/null 2>&1 || { say "libvirtd did not answer"; exit 1; }
mkdir -p "$CACHE/pool"
if ! virsh -q pool-define-as "$POOL" dir --target "$CACHE/pool" >/dev/null || ! virsh -q pool-start "$POOL" >/dev/null; then
    say "libvirt storage pool $POOL could not be made"
    exit 1
fi
if [ "$readded" = 1 ]; then   # vagrant-libvirt keys the uploaded box volume by name only
    for v in $(virsh vol-list "$POOL" 2>/dev/null | awk -v b="${BOX}_vagrant_box_image" 'index($1, b) == 1 {print $1}'); do
        virsh -q vol-delete --pool "$POOL" "$v" >/dev/null
    done
fi

# ------------------------------------------------------------------------------ host column
mkdir -p "$OUT/host"
"$SNAP/vagrant/run-checks.sh" --env-only --name host --out "$OUT/host" >"$OUT/host/run-checks.out" 2>&1 \
    || true   # on the host (PID 1 is not systemd) only the environment is recorded

# ------------------------------------------------------------------------------ 4: the VMs, one at a time
failed=0
for m in $MACHINES; do
    case $m in cgv1) cg=v1 ;; *) cg=v2 ;; esac
    mo=$OUT/$m
    mkdir -p "$mo"
    export CAPSIZE_VM_CONSOLE_DIR=$mo
    say "$m: vagrant up (cgroup $cg; log ${mo#"$TREE"/}/vagrant-up.log)"
    timed "$m.up" vg up "$m" --provider libvirt >"$mo/vagrant-up.log" 2>&1
    uprc=$?
    tidy_log "$mo/vagrant-up.log"
    if [ "$uprc" != 0 ]; then
        say "$m: vagrant up FAILED: $(tail -5 "$mo/vagrant-up.log")"
        failed=1
    else
        say "$m: run-checks.sh"
        timed "$m.checks" vg ssh "$m" -c \
            "sudo /capsize/vagrant/run-checks.sh --out /var/tmp/capsize-checks --cgroup $cg --name $m --tree /capsize --engines '$ENGINES' --private-engines '$PRIVATE_ENGINES' $CHECK_ARGS" \
            >"$mo/run-checks.out" 2>&1
        crc=$?
        sed 's/^/    /' "$mo/run-checks.out" | grep 'run-checks:'
        vg ssh "$m" -c "sudo tar -C /var/tmp/capsize-checks -cf - ." 2>>"$mo/copy.log" | tar -C "$mo" -xf - \
            || { say "$m: copying results back failed"; failed=1; }
        [ "$crc" = 0 ] || { say "$m: checks FAILED (rc $crc)"; failed=1; }
    fi
    say "$m: vagrant destroy"
    timed "$m.destroy" vg destroy -f "$m" >"$mo/vagrant-destroy.log" 2>&1 || failed=1
done

# ------------------------------------------------------------------------------ 5: comparison
python3 "$SNAP/vagrant/compare.py" "$OUT" >"$OUT/comparison.md" || failed=1
cat "$OUT/comparison.md"
[ "$failed" = 0 ] || exit 1
exit 0
