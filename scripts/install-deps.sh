#!/bin/sh
# Install the Debian 12 packages that libdlock needs.
#   scripts/install-deps.sh          everything: build, every backend, tests
#   scripts/install-deps.sh --minimal  just enough to build dlock on SQLite
set -eu
base="build-essential autoconf automake libtool pkg-config libsqlite3-dev"
full="$base check sqlite3 libpq-dev postgresql-15 postgresql-client-15 \
 mariadb-server mariadb-client libmariadb-dev clang valgrind procps \
 redis-server redis-tools libhiredis-dev pgbouncer \
 etcd-server etcd-client libcurl4-openssl-dev libjson-c-dev \
 zookeeper libzookeeper-st-dev \
 debhelper dpkg-dev lintian man-db groff-base python3 hyperfine util-linux faketime openssl"
pkgs=$full
[ "${1:-}" = "--minimal" ] && pkgs=$base

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing:$missing"
$SUDO apt-get update -qq
# The packaged servers must not start as system services: the tests start
# their own throwaway servers.
export DEBIAN_FRONTEND=noninteractive
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
