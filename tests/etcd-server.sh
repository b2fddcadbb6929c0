#!/bin/sh
# A throwaway three-member etcd cluster for the etcd backend tests.
#
#   tests/etcd-server.sh start DIR     start (or find running) the cluster in DIR; prints export lines
#   tests/etcd-server.sh stop DIR      stop every member started in DIR (by its own pid)
#   tests/etcd-server.sh resume DIR    SIGCONT every member and start again any that is not running
#                                      (the fault tests stop and kill members; the next suite wants
#                                      the whole cluster back)
#
# Everything lives under DIR: one data folder, log and pid file per member,
# and DIR/env.  The members listen on 127.0.0.1 only, on free client and peer
# ports picked at random, with short heartbeat and election timeouts (50 ms /
# 500 ms) so that a leader loss heals in about a second.  etcd fsyncs its WAL
# as in a real deployment: the fault tests kill members and rely on it.
#
# A fourth, single member with authentication enabled (user "dlock", role
# with read/write on every key) serves the authentication tests.  When
# openssl is there it also serves HTTPS on a port of its own, with a
# certificate for 127.0.0.1 from a throwaway CA (DIR/tls/ca.pem), for the
# etcds:// tests; DIR/tls/other-ca.pem is a CA that signed nothing.
#
# `start` prints (and writes to DIR/env) shell lines:
#   export DLOCK_TEST_ETCD_URL='etcd://127.0.0.1:<c1>,127.0.0.1:<c2>,127.0.0.1:<c3>'
#   export DLOCK_TEST_ETCD_DIR='DIR'
#   export DLOCK_TEST_ETCD_ENDPOINTS='127.0.0.1:<c1>,...'   (for etcdctl --endpoints)
#   export DLOCK_TEST_ETCD_PID1=<pid> DLOCK_TEST_ETCD_EP1=127.0.0.1:<c1>  (and 2, 3)
#   export DLOCK_TEST_ETCD_AUTH_URL='etcd://dlock:<password>@127.0.0.1:<c4>'
#   export DLOCK_TEST_ETCD_AUTH_EP=127.0.0.1:<c4> DLOCK_TEST_ETCD_AUTH_PASSWORD=<password>
#   export DLOCK_TEST_ETCD_TLS_URL='etcds://dlock:<password>@127.0.0.1:<t4>?cafile=DIR/tls/ca.pem'
#   export DLOCK_TEST_ETCD_TLS_EP=127.0.0.1:<t4> DLOCK_TEST_ETCD_TLS_DIR=DIR/tls   (with openssl)
#
# The server binary is $DLOCK_ETCD_SERVER, else etcd on the PATH (Debian:
# etcd-server); etcdctl (Debian: etcd-client) checks that a leader is elected.
set -eu

die() { echo "etcd-server.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|resume DIR"; }

[ $# -eq 2 ] || usage
action=$1
dir=$2

SERVER=${DLOCK_ETCD_SERVER:-etcd}
command -v "$SERVER" >/dev/null 2>&1 || [ -x "$SERVER" ] || die "no etcd found (Debian: etcd-server)"
command -v etcdctl >/dev/null 2>&1 || die "no etcdctl found (Debian: etcd-client)"
PASSWORD=Etcd-Test-Passw0rd
export ETCDCTL_API=3

. "$(dirname "$0")/server-common.sh"

case "$dir" in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac

member_pid() { # N
    [ -f "$dir/m$1.pid" ] && head -n 1 "$dir/m$1.pid" 2>/dev/null || true
}

# Member N runs: its pid is an etcd named mN that is not a zombie (a member
# killed by a test may wait for its parent to reap it, and a pid can be
# reused).
is_running() { # N
    pid=$(member_pid "$1")
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
    [ "$state" != Z ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--name m$1 "
}

# The ports, picked once and kept in DIR/ports: "c1 p1 c2 p2 c3 p3 c4 p4 t4"
# (t4: member 4's HTTPS port).
pick_ports() {
    [ -f "$dir/ports" ] && return 0
    ports=
    for _ in 1 2 3 4 5 6 7 8 9; do
        while :; do
            p=$(pick_port)
            case " $ports " in *" $p "*) continue ;; esac
            break
        done
        ports="$ports $p"
    done
    echo $ports >"$dir/ports"
}

port_of() { # INDEX (1-based in DIR/ports)
    cut -d' ' -f"$1" "$dir/ports"
}

client_port() { port_of $((2 * $1 - 1)); }
peer_port() { port_of $((2 * $1)); }
tls_port() { port_of 9; }

# A CA and a server certificate for 127.0.0.1 in DIR/tls; 1 without openssl.
make_certificates() {
    tls=$dir/tls
    [ -f "$tls/server-cert.pem" ] && return 0
    command -v openssl >/dev/null 2>&1 || return 1
    mkdir -p "$tls"
    (
        cd "$tls"
        ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        openssl req -x509 $ec -days 3650 -subj "/CN=dlock etcd test CA" -keyout ca-key.pem -out ca.pem
        openssl req -x509 $ec -days 3650 -subj "/CN=dlock unrelated CA" -keyout other-ca-key.pem -out other-ca.pem
        openssl req $ec -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
            -days 3650 -extfile ext.cnf -out server-cert.pem
    ) >"$dir/tls.log" 2>&1 || { rm -rf "$tls"; return 1; }
}

# Member 4 serves HTTPS too: its port and certificate are there.
tls_on() { [ -n "$(tls_port)" ] && [ -f "$dir/tls/server-cert.pem" ]; }

start_member() { # N CLUSTER STATE
    n=$1
    is_running "$n" && return 0
    mkdir -p "$dir/m$n"
    if [ "$n" = 4 ]; then
        cluster="m4=http://127.0.0.1:$(peer_port 4)"
    else
        cluster="m1=http://127.0.0.1:$(peer_port 1),m2=http://127.0.0.1:$(peer_port 2),m3=http://127.0.0.1:$(peer_port 3)"
    fi
    state=new
    [ -d "$dir/m$n/member" ] && state=existing
    listen="http://127.0.0.1:$(client_port "$n")"
    tls_args=
    if [ "$n" = 4 ] && make_certificates && tls_on; then
        listen="$listen,https://127.0.0.1:$(tls_port)"
        tls_args="--cert-file $dir/tls/server-cert.pem --key-file $dir/tls/server-key.pem"
    fi
    # Its own session: a test that restarts a member must not take it
    # down with its own process group when it ends (Check kills the group).
    setsid "$SERVER" --name "m$n" --data-dir "$dir/m$n" \
        --listen-client-urls "$listen" $tls_args \
        --advertise-client-urls "http://127.0.0.1:$(client_port "$n")" \
        --listen-peer-urls "http://127.0.0.1:$(peer_port "$n")" \
        --initial-advertise-peer-urls "http://127.0.0.1:$(peer_port "$n")" \
        --initial-cluster "$cluster" --initial-cluster-state "$state" \
        --initial-cluster-token "dlock-test-$([ "$n" = 4 ] && echo auth-)$(port_of 1)" \
        --heartbeat-interval 50 --election-timeout 500 \
        --enable-v2=false --log-level warn --logger zap \
        >>"$dir/m$n.log" 2>&1 &
    echo $! >"$dir/m$n.pid"
}

endpoints() {
    echo "127.0.0.1:$(client_port 1),127.0.0.1:$(client_port 2),127.0.0.1:$(client_port 3)"
}

# Wait (up to 30 s) until every member answers and one of them is the
# leader; fail at once when a member has died (a port taken meanwhile).
wait_leader() {
    until=$(($(date +%s) + 30))
    while [ "$(date +%s)" -lt "$until" ]; do
        for n in 1 2 3; do
            is_running "$n" || return 1
        done
        out=$(etcdctl --endpoints "$(endpoints)" --dial-timeout 1s --command-timeout 2s \
            endpoint status -w json 2>/dev/null || true)
        n=$(printf '%s' "$out" | grep -o '"leader":[0-9]*' | sort -u | wc -l)
        up=$(printf '%s' "$out" | grep -o '"Endpoint"' | wc -l)
        if [ "$up" -eq 3 ] && [ "$n" -eq 1 ] && ! printf '%s' "$out" | grep -q '"leader":0'; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# Wait (up to about 20 s) until the auth member answers; fail at once when
# it has died (its port taken since it was picked).
wait_auth_member() {
    ep=127.0.0.1:$(client_port 4)
    i=0
    # Once authentication is on, the health check needs a user.
    login=
    [ -f "$dir/auth-done" ] && login="--user=root:$PASSWORD"
    while ! etcdctl --endpoints "$ep" $login --dial-timeout 1s --command-timeout 2s endpoint health >/dev/null 2>&1; do
        is_running 4 || return 1
        i=$((i + 1))
        [ $i -lt 100 ] || return 1
        sleep 0.1
    done
}

setup_auth() {
    ep=127.0.0.1:$(client_port 4)
    [ -f "$dir/auth-done" ] && return 0
    ctl="etcdctl --endpoints $ep"
    # A retried request may find its first attempt done: "already exists" is fine.
    $ctl user add root --new-user-password "$PASSWORD" >/dev/null 2>&1 || true
    $ctl user add dlock --new-user-password "$PASSWORD" >/dev/null 2>&1 || true
    $ctl role add dlockrw >/dev/null 2>&1 || true
    $ctl user grant-role root root >/dev/null 2>&1 || true
    $ctl role grant-permission dlockrw --prefix=true readwrite "" >/dev/null 2>&1 ||
        $ctl role grant-permission dlockrw readwrite "" --from-key >/dev/null
    $ctl user grant-role dlock dlockrw >/dev/null
    $ctl auth enable >/dev/null
    touch "$dir/auth-done"
}

write_env() {
    {
        echo "export DLOCK_TEST_ETCD_URL='etcd://$(endpoints)'"
        echo "export DLOCK_TEST_ETCD_DIR='$dir'"
        echo "export DLOCK_TEST_ETCD_ENDPOINTS='$(endpoints)'"
        for n in 1 2 3; do
            echo "export DLOCK_TEST_ETCD_PID$n='$(member_pid $n)' DLOCK_TEST_ETCD_EP$n='127.0.0.1:$(client_port $n)'"
        done
        echo "export DLOCK_TEST_ETCD_AUTH_URL='etcd://dlock:$PASSWORD@127.0.0.1:$(client_port 4)'"
        echo "export DLOCK_TEST_ETCD_AUTH_EP='127.0.0.1:$(client_port 4)'"
        echo "export DLOCK_TEST_ETCD_AUTH_PASSWORD='$PASSWORD'"
        if tls_on; then
            echo "export DLOCK_TEST_ETCD_TLS_URL='etcds://dlock:$PASSWORD@127.0.0.1:$(tls_port)?cafile=$dir/tls/ca.pem'"
            echo "export DLOCK_TEST_ETCD_TLS_EP='127.0.0.1:$(tls_port)' DLOCK_TEST_ETCD_TLS_DIR='$dir/tls'"
        fi
    } >"$dir/env"
    cat "$dir/env"
}

start_members() {
    for n in 1 2 3 4; do
        pid=$(member_pid "$n")
        [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null || true
        start_member "$n"
    done
}

start_cluster() {
    mkdir -p "$dir"
    fresh=0
    [ -d "$dir/m1/member" ] || fresh=1
    tries=0
    while :; do
        pick_ports
        start_members
        wait_leader && wait_auth_member && break
        tries=$((tries + 1))
        # A new cluster whose member could not bind its port (another
        # program took it since it was picked): again, on other ports.
        if [ $fresh -eq 1 ] && [ $tries -lt 3 ]; then
            stop_cluster
            rm -rf "$dir"/m1 "$dir"/m2 "$dir"/m3 "$dir"/m4 "$dir/ports" "$dir/auth-done"
            continue
        fi
        tail -n 5 "$dir"/m*.log >&2 2>/dev/null || true
        die "the cluster in $dir has no leader, or its auth member did not start"
    done
    setup_auth
    write_env
}

stop_cluster() {
    for n in 1 2 3 4; do
        pid=$(member_pid "$n")
        [ -n "$pid" ] || continue
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for n in 1 2 3 4; do
        pid=$(member_pid "$n")
        [ -n "$pid" ] || continue
        wait_exit "$pid"
        rm -f "$dir/m$n.pid"
    done
}

case "$action" in
start | resume)
    start_cluster
    ;;
stop)
    stop_cluster
    ;;
*)
    usage
    ;;
esac
