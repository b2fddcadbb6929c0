#!/bin/bash
# Build the Debian packages libdlock0, libdlock-dev and dlock from a clean
# copy of this tree, check them with lintian (no errors allowed; warnings are
# listed), install them, use them (dlock run on SQLite, a C program through
# pkg-config, the Python binding through find_library), and purge them again.
#
#   scripts/build-debs.sh [OUTDIR]    keep the .deb files in OUTDIR
#
# Needs root (or sudo) for apt-get and dpkg.  Exits non-zero on any failure.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
outdir=${1:-}
# The versions come from configure.ac and debian/changelog, never typed twice.
version=$(sed -n 's/^AC_INIT(\[libdlock\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
debversion=$(sed -n '1s/^libdlock (\([^)]*\)).*/\1/p' "$src/debian/changelog")
[ -n "$version" ] && [ "${debversion%-*}" = "$version" ] || {
    echo "build-debs: configure.ac says '$version', debian/changelog '$debversion'" >&2; exit 1; }
packages="dlock libdlock-dev libdlock0"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

say() { printf 'build-debs: %s\n' "$*"; }

# --- what the build needs ------------------------------------------------
need="build-essential dpkg-dev debhelper lintian pkg-config libsqlite3-dev libpq-dev \
 libmariadb-dev libhiredis-dev check man-db python3"
missing=""
for p in $need; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    say "installing:$missing"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends $missing >/dev/null
fi

work=$(mktemp -d /tmp/dlock-debs.XXXXXX)
# Readable by all: the package tests run the built dlock as nobody too.
chmod 755 "$work"
installed=no
purge() {
    # Only our own packages, by name, and only those that are installed.
    local present=""
    for p in $packages; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" && present="$present $p"
    done
    [ -z "$present" ] || $SUDO dpkg --purge $present >/dev/null
}
cleanup() {
    [ "$installed" = yes ] && purge
    rm -rf "$work"
}
trap cleanup EXIT

# --- a clean copy of the tree ----------------------------------------------
# Tracked files plus new ones not yet ignored, as they are in the work tree:
# nothing generated (configure, Makefile.in, _build) comes along.
tree=$work/libdlock-$version
mkdir -p "$tree"
if ! git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    say "FAIL: $src is not a git checkout"
    exit 1
fi
(cd "$src" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$tree"
say "source: $(find "$tree" -type f | wc -l) files copied"

# --- dpkg-buildpackage ---------------------------------------------------
started=$SECONDS
# No server's variable reaches the package build: its tests are SQLite only,
# and a server suite run here would fault the servers CI shares.
# debian/rules removes them too, for builds that do not come through here.
unset_servers=()
for v in $(compgen -e); do
    case $v in DLOCK_TEST_*) unset_servers+=(-u "$v") ;; esac
done
if ! (cd "$tree" && env "${unset_servers[@]}" dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1); then
    tail -n 60 "$work/build.log"
    say "FAIL: dpkg-buildpackage"
    exit 1
fi
# The package build ran `make check` (SQLite only): show its summary.
grep -E '^(PASS|FAIL|SKIP|ERROR|# [A-Z]+:)' "$work/build.log" | sed 's/^/  /' || true
if grep -q '^# FAIL: *[1-9]' "$work/build.log" || grep -q '^# ERROR: *[1-9]' "$work/build.log"; then
    say "FAIL: tests failed in the package build"
    exit 1
fi
# ... and the suites that need a server skipped there (they ran, once, when a
# CI variable leaked into the build and faulted CI's shared ensemble).
for t in check_redis check_etcd check_zookeeper check_stall; do
    if grep -qE "^(PASS|FAIL|ERROR): tests/$t\$" "$work/build.log"; then
        say "FAIL: tests/$t ran against a server in the package build"
        exit 1
    fi
done
debs=()
for p in libdlock0 libdlock-dev dlock; do
    f=$(ls "$work"/${p}_${debversion}_*.deb 2>/dev/null | head -n 1)
    if [ -z "$f" ]; then
        say "FAIL: no ${p}_${debversion} package was built"
        exit 1
    fi
    debs+=("$f")
done
changes=$(ls "$work"/libdlock_${debversion}_*.changes)
say "built in $((SECONDS - started))s: $(for f in "${debs[@]}"; do basename "$f"; done | tr '\n' ' ')"
for f in "${debs[@]}"; do
    dpkg-deb -c "$f" | awk '{print $6}' | grep -v '/$' | sed "s|^\./|  $(basename "$f"): /|"
done

# --- lintian ----------------------------------------------------------------
started=$SECONDS
lintian_rc=0
lintian --fail-on error --display-level '>=info' "$changes" >"$work/lintian.log" 2>&1 || lintian_rc=$?
errors=$(grep -c '^E: ' "$work/lintian.log" || true)
warnings=$(grep -c '^W: ' "$work/lintian.log" || true)
sed 's/^/  /' "$work/lintian.log"
if [ "$lintian_rc" -ne 0 ] || [ "$errors" -ne 0 ]; then
    say "FAIL: lintian: $errors errors, $warnings warnings"
    exit 1
fi
say "lintian: 0 errors, $warnings warnings ($((SECONDS - started))s)"

if [ -n "$outdir" ]; then
    mkdir -p "$outdir"
    cp "${debs[@]}" "$outdir"/
fi

# --- install, use, purge -----------------------------------------------
for p in $packages; do
    if dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed"; then
        say "note: $p was installed before (a previous run?); replacing it and purging it afterwards"
    fi
done
installed=yes
$SUDO dpkg -i "${debs[@]}" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; say "FAIL: dpkg -i"; exit 1; }
for p in $packages; do
    v=$(dpkg-query -W -f='${Version}' "$p")
    [ "$v" = "$debversion" ] || { say "FAIL: $p is at $v after dpkg -i"; exit 1; }
done

out=$(/usr/bin/dlock --version)
case $out in
*"$version"*) ;;
*) say "FAIL: dlock --version said: $out"; exit 1 ;;
esac
say "installed: /usr/bin/dlock --version: $(printf '%s' "$out" | head -n 1)"

url="sqlite://$work/run/locks.db"
rc=0
out=$(/usr/bin/dlock run -u "$url" -t 5s deb-check -- sh -c 'echo job-ran; exit 7') || rc=$?
if [ "$rc" -ne 7 ] || [ "$out" != job-ran ]; then
    say "FAIL: dlock run: exit $rc, output '$out' (wanted 7, job-ran)"
    exit 1
fi
# A second run while the first holds the lock is skipped (75).
/usr/bin/dlock run -u "$url" -t 30s deb-busy -- sh -c "touch '$work/held'; sleep 3" &
holder=$!
for _ in $(seq 100); do [ -e "$work/held" ] && break; sleep 0.05; done
rc=0
/usr/bin/dlock run -u "$url" deb-busy -- sh -c "touch '$work/second-ran'" 2>/dev/null || rc=$?
wait "$holder"
if [ "$rc" -ne 75 ] || [ -e "$work/second-ran" ]; then
    say "FAIL: the second dlock run was not skipped (exit $rc)"
    exit 1
fi
say "installed: dlock run on SQLite ran the job (exit 7 passed through), a concurrent run was skipped (75)"

for page in dlock dlock_acquire dlock_extend dlock_remaining_ms; do
    man -w "$page" >/dev/null 2>&1 || { say "FAIL: man cannot find $page"; exit 1; }
done
say "installed: man finds dlock(1), dlock_acquire(3) and its link pages"

# The -dev package is enough to build a program: pkg-config from /usr.
env -u PKG_CONFIG_PATH cc -std=c11 -Wall -Wextra -Werror -o "$work/jobrunner" "$src/examples/jobrunner.c" \
    $(env -u PKG_CONFIG_PATH pkg-config --cflags --libs dlock)
# The packaged library file (/lib is /usr/lib on Debian 12: compare real paths).
packaged=$(readlink -f "$(dpkg -L libdlock0 | grep '/libdlock\.so\.0$')")
used=$(ldd "$work/jobrunner" | awk '$1 == "libdlock.so.0" {print $3}')
[ -n "$used" ] && [ "$(readlink -f "$used")" = "$packaged" ] ||
    { say "FAIL: jobrunner uses '$used', not the packaged $packaged"; exit 1; }
rc=0
"$work/jobrunner" -u "$url" -t 2 deb-jobrunner sh -c 'exit 4' 2>/dev/null || rc=$?
[ "$rc" -eq 4 ] || { say "FAIL: jobrunner built against libdlock-dev exited $rc, wanted 4"; exit 1; }
say "installed: examples/jobrunner.c built with pkg-config against libdlock-dev and ran"

# The Python binding finds the packaged library by itself (no DLOCK_LIBRARY).
env -u DLOCK_LIBRARY PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$src/bindings/python" /usr/bin/python3 - "$url" "$packaged" <<'EOF'
import os
import sys
import dlock
from dlock import _native
assert _native.loaded() is None  # import dlock does not load the library ...
with dlock.Client(sys.argv[1]) as c, c.lock("deb-python", ttl=5) as lock:  # ... the first Client() does
    assert lock.remaining > 0
assert "libdlock.so.0" in _native.get()._name, _native.get()._name
with open("/proc/self/maps") as maps:
    paths = {line.split()[-1] for line in maps if "libdlock.so" in line}
assert paths and {os.path.realpath(p) for p in paths} == {sys.argv[2]}, paths
print(f"build-debs: installed: python3 loaded {sorted(paths)[0]} through find_library")
EOF

purge
installed=no
for p in $packages; do
    if dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed"; then
        say "FAIL: $p is still installed after the purge"
        exit 1
    fi
done
say "purged: $packages"
say "passed: libdlock0, libdlock-dev and dlock build, pass lintian (0 errors, $warnings warnings), install and work"
