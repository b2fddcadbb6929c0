#!/bin/sh
# A throwaway PgBouncer in front of the test PostgreSQL (tests/pg-server.sh).
#
#   tests/pgbouncer.sh start DIR PG_URL|PG_PORT   start; prints export lines
#   tests/pgbouncer.sh stop DIR                   stop the one started in DIR (by its own pid)
#
# Debian's `pgbouncer` on 127.0.0.1, a free port, trust authentication (the
# users are listed in DIR/userlist.txt), the config, log and pid file in
# DIR.  It offers the server's `postgres` database under four names:
#   dlock_tx        pool_mode=transaction, pool_size $DLOCK_PGB_POOL_SIZE (default 4)
#   dlock_tx1       pool_mode=transaction, pool_size 1
#   dlock_tx2       pool_mode=transaction, pool_size 2
#   dlock_session   pool_mode=session,     pool_size 40
# The admin console (database `pgbouncer`) is open to `postgres`.
# `start` prints (and writes to DIR/env):
#   export DLOCK_TEST_PGB_TX_URL='postgresql://postgres@127.0.0.1:<port>/dlock_tx'
#   export DLOCK_TEST_PGB_TX1_URL=... DLOCK_TEST_PGB_TX2_URL=... DLOCK_TEST_PGB_SESSION_URL=...
#   export DLOCK_TEST_PGB_DIR='DIR'
# When run by root, pgbouncer (which refuses to run as root) runs as the
# `postgres` OS user, and DIR is chowned to it.
set -eu

die() { echo "pgbouncer.sh: $*" >&2; exit 1; }
usage() { die "usage: $0 start DIR PG_URL|PG_PORT, or $0 stop DIR"; }

[ $# -ge 2 ] || usage
action=$1
dir=$2
case "$dir" in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac

. "$(dirname "$0")/server-common.sh"

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

bouncer_pid() {
    [ -f "$dir/pgbouncer.pid" ] && head -n 1 "$dir/pgbouncer.pid" 2>/dev/null || true
}

stop_bouncer() {
    pid=$(bouncer_pid)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        return 0
    fi
    kill -INT "$pid" 2>/dev/null || true # immediate shutdown
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        [ $tries -ge 100 ] && { kill -KILL "$pid" 2>/dev/null || true; break; }
        sleep 0.1
    done
}

start_bouncer() {
    [ $# -eq 1 ] || usage
    case "$1" in
    *[!0-9]*) pg_port=$(echo "$1" | sed -n 's|.*@[^/:]*:\([0-9][0-9]*\).*|\1|p') ;;
    *) pg_port=$1 ;;
    esac
    [ -n "$pg_port" ] || die "no port in '$1'"
    command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || die "pgbouncer is not installed (Debian: pgbouncer)"
    bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    stop_bouncer
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    chmod 755 "$dir"
    pool=${DLOCK_PGB_POOL_SIZE:-4}
    tries=0
    while :; do
        port=$(pick_port)
        server="host=127.0.0.1 port=$pg_port dbname=postgres"
        as_owner sh -c "cat > '$dir/userlist.txt'" <<EOF
"postgres" ""
"dlock_password" ""
EOF
        as_owner sh -c "cat > '$dir/pgbouncer.ini'" <<EOF
; Written by tests/pgbouncer.sh: a throwaway test pooler.
[databases]
dlock_tx = $server pool_mode=transaction pool_size=$pool
dlock_tx1 = $server pool_mode=transaction pool_size=1
dlock_tx2 = $server pool_mode=transaction pool_size=2
dlock_session = $server pool_mode=session pool_size=40

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
max_client_conn = 400
default_pool_size = $pool
reserve_pool_size = 0
server_idle_timeout = 0
ignore_startup_parameters = extra_float_digits
; the tests send RECONNECT to start from fresh server sessions
admin_users = postgres
EOF
        if as_owner "$bin" -d -q "$dir/pgbouncer.ini" 2>>"$dir/start.log"; then
            :
        fi
        n=0
        until bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; do
            n=$((n + 1))
            [ $n -ge 50 ] && break
            sleep 0.1
        done
        if [ $n -lt 50 ] && [ -n "$(bouncer_pid)" ]; then
            break
        fi
        tries=$((tries + 1))
        [ $tries -lt 5 ] || { tail -n 20 "$dir/pgbouncer.log" "$dir/start.log" >&2 2>/dev/null; die "pgbouncer did not start"; }
    done
    base="postgresql://postgres@127.0.0.1:$port"
    {
        echo "export DLOCK_TEST_PGB_TX_URL='$base/dlock_tx'"
        echo "export DLOCK_TEST_PGB_TX1_URL='$base/dlock_tx1'"
        echo "export DLOCK_TEST_PGB_TX2_URL='$base/dlock_tx2'"
        echo "export DLOCK_TEST_PGB_SESSION_URL='$base/dlock_session'"
        echo "export DLOCK_TEST_PGB_DIR='$dir'"
    } >"$dir/env"
    cat "$dir/env"
}

case "$action" in
start)
    shift 2
    start_bouncer "$@"
    ;;
stop)
    stop_bouncer
    ;;
*)
    usage
    ;;
esac
