/*
 * lib/session.c: the locks on a session, the smallest TTL kept
 * incrementally, generations, and the retry-once rule, with the same
 * structures the PostgreSQL and MySQL backends use.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "common.h"
#include "session.h"

static struct dlock_session s;
static struct dlock_held locks[5];

static void setup(void)
{
    s = (struct dlock_session){0};
    for (int i = 0; i < 5; i++)
        locks[i] = (struct dlock_held){.ttl_ms = (uint32_t)(1000 * (i + 1))};
}

static void add_all(void)
{
    for (int i = 0; i < 5; i++)
        dlock__session_add(&s, &locks[i]);
}

START_TEST(empty_session_needs_no_limit)
{
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 0);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 700), 700);
}
END_TEST

START_TEST(smallest_ttl_follows_adds_and_removes)
{
    add_all();
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 1000);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 500), 500);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 9000), 1000);
    dlock__session_remove(&s, &locks[0]);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 2000);
    dlock__session_remove(&s, &locks[0]); /* twice: nothing happens */
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 2000);
    dlock__session_remove(&s, &locks[2]);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 2000);
    dlock__session_remove(&s, &locks[1]);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 4000);
    dlock__session_remove(&s, &locks[3]);
    dlock__session_remove(&s, &locks[4]);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 0);
    ck_assert_ptr_null(s.locks);
}
END_TEST

/* Two locks share the smallest TTL: removing one keeps it. */
START_TEST(equal_smallest_ttls_are_counted)
{
    locks[1].ttl_ms = 1000;
    add_all();
    dlock__session_remove(&s, &locks[0]);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 1000);
    dlock__session_remove(&s, &locks[1]);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 3000);
}
END_TEST

/* The limit without one lock (an extend that changes its TTL, a release). */
START_TEST(limit_without_one_lock)
{
    add_all();
    ck_assert_uint_eq(dlock__session_idle_ms(&s, &locks[0], 0), 2000);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, &locks[0], 1500), 1500);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, &locks[3], 0), 1000);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 1000); /* unchanged */
}
END_TEST

START_TEST(retime_moves_the_limit)
{
    add_all();
    dlock__session_retime(&s, &locks[0], 8000);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 2000);
    dlock__session_retime(&s, &locks[4], 300);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 300);
}
END_TEST

/* A new session: every lock of the old one is off it, and the generation
 * tells them apart from locks taken later. */
START_TEST(new_session_drops_every_lock)
{
    add_all();
    uint64_t before = s.generation;
    ck_assert(dlock__session_holds(&s, &locks[2]));
    dlock__session_new(&s);
    ck_assert_uint_gt(s.generation, before);
    for (int i = 0; i < 5; i++)
        ck_assert(!dlock__session_holds(&s, &locks[i]));
    ck_assert_ptr_null(s.locks);
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 0);
    struct dlock_held fresh = {.ttl_ms = 5000};
    dlock__session_add(&s, &fresh);
    ck_assert(dlock__session_holds(&s, &fresh));
    ck_assert(!dlock__session_holds(&s, &locks[0]));
    ck_assert_uint_eq(dlock__session_idle_ms(&s, NULL, 0), 5000);
}
END_TEST

START_TEST(retry_once_after_a_broken_connection)
{
    ck_assert(dlock__session_may_retry(0, 0, 0));
    ck_assert(!dlock__session_may_retry(1, 0, 0)); /* once */
    ck_assert(!dlock__session_may_retry(0, 1, 0)); /* a fresh session broke: the server is the problem */
    ck_assert(!dlock__session_may_retry(0, 0, 1)); /* a missed deadline: its time is spent */
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("session");
    TCase *t = tcase_create("session");
    tcase_add_checked_fixture(t, setup, NULL);
    tcase_add_test(t, empty_session_needs_no_limit);
    tcase_add_test(t, smallest_ttl_follows_adds_and_removes);
    tcase_add_test(t, equal_smallest_ttls_are_counted);
    tcase_add_test(t, limit_without_one_lock);
    tcase_add_test(t, retime_moves_the_limit);
    tcase_add_test(t, new_session_drops_every_lock);
    tcase_add_test(t, retry_once_after_a_broken_connection);
    suite_add_tcase(suite, t);
    int failed = dlt_run_suite(suite);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
