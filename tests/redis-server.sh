#!/bin/sh
# A throwaway Redis server for the Redis backend tests.
#
#   tests/redis-server.sh start DIR     start (writing DIR/redis.conf the first time); prints export lines
#   tests/redis-server.sh stop DIR      stop the server started in DIR (by its own pid)
#   tests/redis-server.sh restart DIR   stop, then start again on the same port with no data (its
#                                       snapshot is deleted first)
#   tests/redis-server.sh crash DIR     kill -9 the server, then start it again on the same port and
#                                       the same folder: it loads its last snapshot (dump.rdb), as a
#                                       real server that crashed does
#
# Everything lives under DIR: the configuration, the pid file, the log, a
# unix socket (DIR/redis.sock) and DIR/env.  No system service is used.  The
# server listens on 127.0.0.1 only, on a free port, with a password
# (requirepass), and persists as Redis does by default: RDB snapshots
# (a save point every hour after one change, and SAVE when asked), no AOF.
# A crash test must run against a server that restores what it saved, or
# it proves nothing.
#
# `start` prints (and writes to DIR/env) shell lines:
#   export DLOCK_TEST_REDIS_URL='redis://:<password>@127.0.0.1:<port>/0'
#   export DLOCK_TEST_REDIS_DIR='DIR'
#   export DLOCK_TEST_REDIS_PORT=<port>  DLOCK_TEST_REDIS_PASSWORD=<password>
#
# The server binary is $DLOCK_REDIS_SERVER, else redis-server on the PATH.
set -eu

die() { echo "redis-server.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|restart|crash DIR"; }

[ $# -eq 2 ] || usage
action=$1
dir=$2

SERVER=${DLOCK_REDIS_SERVER:-redis-server}
command -v "$SERVER" >/dev/null 2>&1 || [ -x "$SERVER" ] || die "no redis-server found (Debian: redis-server)"
PASSWORD=Redis-Test-Passw0rd

. "$(dirname "$0")/server-common.sh"

case "$dir" in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac

server_pid() {
    [ -f "$dir/redis.pid" ] && head -n 1 "$dir/redis.pid" 2>/dev/null || true
}

configured_port() {
    sed -n 's/^port \([0-9][0-9]*\).*/\1/p' "$dir/redis.conf" 2>/dev/null | tail -n 1
}

write_env() {
    port=$1
    {
        echo "export DLOCK_TEST_REDIS_URL='redis://:$PASSWORD@127.0.0.1:$port/0'"
        echo "export DLOCK_TEST_REDIS_DIR='$dir'"
        echo "export DLOCK_TEST_REDIS_PORT='$port'"
        echo "export DLOCK_TEST_REDIS_PASSWORD='$PASSWORD'"
    } >"$dir/env"
    cat "$dir/env"
}

write_config() {
    cat >"$dir/redis.conf" <<EOF
# Written by tests/redis-server.sh: a throwaway test server.
bind 127.0.0.1
port $1
unixsocket $dir/redis.sock
unixsocketperm 700
requirepass $PASSWORD
daemonize yes
pidfile $dir/redis.pid
logfile $dir/server.log
dir $dir
save 3600 1
dbfilename dump.rdb
appendonly no
protected-mode yes
EOF
}

start_server() {
    mkdir -p "$dir"
    if is_running; then
        write_env "$(configured_port)"
        return 0
    fi
    port=$(configured_port)
    tries=0
    while :; do
        if [ -z "$port" ] || port_in_use "$port"; then
            [ -n "$port" ] && [ "$action" != start ] && die "port $port is taken by another program"
            port=$(pick_port)
        fi
        write_config "$port"
        rm -f "$dir/redis.pid"
        "$SERVER" "$dir/redis.conf" >/dev/null 2>&1 || true
        up=0
        i=0
        while [ $i -lt 100 ]; do
            if REDISCLI_AUTH=$PASSWORD redis-cli -h 127.0.0.1 -p "$port" --no-auth-warning ping 2>/dev/null | grep -q PONG; then
                up=1
                break
            fi
            i=$((i + 1))
            sleep 0.05
        done
        [ $up -eq 1 ] && break
        tries=$((tries + 1))
        if [ $tries -lt 5 ] && [ "$action" = start ]; then
            port=
            continue
        fi
        tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
        die "the server in $dir did not start"
    done
    write_env "$port"
}

stop_server() {
    is_running || return 0 # is_running sets $pid
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid"
    rm -f "$dir/redis.pid"
}

# kill -9: no shutdown save; the next start loads the last snapshot.
crash_server() {
    pid=$(server_pid)
    [ -n "$pid" ] || die "no server running in $dir"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.02
    done
    rm -f "$dir/redis.pid"
}

case "$action" in
start)
    start_server
    ;;
restart)
    stop_server
    rm -f "$dir/dump.rdb"
    start_server
    ;;
crash)
    crash_server
    start_server
    ;;
stop)
    stop_server
    ;;
*)
    usage
    ;;
esac
