#!/bin/sh
# Build the wheels the VMs install capsize from, on the host (the VMs reach no package index):
# capsize itself and every dependency (systemd-python is built from its sdist here, against the
# same Debian 12 libsystemd the guests have). Output: vagrant/.wheels/ (git-ignored), synced into
# the VM with the tree. Uses $CAPSIZE_PIP, the project's .venv (scripts/setup.sh makes it) or
# python3 -m pip.
set -eu
TREE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$TREE/vagrant/.wheels}
if [ -n "${CAPSIZE_PIP:-}" ]; then PIP=$CAPSIZE_PIP
elif [ -x "$TREE/.venv/bin/pip" ]; then PIP="$TREE/.venv/bin/pip"
else PIP="python3 -m pip"; fi
mkdir -p "$OUT"
rm -f "$OUT"/capsize-*.whl
# shellcheck disable=SC2086 # PIP may be "python3 -m pip"
$PIP wheel -q --wheel-dir "$OUT" "$TREE"
n=$(find "$OUT" -name '*.whl' | wc -l)
echo "build-wheels: $n wheels in $OUT"
