/*
 * Redis suite, tcase "faults": a holder killed or stopped, its connection killed, the server restarted
 * or stopped, the script cache flushed.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- faults ------------------------------------------------------------------------------ */

/* A holder killed with -9 keeps its lock until its TTL, not after. */
START_TEST(killed_holder_free_after_ttl)
{
    dlt_child h;
    ck_assert_int_eq(dlt_child_start(&h, url, name, 1500, 0), 0);
    ck_assert_int_eq(dlt_child_read(&h, 10000), DLOCK_OK);
    int64_t taken = dlt_now_ms();
    dlt_child_stop(&h, SIGKILL);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 5000, &l), DLOCK_OK);
    int64_t free_at = dlt_now_ms() - taken;
    ck_assert_int_ge(free_at, 1300);
    ck_assert_int_le(free_at, 1500 + 600);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A stopped holder loses the lock at its TTL and learns it when it wakes. */
START_TEST(stopped_holder_gets_lost)
{
    dlt_child h;
    ck_assert_int_eq(dlt_child_start(&h, url, name, 1000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&h, 10000), DLOCK_OK);
    kill(h.pid, SIGSTOP);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 4000, &l), DLOCK_OK);
    kill(h.pid, SIGCONT);
    ck_assert_int_eq(dlt_child_cmd(&h, "extend 1000", 10000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&h, "release", 10000), DLOCK_ELOST);
    dlt_child_stop(&h, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* CLIENT KILL of every connection: the key holds the lock; the holder
 * connects again and extends. */
START_TEST(client_kill_keeps_lock)
{
    dlt_child h;
    ck_assert_int_eq(dlt_child_start(&h, url, name, 8000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&h, 10000), DLOCK_OK);
    char *killed = raw_cmd("CLIENT KILL TYPE %s SKIPME yes", "normal");
    ck_assert_int_ge(atoi(killed), 1);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlt_child_cmd(&h, "extend 8000", 10000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_cmd(&h, "release", 10000), DLOCK_OK);
    dlt_child_stop(&h, 0);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(killed);
}
END_TEST

/* SCRIPT FLUSH: the scripts are loaded again, nothing fails. */
START_TEST(script_flush_reloads)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    free(raw_cmd("SCRIPT FLUSH", NULL));
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    free(raw_cmd("SCRIPT FLUSH", NULL));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(raw_cmd("SCRIPT FLUSH", NULL));
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

static pid_t server_pid(void)
{
    const char *dir = getenv("DLOCK_TEST_REDIS_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/redis.pid", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long pid = 0;
    ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    return (pid_t)pid;
}

/* A server restarted without persistence forgot the key: the holder gets
 * DLOCK_ELOST at its next extend, and the lock can be taken again. */
START_TEST(server_restart_loses_lock)
{
    if (!have_dir())
        return;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 20000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(server_script("restart"), 0);
    ck_assert_int_eq(dlock_extend(l, 20000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A stopped server: every call returns by its deadline (the extend by the
 * end of the lease), and the client works again once the server does. */
START_TEST(stopped_server_calls_return)
{
    if (!have_dir())
        return;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 1500, 0, &l), DLOCK_OK);
    pid_t pid = server_pid();
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    int64_t t0 = dlt_now_ms();
    int rc = dlock_extend(l, 1500);
    int64_t took = dlt_now_ms() - t0;
    kill(pid, SIGCONT);
    ck_assert_msg(rc == DLOCK_ELOST || rc == DLOCK_ECONN, "extend: %d", rc);
    ck_assert_int_le(took, 1500 + 300);
    dlock_release(l);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 5000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A wait whose store stops answering can still be cancelled: the waiter
 * looks again every 250 ms, and a look sent to a stopped server used to
 * hold the cancel until the round trip's own deadline (10 s). */
START_TEST(cancel_reaches_wait_on_stopped_server)
{
    if (!have_dir())
        return;
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &held), DLOCK_OK);
    dlt_waiter w = {NULL, name, DLOCK_WAIT_FOREVER, 99, 0};
    ck_assert_int_eq(dlock_open(url, &w.client), DLOCK_OK);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, dlt_waiter_main, &w), 0);
    dlt_sleep_ms(300); /* subscribed, napping */
    pid_t pid = server_pid();
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    dlt_sleep_ms(700); /* its next look is now unanswered */
    int64_t canceled = dlt_now_ms();
    int crc = dlock_cancel(w.client);
    /* Let the server go after at most 4 s, whatever the waiter does. */
    for (int i = 0; i < 80 && w.done_ms == 0; i++)
        dlt_sleep_ms(50);
    kill(pid, SIGCONT);
    pthread_join(t, NULL);
    int64_t took = w.done_ms - canceled;
    fprintf(stderr, "cancel with a stopped server: %d after %lld ms\n", w.rc, (long long)took);
    ck_assert_int_eq(crc, DLOCK_OK);
    ck_assert_int_eq(w.rc, DLOCK_ECANCELED);
    ck_assert_int_lt(took, 1500);
    /* The waiter's client works again, and the abandoned look took nothing. */
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(w.client, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(w.client, name, 5000, 2000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(w.client);
}
END_TEST

void dlt_redis_add_faults(Suite *s)
{
    TCase *t = tcase_create("faults");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 40);
    tcase_add_test(t, killed_holder_free_after_ttl);
    tcase_add_test(t, stopped_holder_gets_lost);
    tcase_add_test(t, client_kill_keeps_lock);
    tcase_add_test(t, script_flush_reloads);
    tcase_add_test(t, server_restart_loses_lock);
    tcase_add_test(t, stopped_server_calls_return);
    tcase_add_test(t, cancel_reaches_wait_on_stopped_server);
    suite_add_tcase(s, t);
}
