#!/bin/sh
# The shared library exports exactly the public dlock_* functions listed in
# tests/data/exported-symbols.txt (hidden visibility keeps the rest inside).
lib="$top_builddir/.libs/libdlock.so"
expected="$top_srcdir/tests/data/exported-symbols.txt"
if [ ! -f "$lib" ]; then
    echo "no shared library at $lib (built with --disable-shared?)"
    exit 77
fi
actual=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' | grep -v '^_init$' | grep -v '^_fini$' | LC_ALL=C sort)
want=$(LC_ALL=C sort "$expected")
if [ "$actual" != "$want" ]; then
    echo "FAIL: the exported symbols differ from $expected"
    printf '%s\n' "$actual" > exported.actual
    printf '%s\n' "$want" | diff -u - exported.actual
    rm -f exported.actual
    exit 1
fi
echo "PASS: libdlock.so exports exactly the $(printf '%s\n' "$actual" | wc -l) listed dlock_* symbols"
