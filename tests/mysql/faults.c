/*
 * MySQL suite, tcase "faults": KILL, kill -9, SIGSTOP and a server restart while a lock is held.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(kill_of_the_holders_connection_is_elost)
{
    dlock_client *c = open_client();
    char *name = unique("kill");
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    long long id = holder_id(name);
    ck_assert_int_gt(id, 0);
    kill_connection(id, 0);
    int64_t killed_at = dlt_now_ms();
    /* The lock is free for others at once... */
    int64_t took = dlt_acquire_within(url, name, 5000, 1000);
    ck_assert_int_ge(took, 0);
    /* ...and the holder learns it at its next extend, never re-taking it. */
    ck_assert_int_eq(dlock_extend(l, 10000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_extend(l, 10000), DLOCK_ELOST);
    fprintf(stderr,
            "FIGURE: KILL of the holder's connection -> free for others %lld ms, "
            "ELOST at the next extend after %lld ms\n",
            (long long)took, (long long)(dlt_now_ms() - killed_at));
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    /* The next acquire reconnects: a new session that really holds it. */
    ck_assert_msg(dlock_acquire(c, name, 10000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert(busy_for_others(name));
    ck_assert_int_ne(holder_id(name), id);
    ck_assert_int_eq(dlock_extend(l, 10000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    free(name);
}
END_TEST

/* Two locks on one session: a KILL loses both; neither comes back. */
START_TEST(kill_loses_every_lock_of_the_session)
{
    dlock_client *c = open_client();
    char *a = unique("ka"), *b = unique("kb");
    dlock_lock *la = NULL, *lb = NULL;
    ck_assert_int_eq(dlock_acquire(c, a, 10000, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, b, 10000, 0, &lb), DLOCK_OK);
    kill_connection(holder_id(a), 0);
    dlt_sleep_ms(100);
    /* A new acquire of a third name reconnects... */
    char *third = unique("kc");
    dlock_lock *lc = NULL;
    ck_assert_msg(dlock_acquire(c, third, 10000, 0, &lc) == DLOCK_OK, "%s", dlock_last_error());
    /* ...but the old locks stay lost and free for others. */
    ck_assert_int_eq(dlock_extend(la, 10000), DLOCK_ELOST);
    ck_assert(!busy_for_others(a));
    ck_assert(!busy_for_others(b));
    ck_assert_int_eq(dlock_release(lb), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(la), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(lc), DLOCK_OK);
    dlock_close(c);
    free(a);
    free(b);
    free(third);
}
END_TEST

/* `dlock run`: KILL of its connection -> the job gets SIGTERM, dlock exits 79. */
START_TEST(kill_under_dlock_run_terminates_the_job)
{
    const char *bin = getenv("DLOCK_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        fprintf(stderr, "DLOCK_BIN not set: skipping the dlock run test\n");
        return;
    }
    char *dir = dlt_tmpdir();
    char *name = unique("run");
    char marker[4200], script[4400];
    snprintf(marker, sizeof marker, "%s/terminated", dir);
    snprintf(script, sizeof script, "trap 'echo TERM > \"%s\"; exit 7' TERM; while :; do sleep 0.05; done", marker);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("DLOCK_URL", url, 1);
        execl(bin, bin, "run", "-t", "3s", "-k", "5s", name, "--", "/bin/sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    long long id = -1;
    for (int i = 0; i < 100 && id < 0; i++) {
        dlt_sleep_ms(50);
        id = holder_id(name);
    }
    if (id <= 0) { /* never leave dlock and its endless job behind */
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        ck_abort_msg("dlock run never took the lock");
    }
    dlt_sleep_ms(200); /* the job is running */
    kill_connection(id, 0);
    int64_t killed_at = dlt_now_ms();
    int status = 0;
    int64_t deadline = killed_at + 8000;
    pid_t done = 0;
    while (done == 0 && dlt_now_ms() < deadline) {
        done = waitpid(pid, &status, WNOHANG);
        if (done == 0)
            dlt_sleep_ms(20);
    }
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        ck_abort_msg("dlock run did not end within 8 s of the KILL");
    }
    int64_t took = dlt_now_ms() - killed_at;
    fprintf(stderr,
            "FIGURE: KILL under dlock run -t 3s -> job terminated, dlock exited after "
            "%lld ms\n",
            (long long)took);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 79);
    ck_assert_msg(access(marker, F_OK) == 0, "the job did not get SIGTERM");
    ck_assert_int_lt(took, 3000 + 2000); /* within TTL (+ grace for the heartbeat) */
    free(name);
    free(dir);
}
END_TEST

START_TEST(kill9_of_the_holder_frees_at_once)
{
    char *name = unique("k9");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    ck_assert(busy_for_others(name));
    int64_t start = dlt_now_ms();
    dlt_child_stop(&holder, SIGKILL);
    int64_t took = dlt_acquire_within(url, name, 5000, 1000);
    fprintf(stderr,
            "FIGURE: kill -9 of the holder (TTL 30 s) -> another client acquired after "
            "%lld ms\n",
            (long long)(took >= 0 ? dlt_now_ms() - start : -1));
    ck_assert_int_ge(took, 0);
    ck_assert_int_le(took, 1000);
    free(name);
}
END_TEST

START_TEST(sigstop_past_the_ttl_loses_the_lock)
{
    char *name = unique("stop");
    dlt_child holder;
    const uint32_t ttl_ms = 2000;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl_ms, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    kill(holder.pid, SIGSTOP);
    int64_t start = dlt_now_ms();
    /* Nobody gets it while the lease runs... */
    int busy_while_stopped = busy_for_others(name);
    /* ...then another client does, within TTL + 2 s. */
    int64_t took = dlt_acquire_within(url, name, 5000, ttl_ms + 2000);
    int64_t since_stop = dlt_now_ms() - start;
    kill(holder.pid, SIGCONT); /* before any check: a stopped child would stay forever */
    fprintf(stderr,
            "FIGURE: SIGSTOP of the holder (TTL %u ms) -> another client acquired %lld ms "
            "after the stop\n",
            ttl_ms, (long long)since_stop);
    ck_assert(busy_while_stopped);
    ck_assert_int_ge(took, 0);
    ck_assert_int_le(since_stop, ttl_ms + 2000);
    ck_assert_int_ge(since_stop, ttl_ms - 1000);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 2000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_ELOST);
    dlt_child_stop(&holder, 0);
    free(name);
}
END_TEST

/* The holder is silent but its client believes it holds the lock: the
 * server, not the client, must be the one that ends it. */
START_TEST(silent_holder_in_process_loses_the_lock)
{
    dlock_client *c = open_client();
    char *name = unique("silent");
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 1200, 0, &l), DLOCK_OK);
    int64_t start = dlt_now_ms();
    int64_t took = dlt_acquire_within(url, name, 5000, 1200 + 2000);
    ck_assert_int_ge(took, 0);
    fprintf(stderr,
            "FIGURE: silent holder with TTL 1200 ms (wait_timeout 2 s) -> free for "
            "others after %lld ms\n",
            (long long)(dlt_now_ms() - start));
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    dlock_close(c);
    free(name);
}
END_TEST

/* What the restart test saw; no assertion until the private server is
 * stopped: a failing check ends this process, and the server must not
 * outlive it. */
struct restart_run {
    dlock_client *c, *other, *fc, *lc;
    dlock_lock *l, *ll;
    int rc_tls, rc_open, rc_first, rc_restart, rc_lost_extend, rc_lost_release;
    int rc, rc_busy, rc_extend, rc_lease_extend, rc_lease_release;
    uint64_t fence_before, fence_after, lease_fence, lease_fence_after;
    char tls_error[512], error[512];
};

/* A private server of this test's own: private_dir and private_url set. */
static void restart_server_start(char *env_file, size_t len)
{
    char *dir = dlt_tmpdir();
    chmod(dir, 0755); /* the server runs as `mysql` when we are root */
    snprintf(private_dir, sizeof private_dir, "%s/server", dir);
    free(dir);
    int64_t t0 = dlt_now_ms();
    if (private_server("start") != 0) {
        private_server_remove();
        ck_abort_msg("could not start a private server (see %s.err)", private_dir);
    }
    fprintf(stderr, "FIGURE: private MariaDB started in %lld ms\n", (long long)(dlt_now_ms() - t0));
    snprintf(env_file, len, "%s/env", private_dir);
    read_env_value(env_file, "DLOCK_TEST_MYSQL_URL", private_url, sizeof private_url);
}

/* Before the restart: TLS refused, a session lock held, fencing=on tokens
 * taken and a lease (a row) held on the same server. */
static void restart_before(struct restart_run *r)
{
    if (private_url[0]) {
        /* TLS demanded from a server without it: refused, never silently clear. */
        r->rc_tls = dlock_open(url_with(private_url, "ssl-mode=REQUIRED"), &r->c);
        snprintf(r->tls_error, sizeof r->tls_error, "%s", dlock_last_error());
        dlock_close(r->c);
        r->c = NULL;
        r->rc_open = dlock_open(private_url, &r->c);
        snprintf(r->error, sizeof r->error, "%s", dlock_last_error());
    }
    if (r->rc_open == DLOCK_OK)
        r->rc_first = dlock_acquire(r->c, "restart-job", 30000, 0, &r->l);
    /* fencing=on and lease mode on the same server: tokens keep growing
     * across the restart, and a lease (a row) outlives it. */
    dlock_lock *fl = NULL;
    char fence_u[8192], lease_u[8192];
    snprintf(fence_u, sizeof fence_u, "%s", url_with(private_url, "fencing=on"));
    snprintf(lease_u, sizeof lease_u, "%s", url_with(private_url, "mode=lease"));
    if (r->rc_first == DLOCK_OK && dlock_open(fence_u, &r->fc) == DLOCK_OK && dlock_open(lease_u, &r->lc) == DLOCK_OK) {
        for (int i = 0; i < 3; i++)
            if (dlock_acquire(r->fc, "fence-job", 30000, 0, &fl) == DLOCK_OK) {
                (void)dlock_fence(fl, &r->fence_before);
                dlock_release(fl);
            }
        if (dlock_acquire(r->lc, "lease-job", 60000, 0, &r->ll) == DLOCK_OK)
            (void)dlock_fence(r->ll, &r->lease_fence);
    }
}

/* The restart, then: a greater token, the lease still ours, the session
 * lock lost, and a new acquire on the same client that works. */
static void restart_and_after(struct restart_run *r)
{
    dlock_lock *fl = NULL, *l2 = NULL;
    int64_t t0 = dlt_now_ms();
    r->rc_restart = private_server("restart");
    if (r->fc && dlock_acquire(r->fc, "fence-job", 30000, 0, &fl) == DLOCK_OK) {
        (void)dlock_fence(fl, &r->fence_after);
        dlock_release(fl);
    }
    if (r->ll) {
        r->rc_lease_extend = dlock_extend(r->ll, 60000);
        (void)dlock_fence(r->ll, &r->lease_fence_after);
        r->rc_lease_release = dlock_release(r->ll);
    }
    int64_t restart_ms = dlt_now_ms() - t0;
    r->rc_lost_extend = dlock_extend(r->l, 30000);
    r->rc_lost_release = dlock_release(r->l);
    t0 = dlt_now_ms();
    r->rc = dlock_acquire(r->c, "restart-job", 30000, 0, &r->l);
    int64_t reacquire_ms = dlt_now_ms() - t0;
    fprintf(stderr,
            "FIGURE: server restart took %lld ms; then ELOST, and a new acquire on "
            "the same client succeeded in %lld ms\n",
            (long long)restart_ms, (long long)reacquire_ms);
    int rc_other = dlock_open(private_url, &r->other);
    r->rc_busy = rc_other == DLOCK_OK ? dlock_acquire(r->other, "restart-job", 30000, 0, &l2) : rc_other;
    if (r->rc_busy == DLOCK_OK)
        dlock_release(l2);
    r->rc_extend = r->rc == DLOCK_OK ? dlock_extend(r->l, 30000) : r->rc;
    if (r->rc == DLOCK_OK)
        dlock_release(r->l);
}

START_TEST(server_restart_loses_the_lock_then_acquires_work)
{
    char env_file[4300];
    restart_server_start(env_file, sizeof env_file);
    struct restart_run r = {.rc_tls = DLOCK_EINVAL,
                            .rc_open = DLOCK_EINVAL,
                            .rc_first = DLOCK_EINVAL,
                            .rc_restart = -1,
                            .rc_lost_extend = DLOCK_EINVAL,
                            .rc_lost_release = DLOCK_EINVAL,
                            .rc = DLOCK_EINVAL,
                            .rc_busy = DLOCK_EINVAL,
                            .rc_extend = DLOCK_EINVAL,
                            .rc_lease_extend = DLOCK_EINVAL,
                            .rc_lease_release = DLOCK_EINVAL};
    restart_before(&r);
    if (r.rc_first == DLOCK_OK)
        restart_and_after(&r);
    dlock_close(r.other);
    dlock_close(r.c);
    dlock_close(r.fc);
    dlock_close(r.lc);
    private_server_remove();
    fprintf(stderr, "FIGURE: fencing=on token %llu before the restart, %llu after; lease fence %llu, extend %d\n",
            (unsigned long long)r.fence_before, (unsigned long long)r.fence_after, (unsigned long long)r.lease_fence,
            r.rc_lease_extend);
    ck_assert_uint_ge(r.fence_before, 3);
    ck_assert_uint_gt(r.fence_after, r.fence_before);
    ck_assert_uint_ge(r.lease_fence, 1);
    ck_assert_uint_eq(r.lease_fence_after, r.lease_fence);
    ck_assert_int_eq(r.rc_lease_extend, DLOCK_OK); /* the row outlived the restart */
    ck_assert_int_eq(r.rc_lease_release, DLOCK_OK);

    ck_assert_msg(private_url[0] != '\0', "no URL in %s", env_file);
    ck_assert_msg(r.rc_open == DLOCK_OK, "%s", r.error);
    ck_assert_int_eq(r.rc_first, DLOCK_OK);
    ck_assert_int_eq(r.rc_restart, 0);
    ck_assert_int_eq(r.rc_lost_extend, DLOCK_ELOST);
    ck_assert_int_eq(r.rc_lost_release, DLOCK_ELOST);
    ck_assert_int_eq(r.rc, DLOCK_OK);
    ck_assert_int_eq(r.rc_busy, DLOCK_EBUSY);
    ck_assert_int_eq(r.rc_extend, DLOCK_OK);
    ck_assert_int_eq(r.rc_tls, DLOCK_ECONN);
    ck_assert_msg(strstr(r.tls_error, "TLS") || strstr(r.tls_error, "SSL"), "%s", r.tls_error);
}
END_TEST

void dlt_mysql_add_faults(Suite *s)
{
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, integration_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, kill_of_the_holders_connection_is_elost);
    tcase_add_test(tc, kill_loses_every_lock_of_the_session);
    tcase_add_test(tc, kill_under_dlock_run_terminates_the_job);
    tcase_add_test(tc, kill9_of_the_holder_frees_at_once);
    tcase_add_test(tc, sigstop_past_the_ttl_loses_the_lock);
    tcase_add_test(tc, silent_holder_in_process_loses_the_lock);
    tcase_add_test(tc, server_restart_loses_the_lock_then_acquires_work);
    suite_add_tcase(s, tc);
}
