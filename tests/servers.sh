#!/bin/bash
# One way to start and stop the test servers, for scripts/test-all.sh,
# scripts/hardening.sh and a developer by hand:
#
#   tests/servers.sh start DIR [STORE...]   start throwaway servers in DIR and
#                                           print the export lines of their URLs
#   tests/servers.sh stop DIR               stop every server started in DIR
#   tests/servers.sh heal DIR               every server started in DIR running
#                                           and answering again (SIGCONT, members
#                                           restarted): after a test that failed
#                                           half-way through a fault
#   tests/servers.sh stores                 the stores it can start, in order
#
#   eval "$(tests/servers.sh start /tmp/s)"; make check; tests/servers.sh stop /tmp/s
#
# STORE is one of `stores` (default: all of them).  Besides each server's own
# variables (DLOCK_TEST_PG_URL, ...), it prints DLOCK_TEST_URLS: every URL the
# shared suites run on (each store in each of its modes), and
# DLOCK_TEST_BENCH_URLS: one URL of each kind for bench/dlock-bench --short.
# A new store adds one start_STORE function (printing export lines, adding
# to $urls and $bench_urls) and its name to STORES.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)

STORES="sqlite pg mysql redis etcd pgbouncer zookeeper"

die() { echo "servers.sh: $*" >&2; exit 1; }

# The query separator for appending an option to a URL.
sep() { case $1 in *\?*) echo '&' ;; *) echo '?' ;; esac; }

start_sqlite() {
    urls="$urls sqlite://$dir/conformance.db"
    bench_urls="$bench_urls sqlite://$dir/bench.db"
}

# PostgreSQL in session mode (direct) and lease mode (direct); fencing=on is
# tested by check_postgresql.
start_pg() {
    env=$("$src/tests/pg-server.sh" start "$dir/pg")
    echo "$env"
    eval "$env"
    urls="$urls $DLOCK_TEST_PG_URL $DLOCK_TEST_PG_URL$(sep "$DLOCK_TEST_PG_URL")mode=lease"
    bench_urls="$bench_urls $DLOCK_TEST_PG_URL"
}

# PgBouncer (Debian's) in front of that PostgreSQL: transaction pooling
# (pools of 4, 1 and 2) and session pooling (tests/pgbouncer.sh); lease mode
# through the transaction pooler, session mode through the session pooler.
start_pgbouncer() {
    [ -n "${DLOCK_TEST_PG_URL:-}" ] || die "pgbouncer needs pg (start pg first)"
    env=$("$src/tests/pgbouncer.sh" start "$dir/pgbouncer" "$DLOCK_TEST_PG_URL")
    echo "$env"
    eval "$env"
    urls="$urls $DLOCK_TEST_PGB_TX_URL$(sep "$DLOCK_TEST_PGB_TX_URL")mode=lease $DLOCK_TEST_PGB_SESSION_URL"
    bench_urls="$bench_urls $DLOCK_TEST_PGB_TX_URL$(sep "$DLOCK_TEST_PGB_TX_URL")mode=lease"
}

# MySQL three ways: session mode (first: the mutants' "mysql" URL), lease
# mode, and session mode with fencing=on.
start_mysql() {
    env=$("$src/tests/mysql-server.sh" start "$dir/mysql")
    echo "$env"
    eval "$env"
    local s
    s=$(sep "$DLOCK_TEST_MYSQL_URL")
    urls="$urls $DLOCK_TEST_MYSQL_URL ${DLOCK_TEST_MYSQL_URL}${s}mode=lease ${DLOCK_TEST_MYSQL_URL}${s}fencing=on"
    bench_urls="$bench_urls $DLOCK_TEST_MYSQL_URL ${DLOCK_TEST_MYSQL_URL}${s}mode=lease"
}

start_redis() {
    env=$("$src/tests/redis-server.sh" start "$dir/redis")
    echo "$env"
    eval "$env"
    urls="$urls $DLOCK_TEST_REDIS_URL"
    bench_urls="$bench_urls $DLOCK_TEST_REDIS_URL"
}

# etcd: a three-member cluster (and a single member with authentication,
# for check_etcd and the refused login); the suites run on the cluster.
start_etcd() {
    env=$("$src/tests/etcd-server.sh" start "$dir/etcd")
    echo "$env"
    eval "$env"
    urls="$urls $DLOCK_TEST_ETCD_URL"
    bench_urls="$bench_urls $DLOCK_TEST_ETCD_URL"
}

# ZooKeeper: a three-server ensemble on loopback (tests/zookeeper-server.sh).
start_zookeeper() {
    env=$("$src/tests/zookeeper-server.sh" start "$dir/zookeeper")
    echo "$env"
    eval "$env"
    urls="$urls $DLOCK_TEST_ZK_URL"
    bench_urls="$bench_urls $DLOCK_TEST_ZK_URL"
}

# Stop functions: by default tests/STORE-server.sh stop DIR/STORE.
stop_pgbouncer() { "$src/tests/pgbouncer.sh" stop "$dir/pgbouncer"; }
stop_sqlite() { :; }

# Heal functions, after every process under DIR got SIGCONT: members a
# test killed are started again.
heal_etcd() { "$src/tests/etcd-server.sh" resume "$dir/etcd"; }
heal_zookeeper() {
    local n
    for n in 1 2 3; do
        "$src/tests/zookeeper-server.sh" start-member "$dir/zookeeper" "$n"
    done
    "$src/tests/zookeeper-server.sh" wait-leader "$dir/zookeeper"
}

# A fault test that fails half-way (Check ends its process at the failed
# assertion, before its teardown) can leave a server, a PostgreSQL backend
# or a cluster member stopped or killed; the next user of these servers
# (the mutation check runs test after failing test) would meet it.
heal_all() {
    local f pid store
    while IFS= read -r f; do
        pid=$(head -n 1 "$f" 2>/dev/null) || continue
        case $pid in '' | *[!0-9]*) continue ;; esac
        kill -CONT "$pid" 2>/dev/null || true
        pkill -CONT -P "$pid" 2>/dev/null || true # PostgreSQL's backends
    done < <(find "$dir" -maxdepth 3 \( -name '*.pid' -o -name pid \) -type f)
    for store in $(cat "$dir/started"); do
        if declare -F "heal_$store" >/dev/null; then
            "heal_$store" >/dev/null || die "$store could not be healed"
        fi
    done
}

stop_one() {
    if declare -F "stop_$1" >/dev/null; then
        "stop_$1"
    else
        "$src/tests/$1-server.sh" stop "$dir/$1"
    fi
}

cmd=${1:-}
case $cmd in
stores)
    echo "$STORES"
    ;;
start)
    [ $# -ge 2 ] || die "usage: servers.sh start DIR [STORE...]"
    dir=$2
    shift 2
    wanted=${*:-$STORES}
    mkdir -p "$dir"
    chmod 755 "$dir" # the servers run as their own users and must reach it
    dir=$(cd "$dir" && pwd)
    urls="" bench_urls=""
    for store in $STORES; do # in the order of STORES, whatever the order asked
        case " $wanted " in *" $store "*) ;; *) continue ;; esac
        declare -F "start_$store" >/dev/null || die "no such store: $store (servers.sh stores)"
        echo "$store" >>"$dir/started"
        # In this shell (a later store may need an earlier one's variables),
        # its export lines into a file, then out.
        "start_$store" >"$dir/$store.env" || { cat "$dir/$store.env" >&2; die "$store did not start"; }
        cat "$dir/$store.env"
    done
    # shellcheck disable=SC2086
    urls=$(printf '%s\n' $urls | tr '\n' ' ')
    echo "export DLOCK_TEST_URLS='${urls% }'"
    # shellcheck disable=SC2086
    bench_urls=$(printf '%s\n' $bench_urls | tr '\n' ' ')
    echo "export DLOCK_TEST_BENCH_URLS='${bench_urls% }'"
    echo "export DLOCK_TEST_SERVERS_DIR='$dir'"
    ;;
heal)
    [ $# -eq 2 ] || die "usage: servers.sh heal DIR"
    dir=$2
    [ -f "$dir/started" ] || exit 0
    heal_all
    ;;
stop)
    [ $# -eq 2 ] || die "usage: servers.sh stop DIR"
    dir=$2
    [ -f "$dir/started" ] || exit 0
    # In reverse order: a pooler before its server.
    for store in $(tac "$dir/started"); do
        stop_one "$store" >/dev/null 2>&1 || echo "servers.sh: stopping $store failed" >&2
    done
    rm -f "$dir/started"
    ;;
*)
    die "usage: servers.sh start DIR [STORE...] | heal DIR | stop DIR | stores"
    ;;
esac
