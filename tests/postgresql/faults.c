/*
 * PostgreSQL suite, tcase "faults": pg_terminate_backend, kill -9, SIGSTOP, a silent network and a
 * server restart while a lock is held.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- faults -------------------------------------------------------------------------------- */

/* pg_terminate_backend of the holder's session: its next extend is ELOST. */
START_TEST(test_terminate_backend_extend)
{
    char *name = dlt_unique_name("pg-term");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, pg_url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
    int pid = wait_for_holder_pid(pg, name, 2000);
    ck_assert(pid > 0);
    terminate_backend(pg, pid);
    /* Freed at once for everybody else. */
    int64_t took = dlt_acquire_within(pg_url, name, 5000, 1000);
    fprintf(stderr, "pg_terminate_backend: another client acquired after %lld ms\n", (long long)took);
    ck_assert_int_ge(took, 0);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 30000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_ELOST);
    dlt_child_stop(&holder, 0);
    PQfinish(pg);
    free(name);
}
END_TEST

/* pg_terminate_backend under dlock run: the job gets SIGTERM, dlock exits 79. */
START_TEST(test_terminate_backend_dlock_run)
{
    const char *bin = dlock_bin();
    if (!bin) {
        fprintf(stderr, "no dlock binary ($DLOCK_BIN): skipping the dlock run part\n");
        return;
    }
    char *name = dlt_unique_name("pg-run");
    char *dir = dlt_tmpdir();
    char started[4200], termed[4200], script[9000];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(termed, sizeof termed, "%s/termed", dir);
    snprintf(script, sizeof script,
             "trap 'echo TERM > \"%s\"; exit 7' TERM; echo up > \"%s\"; while :; do sleep 0.05; done", termed, started);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        execl(bin, bin, "run", "-q", "-u", pg_url, "-t", "3s", "-k", "5s", name, "--", "/bin/sh", "-c", script,
              (char *)NULL);
        _exit(127);
    }
    int64_t deadline = dlt_now_ms() + 5000;
    while (access(started, F_OK) != 0 && dlt_now_ms() < deadline)
        dlt_sleep_ms(10);
    ck_assert_msg(access(started, F_OK) == 0, "the job did not start");
    PGconn *pg = raw_connect("dlock-test-admin");
    int backend = wait_for_holder_pid(pg, name, 2000);
    ck_assert(backend > 0);
    int64_t killed_at = dlt_now_ms();
    terminate_backend(pg, backend);
    deadline = dlt_now_ms() + 6000;
    while (access(termed, F_OK) != 0 && dlt_now_ms() < deadline)
        dlt_sleep_ms(10);
    int64_t term_after = dlt_now_ms() - killed_at;
    ck_assert_msg(access(termed, F_OK) == 0, "the job got no SIGTERM");
    int status = 0;
    ck_assert(waitpid(pid, &status, 0) == pid);
    fprintf(stderr, "dlock run: job got SIGTERM %lld ms after pg_terminate_backend (TTL 3 s), exit %d\n",
            (long long)term_after, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 79);
    ck_assert_int_le(term_after, 3000);
    PQfinish(pg);
    free(dir);
    free(name);
}
END_TEST

/* kill -9 of the holder: the server sees the socket close and frees the
 * lock; another process acquires within 1 s. */
START_TEST(test_kill9)
{
    char *name = dlt_unique_name("pg-kill9");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, pg_url, name, 60000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
    ck_assert_int_eq(held_elsewhere(name), 1);
    dlt_child_stop(&holder, SIGKILL);
    int64_t took = dlt_acquire_within(pg_url, name, 5000, 1000);
    fprintf(stderr, "kill -9: another process acquired after %lld ms (TTL 60 s)\n", (long long)took);
    ck_assert_int_ge(took, 0);
    ck_assert_int_lt(took, 1000);
    free(name);
}
END_TEST

/* SIGSTOP past the TTL: idle_session_timeout ends the session; another
 * process acquires within TTL + 1 s; after SIGCONT the holder learns ELOST. */
START_TEST(test_sigstop)
{
    enum { TTL = 2000 };
    char *name = dlt_unique_name("pg-stop");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, pg_url, name, TTL, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
    int64_t acquired_at = dlt_now_ms();
    kill(holder.pid, SIGSTOP);
    ck_assert_int_eq(held_elsewhere(name), 1);
    int64_t took = dlt_acquire_within(pg_url, name, 5000, TTL + 2000);
    int64_t since_acquire = dlt_now_ms() - acquired_at;
    fprintf(stderr, "SIGSTOP: another process acquired %lld ms after the holder's acquire (TTL %d ms)\n",
            (long long)since_acquire, TTL);
    ck_assert_int_ge(took, 0);
    ck_assert_int_le(since_acquire, TTL + 1000);
    ck_assert_int_ge(since_acquire, TTL - 100);
    kill(holder.pid, SIGCONT);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 2000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_ELOST);
    dlt_child_stop(&holder, 0);
    free(name);
}
END_TEST

/* A holder whose network goes silent (a stalled proxy: no FIN, no RST)
 * loses the lock within its TTL; when the path comes back cut, it learns
 * ELOST, and its next acquire works through a new connection. */
START_TEST(test_silent_network)
{
    enum { TTL = 2000 };
    char *url = NULL;
    proxy *px = proxy_start(&url);
    char *name = dlt_unique_name("pg-net");
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, TTL, 0, &l), DLOCK_OK);
    int64_t acquired_at = dlt_now_ms();
    atomic_store(&px->stalled, 1);
    int64_t took = dlt_acquire_within(pg_url, name, 5000, TTL + 2000);
    int64_t since_acquire = dlt_now_ms() - acquired_at;
    fprintf(stderr, "silent network: another client acquired %lld ms after the holder's acquire (TTL %d ms)\n",
            (long long)since_acquire, TTL);
    ck_assert_int_ge(took, 0);
    ck_assert_int_le(since_acquire, TTL + 1000);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    atomic_store(&px->cut, 1);
    atomic_store(&px->stalled, 0);
    dlt_sleep_ms(100);
    ck_assert_int_eq(dlock_extend(l, TTL), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(c, name, TTL, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    proxy_stop(px);
    free(url);
    free(name);
}
END_TEST

/* PostgreSQL restarted while a lock is held: ELOST, then new acquires
 * work.  A private server, so that the restart cannot disturb the other
 * suites running against the shared one. */
START_TEST(test_server_restart)
{
    const char *script = pg_server_script();
    ck_assert_msg(script != NULL, "tests/pg-server.sh not found ($top_srcdir)");
    char *dir = dlt_tmpdir();
    chmod(dir, 0755); /* the server runs as the postgres user when we are root */
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "sh '%s' start '%s/pg' >/dev/null", script, dir);
    ck_assert_msg(dlt_system(cmd) == 0, "cannot start a private server");
    char env_path[4200], line[1024], url[1024] = "";
    snprintf(env_path, sizeof env_path, "%s/pg/env", dir);
    FILE *f = fopen(env_path, "r");
    ck_assert(f != NULL);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "export DLOCK_TEST_PG_URL='%1000[^']'", url) == 1)
            break;
    fclose(f);
    ck_assert(url[0] != '\0');

    char *name = dlt_unique_name("pg-restart");
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    int64_t start = dlt_now_ms();
    snprintf(cmd, sizeof cmd, "sh '%s' restart '%s/pg' >/dev/null", script, dir);
    int restarted = dlt_system(cmd);
    fprintf(stderr, "server restart took %lld ms\n", (long long)(dlt_now_ms() - start));
    if (restarted == 0) {
        ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
        ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
        ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
        ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    dlock_close(c);
    snprintf(cmd, sizeof cmd, "sh '%s' stop '%s/pg'; rm -rf '%s'", script, dir, dir);
    dlt_system(cmd);
    ck_assert_msg(restarted == 0, "the restart failed");
    free(name);
    free(dir);
}
END_TEST

void dlt_pg_add_faults(Suite *s)
{
    TCase *tc = tcase(s, "faults", 60);
    tcase_add_test(tc, test_terminate_backend_extend);
    tcase_add_test(tc, test_terminate_backend_dlock_run);
    tcase_add_test(tc, test_kill9);
    tcase_add_test(tc, test_sigstop);
    tcase_add_test(tc, test_silent_network);
    tcase_add_test(tc, test_server_restart);
}
