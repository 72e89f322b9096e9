#!/bin/bash
# capsize's resilience checks that need systemd as PID 1, plus the harness's scenario suite.
# Plain script, run as root inside the VM after provision.sh; it does not depend on Vagrant.
#
#   run-checks.sh [--out DIR] [--tree DIR] [--cgroup v1|v2] [--name NAME] [--env-only]
#                 [--engines "docker-systemd capsize-systemd"]   (engines under systemd: DIR/scenarios)
#                 [--library] [--private-engines "capsize docker"] [--shards N]   (the whole library)
#                 [--cgroup-tests]   (the test suite's privileged cgroup tests)
#
# --library runs every scenario file of DIR/scenarios on the private engines too, in N shards side
# by side (default: the number of CPUs); --cgroup-tests runs pytest -m privileged -k
# "$CGROUP_TESTS_K" over $CGROUP_TESTS_PATHS (both overridable from the environment) from DIR.
#
# --env-only records the environment and marks every other check skipped: safe anywhere (ci.sh
# uses it for the host's column); without it, the checks stop and restart docker, containerd and
# capsize's units, so run it only in a VM made for this.
# Writes into DIR (default /var/tmp/capsize-checks):
#   checks.tsv            one line per check: name, status (pass|fail|skip), seconds, message
#   junit-systemd.xml     the same as JUnit (testsuite "systemd-NAME")
#   facts.json            kernel, cgroup version, systemd / docker / containerd versions, PID 1
#   checks.log            what each check did and saw (commands, outputs, durations)
#   journal.txt           journald for docker, containerd and capsize's units during the run
#   harness/              `capsize run` run directories and JUnit, where the harness exists
#   library/shard-K/      --library: shard K's files.txt, run directory, junit.xml, summary.out
#   pytest/               --cgroup-tests: junit-cgroup.xml, pytest.out
# Exits 1 if any check failed, 0 otherwise (skipped checks do not fail).
#
# Checks (the seed's E2 and the KillMode matrix are harness scenarios now: scenarios/systemd,
# run by `capsize run` on both engines under systemd; what stays here is what the harness does not do):
#   env.*                    systemd is PID 1, the cgroup version, journald readable (systemd-python)
#   docker.e1.tree           under systemd: shim's parent is PID 1 and it sits in containerd.service's cgroup
#   capsize.api              capsized answers through capsized.socket (socket activation, Type=notify)
#   capsize.runtimed         capsize-runtimed.service is active with its socket
#   harness.run              `capsize run --engine docker-systemd --engine capsize-systemd` over
#                            DIR/scenarios (scenarios/systemd included): run dir + JUnit in harness/
#   library.run              --library: `capsize run --engine capsize --engine docker` over every
#                            scenario file, sharded: run dirs + JUnit in library/shard-K/
#   harness.<engine>         that engine's scenarios (systemd or private): all pass (or n/a) -> pass
#   cgroup.tests             --cgroup-tests: the privileged cgroup tests pass on this cgroup version
#   system.cleanup           afterwards: no container, shim or drop-in left, the units active
set -u

out=/var/tmp/capsize-checks
tree=/capsize
want_cgroup=""
name=$(hostname)
env_only=0
harness_engines="docker-systemd capsize-systemd"
private_engines="capsize docker"
library=0
shards=$(nproc 2>/dev/null || echo 1)
cgroup_tests=0
LIBRARY_TIMEOUT=${CAPSIZE_LIBRARY_TIMEOUT:-5400}   # one shard's `capsize run`, seconds
PYTEST_TIMEOUT=${CAPSIZE_PYTEST_TIMEOUT:-2400}
# the privileged tests that touch cgroups: limits, OOM, freeze/pause, kill of a cgroup, the cgroup
# v2 paths, stats/update, cgroup parents (tests/vagrant is not among the paths: it needs the host)
CGROUP_TESTS_K=${CGROUP_TESTS_K:-cgroup or oom or pause or freeze or kill_all or memory or cpu or pids or stats or update}
CGROUP_TESTS_PATHS=${CGROUP_TESTS_PATHS:-tests/lowlevel tests/shim tests/highlevel tests/daemon}
while [ $# -gt 0 ]; do
    case $1 in
        --out) out=$2; shift 2 ;;
        --tree) tree=$2; shift 2 ;;
        --cgroup) want_cgroup=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --env-only) env_only=1; shift ;;
        --engines) harness_engines=$2; shift 2 ;;
        --private-engines) private_engines=$2; shift 2 ;;
        --library) library=1; shift ;;
        --shards) shards=$2; shift 2 ;;
        --cgroup-tests) cgroup_tests=1; shift ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "run-checks: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "run-checks: must run as root" >&2; exit 1; }

mkdir -p "$out"
TSV=$out/checks.tsv
LOG=$out/checks.log
: >"$TSV"
: >"$LOG"
start_time=$(date '+%Y-%m-%d %H:%M:%S')   # the form journalctl --since takes
PY=${CAPSIZE_PY:-/opt/capsize/bin/python}   # the installed capsize's interpreter
[ -x "$PY" ] || PY=python3

RUN_TIMEOUT=120   # no command of a check may hang the run (a socket whose service keeps failing does)

note() { printf '%s\n' "$*" >>"$LOG"; }
dk() { timeout --kill-after=5 60 docker "$@"; }   # docker, bounded
# run CMD...: logs the command, its rc, duration and output; sets RC, OUT, ERR, SECS
run() {
    local t0 t1 errf
    errf=$(mktemp)
    t0=$EPOCHREALTIME
    OUT=$(timeout --kill-after=5 "$RUN_TIMEOUT" "$@" 2>"$errf")
    RC=$?
    [ "$RC" != 124 ] || echo "timed out after ${RUN_TIMEOUT}s" >>"$errf"
    t1=$EPOCHREALTIME
    ERR=$(cat "$errf")
    rm -f "$errf"
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')
    note "\$ $* -> rc $RC in ${SECS}s"
    [ -z "$OUT" ] || note "$(printf '%s\n' "$OUT" | sed 's/^/  out: /' | head -40)"
    [ -z "$ERR" ] || note "$(printf '%s\n' "$ERR" | sed 's/^/  err: /' | head -40)"
    return 0
}

failed=0
CHECK=""
CHECK_T0=""
begin() { CHECK=$1; CHECK_T0=$EPOCHREALTIME; note ""; note "== $CHECK"; }
result() {  # result pass|fail|skip MESSAGE
    local secs msg
    secs=$(awk -v a="$CHECK_T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b-a}')
    msg=$(printf '%s' "$2" | tr '\t\n' '  ')
    printf '%s\t%s\t%s\t%s\n' "$CHECK" "$1" "$secs" "$msg" >>"$TSV"
    note "-> $1: $2"
    printf 'run-checks: %-34s %-4s %7ss  %s\n' "$CHECK" "$1" "$secs" "$2"
    [ "$1" != fail ] || failed=1
}
pass() { result pass "$1"; }
fail() { result fail "$1"; }
skip() { result skip "$1"; }

is_active() { [ "$(systemctl is-active "$1" 2>/dev/null)" = active ]; }
main_pid() { systemctl show -p MainPID --value "$1" 2>/dev/null; }
wait_for() {  # wait_for SECONDS CMD...: poll every 0.2 s
    local deadline
    deadline=$(( $(date +%s) + $1 )); shift
    while ! "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}
# shellcheck disable=SC2317 # called through wait_for
no_containers() { [ -z "$(dk ps -aq)" ]; }

systemd_pid1=0
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && systemd_pid1=1
cgroup_now=v1
[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] && cgroup_now=v2
[ "$cgroup_now" = v1 ] && [ -e /sys/fs/cgroup/unified/cgroup.controllers ] && cgroup_now=hybrid

# ---------------------------------------------------------------------------- environment
begin env.pid1-systemd
if [ "$systemd_pid1" = 1 ]; then pass "PID 1 is systemd ($(systemctl --version | head -1))"
elif [ "$env_only" = 1 ]; then skip "PID 1 is $(cat /proc/1/comm 2>/dev/null), not systemd"
else fail "PID 1 is $(cat /proc/1/comm 2>/dev/null), not systemd: the systemd checks are skipped"; fi

begin env.cgroup
if [ -z "$want_cgroup" ]; then pass "cgroup $cgroup_now ($(stat -fc %T /sys/fs/cgroup) on /sys/fs/cgroup)"
elif [ "$want_cgroup" = "$cgroup_now" ] || { [ "$want_cgroup" = v1 ] && [ "$cgroup_now" = hybrid ]; }; then pass "cgroup $cgroup_now as asked ($(stat -fc %T /sys/fs/cgroup) on /sys/fs/cgroup)"
else fail "cgroup $cgroup_now, but $want_cgroup asked for (cmdline: $(cat /proc/cmdline))"; fi

need_systemd() {
    if [ "$env_only" = 1 ]; then skip "environment only (--env-only)"; return 1; fi
    if [ "$systemd_pid1" != 1 ]; then skip "needs systemd as PID 1"; return 1; fi
    return 0
}
need_docker() {
    need_systemd || return 1
    if ! systemctl cat docker.socket >/dev/null 2>&1; then skip "docker.socket not installed"; return 1; fi
    return 0
}

begin env.journald
if need_systemd; then
    run "$PY" -c '
import sys
from systemd import journal
r = journal.Reader()
r.this_boot()
r.add_match(_SYSTEMD_UNIT="containerd.service")
n = sum(1 for _ in r)
print(n)
sys.exit(0 if n > 0 else 1)'
    if [ "$RC" = 0 ]; then pass "systemd-python reads containerd.service from journald ($OUT entries this boot)"
    else fail "systemd-python could not read containerd.service's journal: $ERR"; fi
fi


# ---------------------------------------------------------------------------- Docker, E1 under systemd
begin docker.e1.tree
cid=""
if need_docker; then
    dk rm -f capsize-e1 >/dev/null 2>&1
    run docker run -d --name capsize-e1 busybox:latest sleep 1000
    cid=$OUT
    cpid=$(dk inspect -f '{{.State.Pid}}' capsize-e1 2>/dev/null)
    shim=$(awk '{print $4}' "/proc/$cpid/stat" 2>/dev/null)
    shim_cmd=$(tr '\0' ' ' <"/proc/$shim/cmdline" 2>/dev/null)
    shim_ppid=$(awk '{print $4}' "/proc/$shim/stat" 2>/dev/null)
    shim_cg=$(grep -E '^0::|name=systemd' "/proc/$shim/cgroup" 2>/dev/null | head -1)
    c_cg=$(grep -E '^0::|name=systemd' "/proc/$cpid/cgroup" 2>/dev/null | head -1)
    note "container pid $cpid cgroup $c_cg; shim $shim ($shim_cmd) ppid $shim_ppid cgroup $shim_cg"
    if [ -z "$cid" ] || [ -z "$shim" ]; then fail "docker run failed: $ERR"
    elif [[ $shim_cmd != *containerd-shim-runc-v2*"-id $cid"* ]]; then fail "container's parent is not its shim: $shim_cmd"
    elif [ "$shim_ppid" != 1 ]; then fail "shim's parent is $shim_ppid, not systemd (PID 1)"
    elif [[ $shim_cg != */containerd.service ]]; then fail "shim not in containerd.service's cgroup: $shim_cg"
    elif [[ $c_cg != *"$cid"* ]]; then fail "container not in its own cgroup: $c_cg"
    else pass "shim (ppid 1) in ${shim_cg#*::}; container in ${c_cg#*::}"
    fi
    dk rm -f capsize-e1 >/dev/null 2>&1
fi


# ---------------------------------------------------------------------------- capsize's units
CS=unix:///run/capsize/capsized.sock
capsize_ok=0
# need_capsize [runtime]: capsized.socket (and capsize-runtimed.service) enabled, and the API answered
need_capsize() {
    need_systemd || return 1
    if ! systemctl is-enabled capsized.socket >/dev/null 2>&1; then
        skip "capsized not built yet: capsized.socket installed, not enabled"; return 1
    fi
    if [ "${1:-}" = runtime ] && ! systemctl is-enabled capsize-runtimed.service >/dev/null 2>&1; then
        skip "capsize-runtimed not built yet: its unit is installed, not enabled"; return 1
    fi
    if [ "$CHECK" != capsize.api ] && [ "$capsize_ok" != 1 ]; then
        skip "capsized's API did not answer (capsize.api failed)"; return 1
    fi
    return 0
}

begin capsize.api
if need_capsize; then
    systemctl start capsized.socket
    run docker -H "$CS" version --format '{{.Server.Version}} API {{.Server.APIVersion}}'
    if [ "$RC" = 0 ] && is_active capsized.service; then
        capsize_ok=1
        pass "capsized answers through capsized.socket in ${SECS}s: $OUT"
    else
        note "$(journalctl -u capsized.service -u capsize-runtimed.service -n 25 --no-pager 2>&1)"
        fail "docker -H $CS version rc $RC: $(printf '%s' "$ERR" | tail -1); capsized.service $(systemctl is-active capsized.service): $(journalctl -u capsized.service -n 1 -o cat --no-pager 2>/dev/null)"
    fi
fi

begin capsize.runtimed
if need_capsize runtime; then
    wait_for 30 is_active capsize-runtimed.service
    if is_active capsize-runtimed.service && [ -S /run/capsize/runtimed.sock ]; then
        pass "capsize-runtimed.service active (pid $(main_pid capsize-runtimed.service)), /run/capsize/runtimed.sock there"
    else
        note "$(journalctl -u capsize-runtimed.service -n 25 --no-pager 2>&1)"
        fail "capsize-runtimed.service $(systemctl is-active capsize-runtimed.service): $(journalctl -u capsize-runtimed.service -n 1 -o cat --no-pager 2>/dev/null)"
    fi
fi


# ---------------------------------------------------------------------------- the harness
# 1. harness.run: the engines under systemd (--engines) over DIR/scenarios (the scenarios that do
#    not list them -- all but scenarios/systemd -- are notes, not runs): one run directory in harness/.
# 2. library.run (--library): the whole scenario library on the private engines (--private-engines,
#    fresh engines under private roots, as on a developer's box), split into --shards shards run side
#    by side (each its own `capsize run`, run directory and JUnit in library/shard-K/).
# 3. harness.<engine>: one line per engine of both, from the run journals: every scenario pass (or
#    n/a) -> pass; a failing scenario is named with its reason.
engines=$("$PY" -c 'from harness.engines import NAMES; print(" ".join(NAMES))' 2>/dev/null)
have_harness() {  # have_harness ENGINES: skip (and return 1) when the harness cannot run them here
    if [ "$env_only" = 1 ]; then skip "environment only (--env-only)"; return 1; fi
    if ! command -v capsize >/dev/null 2>&1; then skip "capsize not installed"; return 1; fi
    local e
    for e in $1; do [[ " $engines " != *" $e "* ]] || return 0; done
    skip "the harness has none of the engines $1 (it has: ${engines:-none})"
    return 1
}
engine_args() {  # engine_args ENGINES: "--engine E" for each one the harness has, on stdout
    local e
    for e in $1; do [[ " $engines " != *" $e "* ]] || printf -- '--engine\n%s\n' "$e"; done
}
# the summary table's rows of `capsize run` output FILE (before "run directory:"), on one line
run_summary() { sed -n '3,/^$/p' "$1" | awk 'NF {printf "%s %s %s; ", $1, $2, $3}'; }

begin harness.run
if have_harness "$harness_engines"; then
    # capsize run: 0 every check held, 3 some were n/a here, 1 failed, 2 bad input, 130 interrupted
    rm -rf "$out/harness"
    mkdir -p "$out/harness"
    mapfile -t run_engines < <(engine_args "$harness_engines")
    RUN_TIMEOUT=2400 run capsize run -q "${run_engines[@]}" --out "$out/harness" \
        --junit "$out/harness/junit.xml" "$tree/scenarios"
    printf '%s\n' "$OUT" >"$out/harness/summary.out"
    summary=$(run_summary "$out/harness/summary.out")
    [ -n "$summary" ] || summary=$(printf '%s\n' "$ERR" | grep -v '^capsize: note:' | tail -1)
    case $RC in
        0|3) pass "capsize run rc $RC in ${SECS}s: $summary" ;;
        *) fail "capsize run rc $RC in ${SECS}s: $(printf '%s' "$summary" | cut -c1-400)" ;;
    esac
fi

library_rc=""
begin library.run
if [ "$library" != 1 ]; then
    skip "not asked for (--library)"
elif have_harness "$private_engines"; then
    rm -rf "$out/library"
    mkdir -p "$out/library"
    mapfile -t lib_engines < <(engine_args "$private_engines")
    # every scenario file, dealt round-robin to the shards (sorted: the same split on every VM)
    mapfile -t files < <(find "$tree/scenarios" -mindepth 2 -maxdepth 2 -name '*.yaml' | sort)
    [ "$shards" -ge 1 ] 2>/dev/null || shards=1
    [ "$shards" -le "${#files[@]}" ] || shards=${#files[@]}
    note "library: ${#files[@]} scenario files, engines ${private_engines}, $shards shard(s)"
    t0=$EPOCHREALTIME
    pids=()
    for ((k = 0; k < shards; k++)); do
        sd=$out/library/shard-$k
        mkdir -p "$sd"
        part=()
        for ((i = k; i < ${#files[@]}; i += shards)); do part+=("${files[i]}"); done
        printf '%s\n' "${part[@]}" >"$sd/files.txt"
        timeout --kill-after=30 "$LIBRARY_TIMEOUT" capsize run -q "${lib_engines[@]}" --out "$sd" \
            --junit "$sd/junit.xml" "${part[@]}" >"$sd/summary.out" 2>"$sd/stderr.txt" &
        pids+=($!)
    done
    library_rc=0
    rcs=""
    for ((k = 0; k < shards; k++)); do
        wait "${pids[k]}"
        rc=$?
        rcs="$rcs $rc"
        note "library shard $k ($(wc -l <"$out/library/shard-$k/files.txt") files): capsize run rc $rc"
        note "$(sed 's/^/  out: /' "$out/library/shard-$k/summary.out" | head -40)"
        case $rc in 0) ;; 3) [ "$library_rc" != 0 ] || library_rc=3 ;; *) library_rc=$rc ;; esac
    done
    SECS=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b-a}')
    case $library_rc in
        0|3) pass "$shards shard(s), capsize run rc$rcs in ${SECS}s" ;;
        *) fail "$shards shard(s), capsize run rc$rcs in ${SECS}s (124: over ${LIBRARY_TIMEOUT}s): $(cat "$out"/library/shard-*/stderr.txt | grep -v '^capsize: note:' | tail -1 | cut -c1-300)" ;;
    esac
fi

# shellcheck disable=SC2086 # engine lists are words
for engine in $(printf '%s\n' $harness_engines $private_engines | awk '!seen[$0]++'); do
    begin "harness.$engine"
    journals=()
    if [[ " $private_engines " == *" $engine "* ]]; then
        [ "$library" = 1 ] || { skip "the library is not run here (--library)"; continue; }
        kind=library
        mapfile -t journals < <(ls "$out"/library/shard-*/*/journal.json 2>/dev/null)
    else
        kind=harness
        mapfile -t journals < <(ls "$out"/harness/*/journal.json 2>/dev/null)
    fi
    if [ "$env_only" = 1 ]; then
        skip "environment only (--env-only)"
    elif ! command -v capsize >/dev/null 2>&1; then
        skip "capsize not installed"
    elif [[ " $engines " != *" $engine "* ]]; then
        skip "the harness has no engine $engine (it has: ${engines:-none})"
    elif [ "${#journals[@]}" = 0 ]; then
        fail "capsize run wrote no journal in $kind/"
    else
        # per engine, from the run journals: every scenario pass (or n/a) -> pass; else fail
        line=$("$PY" - "$engine" "${journals[@]}" <<'PYEOF'
import collections, json, sys
engine, paths = sys.argv[1], sys.argv[2:]
runs = [e for p in paths for e in json.load(open(p))["runs"] if e["engine"] == engine]
count = collections.Counter(e["status"] for e in runs)
bad = [f"{e['scenario']}: {e['status']} ({e.get('reason', '')})" for e in runs if e["status"] not in ("pass", "n/a")]
head = ", ".join(f"{n} {s}" for s, n in sorted(count.items())) or "no scenario"
if bad:
    print("fail\t" + head + "; " + "; ".join(bad))
elif not runs or count.get("n/a", 0) == len(runs):
    print("skip\t" + head + ("; " + runs[0].get("reason", "") if runs else ""))
else:
    print("pass\t" + head)
PYEOF
)
        case ${line%%$'\t'*} in
            pass) pass "${line#*$'\t'}" ;;
            skip) skip "${line#*$'\t'}" ;;
            *) fail "${line#*$'\t'}" ;;
        esac
    fi
done

# ---------------------------------------------------------------------------- cgroup tests
# The test suite's privileged tests that touch cgroups (--cgroup-tests: $CGROUP_TESTS_K over
# $CGROUP_TESTS_PATHS, from the tree's tests/ with the installed capsize and its wheels' pytest):
# limits, OOM, freeze/thaw, kill of a cgroup, clean-up, stats and update, on this VM's cgroup version.
begin cgroup.tests
if [ "$cgroup_tests" != 1 ]; then
    skip "not asked for (--cgroup-tests)"
elif [ "$env_only" = 1 ]; then
    skip "environment only (--env-only)"
elif ! "$PY" -c 'import pytest' 2>/dev/null; then
    skip "pytest is not installed in $PY"
else
    rm -rf "$out/pytest"
    mkdir -p "$out/pytest"
    # shellcheck disable=SC2086 # the paths are words
    (cd "$tree" && RUN_TIMEOUT=$PYTEST_TIMEOUT run "$PY" -m pytest -q -p no:cacheprovider -m privileged \
        -k "$CGROUP_TESTS_K" --junit-xml "$out/pytest/junit-cgroup.xml" $CGROUP_TESTS_PATHS
     printf '%s\n' "$OUT" >"$out/pytest/pytest.out"
     printf '%s\n' "$ERR" >>"$out/pytest/pytest.out"
     printf '%s\t%s\n' "$RC" "$SECS" >"$out/pytest/rc")
    IFS=$'\t' read -r prc psecs <"$out/pytest/rc"
    tail_line=$(grep -E '(passed|failed|error|skipped|deselected)' "$out/pytest/pytest.out" | tail -1)
    case $prc in
        0) pass "pytest rc 0 in ${psecs}s: $tail_line" ;;
        5) fail "pytest selected no test (rc 5): -k '$CGROUP_TESTS_K' $CGROUP_TESTS_PATHS" ;;
        *) fail "pytest rc $prc in ${psecs}s: $tail_line" ;;
    esac
fi

# ---------------------------------------------------------------------------- nothing left
begin system.cleanup
if need_docker; then
    wait_for 30 no_containers
    left=$(dk ps -aq | wc -l)
    shims=$(pgrep -c -f containerd-shim-runc-v2)
    cleft=0
    if [ "$capsize_ok" = 1 ]; then cleft=$(DOCKER_HOST=$CS dk ps -aq | wc -l); fi
    dropins=$(find /run/systemd/system -path '*.d/*' -name '*capsize*.conf' | wc -l)
    inactive=""
    for u in docker.socket containerd.service; do is_active "$u" || inactive="$inactive $u"; done
    if [ "$capsize_ok" = 1 ]; then
        for u in capsized.socket capsize-runtimed.service; do is_active "$u" || inactive="$inactive $u"; done
    fi
    if [ "$left" = 0 ] && [ "$shims" = 0 ] && [ "$cleft" = 0 ] && [ "$dropins" = 0 ] && [ -z "$inactive" ]; then
        pass "no container (docker, capsized), shim or drop-in left; the units are active"
    else
        fail "left: $left docker containers, $shims shims, $cleft capsized containers, $dropins drop-ins; inactive:${inactive:- none}"
    fi
fi

# ---------------------------------------------------------------------------- results
if [ "$systemd_pid1" = 1 ]; then
    journalctl --since "$start_time" -o short-iso-precise -u docker.socket -u docker.service -u containerd.service \
        -u capsized.socket -u capsized.service -u capsize-runtimed.service >"$out/journal.txt" 2>&1
fi
"$PY" - "$out" "$name" "$cgroup_now" "$systemd_pid1" <<'EOF'
import json, os, platform, subprocess, sys
from xml.sax.saxutils import escape, quoteattr
out, name, cgroup, systemd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
def cmd(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        return None
facts = {
    "name": name, "kernel": platform.release(), "cgroup": cgroup,
    "pid1": open("/proc/1/comm").read().strip(), "systemd": cmd("systemctl", "--version") if systemd else None,
    "docker": cmd("dockerd", "--version"), "containerd": cmd("containerd", "--version"),
    "runc": cmd("runc", "--version"), "python": platform.python_version(),
    "cmdline": open("/proc/cmdline").read().strip(),
    "boot": cmd("systemd-analyze") if systemd else None,
}
json.dump(facts, open(os.path.join(out, "facts.json"), "w"), indent=2)
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(out, "checks.tsv")) if l.strip()]
fails = sum(r[1] == "fail" for r in rows)
skips = sum(r[1] == "skip" for r in rows)
total = sum(float(r[2]) for r in rows)
with open(os.path.join(out, "junit-systemd.xml"), "w") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    f.write(f'<testsuite name={quoteattr("systemd-" + name)} tests="{len(rows)}" failures="{fails}" '
            f'errors="0" skipped="{skips}" time="{total:.3f}">\n')
    for n, status, secs, msg in rows:
        f.write(f'  <testcase classname={quoteattr("vagrant." + name)} name={quoteattr(n)} time="{secs}">')
        if status == "fail":
            f.write(f'<failure message={quoteattr(msg)}>{escape(msg)}</failure>')
        elif status == "skip":
            f.write(f'<skipped message={quoteattr(msg)}/>')
        else:
            f.write(f'<system-out>{escape(msg)}</system-out>')
        f.write('</testcase>\n')
    f.write('</testsuite>\n')
print(f"run-checks: {len(rows) - fails - skips} passed, {fails} failed, {skips} skipped ({name}, cgroup {cgroup})")
EOF
exit "$failed"
