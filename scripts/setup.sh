#!/bin/sh
# Idempotent set-up of a fresh Debian 12 machine for capsize (run as root).
#  - apt packages: the reference stack (runc, crun, containerd, docker.io), the lab's image source
#    (busybox-static), build deps of systemd-python, and the tools the harness uses; vagrant,
#    vagrant-libvirt and shellcheck for tests/vagrant (`vagrant validate`, the scripts' lint; the
#    full VM run installs the rest itself: vagrant/install-vm-tools.sh); chromium and tesseract-ocr for
#    tests/reports (the HTML report in a real browser, its screenshot read back by OCR);
#    nftables (the network tier's NAT and isolation rules, inside the engines' own network
#    namespaces), docker-registry and apache2-utils (the local registry peer and its htpasswd),
#    podman (the third engine, with conmon), golang-go, bats and gawk (the OCI conformance suites);
#  - a virtualenv in .venv (Debian's python3: it starts about 4x faster than a pyenv build, and
#    every capsize-runc and capsize-shim invocation pays for interpreter start-up) with capsize
#    installed in development mode.
# Re-running it does nothing that is already done.
set -eu
cd "$(dirname "$0")/.."

APT_PACKAGES="busybox-static libsystemd-dev pkg-config gcc python3-dev python3-venv runc crun \
docker.io containerd iproute2 jq strace libseccomp2 procps util-linux systemd tini \
vagrant vagrant-libvirt shellcheck chromium tesseract-ocr \
nftables docker-registry apache2-utils podman containernetworking-plugins golang-go bats gawk"

missing=""
for p in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing apt packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # Without systemd as PID 1 the packages' services cannot start; policy-rc.d keeps
    # postinst scripts from trying, so the reference daemons only ever run privately.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    $PY -m venv .venv
fi
stamp=.venv/.capsize-installed
if [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing capsize into .venv"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[dev]'
    touch "$stamp"
fi

# Bytecode for every module, written now: capsize-runc and capsize-shim start on every container,
# and an environment with PYTHONDONTWRITEBYTECODE would otherwise recompile them on each start.
.venv/bin/python -m compileall -q -j 0 runtime harness >/dev/null
