# Shared by the tests/*-server.sh scripts (sourced, POSIX sh).
# The caller defines die(), and server_pid() where it uses is_running().

# True when something listens on 127.0.0.1:$1.
port_in_use() {
    if command -v ss >/dev/null 2>&1; then
        ss -Htln "sport = :$1" 2>/dev/null | grep -q .
    else
        # Without ss: a refused connection means the port is free.
        bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
    fi
}

# A free loopback port, picked at random so that parallel runs do not collide.
pick_port() {
    tries=0
    while [ $tries -lt 100 ]; do
        port=$(shuf -i 20000-59999 -n 1)
        if ! port_in_use "$port"; then
            echo "$port"
            return 0
        fi
        tries=$((tries + 1))
    done
    die "no free port found"
}

# True when the server runs: its pid file names a live process.  (etcd's
# script, whose members are many, defines its own after sourcing this.)
is_running() {
    pid=$(server_pid)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# Wait for process $1, already asked to stop, to exit: after about 5 s
# (100 looks 0.05 s apart) it is killed and not waited for any longer.
wait_exit() {
    tries=0
    while kill -0 "$1" 2>/dev/null; do
        tries=$((tries + 1))
        if [ $tries -ge 100 ]; then
            kill -KILL "$1" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
}
