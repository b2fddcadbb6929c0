#!/bin/bash
# Hardening checks, run by scripts/test-all.sh (and so by CI) after the normal
# `make check`:
#
#   sanitizers  a second tree built with --enable-sanitizers (ASan + UBSan, no
#               recovery, gcc); the whole `make check` there, on every backend
#   valgrind    `make check-valgrind` in BUILD: the conformance suite under
#               memcheck, on every backend
#   tsan        a third tree built by clang with -fsanitize=thread; the thread
#               stress test (tests/check_stress) there, on every backend
#   fuzz        the libFuzzer harnesses of tests/fuzz (clang): first every
#               checked-in corpus file once (the regressions), then each
#               harness for $DLOCK_FUZZ_SECONDS (default 60), two at a time
#   cppcheck    lib/, backends/, tools/ with tests/cppcheck-suppressions.txt
#   clang-tidy  the same files with .clang-tidy and the compile flags of a real
#               build (bear), tolerating tests/clang-tidy-suppressions.txt only
#
# Usage: scripts/hardening.sh BUILD [STEP...]
#   BUILD  a configured and built tree of this source (test-all.sh passes
#          $src/_build); without one, a fresh tree is built in the work folder.
#   STEP   any of the steps above (default: all of them, in that order).
#
# The stores: whatever DLOCK_TEST_URLS, DLOCK_TEST_PG_URL and
# DLOCK_TEST_MYSQL_URL say (test-all.sh exports them, servers running).
# When DLOCK_TEST_URLS is not set, this script starts its own throwaway
# servers of every store (tests/servers.sh) and stops them at the end.
#
# It installs the Debian packages it needs, keeps going after a failed step
# so that one run shows every finding, prints one closing line per step with
# its time, and exits non-zero if any step failed.  Everything it creates
# lives in one temporary folder, removed at exit (crashing fuzz inputs are
# copied to BUILD/fuzz-findings first).
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
all_steps=(sanitizers valgrind tsan fuzz cppcheck clang-tidy)
fuzz_targets=(url duration names mysql redis etcd zookeeper)
fuzz_seconds=${DLOCK_FUZZ_SECONDS:-60}
jobs=${DLOCK_HARDENING_JOBS:-2}

say() { printf 'hardening: %s\n' "$*"; }
die() { say "$*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: $0 BUILD [STEP...]  (steps: ${all_steps[*]})"
build=$1
shift
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=("${all_steps[@]}")
for s in "${steps[@]}"; do
    case " ${all_steps[*]} " in *" $s "*) ;; *) die "unknown step '$s' (steps: ${all_steps[*]})" ;; esac
done

# --- packages -------------------------------------------------------------------

install_packages() {
    local wanted=(build-essential autoconf automake libtool pkg-config check
        libsqlite3-dev libpq-dev libmariadb-dev libssl-dev
        clang libclang-rt-14-dev valgrind cppcheck clang-tidy bear)
    local missing=() p
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    say "installing: ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
        { $sudo apt-get update -qq >/dev/null 2>&1 &&
          $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
        die "could not install: ${missing[*]}"
}
command -v dpkg-query >/dev/null && install_packages

# --- work folder, servers, cleanup ----------------------------------------------------

work=$(mktemp -d /tmp/dlock-hardening.XXXXXX) || die "mktemp failed"
chmod 755 "$work" # the servers run as their own users and must reach it
cleanup() {
    "$src/tests/servers.sh" stop "$work/servers" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${DLOCK_TEST_URLS:-}" ]; then
    say "DLOCK_TEST_URLS is not set: starting throwaway servers in $work/servers (tests/servers.sh)"
    out=$("$src/tests/servers.sh" start "$work/servers" 2>"$work/servers.log") ||
        { cat "$work/servers.log" >&2; die "the test servers did not start"; }
    eval "$out"
    export DLOCK_TEST_REQUIRE=all
fi
say "stores: $(printf '%s\n' $DLOCK_TEST_URLS | sed -E 's#^([a-z]+):.*#\1#' | tr '\n' ' ')(REQUIRE=${DLOCK_TEST_REQUIRE:-})"

# A configured tree of this source to use for valgrind and the fuzzers' config.h.
if [ ! -f "$build/config.h" ] || [ ! -f "$build/Makefile" ]; then
    say "no configured build at '$build': building one in $work/plain"
    [ -x "$src/configure" ] || (cd "$src" && ./autogen.sh >/dev/null 2>&1) || die "autogen.sh failed"
    build=$work/plain
    mkdir -p "$build"
    (cd "$build" && "$src/configure" >"$work/plain-configure.log" 2>&1 && make -j"$jobs" >"$work/plain-make.log" 2>&1) ||
        { tail -n 30 "$work"/plain-*.log; die "the plain build failed"; }
fi
build=$(cd "$build" && pwd)

# The same backends as the main build, so that every store gets tested.
backend_flags=()
# (config.h's DLOCK_BUILTIN_BACKENDS is configure's list of them.)
for b in $(sed -n 's/^#define DLOCK_BUILTIN_BACKENDS(X) //p' "$build/config.h" | tr -d 'X()'); do
    backend_flags+=("--with-$b=yes")
done

# configure + make in a fresh folder; output to a log, shown on failure.
configure_and_make() {
    local dir=$1 target=$2
    shift 2
    mkdir -p "$dir"
    if ! (cd "$dir" && "$src/configure" "${backend_flags[@]}" "$@" >"$dir/configure.out" 2>&1); then
        tail -n 40 "$dir/configure.out"
        return 1
    fi
    if ! make -C "$dir" -j"$jobs" $target >"$dir/make.out" 2>&1; then
        grep -E 'error|warning' "$dir/make.out" | head -n 40
        tail -n 20 "$dir/make.out"
        return 1
    fi
}

# The PASS/FAIL lines of a `make check` and, on failure, the failing logs.
report_check() {
    local dir=$1 status=$2 log
    for log in "$dir"/tests/*.log "$dir"/tests/*/*.log; do
        [ -f "$log" ] || continue
        case $log in */test-suite.log) continue ;; esac
        grep -E '^[0-9]+%: Checks:|^(PASS|FAIL|SKIP|ERROR)|^stress\[' "$log" | sed "s|^|  $(basename "$log" .log): |" || true
    done
    if [ "$status" -ne 0 ] && [ -f "$dir/test-suite.log" ]; then
        echo "---- $dir/test-suite.log (failures) ----"
        sed -n '/^FAIL\|^ERROR/,$p' "$dir/test-suite.log" | head -n 300
    fi
}

# --- the steps ----------------------------------------------------------------------

# One URL of each kind of store: the first of each backend, and the first in
# lease mode.  The other URLs of test-all.sh route the same code elsewhere
# (through a pooler, with fencing=on), and make check has run them all.
one_url_per_kind() {
    local url kind seen=""
    for url in ${DLOCK_TEST_URLS:-}; do
        kind=${url%%:*}
        case $url in *mode=lease*) kind=$kind-lease ;; esac
        case " $seen " in *" $kind "*) continue ;; esac
        seen="$seen $kind"
        printf '%s\n' "$url"
    done
}

step_sanitizers() {
    local dir=$work/asan
    configure_and_make "$dir" all --enable-sanitizers || return 1
    # halt_on_error: the first finding ends the program, and so fails its
    # test.  detect_leaks: LeakSanitizer at every exit() -- the Check suites'
    # forked test processes, the CLI, the helper children that end with
    # _exit() are not leak-checked (nothing runs at _exit).
    export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:print_summary=1"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1"
    export LSAN_OPTIONS="print_suppressions=0"
    local status=0
    local urls
    urls=$(one_url_per_kind | tr '\n' ' ')
    DLOCK_TEST_URLS=${urls:-${DLOCK_TEST_URLS:-}} make -C "$dir" -j1 check >"$dir/check.out" 2>&1 || status=$?
    report_check "$dir" "$status"
    unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
    return "$status"
}

# How often the test ensemble's members have dropped out of it so far (a
# follower that lost its leader, an election): a ZooKeeper test that fails
# while one happened may have met a connection loss, not a library bug.
zk_membership_events() {
    local n c count=0
    [ -n "${DLOCK_TEST_ZK_DIR:-}" ] || { echo 0; return; }
    for n in 1 2 3; do
        c=$(grep -c -E 'Exception when following|LEADER ELECTION TOOK' \
            "$DLOCK_TEST_ZK_DIR/n$n/server.log" 2>/dev/null || true)
        count=$((count + ${c:-0}))
    done
    echo "$count"
}

step_valgrind() {
    local status=0 log=$work/valgrind.out zk_before
    zk_before=$(zk_membership_events)
    # One URL of each kind of store (the first of each backend, and lease
    # mode), each in its own valgrind process, two at a time: every backend's
    # code runs under valgrind; the other URLs only route the same code
    # elsewhere (a pooler, fencing=on).
    local picked=()
    mapfile -t picked < <(one_url_per_kind)
    [ ${#picked[@]} -gt 0 ] || picked=("")
    make -C "$build" tests/check_conformance >"$log" 2>&1 || { cat "$log"; return 1; }
    local pids=() i=0 n=${#picked[@]}
    say "valgrind: $(printf '%s\n' "${picked[@]}" | sed 's|:.*||' | tr '\n' ' ')"
    for i in "${!picked[@]}"; do
        # (unset DLOCK_TEST_PARALLEL: one store per valgrind process)
        env -u DLOCK_TEST_PARALLEL DLOCK_TEST_URLS="${picked[$i]}" \
            make -C "$build" check-valgrind >"$log.$i" 2>&1 &
        pids+=($!)
        if [ ${#pids[@]} -ge 2 ]; then
            wait "${pids[0]}" || status=1
            pids=("${pids[@]:1}")
        fi
    done
    for i in "${pids[@]}"; do wait "$i" || status=1; done
    for ((i = 0; i < n; i++)); do cat "$log.$i"; done >>"$log"
    grep -E '^[0-9]+%: Checks:|:[FE]:' "$log" | sed 's/^/  /' || true
    # Children forked by the tests end with _exit() and are only checked for
    # errors and definite leaks; the suite's own process must not even
    # "possibly" lose memory.
    local summary
    summary=$(grep -E 'ERROR SUMMARY|definitely lost:|indirectly lost:|possibly lost:' "$log" | sed 's/^==[0-9]*== */  /')
    printf '%s\n' "$summary"
    if printf '%s\n' "$summary" | grep -E '(definitely|indirectly|possibly) lost: [1-9]' >/dev/null; then
        status=1
    fi
    if [ "$status" -ne 0 ]; then
        echo "---- valgrind findings ----"
        grep -E '^==[0-9]+==' "$log" | grep -v -E '^==[0-9]+== *$' | sed -n '/Invalid\|uninitialised\|lost in loss record\|Syscall param\|Mismatched\|overlap/,+25p' | head -n 200
        [ -s "$log" ] && tail -n 15 "$log"
        # Last, where a log's tail shows it: which tests failed (a failed
        # test under CK_FORK=no also leaks what it had open, so the leaks
        # above may be its consequence, not a leak of the library).
        echo "---- valgrind: the suites' results ----"
        grep -E '^[0-9]+%: Checks:|:[FE]:' "$log" | sed 's/^/  /' || true
        [ -z "${DLOCK_TEST_ZK_DIR:-}" ] ||
            echo "  ZooKeeper ensemble: $(($(zk_membership_events) - zk_before)) member drop-outs and elections during this step"
    fi
    return "$status"
}

step_tsan() {
    local dir=$work/tsan
    configure_and_make "$dir" "libdlock.la tests/check_stress" --enable-werror CC=clang CXX=clang++ \
        CFLAGS="-fsanitize=thread -O1 -g" CXXFLAGS="-fsanitize=thread -O1 -g" LDFLAGS="-fsanitize=thread" || return 1
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4"
    local status=0
    make -C "$dir" check TESTS=tests/check_stress >"$dir/check.out" 2>&1 || status=$?
    # TSan of LLVM 14 cannot map its shadow memory under a kernel with more
    # address-space randomization than it knows: then run without ASLR.
    if [ "$status" -ne 0 ] && grep -q 'unexpected memory mapping' "$dir/tests/check_stress.log" 2>/dev/null; then
        say "tsan: retrying without address-space randomization (setarch -R)"
        status=0
        setarch "$(uname -m)" -R make -C "$dir" check TESTS=tests/check_stress >"$dir/check.out" 2>&1 || status=$?
    fi
    unset TSAN_OPTIONS
    grep -E '^stress\[|^[0-9]+%: Checks:|:[FE]:' "$dir/tests/check_stress.log" 2>/dev/null | sed 's/^/  /' || true
    if [ "$status" -ne 0 ]; then
        echo "---- ThreadSanitizer findings ----"
        grep -E -A40 'WARNING: ThreadSanitizer' "$dir/tests/check_stress.log" | head -n 150 || tail -n 40 "$dir/check.out"
    fi
    return "$status"
}

# The harnesses link the library's internal core (libdlock_core.a) of a clang
# build whose code is instrumented for libFuzzer's coverage (fuzzer-no-link)
# and checked by ASan and UBSan; tools/duration.c and backends/mysql/url.c
# are compiled in directly (the MySQL parser needs no client library).
fuzz_build_core() {
    local dir=$1
    configure_and_make "$dir/core" libdlock_core.la --enable-werror CC=clang CXX=clang++ --disable-shared \
        CFLAGS="-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
}

fuzz_build() {
    local dir=$1 target=$2 core=$1/core extra=()
    local deps
    deps=$(sed -n "s/^dependency_libs='\(.*\)'$/\1/p" "$core/libdlock_core.la")
    local flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
        -Wall -Wextra -Werror -DHAVE_CONFIG_H -I"$core" -I"$src/include" -I"$src/lib" -I"$src/tools" -pthread)
    case $target in
    duration) extra=("$src/tools/duration.c") ;;
    # The pure URL parser and name mapping, compiled in from its own file (no
    # client library); OpenSSL's SHA-256 is the reference.
    mysql) extra=(-I"$src/backends" "$src/backends/mysql/url.c" -lcrypto) ;;
    # The Redis URL parser likewise (no hiredis).
    redis) extra=(-I"$src/backends" "$src/backends/redis/url.c") ;;
    # etcd's URLs, keys and base64 (backends/etcd/url.c) and its JSON reading
    # (json.c, json-c loaded at first use) come from the core itself.
    etcd) extra=(-I"$src/backends") ;;
    # The ZooKeeper URL parser and name encoding likewise (no C client).
    zookeeper) extra=(-I"$src/backends" "$src/backends/zookeeper/url.c") ;;
    esac
    # shellcheck disable=SC2086 # the dependency list is split on purpose
    clang "${flags[@]}" -o "$dir/fuzz_$target" "$src/tests/fuzz/fuzz_$target.c" "${extra[@]}" \
        "$core/.libs/libdlock_core.a" $deps
}

fuzz_run() {
    local dir=$1 target=$2
    mkdir -p "$dir/corpus-$target" "$dir/tmp-$target"
    TMPDIR="$dir/tmp-$target" "$dir/fuzz_$target" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$dir/finding-$target-" \
        "$dir/corpus-$target" "$src/tests/fuzz/corpus/$target" >"$dir/run-$target.log" 2>&1
}

step_fuzz() {
    local dir=$work/fuzz target status=0
    mkdir -p "$dir"
    fuzz_build_core "$dir" || return 1
    local targets=()
    for target in "${fuzz_targets[@]}"; do
        fuzz_build "$dir" "$target" >"$dir/build-$target.log" 2>&1 || { cat "$dir/build-$target.log"; return 1; }
        targets+=("$target")
    done
    # Every checked-in input once: the seeds and the regressions of past findings.
    for target in "${targets[@]}"; do
        if ! TMPDIR="$dir" "$dir/fuzz_$target" -runs=0 "$src/tests/fuzz/corpus/$target" >"$dir/replay-$target.log" 2>&1; then
            echo "fuzz_$target: a checked-in corpus file fails:"
            tail -n 40 "$dir/replay-$target.log"
            status=1
        else
            echo "  fuzz_$target: $(ls "$src/tests/fuzz/corpus/$target" | wc -l) checked-in inputs replayed"
        fi
    done
    [ "$status" -eq 0 ] || return 1
    # Then fuzz, $jobs harnesses at a time.
    local pids=() names=() i
    for target in "${targets[@]}"; do
        fuzz_run "$dir" "$target" &
        pids+=($!)
        names+=("$target")
        if [ ${#pids[@]} -ge "$jobs" ]; then
            fuzz_wait_first || status=1
        fi
    done
    while [ ${#pids[@]} -gt 0 ]; do
        fuzz_wait_first || status=1
    done
    return "$status"
}

# Waits for the oldest running fuzzer and reports it; 1 if it found something.
fuzz_wait_first() {
    local pid=${pids[0]} target=${names[0]} rc=0 dir=$work/fuzz
    wait "$pid" || rc=$?
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
    local runs
    runs=$(grep -E '^stat::number_of_executed_units' "$dir/run-$target.log" | awk '{print $2}')
    if [ "$rc" -eq 0 ]; then
        echo "  fuzz_$target: ${runs:-?} inputs in ${fuzz_seconds}s, nothing found ($(ls "$dir/corpus-$target" | wc -l) new corpus entries)"
        return 0
    fi
    echo "  fuzz_$target: FOUND SOMETHING (exit $rc)"
    grep -E -B2 -A30 '^fuzz_|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' "$dir/run-$target.log" | head -n 80
    local keep=$build/fuzz-findings
    mkdir -p "$keep"
    local f
    for f in "$dir"/finding-"$target"-*; do
        [ -f "$f" ] || continue
        cp "$f" "$keep/"
        echo "  input kept as $keep/$(basename "$f"):"
        od -A d -c "$f" | head -n 8 | sed 's/^/    /'
        echo "  (replay: fuzz_$target $keep/$(basename "$f"); add it to tests/fuzz/corpus/$target/ with the fix)"
    done
    return 1
}

analysed_sources() {
    find "$src/lib" "$src/backends" "$src/tools" -name '*.c' | LC_ALL=C sort
}

step_cppcheck() {
    local out=$work/cppcheck.out status=0
    # Every configuration of the #ifdefs, the project's own headers only.
    cppcheck --enable=warning,style,performance,portability --library=posix --std=c11 \
        --inline-suppr --error-exitcode=1 --quiet -j "$jobs" \
        --suppress=missingIncludeSystem --suppressions-list="$src/tests/cppcheck-suppressions.txt" \
        -I "$src/include" -I "$src/lib" -I "$build" \
        --template='{file}:{line}: {severity}: {id}: {message}' \
        "$src/lib" "$src/backends" "$src/tools" >"$out" 2>&1 || status=$?
    if [ "$status" -ne 0 ] || grep -qE ': (error|warning|style|performance|portability): ' "$out"; then
        grep -E ': (error|warning|style|performance|portability): ' "$out" || cat "$out"
        return 1
    fi
    echo "  cppcheck $(cppcheck --version | awk '{print $2}'): no findings in lib/ backends/ tools/"
}

# Findings of clang-tidy output ($1) not matched by the suppression list.
tidy_filter() {
    local findings=$1 supp=$src/tests/clang-tidy-suppressions.txt used=$work/tidy-used
    : >"$used"
    local unexplained=0 file line col rest checks check text ok n entry s_check s_file s_text
    while IFS= read -r finding; do
        file=${finding%%:*}
        rest=${finding#*:}
        line=${rest%%:*}
        checks=$(sed -E 's/.*\[([^]]+)\]$/\1/' <<<"$finding")
        text=$(sed -n "${line}p" "$file" 2>/dev/null)
        ok=0
        n=0
        while IFS= read -r entry; do
            n=$((n + 1))
            case $entry in '' | '#'*) continue ;; esac
            s_check=$(awk -F'|' '{gsub(/^ +| +$/, "", $1); print $1}' <<<"$entry")
            s_file=$(awk -F'|' '{gsub(/^ +| +$/, "", $2); print $2}' <<<"$entry")
            s_text=$(awk -F'|' '{gsub(/^ +| +$/, "", $3); print $3}' <<<"$entry")
            for check in ${checks//,/ }; do
                if [ "$check" = "$s_check" ] && [[ $file == *"$s_file" ]] && [[ $text == *"$s_text"* ]]; then
                    ok=1
                    echo "$n" >>"$used"
                fi
            done
        done <"$supp"
        if [ "$ok" -eq 0 ]; then
            echo "$finding"
            echo "    $(sed -E 's/^ +//' <<<"$text")"
            unexplained=$((unexplained + 1))
        fi
    done < <(grep -E '^/[^:]+:[0-9]+:[0-9]+: (warning|error): .*\]$' "$findings" | sort -u)
    # Entries that matched nothing: the code changed; the entry should go.
    n=0
    while IFS= read -r entry; do
        n=$((n + 1))
        case $entry in '' | '#'*) continue ;; esac
        grep -qx "$n" "$used" || echo "  note: suppression on line $n of tests/clang-tidy-suppressions.txt matched nothing: $(cut -d'|' -f1-3 <<<"$entry")"
    done <"$supp"
    return "$unexplained"
}

step_clang_tidy() {
    local dir=$work/tidy
    mkdir -p "$dir"
    # The compile flags of a real clang build of the library and the CLI.
    (cd "$dir" && "$src/configure" "${backend_flags[@]}" CC=clang CXX=clang++ >"$dir/configure.out" 2>&1) ||
        { tail -n 30 "$dir/configure.out"; return 1; }
    (cd "$dir" && bear --output "$dir/compile_commands.json" -- make -j"$jobs" libdlock.la dlock >"$dir/make.out" 2>&1) ||
        { tail -n 30 "$dir/make.out"; return 1; }
    local files=() f
    for f in $(analysed_sources); do
        grep -q "\"$f\"" "$dir/compile_commands.json" && files+=("$f")
    done
    printf '%s\n' "${files[@]}" | xargs -P "$jobs" -n 1 clang-tidy -p "$dir" --quiet >"$dir/tidy.out" 2>"$dir/tidy.err"
    if grep -qE '^Error while processing|error: .*\[clang-diagnostic-error\]' "$dir/tidy.out" "$dir/tidy.err"; then
        grep -E 'Error while processing|clang-diagnostic-error' "$dir/tidy.out" "$dir/tidy.err" | head -n 20
        return 1
    fi
    local unexplained=0
    tidy_filter "$dir/tidy.out" || unexplained=$?
    if [ "$unexplained" -ne 0 ]; then
        echo "  $unexplained clang-tidy finding(s) above: fix them, or (false positives only) add them to tests/clang-tidy-suppressions.txt with the reason"
        return 1
    fi
    echo "  clang-tidy $(clang-tidy --version | awk '/version/ {print $NF}'): no findings in ${#files[@]} files of lib/ backends/ tools/ (beyond the listed false positives)"
}

# --- run ---------------------------------------------------------------------------

results=()
failed=()
start_all=$(date +%s)
for step in "${steps[@]}"; do
    say "---- $step ----"
    t0=$(date +%s)
    rc=0
    "step_${step//-/_}" || rc=$?
    t=$(($(date +%s) - t0))
    if [ "$rc" -eq 0 ]; then
        say "$step: passed (${t}s)"
        results+=("$step passed (${t}s)")
    else
        say "$step: FAILED (${t}s)"
        results+=("$step FAILED (${t}s)")
        failed+=("$step")
    fi
done
total=$(($(date +%s) - start_all))
say "summary: $(IFS=';'; echo "${results[*]}" | sed 's/;/, /g')"
if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED: ${failed[*]} (total ${total}s)"
    exit 1
fi
say "all ${#steps[@]} steps passed in ${total}s"
