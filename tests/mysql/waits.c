/*
 * MySQL suite, tcase "stalls-and-waits": the lease after a wait, stale cancels, dropped sessions, KILL
 * QUERY at the grant, a stopped server.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"
#include "../stale_cancel.h"

/* ------------------------------------------------------------------------ */
/* Issue 10: the lease after a wait, stale cancels, dropped sessions,        */
/* KILL QUERY at the grant, a stopped server                                 */
/* ------------------------------------------------------------------------ */

struct waiter {
    dlock_client *client;
    const char *name;
    uint32_t ttl_ms;
    int32_t wait_ms;
    int rc;
    dlock_lock *lock;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    w->rc = dlock_acquire(w->client, w->name, w->ttl_ms, w->wait_ms, &w->lock);
    return NULL;
}

/* Another process holds the lock for 3 s with a TTL of 2 s (extending it);
 * a waiter with TTL 2 s granted after ~3 s gets its whole lease. */
START_TEST(wait_longer_than_the_ttl_yields_a_full_lease)
{
    char *name = unique("long-wait");
    dlt_child holder;
    pid_t keeper = dlt_hold_then_release(&holder, url, name, 2000, 3000);
    dlock_client *c = open_client();
    dlock_lock *l = NULL;
    int64_t start = dlt_now_ms();
    int rc = dlock_acquire(c, name, 2000, 10000, &l);
    int64_t waited = dlt_now_ms() - start;
    int64_t remaining = rc == DLOCK_OK ? dlock_remaining_ms(l) : -1;
    int status;
    waitpid(keeper, &status, 0);
    fprintf(stderr, "FIGURE: wait longer than the TTL: granted after %lld ms, remaining %lld ms of 2000\n",
            (long long)waited, (long long)remaining);
    ck_assert_msg(rc == DLOCK_OK, "%d %s", rc, dlock_last_error());
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_ge(waited, 2500);
    ck_assert_int_gt(remaining, 1500);
    ck_assert_int_eq(dlock_extend(l, 2000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&holder, 0);
    dlock_close(c);
    free(name);
}
END_TEST

/* dlock_cancel in a tight loop around the moment a wait is granted must
 * never reach the next wait (the case is tests/stale_cancel.c). */
START_TEST(a_late_cancel_never_reaches_the_next_wait)
{
    dlt_check_stale_cancel(url, "mysql-stale");
}
END_TEST

/* After KILL of our session, the next call on the client (dlock_holder)
 * reconnects: the old session's locks read 0 at once. */
START_TEST(a_dropped_session_marks_its_locks_lost)
{
    char *name = unique("dropped");
    dlock_client *c = open_client();
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    long long id = holder_id(name);
    ck_assert_int_gt(id, 0);
    kill_connection(id, 0);
    dlt_sleep_ms(200);
    ck_assert_int_eq(dlock_holder(c, name, NULL, 0), 0);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_ge(dlt_acquire_within(url, name, 5000, 1000), 0);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    dlock_close(c);
    free(name);
}
END_TEST

/* A KILL QUERY from outside lands around the grant: whatever the answer,
 * it is true (OK: our session holds the lock; an error: it does not). */
START_TEST(kill_query_at_the_grant_never_leaves_the_lock_held_unknowingly)
{
    char *name = unique("kq-race"), *probe = unique("kq-probe");
    MYSQL *raw = raw_open(url);
    dlock_client *c = open_client();
    dlock_lock *p = NULL;
    ck_assert_int_eq(dlock_acquire(c, probe, 60000, 0, &p), DLOCK_OK);
    long long id = holder_id(probe);
    ck_assert_int_gt(id, 0);
    MYSQL *admin = raw_open(root_url ? root_url : url);
    char kill_sql[64];
    snprintf(kill_sql, sizeof kill_sql, "KILL QUERY %lld", id);
    int ok = 0, refused = 0;
    for (int round = 0; round < 30; round++) {
        ck_assert_int_eq(raw_int(raw, "SELECT GET_LOCK(?, 0)", name), 1);
        struct waiter w = {c, name, 30000, 5000, 99, NULL};
        pthread_t t;
        ck_assert(pthread_create(&t, NULL, waiter_main, &w) == 0);
        dlt_sleep_ms(100);
        /* The release grants the wait; the KILL QUERY follows at once (or,
         * every third round, comes first). */
        if (round % 3 == 2)
            ck_assert_msg(mysql_query(admin, kill_sql) == 0, "%s", mysql_error(admin));
        ck_assert_int_eq(raw_int(raw, "SELECT RELEASE_LOCK(?)", name), 1);
        if (round % 3 != 2)
            ck_assert_msg(mysql_query(admin, kill_sql) == 0, "%s", mysql_error(admin));
        pthread_join(t, NULL);
        long long holder = holder_id(name);
        if (w.rc == DLOCK_OK) {
            ok++;
            ck_assert_msg(holder == id, "round %d: OK, but held by %lld", round, holder);
            ck_assert_int_eq(dlock_release(w.lock), DLOCK_OK);
        } else {
            refused++;
            ck_assert_msg(holder != id, "round %d: %d, yet our session holds the lock", round, w.rc);
        }
    }
    fprintf(stderr, "FIGURE: KILL QUERY at the grant: %d granted, %d not, none inconsistent\n", ok, refused);
    ck_assert_int_eq(dlock_release(p), DLOCK_OK);
    dlock_close(c);
    mysql_close(admin);
    mysql_close(raw);
    free(name);
    free(probe);
}
END_TEST

/* A stopped server (SIGSTOP of mariadbd: the kernel still ACKs): an extend
 * returns by the end of the lease, never OK, and a cancel ends a wait
 * within a short while.  A private server: stopping the shared one would
 * stall the other test programs. */
START_TEST(a_stopped_server_bounds_extend_and_cancel)
{
    char *dir = dlt_tmpdir();
    chmod(dir, 0755);
    snprintf(private_dir, sizeof private_dir, "%s/server", dir);
    free(dir);
    if (private_server("start") != 0) {
        private_server_remove();
        ck_abort_msg("could not start a private server (see %s.err)", private_dir);
    }
    char env_file[4300], pid_file[4300], pid_text[32] = "";
    snprintf(env_file, sizeof env_file, "%s/env", private_dir);
    read_env_value(env_file, "DLOCK_TEST_MYSQL_URL", private_url, sizeof private_url);
    snprintf(pid_file, sizeof pid_file, "%s/mysqld.pid", private_dir);
    FILE *f = fopen(pid_file, "r");
    if (f) {
        if (!fgets(pid_text, sizeof pid_text, f))
            pid_text[0] = '\0';
        fclose(f);
    }
    pid_t server = (pid_t)atoi(pid_text);
    /* No assertion until the server runs again and is stopped. */
    dlock_client *c = NULL, *h = NULL, *w = NULL, *ps = NULL, *pl = NULL;
    dlock_lock *l = NULL, *hl = NULL;
    char stopped_lease_url[4300];
    snprintf(stopped_lease_url, sizeof stopped_lease_url, "%s?mode=lease", private_url);
    int rc_open = private_url[0] && server > 0 ? dlock_open(private_url, &c) : DLOCK_EINVAL;
    int rc_acquire = rc_open == DLOCK_OK ? dlock_acquire(c, "stop-extend", 5000, 0, &l) : rc_open;
    int rc_hold = rc_acquire == DLOCK_OK && dlock_open(private_url, &h) == DLOCK_OK &&
                          dlock_open(private_url, &w) == DLOCK_OK && dlock_open(private_url, &ps) == DLOCK_OK &&
                          dlock_open(stopped_lease_url, &pl) == DLOCK_OK
                      ? dlock_acquire(h, "stop-wait", 30000, 0, &hl)
                      : DLOCK_ECONN;
    /* Clients whose acquire starts once the server is stopped: the cancel
     * comes while a round trip before the wait (the session's idle limit,
     * a lease-mode poll) hangs, or between it and the wait. */
    struct waiter early[2] = {{ps, "stop-early", 20000, DLOCK_WAIT_FOREVER, 99, NULL},
                              {pl, "stop-early", 20000, DLOCK_WAIT_FOREVER, 99, NULL}};
    int64_t took_early[2] = {-1, -1};
    int rc_extend = DLOCK_EINVAL;
    int64_t remaining = 0, took_extend = 0, took_cancel = 0;
    struct waiter wt = {w, "stop-wait", 30000, DLOCK_WAIT_FOREVER, 99, NULL};
    char why[512] = "";
    if (rc_hold == DLOCK_OK) {
        pthread_t t;
        pthread_create(&t, NULL, waiter_main, &wt);
        dlt_sleep_ms(300);
        fflush(NULL);
        pid_t guard = fork();
        if (guard == 0) {
            dlt_sleep_ms(30000);
            kill(server, SIGCONT);
            _exit(0);
        }
        kill(server, SIGSTOP);
        int64_t t0 = dlt_now_ms();
        dlock_cancel(w);
        pthread_join(t, NULL);
        took_cancel = dlt_now_ms() - t0;
        remaining = dlock_remaining_ms(l);
        t0 = dlt_now_ms();
        rc_extend = dlock_extend(l, 5000);
        took_extend = dlt_now_ms() - t0;
        snprintf(why, sizeof why, "%s", dlock_last_error());
        for (int i = 0; i < 2; i++) {
            pthread_t te;
            pthread_create(&te, NULL, waiter_main, &early[i]);
            dlt_sleep_ms(300);
            t0 = dlt_now_ms();
            dlock_cancel(early[i].client);
            pthread_join(te, NULL);
            took_early[i] = dlt_now_ms() - t0;
        }
        kill(server, SIGCONT);
        kill(guard, SIGKILL);
        waitpid(guard, NULL, 0);
        fprintf(stderr,
                "FIGURE: stopped server: cancel of a wait: %d after %lld ms; extend %d after %lld ms"
                " (lease had %lld ms, TTL 5000): %s\n",
                wt.rc, (long long)took_cancel, rc_extend, (long long)took_extend, (long long)remaining, why);
        fprintf(stderr, "FIGURE: stopped server: cancel before the wait: session mode %d after %lld ms, lease mode %d after %lld ms\n",
                early[0].rc, (long long)took_early[0], early[1].rc, (long long)took_early[1]);
    }
    if (l)
        dlock_release(l);
    if (wt.rc == DLOCK_OK)
        dlock_release(wt.lock);
    dlock_close(c);
    dlock_close(h);
    dlock_close(w);
    for (int i = 0; i < 2; i++) {
        if (early[i].rc == DLOCK_OK)
            dlock_release(early[i].lock);
        dlock_close(early[i].client);
    }
    private_server_remove();
    ck_assert_int_eq(rc_hold, DLOCK_OK);
    ck_assert_msg(rc_extend == DLOCK_ELOST || rc_extend == DLOCK_ECONN, "extend: %d %s", rc_extend, why);
    ck_assert_int_gt(remaining, 1000);
    ck_assert_int_le(took_extend, remaining + 1000);
    ck_assert_int_eq(wt.rc, DLOCK_ECANCELED);
    ck_assert_int_lt(took_cancel, 2500);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(early[i].rc == DLOCK_ECANCELED, "%s mode: a cancel before the wait gave %d",
                      i ? "lease" : "session", early[i].rc);
        ck_assert_int_lt(took_early[i], 2500);
    }
}
END_TEST

void dlt_mysql_add_waits(Suite *s)
{
    TCase *tc = tcase_create("stalls-and-waits");
    tcase_add_checked_fixture(tc, integration_setup, NULL);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, wait_longer_than_the_ttl_yields_a_full_lease);
    tcase_add_test(tc, a_late_cancel_never_reaches_the_next_wait);
    tcase_add_test(tc, a_dropped_session_marks_its_locks_lost);
    tcase_add_test(tc, kill_query_at_the_grant_never_leaves_the_lock_held_unknowingly);
    tcase_add_test(tc, a_stopped_server_bounds_extend_and_cancel);
    suite_add_tcase(s, tc);
}
