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
# Checks (Docker's units as Debian ships them; capsize's when its daemons exist):
#   env.*                    systemd is PID 1, the cgroup version, journald readable (systemd-python)
#   docker.e2.activation     seed E2: stop docker.service, `docker ps` starts dockerd through docker.socket
#   docker.e2.cannot-connect stop docker.socket too: `docker ps` says "Cannot connect to the Docker daemon"
#   docker.e1.tree           under systemd: shim's parent is PID 1 and it sits in containerd.service's cgroup
#   docker.killmode.process  containerd.service (KillMode=process) restarted: the container lives on
#   docker.killmode.control-group  same with KillMode=control-group: the container dies with the daemon
#   capsize.api              capsized answers through capsized.socket (socket activation, Type=notify)
#   capsize.*                the same against capsized.socket / capsize-runtimed.service (skipped
#                            while those daemons are not built, or when capsize.api failed)
#   harness.*                `capsize run` of the scenario suite with engines docker-systemd and
#                            capsize-systemd (skipped while the harness has no `run`)
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
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
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
SOCK_MSG='Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?'

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
pid_alive() { [ -n "$1" ] && [ "$1" != 0 ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# shellcheck disable=SC2317 # called through wait_for
pid_dead() { ! pid_alive "$1"; }
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

# ---------------------------------------------------------------------------- Docker, seed E2
begin docker.e2.activation
if need_docker; then
    systemctl start docker.socket docker.service
    old_pid=$(main_pid docker.service)
    run systemctl stop docker.service
    stop_msg=$ERR
    if is_active docker.service; then fail "docker.service still active after stop"
    elif ! is_active docker.socket; then fail "docker.socket not active with docker.service stopped"
    else
        run docker ps
        ps_rc=$RC ps_secs=$SECS
        new_pid=$(main_pid docker.service)
        if [ "$ps_rc" = 0 ] && is_active docker.service && [ "$new_pid" != "$old_pid" ] && [ "$new_pid" != 0 ]; then
            pass "docker ps rc 0 in ${ps_secs}s, dockerd re-activated through docker.socket (pid $old_pid -> $new_pid); stop said: ${stop_msg:-nothing}"
        else
            fail "docker ps rc $ps_rc ($ERR); docker.service $(systemctl is-active docker.service), pid $old_pid -> $new_pid"
        fi
    fi
fi

begin docker.e2.cannot-connect
if need_docker; then
    run systemctl stop docker.socket docker.service
    run docker ps
    ps_rc=$RC ps_err=$ERR ps_secs=$SECS
    if [ "$ps_rc" = 1 ] && [ "$ps_err" = "$SOCK_MSG" ]; then
        pass "docker ps rc 1 in ${ps_secs}s: $ps_err"
    else
        fail "docker ps rc $ps_rc: $ps_err (expected rc 1: $SOCK_MSG)"
    fi
    systemctl start docker.socket docker.service
    run docker ps
    [ "$RC" = 0 ] || fail "docker did not come back after docker.socket restart: $ERR"
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
fi

# ---------------------------------------------------------------------------- KillMode matrix (containerd)
# killmode_case UNIT MODE EXPECT(alive|dead) CONTAINER: restart UNIT with KillMode=MODE (a runtime
# drop-in, removed afterwards) and see whether the container's process survived.
killmode_case() {
    local unit=$1 mode=$2 expect=$3 ctr=$4 dropin shown cpid2 shim2 alive
    dropin=/run/systemd/system/$unit.d/capsize-killmode.conf
    mkdir -p "${dropin%/*}"
    printf '[Service]\nKillMode=%s\n' "$mode" >"$dropin"
    systemctl daemon-reload
    shown=$(systemctl show -p KillMode --value "$unit")
    cpid2=$(dk inspect -f '{{.State.Pid}}' "$ctr" 2>/dev/null)
    shim2=$(awk '{print $4}' "/proc/$cpid2/stat" 2>/dev/null)
    run systemctl restart "$unit"
    local restart_secs=$SECS
    if [ "$expect" = alive ]; then
        sleep 2
    else
        wait_for 20 pid_dead "$cpid2"
    fi
    alive=dead
    pid_alive "$cpid2" && alive=alive
    local shim_state=dead
    pid_alive "$shim2" && shim_state=alive
    rm -f "$dropin"
    rmdir "${dropin%/*}" 2>/dev/null
    systemctl daemon-reload
    note "KillMode=$shown: container pid $cpid2 $alive, shim $shim2 $shim_state after ${restart_secs}s restart"
    if [ "$shown" != "$mode" ]; then fail "KillMode is $shown, not $mode"
    elif [ -z "$cpid2" ] || [ "$cpid2" = 0 ]; then fail "no running container to watch"
    elif [ "$alive" = "$expect" ]; then pass "KillMode=$mode, systemctl restart $unit (${restart_secs}s): container $alive, shim $shim_state"
    else fail "KillMode=$mode, systemctl restart $unit: container $alive, expected $expect"
    fi
}

begin docker.killmode.process
if need_docker; then
    if [ "$(systemctl show -p KillMode --value containerd.service)" != process ]; then
        fail "containerd.service ships KillMode=$(systemctl show -p KillMode --value containerd.service), not process"
    else
        killmode_case containerd.service process alive capsize-e1
    fi
fi

begin docker.killmode.control-group
if need_docker; then
    dk rm -f capsize-km >/dev/null 2>&1
    run docker run -d --name capsize-km busybox:latest sleep 1000
    if [ "$RC" != 0 ]; then fail "docker run failed: $ERR"
    else killmode_case containerd.service control-group dead capsize-km
    fi
    wait_for 30 is_active containerd.service
fi

begin docker.cleanup
if need_docker; then
    run docker rm -f capsize-e1 capsize-km
    wait_for 30 no_containers
    left=$(dk ps -aq | wc -l)
    shims=$(pgrep -c -f containerd-shim-runc-v2)
    dropins=$(find /run/systemd/system -name 'capsize-killmode.conf' | wc -l)
    if [ "$left" = 0 ] && [ "$shims" = 0 ] && [ "$dropins" = 0 ] && is_active docker.socket && is_active containerd.service; then
        pass "no container, shim or drop-in left; docker.socket and containerd.service active"
    else
        fail "left: $left containers, $shims shims, $dropins drop-ins; docker.socket $(systemctl is-active docker.socket), containerd $(systemctl is-active containerd.service)"
    fi
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

begin capsize.e2.activation
if need_capsize; then
    old_pid=$(main_pid capsized.service)
    run systemctl stop capsized.service
    run docker -H "$CS" ps
    new_pid=$(main_pid capsized.service)
    if [ "$RC" = 0 ] && is_active capsized.service && [ "$new_pid" != "$old_pid" ]; then
        pass "docker -H $CS ps rc 0 in ${SECS}s: capsized re-activated through capsized.socket (pid $old_pid -> $new_pid)"
    else fail "docker -H $CS ps rc $RC: $ERR; capsized.service $(systemctl is-active capsized.service)"; fi
fi

begin capsize.e2.cannot-connect
if need_capsize; then
    run systemctl stop capsized.socket capsized.service
    run docker -H "$CS" ps
    exp="Cannot connect to the Docker daemon at $CS. Is the docker daemon running?"
    if [ "$RC" = 1 ] && [ "$ERR" = "$exp" ]; then pass "rc 1 in ${SECS}s: $ERR"
    else fail "rc $RC: $ERR (expected: $exp)"; fi
    systemctl start capsized.socket
fi

capsize_image() {  # the lab's busybox image in capsized (docker import of `capsize image rootfs`)
    dk -H "$CS" image inspect busybox:latest >/dev/null 2>&1 && return 0
    local tar
    tar=$(mktemp /var/tmp/capsize-busybox.XXXXXX.tar)
    /opt/capsize/bin/capsize image rootfs --out "$tar" 2>/dev/null
    run docker -H "$CS" import "$tar" busybox:latest
    rm -f "$tar"
    [ "$RC" = 0 ]
}

for mode in process control-group; do
    begin "capsize.killmode.$mode"
    if need_capsize runtime; then
        ctr=capsize-km-$mode
        expect=alive
        [ "$mode" = process ] || expect=dead
        dk -H "$CS" rm -f "$ctr" >/dev/null 2>&1
        if ! capsize_image; then fail "could not import busybox into capsized: $ERR"
        else
            run docker -H "$CS" run -d --name "$ctr" busybox:latest sleep 1000
            if [ "$RC" != 0 ]; then fail "docker -H $CS run failed: $ERR"
            else DOCKER_HOST=$CS killmode_case capsize-runtimed.service "$mode" "$expect" "$ctr"
            fi
        fi
        wait_for 30 is_active capsize-runtimed.service
        DOCKER_HOST=$CS dk rm -f "$ctr" >/dev/null 2>&1
    fi
done

# ---------------------------------------------------------------------------- the harness
engines=$("$PY" -c 'from harness.engines import NAMES; print(" ".join(NAMES))' 2>/dev/null)
for engine in $harness_engines; do
    begin "harness.$engine"
    if [ "$env_only" = 1 ]; then
        skip "environment only (--env-only)"
    elif ! command -v capsize >/dev/null 2>&1; then
        skip "capsize not installed"
    elif ! capsize run --help >/dev/null 2>&1; then
        skip "the harness has no 'capsize run' yet"
    elif [[ " $engines " != *" $engine "* ]]; then
        skip "the harness has no engine $engine yet (it has: ${engines:-none})"
    else
        # capsize run: 0 every check held, 3 some were not applicable here, 1 failed, 2 bad input
        # (or "nothing to run": no scenario lists this engine yet)
        RUN_TIMEOUT=1800 run capsize run --engine "$engine" --out "$out/harness/$engine" \
            --junit "$out/harness/junit-$engine.xml" "$tree/scenarios"
        summary=$(printf '%s\n' "$OUT" "$ERR" | grep -v '^$' | tail -1)
        case $RC in
            0) pass "capsize run ${SECS}s: every check held; $summary" ;;
            3) pass "capsize run ${SECS}s: every applicable check held, some n/a; $summary" ;;
            2) if [[ $summary == *"nothing to run"* ]]; then
                   skip "no scenario applies to engine $engine yet: $(printf '%s' "$summary" | cut -c1-300)"
               else
                   fail "capsize run rc 2 (bad input) in ${SECS}s: $summary"
               fi ;;
            *) fail "capsize run rc $RC in ${SECS}s: $summary" ;;
        esac
    fi
done

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
