#!/bin/bash
# A throwaway three-server ZooKeeper ensemble for the ZooKeeper backend tests.
#
#   tests/zookeeper-server.sh start DIR          start the three members (configuring DIR the first
#                                                time); waits for a leader; prints export lines
#   tests/zookeeper-server.sh stop DIR           stop every member started in DIR (by its own pid)
#   tests/zookeeper-server.sh stop-member DIR N  kill -9 member N (1..3)
#   tests/zookeeper-server.sh start-member DIR N start member N again (same ports, same data)
#   tests/zookeeper-server.sh leader DIR         print the number of the member that leads (or
#                                                nothing when none does)
#   tests/zookeeper-server.sh wait-leader DIR    wait (up to 30 s) until some member leads and serves
#
# Everything lives under DIR: DIR/nN/zoo.cfg, DIR/nN/data (myid, the durable
# log: forceSync=yes, as on a real server), DIR/nN/pid, DIR/nN/server.log and
# DIR/env.  Members listen on 127.0.0.1 only, on free ports picked at random
# (a client port, a quorum port and an election port each).  Timeouts are
# short so that the fault tests are quick: tickTime=100 ms, syncLimit=20
# ticks (2 s), sessions from 100 ms (minSessionTimeout, the shortest TTL
# the shared suites use) to 60 s.
#
# `start` prints (and writes to DIR/env) shell lines:
#   export DLOCK_TEST_ZK_URL='zookeeper://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>'
#   export DLOCK_TEST_ZK_DIR='DIR'
#   export DLOCK_TEST_ZK_PORT1=<p1> DLOCK_TEST_ZK_PORT2=<p2> DLOCK_TEST_ZK_PORT3=<p3>
#   export DLOCK_TEST_ZK_PIDFILE1='DIR/n1/pid' (2, 3 alike)
#   export DLOCK_TEST_ZK_SCRIPT='<this script>'
#
# Java and the server come from Debian's zookeeper package ($DLOCK_ZK_JAVA,
# else java on the PATH; the classpath /usr/share/java/zookeeper.jar).
set -eu

die() { echo "zookeeper-server.sh: $*" >&2; exit 1; }
usage() { die "usage: $0 start|stop|leader|wait-leader DIR | stop-member|start-member DIR N"; }

[ $# -ge 2 ] || usage
action=$1
dir=$2
member=${3:-}

JAVA=${DLOCK_ZK_JAVA:-java}
JAR=${DLOCK_ZK_JAR:-/usr/share/java/zookeeper.jar}
command -v "$JAVA" >/dev/null 2>&1 || die "no java found (Debian: zookeeper brings it)"
[ -f "$JAR" ] || die "no $JAR (Debian: zookeeper)"

. "$(dirname "$0")/server-common.sh"
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

case "$dir" in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac

member_pid() {
    [ -f "$dir/n$1/pid" ] && head -n 1 "$dir/n$1/pid" 2>/dev/null || true
}

member_running() {
    local pid
    pid=$(member_pid "$1")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

client_port() {
    sed -n 's/^clientPort=\([0-9]*\)$/\1/p' "$dir/n$1/zoo.cfg" 2>/dev/null
}

# A four-letter-word command to member N; prints the answer (empty when none).
four() {
    local port
    port=$(client_port "$1")
    [ -n "$port" ] || return 0
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf '%s' '$2' >&3 && cat <&3" 2>/dev/null || true
}

leader() {
    local n
    for n in 1 2 3; do
        member_running "$n" || continue
        if four "$n" srvr | grep -q '^Mode: leader'; then
            echo "$n"
            return 0
        fi
    done
}

# A leader, and every running member serving (leader or follower).
wait_leader() {
    local i=0 n ok
    while [ $i -lt 300 ]; do
        ok=0
        if [ -n "$(leader)" ]; then
            ok=1
            for n in 1 2 3; do
                member_running "$n" || continue
                four "$n" srvr | grep -q -E '^Mode: (leader|follower)' || ok=0
            done
        fi
        [ $ok -eq 1 ] && return 0
        i=$((i + 1))
        sleep 0.1
    done
    for n in 1 2 3; do tail -n 5 "$dir/n$n/server.log" >&2 2>/dev/null || true; done
    die "the ensemble in $dir has no leader"
}

write_config() {
    local n
    for n in 1 2 3; do
        mkdir -p "$dir/n$n/data"
        echo "$n" >"$dir/n$n/data/myid"
        cat >"$dir/n$n/zoo.cfg" <<EOF
# Written by tests/zookeeper-server.sh: a throwaway test ensemble member.
tickTime=100
initLimit=40
syncLimit=20
minSessionTimeout=100
maxSessionTimeout=60000
dataDir=$dir/n$n/data
clientPort=${ports[$n]}
clientPortAddress=127.0.0.1
forceSync=yes
preAllocSize=4096
4lw.commands.whitelist=srvr,stat,mntr,ruok,cons
admin.enableServer=false
reconfigEnabled=false
maxClientCnxns=0
server.1=127.0.0.1:${quorum[1]}:${election[1]}
server.2=127.0.0.1:${quorum[2]}:${election[2]}
server.3=127.0.0.1:${quorum[3]}:${election[3]}
EOF
    done
}

write_env() {
    {
        echo "export DLOCK_TEST_ZK_URL='zookeeper://127.0.0.1:$(client_port 1),127.0.0.1:$(client_port 2),127.0.0.1:$(client_port 3)'"
        echo "export DLOCK_TEST_ZK_DIR='$dir'"
        echo "export DLOCK_TEST_ZK_SCRIPT='$self'"
        for n in 1 2 3; do
            echo "export DLOCK_TEST_ZK_PORT$n='$(client_port "$n")'"
            echo "export DLOCK_TEST_ZK_PIDFILE$n='$dir/n$n/pid'"
        done
    } >"$dir/env"
    cat "$dir/env"
}

start_member() {
    local n=$1
    member_running "$n" && return 0
    # Small heaps and a quick start: three JVMs share a small machine.
    setsid "$JAVA" -Xmx128m -Xms32m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k \
        -Dzookeeper.admin.enableServer=false -Dorg.slf4j.simpleLogger.defaultLogLevel=info \
        -cp "$JAR:/usr/share/java/slf4j-simple.jar" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/n$n/zoo.cfg" \
        </dev/null >>"$dir/n$n/server.log" 2>&1 &
    echo $! >"$dir/n$n/pid"
}

stop_member() {
    local n=$1 pid tries=0
    pid=$(member_pid "$n")
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        return 0
    fi
    kill -CONT "$pid" 2>/dev/null || true
    kill -"${2:-TERM}" "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        if [ $tries -ge 100 ]; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        [ $tries -ge 200 ] && break
        sleep 0.05
    done
    rm -f "$dir/n$n/pid"
}

start_all() {
    local n
    mkdir -p "$dir"
    if [ ! -f "$dir/n1/zoo.cfg" ]; then
        declare -A seen=()
        ports=() quorum=() election=()
        for n in 1 2 3; do
            for kind in ports quorum election; do
                p=$(pick_port)
                while [ -n "${seen[$p]:-}" ]; do p=$(pick_port); done
                seen[$p]=1
                eval "$kind[$n]=$p"
            done
        done
        write_config
    fi
    for n in 1 2 3; do start_member "$n"; done
    wait_leader
    write_env
}

[ -z "$member" ] || case "$member" in 1 | 2 | 3) ;; *) usage ;; esac

case "$action" in
start) start_all ;;
stop) for n in 1 2 3; do stop_member "$n"; done ;;
stop-member) [ -n "$member" ] || usage; stop_member "$member" KILL ;;
start-member) [ -n "$member" ] || usage; start_member "$member" ;;
leader) leader ;;
wait-leader) wait_leader ;;
*) usage ;;
esac
