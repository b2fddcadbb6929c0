/*
 * What only the SQLite store has: its rows, rewritten behind the holder's
 * back the way another process, another clock or another boot would.
 * (The shared suites run on SQLite too: tests/stores/sqlite.c.)
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "stores/store.h"

static char *dir;
static char url[4400];

static void setup(void)
{
    dir = dlt_tmpdir();
    snprintf(url, sizeof url, "sqlite://%s/locks.db", dir);
}

static void teardown(void)
{
    char cmd[4500];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
}

static dlock_client *open_client(void)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    ck_assert_msg(rc == DLOCK_OK, "dlock_open: %d %s", rc, dlock_last_error());
    return c;
}

static const struct {
    const char *what;
    const char *sql; /* ?1 is the name */
} row_rewrites[] = {
    /* Another process with another clock, or a suspended host, found it expired. */
    {"expired", "UPDATE dlock_locks SET expires_boot_ms = 1 WHERE name = ?1"},
    /* Written during an earlier boot: whatever its expiry says, it is over. */
    {"earlier boot", "UPDATE dlock_locks SET boot_id = 'an-earlier-boot', expires_boot_ms = 9000000000000000"
                     " WHERE name = ?1"},
};

/* SQLite URLs that dlock_open refuses, each with DLOCK_EINVAL. */
START_TEST(url_refused)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open("sqlite:", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("sqlite://host/tmp/x.db", &c), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "host"));
    ck_assert_int_eq(dlock_open("sqlite:///tmp/x.db?mode=ro", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("sqlite:///tmp/%zz.db", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("sqlite:///tmp/x%", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("sqlite:///tmp/x%00y", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("sqlite:///tmp/", &c), DLOCK_EINVAL);
}
END_TEST

/* The three spellings of an SQLite URL name the same kind of file. */
START_TEST(url_sqlite_forms)
{
    char *folder = dlt_tmpdir();
    char u[4200], path[4200];
    for (int i = 0; i < 3; i++) {
        dlock_client *c = NULL;
        if (i == 0) {
            snprintf(u, sizeof u, "sqlite://%s/a.db", folder);
            snprintf(path, sizeof path, "%s/a.db", folder);
        } else if (i == 1) {
            snprintf(u, sizeof u, "sqlite:%s/b.db", folder);
            snprintf(path, sizeof path, "%s/b.db", folder);
        } else {
            snprintf(u, sizeof u, "SQLITE://%s/c%%20d.db", folder);
            snprintf(path, sizeof path, "%s/c d.db", folder);
        }
        ck_assert_int_eq(dlock_open(u, &c), DLOCK_OK);
        ck_assert_str_eq(dlock_backend(c), "sqlite");
        dlock_close(c);
        ck_assert_int_eq(access(path, F_OK), 0);
    }
    free(folder);
}
END_TEST

/*
 * The row says the lease is over while the holder's own clock still gives
 * it a minute: extend (of one lock) and release (of another) are
 * DLOCK_ELOST, and another client takes the lock at once.
 */
START_TEST(sqlite_row_says_the_lease_is_over)
{
    char *a = dlt_unique_name("sqlite-row-a"), *b = dlt_unique_name("sqlite-row-b");
    dlock_client *holder = open_client(), *other = open_client();
    dlock_lock *la = NULL, *lb = NULL, *theirs = NULL;
    ck_assert_int_eq(dlock_acquire(holder, a, 60000, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(holder, b, 60000, 0, &lb), DLOCK_OK);
    ck_assert_int_eq(dlt_sqlite_run(url, row_rewrites[_i].sql, a, NULL, 0), 1);
    ck_assert_int_eq(dlt_sqlite_run(url, row_rewrites[_i].sql, b, NULL, 0), 1);
    ck_assert_int_gt(dlock_remaining_ms(la), 50000);

    ck_assert_msg(dlock_extend(la, 60000) == DLOCK_ELOST, "%s: extend was not ELOST", row_rewrites[_i].what);
    ck_assert_int_eq(dlock_remaining_ms(la), 0);
    ck_assert_msg(dlock_release(lb) == DLOCK_ELOST, "%s: release was not ELOST", row_rewrites[_i].what);

    ck_assert_msg(dlock_acquire(other, a, 60000, 0, &theirs) == DLOCK_OK, "%s: not free: %s", row_rewrites[_i].what,
                  dlock_last_error());
    ck_assert_int_eq(dlock_release(la), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_OK);
    dlock_close(other);
    dlock_close(holder);
    free(a);
    free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sqlite");
    TCase *tc = tcase_create("row-rewritten");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, sqlite_row_says_the_lease_is_over, 0, (int)(sizeof row_rewrites / sizeof row_rewrites[0]));
    suite_add_tcase(s, tc);
    TCase *urls = tcase_create("url");
    tcase_add_test(urls, url_refused);
    tcase_add_test(urls, url_sqlite_forms);
    suite_add_tcase(s, urls);
    int failed = dlt_run_suite(s);
    return failed == 0 ? 0 : 1;
}
