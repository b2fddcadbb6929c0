/*
 * The core (lib/client.c) through a fake store (tests/fake_store.c): the
 * lease clock, ELOST after expiry, deadlines, session generations, cancel
 * races, the registry of held names, close with held locks.  What a real
 * server cannot be steered into on demand.
 */
#include "config.h"

#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fake_store.h"

static dlock_client *client;

static void setup(void)
{
    fake_reset();
    ck_assert_int_eq(dlock__open_backend(&fake_backend, "fake://", &client), DLOCK_OK);
}

static void teardown(void)
{
    dlock_close(client);
    client = NULL;
}

static dlock_lock *take(const char *name, uint32_t ttl_ms)
{
    dlock_lock *l = NULL;
    ck_assert_msg(dlock_acquire(client, name, ttl_ms, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
    return l;
}

/* --- the lease clock ------------------------------------------------------------ */

/* The lease runs from the granted round trip the backend reports, not from
 * the start of the call (issue 10). */
START_TEST(lease_starts_at_the_granted_round_trip)
{
    fake.acquire_takes_ms = 600;
    fake.grant_at_ms = 550;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, "a", 500, 5000, &l), DLOCK_OK);
    int64_t remaining = dlock_remaining_ms(l);
    ck_assert_msg(remaining > 400 && remaining <= 500, "remaining %lld", (long long)remaining);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* Without a report from the backend, the clock starts before the call:
 * conservative. */
START_TEST(lease_starts_before_the_call_by_default)
{
    fake.acquire_takes_ms = 300;
    dlock_lock *l = take("a", 1000);
    int64_t remaining = dlock_remaining_ms(l);
    ck_assert_msg(remaining <= 710 && remaining > 500, "remaining %lld", (long long)remaining);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A lease start the call had not reached yet is not believed. */
START_TEST(lease_start_in_the_future_is_not_believed)
{
    fake.grant_at_ms = 60000;
    dlock_lock *l = take("a", 1000);
    ck_assert_int_le(dlock_remaining_ms(l), 1000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A lease that visibly ran out is lost without asking the store. */
START_TEST(expired_lease_is_lost_without_asking)
{
    dlock_lock *l = take("a", 50);
    dlt_sleep_ms(80);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_eq(dlock_extend(l, 1000), DLOCK_ELOST);
    ck_assert_int_eq(fake.extends, 0);
    ck_assert_int_eq(dlock_extend(l, 1000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST); /* the store said OK: still lost */
    ck_assert_int_eq(fake.releases, 1);
}
END_TEST

START_TEST(extend_renews_from_its_own_send_time)
{
    dlock_lock *l = take("a", 300);
    dlt_sleep_ms(200);
    ck_assert_int_eq(dlock_extend(l, 1000), DLOCK_OK);
    ck_assert_int_gt(dlock_remaining_ms(l), 900);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* The store says ELOST: lost for good, even when a later extend would pass. */
START_TEST(store_says_lost)
{
    dlock_lock *l = take("a", 5000);
    fake.extend_status = DLOCK_ELOST;
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    fake.extend_status = DLOCK_OK;
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_ELOST);
    ck_assert_int_eq(fake.extends, 1);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
}
END_TEST

/* A session store's idle timeout caps every lease on the client. */
START_TEST(session_timeout_caps_the_lease)
{
    fake.session_ttl_ms = 200;
    dlock_lock *l = take("a", 5000);
    ck_assert_int_le(dlock_remaining_ms(l), 200);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A store that grants a shorter lease than asked (ZooKeeper clamps its
 * session timeout): the lease clock follows the grant, on acquire and on
 * every extend, and goes back to the TTL when the store grants it whole. */
START_TEST(granted_lease_caps_one_lock)
{
    fake.granted_ms = 300;
    dlock_lock *l = take("a", 5000);
    ck_assert_int_le(dlock_remaining_ms(l), 300);
    ck_assert_int_gt(dlock_remaining_ms(l), 100);
    fake.granted_ms = 0;
    dlock_lock *other = take("b", 5000); /* the cap is per lock */
    ck_assert_int_gt(dlock_remaining_ms(other), 4000);
    fake.granted_ms = 200;
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    ck_assert_int_le(dlock_remaining_ms(l), 200);
    dlt_sleep_ms(250);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    fake.granted_ms = 0;
    ck_assert_int_eq(dlock_extend(other, 5000), DLOCK_OK);
    ck_assert_int_gt(dlock_remaining_ms(other), 4000);
    ck_assert_int_eq(dlock_release(other), DLOCK_OK);
}
END_TEST

/* --- deadlines ---------------------------------------------------------------------- */

START_TEST(every_call_has_a_deadline)
{
    int64_t before = dlock__now_ms();
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, "a", 3000, 0, &l), DLOCK_OK);
    ck_assert_int_ge(fake.last_deadline_ms, before + DLOCK_CALL_TIMEOUT_MS);
    ck_assert_int_le(fake.last_deadline_ms, dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS);
    /* An extend must finish before the lease it renews runs out. */
    before = dlock__now_ms();
    ck_assert_int_eq(dlock_extend(l, 3000), DLOCK_OK);
    int64_t after = dlock__now_ms();
    ck_assert_int_le(fake.last_deadline_ms, before + 3000);
    ck_assert_int_ge(fake.last_deadline_ms, before + 2900);
    /* A release gets the rest of the lease the extend renewed, which
     * started when the extend was sent: between `before` and `after`. */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_le(fake.last_deadline_ms, after + 3000);
    ck_assert_int_ge(fake.last_deadline_ms, before + 3000);
    /* A bounded wait gets its wait on top; a wait without bound has none. */
    before = dlock__now_ms();
    ck_assert_int_eq(dlock_acquire(client, "b", 3000, 4000, &l), DLOCK_OK);
    ck_assert_int_ge(fake.last_deadline_ms, before + 4000 + DLOCK_CALL_TIMEOUT_MS);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, "c", 3000, DLOCK_WAIT_FOREVER, &l), DLOCK_OK);
    ck_assert_int_eq(fake.last_deadline_ms, INT64_MAX);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_holder(client, "c", NULL, 0), 0);
    ck_assert_int_ge(fake.last_deadline_ms, fake.last_call_at_ms + DLOCK_CALL_TIMEOUT_MS - 10);
}
END_TEST

/* A release of a lock whose lease ran out still gets a moment to free it. */
START_TEST(release_of_an_expired_lock_gets_a_moment)
{
    dlock_lock *l = take("a", 20);
    dlt_sleep_ms(40);
    int64_t before = dlock__now_ms();
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_ge(fake.last_deadline_ms, before + 900);
}
END_TEST

/* An extend that the store does not answer before the lease ends has failed:
 * the lock is lost, whatever the backend's own status says. */
START_TEST(extend_past_the_lease_is_lost)
{
    dlock_lock *l = take("a", 300);
    fake.extend_takes_ms = 400;
    fake.extend_status = DLOCK_ECONN;
    ck_assert_int_eq(dlock_extend(l, 300), DLOCK_ELOST);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "did not confirm"));
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
}
END_TEST

/* A connection error with lease left is not a loss: the caller may retry. */
START_TEST(extend_error_with_lease_left_is_not_lost)
{
    dlock_lock *l = take("a", 5000);
    fake.extend_status = DLOCK_ECONN;
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_ECONN);
    ck_assert_int_gt(dlock_remaining_ms(l), 0);
    fake.extend_status = DLOCK_OK;
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* --- session generations --------------------------------------------------------------- */

/* The backend dropped its session (here during a dlock_holder() call): the
 * locks of the old session are lost at once (issue 10). */
START_TEST(dropped_session_loses_its_locks_at_once)
{
    dlock_lock *old = take("a", 60000);
    atomic_store(&fake.generation, 1);
    ck_assert_int_eq(dlock_holder(client, "x", NULL, 0), 0);
    ck_assert_int_eq(dlock_remaining_ms(old), 0);
    ck_assert_int_eq(dlock_extend(old, 60000), DLOCK_ELOST);
    ck_assert_int_eq(fake.extends, 0);
    /* A lock taken on the new session is fine. */
    dlock_lock *fresh = take("b", 60000);
    ck_assert_int_gt(dlock_remaining_ms(fresh), 0);
    ck_assert_int_eq(dlock_extend(fresh, 60000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(fresh), DLOCK_OK);
    ck_assert_int_eq(dlock_release(old), DLOCK_ELOST);
}
END_TEST

/* The session changed during the extend itself: the backend answered OK on
 * a new session, which does not hold the lock. */
START_TEST(session_replaced_during_extend)
{
    dlock_lock *l = take("a", 60000);
    atomic_store(&fake.generation, 7);
    ck_assert_int_eq(dlock_extend(l, 60000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
}
END_TEST

/* --- cancel ------------------------------------------------------------------------------ */

START_TEST(cancel_without_a_wait_does_nothing)
{
    ck_assert_int_eq(dlock_cancel(client), DLOCK_OK);
    ck_assert_int_eq(fake.cancels, 0);
    fake.acquire_blocks = 1;
    fake.acquire_takes_ms = 150;
    fake.acquire_status = DLOCK_EBUSY;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, "a", 1000, 150, &l), DLOCK_EBUSY);
}
END_TEST

struct later {
    int64_t after_ms;
};

static void *cancel_after(void *p)
{
    struct later *later = p;
    dlt_sleep_ms(later->after_ms);
    ck_assert_int_eq(dlock_cancel(client), DLOCK_OK);
    return NULL;
}

START_TEST(cancel_ends_a_wait)
{
    fake.acquire_blocks = 1;
    struct later later = {100};
    pthread_t t;
    pthread_create(&t, NULL, cancel_after, &later);
    dlock_lock *l = NULL;
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(client, "a", 1000, DLOCK_WAIT_FOREVER, &l), DLOCK_ECANCELED);
    ck_assert_int_lt(dlt_now_ms() - start, 2000);
    pthread_join(t, NULL);
    ck_assert_int_eq(fake.cancels, 1);
    ck_assert_int_ge(fake.cancel_clears, 1);
    ck_assert_int_eq(fake.live_locks, 0);
}
END_TEST

/* Cancels hammer the client around the end of waits that are granted at
 * once; after each, a wait with no cancel runs its whole course.  The core
 * must never let a cancel outside a wait reach the store, and must clear one
 * that came too late. */
struct storm {
    atomic_int stop;
};

static void *cancel_storm(void *p)
{
    struct storm *storm = p;
    while (!atomic_load(&storm->stop)) {
        dlock_cancel(client);
        sched_yield();
    }
    return NULL;
}

START_TEST(cancel_storm_never_reaches_the_next_wait)
{
    int stale = 0;
    for (int trial = 0; trial < 100; trial++) {
        struct storm storm = {0};
        pthread_t t;
        pthread_create(&t, NULL, cancel_storm, &storm);
        fake.acquire_blocks = 0;
        fake.acquire_takes_ms = 0;
        fake.acquire_status = DLOCK_OK;
        dlock_lock *l = NULL;
        for (int i = 0; i < 5; i++) {
            ck_assert_int_eq(dlock_acquire(client, "a", 1000, 1000, &l), DLOCK_OK);
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        }
        atomic_store(&storm.stop, 1);
        pthread_join(t, NULL);
        int pending = atomic_load(&fake.pending_cancel);
        ck_assert_msg(pending == 0, "a cancel is still pending after its wait ended");
        fake.acquire_blocks = 1;
        fake.acquire_takes_ms = 20;
        fake.acquire_status = DLOCK_EBUSY;
        if (dlock_acquire(client, "a", 1000, 20, &l) != DLOCK_EBUSY)
            stale++;
    }
    ck_assert_msg(stale == 0, "%d of 100 waits got a cancel meant for an earlier one", stale);
}
END_TEST

START_TEST(cancel_clears_the_error_text)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, "", 1000, 0, &l), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_cancel(client), DLOCK_OK);
    ck_assert_str_eq(dlock_last_error(), "");
}
END_TEST

/* --- the registry of held names ------------------------------------------------------------ */

START_TEST(not_reentrant_and_names_distinct)
{
    dlock_lock *a = take("a", 5000), *again = (dlock_lock *)1;
    ck_assert_int_eq(dlock_acquire(client, "a", 5000, 0, &again), DLOCK_EBUSY);
    ck_assert_ptr_null(again);
    ck_assert_int_eq(fake.acquires, 1); /* the store was not asked */
    dlock_lock *b = take("b", 5000);
    ck_assert_int_eq(dlock_release(a), DLOCK_OK);
    a = take("a", 5000); /* free again once released */
    ck_assert_int_eq(dlock_release(a), DLOCK_OK);
    ck_assert_int_eq(dlock_release(b), DLOCK_OK);
}
END_TEST

START_TEST(registry_grows_and_shrinks)
{
    enum { N = 3000 };
    static dlock_lock *locks[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "lock-%d", i);
        locks[i] = take(name, 60000);
    }
    for (int i = 0; i < N; i += 7) {
        snprintf(name, sizeof name, "lock-%d", i);
        dlock_lock *again = NULL;
        ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &again), DLOCK_EBUSY);
    }
    for (int i = 0; i < N; i += 2)
        ck_assert_int_eq(dlock_release(locks[i]), DLOCK_OK);
    for (int i = 0; i < N; i += 2) {
        snprintf(name, sizeof name, "lock-%d", i);
        locks[i] = take(name, 60000);
    }
    ck_assert_int_eq(fake.live_locks, N);
}
END_TEST

/* dlock_close releases every lock still held through it and frees them. */
START_TEST(close_releases_everything)
{
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        (void)take(name, 60000);
    }
    dlock_close(client);
    client = NULL;
    ck_assert_int_eq(fake.releases, 10);
    ck_assert_int_eq(fake.live_locks, 0);
    ck_assert_int_eq(fake.disconnects, 1);
}
END_TEST

/* Bad arguments never reach the store. */
START_TEST(bad_arguments_stay_in_the_core)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, "a", 0, 0, &l), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_acquire(client, "a", 1000, -2, &l), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_acquire(client, "\xff", 1000, 0, &l), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_holder(client, "", NULL, 0), DLOCK_EINVAL);
    ck_assert_int_eq(fake.acquires + fake.holders, 0);
    l = take("a", 1000);
    ck_assert_int_eq(dlock_extend(l, 0), DLOCK_EINVAL);
    ck_assert_int_eq(fake.extends, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_str_eq(dlock_last_error(), "");
}
END_TEST

/* A failed acquire frees everything and leaves the name free. */
START_TEST(failed_acquire_leaves_nothing)
{
    fake.acquire_status = DLOCK_ECONN;
    dlock_lock *l = (dlock_lock *)1;
    ck_assert_int_eq(dlock_acquire(client, "a", 1000, 0, &l), DLOCK_ECONN);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(fake.live_locks, 0);
    fake.acquire_status = DLOCK_OK;
    l = take("a", 1000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* --- operations: list, break, store time, run records ---------------------------- */

/* A backend without the operations: ENOTSUP with a message, no crash. */
START_TEST(operations_missing_are_enotsup)
{
    dlock_client *bare = NULL;
    ck_assert_int_eq(dlock__open_backend(&fake_backend_no_ops, "fake://", &bare), DLOCK_OK);
    dlock_list *list = (dlock_list *)1;
    ck_assert_int_eq(dlock_list_locks(bare, NULL, &list), DLOCK_ENOTSUP);
    ck_assert_ptr_null(list);
    ck_assert_int_eq(dlock_break(bare, "a"), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "does not offer"));
    int64_t t = 7;
    ck_assert_int_eq(dlock_store_time(bare, &t), DLOCK_ENOTSUP);
    ck_assert_int_eq(t, 0);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(bare, "a", 1000, 0, &l), DLOCK_OK);
    int64_t slot = 7;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_ENOTSUP);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(l, 5), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "run records"));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(bare);
}
END_TEST

/* Bad arguments never reach the store. */
START_TEST(operations_check_their_arguments)
{
    dlock_list *list = NULL;
    int64_t t = 0;
    ck_assert_int_eq(dlock_list_locks(NULL, "", &list), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_list_locks(client, "", NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_list_locks(client, "\xff", &list), DLOCK_EINVAL);
    char long_prefix[300];
    memset(long_prefix, 'x', sizeof long_prefix - 1);
    long_prefix[sizeof long_prefix - 1] = '\0';
    ck_assert_int_eq(dlock_list_locks(client, long_prefix, &list), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_break(NULL, "a"), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_break(client, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_break(client, ""), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_store_time(NULL, &t), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_store_time(client, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_record_get(NULL, &t), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_record_put(NULL, 1), DLOCK_EINVAL);
    dlock_lock *l = take("a", 1000);
    ck_assert_int_eq(dlock_record_get(l, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_record_put(l, 0), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_record_put(l, -5), DLOCK_EINVAL);
    ck_assert_int_eq(fake.lists + fake.breaks + fake.store_times + fake.record_gets + fake.record_puts, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A client never breaks its own lock: it releases it. */
START_TEST(break_refuses_a_name_this_client_holds)
{
    dlock_lock *l = take("mine", 1000);
    ck_assert_int_eq(dlock_break(client, "mine"), DLOCK_EBUSY);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "release it"));
    ck_assert_int_eq(fake.breaks, 0);
    ck_assert_int_eq(dlock_break(client, "other"), 1);
    fake.break_status = 0;
    ck_assert_int_eq(dlock_break(client, "other"), 0);
    fake.break_status = DLOCK_EBACKEND;
    ck_assert_int_eq(dlock_break(client, "other"), DLOCK_EBACKEND);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "fake: "));
    ck_assert_int_eq(fake.breaks, 3);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    /* Released: now it may be broken like anyone's. */
    fake.break_status = 1;
    ck_assert_int_eq(dlock_break(client, "mine"), 1);
}
END_TEST

/* The list comes back sorted by key, read through the accessors, freed. */
START_TEST(list_sorted_and_freed)
{
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, NULL, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 3);
    ck_assert_str_eq(dlock_list_name(list, 0), "a");
    ck_assert_str_eq(dlock_list_name(list, 1), "b");
    ck_assert_str_eq(dlock_list_name(list, 2), "c/1");
    ck_assert_str_eq(dlock_list_key(list, 2), "c/1"); /* no key given: the name */
    ck_assert_str_eq(dlock_list_holder(list, 0), "fake holder");
    ck_assert_str_eq(dlock_list_host(list, 0), "h");
    ck_assert_int_eq(dlock_list_pid(list, 0), 2);
    ck_assert_int_eq(dlock_list_since(list, 0), 1000);
    ck_assert_int_eq(dlock_list_expires(list, 0), 2000);
    ck_assert_uint_eq(dlock_list_fence(list, 0), 2);
    /* Out of range and NULL: the "unknown" answers, never a crash. */
    ck_assert_ptr_null(dlock_list_name(list, 3));
    ck_assert_str_eq(dlock_list_key(list, 3), "");
    ck_assert_int_eq(dlock_list_since(list, 99), -1);
    ck_assert_uint_eq(dlock_list_count(NULL), 0);
    ck_assert_str_eq(dlock_list_holder(NULL, 0), "");
    dlock_list_free(list);
    dlock_list_free(NULL);
    ck_assert_int_eq(dlock_list_locks(client, "c/", &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    dlock_list_free(list);
    fake.list_status = DLOCK_ECONN;
    list = (dlock_list *)1;
    ck_assert_int_eq(dlock_list_locks(client, "", &list), DLOCK_ECONN);
    ck_assert_ptr_null(list);
}
END_TEST

START_TEST(store_time_is_the_backends)
{
    fake.store_time_ms = 1795984064377;
    int64_t t = 0;
    ck_assert_int_eq(dlock_store_time(client, &t), DLOCK_OK);
    ck_assert_int_eq(t, 1795984064377);
    ck_assert_int_gt(fake.last_deadline_ms, dlock__now_ms()); /* bounded */
}
END_TEST

/* Records go through while the lock is held; a lost lock never writes. */
START_TEST(record_on_a_lost_lock_is_elost)
{
    dlock_lock *l = take("a", 1000);
    int64_t slot = -1;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(l, 3600000), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 3600000);
    /* The store says it is no longer ours: ELOST, and the lock stays lost. */
    fake.record_status = DLOCK_ELOST;
    ck_assert_int_eq(dlock_record_put(l, 7200000), DLOCK_ELOST);
    fake.record_status = DLOCK_OK;
    ck_assert_int_eq(dlock_extend(l, 1000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    /* A lease that ran out: refused without asking the store. */
    l = take("b", 50);
    int puts = fake.record_puts;
    dlt_sleep_ms(80);
    ck_assert_int_eq(dlock_record_put(l, 7200000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_ELOST);
    ck_assert_int_eq(fake.record_puts, puts);
    ck_assert_int_eq(fake.record_slot, 3600000);
    dlock_release(l);
}
END_TEST

/* --- issue 23: a store that answers late ---------------------------------------------- */

/* After a slow extend (the store answers 400 ms after the send), the lease
 * counts from the send: the store's lease started when it got the command,
 * at the latest then, so the client must not believe in more. */
START_TEST(slow_extend_counts_from_the_send)
{
    dlock_lock *l = take("a", 5000);
    fake.extend_takes_ms = 400;
    int64_t sent = dlock__now_ms();
    ck_assert_int_eq(dlock_extend(l, 1000), DLOCK_OK);
    int64_t answered = dlock__now_ms();
    ck_assert_int_ge(answered - sent, 390);
    int64_t remaining = dlock_remaining_ms(l);
    ck_assert_msg(remaining <= 1000 - (answered - sent) + 5, "remaining %lld ms after an extend answered in %lld ms",
                  (long long)remaining, (long long)(answered - sent));
    ck_assert_int_gt(remaining, 400);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *t = tcase_create("lease");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, lease_starts_at_the_granted_round_trip);
    tcase_add_test(t, lease_starts_before_the_call_by_default);
    tcase_add_test(t, lease_start_in_the_future_is_not_believed);
    tcase_add_test(t, expired_lease_is_lost_without_asking);
    tcase_add_test(t, extend_renews_from_its_own_send_time);
    tcase_add_test(t, store_says_lost);
    tcase_add_test(t, session_timeout_caps_the_lease);
    tcase_add_test(t, granted_lease_caps_one_lock);
    suite_add_tcase(s, t);
    t = tcase_create("deadlines");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, every_call_has_a_deadline);
    tcase_add_test(t, release_of_an_expired_lock_gets_a_moment);
    tcase_add_test(t, extend_past_the_lease_is_lost);
    tcase_add_test(t, extend_error_with_lease_left_is_not_lost);
    suite_add_tcase(s, t);
    t = tcase_create("sessions");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, dropped_session_loses_its_locks_at_once);
    tcase_add_test(t, session_replaced_during_extend);
    suite_add_tcase(s, t);
    t = tcase_create("cancel");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, cancel_without_a_wait_does_nothing);
    tcase_add_test(t, cancel_ends_a_wait);
    tcase_add_test(t, cancel_storm_never_reaches_the_next_wait);
    tcase_add_test(t, cancel_clears_the_error_text);
    suite_add_tcase(s, t);
    t = tcase_create("registry");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, not_reentrant_and_names_distinct);
    tcase_add_test(t, registry_grows_and_shrinks);
    tcase_add_test(t, close_releases_everything);
    tcase_add_test(t, bad_arguments_stay_in_the_core);
    tcase_add_test(t, failed_acquire_leaves_nothing);
    tcase_add_test(t, operations_missing_are_enotsup);
    tcase_add_test(t, operations_check_their_arguments);
    tcase_add_test(t, break_refuses_a_name_this_client_holds);
    tcase_add_test(t, list_sorted_and_freed);
    tcase_add_test(t, store_time_is_the_backends);
    tcase_add_test(t, record_on_a_lost_lock_is_elost);
    suite_add_tcase(s, t);
    t = tcase_create("slow-extend");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, slow_extend_counts_from_the_send);
    suite_add_tcase(s, t);
    int failed = dlt_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
