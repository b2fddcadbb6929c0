/*
 * PostgreSQL suite, tcase "wait": waits granted on release, timeouts, cancel, lock_timeout races,
 * deadlocks.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- waiting ------------------------------------------------------------------------------ */

/* A released lock reaches a server-side waiter in about one round trip. */
START_TEST(test_wait_granted_on_release)
{
    char *name = dlt_unique_name("pg-wait");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, pg_url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);

    dlock_client *c = open_client(pg_url);
    /* The release comes from another process 400 ms into our wait. */
    fflush(NULL);
    pid_t releaser = fork();
    ck_assert(releaser >= 0);
    if (releaser == 0) {
        dlt_sleep_ms(400);
        _exit(dlt_child_cmd(&holder, "release", 5000) == DLOCK_OK ? 0 : 1);
    }
    dlock_lock *l = NULL;
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 10000, &l), DLOCK_OK);
    int64_t granted = dlt_now_ms();
    int status;
    waitpid(releaser, &status, 0);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fprintf(stderr, "wait: granted %lld ms after the wait began (release at ~400 ms)\n", (long long)(granted - start));
    ck_assert_int_ge(granted - start, 300);
    ck_assert_int_lt(granted - start, 1000);
    ck_assert_int_eq(held_elsewhere(name), 1);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&holder, 0);
    dlock_close(c);
    free(name);
}
END_TEST

START_TEST(test_wait_times_out)
{
    char *name = dlt_unique_name("pg-wait-timeout");
    dlock_client *holder = open_client(pg_url), *c = open_client(pg_url);
    dlock_lock *held = NULL, *l = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 30000, 0, &held), DLOCK_OK);
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 300, &l), DLOCK_EBUSY);
    int64_t took = dlt_now_ms() - start;
    ck_assert_int_ge(took, 290);
    ck_assert_int_lt(took, 1300);
    /* The waiter's session is fine and holds nothing. */
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 300, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(holder);
    dlock_close(c);
    free(name);
}
END_TEST

/* dlock_cancel ends a wait (PQcancel), also one cancelled the moment it
 * starts; the session stays usable and holds nothing. */
START_TEST(test_cancel)
{
    char *name = dlt_unique_name("pg-cancel");
    dlock_client *holder = open_client(pg_url), *c = open_client(pg_url);
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 60000, 0, &held), DLOCK_OK);
    int64_t worst = 0;
    for (int round = 0; round < 12; round++) {
        waiter w = {c, name, DLOCK_WAIT_FOREVER, 99, 0, NULL};
        pthread_t t;
        ck_assert(pthread_create(&t, NULL, waiter_main, &w) == 0);
        /* Round 0..3: at once (the cancel may beat the statement to the
         * server); then later, when the wait surely runs. */
        if (round >= 4)
            dlt_sleep_ms(round * 25);
        int64_t deadline = dlt_now_ms() + 3000;
        while (w.rc == 99 && dlt_now_ms() < deadline) {
            ck_assert_int_eq(dlock_cancel(c), DLOCK_OK);
            dlt_sleep_ms(5);
            /* Only one cancel per round once the wait has surely begun. */
            if (round >= 4)
                break;
        }
        int64_t cancel_at = dlt_now_ms();
        pthread_join(t, NULL);
        int64_t late = dlt_now_ms() - cancel_at;
        if (late > worst)
            worst = late;
        ck_assert_msg(w.rc == DLOCK_ECANCELED, "round %d: %d %s", round, w.rc, dlock_last_error());
        ck_assert_ptr_null(w.lock);
    }
    fprintf(stderr, "cancel: slowest wait ended %lld ms after dlock_cancel\n", (long long)worst);
    ck_assert_int_lt(worst, 1500);
    /* Nothing leaked: once released, anyone can take it, and so can c. */
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    ck_assert_int_eq(held_elsewhere(name), 0);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 1000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(holder);
    dlock_close(c);
    free(name);
}
END_TEST

/* The lock_timeout race: the holder lets go just as the wait runs out.  The
 * answer may be OK or EBUSY, but it must be true: OK means our session holds
 * the lock, EBUSY means it does not (a lock granted in the last instant and
 * reported busy would be held by nobody's knowledge, forever). */
START_TEST(test_lock_timeout_race)
{
    char *name = dlt_unique_name("pg-race");
    PGconn *holder = raw_connect("race-holder");
    PGconn *observer = raw_connect("race-observer");
    dlock_client *c = open_client(pg_url);
    int ok = 0, busy = 0;
    for (int round = 0; round < 30; round++) {
        ck_assert(raw_bool(holder, "SELECT pg_try_advisory_lock(" DOC_KEY_SQL ")", name));
        /* The holder's unlock lands around the end of the 200 ms wait. */
        char delay[32];
        snprintf(delay, sizeof delay, "%.3f", 0.185 + 0.001 * (round % 30));
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT pg_sleep(%s), pg_advisory_unlock(" DOC_KEY_SQL ")", delay);
        const char *values[1] = {name};
        ck_assert(PQsendQueryParams(holder, sql, 1, NULL, values, NULL, NULL, 0));
        dlock_lock *l = NULL;
        int rc = dlock_acquire(c, name, 10000, 200, &l);
        PGresult *res;
        while ((res = PQgetResult(holder)))
            PQclear(res);
        int pid = backend_pid_of_holder(observer, name);
        if (rc == DLOCK_OK) {
            ok++;
            ck_assert_msg(pid != 0 && pid != PQbackendPID(holder), "round %d: OK but not held", round);
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        } else {
            ck_assert_msg(rc == DLOCK_EBUSY, "round %d: %d %s", round, rc, dlock_last_error());
            busy++;
            ck_assert_msg(pid == 0, "round %d: EBUSY, yet the lock is held by backend %d", round, pid);
        }
    }
    fprintf(stderr, "lock_timeout race: %d granted, %d busy, none inconsistent\n", ok, busy);
    dlock_close(c);
    PQfinish(holder);
    PQfinish(observer);
    free(name);
}
END_TEST

/* Two clients waiting for each other: the server's deadlock detector ends
 * one wait, which is reported busy; the other is granted. */
START_TEST(test_deadlock)
{
    char *x = dlt_unique_name("pg-dead-x"), *y = dlt_unique_name("pg-dead-y");
    dlock_client *c1 = open_client(pg_url), *c2 = open_client(pg_url);
    dlock_lock *x1 = NULL, *y2 = NULL;
    ck_assert_int_eq(dlock_acquire(c1, x, 10000, 0, &x1), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c2, y, 10000, 0, &y2), DLOCK_OK);
    waiter w1 = {c1, y, 8000, 99, 0, NULL}, w2 = {c2, x, 8000, 99, 0, NULL};
    pthread_t t1, t2;
    ck_assert(pthread_create(&t1, NULL, waiter_main, &w1) == 0);
    dlt_sleep_ms(100);
    ck_assert(pthread_create(&t2, NULL, waiter_main, &w2) == 0);
    /* The loser gives up its lock so that the winner gets the other. */
    int64_t start = dlt_now_ms();
    while (w1.rc == 99 && w2.rc == 99 && dlt_now_ms() - start < 6000)
        dlt_sleep_ms(10);
    ck_assert_msg(w1.rc == DLOCK_EBUSY || w2.rc == DLOCK_EBUSY, "no wait ended: %d %d", w1.rc, w2.rc);
    if (w1.rc == DLOCK_EBUSY)
        ck_assert_int_eq(dlock_release(x1), DLOCK_OK);
    else
        ck_assert_int_eq(dlock_release(y2), DLOCK_OK);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ck_assert((w1.rc == DLOCK_EBUSY && w2.rc == DLOCK_OK) || (w2.rc == DLOCK_EBUSY && w1.rc == DLOCK_OK));
    /* What is still held: the winner's new lock and the lock it kept. */
    if (w1.rc == DLOCK_OK) {
        ck_assert_int_eq(dlock_release(w1.lock), DLOCK_OK);
        ck_assert_int_eq(dlock_release(x1), DLOCK_OK);
    } else {
        ck_assert_int_eq(dlock_release(w2.lock), DLOCK_OK);
        ck_assert_int_eq(dlock_release(y2), DLOCK_OK);
    }
    dlock_close(c1);
    dlock_close(c2);
    free(x);
    free(y);
}
END_TEST

void dlt_pg_add_wait(Suite *s)
{
    TCase *tc = tcase(s, "wait", 60);
    tcase_add_test(tc, test_wait_granted_on_release);
    tcase_add_test(tc, test_wait_times_out);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_lock_timeout_race);
    tcase_add_test(tc, test_deadlock);
}
