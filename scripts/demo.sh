#!/bin/sh
# Build dlock and show what it is for: three "servers" fire the same cron job
# at the same moment, and exactly one of them runs it.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh --minimal
[ -x configure ] || ./autogen.sh >/dev/null 2>&1
mkdir -p _demo
cd _demo
[ -f Makefile ] || ../configure --quiet --without-postgresql --without-mysql >/dev/null
make -j2 --quiet dlock >/dev/null 2>&1 || make -j2 dlock

echo "dlock $(./dlock --version | awk '{print $NF}'), lock store: the embedded SQLite default"
echo "Three servers fire 'nightly-report' at once:"
for server in web1 web2 web3; do
    (
        status=0
        ./dlock run -q nightly-report -- sh -c "echo '  $server: running the nightly report'; sleep 2" || status=$?
        if [ "$status" -eq 75 ]; then
            echo "  $server: skipped, another server holds the lock (exit 75)"
        else
            echo "  $server: done (exit $status)"
        fi
    ) &
done
wait
echo "Now nobody holds it:"
./dlock status nightly-report || true
