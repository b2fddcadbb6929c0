/*
 * Lost replies (issue 23): a request the server ran whose answer never came
 * back, through a TCP relay in front of the real server (tests/relay.h) that
 * swallows one answer and closes the connection.  For every store reached
 * over the network at one address (a cluster's clients move between
 * servers on their own: their suites test that).
 */
#include <check.h>

#include "../relay.h"
#include "conformance.h"

/* A client of the store under test through a new relay (*r), or NULL when
 * the store is not one server at an IPv4 address. */
static dlock_client *open_through_relay(struct dlt_relay **r)
{
    char host[64], via[2048];
    int port = 0;
    if (!can(DLT_NETWORK) || can(DLT_CLUSTER) ||
        dlt_url_host_port(url, dlt_store_of(url)->default_port, host, sizeof host, &port) != 0)
        return NULL;
    *r = dlt_relay_start(host, port);
    ck_assert_ptr_nonnull(*r);
    ck_assert_int_eq(dlt_url_with_port(url, dlt_relay_port(*r), via, sizeof via), 0);
    dlock_client *c = NULL;
    ck_assert_msg(dlock_open(via, &c) == DLOCK_OK, "%s", dlock_last_error());
    return c;
}

/* A release that went through, whose answer was lost.  A store whose lock
 * outlives the connection (a row, a key) can tell on the retry that no one
 * took the lock since: the release succeeded, it was not "already lost"
 * (dlock run reports that as a possible overlap).  A session store cannot
 * know whether the session ended before or after the release: "lost" is
 * allowed there.  Either way the lock is free at once.  And when the lock
 * really was lost and taken by another holder since, the same lost answer
 * is still "lost". */
START_TEST(release_after_a_lost_reply)
{
    struct dlt_relay *r = NULL;
    dlock_client *c = open_through_relay(&r);
    if (!c)
        return;
    dlock_lock *l = NULL;
    ck_assert_msg(dlock_acquire(c, name, 10000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
    dlt_relay_drop_next(r);
    int rc = dlock_release(l);
    ck_assert_int_eq(dlt_relay_dropped(r), 1);
    if (can(DLT_OUTLIVES_CONNECTION))
        ck_assert_msg(rc == DLOCK_OK, "a release whose answer was lost: %d (%s)", rc, dlock_last_error());
    else
        ck_assert_msg(rc == DLOCK_OK || rc == DLOCK_ELOST, "%d (%s)", rc, dlock_last_error());
    ck_assert_msg(dlt_acquire_within(url, name, 5000, 2000) >= 0, "the lock was not free after the release");

    if (can(DLT_OUTLIVES_CONNECTION)) {
        ck_assert_msg(dlock_acquire(c, name, 10000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
        ck_assert_int_eq(dlock_break(client, name), 1);
        dlock_lock *other = NULL;
        ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &other), DLOCK_OK);
        ck_assert_int_eq(dlock_release(other), DLOCK_OK);
        dlt_relay_drop_next(r);
        rc = dlock_release(l);
        ck_assert_int_eq(dlt_relay_dropped(r), 2);
        ck_assert_msg(rc == DLOCK_ELOST, "a lost lock's release, answer lost: %d (%s)", rc, dlock_last_error());
    }
    dlock_close(c);
    dlt_relay_stop(r);
}
END_TEST

/* An extend and an acquire whose answers were lost: the retry finds the
 * lock ours (the take and the extend may run twice), never busy or lost. */
START_TEST(acquire_and_extend_after_a_lost_reply)
{
    struct dlt_relay *r = NULL;
    dlock_client *c = open_through_relay(&r);
    if (!c)
        return;
    dlock_lock *l = NULL;
    /* A first call sets up the connection: the lost answer is the take's. */
    ck_assert_int_eq(dlock_holder(c, name, (char[64]){0}, 64), 0);
    dlt_relay_drop_next(r);
    int rc = dlock_acquire(c, name, 10000, 0, &l);
    ck_assert_int_eq(dlt_relay_dropped(r), 1);
    if (rc == DLOCK_OK) {
        dlt_relay_drop_next(r);
        rc = dlock_extend(l, 10000);
        ck_assert_int_eq(dlt_relay_dropped(r), 2);
        if (can(DLT_OUTLIVES_CONNECTION))
            ck_assert_msg(rc == DLOCK_OK, "an extend whose answer was lost: %d (%s)", rc, dlock_last_error());
        ck_assert(!free_for_others(name) || rc != DLOCK_OK);
        dlock_release(l);
    } else {
        /* A store that does not retry a take says so; the lock is then free
         * (a session take ended with its session) or freed by its lease. */
        ck_assert_msg(!can(DLT_OUTLIVES_CONNECTION), "a take whose answer was lost: %d (%s)", rc, dlock_last_error());
        ck_assert_msg(rc == DLOCK_ECONN, "%d (%s)", rc, dlock_last_error());
    }
    dlock_close(c);
    dlt_relay_stop(r);
}
END_TEST

void conformance_add_lost_reply(Suite *s)
{
    TCase *t = tcase_create("lost-replies");
    tcase_add_checked_fixture(t, conformance_setup, conformance_teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, release_after_a_lost_reply);
    tcase_add_test(t, acquire_and_extend_after_a_lost_reply);
    suite_add_tcase(s, t);
}
