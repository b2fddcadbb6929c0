#!/bin/bash
# The overlap check under chaos (issue 21, point 6): several `dlock run`
# processes loop on one lock name, each listing the ensemble's members in
# another order; each job appends "start <ns> <fence> <pid>" and
# "end <ns> <fence> <pid>" to one file.  Meanwhile a bounded loop kills the
# leader with -9 and starts it again, and stops and continues members with
# SIGSTOP/SIGCONT.  Then: no two sections overlap, and every section's token
# is higher than the one before.
#
# Needs the ensemble of tests/zookeeper-server.sh (DLOCK_TEST_ZK_URL,
# DLOCK_TEST_ZK_DIR, DLOCK_TEST_ZK_SCRIPT, DLOCK_TEST_ZK_PORT1..3); skips
# (77) without it unless DLOCK_TEST_REQUIRE names zookeeper or all.
# DLOCK_ZK_CHAOS_SECONDS: how long the chaos lasts (default 30, as in make
# check; by hand, e.g. 600).  Prints the sections and the faults it saw.
set -u

required() { case " ${DLOCK_TEST_REQUIRE:-} " in *" all "* | *" zookeeper "*) return 0 ;; esac; return 1; }
if [ -z "${DLOCK_TEST_ZK_URL:-}" ] || [ -z "${DLOCK_TEST_ZK_DIR:-}" ]; then
    required && { echo "check_zookeeper_chaos: no ensemble (DLOCK_TEST_ZK_URL) but DLOCK_TEST_REQUIRE asks for it"; exit 99; }
    exit 77
fi
DLOCK=${DLOCK_BIN:-dlock}
ZK=$DLOCK_TEST_ZK_SCRIPT
DIR=$DLOCK_TEST_ZK_DIR
SECONDS_TOTAL=${DLOCK_ZK_CHAOS_SECONDS:-30}
RUNNERS=4
work=$(mktemp -d /tmp/dlock-zk-chaos.XXXXXX)
log=$work/sections
name=chaos-$$-$RANDOM
p1=$DLOCK_TEST_ZK_PORT1 p2=$DLOCK_TEST_ZK_PORT2 p3=$DLOCK_TEST_ZK_PORT3
orders=("$p1 $p2 $p3" "$p2 $p3 $p1" "$p3 $p1 $p2" "$p3 $p2 $p1")

url_of() { # the members in the order given
    local hosts="" p
    for p in $1; do hosts="$hosts${hosts:+,}127.0.0.1:$p"; done
    echo "zookeeper://$hosts"
}

pid_of() { head -n 1 "$DIR/n$1/pid" 2>/dev/null; }

whole() {
    for n in 1 2 3; do
        pid=$(pid_of "$n")
        [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null
        "$ZK" start-member "$DIR" "$n" >/dev/null 2>&1
    done
    "$ZK" wait-leader "$DIR" >/dev/null 2>&1
}

runner_pids=()
cleanup() {
    for p in "${runner_pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    whole
    rm -rf "$work"
}
trap cleanup EXIT

# The job: its section, closed also when dlock run stops it (SIGTERM).
job='echo "start $(date +%s%N) $DLOCK_FENCE $$" >>"$LOG"
trap '\''echo "end $(date +%s%N) $DLOCK_FENCE $$" >>"$LOG"; exit 0'\'' TERM
sleep 0.2 & wait
echo "end $(date +%s%N) $DLOCK_FENCE $$" >>"$LOG"'

end_at=$(($(date +%s) + SECONDS_TOTAL))
for i in $(seq 0 $((RUNNERS - 1))); do
    url=$(url_of "${orders[$i]}")
    (
        while [ "$(date +%s)" -lt "$end_at" ]; do
            LOG=$log "$DLOCK" run -q -u "$url" -t 3s -w 5s -k 1s "$name" -- sh -c "$job" >/dev/null 2>&1
            sleep 0.0$((RANDOM % 10))
        done
    ) &
    runner_pids+=($!)
done

kills=0 stops=0
while [ "$(date +%s)" -lt "$end_at" ]; do
    sleep 2
    lead=$("$ZK" leader "$DIR")
    if [ $((RANDOM % 2)) -eq 0 ] && [ -n "$lead" ]; then
        "$ZK" stop-member "$DIR" "$lead" >/dev/null 2>&1 && kills=$((kills + 1))
        sleep 2
        "$ZK" start-member "$DIR" "$lead" >/dev/null 2>&1
    else
        n=$((RANDOM % 3 + 1))
        pid=$(pid_of "$n")
        if [ -n "$pid" ] && kill -STOP "$pid" 2>/dev/null; then
            stops=$((stops + 1))
            sleep 2
            kill -CONT "$pid" 2>/dev/null
        fi
    fi
    "$ZK" wait-leader "$DIR" >/dev/null 2>&1
done
for p in "${runner_pids[@]}"; do wait "$p"; done
runner_pids=()

# Sections in start order: each must end before the next starts, with a
# higher token.
awk -v kills="$kills" -v stops="$stops" '
    $1 == "start" { start[$4] = $2; fence[$4] = $3; n++ }
    $1 == "end" && !($4 in stop) { stop[$4] = $2 }
    END {
        m = 0
        for (p in start) { order[++m] = p }
        # sort by start time (insertion sort: a few hundred sections)
        for (i = 2; i <= m; i++) {
            v = order[i]; j = i - 1
            while (j > 0 && start[order[j]] > start[v]) { order[j + 1] = order[j]; j-- }
            order[j + 1] = v
        }
        bad = 0
        for (i = 1; i <= m; i++) {
            p = order[i]
            if (!(p in stop)) { printf "section of pid %s (fence %s) has no end\n", p, fence[p]; bad++ }
            if (i > 1) {
                q = order[i - 1]
                if (stop[q] > start[p]) { printf "OVERLAP: pid %s ends at %s after pid %s starts at %s\n", q, stop[q], p, start[p]; bad++ }
                if (fence[p] + 0 <= fence[q] + 0) { printf "TOKEN: %s after %s\n", fence[p], fence[q]; bad++ }
            }
        }
        printf "zookeeper chaos: %d sections, %d leader kills, %d member stops, %d problems\n", m, kills, stops, bad
        exit (bad > 0 || m < 5) ? 1 : 0
    }' "$log"
