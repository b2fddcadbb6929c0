#!/bin/sh
# examples/fencing.sh must keep working: a paused holder's late write is
# rejected by its fencing token (docs/fencing.md).
set -eu
# Without sqlite3 it skips, unless the environment requires every store (CI).
if ! command -v sqlite3 >/dev/null; then
    echo "sqlite3 is not installed"
    [ -z "${DLOCK_TEST_REQUIRE:-}" ] || exit 1
    exit 77
fi
srcdir=${srcdir:-$(dirname "$0")/..}
out=$(sh "$srcdir/examples/fencing.sh" "${DLOCK_BIN:?}" 2>&1) || { echo "$out"; exit 1; }
echo "$out"
echo "$out" | grep -q "^B: written with token" || exit 1
echo "$out" | grep -q "^A: rejected, token" || exit 1
