# Shared by tests/pg-server.sh and tests/mysql-server.sh (sourced, POSIX sh).
# The caller defines die().

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
