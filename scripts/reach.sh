#!/bin/bash
# The consumers of libdlock, checked for real (issue 7):
#   1. the public header compiles as C99 (gcc, clang);
#   2. the Python binding's tests, against the build tree's library, and its
#      type hints (mypy --strict, Debian's python3-mypy);
#   3. a separate configure + make install into a temporary prefix;
#   4. examples/jobrunner.c built from that prefix with pkg-config only, and
#      run against every store;
#   5. the Python tests again, against the installed library;
#   6. every installed man page through `man --warnings` (groff);
#   7. the Debian packages (scripts/build-debs.sh).
#
#   scripts/reach.sh [BUILD_DIR]       (default: _build; test-all.sh passes it)
#
# Stores: every URL in DLOCK_TEST_URLS (test-all.sh exports SQLite, PostgreSQL
# and MySQL); without it, a fresh SQLite file.  Each step prints one closing
# line; the last line sums them up.  Exits non-zero if any step failed.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/_build}" 2>/dev/null && pwd) || { echo "reach: no build folder ${1:-$src/_build}"; exit 1; }
export PYTHONDONTWRITEBYTECODE=1   # leave no __pycache__ in the source tree

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

# --- what the checks need ------------------------------------------------
need="python3 python3-mypy man-db groff-base pkg-config build-essential"
missing=""
for p in $need; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "reach: installing:$missing"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends $missing >/dev/null
fi
python=/usr/bin/python3   # Debian's, not whatever python3 comes first in PATH

work=$(mktemp -d /tmp/dlock-reach.XXXXXX)
chmod 755 "$work"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
prefix=$work/prefix

read -r -a urls <<<"${DLOCK_TEST_URLS:-}"
[ ${#urls[@]} -gt 0 ] || urls=("sqlite://$work/locks.db")
# A URL may carry a password: only ever print its scheme.
label() { printf '%s' "${1%%:*}"; }

passed=0
failed=0
failed_steps=""
step() {
    local name=$1
    shift
    local started=$SECONDS rc=0
    echo "reach: --- $name"
    # Not `( ... ) || rc=$?`: set -e is ignored inside a || list.
    ( set -e; "$@" )
    rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "reach: $name: passed ($((SECONDS - started))s)"
    else
        failed=$((failed + 1))
        failed_steps="$failed_steps [$name]"
        echo "reach: $name: FAILED (exit $rc, $((SECONDS - started))s)"
    fi
}

# 1. -------------------------------------------------------------------------
header_c99() {
    cat >"$work/header_c99.c" <<'EOF'
#include <dlock.h>

/* Every declaration of the header used once, as C99 sees it. */
int main(void)
{
    dlock_client *client = NULL;
    dlock_lock *lock = NULL;
    char who[64];
    int64_t left = dlock_remaining_ms(lock);
    int rc = dlock_open("sqlite:///nonexistent/x.db", &client);
    if (rc == DLOCK_OK) {
        rc = dlock_acquire(client, "c99", 1000u, DLOCK_WAIT_FOREVER, &lock);
        if (rc == DLOCK_OK) {
            (void)dlock_extend(lock, 1000u);
            (void)dlock_name(lock);
            (void)dlock_release(lock);
        }
        (void)dlock_holder(client, "c99", who, sizeof who);
        (void)dlock_cancel(client);
        (void)dlock_backend(client);
        dlock_close(client);
    }
    return (int)(left + (dlock_strerror(rc)[0] != 0) + (dlock_last_error() == NULL) +
                 (dlock_version()[0] == 0) + DLOCK_VERSION_NUMBER * 0);
}
EOF
    local compilers=gcc
    command -v clang >/dev/null && compilers="gcc clang"
    for cc in $compilers; do
        $cc -std=c99 -pedantic -Wall -Wextra -Wstrict-prototypes -Werror -I"$src/include" \
            -c -o "$work/header_c99-$cc.o" "$work/header_c99.c"
        echo "  $cc -std=c99 -pedantic -Wall -Wextra -Werror: clean"
    done
}

# 2. and 5. ---------------------------------------------------------------------
python_tests() {
    local library=$1
    [ -e "$library" ] || { echo "  no library at $library"; return 1; }
    echo "  library: $library; stores: $(for u in "${urls[@]}"; do label "$u"; echo -n ' '; done)"
    local rc=0
    (cd "$work" && DLOCK_LIBRARY=$library DLOCK_TEST_URLS="${urls[*]}" \
        "$python" -m unittest discover -s "$src/bindings/python/tests" \
        -t "$src/bindings/python/tests" -v) >"$work/python.log" 2>&1 || rc=$?
    grep -E '(ok|FAIL|ERROR|skipped.*)$' "$work/python.log" | grep -vE ' ok$' | sed 's/^/  /' || true
    tail -n 4 "$work/python.log" | sed 's/^/  /'
    if [ $rc -ne 0 ]; then
        sed -n '/^======/,$p' "$work/python.log" | head -n 120
        return 1
    fi
    # When every backend is required (CI), no test may skip for want of one.
    if [ "${DLOCK_TEST_REQUIRE:-}" = all ] && grep -q 'skipped' "$work/python.log"; then
        echo "  DLOCK_TEST_REQUIRE=all, but tests were skipped"
        return 1
    fi
}

python_tests_first() { # (in step's subshell: nothing leaks)
    urls=("${urls[0]}")
    export DLOCK_TEST_REQUIRE=
    python_tests "$@"
}

python_types() {
    # The package's hints and its build backend's, strictly; the cache stays out of the source tree.
    (cd "$src/bindings/python" && "$python" -m mypy --strict --cache-dir "$work/mypy-cache" dlock build_backend.py) \
        | sed 's/^/  /'
}

# 3. ---------------------------------------------------------------------------
install_prefix() {
    mkdir -p "$work/build-install"
    cd "$work/build-install"
    "$src/configure" --prefix="$prefix" --disable-static >configure.log 2>&1 ||
        { tail -n 30 configure.log; return 1; }
    grep -E '^  (SQLite|PostgreSQL|MySQL) backend:' configure.log | sed 's/^/ /'
    make -j2 >make.log 2>&1 || { tail -n 40 make.log; return 1; }
    make install >install.log 2>&1 || { tail -n 40 install.log; return 1; }
    local f
    for f in include/dlock.h lib/libdlock.so.0 lib/libdlock.so lib/pkgconfig/dlock.pc bin/dlock \
        share/man/man1/dlock.1 share/man/man3/dlock_acquire.3; do
        [ -e "$prefix/$f" ] || { echo "  not installed: $f"; return 1; }
    done
    echo "  installed into a temporary prefix: $(cd "$prefix" && find . -type f -o -type l | sort | tr '\n' ' ')"
}

# 4. ---------------------------------------------------------------------------
c_consumer() {
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
    local modversion cflags libs
    modversion=$(pkg-config --modversion dlock)
    local header_version
    header_version=$(sed -n 's/^#define DLOCK_VERSION_STRING "\(.*\)"$/\1/p' "$prefix/include/dlock.h")
    [ "$modversion" = "$header_version" ] ||
        { echo "  dlock.pc says $modversion, dlock.h $header_version"; return 1; }
    cflags=$(pkg-config --cflags dlock)
    libs=$(pkg-config --libs dlock)
    pkg-config --static --libs dlock >/dev/null   # Requires.private resolves
    case " $cflags " in *" -I$prefix/include "*) ;; *) echo "  cflags do not point into the prefix: $cflags"; return 1 ;; esac
    echo "  pkg-config dlock $modversion: --cflags '$cflags' --libs '$libs'"
    local cc compilers=gcc
    command -v clang >/dev/null && compilers="gcc clang"
    for cc in $compilers; do
        # Nothing from the source tree: the header and library come from pkg-config.
        $cc -std=c11 -Wall -Wextra -Wstrict-prototypes -Werror -o "$work/jobrunner-$cc" \
            "$src/examples/jobrunner.c" $cflags $libs
    done
    echo "  examples/jobrunner.c: built with $compilers"
    local runner=$work/jobrunner-gcc
    export LD_LIBRARY_PATH=$prefix/lib
    ldd "$runner" >"$work/ldd.txt"
    grep -q "$prefix/lib/libdlock.so.0" "$work/ldd.txt" ||
        { echo "  jobrunner does not resolve libdlock from the prefix"; cat "$work/ldd.txt"; return 1; }
    local url n=0 rc
    for url in "${urls[@]}"; do
        n=$((n + 1))
        local name="reach-jobrunner-$$-$n" kind
        kind=$(label "$url")
        # A job longer than two TTLs keeps its lease (heartbeat) and passes its status on.
        rc=0
        "$runner" -u "$url" -t 1 "$name-long" sh -c 'sleep 2.5; exit 3' 2>"$work/jr.err" || rc=$?
        [ $rc -eq 3 ] || { echo "  $kind: jobrunner exited $rc, wanted 3"; cat "$work/jr.err"; return 1; }
        # While one runner holds the lock, a second one skips (75) without running.
        rm -f "$work/held" "$work/second-ran"
        "$runner" -u "$url" -t 30 "$name-busy" sh -c "touch '$work/held'; sleep 3" 2>/dev/null &
        local holder=$!
        for _ in $(seq 200); do [ -e "$work/held" ] && break; sleep 0.05; done
        rc=0
        "$runner" -u "$url" "$name-busy" sh -c "touch '$work/second-ran'" 2>/dev/null || rc=$?
        local holder_rc=0
        wait "$holder" || holder_rc=$?
        if [ ! -e "$work/held" ] || [ $rc -ne 75 ] || [ -e "$work/second-ran" ] || [ $holder_rc -ne 0 ]; then
            echo "  $kind: exclusion failed: second runner exited $rc, first $holder_rc"
            return 1
        fi
        # Once released, the next runner gets it at once.
        "$runner" -u "$url" "$name-busy" true 2>/dev/null || { echo "  $kind: lock not free after release"; return 1; }
        echo "  $kind: jobrunner kept a 1 s lease over a 2.5 s job, excluded a second runner (75), released"
    done
}

# 6. ---------------------------------------------------------------------------
man_pages() {
    local mandir=$prefix/share/man pages=0 page out warnings
    cd "$mandir"   # .so requests resolve from here
    local acquire
    acquire=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l man3/dlock_acquire.3 2>/dev/null)
    for page in man1/*.1 man3/*.3; do
        warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        if [ -n "$warnings" ]; then
            echo "  $page: groff warnings:"
            printf '%s\n' "$warnings" | sed 's/^/    /'
            return 1
        fi
        if head -n 1 "$page" | grep -q '^\.so '; then
            # A link page shows the page it names, in full.
            local target
            target=$(sed -n '1s/^\.so //p' "$page")
            [ -f "$target" ] || { echo "  $page: links to $target, which is not installed"; return 1; }
            out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null)
            if [ "$target" = man3/dlock_acquire.3 ]; then
                [ "$out" = "$acquire" ] || { echo "  $page: the link does not show dlock_acquire(3)"; return 1; }
            else
                [ "$out" = "$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$target" 2>/dev/null)" ] ||
                    { echo "  $page: the link does not show $target"; return 1; }
            fi
        fi
        pages=$((pages + 1))
    done
    # Every exported function has a page.
    for page in $(cat "$src/tests/data/exported-symbols.txt"); do
        [ -e "man3/$page.3" ] || { echo "  missing man page $page(3)"; return 1; }
    done
    MANPATH=$mandir man -w dlock_extend >/dev/null || return 1
    echo "  $pages pages, no groff warnings; every link page shows the page it names"
}

step "header as C99" header_c99
step "python (build tree)" python_tests "$build/.libs/libdlock.so.0"
step "python types (mypy --strict)" python_types
step "install into a prefix" install_prefix
step "C consumer via pkg-config" c_consumer
# The installed copy on the first store only: the build tree's run above
# covered every store with the same code.
step "python (installed)" python_tests_first "$prefix/lib/libdlock.so.0"
step "man pages" man_pages
step "Debian packages" bash "$src/scripts/build-debs.sh"

echo "reach: $passed passed, $failed failed"
if [ $failed -ne 0 ]; then
    echo "reach: failed steps:$failed_steps"
    exit 1
fi
