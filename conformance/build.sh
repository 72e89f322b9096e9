#!/bin/bash
# Builds the two pinned OCI conformance suites offline into $1 (default /var/tmp/capsize-conformance):
#   runtime-tools/   runtimetest + validation/*/*.t (GOFLAGS=-mod=vendor GOPROXY=off)
#   runc/            runc v1.1.5's tests/integration + contrib/cmd/{recvtty,sd-helper,seccompagent}
#                    and the testdata images its helpers would download (busybox, "debian"),
#                    made from runtime-tools' busybox rootfs laid out like docker's busybox
#                    (no proc/ or sys/; root/, tmp/, home/, var/)
#   runtime-spec.git, gopath/   what spec.bats's validator clones and `go get`s, served locally
# Sources: ../shared/conformance/*.tar.gz (see its README). Idempotent: a stamp per part.
set -euo pipefail
SRC=${CONFORMANCE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)/shared/conformance}
[ -d "$SRC" ] || SRC=/work/shared/conformance
OUT=${1:-${CONFORMANCE_DIR:-/var/tmp/capsize-conformance}}
mkdir -p "$OUT"
cd "$OUT"
export GOFLAGS=-mod=vendor GOPROXY=off GOCACHE="$OUT/gocache" GOPATH="$OUT/gopath-build" CGO_ENABLED=${CGO_ENABLED:-1}

if [ ! -e runtime-tools/.built ]; then
	rm -rf runtime-tools && mkdir runtime-tools
	tar xzf "$SRC"/runtime-tools-260e151.tar.gz -C runtime-tools --strip-components=1
	make -C runtime-tools -j2 runtimetest validation-executables >runtime-tools.build.log 2>&1 \
		|| { tail -20 runtime-tools.build.log >&2; exit 1; }
	touch runtime-tools/.built
fi

if [ ! -e runc/.built ]; then
	rm -rf runc && mkdir runc
	tar xzf "$SRC"/runc-1.1.5.tar.gz -C runc --strip-components=1
	for cmd in recvtty sd-helper seccompagent; do
		(cd runc/contrib/cmd/$cmd && go build -o $cmd . >>"$OUT/runc.build.log" 2>&1) \
			|| echo "conformance build: contrib/cmd/$cmd not built (see $OUT/runc.build.log); its tests fail" >&2
	done
	td=runc/tests/integration/testdata
	tmp=$(mktemp -d "$OUT/rootfs.XXXXXX")
	tar xzf runtime-tools/rootfs-amd64.tar.gz -C "$tmp"
	rm -rf "$tmp/proc" "$tmp/sys"
	# docker's busybox image has these (cwd.bats chowns /root, tty.bats writes /tmp)
	mkdir -p "$tmp"/root "$tmp"/tmp "$tmp"/home "$tmp"/var/spool/mail "$tmp"/var/www
	chmod 700 "$tmp"/root && chmod 1777 "$tmp"/tmp
	tar cJf "$td/busybox-amd64.tar.xz" -C "$tmp" .
	cp "$td/busybox-amd64.tar.xz" "$td/debian-amd64.tar.xz"   # no Debian image offline: hooks' library test fails
	rm -rf "$tmp"
	touch runc/.built
fi

if [ ! -e runtime-spec.git/.built ]; then
	rm -rf runtime-spec.git && mkdir runtime-spec.git
	tar xzf "$SRC"/runtime-spec-1c3f411.tar.gz -C runtime-spec.git --strip-components=1
	(cd runtime-spec.git && git init -q && git add -A && \
	 git -c user.name=conformance -c user.email=conformance@localhost commit -qm "runtime-spec 1c3f411" && \
	 git tag 1c3f411f0417)    # spec.bats resets to go.mod's pseudo-version commit, by this name
	mkdir -p gopath/src/github.com/xeipuuv
	cp -r runtime-tools/vendor/github.com/xeipuuv/* gopath/src/github.com/xeipuuv/
	printf '[url "%s/runtime-spec.git"]\n\tinsteadOf = https://github.com/opencontainers/runtime-spec.git\n' "$OUT" >gitconfig
	touch runtime-spec.git/.built
fi
echo "$OUT"
