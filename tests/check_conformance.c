/*
 * The conformance suite: the rules every backend keeps (docs/contract.md),
 * written once against the public API and run against every URL in
 * $DLOCK_TEST_URLS (default: an SQLite file in a temporary folder).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "stores/store.h"

static const char *url;      /* the store under test */
static const char *backend;  /* its backend name */
static dlock_client *client; /* a fresh client for every test */
static char *name;           /* a fresh lock name for every test */

/* How late a silent holder's lock may be freed after its TTL: the backend's
 * stated granularity plus scheduling slack. */
static int64_t expiry_slack_ms(void)
{
    return dlt_store_of(url)->expiry_slack_ms;
}

/* What the store under test can do (tests/stores/store.h). */
static int can(unsigned cap)
{
    return (dlt_store_of(url)->caps(url) & cap) != 0;
}

static void setup(void)
{
    ck_assert_int_eq(dlock_open(url, &client), DLOCK_OK);
    name = dlt_unique_name("conf");
}

static void teardown(void)
{
    dlock_close(client);
    client = NULL;
    free(name);
}

static dlock_client *open_other(void)
{
    dlock_client *c = NULL;
    ck_assert_msg(dlock_open(url, &c) == DLOCK_OK, "open: %s", dlock_last_error());
    return c;
}

/* 1 when another client can take `n` right now (and gives it back). */
static int free_for_others(const char *n)
{
    dlock_client *other = open_other();
    dlock_lock *l = NULL;
    int rc = dlock_acquire(other, n, 5000, 0, &l);
    ck_assert_msg(rc == DLOCK_OK || rc == DLOCK_EBUSY, "acquire: %d %s", rc, dlock_last_error());
    if (rc == DLOCK_OK)
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(other);
    return rc == DLOCK_OK;
}

/* --- fencing -------------------------------------------------------------------- */

/* Tokens grow with every acquisition of a name, across clients, and stay the
 * same for the life of a handle.  Stores that give none say ENOTSUP. */
START_TEST(fence_grows_with_every_acquisition)
{
    dlock_lock *l = NULL;
    uint64_t first = 0, again = 0, last = 0;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    int rc = dlock_fence(l, &first);
    if (rc == DLOCK_ENOTSUP) {
        ck_assert_int_eq(first, 0);
        ck_assert_ptr_nonnull(strstr(dlock_last_error(), "fencing=on"));
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        return;
    }
    ck_assert_msg(rc == DLOCK_OK, "fence: %s", dlock_last_error());
    ck_assert_uint_ge(first, 1);
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &again), DLOCK_OK);
    ck_assert_uint_eq(again, first);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    last = first;
    for (int i = 0; i < 4; i++) {
        dlock_client *other = open_other();
        ck_assert_int_eq(dlock_acquire(i % 2 ? other : client, name, 5000, 0, &l), DLOCK_OK);
        uint64_t t = 0;
        ck_assert_int_eq(dlock_fence(l, &t), DLOCK_OK);
        ck_assert_msg(t > last, "token %llu after %llu", (unsigned long long)t, (unsigned long long)last);
        last = t;
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        dlock_close(other);
    }
    /* A holder that vanished without releasing: the next token is higher too. */
    ck_assert_int_eq(dlock_acquire(client, name, 300, 0, &l), DLOCK_OK);
    uint64_t stale = 0;
    ck_assert_int_eq(dlock_fence(l, &stale), DLOCK_OK);
    dlock_client *other = open_other();
    dlock_lock *l2 = NULL;
    ck_assert_int_eq(dlock_acquire(other, name, 5000, (int32_t)(3000 + expiry_slack_ms()), &l2), DLOCK_OK);
    uint64_t next = 0;
    ck_assert_int_eq(dlock_fence(l2, &next), DLOCK_OK);
    ck_assert_uint_gt(next, stale);
    ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
    dlock_close(other);
    (void)dlock_release(l);
    /* other names have their own counters; every token is >= 1 */
    ck_assert_int_eq(dlock_fence(NULL, &next), DLOCK_EINVAL);
}
END_TEST

START_TEST(fence_bad_arguments)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_fence(NULL, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* --- the backend and the basic cycle ------------------------------------------ */

START_TEST(backend_name)
{
    /* The name its adapter knows it by (tests/stores/). */
    ck_assert_str_eq(dlock_backend(client), dlt_store_of(url)->backend);
    ck_assert_str_eq(dlock_backend(NULL), "");
}
END_TEST

START_TEST(acquire_release_cycle)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(dlock_name(l), name);
    ck_assert_str_eq(dlock_last_error(), "");
    ck_assert(!free_for_others(name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert(free_for_others(name));
    /* The same client can take it again after release. */
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* --- names ------------------------------------------------------------------------ */

START_TEST(names_invalid)
{
    dlock_lock *l = (dlock_lock *)1;
    char long_name[300];
    memset(long_name, 'x', 256);
    long_name[256] = '\0';
    const char *bad[] = {"", long_name, "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "ab\xFF", "\xE2\x82"};
    ck_assert_int_eq(dlock_acquire(client, NULL, 1000, 0, &l), DLOCK_EINVAL);
    ck_assert_ptr_null(l);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = (dlock_lock *)1;
        ck_assert_int_eq(dlock_acquire(client, bad[i], 1000, 0, &l), DLOCK_EINVAL);
        ck_assert_ptr_null(l);
        ck_assert_uint_gt(strlen(dlock_last_error()), 5);
        ck_assert_int_eq(dlock_holder(client, bad[i], NULL, 0), DLOCK_EINVAL);
    }
    ck_assert_ptr_nonnull(strstr((dlock_acquire(client, long_name, 1000, 0, &l), dlock_last_error()), "255"));
}
END_TEST

START_TEST(names_at_the_limit)
{
    char n[256];
    /* 63 four-byte characters and 3 ASCII bytes: exactly 255 bytes. */
    size_t len = 0;
    for (int i = 0; i < 63; i++, len += 4)
        memcpy(n + len, "\xF0\x9F\x94\x92", 4);
    memcpy(n + len, "end", 4);
    ck_assert_uint_eq(strlen(n), 255);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, n, 10000, 0, &l), DLOCK_OK);
    ck_assert(!free_for_others(n));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    memset(n, 'a', 255);
    n[255] = '\0';
    ck_assert_int_eq(dlock_acquire(client, n, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* Names a store could confuse: case, accents, long shared prefixes, SQL. */
START_TEST(names_distinct)
{
    static char a[256], b[256], c[256];
    memset(a, 'n', 255);
    a[255] = '\0';
    memcpy(b, a, 256);
    b[254] = 'm';
    memcpy(c, a, 256);
    c[100] = 'q';
    const char *pairs[][2] = {
        {"Job", "job"},
        {"e", "\xC3\xA9"},  /* e / é */
        {"a", "\xC3\xA4"},  /* a / ä */
        {"ss", "\xC3\x9F"}, /* ss / ß */
        {"job ", "job"},    /* trailing space */
        {a, b},             /* differ in the last byte */
        {a, c},
        {"'; DROP TABLE dlock_locks; --", "\\' OR '1'='1"},
        {"100%", "100_"},
        {"x\ty", "x y"},
    };
    /* Every name starts with this test's unique name, so that stores tested
     * side by side on one server (DLOCK_TEST_PARALLEL) never share one. */
    size_t tag = strlen(name);
    ck_assert_uint_lt(tag, 100);
    memcpy(a, name, tag);
    memcpy(b, name, tag);
    memcpy(c, name, tag);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        dlock_lock *l1 = NULL, *l2 = NULL;
        dlock_client *other = open_other();
        char n1[256], n2[256];
        if (strlen(pairs[i][0]) == 255) {
            memcpy(n1, pairs[i][0], 256);
            memcpy(n2, pairs[i][1], 256);
        } else {
            snprintf(n1, sizeof n1, "%s/%s", name, pairs[i][0]);
            snprintf(n2, sizeof n2, "%s/%s", name, pairs[i][1]);
        }
        ck_assert_msg(dlock_acquire(client, n1, 10000, 0, &l1) == DLOCK_OK, "pair %zu: %s", i, dlock_last_error());
        ck_assert_msg(dlock_acquire(other, n2, 10000, 0, &l2) == DLOCK_OK,
                      "pair %zu: the second name conflicts with the first: %s", i, dlock_last_error());
        /* ... and each still conflicts with itself. */
        ck_assert(!free_for_others(n1));
        ck_assert(!free_for_others(n2));
        ck_assert_int_eq(dlock_release(l1), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
        dlock_close(other);
    }
}
END_TEST

START_TEST(same_name_conflicts_across_clients_and_processes)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    dlock_client *other = open_other();
    dlock_lock *l2 = NULL;
    ck_assert_int_eq(dlock_acquire(other, name, 10000, 0, &l2), DLOCK_EBUSY);
    ck_assert_ptr_null(l2);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), name));
    dlock_close(other);
    dlt_child child;
    ck_assert_int_eq(dlt_child_start(&child, url, name, 10000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&child, 10000), DLOCK_EBUSY);
    dlt_child_stop(&child, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlt_child_start(&child, url, name, 10000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&child, 10000), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlt_child_cmd(&child, "release", 10000), DLOCK_OK);
    dlt_child_stop(&child, 0);
}
END_TEST

/* --- TTL ----------------------------------------------------------------------------- */

START_TEST(ttl_bounds)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 0, 0, &l), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "ttl"));
    ck_assert_int_eq(dlock_acquire(client, name, 2147483648u, 0, &l), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_acquire(client, name, 2147483647u, 0, &l), DLOCK_OK);
    /* A store may grant a shorter lease than asked (SPEC "The granted
     * lease"): the lease clock follows the grant. */
    int64_t granted = dlt_store_of(url)->max_lease_ms ? dlt_store_of(url)->max_lease_ms : 2147483647LL;
    ck_assert_int_gt(dlock_remaining_ms(l), granted > 120000 ? granted - 60000 : granted - 5000);
    ck_assert_int_le(dlock_remaining_ms(l), granted);
    ck_assert_int_eq(dlock_extend(l, 0), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_extend(l, 2147483647u), DLOCK_OK);
    ck_assert_int_eq(dlock_extend(l, 1000), DLOCK_OK);
    ck_assert_int_le(dlock_remaining_ms(l), 1000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A holder that stops talking (SIGSTOP) loses the lock within TTL + slack,
 * another process takes it, and the holder learns it at its next extend. */
START_TEST(ttl_stopped_holder_loses_lock)
{
    const uint32_t ttl = 1500;
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    int64_t stopped_at = dlt_now_ms();
    kill(holder.pid, SIGSTOP);
    int64_t took = dlt_acquire_within(url, name, 60000, ttl + expiry_slack_ms());
    int64_t since_stop = dlt_now_ms() - stopped_at;
    ck_assert_msg(took >= 0, "the lock was not freed within TTL %u + %lld ms", ttl, (long long)expiry_slack_ms());
    /* Now someone else holds it for a while, then the holder wakes up. */
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    kill(holder.pid, SIGCONT);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 5000", 10000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 10000), DLOCK_ELOST);
    ck_assert(!free_for_others(name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&holder, 0);
    ck_assert_int_lt(since_stop, ttl + expiry_slack_ms() + 1000);
}
END_TEST

START_TEST(ttl_killed_holder_loses_lock)
{
    const uint32_t ttl = 1500;
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    ck_assert(!free_for_others(name));
    dlt_child_stop(&holder, SIGKILL);
    ck_assert_msg(dlt_acquire_within(url, name, 10000, ttl + expiry_slack_ms()) >= 0,
                  "a killed holder's lock was not freed within its TTL");
}
END_TEST

/* --- wait_ms -------------------------------------------------------------------------- */

START_TEST(wait_bounds)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 1000, -2, &l), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_acquire(client, name, 1000, INT32_MIN, &l), DLOCK_EINVAL);
    ck_assert_ptr_null(l);
}
END_TEST

START_TEST(wait_zero_tries_once)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    dlock_lock *l = NULL;
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(client, name, 1000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_lt(dlt_now_ms() - start, 1000);
    dlt_child_stop(&holder, 0);
}
END_TEST

START_TEST(wait_times_out)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    dlock_lock *l = NULL;
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(client, name, 1000, 700, &l), DLOCK_EBUSY);
    int64_t took = dlt_now_ms() - start;
    ck_assert_int_ge(took, 650);
    ck_assert_int_lt(took, 3000);
    dlt_child_stop(&holder, 0);
}
END_TEST

/* A waiter gets the lock soon after the holder releases it. */
static void wait_gets_released_lock(int32_t wait_ms)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    pid_t releaser = fork();
    if (releaser == 0) {
        dlt_sleep_ms(400);
        _exit(dlt_child_cmd(&holder, "release", 10000) == DLOCK_OK ? 0 : 1);
    }
    int64_t start = dlt_now_ms();
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, wait_ms, &l), DLOCK_OK);
    int64_t took = dlt_now_ms() - start;
    int status;
    waitpid(releaser, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_ge(took, 300);
    ck_assert_int_lt(took, 2400);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&holder, 0);
}

START_TEST(wait_gets_released_lock_bounded)
{
    wait_gets_released_lock(20000);
}
END_TEST

START_TEST(wait_forever_gets_released_lock)
{
    wait_gets_released_lock(DLOCK_WAIT_FOREVER);
}
END_TEST

/* The handoff goes to a waiter quickly, not after a long polling interval. */
START_TEST(wait_handoff_is_prompt)
{
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &held), DLOCK_OK);
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t waiter = fork();
    if (waiter == 0) {
        dlock_client *c = NULL;
        dlock_lock *l = NULL;
        if (dlock_open(url, &c) != DLOCK_OK)
            _exit(2);
        int rc = dlock_acquire(c, name, 30000, DLOCK_WAIT_FOREVER, &l);
        int64_t granted = dlt_now_ms();
        if (write(pipefd[1], &granted, sizeof granted) != sizeof granted)
            _exit(3);
        _exit(rc == DLOCK_OK ? 0 : 1);
    }
    dlt_sleep_ms(500); /* the waiter is blocked by now */
    int64_t released = dlt_now_ms();
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    int64_t granted = 0;
    ck_assert_int_eq(read(pipefd[0], &granted, sizeof granted), sizeof granted);
    int status;
    waitpid(waiter, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(granted - released < 250, "handoff took %lld ms", (long long)(granted - released));
}
END_TEST

struct cancel_args {
    dlock_client *c;
    int64_t after_ms;
    int64_t cancel_took_ms;
};

static void *cancel_later(void *p)
{
    struct cancel_args *a = p;
    dlt_sleep_ms(a->after_ms);
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_cancel(a->c), DLOCK_OK);
    a->cancel_took_ms = dlt_now_ms() - start;
    return NULL;
}

static void cancel_wait(int32_t wait_ms)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    struct cancel_args a = {client, 500, -1};
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &a);
    int64_t start = dlt_now_ms();
    dlock_lock *l = NULL;
    int rc = dlock_acquire(client, name, 5000, wait_ms, &l);
    int64_t took = dlt_now_ms() - start;
    pthread_join(t, NULL);
    ck_assert_msg(rc == DLOCK_ECANCELED, "got %d: %s", rc, dlock_last_error());
    ck_assert_ptr_null(l);
    ck_assert_int_ge(took, 400);
    ck_assert_int_lt(took, 3000);
    ck_assert_int_lt(a.cancel_took_ms, 200); /* dlock_cancel never blocks */
    /* The client still works after a canceled wait. */
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 10000), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&holder, 0);
}

START_TEST(cancel_wait_forever)
{
    cancel_wait(DLOCK_WAIT_FOREVER);
}
END_TEST

START_TEST(cancel_bounded_wait)
{
    cancel_wait(60000);
}
END_TEST

START_TEST(cancel_without_wait)
{
    ck_assert_int_eq(dlock_cancel(NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_cancel(client), DLOCK_OK);
    /* A cancel with no wait in progress does not spoil the next call. */
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 1000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* --- a wait longer than the TTL ------------------------------------------------------ */

static pid_t hold_then_release(dlt_child *holder, int64_t hold_ms)
{
    return dlt_hold_then_release(holder, url, name, 2000, hold_ms);
}

static void ended_well(pid_t pid)
{
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
}

/* The lease runs from the round trip that was granted, not from the start
 * of the wait: a lock taken after waiting 3 s with a 2 s TTL has its whole
 * TTL ahead of it (issue 10: it used to be born lost). */
static void wait_longer_than_ttl(int32_t wait_ms)
{
    dlt_child holder;
    pid_t driver = hold_then_release(&holder, 3000);
    int64_t start = dlt_now_ms();
    dlock_lock *l = NULL;
    int rc = dlock_acquire(client, name, 2000, wait_ms, &l);
    int64_t waited = dlt_now_ms() - start;
    ck_assert_msg(rc == DLOCK_OK, "acquire: %d %s", rc, dlock_last_error());
    ck_assert_int_ge(waited, 2500);
    int64_t remaining = dlock_remaining_ms(l);
    ck_assert_msg(remaining > 1500, "a lock granted after %lld ms starts with %lld ms of its 2000 ms lease",
                  (long long)waited, (long long)remaining);
    ck_assert(!free_for_others(name));
    ck_assert_msg(dlock_extend(l, 2000) == DLOCK_OK, "extend: %s", dlock_last_error());
    ck_assert_int_gt(dlock_remaining_ms(l), 1500);
    ck_assert_msg(dlock_release(l) == DLOCK_OK, "release: %s", dlock_last_error());
    ended_well(driver);
    dlt_child_stop(&holder, 0);
}

START_TEST(wait_longer_than_ttl_gives_full_lease)
{
    wait_longer_than_ttl(10000);
}
END_TEST

START_TEST(wait_forever_longer_than_ttl_gives_full_lease)
{
    wait_longer_than_ttl(DLOCK_WAIT_FOREVER);
}
END_TEST

/* The same through dlock(1): `dlock run -t 2s -w 10s` behind a holder of
 * 3 s runs its job to the end instead of stopping it at once (exit 79). */
START_TEST(dlock_run_wait_longer_than_ttl)
{
    const char *bin = getenv("DLOCK_BIN");
    ck_assert_msg(bin != NULL, "DLOCK_BIN is not set (make check sets it)");
    dlt_child holder;
    pid_t driver = hold_then_release(&holder, 3000);
    fflush(NULL);
    pid_t run = fork();
    if (run == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        execl(bin, "dlock", "run", "-q", "-u", url, "-t", "2s", "-w", "10s", name, "--", "sh", "-c",
              "sleep 2.5; exit 7", (char *)NULL);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(run, &status, 0), run);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 7, "dlock run exited %d (79: the lock was born lost)",
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ended_well(driver);
    dlt_child_stop(&holder, 0);
}
END_TEST

/* A cancel that races the end of one wait must not cancel the next one:
 * it affects only a wait in progress (issue 10).  The racer releases the
 * lock that the waiter waits for, and at once cancels, again and again for
 * a few milliseconds: around the grant. */
struct grant_racer {
    dlock_client *waiter;
    dlock_lock *busy;
    int delay_ms;
};

static void *grant_racer_main(void *p)
{
    struct grant_racer *r = p;
    dlt_sleep_ms(r->delay_ms);
    ck_assert_int_eq(dlock_release(r->busy), DLOCK_OK);
    int64_t until = dlt_now_ms() + 5;
    while (dlt_now_ms() < until) {
        ck_assert_int_eq(dlock_cancel(r->waiter), DLOCK_OK);
        sched_yield();
    }
    return NULL;
}

START_TEST(stale_cancel_never_reaches_the_next_wait)
{
    dlock_client *other = open_other();
    int stale = 0, granted = 0;
    for (int trial = 0; trial < 20; trial++) {
        struct grant_racer r = {client, NULL, 20 + trial % 7};
        ck_assert_int_eq(dlock_acquire(other, name, 60000, 0, &r.busy), DLOCK_OK);
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, grant_racer_main, &r), 0);
        dlock_lock *l = NULL;
        int rc = dlock_acquire(client, name, 5000, 5000, &l);
        pthread_join(t, NULL);
        ck_assert_msg(rc == DLOCK_OK || rc == DLOCK_ECANCELED, "first wait: %d %s", rc, dlock_last_error());
        if (rc == DLOCK_OK) {
            granted++;
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        }
        /* No cancel from here on: this wait must run its whole course. */
        dlock_lock *busy = NULL;
        ck_assert_int_eq(dlock_acquire(other, name, 60000, 0, &busy), DLOCK_OK);
        int64_t start = dlt_now_ms();
        rc = dlock_acquire(client, name, 5000, 300, &l);
        int64_t took = dlt_now_ms() - start;
        ck_assert_msg(rc == DLOCK_EBUSY || rc == DLOCK_ECANCELED, "second wait: %d %s", rc, dlock_last_error());
        if (rc == DLOCK_ECANCELED || took < 250)
            stale++;
        ck_assert_int_eq(dlock_release(busy), DLOCK_OK);
    }
    ck_assert_msg(stale == 0, "%d of 20 waits were cancelled by a cancel meant for an earlier wait (%d granted)", stale,
                  granted);
    dlock_close(other);
}
END_TEST

START_TEST(cancel_clears_the_last_error)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, "", 5000, 0, &l), DLOCK_EINVAL);
    ck_assert_str_ne(dlock_last_error(), "");
    ck_assert_int_eq(dlock_cancel(client), DLOCK_OK);
    ck_assert_str_eq(dlock_last_error(), "");
}
END_TEST

/* --- not re-entrant ------------------------------------------------------------------- */

START_TEST(not_reentrant)
{
    dlock_lock *l = NULL, *again = (dlock_lock *)1;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 5000, &again), DLOCK_EBUSY);
    ck_assert_int_lt(dlt_now_ms() - start, 500); /* at once, even with a wait */
    ck_assert_ptr_null(again);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "re-entrant"));
    ck_assert_int_eq(dlock_acquire(client, name, 10000, DLOCK_WAIT_FOREVER, &again), DLOCK_EBUSY);
    /* One release frees it: it was not counted twice. */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert(free_for_others(name));
}
END_TEST

/* --- extend, release, remaining ------------------------------------------------------- */

START_TEST(extend_renews_the_lease)
{
    const uint32_t ttl = 1500;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, ttl, 0, &l), DLOCK_OK);
    for (int i = 0; i < 4; i++) {
        dlt_sleep_ms(700);
        ck_assert_msg(dlock_extend(l, ttl) == DLOCK_OK, "extend %d: %s", i, dlock_last_error());
        ck_assert_int_gt(dlock_remaining_ms(l), ttl - 300);
    }
    /* 2.8 s after the acquire, well past the first TTL: still ours. */
    ck_assert(!free_for_others(name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* The lease runs out and another client takes the lock: extend and
 * release of the old handle both say DLOCK_ELOST. */
START_TEST(extend_after_loss_is_lost)
{
    const uint32_t ttl = 500;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, ttl, 0, &l), DLOCK_OK);
    ck_assert_msg(dlt_acquire_within(url, name, 60000, ttl + expiry_slack_ms()) >= 0, "the lease did not run out");
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_ELOST);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), name));
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_ELOST); /* stays lost */
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    /* The client is still usable, and the name is free again. */
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* Even when nobody else took it, a lease that ran out is not silently
 * renewed: the holder's critical section may have overlapped. */
START_TEST(extend_after_expiry_is_lost)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 100, 0, &l), DLOCK_OK);
    dlt_sleep_ms(250);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert(free_for_others(name));
}
END_TEST

START_TEST(release_after_expiry_is_lost)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 100, 0, &l), DLOCK_OK);
    dlt_sleep_ms(250);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert(free_for_others(name));
}
END_TEST

START_TEST(remaining_is_conservative)
{
    dlock_lock *l = NULL;
    int64_t before = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(client, name, 3000, 0, &l), DLOCK_OK);
    int64_t r1 = dlock_remaining_ms(l);
    int64_t elapsed = dlt_now_ms() - before;
    ck_assert_int_le(r1, 3000);
    ck_assert_int_ge(r1, 3000 - elapsed - 50);
    dlt_sleep_ms(400);
    int64_t r2 = dlock_remaining_ms(l);
    ck_assert_int_le(r2, r1 - 350);
    ck_assert_int_eq(dlock_extend(l, 2000), DLOCK_OK);
    ck_assert_int_le(dlock_remaining_ms(l), 2000);
    ck_assert_int_gt(dlock_remaining_ms(l), 1500);
    ck_assert_int_eq(dlock_remaining_ms(NULL), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* With several locks on one client, no lock promises more than the
 * shortest lease the store enforces on the session. */
START_TEST(remaining_with_mixed_ttls)
{
    dlock_lock *long_lock = NULL, *short_lock = NULL;
    char *other_name = dlt_unique_name("conf-short");
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &long_lock), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, other_name, 1000, 0, &short_lock), DLOCK_OK);
    dlt_sleep_ms(1600);
    /* Only the long lock is extended: if the store's session would have died
     * by now, remaining must say 0 and extend must say lost. */
    int64_t left = dlock_remaining_ms(long_lock);
    int rc = dlock_extend(long_lock, 60000);
    if (rc == DLOCK_OK)
        ck_assert(!free_for_others(name));
    else
        ck_assert_msg(rc == DLOCK_ELOST && left == 0, "rc %d left %lld", rc, (long long)left);
    dlock_release(short_lock);
    dlock_release(long_lock);
    free(other_name);
}
END_TEST

START_TEST(null_handles)
{
    char buf[16];
    dlock_lock *l = (dlock_lock *)1;
    ck_assert_int_eq(dlock_acquire(NULL, name, 1000, 0, &l), DLOCK_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(dlock_acquire(client, name, 1000, 0, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_extend(NULL, 1000), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "NULL"));
    ck_assert_int_eq(dlock_release(NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_holder(NULL, name, buf, sizeof buf), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_holder(client, NULL, buf, sizeof buf), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_holder(client, name, NULL, 10), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_cancel(NULL), DLOCK_EINVAL);
    ck_assert_str_eq(dlock_name(NULL), "");
    dlock_close(NULL);
}
END_TEST

START_TEST(holder_reports)
{
    char buf[512];
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 1);
    ck_assert_uint_gt(strlen(buf), 0);
    /* Small buffers are truncated and terminated; none at all is fine. */
    char tiny[6];
    memset(tiny, 'Z', sizeof tiny);
    ck_assert_int_eq(dlock_holder(client, name, tiny, sizeof tiny), 1);
    ck_assert_uint_le(strlen(tiny), 5);
    ck_assert_int_eq(dlock_holder(client, name, NULL, 0), 1);
    dlt_child_stop(&holder, 0);
    /* A holder that exits releases (dlock_close on exit is not called by the
     * child; SQLite, Redis and lease mode keep the lock until its TTL, so only
     * check session stores). */
    if (!can(DLT_RELEASES_ON_EXIT))
        return;
    dlt_sleep_ms(100);
    int64_t start = dlt_now_ms();
    int rc;
    while ((rc = dlock_holder(client, name, buf, sizeof buf)) == 1 && dlt_now_ms() - start < 3000)
        dlt_sleep_ms(50);
    ck_assert_int_eq(rc, 0);
}
END_TEST

/* --- connections and processes ------------------------------------------------------ */

START_TEST(close_releases_everything)
{
    dlock_client *c = open_other();
    dlock_lock *l[3];
    char *names[3];
    for (int i = 0; i < 3; i++) {
        names[i] = dlt_unique_name("conf-close");
        ck_assert_int_eq(dlock_acquire(c, names[i], 60000, 0, &l[i]), DLOCK_OK);
    }
    ck_assert_int_eq(dlock_release(l[1]), DLOCK_OK); /* released handles are gone */
    dlock_close(c);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(free_for_others(names[i]), "lock %d still held after dlock_close", i);
        free(names[i]);
    }
}
END_TEST

/* Every descriptor the library opened is close-on-exec, so that a child
 * process never keeps a lock alive. */
static void fd_snapshot(char *open_fds, int max)
{
    memset(open_fds, 0, (size_t)max);
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 0 && fd < max && fd != dirfd(d))
            open_fds[fd] = 1;
    }
    closedir(d);
}

START_TEST(descriptors_close_on_exec)
{
    enum { MAX_FD = 4096 };
    static char before[MAX_FD], after[MAX_FD];
    fd_snapshot(before, MAX_FD);
    dlock_client *c = open_other();
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    char buf[512];
    ck_assert_int_ge(dlock_holder(c, name, buf, sizeof buf), 0);
    fd_snapshot(after, MAX_FD);
    int checked = 0;
    for (int fd = 0; fd < MAX_FD; fd++) {
        if (!after[fd] || before[fd])
            continue;
        int flags = fcntl(fd, F_GETFD);
        ck_assert_msg(flags >= 0 && (flags & FD_CLOEXEC), "fd %d is not close-on-exec", fd);
        checked++;
    }
    ck_assert_int_gt(checked, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
}
END_TEST

/* --- threads --------------------------------------------------------------------------- */

struct thread_args {
    dlock_client *c;
    const char *name;
    int id;
    int ok;
    int *holding;
    pthread_mutex_t *mu;
    int overlap;
};

static void *thread_cycles(void *p)
{
    struct thread_args *a = p;
    for (int i = 0; i < 20; i++) {
        dlock_lock *l = NULL;
        int rc = dlock_acquire(a->c, a->name, 10000, 0, &l);
        if (rc == DLOCK_EBUSY)
            continue;
        if (rc != DLOCK_OK)
            return NULL;
        pthread_mutex_lock(a->mu);
        if (*a->holding)
            a->overlap = 1;
        *a->holding = 1;
        pthread_mutex_unlock(a->mu);
        dlt_sleep_ms(1);
        pthread_mutex_lock(a->mu);
        *a->holding = 0;
        pthread_mutex_unlock(a->mu);
        if (dlock_extend(l, 10000) != DLOCK_OK || dlock_release(l) != DLOCK_OK)
            return NULL;
        a->ok++;
    }
    return NULL;
}

START_TEST(threads_share_one_client)
{
    pthread_t t[4];
    struct thread_args a[4];
    int holding = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thread_args){client, name, i, 0, &holding, &mu, 0};
        pthread_create(&t[i], NULL, thread_cycles, &a[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(a[i].overlap, 0);
        total += a[i].ok;
    }
    ck_assert_int_gt(total, 0);
    ck_assert(free_for_others(name));
}
END_TEST

static void *thread_last_error(void *p)
{
    (void)p;
    return (void *)(strcmp(dlock_last_error(), "") == 0 ? (void *)1 : NULL);
}

START_TEST(last_error_is_thread_local)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, "", 1000, 0, &l), DLOCK_EINVAL);
    ck_assert_str_ne(dlock_last_error(), "");
    pthread_t t;
    void *res = NULL;
    pthread_create(&t, NULL, thread_last_error, NULL);
    pthread_join(t, &res);
    ck_assert_ptr_nonnull(res);
    ck_assert_str_ne(dlock_last_error(), "");
}
END_TEST

/* --- errors: no secret in any message ------------------------------------------------ */

START_TEST(no_password_in_errors)
{
    /* Take the user:password@ part of a server URL and point it at a closed port. */
    const char *at = strchr(url, '@');
    const char *sep = strstr(url, "://");
    if (!at || !sep || !can(DLT_NETWORK))
        return; /* no password to leak in this URL */
    char scheme[32];
    snprintf(scheme, sizeof scheme, "%.*s", (int)(sep - url), url);
    char bad[512];
    snprintf(bad, sizeof bad, "%s://dlockuser:S3cr3t-Pa55w0rd@127.0.0.1:1/%s", scheme,
             dlt_store_of(url)->url_path);
    dlock_client *c = NULL;
    int rc = dlock_open(bad, &c);
    if (rc == DLOCK_OK) {
        dlock_lock *l = NULL;
        rc = dlock_acquire(c, name, 1000, 0, &l);
        ck_assert_ptr_null(strstr(dlock_last_error(), "S3cr3t"));
        dlock_close(c);
    }
    ck_assert_int_eq(rc, DLOCK_ECONN);
    ck_assert_ptr_null(strstr(dlock_last_error(), "S3cr3t"));
    ck_assert_uint_gt(strlen(dlock_last_error()), 5);
}
END_TEST

/* --- the CLI's operations on every store ------------------------------------------ */

/* Run `dlock ARGS...` (NULL-terminated); its stdout into out; the exit status. */
static int dlock_cli(char *out, size_t outlen, ...)
{
    const char *bin = getenv("DLOCK_BIN");
    ck_assert_msg(bin != NULL, "DLOCK_BIN is not set (make check sets it)");
    const char *argv[32] = {"dlock"};
    int argc = 1;
    va_list ap;
    va_start(ap, outlen);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t n;
    while ((n = read(fds[0], out + used, outlen - 1 - used)) > 0 && used + (size_t)n < outlen - 1)
        used += (size_t)n;
    if (n > 0)
        used += (size_t)n;
    out[used] = '\0';
    close(fds[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* dlock list, status --json and release --force see and break a lock held
 * through the library, on every store (dlock(1)). */
START_TEST(cli_list_status_and_break)
{
    char out[16384];
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_msg(dlock_cli(out, sizeof out, "list", "-u", url, "--json", name, NULL) == 0, "list: %s", out);
    char quoted[300];
    snprintf(quoted, sizeof quoted, "\"name\":\"%s\"", name);
    ck_assert_msg(strstr(out, quoted) != NULL, "dlock list --json: %s", out);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "list", "-u", url, name, NULL), 0);
    ck_assert_msg(strstr(out, name) != NULL, "dlock list: %s", out);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "status", "-u", url, "--json", name, NULL), 0);
    ck_assert_msg(strstr(out, "\"held\":true") != NULL, "dlock status --json: %s", out);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "release", "--force", "-u", url, name, NULL), 0);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "status", "-u", url, "--json", name, NULL), 1);
    ck_assert_msg(strstr(out, "\"held\":false") != NULL, "dlock status --json: %s", out);
    ck_assert_int_eq(dlock_cli(out, sizeof out, "release", "--force", "-u", url, name, NULL), 1);
    (void)dlock_release(l);
}
END_TEST

/* dlock run --once-per and the job's DLOCK_NAME/DLOCK_FENCE, on every store. */
START_TEST(cli_once_per_and_environment)
{
    char out[4096];
    /* a failed run leaves the slot open, a good one closes it */
    ck_assert_int_eq(dlock_cli(out, sizeof out, "run", "-q", "-u", url, "--once-per", "24h", name, "--", "false", NULL),
                     1);
    ck_assert_int_eq(
        dlock_cli(out, sizeof out, "run", "-q", "-u", url, "--once-per", "24h", name, "--", "echo", "ran", NULL), 0);
    ck_assert_str_eq(out, "ran\n");
    ck_assert_int_eq(
        dlock_cli(out, sizeof out, "run", "-q", "-u", url, "--once-per", "24h", name, "--", "echo", "ran", NULL), 75);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(dlock_cli(out, sizeof out, "run", "-q", "-u", url, "-E", "0", "--once-per", "24h", name, "--",
                               "echo", "ran", NULL),
                     0);
    ck_assert_str_eq(out, "");
    /* the job's environment */
    ck_assert_int_eq(dlock_cli(out, sizeof out, "run", "-q", "-u", url, name, "--", "sh", "-c",
                               "echo \"$DLOCK_NAME|${DLOCK_FENCE-none}\"", NULL),
                     0);
    char *bar = strchr(out, '|');
    ck_assert_ptr_nonnull(bar);
    *bar = '\0';
    ck_assert_str_eq(out, name);
    if (!can(DLT_FENCES))
        ck_assert_str_eq(bar + 1, "none\n");
    else
        ck_assert_msg(strtoull(bar + 1, NULL, 10) >= 1, "DLOCK_FENCE=%s", bar + 1);
}
END_TEST

/* --- listing, breaking, run records ------------------------------------------------- */

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The entry of `list` for the lock `n` held by this process: by name, by a
 * key that is the name, or (a store that keeps only keys: PostgreSQL and
 * MySQL session mode) a nameless entry of this process.  -1: none. */
static long entry_of(const dlock_list *list, const char *n)
{
    long nameless = -1;
    for (size_t i = 0; i < dlock_list_count(list); i++) {
        const char *ln = dlock_list_name(list, i);
        if ((ln && strcmp(ln, n) == 0) || strcmp(dlock_list_key(list, i), n) == 0)
            return (long)i;
        if (!ln && dlock_list_pid(list, i) == (int64_t)getpid())
            nameless = (long)i;
    }
    return nameless;
}

static dlock_list *list_of(dlock_client *c, const char *prefix)
{
    dlock_list *list = NULL;
    int rc = dlock_list_locks(c, prefix, &list);
    ck_assert_msg(rc == DLOCK_OK, "list: %d %s", rc, dlock_last_error());
    return list;
}

/* A held lock is listed (by another client too) with its holder, pid, times
 * and fence, as far as the store knows them; once released it is gone. */
START_TEST(list_shows_a_held_lock)
{
    int64_t before = 0, after = 0;
    ck_assert_int_eq(dlock_store_time(client, &before), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_store_time(client, &after), DLOCK_OK);
    dlock_client *other = open_other();
    dlock_list *list = list_of(other, name);
    long i = entry_of(list, name);
    ck_assert_msg(i >= 0, "lock %s not listed (%zu entries)", name, dlock_list_count(list));
    if (dlock_list_name(list, (size_t)i))
        ck_assert_str_eq(dlock_list_name(list, (size_t)i), name);
    ck_assert_str_ne(dlock_list_key(list, (size_t)i), "");
    ck_assert_str_ne(dlock_list_holder(list, (size_t)i), "");
    int64_t pid = dlock_list_pid(list, (size_t)i);
    ck_assert(pid == 0 || pid == (int64_t)getpid());
    int64_t since = dlock_list_since(list, (size_t)i), expires = dlock_list_expires(list, (size_t)i);
    if (since >= 0)
        ck_assert_msg(since >= before - 2000 && since <= after + 2000, "since %lld not in [%lld, %lld]",
                      (long long)since, (long long)before, (long long)after);
    if (expires >= 0)
        ck_assert_msg(expires > after && expires <= after + 30000 + 2000, "expires %lld, store time %lld",
                      (long long)expires, (long long)after);
    uint64_t token = 0, listed = dlock_list_fence(list, (size_t)i);
    if (dlock_fence(l, &token) == DLOCK_OK && listed)
        ck_assert_uint_eq(listed, token);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    list = list_of(other, name);
    ck_assert_msg(entry_of(list, name) < 0, "released lock %s still listed", name);
    dlock_list_free(list);
    dlock_close(other);
}
END_TEST

/* A prefix lists the names that start with it, and only those (stores that
 * keep names). */
START_TEST(list_prefix_filters)
{
    char a[300], b[300], outside[300];
    snprintf(a, sizeof a, "%s/a", name);
    snprintf(b, sizeof b, "%s/b", name);
    snprintf(outside, sizeof outside, "%sX", name); /* shares the prefix without the slash */
    dlock_lock *la = NULL, *lb = NULL, *lo = NULL;
    ck_assert_int_eq(dlock_acquire(client, a, 30000, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, b, 30000, 0, &lb), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, outside, 30000, 0, &lo), DLOCK_OK);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s/", name);
    dlock_list *list = list_of(client, prefix);
    size_t named = 0;
    for (size_t i = 0; i < dlock_list_count(list); i++) {
        const char *n = dlock_list_name(list, i);
        if (!n)
            continue;
        ck_assert_msg(strncmp(n, prefix, strlen(prefix)) == 0, "%s listed under %s", n, prefix);
        named++;
    }
    if (named) {
        ck_assert_uint_eq(named, 2);
        ck_assert_str_eq(dlock_list_name(list, 0), a); /* sorted */
        ck_assert_str_eq(dlock_list_name(list, 1), b);
    }
    dlock_list_free(list);
    /* LIKE-style wildcards in a prefix are plain characters. */
    snprintf(prefix, sizeof prefix, "%s%%", name);
    list = list_of(client, prefix);
    for (size_t i = 0; i < dlock_list_count(list); i++)
        ck_assert_ptr_null(dlock_list_name(list, i));
    dlock_list_free(list);
    ck_assert_int_eq(dlock_release(la), DLOCK_OK);
    ck_assert_int_eq(dlock_release(lb), DLOCK_OK);
    ck_assert_int_eq(dlock_release(lo), DLOCK_OK);
}
END_TEST

/* Breaking another client's lock: its next extend is ELOST, anyone may
 * take the name; breaking a free name answers 0. */
START_TEST(break_frees_a_lock_held_by_another)
{
    dlock_client *other = open_other();
    dlock_lock *theirs = NULL;
    ck_assert_int_eq(dlock_acquire(other, name, 30000, 0, &theirs), DLOCK_OK);
    int rc = dlock_break(client, name);
    ck_assert_msg(rc == 1, "break: %d %s", rc, dlock_last_error());
    ck_assert_int_eq(dlock_extend(theirs, 30000), DLOCK_ELOST);
    dlock_lock *mine = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &mine), DLOCK_OK);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(mine), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 0);
    dlock_close(other);
}
END_TEST

/* An expired lease is not "live": breaking it answers 0. */
START_TEST(break_of_an_expired_lock_is_0)
{
    dlock_client *other = open_other();
    dlock_lock *theirs = NULL;
    ck_assert_int_eq(dlock_acquire(other, name, 100, 0, &theirs), DLOCK_OK);
    dlt_sleep_ms(100 + expiry_slack_ms());
    ck_assert_int_eq(dlock_break(client, name), 0);
    dlock_release(theirs);
    dlock_close(other);
}
END_TEST

/* The store's clock, on loopback, is within a few seconds of this host's. */
START_TEST(store_time_is_near_the_wall_clock)
{
    int64_t t = 0;
    ck_assert_int_eq(dlock_store_time(client, &t), DLOCK_OK);
    int64_t now = wall_now_ms();
    ck_assert_msg(t > now - 5000 && t < now + 5000, "store time %lld, wall clock %lld", (long long)t, (long long)now);
}
END_TEST

/* A record starts at 0, survives the release for the next holder (another
 * client), and is never written once the lock is lost. */
START_TEST(records_follow_the_lock)
{
    dlock_lock *l = NULL;
    int64_t slot = -1;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(l, 1795984000000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_client *other = open_other();
    ck_assert_int_eq(dlock_acquire(other, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1795984000000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    /* Lost by expiry. */
    ck_assert_int_eq(dlock_acquire(other, name, 100, 0, &l), DLOCK_OK);
    dlt_sleep_ms(150);
    ck_assert_int_eq(dlock_record_put(l, 1795987600000), DLOCK_ELOST);
    dlock_release(l);
    dlock_close(other);
}
END_TEST

/* Lost by a break while the holder's own lease clock still runs: only the
 * store can tell, and the record is left as it was. */
START_TEST(record_put_after_a_break_is_lost)
{
    dlock_client *other = open_other();
    dlock_lock *theirs = NULL, *mine = NULL;
    int64_t slot = -1;
    ck_assert_int_eq(dlock_acquire(other, name, 30000, 0, &theirs), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(theirs, 1000), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 1);
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &mine), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(theirs, 2000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_record_get(mine, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1000);
    ck_assert_int_eq(dlock_release(mine), DLOCK_OK);
    dlock_release(theirs);
    dlock_close(other);
}
END_TEST

static Suite *conformance_suite(void)
{
    /* Check keeps the pointer, not a copy: one title per backend, for good. */
    static char titles[3][64];
    static int used;
    char *title = titles[used++ % 3];
    snprintf(title, sizeof titles[0], "conformance[%s]", backend);
    Suite *s = suite_create(title);
    TCase *t = tcase_create("basics");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, backend_name);
    tcase_add_test(t, acquire_release_cycle);
    tcase_add_test(t, null_handles);
    tcase_add_test(t, holder_reports);
    tcase_add_test(t, last_error_is_thread_local);
    tcase_add_test(t, no_password_in_errors);
    suite_add_tcase(s, t);

    t = tcase_create("names");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, names_invalid);
    tcase_add_test(t, names_at_the_limit);
    tcase_add_test(t, names_distinct);
    tcase_add_test(t, same_name_conflicts_across_clients_and_processes);
    tcase_add_test(t, not_reentrant);
    suite_add_tcase(s, t);

    t = tcase_create("lease");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, ttl_bounds);
    tcase_add_test(t, ttl_stopped_holder_loses_lock);
    tcase_add_test(t, ttl_killed_holder_loses_lock);
    tcase_add_test(t, extend_renews_the_lease);
    tcase_add_test(t, extend_after_loss_is_lost);
    tcase_add_test(t, extend_after_expiry_is_lost);
    tcase_add_test(t, release_after_expiry_is_lost);
    tcase_add_test(t, remaining_is_conservative);
    tcase_add_test(t, remaining_with_mixed_ttls);
    suite_add_tcase(s, t);

    t = tcase_create("wait");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, wait_bounds);
    tcase_add_test(t, wait_zero_tries_once);
    tcase_add_test(t, wait_times_out);
    tcase_add_test(t, wait_gets_released_lock_bounded);
    tcase_add_test(t, wait_forever_gets_released_lock);
    tcase_add_test(t, wait_handoff_is_prompt);
    tcase_add_test(t, cancel_wait_forever);
    tcase_add_test(t, cancel_bounded_wait);
    tcase_add_test(t, cancel_without_wait);
    tcase_add_test(t, cancel_clears_the_last_error);
    tcase_add_test(t, stale_cancel_never_reaches_the_next_wait);
    tcase_add_test(t, wait_longer_than_ttl_gives_full_lease);
    tcase_add_test(t, wait_forever_longer_than_ttl_gives_full_lease);
    tcase_add_test(t, dlock_run_wait_longer_than_ttl);
    suite_add_tcase(s, t);

    t = tcase_create("fencing");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, fence_grows_with_every_acquisition);
    tcase_add_test(t, fence_bad_arguments);
    suite_add_tcase(s, t);

    t = tcase_create("operations");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, list_shows_a_held_lock);
    tcase_add_test(t, list_prefix_filters);
    tcase_add_test(t, break_frees_a_lock_held_by_another);
    tcase_add_test(t, break_of_an_expired_lock_is_0);
    tcase_add_test(t, store_time_is_near_the_wall_clock);
    tcase_add_test(t, records_follow_the_lock);
    tcase_add_test(t, record_put_after_a_break_is_lost);
    suite_add_tcase(s, t);

    t = tcase_create("cli");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, cli_list_status_and_break);
    tcase_add_test(t, cli_once_per_and_environment);
    suite_add_tcase(s, t);

    t = tcase_create("clients");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, close_releases_everything);
    tcase_add_test(t, descriptors_close_on_exec);
    tcase_add_test(t, threads_share_one_client);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    int failed = dlt_run_per_url("conformance", conformance_suite, &url, &backend);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
