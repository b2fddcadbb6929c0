/*
 * The conformance suite, in part: waiting: bounds, hand-off, cancel, a wait
 * longer than the TTL, a cancel racing a grant.
 * (tests/check_conformance.c runs every part once per URL.)
 */
#include "config.h"

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

#include "conformance.h"

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

void conformance_add_wait(Suite *s)
{
    TCase *t;
    t = tcase_create("wait");
    tcase_add_checked_fixture(t, conformance_setup, conformance_teardown);
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
}
