#!/bin/sh
# Build dlock and show what it is for: three processes, standing in for three
# servers, fire the same cron job at the same moment against one shared store
# (here an SQLite file, which is shared only on one host), and exactly one of
# them runs it.  Real servers share a PostgreSQL or MySQL URL: docs/quickstart.md.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh --minimal
[ -x configure ] || ./autogen.sh >/dev/null 2>&1
mkdir -p _demo
cd _demo
[ -f Makefile ] || ../configure --quiet --without-postgresql --without-mysql >/dev/null
make -j2 --quiet dlock >/dev/null 2>&1 || make -j2 dlock

store="sqlite://$PWD/demo-locks.db"
echo "dlock $(./dlock --version | awk '{print $NF}'), lock store: $store"
echo "(one SQLite file on this host; three real servers would share one PostgreSQL or"
echo " MySQL URL instead: see docs/quickstart.md)"
echo "Three processes, standing in for three servers, fire 'nightly-report' at once:"
for server in web1 web2 web3; do
    (
        status=0
        ./dlock run -u "$store" -q nightly-report -- sh -c "echo '  $server: running the nightly report'; sleep 2" || status=$?
        if [ "$status" -eq 75 ]; then
            echo "  $server: skipped, another server holds the lock (exit 75)"
        else
            echo "  $server: done (exit $status)"
        fi
    ) &
done
wait
echo "Now nobody holds it:"
./dlock status -u "$store" nightly-report || true
