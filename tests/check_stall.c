/*
 * dlock(1) against a store that stops answering (issue 10): the server
 * process that serves dlock's session is stopped with SIGSTOP, so the
 * kernel still ACKs and no keepalive ever fires.  dlock must still stop the
 * job when the lease runs out, exit 79 within TTL plus the grace period,
 * and obey SIGTERM at any time.
 *
 * PostgreSQL: the backend process of dlock's own session is stopped.
 * MySQL/MariaDB and Redis: the whole server is stopped (one process).
 * Every stopped process gets SIGCONT again, also when a test fails.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "stores/store.h"

static const char *url;     /* the store under test */
static const char *backend; /* its backend name */
static const char *dlock_bin;
static char *dir;
static char *name;
static pid_t stopped = -1; /* a server process we stopped */

static void setup(void)
{
    dir = dlt_tmpdir();
    name = dlt_unique_name("stall");
    dlock_bin = getenv("DLOCK_BIN");
    if (!dlock_bin)
        dlock_bin = "./dlock";
}

static void teardown(void)
{
    if (stopped > 0)
        kill(stopped, SIGCONT);
    stopped = -1;
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
    free(name);
}

static void stop_process(pid_t pid)
{
    stopped = pid;
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
}

static void resume(void)
{
    if (stopped > 0)
        kill(stopped, SIGCONT);
    stopped = -1;
}

/* Start `dlock run` with the given options and job; returns its pid. */
static pid_t dlock_run(const char *ttl, const char *wait, const char *job)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl(dlock_bin, "dlock", "run", "-q", "-u", url, "-t", ttl, "-w", wait, "-k", "1s", name, "--", "sh", "-c",
              job, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Wait up to timeout_ms for pid to exit: its exit status (128+N for a
 * signal), or -1 when it did not exit in time. */
static int exit_within(pid_t pid, int64_t timeout_ms, int64_t *took_ms)
{
    int64_t start = dlt_now_ms();
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            *took_ms = dlt_now_ms() - start;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (dlt_now_ms() - start > timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            *took_ms = dlt_now_ms() - start;
            return -1;
        }
        dlt_sleep_ms(20);
    }
}

/* The server process to stop so that dlock's (process dlock_pid) store
 * stops answering (the store's adapter knows which: tests/stores/). */
static pid_t server_process_of(pid_t dlock_pid)
{
    const struct dlt_store *store = dlt_store_of(url);
    long pid = -1;
    for (int i = 0; i < 50 && pid <= 0; i++) {
        pid = dlt_server_pid(store, url, dlock_pid);
        if (pid <= 0)
            dlt_sleep_ms(100);
    }
    ck_assert_msg(pid > 0, "cannot find the %s server process serving dlock", backend);
    return (pid_t)pid;
}

/* The store stops answering while the job runs: the job is stopped when the
 * lease runs out, and dlock exits 79 within TTL + grace (+ slack), although
 * its heartbeat never gets an answer. */
START_TEST(stalled_store_stops_the_job_and_dlock_exits)
{
    char job[4300], started[4200];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(job, sizeof job, "touch '%s'; exec sleep 60", started);
    pid_t run = dlock_run("3s", "0", job);
    ck_assert_msg(dlt_wait_for_file(started, 10000), "the job did not start");
    pid_t server = server_process_of(run);
    int64_t stalled_at = dlt_now_ms();
    stop_process(server);
    int64_t took = 0;
    /* TTL 3 s + grace 1 s + dlock's 1.5 s to let go, and generous slack. */
    int status = exit_within(run, 12000, &took);
    resume();
    ck_assert_msg(status == 79, "dlock exited %d after %lld ms (-1: still running after 12 s)", status,
                  (long long)(dlt_now_ms() - stalled_at));
    ck_assert_msg(took <= 8000, "dlock needed %lld ms with a 3 s TTL", (long long)took);
}
END_TEST

/* The store stops answering while dlock waits for a busy lock: SIGTERM
 * still ends dlock promptly (128 + 15), and no job runs. */
START_TEST(stalled_store_sigterm_while_waiting)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 60000, 0, &held), DLOCK_OK);
    char job[4300], started[4200];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(job, sizeof job, "touch '%s'", started);
    pid_t run = dlock_run("3s", "forever", job);
    dlt_sleep_ms(700); /* dlock is waiting by now */
    pid_t server = server_process_of(run);
    stop_process(server);
    dlt_sleep_ms(300);
    ck_assert_int_eq(kill(run, SIGTERM), 0);
    int64_t took = 0;
    int status = exit_within(run, 10000, &took);
    resume();
    ck_assert_msg(status == 128 + SIGTERM, "dlock exited %d after %lld ms", status, (long long)took);
    ck_assert_msg(took <= 4000, "SIGTERM took %lld ms to end dlock", (long long)took);
    ck_assert_msg(access(started, F_OK) != 0, "the job ran although dlock was stopped while waiting");
    dlock_release(held);
    dlock_close(c);
}
END_TEST

static void wait_in_place(void)
{
    dlt_sleep_ms(700);
}

static void stop_own_server(void)
{
    stop_process(server_process_of(getpid()));
}

/* The store stops answering while this process waits without bound for a
 * lock another process holds: dlock_cancel() still ends the wait promptly
 * (the contract: "a wait without bound can be cancelled, also then"). */
START_TEST(stalled_store_cancel_ends_the_wait)
{
    dlt_cancel_on_stalled_store(url, name, wait_in_place, stop_own_server, resume);
}
END_TEST

/* The store stops answering before an acquire without bound begins: the
 * cancel comes during the round trips before the wait, and still ends the
 * acquire promptly with DLOCK_ECANCELED. */
START_TEST(stalled_store_cancel_before_the_wait)
{
    dlt_cancel_before_stalled_wait(url, name, stop_own_server, resume);
}
END_TEST

static Suite *stall_suite(void)
{
    Suite *s = suite_create(backend);
    TCase *t = tcase_create("stalled store");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, stalled_store_stops_the_job_and_dlock_exits);
    tcase_add_test(t, stalled_store_sigterm_while_waiting);
    tcase_add_test(t, stalled_store_cancel_ends_the_wait);
    tcase_add_test(t, stalled_store_cancel_before_the_wait);
    suite_add_tcase(s, t);
    return s;
}

static int run_for(const struct dlt_store *store)
{
    url = dlt_require_url(store->url_env, store->backend);
    backend = store->backend;
    return dlt_run_suite(stall_suite());
}

int main(void)
{
    /* Each server store this build has must be configured (or the run skips). */
    int failed = 0;
    for (const struct dlt_store *const *store = dlt_stores(); *store; store++)
        if ((*store)->url_env && ((*store)->server_pid || (*store)->pid_file))
            failed += run_for(*store);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
