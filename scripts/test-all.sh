#!/bin/bash
# Install what is missing, build, start throwaway servers of every store on
# loopback (tests/servers.sh), and run the whole test suite against every
# backend, in each of its modes.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
scripts/install-deps.sh

./autogen.sh >/dev/null 2>&1
build=$src/_build
rm -rf "$build"
mkdir -p "$build"
cd "$build"
# Every store that configure.ac knows (one DLOCK_STORE call each), required.
with_stores=$(sed -n 's/^DLOCK_STORE(\[\([a-z0-9_]*\)\].*/--with-\1=yes/p' "$src/configure.ac")
# shellcheck disable=SC2086
"$src/configure" $with_stores --enable-werror >/dev/null
make -j2 >/dev/null

# A second compiler must be as clean as the first.
if command -v clang >/dev/null; then
    mkdir -p "$build/clang" && cd "$build/clang"
    "$src/configure" CC=clang CXX=clang++ --enable-werror >/dev/null
    make -j2 >/dev/null
    echo "clang build: no warnings"
    cd "$build"
fi

work=$(mktemp -d /tmp/dlock-test.XXXXXX)
chmod 755 "$work"
stop_servers() { # DIR: one set of servers
    "$src/tests/servers.sh" stop "$1" || true
}
cleanup() {
    [ -z "${asan_pid:-}" ] || kill "$asan_pid" 2>/dev/null || true
    stop_servers "$work"
    stop_servers "$work/asan"
    rm -rf "$work"
}
trap cleanup EXIT

# One set of servers in DIR, every store in each of its modes
# (tests/servers.sh): prints the export lines, DLOCK_TEST_URLS among them.
start_servers() {
    "$src/tests/servers.sh" start "$1"
}
eval "$(start_servers "$work")"
export DLOCK_TEST_REQUIRE=all
# The per-URL suites (conformance, hostile, takeover) test up to four stores
# at once (tests/common.c); their time bounds are liveness bounds.
export DLOCK_TEST_PARALLEL=${DLOCK_TEST_PARALLEL:-4}

# The suite under AddressSanitizer and UBSan (scripts/hardening.sh
# sanitizers) runs beside make check, on a second set of servers of its own:
# the fault tests restart and stop the servers their suite uses.  Its report
# is printed after make check.
asan_env=$(start_servers "$work/asan")
( eval "$asan_env"; bash "$src/scripts/hardening.sh" "$build" sanitizers ) >"$work/asan.out" 2>&1 &
asan_pid=$!

# Serially: the fault tests restart the servers that the other suites use.
status=0
make -j1 check || status=$?
for log in tests/*.log; do
    case $log in */test-suite.log) continue ;; esac
    grep -E '^[0-9]+%: Checks:|^(PASS|FAIL|SKIP)' "$log" | sed "s|^|$(basename "$log" .log): |" || true
done
if [ $status -ne 0 ]; then
    cat test-suite.log || true
    exit $status
fi
asan_status=0
wait "$asan_pid" || asan_status=$?
asan_pid=
cat "$work/asan.out"
[ $asan_status -eq 0 ] || exit $asan_status
stop_servers "$work/asan"

# The mutation check: every safety predicate, cut down in a scratch copy of
# the tree, must make a test fail (scripts/mutants.sh; the servers above).
# A rotating third of the list (--ci: by day number, printed), so that the
# whole run stays well inside CI's 30 minutes; three days cover every mutant,
# and `scripts/mutants.sh --all` runs them all.  --no-baseline: make check
# has just passed these tests on these servers, which is what the baseline
# run would show again (two minutes).
echo "--- scripts/mutants.sh --ci --no-baseline"
mutants_start=$(date +%s)
DLOCK_MUTANTS_CI_SHARDS=${DLOCK_MUTANTS_CI_SHARDS:-3} bash "$src/scripts/mutants.sh" --ci --no-baseline
echo "mutation check: $(( $(date +%s) - mutants_start )) s"

# The benchmark in its short mode, so that it cannot rot: it fails only when
# something does not work, never on a speed figure.
echo "--- bench/dlock-bench --short"
# One URL of each kind (the pooler and fencing=on run the same code paths).
# shellcheck disable=SC2086
./bench/dlock-bench --short $DLOCK_TEST_BENCH_URLS

# Valgrind, thread stress, fuzzing and static analysis
# (scripts/hardening.sh), then the consumers: Python, C through pkg-config,
# Debian packages (scripts/reach.sh).  Both get the build folder and use the
# servers started above.
# CI fuzzes each harness 20 s (the checked-in corpus runs whole first);
# scripts/hardening.sh alone defaults to 60 s.
export DLOCK_FUZZ_SECONDS=${DLOCK_FUZZ_SECONDS:-20}
bash "$src/scripts/hardening.sh" "$build" valgrind tsan fuzz cppcheck clang-tidy
bash "$src/scripts/reach.sh" "$build"

# The release tarball builds and passes its own checks, on SQLite only: no
# server's variable reaches it: with some left set, distcheck's `make -j2
# check` could run two suites that fault one shared server at once.  On
# failure its test logs are printed.
unset_servers=()
for v in $(compgen -e); do
    case $v in DLOCK_TEST_*) unset_servers+=(-u "$v") ;; esac
done
if ! env "${unset_servers[@]}" make -j2 distcheck >"$work/distcheck.out" 2>&1; then
    find . -path './libdlock-*' -name test-suite.log -exec cat {} + || true
    tail -n 60 "$work/distcheck.out"
    echo "make distcheck: FAILED"
    exit 1
fi
echo "make distcheck: passed"
