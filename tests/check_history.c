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

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return dlt_system(cmd);
}

static char *slurp(const char *path)
{
    static char buf[65536];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
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
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- true 2>'%s/err'", dlock_bin, url, name, dir), 0);
    char err[4400];
    snprintf(err, sizeof err, "%s/err", dir);
    ck_assert_msg(!strstr(slurp(err), "warning"), "%s", slurp(err));
    ck_assert_int_eq(sh("'%s' history -u '%s' '%s' >/dev/null 2>&1", dlock_bin, url, name), 69);
    return 1;
}

static dlock_history *read_history(const char *store, const char *lock, size_t max)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(store, &c), DLOCK_OK);
    dlock_history *h = NULL;
    int rc = dlock_history_read(c, lock, max, &h);
    ck_assert_msg(rc == DLOCK_OK, "dlock_history_read: %s", dlock_last_error());
    dlock_close(c);
    return h;
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
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- true", dlock_bin, url, name), 0);
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- sh -c 'exit 3'", dlock_bin, url, name), 3);
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(sh("'%s' run -q -u '%s' '%s' -- true", dlock_bin, url, name), 75);
    dlock_release(l);
    dlock_close(c);

    dlock_history *h = read_history(url, name, 0);
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
    ck_assert_int_eq(sh("'%s' history -u '%s' '%s' >'%s'", dlock_bin, url, name, out), 0);
    ck_assert_msg(strstr(slurp(out), "lost") && !strstr(slurp(out), "RAN"), "%s", slurp(out));
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
    ck_assert_int_eq(sh("'%s' history -u '%s' '%s' >'%s'", dlock_bin, url, name, out), 0);
    ck_assert_ptr_nonnull(strstr(slurp(out), "no run of"));
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- sh -c 'exit 5'", dlock_bin, url, name), 5);
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- true", dlock_bin, url, name), 0);
    ck_assert_int_eq(sh("'%s' history -u '%s' --json -n 1 '%s' >'%s'", dlock_bin, url, name, out), 0);
    const char *json = slurp(out);
    ck_assert_msg(strstr(json, "\"outcome\":\"ran\",\"exit_status\":0") != NULL, "%s", json);
    ck_assert_msg(strstr(json, "\"exit_status\":5") == NULL, "-n 1 shows one run: %s", json);
    ck_assert_int_eq(sh("'%s' history -u '%s' '%s' >'%s'", dlock_bin, url, name, out), 0);
    ck_assert_msg(strstr(slurp(out), "OUTCOME") && strstr(slurp(out), "    5  "), "%s", slurp(out));
    ck_assert_int_eq(sh("'%s' history -u '%s' -n 0 '%s' 2>/dev/null", dlock_bin, url, name), 64);
    ck_assert_int_eq(sh("'%s' history -u '%s' -n 51 '%s' 2>/dev/null", dlock_bin, url, name), 64);
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
    int rc = sh("'%s' check -u '%s' '%s' >'%s'", dlock_bin, url, name, out);
    const char *text = slurp(out);
    ck_assert_msg(rc == 0 || rc == 1, "exit %d: %s", rc, text);
    ck_assert_msg(strstr(text, "backend") && strstr(text, backend), "%s", text);
    ck_assert_msg(strstr(text, "ok    clock") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "is held by") != NULL, "%s", text);
    if (dlt_store_of(url)->caps(url) & DLT_HISTORY) { /* the store's own items */
        ck_assert_msg(strstr(text, "server") != NULL, "%s", text);
        ck_assert_msg(strstr(text, "  history ") && !strstr(text, "warn  history") && !strstr(text, "fail  history"),
                      "%s", text);
    }
    ck_assert_msg(strstr(text, rc == 0 ? "all good" : "with warnings") != NULL, "%s", text);
    dlock_release(l);
    dlock_close(c);
    int rc2 = sh("'%s' check -u '%s' --json '%s' >'%s'", dlock_bin, url, name, out);
    ck_assert_int_eq(rc2, rc);
    const char *json = slurp(out);
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
    ck_assert_int_eq(sh("'%s' run -u '%s' warm -- true", dlock_bin, u), 0);
    ck_assert_int_eq(sh("sqlite3 '%s' 'DROP TABLE dlock_runs; CREATE TABLE dlock_runs (x)'", db), 0);
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- sh -c 'exit 7' 2>'%s'", dlock_bin, u, name, err), 7);
    const char *text = slurp(err);
    ck_assert_msg(strstr(text, "is not in the run history") != NULL, "%s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
    ck_assert_int_eq(sh("'%s' run -u '%s' --no-history '%s' -- true 2>'%s'", dlock_bin, u, name, err), 0);
    ck_assert_str_eq(slurp(err), "");
}
END_TEST

/* Two servers whose URLs name different stores are told apart by the
 * identity lines of dlock check. */
START_TEST(check_tells_two_stores_apart)
{
    char a[4400], b[4400];
    snprintf(a, sizeof a, "%s/a.json", dir);
    snprintf(b, sizeof b, "%s/b.json", dir);
    ck_assert_int_le(sh("'%s' check -u 'sqlite://%s/one.db' --json >'%s'", dlock_bin, dir, a), 1);
    ck_assert_int_le(sh("'%s' check -u 'sqlite://%s/two.db' --json >'%s'", dlock_bin, dir, b), 1);
    ck_assert_int_eq(sh("grep -q '/one.db' '%s' && ! grep -q '/one.db' '%s'", a, b), 0);
    /* An unreachable store is 69, and says why in the same shape. */
    ck_assert_int_eq(sh("'%s' check -u 'postgresql://nobody@127.0.0.1:1/x?connect_timeout=2' >'%s'", dlock_bin, a), 69);
    ck_assert_msg(strstr(slurp(a), "fail  store") != NULL, "%s", slurp(a));
}
END_TEST

/* A PostgreSQL role that may not create tables (its search_path names a
 * schema it may only use): check warns (exit 1) naming dlock_runs, and a
 * run keeps its job's status with one line that says why. */
START_TEST(pg_role_without_create)
{
    const char *pg = getenv("DLOCK_TEST_PG_URL");
    if (!pg || !*pg) {
        ck_assert_msg(!dlt_required("postgresql"), "DLOCK_TEST_PG_URL is required");
        return;
    }
    ck_assert_int_eq(sh("PGOPTIONS='-c client_min_messages=warning' psql -q -X -v ON_ERROR_STOP=1 '%s' -c \"DROP SCHEMA IF EXISTS ops2_nocreate CASCADE;"
                        " DROP ROLE IF EXISTS ops2_nocreate; CREATE ROLE ops2_nocreate LOGIN;"
                        " CREATE SCHEMA ops2_nocreate; GRANT USAGE ON SCHEMA ops2_nocreate TO ops2_nocreate;"
                        " ALTER ROLE ops2_nocreate SET search_path = ops2_nocreate\" >/dev/null",
                        pg),
                     0);
    /* The same server and database, as that role (trust authentication). */
    const char *at = strrchr(pg, '@');
    ck_assert_ptr_nonnull(at);
    char u[4400], out[4400];
    snprintf(u, sizeof u, "postgresql://ops2_nocreate%s", at);
    snprintf(out, sizeof out, "%s/out", dir);
    int rc = sh("'%s' check -u '%s' >'%s'", dlock_bin, u, out);
    const char *text = slurp(out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, text);
    ck_assert_msg(strstr(text, "warn  history") && strstr(text, "may not create it"), "%s", text);
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- sh -c 'exit 6' 2>'%s'", dlock_bin, u, name, out), 6);
    text = slurp(out);
    ck_assert_msg(strstr(text, "is not in the run history") && strstr(text, "cannot create it"), "%s", text);
    ck_assert_msg(strstr(text, "--no-history") != NULL, "%s", text);
    /* In lease mode the lock table itself is needed: check says unusable. */
    char lease[4500];
    snprintf(lease, sizeof lease, "%s%smode=lease&table=ops2_leases", u, strchr(u, '?') ? "&" : "?");
    rc = sh("'%s' check -u '%s' >'%s'", dlock_bin, lease, out);
    ck_assert_msg(rc == 69, "exit %d: %s", rc, slurp(out));
    ck_assert_msg(strstr(slurp(out), "fail  table") != NULL, "%s", slurp(out));
    sh("psql -q -X '%s' -c 'DROP SCHEMA ops2_nocreate CASCADE; DROP ROLE ops2_nocreate' >/dev/null 2>&1", pg);
}
END_TEST

/* Redis ACL users: one without channel rights (check warns on channels,
 * runs still work), one without list commands (a run keeps its status and
 * says once that history is not kept). */
START_TEST(redis_acl_users)
{
    const char *redis = getenv("DLOCK_TEST_REDIS_URL");
    const char *port = getenv("DLOCK_TEST_REDIS_PORT");
    const char *pass = getenv("DLOCK_TEST_REDIS_PASSWORD");
    if (!redis || !*redis || !port || !pass) {
        ck_assert_msg(!dlt_required("redis"), "DLOCK_TEST_REDIS_URL is required");
        return;
    }
    ck_assert_int_eq(sh("REDISCLI_AUTH='%s' redis-cli -p %s ACL SETUSER ops2_nochan reset on '>ops2-pw' '~*'"
                        " resetchannels +@all -@dangerous >/dev/null && "
                        "REDISCLI_AUTH='%s' redis-cli -p %s ACL SETUSER ops2_nolist reset on '>ops2-pw' '~*'"
                        " allchannels +@all -@dangerous -@list >/dev/null",
                        pass, port, pass, port),
                     0);
    char u[512], out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(u, sizeof u, "redis://ops2_nochan:ops2-pw@127.0.0.1:%s/0", port);
    int rc = sh("'%s' check -u '%s' >'%s'", dlock_bin, u, out);
    const char *text = slurp(out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, text);
    ck_assert_msg(strstr(text, "warn  acl-channels") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "ok    history") != NULL, "%s", text);
    /* The release publishes to the lock's channel: refused to this user,
     * and no warning for it (the lock was released). */
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- true 2>'%s'", dlock_bin, u, name, out), 0);
    ck_assert_msg(slurp(out)[0] == '\0', "a run without channel rights said: %s", slurp(out));
    dlock_history *h = read_history(redis, name, 0);
    ck_assert_uint_eq(dlock_history_count(h), 1);
    dlock_history_free(h);
    /* Its waiter cannot subscribe either: it polls, and gets the lock
     * within a poll of the release. */
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- sleep 1 & sleep 0.3; "
                        "'%s' run -u '%s' -w 10s '%s' -- true 2>'%s'; rc=$?; wait; exit $rc",
                        dlock_bin, u, name, dlock_bin, u, name, out),
                     0);
    ck_assert_msg(slurp(out)[0] == '\0', "the polling waiter said: %s", slurp(out));

    /* No password to a server that needs one: NOAUTH is a refused login
     * (69, as on every store), not a store error (70). */
    snprintf(u, sizeof u, "redis://127.0.0.1:%s/0", port);
    rc = sh("'%s' run -u '%s' '%s' -- true 2>'%s'", dlock_bin, u, name, out);
    ck_assert_msg(rc == 69 && strstr(slurp(out), "needs a password"), "exit %d: %s", rc, slurp(out));

    snprintf(u, sizeof u, "redis://ops2_nolist:ops2-pw@127.0.0.1:%s/0", port);
    rc = sh("'%s' check -u '%s' >'%s'", dlock_bin, u, out);
    ck_assert_msg(rc == 1 && strstr(slurp(out), "warn  history"), "exit %d: %s", rc, slurp(out));
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- sh -c 'exit 9' 2>'%s'", dlock_bin, u, name, out), 9);
    text = slurp(out);
    ck_assert_msg(strstr(text, "is not in the run history") && strstr(text, "ACL"), "%s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
    sh("REDISCLI_AUTH='%s' redis-cli -p %s ACL DELUSER ops2_nochan ops2_nolist >/dev/null", pass, port);
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
    if (!store || !*store || sh("command -v faketime >/dev/null") != 0) {
        ck_assert_msg(!dlt_required("all"), "needs a server and faketime (scripts/install-deps.sh)");
        return;
    }
    char out[4400];
    snprintf(out, sizeof out, "%s/out", dir);
    /* libfaketime is preloaded: under AddressSanitizer (scripts/hardening.sh)
     * its runtime then does not come first, which it tolerates when told. */
    int rc = sh("FAKETIME_DONT_FAKE_MONOTONIC=1 ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0:detect_leaks=0\""
                " faketime -f '+7s' '%s' check -u '%s' >'%s'",
                dlock_bin, store, out);
    const char *text = slurp(out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, text);
    const char *by = strstr(text, "behind this host's by ");
    long skew = by ? strtol(by + strlen("behind this host's by "), NULL, 10) : 0;
    ck_assert_msg(strstr(text, "warn  clock") && skew > 6000 && skew < 8000 && strstr(text, "give -m"), "%s", text);
    rc = sh("'%s' check -u '%s' >'%s'", dlock_bin, store, out);
    ck_assert_msg(strstr(slurp(out), "ok    clock") != NULL, "%s", slurp(out));
}
END_TEST

/* A name held in lease mode is shown by a session-mode URL's check, and
 * the other way round, as information: the two modes exclude each other
 * (issue 23), and the holder line shows the holder in either mode.
 * PostgreSQL (_i 0) and MySQL (_i 1). */
START_TEST(holder_in_the_other_mode)
{
    const char *pg = getenv(_i == 0 ? "DLOCK_TEST_PG_URL" : "DLOCK_TEST_MYSQL_URL");
    if (!pg || !*pg) {
        ck_assert_msg(!dlt_required(_i == 0 ? "postgresql" : "mysql"), "the server URL is required");
        return;
    }
    char lease[4500], out[4400];
    snprintf(lease, sizeof lease, "%s%smode=lease", pg, strchr(pg, '?') ? "&" : "?");
    snprintf(out, sizeof out, "%s/out", dir);
    const char *urls[2] = {lease, pg}, *other[2] = {pg, lease}, *mode[2] = {"in lease", "in session"};
    for (int i = 0; i < 2; i++) {
        dlock_client *c = NULL;
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_open(urls[i], &c), DLOCK_OK);
        ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
        int rc = sh("'%s' check -u '%s' '%s' >'%s'", dlock_bin, other[i], name, out);
        const char *text = slurp(out);
        ck_assert_msg(rc <= 1 && strstr(text, "info  holder (other mode)") && strstr(text, mode[i]) &&
                          strstr(text, "exclude each other"),
                      "exit %d: %s", rc, text);
        ck_assert_msg(strstr(text, "is held by") != NULL, "%s", text);
        dlock_release(l);
        dlock_close(c);
        sh("'%s' check -u '%s' '%s' >'%s'", dlock_bin, other[i], name, out);
        ck_assert_msg(strstr(slurp(out), "holder (other mode)") && !strstr(slurp(out), "warn  holder"), "%s",
                      slurp(out));
    }
}
END_TEST

/* ZooKeeper digest users: a name's history folder is its first writer's
 * alone (the lock nodes' ACL).  In a chroot that no credentials made (so
 * that every user may take locks there), user B's run of user A's name
 * keeps its job's status with one line that says why, B cannot read A's
 * runs, and A reads them. */
START_TEST(zk_history_of_another_user)
{
    const char *zk = getenv("DLOCK_TEST_ZK_URL");
    if (!zk || !*zk) {
        ck_assert_msg(!dlt_required("zookeeper"), "DLOCK_TEST_ZK_URL is required");
        return;
    }
    const char *hosts = zk + strlen("zookeeper://");
    char world[4400], a[4400], b[4400], out[4400], err[4400];
    snprintf(world, sizeof world, "zookeeper://%s/%s", hosts, name);
    snprintf(a, sizeof a, "zookeeper://hist_a:pw-a@%s/%s", hosts, name);
    snprintf(b, sizeof b, "zookeeper://hist_b:pw-b@%s/%s", hosts, name);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    /* The chroot and its shared folders, made without credentials. */
    ck_assert_int_le(sh("'%s' check -u '%s' >'%s'", dlock_bin, world, out), 1);
    ck_assert_msg(strstr(slurp(out), "ok    history") != NULL, "%s", slurp(out));
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(a, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_history_add(c, "job", "ran", 0, 5, 0), DLOCK_OK);
    dlock_close(c);
    int rc = sh("'%s' check -u '%s' >'%s'", dlock_bin, b, out);
    const char *text = slurp(out);
    ck_assert_msg(rc <= 1 && strstr(text, "ok    rights") && strstr(text, "ok    history"), "exit %d: %s", rc, text);
    ck_assert_msg(!strstr(text, "pw-b"), "%s", text);
    ck_assert_int_eq(sh("'%s' run -u '%s' job -- sh -c 'exit 4' 2>'%s'", dlock_bin, b, err), 4);
    text = slurp(err);
    ck_assert_msg(strstr(text, "is not in the run history") && strstr(text, "not allowed"), "%s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
    ck_assert_msg(!strstr(text, "pw-b"), "%s", text);
    ck_assert_int_ne(sh("'%s' history -u '%s' job >'%s' 2>&1", dlock_bin, b, out), 0);
    ck_assert_msg(strstr(slurp(out), "not allowed") != NULL, "%s", slurp(out));
    dlock_history *h = read_history(a, "job", 0);
    ck_assert_uint_eq(dlock_history_count(h), 1);
    dlock_history_free(h);
    /* B's own names are B's. */
    ck_assert_int_eq(sh("'%s' run -u '%s' mine -- true 2>'%s'", dlock_bin, b, err), 0);
    ck_assert_str_eq(slurp(err), "");
}
END_TEST

/* An etcd role that may write the locks' keys but not the history's: check
 * warns (exit 1) naming the prefix to grant, and a run keeps its job's
 * status with one line that says why. */
START_TEST(etcd_role_without_history)
{
    const char *ep = getenv("DLOCK_TEST_ETCD_AUTH_EP"), *pw = getenv("DLOCK_TEST_ETCD_AUTH_PASSWORD");
    if (!ep || !*ep || !pw) {
        ck_assert_msg(!dlt_required("etcd"), "DLOCK_TEST_ETCD_AUTH_URL is required");
        return;
    }
    char ctl[512], u[512], out[4400];
    snprintf(ctl, sizeof ctl, "ETCDCTL_API=3 etcdctl --endpoints=%s --user=root:%s", ep, pw);
    sh("%s user delete hist_nohist >/dev/null 2>&1; %s role delete hist_nohist >/dev/null 2>&1", ctl, ctl);
    /* The locks' keys "dlock/..." and the key "dlock" (read for the store's
     * clock), not "dlock!history/...". */
    ck_assert_int_eq(sh("%s role add hist_nohist >/dev/null && %s role grant-permission hist_nohist --prefix=true"
                        " readwrite dlock/ >/dev/null && %s role grant-permission hist_nohist readwrite dlock"
                        " >/dev/null && %s user add hist_nohist --new-user-password=hist-pw"
                        " >/dev/null && %s user grant-role hist_nohist hist_nohist >/dev/null",
                        ctl, ctl, ctl, ctl, ctl),
                     0);
    snprintf(u, sizeof u, "etcd://hist_nohist:hist-pw@%s", ep);
    snprintf(out, sizeof out, "%s/out", dir);
    int rc = sh("'%s' check -u '%s' >'%s'", dlock_bin, u, out);
    const char *text = slurp(out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, text);
    ck_assert_msg(strstr(text, "ok    rights") && strstr(text, "warn  history") && strstr(text, "dlock!history/"),
                  "%s", text);
    ck_assert_msg(!strstr(text, "hist-pw"), "%s", text);
    ck_assert_int_eq(sh("'%s' run -u '%s' '%s' -- sh -c 'exit 6' 2>'%s'", dlock_bin, u, name, out), 6);
    text = slurp(out);
    ck_assert_msg(strstr(text, "is not in the run history") && strstr(text, "grant-permission"), "%s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
    ck_assert_msg(!strstr(text, "hist-pw"), "%s", text);
    sh("%s user delete hist_nohist >/dev/null 2>&1; %s role delete hist_nohist >/dev/null 2>&1", ctl, ctl);
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
    tcase_add_test(t, pg_role_without_create);
    tcase_add_test(t, redis_acl_users);
    tcase_add_test(t, zk_history_of_another_user);
    tcase_add_test(t, etcd_role_without_history);
    tcase_add_test(t, clock_skew_is_a_warning);
    tcase_add_loop_test(t, holder_in_the_other_mode, 0, 2);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    int failed = dlt_run_per_url("history", per_url_suite, &url, &backend);
    SRunner *sr = srunner_create(rights_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed += srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
