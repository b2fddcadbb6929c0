#!/bin/sh
# A throwaway PostgreSQL server for the PostgreSQL backend tests.
#
#   tests/pg-server.sh start DIR     create (first time) and start; prints export lines
#   tests/pg-server.sh stop DIR      stop the server started in DIR (by its own pid)
#   tests/pg-server.sh restart DIR   stop, then start again on the same port
#   tests/pg-server.sh crash DIR     kill -QUIT the postmaster (an immediate
#                                    shutdown: WAL not yet flushed is lost, as
#                                    in a crash); `start` then recovers
#
# Everything lives under DIR: the data directory (DIR/data), the unix socket,
# the server log (DIR/server.log) and DIR/env.  No system service is used and
# nothing outside DIR is touched.  When run by root, the cluster is created
# and run as the `postgres` OS user (DIR is chowned to it, so DIR's parent
# folders must be searchable by that user: /tmp is fine); otherwise as the
# current user.
#
# The server listens on 127.0.0.1 only, on a free port, with trust
# authentication (a test server; the role dlock_password excepted) and fsync
# off (DLOCK_PG_FSYNC=on at `start`: fsync and full_page_writes on, for a
# crash test).  synchronous_commit is off and the WAL writer flushes every
# 10 s, so that a commit that does not ask for a synchronous flush itself is
# lost by `crash` (the durability that libdlock must force per statement,
# issue 23).  max_locks_per_transaction is 1024: with max_connections = 100 the
# shared lock table has room for 102,400 locks, so one session can hold
# 10,000 advisory locks.
#
# `start` prints (and writes to DIR/env) shell lines:
#   export DLOCK_TEST_PG_URL='postgresql://postgres@127.0.0.1:<port>/postgres'
#   export DLOCK_TEST_PG_PASSWORD_URL='postgresql://dlock_password:…@127.0.0.1:<port>/postgres'
#     (the one role that must give its password: scram-sha-256)
#   export DLOCK_TEST_PG_DIR='DIR'
#
# The binaries come from $DLOCK_PG_BINDIR, else /usr/lib/postgresql/15/bin,
# else the newest /usr/lib/postgresql/*/bin.
set -eu

die() { echo "pg-server.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|restart|crash DIR"; }

[ $# -eq 2 ] || usage
action=$1
dir=$2

find_bindir() {
    if [ -n "${DLOCK_PG_BINDIR:-}" ]; then
        echo "$DLOCK_PG_BINDIR"
        return 0
    fi
    if [ -x /usr/lib/postgresql/15/bin/postgres ]; then
        echo /usr/lib/postgresql/15/bin
        return 0
    fi
    newest=
    newest_major=0
    for d in /usr/lib/postgresql/*/bin; do
        major=${d#/usr/lib/postgresql/}
        major=${major%%/*}
        case "$major" in *[!0-9]* | '') continue ;; esac
        if [ -x "$d/postgres" ] && [ "$major" -gt "$newest_major" ]; then
            newest=$d
            newest_major=$major
        fi
    done
    [ -n "$newest" ] && { echo "$newest"; return 0; }
    return 1
}

BINDIR=$(find_bindir) || die "no PostgreSQL server binaries found (Debian: postgresql-15)"
[ -x "$BINDIR/initdb" ] || die "$BINDIR/initdb is missing"

# Run a server program as the user that owns the cluster.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

. "$(dirname "$0")/server-common.sh"

server_pid() {
    # The first line of postmaster.pid is the postmaster's pid.
    if [ -f "$dir/data/postmaster.pid" ]; then
        head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true
    fi
}

configured_port() {
    sed -n "s/^port = \([0-9][0-9]*\).*/\1/p" "$dir/data/conf.d/dlock-test.conf" 2>/dev/null | tail -n 1
}

write_env() {
    port=$1
    {
        echo "export DLOCK_TEST_PG_URL='postgresql://postgres@127.0.0.1:$port/postgres'"
        # A cluster made before that role existed has no such line: no URL.
        if grep -q '^host all dlock_password ' "$dir/data/pg_hba.conf" 2>/dev/null; then
            echo "export DLOCK_TEST_PG_PASSWORD_URL='postgresql://dlock_password:Right-Passw0rd@127.0.0.1:$port/postgres'"
        fi
        echo "export DLOCK_TEST_PG_DIR='$dir'"
    } >"$dir/env"
    cat "$dir/env"
}

create_cluster() {
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "run as root, but there is no postgres OS user"
        chown postgres "$dir"
    fi
    chmod 755 "$dir"
    as_owner "$BINDIR/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
        --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    as_owner mkdir -p "$dir/data/conf.d"
    echo "include_dir = 'conf.d'" | as_owner sh -c "cat >> '$dir/data/postgresql.conf'"
    # Loopback only: drop the ::1 line that initdb writes.  One role logs in
    # with a password (the first matching line wins), so that a test can be
    # refused a login as a user with a wrong password would be.
    as_owner sh -c "{ echo 'host all dlock_password 127.0.0.1/32 scram-sha-256';
                      grep -v '::1/128' '$dir/data/pg_hba.conf'; } > '$dir/data/pg_hba.conf.new' &&
                    mv '$dir/data/pg_hba.conf.new' '$dir/data/pg_hba.conf'"
    echo "CREATE ROLE dlock_password LOGIN PASSWORD 'Right-Passw0rd';" |
        as_owner "$BINDIR/postgres" --single -D "$dir/data" postgres >"$dir/single.log" 2>&1 ||
        { cat "$dir/single.log" >&2; die "cannot create the role dlock_password"; }
}

write_config() {
    port=$1
    fsync=off
    [ "${DLOCK_PG_FSYNC:-off}" = on ] && fsync=on
    as_owner sh -c "cat > '$dir/data/conf.d/dlock-test.conf'" <<EOF
# Written by tests/pg-server.sh: a throwaway test server.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 100
# 1024 x 100 = 102,400 lock slots: room for 10,000 advisory locks in one session.
max_locks_per_transaction = 1024
fsync = $fsync
synchronous_commit = off
wal_writer_delay = 10s
full_page_writes = $fsync
shared_buffers = 32MB
logging_collector = off
log_min_messages = warning
EOF
}

start_server() {
    if is_running; then
        write_env "$(configured_port)"
        return 0
    fi
    [ -f "$dir/data/PG_VERSION" ] || create_cluster
    port=$(configured_port)
    tries=0
    while :; do
        if [ -z "$port" ] || port_in_use "$port"; then
            [ -n "$port" ] && [ "$action" = restart ] && die "port $port is taken by another program"
            port=$(pick_port)
        fi
        write_config "$port"
        # -w: wait until the server accepts connections.
        if as_owner "$BINDIR/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -s start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        # Someone may have taken the port between the check and the bind.
        if [ $tries -lt 5 ] && [ "$action" != restart ] && grep -q "could not bind\|could not create listen socket" "$dir/server.log" 2>/dev/null; then
            port=
            continue
        fi
        tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
        die "the server in $dir did not start"
    done
    # pg_ctl -w has seen it accept connections; check the TCP side too.
    tries=0
    until "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; do
        tries=$((tries + 1))
        [ $tries -lt 100 ] || die "the server in $dir does not accept TCP connections on port $port"
        sleep 0.1
    done
    write_env "$port"
}

stop_server() {
    is_running || return 0 # is_running sets $pid
    # SIGINT is PostgreSQL's "fast" shutdown: sessions are ended at once.
    kill -INT "$pid" 2>/dev/null || true
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        if [ $tries -eq 300 ]; then
            kill -QUIT "$pid" 2>/dev/null || true # immediate shutdown
        elif [ $tries -ge 400 ]; then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
}

case "$dir" in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac

crash_server() {
    pid=$(server_pid)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || die "no server runs in $dir"
    kill -QUIT "$pid"
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        [ $tries -ge 300 ] && die "the postmaster $pid did not exit after SIGQUIT"
        sleep 0.05
    done
}

case "$action" in
crash)
    crash_server
    ;;
start | restart)
    [ "$action" = restart ] && stop_server
    start_server
    ;;
stop)
    stop_server
    ;;
*)
    usage
    ;;
esac
