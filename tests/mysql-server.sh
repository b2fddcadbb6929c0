#!/bin/sh
# A throwaway MariaDB server for the MySQL backend tests.
#
#   tests/mysql-server.sh start DIR     create (first time) and start; prints export lines
#   tests/mysql-server.sh stop DIR      stop the server started in DIR (by its own pid)
#   tests/mysql-server.sh restart DIR   stop, then start again on the same port
#
# Everything lives under DIR: data directory, socket, pid file, error log.
# The server reads no configuration file (--no-defaults), listens on
# 127.0.0.1 only, on a free port, and runs as the `mysql` user when started
# by root.  `start` prints (and writes to DIR/env) shell lines:
#   export DLOCK_TEST_MYSQL_URL=mysql://dlock:<percent-encoded password>@127.0.0.1:<port>/dlock_test
#   export DLOCK_TEST_MYSQL_ROOT_URL=mysql://root@localhost/?socket=DIR/mysqld.sock
#   export DLOCK_TEST_MYSQL_DIR=DIR
#   export DLOCK_TEST_MYSQL_CA=DIR/tls/ca.pem         (when TLS is on)
#   export DLOCK_TEST_MYSQL_OTHER_CA=DIR/tls/other-ca.pem
# TLS: when openssl is there (and DLOCK_TEST_MYSQL_TLS is not "off"), a CA and
# a server certificate for 127.0.0.1 / localhost are made under DIR/tls and
# the server offers TLS (it does not require it).  other-ca.pem is a CA that
# signed nothing: verification against it must fail.
# DLOCK_TEST_MYSQL_EXTRA: more server options, after the script's own (a
# test's private server with --log-bin, say).
# The password of the test user is made of URL-special characters on
# purpose: it exercises the URL parser on every run.
set -eu

die() { echo "mysql-server.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|restart DIR"; }

[ $# -eq 2 ] || usage
action=$1
dir=$2

find_prog() {
    for p in "$@"; do
        for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin /usr/libexec; do
            [ -x "$d/$p" ] && { echo "$d/$p"; return 0; }
        done
        command -v "$p" 2>/dev/null && return 0
    done
    return 1
}

MYSQLD=$(find_prog mariadbd mysqld) || die "no mariadbd/mysqld found (Debian: mariadb-server)"
INSTALL_DB=$(find_prog mariadb-install-db mysql_install_db) || die "no mariadb-install-db found"
CLIENT=$(find_prog mariadb mysql) || die "no mariadb/mysql client found (Debian: mariadb-client)"

TEST_USER=dlock
TEST_PASSWORD='p@ss:w/rd%'
TEST_PASSWORD_ENC='p%40ss%3Aw%2Frd%25'
TEST_DB=dlock_test

# As root the server runs as `mysql`, when that user exists and can reach
# DIR (a parent folder made by mkdtemp is often 0700); else as root.
run_as_user() {
    if [ "$(id -u)" -ne 0 ]; then
        id -un
    elif id mysql >/dev/null 2>&1 &&
         su mysql -s /bin/sh -c 'test -x "$1" && test -r "$1"' sh "$(dirname "$dir")" 2>/dev/null; then
        echo mysql
    else
        echo root
    fi
}

. "$(dirname "$0")/server-common.sh"

server_pid() {
    [ -f "$dir/mysqld.pid" ] && cat "$dir/mysqld.pid" 2>/dev/null || true
}

root_sql() {
    "$CLIENT" --no-defaults --protocol=socket --socket="$dir/mysqld.sock" -uroot -N -B -e "$1"
}

make_certificates() {
    tls=$dir/tls
    [ -f "$tls/server-cert.pem" ] && return 0
    mkdir -p "$tls"
    (
        cd "$tls"
        ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        openssl req -x509 $ec -days 3650 -subj "/CN=dlock test CA" \
            -keyout ca-key.pem -out ca.pem
        openssl req -x509 $ec -days 3650 -subj "/CN=dlock unrelated CA" \
            -keyout other-ca-key.pem -out other-ca.pem
        openssl req $ec -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
            -days 3650 -extfile ext.cnf -out server-cert.pem
    ) >"$dir/tls.log" 2>&1 || { rm -rf "$tls"; return 1; }
    chown -R "$(run_as_user)" "$tls" 2>/dev/null || true
}

tls_wanted() {
    [ "${DLOCK_TEST_MYSQL_TLS:-on}" != off ] && command -v openssl >/dev/null 2>&1
}

launch() {
    port=$1
    user=$(run_as_user)
    set --
    if [ -f "$dir/tls/server-cert.pem" ]; then
        set -- --ssl-ca="$dir/tls/ca.pem" --ssl-cert="$dir/tls/server-cert.pem" \
            --ssl-key="$dir/tls/server-key.pem"
    fi
    : >"$dir/error.log"
    chown "$user" "$dir/error.log" 2>/dev/null || true
    # setsid: the server must not get the terminal's or the test driver's
    # signals; it is stopped by its pid only.
    setsid "$MYSQLD" --no-defaults \
        --user="$user" \
        --datadir="$dir/data" \
        --socket="$dir/mysqld.sock" \
        --pid-file="$dir/mysqld.pid" \
        --log-error="$dir/error.log" \
        --port="$port" \
        --bind-address=127.0.0.1 \
        --skip-name-resolve \
        --skip-log-bin \
        --performance-schema=OFF \
        --innodb-buffer-pool-size=32M \
        --innodb-log-file-size=16M \
        --innodb-use-native-aio=0 \
        --max-connections=300 \
        "$@" ${DLOCK_TEST_MYSQL_EXTRA:-} \
        </dev/null >/dev/null 2>&1 &
    launcher=$!
    # Ready when the socket answers.
    i=0
    while [ $i -lt 300 ]; do
        if root_sql "SELECT 1" >/dev/null 2>&1; then
            echo "$port" >"$dir/port"
            return 0
        fi
        if ! kill -0 "$launcher" 2>/dev/null; then
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
    kill "$launcher" 2>/dev/null || true
    return 1
}

do_start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    user=$(run_as_user)
    if is_running; then
        die "a server is already running in $dir (pid $(server_pid))"
    fi
    # The server runs as `mysql`: it must reach DIR, and nobody else needs to.
    chown "$user" "$dir" 2>/dev/null || true
    chmod 0755 "$dir"
    fresh=no
    if [ ! -d "$dir/data/mysql" ]; then
        fresh=yes
        mkdir -p "$dir/data"
        chown "$user" "$dir/data" 2>/dev/null || true
        # root: no password over the socket only (skip-name-resolve means
        # 'localhost' accounts match socket connections only).
        "$INSTALL_DB" --no-defaults --user="$user" --datadir="$dir/data" \
            --auth-root-authentication-method=normal --skip-test-db \
            >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; die "mariadb-install-db failed"; }
    fi
    if [ "$fresh" = yes ] && tls_wanted; then
        make_certificates || echo "mysql-server.sh: no TLS (see $dir/tls.log)" >&2
    fi
    if [ -f "$dir/port" ]; then
        port=$(cat "$dir/port")
        launch "$port" || { tail -n 20 "$dir/error.log" >&2; die "the server did not start on port $port"; }
    else
        started=no
        for attempt in 1 2 3 4 5; do
            port=$(pick_port)
            if launch "$port"; then started=yes; break; fi
        done
        [ "$started" = yes ] || { tail -n 20 "$dir/error.log" >&2; die "the server did not start"; }
    fi
    if [ "$fresh" = yes ]; then
        root_sql "
            DELETE FROM mysql.global_priv WHERE User = '';
            CREATE DATABASE IF NOT EXISTS $TEST_DB;
            CREATE USER '$TEST_USER'@'127.0.0.1' IDENTIFIED BY '$TEST_PASSWORD';
            CREATE USER '$TEST_USER'@'localhost' IDENTIFIED BY '$TEST_PASSWORD';
            CREATE USER '${TEST_USER}2'@'127.0.0.1' IDENTIFIED BY '$TEST_PASSWORD';
            GRANT PROCESS ON *.* TO '$TEST_USER'@'127.0.0.1', '$TEST_USER'@'localhost';
            GRANT ALL ON $TEST_DB.* TO '$TEST_USER'@'127.0.0.1', '$TEST_USER'@'localhost',
                                       '${TEST_USER}2'@'127.0.0.1';
            FLUSH PRIVILEGES;" || die "could not create the test user"
        # Session-mode listing reads every user lock from this plugin
        # (docs/mysql.md); check_mysql takes it away and back to test both.
        root_sql "INSTALL SONAME 'metadata_lock_info';" || die "could not install metadata_lock_info"
    fi
    cat >"$dir/env" <<EOF
export DLOCK_TEST_MYSQL_URL='mysql://$TEST_USER:$TEST_PASSWORD_ENC@127.0.0.1:$port/$TEST_DB'
export DLOCK_TEST_MYSQL_ROOT_URL='mysql://root@localhost/?socket=$dir/mysqld.sock'
export DLOCK_TEST_MYSQL_DIR='$dir'
EOF
    if [ -f "$dir/tls/server-cert.pem" ]; then
        cat >>"$dir/env" <<EOF
export DLOCK_TEST_MYSQL_CA='$dir/tls/ca.pem'
export DLOCK_TEST_MYSQL_OTHER_CA='$dir/tls/other-ca.pem'
EOF
    fi
    cat "$dir/env"
}

do_stop() {
    [ -d "$dir" ] || return 0
    pid=$(server_pid)
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null; do
            if [ $i -ge 600 ]; then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.05
            i=$((i + 1))
        done
    fi
    rm -f "$dir/mysqld.pid"
}

case "$action" in
    start) do_start ;;
    stop) do_stop ;;
    restart)
        [ -f "$dir/port" ] || die "no server was started in $dir"
        do_stop
        do_start >/dev/null
        cat "$dir/env"
        ;;
    *) usage ;;
esac
