/*
 * dlock history and dlock check, against every URL of DLOCK_TEST_URLS (as
 * check_conformance runs), and the rights cases on real servers: an SQLite
 * history table that cannot take a row, a PostgreSQL role that may not
 * create tables, a Redis ACL user without channel or list rights.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "stores/store.h"
#include "dlock.h"

static const char *url;     /* set by dlt_run_per_url */
static const char *backend; /* its backend's name */
static char *dir;           /* a fresh folder for each test's files */
static char *name;
static const char *dlock_bin;

static void setup(void)
{
    dir = dlt_tmpdir();
    name = dlt_unique_name("hist");
    dlock_bin = getenv("DLOCK_BIN");
    if (!dlock_bin)
        dlock_bin = "./dlock";
}

static void teardown(void)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
    free(name);
}

/* The store keeps no run history (tests/stores/: no DLT_HISTORY): every way
 * in says so plainly, and dlock run goes on without one. */
static int without_history(void)
{
    if (dlt_store_of(url)->caps(url) & DLT_HISTORY)
        return 0;
    dlock_client *c = NULL;
    dlock_history *h = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_history_add(c, name, "ran", 0, 5, 0), DLOCK_ENOTSUP);
    ck_assert_int_eq(dlock_history_read(c, name, 0, &h), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "does not offer"));
    dlock_close(c);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- true 2>'%s/err'", dlock_bin, url, name, dir), 0);
    char err[4400];
    snprintf(err, sizeof err, "%s/err", dir);
    ck_assert_msg(!strstr(dlt_slurp(err), "warning"), "%s", dlt_slurp(err));
    ck_assert_int_eq(dlt_sh("'%s' history -u '%s' '%s' >/dev/null 2>&1", dlock_bin, url, name), 69);
    return 1;
}

/* --- on every URL ------------------------------------------------------------------ */

/* A run, a failed run and a busy run are recorded, newest first, with this
 * host, a pid, the exit status and times on the store's clock. */
START_TEST(run_records_each_outcome)
{
    if (without_history())
        return;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- true", dlock_bin, url, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- sh -c 'exit 3'", dlock_bin, url, name), 3);
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlt_sh("'%s' run -q -u '%s' '%s' -- true", dlock_bin, url, name), 75);
    dlock_release(l);
    dlock_close(c);

    dlock_history *h = dlt_read_history(url, name, 0);
    ck_assert_uint_eq(dlock_history_count(h), 3);
    ck_assert_str_eq(dlock_history_outcome(h, 0), "busy");
    ck_assert_int_eq(dlock_history_exit_status(h, 0), -1);
    ck_assert_str_eq(dlock_history_outcome(h, 1), "ran");
    ck_assert_int_eq(dlock_history_exit_status(h, 1), 3);
    ck_assert_str_eq(dlock_history_outcome(h, 2), "ran");
    ck_assert_int_eq(dlock_history_exit_status(h, 2), 0);
    int64_t now = 0;
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(dlock_history_host(h, i), host);
        ck_assert_int_gt(dlock_history_pid(h, i), 0);
        ck_assert_int_le(dlock_history_start(h, i), dlock_history_end(h, i));
        ck_assert_int_gt(dlock_history_start(h, i), 1700000000000LL);
        if (i > 0) /* newest first */
            ck_assert_int_le(dlock_history_end(h, i), dlock_history_end(h, i - 1));
    }
    (void)now;
    dlock_history_free(h);
}
END_TEST

/* The store keeps the newest DLOCK_HISTORY_KEEP runs of a name, in order,
 * and another name's runs are its own. */
START_TEST(history_keeps_the_newest_50)
{
    if (without_history())
        return;
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    char *other = dlt_unique_name("hist-other");
    ck_assert_int_eq(dlock_history_add(c, other, "ran", 200, 5, 0), DLOCK_OK);
    for (int i = 0; i < DLOCK_HISTORY_KEEP + 3; i++) {
        int rc = dlock_history_add(c, name, "ran", i, 10, (uint64_t)i + 1);
        ck_assert_msg(rc == DLOCK_OK, "add %d: %s", i, dlock_last_error());
    }
    dlock_history *h = NULL;
    ck_assert_int_eq(dlock_history_read(c, name, 0, &h), DLOCK_OK);
    ck_assert_uint_eq(dlock_history_count(h), DLOCK_HISTORY_KEEP);
    /* Trimmed in the store, not only in the read. */
    const struct dlt_store *store = dlt_store_of(url);
    if (store->history_entries)
        ck_assert_int_eq(store->history_entries(url, name), DLOCK_HISTORY_KEEP);
    ck_assert_int_eq(dlock_history_exit_status(h, 0), DLOCK_HISTORY_KEEP + 2);
    ck_assert_uint_eq(dlock_history_fence(h, 0), DLOCK_HISTORY_KEEP + 3);
    ck_assert_int_eq(dlock_history_exit_status(h, DLOCK_HISTORY_KEEP - 1), 3);
    ck_assert_int_eq(dlock_history_end(h, 0) - dlock_history_start(h, 0), 10);
    dlock_history_free(h);
    ck_assert_int_eq(dlock_history_read(c, name, 2, &h), DLOCK_OK);
    ck_assert_uint_eq(dlock_history_count(h), 2);
    dlock_history_free(h);
    ck_assert_int_eq(dlock_history_read(c, other, 0, &h), DLOCK_OK);
    ck_assert_uint_eq(dlock_history_count(h), 1);
    ck_assert_int_eq(dlock_history_exit_status(h, 0), 200);
    ck_assert_uint_eq(dlock_history_fence(h, 0), 0);
    dlock_history_free(h);
    ck_assert_int_eq(dlock_history_add(c, name, "Ran", 0, 0, 0), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_history_add(c, name, "ran", 0, -1, 0), DLOCK_EINVAL);
    free(other);
    dlock_close(c);
}
END_TEST

/* Junk in a name's history (someone wrote there with the store's own
 * client) is skipped, never a crash or a failed read; the runs around it
 * read as they were, and the next adds trim the junk with the oldest runs. */
START_TEST(junk_in_history_is_skipped)
{
    if (without_history())
        return;
    const struct dlt_store *store = dlt_store_of(url);
    if (!store->history_junk) /* tests/stores/STORE.c: no way to write junk there */
        return;
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_history_add(c, name, "ran", 1, 5, 0), DLOCK_OK);
    int junk = 0;
    store->history_junk(url, name, &junk);
    ck_assert_int_gt(junk, 0);
    ck_assert_int_eq(dlock_history_add(c, name, "lost", 2, 5, 7), DLOCK_OK);
    ck_assert_int_eq(store->history_entries(url, name), 2 + junk);
    dlock_history *h = NULL;
    int rc = dlock_history_read(c, name, 0, &h);
    ck_assert_msg(rc == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_uint_eq(dlock_history_count(h), 2);
    ck_assert_str_eq(dlock_history_outcome(h, 0), "lost");
    ck_assert_uint_eq(dlock_history_fence(h, 0), 7);
    ck_assert_int_eq(dlock_history_exit_status(h, 1), 1);
    dlock_history_free(h);
    /* The newest 1 is the newest run, whatever lies below it. */
    ck_assert_int_eq(dlock_history_read(c, name, 1, &h), DLOCK_OK);
    ck_assert_uint_eq(dlock_history_count(h), 1);
    ck_assert_int_eq(dlock_history_exit_status(h, 0), 2);
    dlock_history_free(h);
    char out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' history -u '%s' '%s' >'%s'", dlock_bin, url, name, out), 0);
    ck_assert_msg(strstr(dlt_slurp(out), "lost") && !strstr(dlt_slurp(out), "RAN"), "%s", dlt_slurp(out));
    /* A full history of runs pushes the junk out (a store may leave an
     * entry of a shape it never writes, which it does not count). */
    for (int i = 0; i < DLOCK_HISTORY_KEEP; i++)
        ck_assert_int_eq(dlock_history_add(c, name, "ran", 0, 1, 0), DLOCK_OK);
    ck_assert_int_le(store->history_entries(url, name), DLOCK_HISTORY_KEEP + 1);
    ck_assert_int_eq(dlock_history_read(c, name, 0, &h), DLOCK_OK);
    ck_assert_uint_eq(dlock_history_count(h), DLOCK_HISTORY_KEEP);
    dlock_history_free(h);
    dlock_close(c);
}
END_TEST

/* dlock history: the text, the JSON, -n, and a name never run. */
START_TEST(history_cli)
{
    if (without_history())
        return;
    char out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' history -u '%s' '%s' >'%s'", dlock_bin, url, name, out), 0);
    ck_assert_ptr_nonnull(strstr(dlt_slurp(out), "no run of"));
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- sh -c 'exit 5'", dlock_bin, url, name), 5);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- true", dlock_bin, url, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' history -u '%s' --json -n 1 '%s' >'%s'", dlock_bin, url, name, out), 0);
    const char *json = dlt_slurp(out);
    ck_assert_msg(strstr(json, "\"outcome\":\"ran\",\"exit_status\":0") != NULL, "%s", json);
    ck_assert_msg(strstr(json, "\"exit_status\":5") == NULL, "-n 1 shows one run: %s", json);
    ck_assert_int_eq(dlt_sh("'%s' history -u '%s' '%s' >'%s'", dlock_bin, url, name, out), 0);
    const char *table = dlt_slurp(out);
    ck_assert_msg(strstr(table, "OUTCOME") && strstr(table, "    5  "), "%s", table);
    /* The right-aligned columns end where their heads end. */
    const char *row = strchr(table, '\n');
    ck_assert_ptr_nonnull(row);
    row++;
    long head_end = strstr(table, "DURATION") - table + 8;
    ck_assert_msg(row[head_end - 1] == 's' && row[head_end] == ' ', "DURATION column:\n%s", table);
    long exit_end = strstr(table, "EXIT") - table + 4;
    ck_assert_msg(row[exit_end - 1] != ' ' && row[exit_end] == ' ', "EXIT column:\n%s", table);
    ck_assert_int_eq(dlt_sh("'%s' history -u '%s' -n 0 '%s' 2>/dev/null", dlock_bin, url, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' history -u '%s' -n 51 '%s' 2>/dev/null", dlock_bin, url, name), 64);
}
END_TEST

/* dlock check: one screen naming the backend and the clock, the holder of
 * NAME, exit 0 or 1 (warnings) on a working store; JSON with a status. */
START_TEST(check_cli)
{
    char out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    int rc = dlt_sh("'%s' check -u '%s' '%s' >'%s'", dlock_bin, url, name, out);
    const char *text = dlt_slurp(out);
    ck_assert_msg(rc == 0 || rc == 1, "exit %d: %s", rc, text);
    ck_assert_msg(strstr(text, "backend") && strstr(text, backend), "%s", text);
    ck_assert_msg(strstr(text, "ok    clock") != NULL, "%s", text);
    /* The test servers run on this host: the true skew is 0, so the skew
     * shown must lie within the uncertainty shown (etcd's clock comes in
     * whole seconds: it used to say "by 885 ms (+/- 2 ms)"). */
    long long skew = -1, error = -1;
    const char *by = strstr(text, "this host's by ");
    ck_assert_ptr_nonnull(by);
    ck_assert_int_eq(sscanf(by, "this host's by %lld ms (+/- %lld ms", &skew, &error), 2);
    ck_assert_msg(skew <= error, "skew %lld ms outside +/- %lld ms: %s", skew, error, text);
    ck_assert_msg(strstr(text, "is held by") != NULL, "%s", text);
    if (dlt_store_of(url)->caps(url) & DLT_HISTORY) { /* the store's own items */
        ck_assert_msg(strstr(text, "server") != NULL, "%s", text);
        ck_assert_msg(strstr(text, "  history ") && !strstr(text, "warn  history") && !strstr(text, "fail  history"),
                      "%s", text);
    }
    ck_assert_msg(strstr(text, rc == 0 ? "all good" : "with warnings") != NULL, "%s", text);
    dlock_release(l);
    dlock_close(c);
    int rc2 = dlt_sh("'%s' check -u '%s' --json '%s' >'%s'", dlock_bin, url, name, out);
    ck_assert_int_eq(rc2, rc);
    const char *json = dlt_slurp(out);
    ck_assert_msg(strstr(json, rc == 0 ? "{\"status\":\"ok\"" : "{\"status\":\"warnings\"") == json, "%s", json);
    ck_assert_msg(strstr(json, "is free") != NULL, "%s", json);
}
END_TEST

static Suite *per_url_suite(void)
{
    Suite *s = suite_create("history");
    TCase *t = tcase_create("history");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, run_records_each_outcome);
    tcase_add_test(t, history_keeps_the_newest_50);
    tcase_add_test(t, junk_in_history_is_skipped);
    tcase_add_test(t, history_cli);
    tcase_add_test(t, check_cli);
    suite_add_tcase(s, t);
    return s;
}

/* --- rights and faults ---------------------------------------------------------------- */

/* A store that refuses the write costs one warning line, and the job's
 * status stands: here the SQLite file's dlock_runs is not the table dlock
 * makes (its columns are wrong), so every insert fails. */
START_TEST(sqlite_history_failure_is_one_warning)
{
    char db[4400], u[4500], err[4400];
    snprintf(db, sizeof db, "%s/locks.db", dir);
    snprintf(u, sizeof u, "sqlite://%s", db);
    snprintf(err, sizeof err, "%s/err", dir);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' warm -- true", dlock_bin, u), 0);
    ck_assert_int_eq(dlt_sh("sqlite3 '%s' 'DROP TABLE dlock_runs; CREATE TABLE dlock_runs (x)'", db), 0);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- sh -c 'exit 7' 2>'%s'", dlock_bin, u, name, err), 7);
    const char *text = dlt_slurp(err);
    ck_assert_msg(strstr(text, "is not in the run history") != NULL, "%s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' --no-history '%s' -- true 2>'%s'", dlock_bin, u, name, err), 0);
    ck_assert_str_eq(dlt_slurp(err), "");
}
END_TEST

/* Two servers whose URLs name different stores are told apart by the
 * identity lines of dlock check. */
START_TEST(check_tells_two_stores_apart)
{
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/a.json", dir);
    snprintf(b, sizeof b, "%s/b.json", dir);
    ck_assert_int_le(dlt_sh("'%s' check -u 'sqlite://%s/one.db' --json >'%s'", dlock_bin, dir, a), 1);
    ck_assert_int_le(dlt_sh("'%s' check -u 'sqlite://%s/two.db' --json >'%s'", dlock_bin, dir, b), 1);
    ck_assert_int_eq(dlt_sh("grep -q '/one.db' '%s' && ! grep -q '/one.db' '%s'", a, b), 0);
    /* An unreachable store is 69, and says why in the same shape. */
    ck_assert_int_eq(dlt_sh("'%s' check -u 'postgresql://nobody@127.0.0.1:1/x?connect_timeout=2' >'%s'", dlock_bin, a), 69);
    ck_assert_msg(strstr(dlt_slurp(a), "fail  store") != NULL, "%s", dlt_slurp(a));
}
END_TEST



/* A store whose clock is 7 s away from this host's (this host's clock
 * moved by libfaketime, the store's untouched): check warns (exit 1) and
 * says what it means for -m; the same host without the offset is ok. */
START_TEST(clock_skew_is_a_warning)
{
    const char *store = getenv("DLOCK_TEST_PG_URL");
    if (!store || !*store)
        store = getenv("DLOCK_TEST_REDIS_URL");
    if (!store || !*store || dlt_sh("command -v faketime >/dev/null") != 0) {
        ck_assert_msg(!dlt_required("all"), "needs a server and faketime (scripts/install-deps.sh)");
        return;
    }
    char out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    /* libfaketime is preloaded: under AddressSanitizer (scripts/hardening.sh)
     * its runtime then does not come first, which it tolerates when told. */
    int rc = dlt_sh("FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0:detect_leaks=0\""
                " faketime -f '+7s' '%s' check -u '%s' >'%s'",
                dlock_bin, store, out);
    const char *text = dlt_slurp(out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, text);
    const char *by = strstr(text, "behind this host's by ");
    long skew = by ? strtol(by + strlen("behind this host's by "), NULL, 10) : 0;
    ck_assert_msg(strstr(text, "warn  clock") && skew > 6000 && skew < 8000 && strstr(text, "give -m"), "%s", text);
    rc = dlt_sh("'%s' check -u '%s' >'%s'", dlock_bin, store, out);
    ck_assert_msg(strstr(dlt_slurp(out), "ok    clock") != NULL, "%s", dlt_slurp(out));
}
END_TEST




static Suite *rights_suite(void)
{
    Suite *s = suite_create("history-rights");
    TCase *t = tcase_create("rights");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, sqlite_history_failure_is_one_warning);
    tcase_add_test(t, check_tells_two_stores_apart);
    tcase_add_test(t, clock_skew_is_a_warning);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    int failed = dlt_run_per_url("history", per_url_suite, &url, &backend);
    failed += dlt_run_suite(rights_suite());
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
