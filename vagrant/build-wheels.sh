#!/bin/sh
# Build the wheels the VMs install capsize from, on the host (the VMs reach no package index):
# capsize itself and every dependency (systemd-python is built from its sdist here, against the
# same Debian 12 libsystemd the guests have). Output: vagrant/.wheels/ (git-ignored), synced into
# the VM with the tree, plus pytest-timeout for the privileged cgroup tests (run-checks.sh
# --cgroup-tests). Uses $CAPSIZE_PIP, the project's .venv (scripts/setup.sh makes it) or
# python3 -m pip. With $CAPSIZE_WHEEL_CACHE (ci.sh: $CAPSIZE_VM_CACHE/wheels) the dependencies'
# wheels are taken from that directory when they are there (systemd-python is not built again)
# and the new ones kept in it; capsize's own wheel is always built from the tree.
set -eu
TREE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$TREE/vagrant/.wheels}
if [ -n "${CAPSIZE_PIP:-}" ]; then PIP=$CAPSIZE_PIP
elif [ -x "$TREE/.venv/bin/pip" ]; then PIP="$TREE/.venv/bin/pip"
else PIP="python3 -m pip"; fi
mkdir -p "$OUT"
rm -f "$OUT"/capsize-*.whl
CACHED=""
if [ -n "${CAPSIZE_WHEEL_CACHE:-}" ]; then
    mkdir -p "$CAPSIZE_WHEEL_CACHE"
    CACHED="--find-links $CAPSIZE_WHEEL_CACHE"
fi
# shellcheck disable=SC2086 # PIP may be "python3 -m pip"; CACHED is two words or none
$PIP wheel -q $CACHED --wheel-dir "$OUT" "$TREE" pytest-timeout
if [ -n "${CAPSIZE_WHEEL_CACHE:-}" ]; then
    find "$OUT" -maxdepth 1 -name '*.whl' ! -name 'capsize-*.whl' -exec cp -n {} "$CAPSIZE_WHEEL_CACHE"/ \;
fi
n=$(find "$OUT" -name '*.whl' | wc -l)
echo "build-wheels: $n wheels in $OUT"
