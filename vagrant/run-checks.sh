#!/bin/bash
# capsize's resilience checks that need systemd as PID 1, plus the harness's scenario suite.
# Plain script, run as root inside the VM after provision.sh; it does not depend on Vagrant.
#
#   run-checks.sh [--out DIR] [--tree DIR] [--cgroup v1|v2] [--name NAME] [--env-only]
#                 [--engines "docker-systemd capsize-systemd"]   (harness engines to run the suite on)
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
#   harness.<engine>         that engine's scenarios in the run: all pass (or n/a) -> pass
#   system.cleanup           afterwards: no container, shim or drop-in left, the units active
set -u

out=/var/tmp/capsize-checks
tree=/capsize
want_cgroup=""
name=$(hostname)
env_only=0
harness_engines="docker-systemd capsize-systemd"
while [ $# -gt 0 ]; do
    case $1 in
        --out) out=$2; shift 2 ;;
        --tree) tree=$2; shift 2 ;;
        --cgroup) want_cgroup=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --env-only) env_only=1; shift ;;
        --engines) harness_engines=$2; shift 2 ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
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
PY=/opt/capsize/bin/python
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
# The systemd scenarios (scenarios/systemd: seed E2 activation and cannot-connect, the KillMode
# matrix) and the rest of the suite, run by the harness on the engines under systemd; one run
# directory, one JUnit file, then one line per engine here (harness.<engine>).
engines=$("$PY" -c 'from harness.engines import NAMES; print(" ".join(NAMES))' 2>/dev/null)
run_engines=()
for engine in $harness_engines; do
    [[ " $engines " != *" $engine "* ]] || run_engines+=(--engine "$engine")
done
harness_rc=""
begin harness.run
if [ "$env_only" = 1 ]; then
    skip "environment only (--env-only)"
elif ! command -v capsize >/dev/null 2>&1; then
    skip "capsize not installed"
elif [ "${#run_engines[@]}" = 0 ]; then
    skip "the harness has none of the engines $harness_engines (it has: ${engines:-none})"
else
    # capsize run: 0 every check held, 3 some were n/a here, 1 failed, 2 bad input, 130 interrupted
    rm -rf "$out/harness"
    mkdir -p "$out/harness"
    RUN_TIMEOUT=2400 run capsize run -q "${run_engines[@]}" --out "$out/harness" \
        --junit "$out/harness/junit.xml" "$tree/scenarios"
    harness_rc=$RC
    printf '%s\n' "$OUT" >"$out/harness/summary.out"
    # the summary table's rows (the last lines before "run directory:"), not capsize's notes on stderr
    summary=$(printf '%s\n' "$OUT" | sed -n '3,/^$/p' | awk 'NF {printf "%s %s %s; ", $1, $2, $3}')
    [ -n "$summary" ] || summary=$(printf '%s\n' "$ERR" | grep -v '^capsize: note:' | tail -1)
    case $RC in
        0|3) pass "capsize run rc $RC in ${SECS}s: $summary" ;;
        *) fail "capsize run rc $RC in ${SECS}s: $(printf '%s' "$summary" | cut -c1-400)" ;;
    esac
fi
for engine in $harness_engines; do
    begin "harness.$engine"
    if [ "$env_only" = 1 ]; then
        skip "environment only (--env-only)"
    elif ! command -v capsize >/dev/null 2>&1; then
        skip "capsize not installed"
    elif [[ " $engines " != *" $engine "* ]]; then
        skip "the harness has no engine $engine (it has: ${engines:-none})"
    elif [ -z "$harness_rc" ] || ! ls "$out"/harness/*/journal.json >/dev/null 2>&1; then
        fail "capsize run wrote no journal (rc ${harness_rc:-none})"
    else
        # per engine, from the run's journal: every scenario pass (or n/a) -> pass; else fail
        line=$("$PY" - "$engine" "$out"/harness/*/journal.json <<'PYEOF'
import collections, json, sys
engine, path = sys.argv[1], sys.argv[2]
runs = [e for e in json.load(open(path))["runs"] if e["engine"] == engine]
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
