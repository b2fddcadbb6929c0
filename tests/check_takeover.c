/*
 * The lock is taken away behind the holder's back while its lease still
 * looks alive, through the store's own client (not through libdlock): an
 * operator's DELETE of the SQLite row, a row that another clock or another
 * boot wrote, pg_terminate_backend, MySQL's KILL.  Then extend and release
 * must say DLOCK_ELOST, dlock_remaining_ms must say 0, and whoever holds the
 * lock now must find it untouched: same owner, same expiry, same session.
 *
 * These are the cases where the store's own "is this still mine?" check is
 * the only thing between the holder and someone else's lock: the client-side
 * lease clock cannot see them coming (scripts/mutants.sh cuts those checks
 * down and expects these tests to fail).  Also: a silent holder's lock is
 * never taken before its TTL.  What only one store can be steered into
 * (a PostgreSQL wait granted and cancelled in the same instant, an SQLite
 * row that another boot wrote) is in that store's own suite.
 *
 * Runs once per URL of $DLOCK_TEST_URLS (default: an SQLite file).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "common.h"
#include "stores/store.h"

static const char *url;     /* the store under test */
static const char *backend; /* its backend name */

static dlock_client *open_client(void)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    ck_assert_msg(rc == DLOCK_OK, "dlock_open: %d %s", rc, dlock_last_error());
    return c;
}

/* A store whose lock outlives the connection that took it (a row with an
 * owner token, a key): nothing tells the holder before its next call. */
static int row_store(void)
{
    return (dlt_store_of(url)->caps(url) & DLT_OUTLIVES_CONNECTION) != 0;
}

/* Who holds `name`, as the store itself says, in a form that changes when
 * anything about that holding changes (tests/stores/). */
static void store_view(const char *name, char *out, size_t outlen)
{
    dlt_store_of(url)->view(url, name, out, outlen);
}

/* Take `name` away from its holder behind libdlock's back, the way an
 * operator or the server would: delete the row, end the session. */
static void take_away(const char *name)
{
    dlt_store_of(url)->take_away(url, name);
}

/* --- every backend ------------------------------------------------------------------ */

/*
 * The lock is taken away while the holder's lease still runs for a minute,
 * another client takes it, and the holder's client opens a new session (a
 * new acquire).  The old handle's extend and release are DLOCK_ELOST and
 * leave the new holder's lock exactly as it was.  On SQLite the row's owner
 * check says so; on the session stores the new session says so at once.
 */
START_TEST(taken_away_then_held_by_another)
{
    char *name = dlt_unique_name("takeover"), *other_name = dlt_unique_name("takeover-other");
    dlock_client *holder = open_client(), *thief = open_client();
    dlock_lock *mine = NULL, *theirs = NULL, *other = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 60000, 0, &mine), DLOCK_OK);
    take_away(name);
    /* A killed session lets go as the server notices: allow it a moment. */
    ck_assert_msg(dlock_acquire(thief, name, 60000, 5000, &theirs) == DLOCK_OK, "%s", dlock_last_error());
    char before[256], after[256];
    store_view(name, before, sizeof before);
    ck_assert_msg(before[0], "the store does not show the new holder");
    /* The holder's client goes on: a session store reconnects for this. */
    ck_assert_msg(dlock_acquire(holder, other_name, 60000, 0, &other) == DLOCK_OK, "%s", dlock_last_error());
    if (row_store())
        ck_assert_int_gt(dlock_remaining_ms(mine), 50000); /* the lease still looks alive */
    else /* the session it was taken on is gone: lost at once (issue 10) */
        ck_assert_int_eq(dlock_remaining_ms(mine), 0);

    ck_assert_int_eq(dlock_extend(mine, 60000), DLOCK_ELOST);
    if (!row_store()) /* the session it was taken on is gone, and the message says so */
        ck_assert_msg(strstr(dlock_last_error(), "session that held it"), "%s", dlock_last_error());
    ck_assert_int_eq(dlock_remaining_ms(mine), 0);
    ck_assert_int_eq(dlock_extend(mine, 60000), DLOCK_ELOST);
    store_view(name, after, sizeof after);
    ck_assert_str_eq(after, before);

    ck_assert_int_eq(dlock_release(mine), DLOCK_ELOST);
    if (!row_store())
        ck_assert_msg(strstr(dlock_last_error(), "session that held it"), "%s", dlock_last_error());
    store_view(name, after, sizeof after);
    ck_assert_str_eq(after, before);

    ck_assert_int_eq(dlock_extend(theirs, 60000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_OK);
    ck_assert_int_eq(dlock_release(other), DLOCK_OK);
    dlock_close(thief);
    dlock_close(holder);
    free(name);
    free(other_name);
}
END_TEST

/*
 * A silent holder's lock goes to another client once its lease has run out,
 * never before: the first acquire that succeeds ends no earlier than TTL
 * after the holder's acquire was sent.  (The grant happened somewhere inside
 * that acquire, which may take several round trips: an acquire that ended
 * before the lease did was surely early.)
 */
START_TEST(never_taken_before_the_lease_ends)
{
    const uint32_t ttl = 800;
    const int64_t slack = dlt_store_of(url)->expiry_slack_ms;
    char *name = dlt_unique_name("takeover-early");
    dlock_client *holder = open_client(), *other = open_client();
    dlock_lock *mine = NULL, *theirs = NULL;
    int64_t sent = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(holder, name, ttl, 0, &mine), DLOCK_OK);
    int64_t taken = -1, tried = -1;
    while (dlt_now_ms() - sent < ttl + slack) {
        tried = dlt_now_ms();
        int rc = dlock_acquire(other, name, 60000, 0, &theirs);
        if (rc == DLOCK_OK) {
            taken = dlt_now_ms();
            break;
        }
        ck_assert_msg(rc == DLOCK_EBUSY, "%d %s", rc, dlock_last_error());
        dlt_sleep_ms(5);
    }
    ck_assert_msg(taken >= 0, "not freed within TTL + %lld ms", (long long)slack);
    /* A 1 ms allowance: the store's clock and ours tick apart. */
    ck_assert_msg(taken - sent >= ttl - 1, "taken %lld ms (the try began at %lld ms) after a %u ms lease began: two holders",
                  (long long)(taken - sent), (long long)(tried - sent), ttl);
    ck_assert_int_eq(dlock_remaining_ms(mine), 0);
    ck_assert_int_eq(dlock_extend(mine, 60000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(mine), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_OK);
    dlock_close(other);
    dlock_close(holder);
    free(name);
}
END_TEST

/* --- main ----------------------------------------------------------------------------- */

/* One test per case, so that scripts/mutants.sh can run each alone
 * (CK_RUN_CASE). */
static TCase *add_case(Suite *s, const char *title)
{
    TCase *tc = tcase_create(title);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *takeover_suite(void)
{
    static char titles[3][64];
    static int used;
    char *title = titles[used++ % 3];
    snprintf(title, sizeof titles[0], "takeover[%s]", backend);
    Suite *s = suite_create(title);
    tcase_add_test(add_case(s, "taken-away"), taken_away_then_held_by_another);
    tcase_add_test(add_case(s, "early"), never_taken_before_the_lease_ends);
    return s;
}

int main(void)
{
    int failed = dlt_run_per_url("takeover", takeover_suite, &url, &backend);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
