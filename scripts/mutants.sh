#!/bin/bash
# The mutation check of the safety predicates: does any test notice when the
# code that decides "is this still mine?" or "is this free?" is cut down?
#
# Every mutant below is one small, named source edit (a Perl substitution)
# of a predicate in lib/ or a backend.  For each one this script edits a
# scratch copy of the source, rebuilds it incrementally (one compile and a
# relink), runs only the test cases that concern it, and prints
#   killed    NAME  (by TEST)     a test failed: good
#   SURVIVED  NAME                every test passed: a test is missing
# with the mutant's diff.  The edit is undone before the next mutant.
#
# Usage: scripts/mutants.sh [OPTIONS] [NAME...]
#   NAME...          only these mutants (default: all of them)
#   --all            all of them (the default; for symmetry with --ci)
#   --backend B      only the mutants of B: core, sha256, sqlite, pg, pglease, mysql, mysqllease, redis, etcd, zk, tool, ops (repeatable)
#   --ci             a rotating subset that fits CI's budget: the mutants
#                    whose position in the list, modulo DLOCK_MUTANTS_CI_SHARDS
#                    (default 2), equals the day number (days since the
#                    epoch, UTC) modulo it, so consecutive days cover the whole
#                    list; DLOCK_MUTANTS_CI_SHARD=K picks shard K instead
#   --list           print the mutants (name, file, tests) and exit
#   --work DIR       keep the scratch tree in DIR (reused by the next run,
#                    which then only rebuilds what changed); default: a
#                    temporary folder, removed at exit
#   --no-baseline    do not first run the selected tests on the unmutated tree
#
# The stores: DLOCK_TEST_URLS, DLOCK_TEST_PG_URL, DLOCK_TEST_MYSQL_URL (and
# DLOCK_TEST_MYSQL_ROOT_URL, DLOCK_TEST_*_DIR) as for `make check`, servers
# running (scripts/test-all.sh exports them); without DLOCK_TEST_URLS an
# SQLite file in the work folder.  A mutant whose test needs a store that is
# not configured is an error, not a pass.
#
# Exit status: 0 when every selected mutant applied, built and was killed;
# 1 when one survived, DOES NOT APPLY (its pattern is gone from the source:
# update the mutant with the code), DOES NOT BUILD, or its test could not
# run; 2 for a usage error or an unmutated tree whose tests fail.
#
# Adding a mutant (docs/testing.md): one line in the table below,
#   NAME | FILE | PERL | TESTS
# NAME      <area>-<what the edit breaks>; the area is the --backend name
# FILE      the source file, relative to the top of the tree
# PERL      Perl code run on the whole file in $_ (perl -0777); it must
#           return true when it changed something, e.g. s{OLD}{NEW}.  Anchor
#           it on the predicate's own text (the SQL condition, the
#           distinctive expression), so that it stops applying, loudly, when
#           the predicate is rewritten.
# TESTS     (after the last " | ") space-separated BIN[@SCHEME[?OPTION]][:CASE]: tests/check_BIN,
#           with DLOCK_TEST_URLS cut down to the first URL of SCHEME (with
#           OPTION, e.g. mysql?mode=lease, or without libdlock's mode=/fencing=
#           options) and CK_RUN_CASE=CASE.  Tried in order; the
#           first that fails kills the mutant, so put the fastest first.
set -uo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)

mutant_table() {
    cat <<'EOF'
# --- lib/client.c: the core -------------------------------------------------------------
core-reentrant | lib/client.c | s{if \(registry_find\(c, name, (\w+)->hash\)\)}{if (0 && registry_find(c, name, $1->hash))} | conformance@sqlite:names
core-extend-no-lease-cutoff | lib/client.c | s{else if \(lease_remaining\(l, (\w+)\) == 0\)}{else if (0 && lease_remaining(l, $1) == 0)} | conformance@mysql:lease
core-release-no-lease-cutoff | lib/client.c | s{else if \(expired\)}{else if (0 && expired)} | conformance@mysql:lease
core-remaining-ignores-session | lib/client.c | s{if \(session < deadline\)}{if (0 && session < deadline)} | conformance@mysql:lease conformance@postgresql:lease
core-remaining-ignores-lost | lib/client.c | s{(lease_remaining\([^)]*\)\s*\{\s*)if \(atomic_load\(&lock->lost\)\)\s*return 0;}{$1} | takeover@sqlite:taken-away
core-elost-not-sticky | lib/client.c | s{(\} else if \(rc == DLOCK_ELOST\) \{\s*)atomic_store\(&l->lost, LOST_LEASE\);}{$1} | takeover@sqlite:taken-away
core-acquire-lease-too-long | lib/client.c | s{atomic_init\(&l->lease_deadline_ms, (\w+) \+ lease_granted_ms\(l, ttl_ms\)\)}{atomic_init(&l->lease_deadline_ms, $1 + lease_granted_ms(l, ttl_ms) + 1000)} | conformance@sqlite:lease
core-extend-lease-too-long | lib/client.c | s{atomic_store\(&l->lease_deadline_ms, (\w+) \+ lease_granted_ms\(l, ttl_ms\)\)}{atomic_store(&l->lease_deadline_ms, $1 + lease_granted_ms(l, ttl_ms) + 1000)} | conformance@sqlite:lease
core-granted-lease-ignored | lib/client.c | s{return \(int64_t\)\(granted && granted < ttl_ms \? granted : ttl_ms\);}{return (int64_t)ttl_ms;} | core:lease
core-lease-from-call-start | lib/client.c | s{int64_t start_ms = call\.lease_start_ms;}{int64_t start_ms = sent_ms;} | core:lease conformance@sqlite:wait
core-lease-start-unclamped | lib/client.c | s{if \(start_ms < sent_ms \|\| start_ms > now_ms\)}{if (0)} | core:lease
core-dropped-session-keeps-locks | lib/client.c | s{(if \(l->generation != generation\))\s*atomic_store\(&l->lost, LOST_SESSION\);}{$1 {}} | core:sessions takeover@postgresql:taken-away
core-cancel-not-cleared | lib/client.c | s{if \(c->backend->cancel_clear\)\s*c->backend->cancel_clear\(c->conn\);}{} | core:cancel
core-cancel-outside-a-wait | lib/client.c | s{if \(c->waiting && c->backend->cancel\)}{if (c->backend->cancel)} | core:cancel
core-extend-without-deadline | lib/client.c | s{struct dlock_call call = \{sent_ms \+ lease_remaining\(l, sent_ms\), sent_ms\};}{struct dlock_call call = {INT64_MAX, sent_ms};} | core:deadlines
core-late-extend-not-lost | lib/client.c | s{\} else if \(lease_remaining\(l, dlock__now_ms\(\)\) == 0\) \{}{\} else if (0) \{} | core:deadlines
core-extend-lease-from-the-reply | lib/client.c | s{atomic_store\(&l->lease_deadline_ms, sent_ms \+ lease_granted_ms\(l, ttl_ms\)\)}{atomic_store(&l->lease_deadline_ms, dlock__now_ms() + lease_granted_ms(l, ttl_ms))} | core:slow-extend
core-clock-stops-in-suspend | lib/util.c | s{clock_gettime\(CLOCK_BOOTTIME, &ts\);}{clock_gettime(CLOCK_MONOTONIC, &ts);} | units:clock
core-scheme-typo-not-caught | lib/client.c | s{const char \*typo_of = be \? NULL : scheme_typo_of\(scheme\);}{const char *typo_of = NULL;} | units process:messages
# --- lib/sha256.c: the digest behind PostgreSQL keys and MySQL digest names ----------
sha256-length-byte-order | lib/sha256.c | s{total_bits >> \(56 - 8 \* i\)}{total_bits >> (8 * i)} | units:sha256 postgresql:key
# --- backends/sqlite/ (sqlite.c, conn.c, ops.c): the row's owner, boot and expiry ----------------------------------
sqlite-extend-name-only | backends/sqlite/sqlite.c | s{(\[STMT_EXTEND\][^\[]*?WHERE name = \?1)[^"]*}{$1} | takeover@sqlite:taken-away
sqlite-extend-any-owner | backends/sqlite/sqlite.c | s{(\[STMT_EXTEND\][^\[]*?) AND owner = \?\d+}{$1} | takeover@sqlite:taken-away
sqlite-extend-any-boot | backends/sqlite/sqlite.c | s{(\[STMT_EXTEND\][^\[]*?) AND boot_id = \?\d+}{$1} | sqlite:row-rewritten
sqlite-extend-after-expiry | backends/sqlite/sqlite.c | s{(\[STMT_EXTEND\][^\[]*?) AND expires_boot_ms > \?\d+}{$1} | sqlite:row-rewritten
sqlite-extend-ignores-changes | backends/sqlite/sqlite.c | s{if \(sqlite3_changes\(c->db\) != 1\)}{if (0)} | takeover@sqlite:taken-away
sqlite-release-any-owner | backends/sqlite/sqlite.c | s{(\[STMT_RELEASE\][^\[]*?) AND owner = \?\d+}{$1} | takeover@sqlite:taken-away
sqlite-release-any-boot | backends/sqlite/sqlite.c | s{(\[STMT_RELEASE\][^\[]*?) AND boot_id = \?\d+}{$1} | sqlite:row-rewritten
sqlite-release-after-expiry | backends/sqlite/sqlite.c | s{(\[STMT_RELEASE\][^\[]*?) AND expires_boot_ms > \?\d+}{$1} | sqlite:row-rewritten
sqlite-release-late-any-owner | backends/sqlite/sqlite.c | s{(\[STMT_RELEASE_LATE\][^\[]*?) AND owner = \?\d+}{$1} | takeover@sqlite:taken-away
sqlite-take-when-held | backends/sqlite/sqlite.c | s{WHERE dlock_locks\.owner IS NULL OR}{WHERE 1 OR} | conformance@sqlite:names
sqlite-take-ignores-expiry | backends/sqlite/sqlite.c | s{ OR dlock_locks\.expires_boot_ms <= \?\d+}{} | sqlite:row-rewritten
sqlite-take-before-expiry | backends/sqlite/sqlite.c | s{(dlock_locks\.expires_boot_ms <= \?\d+)}{$1 + 500} | takeover@sqlite:early
sqlite-take-ignores-boot | backends/sqlite/sqlite.c | s{ OR dlock_locks\.boot_id IS NOT excluded\.boot_id}{} | sqlite:row-rewritten
sqlite-guessed-boot-id | backends/sqlite/conn.c | s{if \(!looks_like_boot_id\(buf\)\)\s*buf\[0\] = '\\0';}{if (!looks_like_boot_id(buf)) strcpy(buf, "unknown-boot");} | process:faults
sqlite-take-skips-floor-read | backends/sqlite/sqlite.c | s{int in_tx = !c->epoch_known, rc;}{int in_tx = 0, rc;} | process:power-loss
sqlite-epoch-without-gap | backends/sqlite/sqlite.c | s{floor = \(highest > floor \? highest : floor\) \+ EPOCH_GAP;}{floor = highest > floor ? highest : floor;} | process:power-loss
sqlite-take-ignores-floor | backends/sqlite/sqlite.c | s{fence = max\(dlock_locks\.fence \+ 1, \?9 \+ 1\)}{fence = dlock_locks.fence + 1} | process:power-loss
sqlite-epoch-any-boot | backends/sqlite/sqlite.c | s{same_boot = row_boot && strcmp\(\(const char \*\)row_boot, dlock__sqlite_boot_id\) == 0;}{same_boot = row_boot != NULL;} | process:power-loss
# --- backends/postgresql/ (postgresql.c, conn.c, ops.c, url.c): the key, the session, the late grant, the URL
pg-key-little-endian | backends/postgresql/postgresql.c | s{bits = bits << 8 \| digest\[i\]}{bits = bits << 8 | digest[7 - i]} | postgresql:key
pg-key-unsigned | backends/postgresql/postgresql.c | s{return -\(int64_t\)\(~bits\) - 1;}{return (int64_t)(bits >> 1);} | postgresql:key
pg-key-long-names-cut | backends/postgresql/postgresql.c | s{(\w+)->key = dlock__pg_key\(name, strlen\(name\)\);}{$1->key = dlock__pg_key(name, strlen(name) > 64 ? 64 : strlen(name));} | conformance@postgresql:names
pg-held-by-any-session | backends/postgresql/conn.c | s{ AND pid = pg_catalog\.pg_backend_pid\(\)}{} | postgresql:wait
pg-late-grant-ignored | backends/postgresql/postgresql.c | s{int granted = held_now\(}{int granted = 0 * held_now(} | postgresql:late-grant
pg-cancelled-grant-kept | backends/postgresql/postgresql.c | s{(if \(ours\) \{.*?)if \(granted\) \{}{${1}if (0) \{}s | postgresql:late-grant
pg-generation-frozen | backends/postgresql/postgresql.c | s{return c->lease \? 0 : c->session\.generation;}{return 0;} | takeover@postgresql:taken-away
pg-url-at-not-encoded | backends/postgresql/url.c | s{if \(\*p == '\@' && p >= authority && p < last\)}{if (0)} | postgresql:stalls-and-waits
pg-extend-keeps-old-ttl | backends/postgresql/postgresql.c | s{dlock__session_retime\(&c->session, &l->base, ttl_ms\);}{} | postgresql:session
pg-fence-not-bumped | backends/postgresql/conn.c | s{SET fence = f\.fence \+ 1}{SET fence = f.fence} | postgresql:lease
pg-pooler-unchecked | backends/postgresql/conn.c | s{#define PG_OURS "[^\n]*}{#define PG_OURS "('%1\$s' <> '')"} && s{(static int settings_took\(const pg_conn \*c, const PGresult \*res\)\s*\{)}{$1 return DLOCK_OK;} | postgresql:pooler
# --- backends/postgresql/lease.c: lease mode's owner token, expiry and fence -------------------------
pglease-extend-any-owner | backends/postgresql/lease.c | s{(extend_sql\[\][^;]*?) AND owner = \$2::uuid}{$1} | postgresql:lease
pglease-release-any-owner | backends/postgresql/lease.c | s{(release_sql\[\][^;]*?) AND owner = \$2::uuid}{$1} | postgresql:lease
pglease-record-put-any-owner | backends/postgresql/lease.c | s{(record_put_sql\[\][^;]*?) AND owner = \$2::uuid}{$1} | postgresql:lease
pglease-take-unexpired | backends/postgresql/lease.c | s{l\.expires_at <= pg_catalog\.clock_timestamp\(\)}{l.expires_at <= pg_catalog.clock_timestamp() + interval '1 hour'} | postgresql:lease
pglease-fence-not-bumped | backends/postgresql/lease.c | s{fence = l\.fence \+ 1}{fence = l.fence} | postgresql:lease
# --- issue 23, PostgreSQL: durability, errors after a grant, conflicts, breaks, the two modes --
pg-fence-not-durable | backends/postgresql/conn.c | s{#define PG_DURABLE "[^\n]*}{#define PG_DURABLE ""} | postgresql:crash
pglease-not-durable | backends/postgresql/lease.c | s{#define PG_DURABLE "pg_catalog\.set_config\('synchronous_commit', 'on', true\)"}{#define PG_DURABLE "pg_catalog.set_config('synchronous_commit', 'off', true)"} | postgresql:crash
pg-grant-error-kept | backends/postgresql/postgresql.c | s{(static void give_back\(pg_conn \*c, const char \*key\)\s*\{)}{$1 if (key) return;} && s{int deadlock = dlock__pg_is_conflict\(res\);}{int deadlock = dlock__pg_has_sqlstate(res, "40P01");} | postgresql:modes-errors-breaks
pg-grant-error-kept-any | backends/postgresql/postgresql.c | s{(static void give_back\(pg_conn \*c, const char \*key\)\s*\{)}{$1 if (key) return;} | postgresql:modes-errors-breaks
pglease-conflict-not-busy | backends/postgresql/lease.c | s{const struct pg_what w = \{DLOCK_ECONN, broke, failed, conflict_status\};}{const struct pg_what w = {DLOCK_ECONN, broke, failed, 0};} | postgresql:modes-errors-breaks
pg-break-not-yet-ignored | backends/postgresql/ops.c | s{else if \(ended < found && still_held\)}{else if (0)} | postgresql:modes-errors-breaks
pg-break-any-key | backends/postgresql/ops.c | s{(" WHERE l\.locktype = 'advisory' AND l\.objsubid = 1 AND l\.granted"\s*)" AND l\.classid = \(\(\$1 >> 32\) & 4294967295\)::oid AND l\.objid = \(\$1 & 4294967295\)::oid"}{$1" AND \$1 IS NOT NULL"} | postgresql:modes-errors-breaks
pglease-break-prefix | backends/postgresql/lease.c | s{(break_sql\[\] = "UPDATE %1\$s SET owner = NULL WHERE )name = \$1}{${1}pg_catalog.substr(name, 1, pg_catalog.length(\$1)) = \$1} | postgresql:modes-errors-breaks
pglease-extend-after-expiry | backends/postgresql/lease.c | s{(extend_sql\[\][^;]*?owner = \$2::uuid) AND " PG_LIVE " }{$1 } | postgresql:modes-errors-breaks
pglease-take-ignores-session | backends/postgresql/lease.c | s{ WHERE pg_catalog\.pg_try_advisory_xact_lock\(\$5::bigint\)}{} | postgresql:modes-errors-breaks
pg-take-ignores-lease | backends/postgresql/conn.c | s{\(st->leased > 0\) == \(c->leases_seen != 0\)}{st->leased <= 0} | postgresql:modes-errors-breaks
pg-list-creates-table | backends/postgresql/ops.c | s{rc = table_exists\(c, c->table, &c->table_ready\);}{rc = dlock__pg_create_table(c);} | postgresql:modes-errors-breaks
pg-fresh-session-ours | backends/postgresql/conn.c | s{#define PG_OURS "pg_catalog\.current_setting\('dlock\.session', true\) = '%1\$s'"}{#define PG_OURS "COALESCE(NULLIF(pg_catalog.current_setting('dlock.session', true), ''), '%1\$s') = '%1\$s'"} | postgresql:modes-errors-breaks
# --- backends/mysql*.c: the session, the session lease, retry-once, the name mapping -----
mysql-generation-frozen | backends/mysql/mysql.c | s{return c->lease \? 0 : c->session.generation;}{return 0;} | takeover@mysql:taken-away
mysql-extend-any-session | backends/mysql/mysql.c | s{return c->lease \? 0 : c->session.generation;}{return 0;} && s{return c->db && dlock__session_holds\(&c->session, &l->base\);}{return c->db != NULL;} && s{IS_USED_LOCK\(\?\) = CONNECTION_ID\(\)\"}{IS_USED_LOCK(?) IS NOT NULL\"}g | takeover@mysql:taken-away
mysql-lease-rounded-down | backends/mysql/conn.c | s{uint32_t s = ttl_ms / 1000 \+ \(ttl_ms % 1000 \? 1 : 0\);}{uint32_t s = ttl_ms / 1000;} | mysql:server
mysql-extend-counts-its-old-ttl | backends/mysql/mysql.c | s{dlock__mysql_lease_needed\(c, l, ttl_ms\)}{dlock__mysql_lease_needed(c, NULL, ttl_ms)} | mysql:server
mysql-no-retry-after-a-dead-session | backends/mysql/mysql.c | s{if \(time_left && dlock__session_may_retry\(attempt, fresh, no_answer\)\)}{if (0)} | mysql:server
mysql-holder-no-retry | backends/mysql/mysql.c | s{holder_failed\(c, stmt, 0, !failed, dlock__session_may_retry\(attempt, fresh, 0\)\)}{holder_failed(c, stmt, 0, !failed, 0)} && s{holder_failed\(c, stmt, 1, cut, dlock__session_may_retry\(attempt, fresh, cut\)\)}{holder_failed(c, stmt, 1, cut, 0)} | mysql:server
pg-holders-any-session | backends/postgresql/ops.c | s{ AND h\.pid = k\.pid"\s*" AND h\.backend_start IS NOT DISTINCT FROM COALESCE\(a\.backend_start, h\.backend_start\)"}{"} | conformance@postgresql:operations
pg-holders-row-kept | backends/postgresql/postgresql.c | s{else\s+dlock__pg_list_unregister\(c, l\);}{} | conformance@postgresql:operations
pg-holders-never-written | backends/postgresql/postgresql.c | s{return dlock__pg_list_register\(c, l, name\);}{return DLOCK_OK;} | conformance@postgresql:operations
mysql-holders-any-connection | backends/mysql/ops.c | s{ AND h\.conn = m\.THREAD_ID}{} | conformance@mysql:operations
mysql-holders-row-kept | backends/mysql/mysql.c | s{dlock__mysql_list_unregister\(c, l\);}{} | conformance@mysql:operations
mysql-read-not-retried | backends/mysql/ops.c | s{(static int reads_anywhere\(enum mysqlbe_op op\)\s*\{)}{$1 return 0;} | conformance@mysql:operations
mysql-granted-lock-kept | backends/mysql/mysql.c | s{(static void give_back\(struct mysqlbe_conn \*c, const struct mysqlbe_lock \*l\)\s*\{)}{$1 return;} | mysql:stalls-and-waits mysql:modes-and-durability
mysql-name-upper-case-verbatim | backends/mysql/url.c | s{return \(c >= 'a' && c <= 'z'\) \|\|}{return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||} | mysql:names
mysql-name-hash-verbatim | backends/mysql/url.c | s{(verbatim_byte\(unsigned char c\)\s*\{[^\}]*?c == '/')}{$1 || c == '#'} | mysql:names
mysql-name-long-cut | backends/mysql/url.c | s{int verbatim = len >= 1 && len <= DLOCK_MYSQL_LOCK_NAME_MAX;}{if (len > DLOCK_MYSQL_LOCK_NAME_MAX) len = DLOCK_MYSQL_LOCK_NAME_MAX; int verbatim = len >= 1;} | mysql:names
mysql-digest-of-prefix | backends/mysql/url.c | s{dlock__sha256\(name, len, digest\);}{dlock__sha256(name, len > 64 ? 64 : len, digest);} | mysql:names
mysql-digest-4-bytes | backends/mysql/url.c | s{unsigned char byte = digest\[i / 2\];}{unsigned char byte = digest[(i / 2) % 4];} | mysql:names
# --- backends/mysql/ops.c and lease.c: lease mode's owner and expiry checks, the fences ------
mysqllease-extend-any-owner | backends/mysql/ops.c | s{(\[OP_LEASE_EXTEND\][^\[]*?) AND owner = \?}{$1 AND (owner = ? OR owner IS NOT NULL)} | mysql:lease
mysqllease-release-any-owner | backends/mysql/ops.c | s{(\[OP_LEASE_RELEASE\][^\[]*?) AND owner = \?}{$1 AND (owner = ? OR owner IS NOT NULL)} | mysql:lease
mysqllease-record-put-any-owner | backends/mysql/ops.c | s{(\[OP_LEASE_RECORD_PUT\][^\[]*?) AND owner = \?}{$1 AND (owner = ? OR owner IS NOT NULL)} | mysql:lease
mysqllease-take-never-expires | backends/mysql/ops.c | s{" owner = IF\(owner IS NULL OR expires_at <= " NOW_MS " OR}{" owner = IF(owner IS NULL OR expires_at <= 0 OR} | mysql:lease
mysqllease-take-steals | backends/mysql/ops.c | s{" owner = IF\(owner IS NULL OR expires_at <= " NOW_MS " OR}{" owner = IF(owner IS NULL OR expires_at <= " NOW_MS " + 100000 OR} | mysql:lease
mysqllease-fence-not-bumped | backends/mysql/ops.c | s{" LAST_INSERT_ID\(fence \+ 1\), fence\),"}{" LAST_INSERT_ID(fence), fence),"} | mysql:lease
mysql-fence-not-bumped | backends/mysql/ops.c | s{ON DUPLICATE KEY UPDATE fence = LAST_INSERT_ID\(fence \+ 1\)}{ON DUPLICATE KEY UPDATE fence = fence + 1, last_slot = last_slot + LAST_INSERT_ID(1) - 1}g | mysql:lease conformance@mysql?fencing=on:fencing
# --- backends/mysql*.c, issue 23: the userinfo, durable commits, a late extend, one name per break, the modes
mysql-url-userinfo-ends-at-the-query | backends/mysql/url.c | s{size_t len = strcspn\(authority, "/"\);}{size_t len = strcspn(authority, "/?");} | mysql:url
mysql-url-key-across-the-last-at-shown | backends/mysql/url.c | s{if \(where < last_at\)\s*return 1;}{} | mysql:url
mysql-flush-not-checked | backends/mysql/conn.c | s{if \(c->flush_at_commit == 1 \|\| c->url.flush_check_off\)}{if (1)} | mysql:modes-and-durability
mysqllease-late-extend-revives | backends/mysql/ops.c | s{(\[OP_LEASE_EXTEND\][^\[]*?AND owner = \?) AND expires_at > " NOW_MS}{$1"} | mysql:modes-and-durability
mysqllease-break-by-prefix | backends/mysql/ops.c | s{(\[OP_LEASE_BREAK\][^\[]*?)WHERE name = \?}{${1}WHERE name LIKE CONCAT(?, '%')} | mysql:modes-and-durability
# killed by chance: the race it opens showed in 2 of 300 rounds (in about half of the runs)
mysql-break-before-the-lock-is-free | backends/mysql/ops.c | s{return killed_session_let_go\(c, name, p, id\);}{return 1;} | mysql:modes-and-durability
mysql-session-ignores-lease-rows | backends/mysql/mysql.c | s{int lease_held = dlock__mysql_lease_row_holder\(c, name, NULL, 0\);}{int lease_held = 0;} | mysql:modes-and-durability
mysqllease-ignores-session-locks | backends/mysql/lease.c | s{(int held = dlock__mysql_session_lock_holder\(c, l->server_name, &id\);\s*)if \(held <= 0\)}{${1}if (held <= 1)} | mysql:modes-and-durability
mysql-fenced-get-lock-in-statement-binlog | backends/mysql/mysql.c | s{if \(c->fencing && !c->binlog_statement\) \{}{if (c->fencing) \{} | mysql:private-servers
mysql-lease-check-needs-a-database | backends/mysql/lease.c | s{c->last_errno != ER_NO_SUCH_TABLE && c->last_errno != ER_NO_DB_ERROR &&}{c->last_errno != ER_NO_SUCH_TABLE && 1 &&} | mysql:modes-and-durability
mysql-cancel-spares-the-round-trips-before-the-wait | backends/mysql/cancel.c | s{(c->cancel_requested = 1;.*?)dlock__mysql_watch_shorten\(c, dlock__now_ms\(\) \+ CANCEL_GIVEUP_MS\);}{$1}s | mysql:stalls-and-waits
# the poll sleeps on another clock than its condvar's: a wait that never ends (the tcase's timeout kills it)
mysqllease-poll-on-the-wall-clock | backends/mysql/lease.c | s{clock_gettime\(CLOCK_MONOTONIC, &until\); /\* cancel_cv's clock}{clock_gettime(CLOCK_REALTIME, &until); /* cancel_cv's clock} | mysql:wall-clock
# --- backends/zookeeper/: the owner and zxid check, the lowest sequence, the encoding, the records
zk-extend-any-owner | backends/zookeeper/zookeeper.c | s{if \(stat\.ephemeralOwner != c->session_id \|\| \(uint64_t\)stat\.czxid != lock->base\.fence\)}{if (0)} | zookeeper:server
zk-extend-any-czxid | backends/zookeeper/zookeeper.c | s{ \|\| \(uint64_t\)stat\.czxid != lock->base\.fence\)}{)} | zookeeper:server
zk-granted-when-not-lowest | backends/zookeeper/zookeeper.c | s{if \(pred_seq >= 0\)\s*return WAIT_AGAIN;}{} | conformance@zookeeper:names zookeeper:server
zk-lowest-by-name | backends/zookeeper/zookeeper.c | s{else if \(seq >= 0 && seq < own_seq && seq > pred_seq\)}{else if (seq >= 0 && strcmp(op->children[i], own) < 0 && seq > pred_seq)} | zookeeper:server
zk-holder-not-lowest | backends/zookeeper/conn.c | s{if \(seq >= 0 && \(best < 0 \|\| seq < best_seq\)\)}{if (seq >= 0 && (best < 0 || seq > best_seq))} | zookeeper:server
zk-encode-dot-plain | backends/zookeeper/url.c | s{(plain_byte\(unsigned char ch\)\s*\{[^\}]*?ch == '_' \|\| ch == '-')}{$1 || ch == '.'} | zookeeper:url
zk-encode-slash-plain | backends/zookeeper/url.c | s{(plain_byte\(unsigned char ch\)\s*\{[^\}]*?ch == '_' \|\| ch == '-')}{$1 || ch == '/'} | zookeeper:url
zk-encode-lower-hex | backends/zookeeper/url.c | s{"0123456789ABCDEF"}{"0123456789abcdef"} | zookeeper:url
zk-record-put-unchecked | backends/zookeeper/ops.c | s{zoo_check_op_init\(&op->multi\[0\], a->own, 0\);}{zoo_check_op_init(&op->multi[0], a->own, -1);} && s{return zoo_amulti\(c->zh, 2, op->multi}{op->multi[0] = op->multi[1]; return zoo_amulti(c->zh, 1, op->multi} | zookeeper:server
zk-session-loss-keeps-locks | backends/zookeeper/conn.c | s{c->stale_count = 0; /\* the ensemble deletes a closed session's nodes \*/\s*dlock__session_new\(&c->s\);}{c->stale_count = 0;} | zookeeper:server
zk-socket-inherited | backends/zookeeper/io.c | s{if \(fd < 0 \|\| fd == c->cloexec_fd\)\s*return;}{return;} | zookeeper:server
zk-waiter-granted-on-wake | backends/zookeeper/zookeeper.c | s{if \(rc == WAIT_AGAIN\)\s*rc = DLOCK_OK;}{if (rc == WAIT_AGAIN) { call->lease_start_ms = dlock__now_ms(); return DLOCK_OK; }} | zookeeper:server
zk-cancel-withdraw-unbounded | backends/zookeeper/zookeeper.c | s{if \(status == DLOCK_ECANCELED\)}{if (0)} | zookeeper:faults
zk-cancel-before-the-wait-ignored | backends/zookeeper/zookeeper.c | s{c->wake_on_cancel = wait_ms != 0 \? ZK_WAKE_ON_CANCEL : 0;}{c->wake_on_cancel = 0;} | zookeeper:faults
# --- backends/redis*.{c,h}: the owner token in every script, NX, the fence, the deadline, reloads
redis-extend-any-owner | backends/redis/scripts.h | s{(define DLOCK_REDIS_EXTEND.*?)if v and string\.sub\(v, 1, 32\) == ARGV\[1\] then}{${1}if v then}s | takeover@redis:taken-away
redis-release-any-owner | backends/redis/scripts.h | s{(define DLOCK_REDIS_RELEASE.*?)if v and string\.sub\(v, 1, 32\) == ARGV\[1\] then}{${1}if v then}s | takeover@redis:taken-away
redis-record-put-any-owner | backends/redis/scripts.h | s{(define DLOCK_REDIS_RECORD_PUT.*?)if v and string\.sub\(v, 1, 32\) == ARGV\[1\] then}{${1}if v then}s | redis:lock
redis-record-get-any-owner | backends/redis/scripts.h | s{(define DLOCK_REDIS_RECORD_GET.*?)if v and string\.sub\(v, 1, 32\) == ARGV\[1\] then}{${1}if v then}s | redis:lock
redis-acquire-retry-any-owner | backends/redis/scripts.h | s{(define DLOCK_REDIS_ACQUIRE.*?)if v and string\.sub\(v, 1, 32\) == string\.sub\(ARGV\[1\], 1, 32\) then}{${1}if v then}s | redis:lock
redis-take-without-nx | backends/redis/scripts.h | s{, 'NX', 'PX', ARGV\[2\]\)}{, 'PX', ARGV[2])} | redis:lock
redis-fence-not-bumped | backends/redis/scripts.h | s{local f = \(tonumber\(redis\.call\('GET', KEYS\[2\]\)\) or 0\) \+ 1}{local f = (tonumber(redis.call('GET', KEYS[2])) or 0)} | redis:fences-and-foreign-keys redis:lock
redis-fence-no-floor | backends/redis/scripts.h | s{if f < now then f = now end}{if f == 1 then f = now end} | redis:fences-and-foreign-keys
redis-fence-retry-plain-incr | backends/redis/scripts.h | s{(if f then return tonumber\(f\) end\\n"\s*\\\s*"  )return fence\(\)}{${1}return redis.call('INCR', KEYS[2])} | redis:fences-and-foreign-keys
redis-foreign-key-free | backends/redis/ops.c | s{int held = r\[1\]->type == REDIS_REPLY_INTEGER}{int held = parse_value(r[0], info) && r[1]->type == REDIS_REPLY_INTEGER} | redis:fences-and-foreign-keys
redis-extend-before-owner-check | backends/redis/scripts.h | s{(define DLOCK_REDIS_EXTEND\s*\\\s*)"local v = redis\.call\('GET', KEYS\[1\]\)\\n"}{$1"redis.call('PEXPIRE', KEYS[1], ARGV[2])\\n" "local v = redis.call('GET', KEYS[1])\\n"} | redis:fences-and-foreign-keys
redis-release-retry-any-free | backends/redis/scripts.h | s{"if not v and redis\.call\('GET', KEYS\[2\]\) == ARGV\[3\] then return 2 end\\n"}{"if not v then return 2 end\\n"} | redis:lost-replies
redis-release-retry-held-by-another | backends/redis/scripts.h | s{"if not v and redis\.call\('GET', KEYS\[2\]\) == ARGV\[3\]}{"if redis.call('GET', KEYS[2]) == ARGV[3]} | redis:lost-replies
redis-release-free-without-resend | backends/redis/redis.c | s{\(ours == 2 && c->resent\)}{(ours == 2)} | redis:fences-and-foreign-keys
redis-break-retry-says-free | backends/redis/scripts.h | s{"if redis\.call\('GET', KEYS\[2\]\) == ARGV\[2\] then return 1 end\\n"}{""} | redis:lost-replies
redis-deadline-per-read | backends/redis/io.c | s{if \(!\*blocking_read\) \{}{if (0) \{} | redis:lost-replies
redis-release-no-publish | backends/redis/scripts.h | s{"  redis\.pcall\('PUBLISH', ARGV\[2\], 'released'\)\\n"}{""} | redis:lock
redis-round-trip-without-deadline | backends/redis/io.c | s{if \(call->deadline_ms < end\)\s*end = call->deadline_ms;}{} | redis:faults
redis-noscript-not-reloaded | backends/redis/io.c | s{pass == 0 && strncmp\(\(\*reply\)->str, "NOSCRIPT", 8\) == 0\)}{pass == 0 && 0)} | redis:faults
redis-dead-connection-not-replaced | backends/redis/io.c | s{if \(fresh \|\| attempt > 0 \|\| dlock__redis_left_ms\(call\) <= 0\)}{if (1)} | redis:faults
redis-take-not-cancellable | backends/redis/redis.c | s{c->cancellable = wait_ms != 0;}{c->cancellable = 0;} | redis:faults
# --- backends/etcd/: the lowest-revision predicate, the creation-revision compares, the key encoding
etcd-lowest-always | backends/etcd/etcd.c | s{return own_create <= other_create;}{return 1;} | etcd:etcdctl conformance@etcd:names
etcd-highest-holds | backends/etcd/etcd.c | s{return own_create <= other_create;}{return own_create >= other_create;} | etcd:etcdctl
etcd-extend-no-key-check | backends/etcd/etcd.c | s{if \(!p\.own_found \|\| p\.own_create != \(int64_t\)lock->base\.fence \|\| p\.own_lease != lock->lease\)}{if (0)} | etcd:etcdctl takeover@etcd:taken-away
etcd-extend-create-unchecked | backends/etcd/etcd.c | s{if \(!p\.own_found \|\| p\.own_create != \(int64_t\)lock->base\.fence \|\| p\.own_lease != lock->lease\)}{if (!p.own_found)} | etcd:etcdctl
etcd-release-unguarded | backends/etcd/etcd.c | s{(static int etcd_release.*?)dlock__etcd_txn\(dlock__etcd_array\(dlock__etcd_cmp_create\(lock->key, \(int64_t\)lock->base\.fence\)\),}{${1}dlock__etcd_txn(NULL,}s | etcd:etcdctl takeover@etcd:taken-away
etcd-move-lease-unguarded | backends/etcd/etcd.c | s{(static int move_lease.*?)dlock__etcd_txn\(dlock__etcd_array\(dlock__etcd_cmp_create\(lock->key, \(int64_t\)lock->base\.fence\)\),}{${1}dlock__etcd_txn(NULL,}s | etcd:etcdctl
etcd-records-unguarded | backends/etcd/ops.c | s{dlock__etcd_txn\(dlock__etcd_array\(dlock__etcd_cmp_create\(lock->key, \(int64_t\)lock->base\.fence\)\),}{dlock__etcd_txn(NULL,} | etcd:etcdctl
etcd-waiter-no-recheck | backends/etcd/etcd.c | s{p->lowest = p->own_found;}{p->lowest = 1;} && s{if \(rc == DLOCK_ELOST \|\| !p->own_found \|\| p->own_create != \(int64_t\)lock->base\.fence\)\s*return AGAIN;}{} | etcd:waiter-lease
etcd-waiter-own-key-unchecked | backends/etcd/etcd.c | s{if \(rc == DLOCK_ELOST \|\| !p->own_found \|\| p->own_create != \(int64_t\)lock->base\.fence\)}{if (rc == DLOCK_ELOST)} | etcd:waiter-key
# (read_place() still never calls a waiter without its own key the lowest, so
# this mutant is not granted on the vanished key: it fails to queue again,
# and the waiter ends in an error instead of its grant: "the first waiter: -1".)
etcd-fence-not-create-revision | backends/etcd/etcd.c | s{lock->base\.fence = \(uint64_t\)p->own_create;}{lock->base.fence = (uint64_t)p->revision + 1;} | etcd:etcdctl
etcd-slash-not-escaped | backends/etcd/url.c | s{return ch == '%' \|\| ch == '/' \|\|}{return ch == '%' ||} | etcd:units
etcd-escape-not-one-spelling | backends/etcd/url.c | s{\|\| !escaped\(\(unsigned char\)\(hi << 4 \| lo\)\)}{} | etcd:units
etcd-request-without-deadline | backends/etcd/io.c | s{return call->deadline_ms < cap \? call->deadline_ms : cap;}{return cap;} | etcd:member-stop
etcd-queueing-not-cancellable | backends/etcd/etcd.c | s{grant\(c, lock->lease_ttl_s, deadline, 1, }{grant(c, lock->lease_ttl_s, deadline, 0, } | etcd:cluster-stop-first
# --- tools/: the timing decisions of dlock run, and what it says -----------------------
tool-lease-not-watched | tools/run_policy.c | s{!s->release_asked && now >= s->lease_ends_at\)}{!s->release_asked && 0)} | run_policy
tool-no-sigkill | tools/run_policy.c | s{if \(s->job_running && s->kill_at >= 0 && now >= s->kill_at\)}{if (0)} | run_policy
tool-min-hold-ignored | tools/run_policy.c | s{s->got_signal \|\| now >= hold_until\(s\)\)}{s->got_signal || 1)} | run_policy
tool-waits-forever-for-the-store | tools/run_policy.c | s{if \(s->let_go_at >= 0 && now >= s->let_go_at\)\s*return RUN_ABANDON;}{} | run_policy
tool-lost-at-release-silent | tools/run.c | s{if \(r->release_status == DLOCK_ELOST && !r->st.lost\)}{if (0)} | process:faults
tool-ttl-floor-gone | tools/dlock.c | s{if \(\*ttl_ms < MIN_TTL_MS\)}{if (0)} | process:messages
tool-messages-raw | tools/cli.c | s{fmt_escaped\(stderr, text\);}{fputs(text, stderr);} | process:messages
# --- operations: run records, --once-per, break ------------------------------------------
ops-sqlite-record-put-any-owner | backends/sqlite/sqlite.c | s{(\[STMT_RECORD_PUT\][^\[]*?) AND owner = \?2}{$1} | conformance@sqlite:operations
ops-sqlite-record-put-ignores-changes | backends/sqlite/ops.c | s{return written \? DLOCK_OK : record_not_held\(name\);}{return DLOCK_OK;} | conformance@sqlite:operations
ops-sqlite-break-expired | backends/sqlite/sqlite.c | s{(\[STMT_BREAK\][^\[]*?) AND expires_boot_ms > \?3}{$1} | conformance@sqlite:operations
ops-sqlite-break-by-prefix | backends/sqlite/sqlite.c | s{(\[STMT_BREAK\][^\[]*?)WHERE name = \?1}{${1}WHERE substr(name, 1, length(?1)) = ?1} | process:break-one-name
ops-once-window-whole-period | tools/run_policy.c | s{return 2 \* \(store_now_ms - last_success_start_ms\) < period_ms;}{return store_now_ms - last_success_start_ms < period_ms;} | run_policy
ops-once-done-never | tools/run_policy.c | s{return 2 \* \(store_now_ms - last_success_start_ms\) < period_ms;}{return 0;} | run_policy process:ops
ops-once-future-record-runs | tools/run_policy.c | s{return 2 \* \(store_now_ms - last_success_start_ms\) < period_ms;}{return store_now_ms >= last_success_start_ms \&\& 2 * (store_now_ms - last_success_start_ms) < period_ms;} | run_policy
ops-once-records-the-end | tools/run.c | s{dlock_record_put\(r->lock, r->store_start_ms\)}{dlock_record_put(r->lock, r->store_start_ms + cli_now_ms() - r->st.acquired_at)} | process:once-per-window
ops-any-exit-marks-done | tools/run_policy.c | s{return exit_status == 0;}{return 1;} | run_policy process:ops
ops-run-ignores-marks-done | tools/run.c | s{r->lease_ok_at_exit && run_slot_marks_done\(r->job_status\)}{r->lease_ok_at_exit} | process:ops
ops-sqlite-no-migration | backends/sqlite/conn.c | s{if \(src == SQLITE_OK\)\s*src = add_missing_columns\(c\);}{} | process:ops
ops-metrics-forget-last-success | tools/metrics.c | s{: previous_success\(path\);}{: -1;} | process:ops
ops-metrics-no-file-lock | tools/metrics.c | s{int lock_fd = lock_file\(path\);}{int lock_fd = open("/dev/null", O_RDONLY \| O_CLOEXEC);} | process:metrics-file
ops-metrics-value-after-first-space | tools/metrics.c | s{char \*space = strrchr\(line, ' '\);}{char *space = strchr(line, ' ');} | process:metrics-file
ops-run-no-slot-check | tools/run.c | s{if \(!run_once_done\(last_start, store_now, r->o->once_per_ms\)\)\s*return 0;}{return 0;} | process:ops
# --- run history: the trimming predicate of each store, and what dlock run records -----------
ops-sqlite-history-trim-one-short | backends/sqlite/history.c | s{AND id <= "}{AND id < "} | history@sqlite:history
ops-pg-history-trim-one-short | backends/postgresql/history.c | s{snprintf\(offset, sizeof offset, "%u", keep > 0 \? keep - 1 : 0\);}{snprintf(offset, sizeof offset, "%u", keep);} | history@postgresql:history
ops-mysql-history-trim-one-short | backends/mysql/history.c | s{AND id <= \(SELECT id FROM \(SELECT}{AND id < (SELECT id FROM (SELECT} | history@mysql:history
ops-redis-history-trim-one-short | backends/redis/history.c | s{snprintf\(last, sizeof last, "%u", keep > 0 \? keep - 1 : 0\);}{snprintf(last, sizeof last, "%u", keep);} | history@redis:history
ops-zk-history-trim-one-short | backends/zookeeper/history.c | s{int excess = count \+ 1 > \(int\)keep \? count \+ 1 - \(int\)keep : 0;}{int excess = count > (int)keep ? count - (int)keep : 0;} | history@zookeeper:history
ops-etcd-history-trim-one-short | backends/etcd/history.c | s{int64_t excess = count \+ 1 > \(int64_t\)keep \? count \+ 1 - \(int64_t\)keep : 0;}{int64_t excess = count > (int64_t)keep ? count - (int64_t)keep : 0;} | history@etcd:history
ops-history-outcome-always-ran | tools/run.c | s{run_outcome_name\(outcome\), exit_status}{"ran", exit_status} | history@sqlite:history
ops-history-exit-status-dropped | tools/run.c | s{int exit_status = r->job > 0 \|\| r->st.job_done \? r->job_status : -1;}{int exit_status = -1;} | history@sqlite:history
ops-history-keep-unbounded | lib/client.c | s{rc = c->backend->history_add\(c->conn, name, &run, DLOCK_HISTORY_KEEP, &call\);}{rc = c->backend->history_add(c->conn, name, \&run, 1000, \&call);} | history@sqlite:history
EOF
}
# Not in the list, on purpose (equivalent mutants: no behaviour can tell):
# - etcd's "put only if absent" compare on the own key: the key's name holds
#   its own new lease's ID, so nobody else can have written it first; the
#   compare only makes a retried put (after a lost answer) harmless.
# - the backends' own generation checks in extend and release: the core
#   marks every lock of an earlier session lost after the call that replaced
#   it (session_generation), so the backend's check is never reached with
#   such a lock; pg-generation-frozen and mysql-generation-frozen cut the
#   generation itself instead.
# - the MySQL IS_USED_LOCK(?) = CONNECTION_ID() check alone, and PostgreSQL's
#   !l->linked / session_usable() checks alone: a lock whose session lives on
#   cannot be taken by another session, and a lock from an earlier session is
#   already refused by the generation check; mysql-extend-any-session cuts both.
# - MySQL session mode's IS_USED_LOCK(?) <=> CONNECTION_ID() in the run
#   record's write: for the same reason (a session that lost the lock is
#   dropped, or replaced under a new generation, before a write can reach it).

say() { printf '%s\n' "$*"; }
die() { say "mutants.sh: $*" >&2; exit 2; }

# --- arguments ---------------------------------------------------------------------------

selected_names=()
backends=()
mode=all
list_only=0
work=
baseline=1
while [ $# -gt 0 ]; do
    case $1 in
        --all) mode=all ;;
        --ci) mode=ci ;;
        --list) list_only=1 ;;
        --backend) [ $# -ge 2 ] || die "--backend needs a name"; backends+=("$2"); shift ;;
        --work) [ $# -ge 2 ] || die "--work needs a folder"; work=$2; shift ;;
        --no-baseline) baseline=0 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) selected_names+=("$1") ;;
    esac
    shift
done

names=() files=() edits=() tests=()
while IFS= read -r line; do
    case $line in '#'* | '') continue ;; esac
    rest=$line
    name=${rest%% | *}; rest=${rest#* | }
    file=${rest%% | *}; rest=${rest#* | }
    tests_field=${rest##* | }
    edit=${rest% | *}
    [ -n "$name" ] && [ -n "$file" ] && [ -n "$edit" ] && [ -n "$tests_field" ] ||
        die "malformed line in the table: $line"
    names+=("$name"); files+=("$file"); edits+=("$edit"); tests+=("$tests_field")
done < <(mutant_table)

for n in "${selected_names[@]}"; do
    found=0
    for m in "${names[@]}"; do [ "$m" = "$n" ] && found=1; done
    [ $found -eq 1 ] || die "no mutant named '$n' (see --list)"
done

chosen=()
shards=${DLOCK_MUTANTS_CI_SHARDS:-2}
shard=${DLOCK_MUTANTS_CI_SHARD:-$(( $(date -u +%s) / 86400 % shards ))}
for i in "${!names[@]}"; do
    n=${names[$i]}
    if [ ${#selected_names[@]} -gt 0 ]; then
        case " ${selected_names[*]} " in *" $n "*) ;; *) continue ;; esac
    fi
    if [ ${#backends[@]} -gt 0 ]; then
        case " ${backends[*]} " in *" ${n%%-*} "*) ;; *) continue ;; esac
    fi
    [ $mode = ci ] && [ $(( i % shards )) -ne $(( shard % shards )) ] && continue
    chosen+=("$i")
done
[ ${#chosen[@]} -gt 0 ] || die "no mutant selected"

if [ $list_only -eq 1 ]; then
    for i in "${chosen[@]}"; do
        printf '%-34s %-22s %s\n' "${names[$i]}" "${files[$i]}" "${tests[$i]}"
    done
    exit 0
fi
# Every pattern still applies to the code it mutates (perl only, a second
# for the whole table): the CI subset is a third of the list, and a pattern
# left behind by a change would otherwise fail only on its shard's day.
if [ $mode = ci ]; then
    stale=()
    for i in "${!names[@]}"; do
        perl -0777 -e '
            my ($file, $code) = @ARGV;
            open(my $in, "<", $file) or exit 4;
            local $/; $_ = <$in>; close $in;
            my $before = $_;
            my $changed = eval $code;
            exit 5 if $@;
            exit 3 unless $changed && $_ ne $before;' "$src/${files[$i]}" "${edits[$i]}" || stale+=("${names[$i]}")
    done
    [ ${#stale[@]} -eq 0 ] || die "these mutants no longer apply to their files (fix their patterns): ${stale[*]}"
fi
[ $mode = ci ] && say "mutants: CI subset: shard $(( shard % shards )) of $shards (day $(( $(date -u +%s) / 86400 ))): ${#chosen[@]} of ${#names[@]} mutants; scripts/mutants.sh --all runs every one"

# --- the scratch tree ------------------------------------------------------------------------

[ -x "$src/configure" ] || die "run ./autogen.sh first (no configure script in $src)"
[ ! -f "$src/config.status" ] || die "$src is configured in place; use a separate build folder (mkdir _build; cd _build; ../configure)"
if [ -z "$work" ]; then
    work=$(mktemp -d /tmp/dlock-mutants.XXXXXX) || die "mktemp failed"
    remove_work=1
else
    mkdir -p "$work" || die "cannot create $work"
    work=$(cd "$work" && pwd)
    remove_work=0
fi
chmod 755 "$work"
scratch=$work/src
build=$work/build
applied_file=
cleanup() {
    # Never leave a mutant behind in a kept scratch tree.
    [ -n "$applied_file" ] && cp "$work/pristine" "$scratch/$applied_file"
    [ "$remove_work" = 1 ] && rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$scratch" "$build"
# tar keeps the modification times, so that a kept tree rebuilds only what
# changed; the files that mutants edit are always rebuilt (an interrupted
# run may have left one compiled with its mutant).
tar -C "$src" --exclude=./_build --exclude=./.git --exclude=./autom4te.cache -cf - . |
    tar -C "$scratch" -xf - || die "cannot copy the source to $scratch"
for f in $(printf '%s\n' "${files[@]}" | sort -u); do
    touch "$scratch/$f"
done
log=$work/build.log
if [ ! -f "$build/Makefile" ]; then
    say "mutants: configuring a scratch build in $build"
    (cd "$build" && "$scratch/configure" --disable-silent-rules >"$log" 2>&1) || { cat "$log"; die "configure failed"; }
fi
built() { grep -q "^#define HAVE_$1 1" "$build/config.h"; }

# --- the stores ------------------------------------------------------------------------------

urls=${DLOCK_TEST_URLS:-sqlite://$work/mutants.db}
# SCHEME, or SCHEME?OPTION (mysql?mode=lease): the first test URL of that
# scheme with exactly that one of libdlock's own options (mode=, fencing=),
# or with none of them.  No store is named here: the URLs are
# tests/servers.sh's, one canonical scheme per store.
url_for() {
    local scheme=${1%%\?*} option= u
    case $1 in *\?*) option=${1#*\?} ;; esac
    for u in $urls; do
        [ "${u%%:*}" = "$scheme" ] || continue
        if [ -n "$option" ]; then
            case $u in *[?\&]"$option"*) echo "$u"; return 0 ;; esac
        else
            case $u in *mode=lease* | *fencing=on*) ;; *) echo "$u"; return 0 ;; esac
        fi
    done
    return 1
}

# Run one TEST token; 0 passed, 1 failed (kills), 2 could not run.
run_token() {
    local token=$1 out=$2 bin rest backend= case= env_urls
    bin=${token%%[@:]*}
    rest=${token#"$bin"}
    case $rest in @*) backend=${rest#@}; backend=${backend%%:*} ;; esac
    case $rest in *:*) case=${rest#*:} ;; esac
    env_urls=$urls
    if [ -n "$backend" ]; then
        env_urls=$(url_for "$backend") || { echo "no $backend URL in DLOCK_TEST_URLS" >"$out"; return 2; }
    fi
    local status=0
    (
        cd "$build" || exit 2
        export top_builddir=$build top_srcdir=$scratch DLOCK_BIN=$build/dlock
        export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60} DLOCK_TEST_REQUIRE=all DLOCK_TEST_URLS="$env_urls"
        [ -n "$case" ] && export CK_RUN_CASE=$case
        exec timeout 600 "./tests/check_$bin"
    ) >"$out" 2>&1 || status=$?
    case $status in
        0) return 0 ;;
        1 | 124 | 1[2-9][0-9]) return 1 ;; # failures, timeout, a signal
        *) echo "exit status $status" >>"$out"; return 2 ;;
    esac
}

# The targets a TEST token needs rebuilt.
targets_for() {
    local t bin
    for t in $1; do
        bin=${t%%[@:]*}
        printf 'tests/check_%s ' "$bin"
        # process and postgresql (test_close_on_exec) run the tool
        case $bin in process | postgresql | history) printf 'dlock ' ;; esac
    done
}

make_targets() {
    make -C "$build" -j2 libdlock.la $(targets_for "$1") >"$log" 2>&1
}

needs_backend() {
    case ${1%%-*} in
        sqlite) echo SQLITE ;;
        pg | pglease) echo POSTGRESQL ;;
        mysql | mysqllease) echo MYSQL ;;
        redis) echo REDIS ;;
        etcd) echo ETCD ;;
        zk) echo ZOOKEEPER ;;
    esac
}

# --- baseline: the selected tests pass on the unmutated tree -----------------------------------

all_tokens=$(for i in "${chosen[@]}"; do printf '%s\n' ${tests[$i]}; done | sort -u | tr '\n' ' ')
started=$(date +%s)
make_targets "$all_tokens" || { tail -40 "$log"; die "the unmutated scratch tree does not build"; }
if [ $baseline -eq 1 ]; then
    for t in $all_tokens; do
        run_token "$t" "$work/baseline.out"
        case $? in
            0) ;;
            1) tail -30 "$work/baseline.out"; die "baseline: $t fails on the unmutated tree" ;;
            *) tail -5 "$work/baseline.out"; die "baseline: $t could not run" ;;
        esac
    done
    say "mutants: baseline passes ($all_tokens) in $(( $(date +%s) - started )) s"
fi

# --- the mutants ------------------------------------------------------------------------------------

killed=0 failures=()
for i in "${chosen[@]}"; do
    name=${names[$i]} file=${files[$i]} edit=${edits[$i]} mutant_tests=${tests[$i]}
    t0=$(date +%s)
    need=$(needs_backend "$name")
    if [ -n "$need" ] && ! built "$need"; then
        say "ERROR     $name: the scratch build has no ${need,,} backend"
        failures+=("$name (backend not built)")
        continue
    fi
    [ -f "$scratch/$file" ] || { say "DOES NOT APPLY  $name: $file is missing"; failures+=("$name (does not apply)"); continue; }
    cp "$scratch/$file" "$work/pristine"
    applied_file=$file
    perl_status=0
    perl -0777 -e '
            my ($file, $code) = @ARGV;
            open(my $in, "<", $file) or die "$file: $!";
            local $/; $_ = <$in>; close $in;
            my $before = $_;
            my $changed = eval $code;
            die "bad Perl: $@" if $@;
            exit 3 unless $changed && $_ ne $before;
            open(my $out, ">", $file) or die "$file: $!";
            print $out $_; close $out;' "$scratch/$file" "$edit" || perl_status=$?
    if [ $perl_status -ne 0 ]; then
        cp "$work/pristine" "$scratch/$file"
        applied_file=
        if [ $perl_status -eq 3 ]; then
            say "DOES NOT APPLY  $name: its pattern is no longer in $file: $edit"
            failures+=("$name (does not apply)")
        else
            say "BAD MUTANT  $name: its Perl code fails: $edit"
            failures+=("$name (bad Perl)")
        fi
        continue
    fi
    diff_text=$(diff -U0 --label "a/$file" --label "b/$file" "$work/pristine" "$scratch/$file" | sed '/^@@/d')
    verdict=
    if ! make_targets "$mutant_tests"; then
        verdict="DOES NOT BUILD"
        tail -20 "$log"
    else
        for t in $mutant_tests; do
            run_token "$t" "$work/mutant.out"
            case $? in
                0) ;;
                1) verdict="killed by $t"; break ;;
                *) verdict="ERROR: $t could not run: $(tail -1 "$work/mutant.out")"; break ;;
            esac
        done
        [ -n "$verdict" ] || verdict=SURVIVED
    fi
    cp "$work/pristine" "$scratch/$file"
    applied_file=
    # A killed mutant is a test that failed, maybe half-way through a fault
    # (a member stopped): the servers whole again for the next one.
    if [ -n "${DLOCK_TEST_SERVERS_DIR:-}" ] && [ "$verdict" != SURVIVED ]; then
        "$src/tests/servers.sh" heal "$DLOCK_TEST_SERVERS_DIR" || die "the servers could not be healed after $name"
    fi
    took=$(( $(date +%s) - t0 ))
    case $verdict in
        killed*)
            killed=$((killed + 1))
            say "killed    $name  ($verdict, ${took}s)"
            # The first failure Check reported: killed for the right reason?
            why=$(grep -m1 -E ':[FE]:' "$work/mutant.out" | sed 's/^.*:[FE]:[^:]*:[^:]*:[0-9]*:/ /')
            [ -n "$why" ] && say "    why:$why"
            ;;
        *)
            say "${verdict%%:*}  $name  (${took}s; tests: $mutant_tests)"
            [ "${verdict%%:*}" = ERROR ] && say "    ${verdict#*: }"
            failures+=("$name (${verdict%%:*})")
            ;;
    esac
    printf '%s\n' "$diff_text" | sed 's/^/    /'
done

# Leave the scratch build matching the source again (a kept --work tree).
make_targets "$all_tokens" >/dev/null 2>&1 || true

say "mutants: ${killed} of ${#chosen[@]} killed in $(( $(date +%s) - started )) s"
if [ ${#failures[@]} -gt 0 ]; then
    say "mutants: FAILED: ${failures[*]}"
    exit 1
fi
exit 0
