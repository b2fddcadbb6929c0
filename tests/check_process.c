/*
 * Multi-process tests of the SQLite default and of dlock(1): real processes,
 * real signals (kill -9, SIGSTOP/SIGCONT, SIGINT/SIGTERM/SIGHUP).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "stores/store.h"

static char *dir;      /* a fresh folder for each test */
static char url[4200]; /* an SQLite database in it */
static char *name;
static const char *dlock_bin;

static void setup(void)
{
    dir = dlt_tmpdir();
    chmod(dir, 0755);
    snprintf(url, sizeof url, "sqlite://%s/locks.db", dir);
    setenv("DLOCK_URL", url, 1);
    name = dlt_unique_name("proc");
    dlock_bin = getenv("DLOCK_BIN");
    if (!dlock_bin)
        dlock_bin = "./dlock";
}

static void teardown(void)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
    free(name);
}

/* Run a shell command line built with printf; returns its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return dlt_system(cmd);
}

/* Start a shell command line in the background; returns its pid. */
static pid_t sh_bg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static pid_t sh_bg(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Start dlock itself (no shell in between) so that signals reach it. */
static pid_t dlock_bg(char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execv(dlock_bin, argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int file_has(const char *path, const char *text)
{
    char buf[4096] = "";
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, text) != NULL;
}

/* Wait until `path` exists (the job has started); 1 when it did in time. */
static int wait_for_file(const char *path, int64_t timeout_ms)
{
    int64_t start = dlt_now_ms();
    while (access(path, F_OK) != 0) {
        if (dlt_now_ms() - start > timeout_ms)
            return 0;
        dlt_sleep_ms(10);
    }
    return 1;
}

static int lock_is_free(void)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    dlock_lock *l = NULL;
    int rc = dlock_acquire(c, name, 5000, 0, &l);
    if (rc == DLOCK_OK)
        dlock_release(l);
    dlock_close(c);
    ck_assert(rc == DLOCK_OK || rc == DLOCK_EBUSY);
    return rc == DLOCK_OK;
}

/* --- exclusion -------------------------------------------------------------------- */

/* Of N concurrent dlock runs of the same job, exactly one runs it. */
START_TEST(concurrent_runs_exactly_one)
{
    enum { N = 8 };
    char log[4300];
    snprintf(log, sizeof log, "%s/ran", dir);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -t 10s %s -- sh -c 'echo %d >> %s; sleep 1'", dlock_bin, name, i, log);
    int ran = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        int rc = wait_exit(pids[i]);
        if (rc == 0)
            ran++;
        else if (rc == 75)
            busy++;
        else
            ck_abort_msg("dlock run exited %d", rc);
    }
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(busy, N - 1);
    ck_assert_int_eq(count_lines(log), 1);
}
END_TEST

/* Waiters run one after another, never two at once. */
START_TEST(concurrent_waiters_serialize)
{
    enum { N = 5 };
    char log[4300];
    snprintf(log, sizeof log, "%s/ran", dir);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -w 30s %s -- sh -c 'echo start >> %s; sleep 0.2; echo end >> %s'", dlock_bin,
                        name, log, log);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(wait_exit(pids[i]), 0);
    /* The log alternates start/end: no two jobs overlapped. */
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[32];
    int i = 0;
    while (fgets(line, sizeof line, f)) {
        ck_assert_str_eq(line, i % 2 == 0 ? "start\n" : "end\n");
        i++;
    }
    fclose(f);
    ck_assert_int_eq(i, 2 * N);
}
END_TEST

/* --- faults ---------------------------------------------------------------------------- */

/* kill -9 of a holder: the lock comes free after its TTL, and not before. */
START_TEST(killed_holder_frees_after_ttl_not_before)
{
    const uint32_t ttl = 2000;
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    int64_t acquired = dlt_now_ms();
    dlt_child_stop(&holder, SIGKILL);
    ck_assert(!lock_is_free());
    dlt_sleep_ms(ttl - 600 - (dlt_now_ms() - acquired));
    ck_assert_msg(!lock_is_free(), "freed before its TTL");
    int64_t took = dlt_acquire_within(url, name, 5000, 2000);
    ck_assert_msg(took >= 0, "not freed within TTL + 1 s");
    ck_assert_int_ge(dlt_now_ms() - acquired, ttl - 50);
    ck_assert_int_le(dlt_now_ms() - acquired, ttl + 1000);
}
END_TEST

/* SIGSTOP past the TTL: another process takes the lock; after SIGCONT the
 * holder's next extend says DLOCK_ELOST. */
START_TEST(stopped_holder_loses_lock)
{
    const uint32_t ttl = 1000;
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    kill(holder.pid, SIGSTOP);
    dlt_sleep_ms(ttl + 200);
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    kill(holder.pid, SIGCONT);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 10000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_ELOST);
    /* The old holder's release did not free the new holder's lock. */
    ck_assert(!lock_is_free());
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    dlt_child_stop(&holder, 0);
}
END_TEST

/* Under dlock run: dlock is stopped past its TTL, another run takes the
 * lock; on SIGCONT the first job gets SIGTERM and dlock exits 79. */
START_TEST(stopped_dlock_terminates_its_job)
{
    char started[4300], term[4300], second[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(term, sizeof term, "%s/term", dir);
    snprintf(second, sizeof second, "%s/second", dir);
    char job[9000];
    snprintf(job, sizeof job,
             "trap 'echo TERM > %s; exit 0' TERM; touch %s; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
             term, started);
    char *argv[] = {"dlock", "run", "-t", "1s", "-k", "5s", name, "--", "sh", "-c", job, NULL};
    pid_t first = dlock_bg(argv);
    ck_assert(wait_for_file(started, 5000));
    kill(first, SIGSTOP);
    dlt_sleep_ms(1500);
    ck_assert_int_eq(sh("'%s' run %s -- touch %s", dlock_bin, name, second), 0);
    ck_assert_int_eq(access(second, F_OK), 0);
    int64_t cont = dlt_now_ms();
    kill(first, SIGCONT);
    ck_assert_int_eq(wait_exit(first), 79);
    ck_assert_int_lt(dlt_now_ms() - cont, 3000);
    ck_assert(file_has(term, "TERM"));
}
END_TEST

/* A job that ignores SIGTERM gets SIGKILL after the grace period. */
START_TEST(lost_lock_kills_stubborn_job)
{
    char started[4300], pidfile[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
    char job[9000];
    snprintf(job, sizeof job,
             "trap '' TERM; echo $$ > %s; touch %s; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done", pidfile,
             started);
    char *argv[] = {"dlock", "run", "-t", "1s", "-k", "1s", name, "--", "sh", "-c", job, NULL};
    pid_t first = dlock_bg(argv);
    ck_assert(wait_for_file(started, 5000));
    kill(first, SIGSTOP);
    dlt_sleep_ms(1500);
    ck_assert(lock_is_free());
    int64_t cont = dlt_now_ms();
    kill(first, SIGCONT);
    ck_assert_int_eq(wait_exit(first), 79);
    int64_t took = dlt_now_ms() - cont;
    ck_assert_int_ge(took, 900); /* SIGTERM was ignored; SIGKILL came after -k */
    ck_assert_int_lt(took, 4000);
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    int jobpid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &jobpid), 1);
    fclose(f);
    ck_assert_int_eq(kill(jobpid, 0), -1); /* gone */
}
END_TEST

/* If dlock itself dies, its job and the job's children are killed. */
START_TEST(job_dies_with_dlock)
{
    char started[4300], pidfile[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
    char job[9000];
    /* The job's own child must die too, not just the process dlock started. */
    snprintf(job, sizeof job, "sleep 30 & echo $! > %s; touch %s; wait", pidfile, started);
    char *argv[] = {"dlock", "run", "-t", "30s", name, "--", "sh", "-c", job, NULL};
    pid_t first = dlock_bg(argv);
    ck_assert(wait_for_file(started, 5000));
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    int jobpid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &jobpid), 1);
    fclose(f);
    kill(first, SIGKILL);
    wait_exit(first);
    int64_t start = dlt_now_ms();
    while (kill(jobpid, 0) == 0 && dlt_now_ms() - start < 2000) {
        /* a zombie still answers kill(0): look at its state */
        char path[64], state = '?';
        snprintf(path, sizeof path, "/proc/%d/stat", jobpid);
        FILE *st = fopen(path, "r");
        if (st) {
            if (fscanf(st, "%*d %*s %c", &state) != 1)
                state = '?';
            fclose(st);
        }
        if (state == 'Z')
            break;
        dlt_sleep_ms(20);
    }
    ck_assert_int_lt(dlt_now_ms() - start, 2000);
}
END_TEST

/* --- heartbeat and --min-hold -------------------------------------------------------- */

START_TEST(heartbeat_keeps_long_job_locked)
{
    char *argv[] = {"dlock", "run", "-t", "900ms", name, "--", "sleep", "2.5", NULL};
    pid_t first = dlock_bg(argv);
    dlt_sleep_ms(2000); /* more than two TTLs into the job */
    ck_assert(!lock_is_free());
    ck_assert_int_eq(wait_exit(first), 0);
    ck_assert(lock_is_free());
}
END_TEST

START_TEST(min_hold_keeps_the_lock)
{
    int64_t start = dlt_now_ms();
    char *argv[] = {"dlock", "run", "-m", "1500ms", "-t", "1s", name, "--", "true", NULL};
    pid_t first = dlock_bg(argv);
    dlt_sleep_ms(800);
    ck_assert_int_eq(sh("'%s' run -q %s -- true", dlock_bin, name), 75);
    ck_assert_int_eq(wait_exit(first), 0);
    int64_t took = dlt_now_ms() - start;
    ck_assert_int_ge(took, 1450);
    ck_assert_int_lt(took, 4000);
    ck_assert(lock_is_free());
}
END_TEST

/* --- signals --------------------------------------------------------------------------- */

static void forwarded(int sig, const char *signame)
{
    char started[4300], got[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(got, sizeof got, "%s/got", dir);
    char job[9000];
    snprintf(job, sizeof job,
             "trap 'echo %s > %s; exit 5' %s; touch %s; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
             signame, got, signame, started);
    char *argv[] = {"dlock", "run", name, "--", "sh", "-c", job, NULL};
    pid_t pid = dlock_bg(argv);
    ck_assert(wait_for_file(started, 5000));
    kill(pid, sig);
    ck_assert_int_eq(wait_exit(pid), 5);
    ck_assert(file_has(got, signame));
    ck_assert(lock_is_free());
}

START_TEST(forwards_sigint)
{
    forwarded(SIGINT, "INT");
}
END_TEST

START_TEST(forwards_sigterm)
{
    forwarded(SIGTERM, "TERM");
}
END_TEST

START_TEST(forwards_sighup)
{
    forwarded(SIGHUP, "HUP");
}
END_TEST

START_TEST(job_killed_by_signal_gives_128_plus_n)
{
    ck_assert_int_eq(sh("'%s' run %s -- sh -c 'kill -TERM $$'", dlock_bin, name), 128 + SIGTERM);
    char started[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    char job[4400];
    snprintf(job, sizeof job, "touch %s; exec sleep 30", started);
    char *argv[] = {"dlock", "run", name, "--", "sh", "-c", job, NULL};
    pid_t pid = dlock_bg(argv);
    ck_assert(wait_for_file(started, 5000));
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid), 128 + SIGTERM);
    ck_assert(lock_is_free());
}
END_TEST

/* A signal while waiting for a busy lock ends the wait; the job never starts. */
START_TEST(signal_while_waiting)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char ran[4300];
    snprintf(ran, sizeof ran, "%s/ran", dir);
    char *argv[] = {"dlock", "run", "-w", "forever", name, "--", "touch", ran, NULL};
    pid_t pid = dlock_bg(argv);
    dlt_sleep_ms(500);
    int64_t start = dlt_now_ms();
    kill(pid, SIGTERM);
    ck_assert_int_eq(wait_exit(pid), 128 + SIGTERM);
    ck_assert_int_lt(dlt_now_ms() - start, 2000);
    ck_assert_int_ne(access(ran, F_OK), 0);
    dlt_child_stop(&holder, 0);
}
END_TEST

/* --- exit statuses and messages ------------------------------------------------------- */

START_TEST(exit_statuses)
{
    ck_assert_int_eq(sh("'%s' run %s -- sh -c 'exit 3'", dlock_bin, name), 3);
    ck_assert_int_eq(sh("'%s' run %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(sh("'%s' run %s -- /nonexistent/command 2>/dev/null", dlock_bin, name), 127);
    ck_assert_int_eq(sh("'%s' run %s -- /etc/passwd 2>/dev/null", dlock_bin, name), 126);
    ck_assert_int_eq(sh("'%s' 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(sh("'%s' frobnicate 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(sh("'%s' run 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(sh("'%s' run %s 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run %s -- 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run -t 0 %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run -t 10x %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run -t 2147484s %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run -w soon %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run -E 300 %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run --bogus %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run -t 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(sh("'%s' run a b -- true 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(sh("'%s' run '' -- true 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(sh("'%s' run \"$(printf 'a\\377b')\" -- true 2>/dev/null", dlock_bin), 64);
    /* A well-formed URL of a backend not built in: unavailable here, not a usage error. */
    ck_assert_int_eq(sh("'%s' run -u 'zookeeper://x/0' %s -- true 2>/dev/null", dlock_bin, name), 69);
    ck_assert_int_eq(sh("'%s' run -u 'nonsense' %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run -u 'sqlite:///proc/no/such/dir/x.db' %s -- true 2>/dev/null", dlock_bin, name), 69);
    ck_assert_int_eq(sh("'%s' status -u 'sqlite:///proc/no/such/dir/x.db' %s 2>/dev/null", dlock_bin, name), 69);
    ck_assert_int_eq(sh("'%s' --version | grep -q '^dlock (libdlock) [0-9]*\\.[0-9]*\\.[0-9]*$'", dlock_bin), 0);
    ck_assert_int_eq(sh("'%s' --help | grep -q 'dlock run'", dlock_bin), 0);
    ck_assert_int_eq(sh("'%s' run --help | grep -q 'dlock run'", dlock_bin), 0);
    /* Options may also come after NAME when '--' ends them; no '--' works too. */
    ck_assert_int_eq(sh("'%s' run %s -t 5s -- sh -c 'exit 4'", dlock_bin, name), 4);
    ck_assert_int_eq(sh("'%s' run %s sh -c 'exit 6'", dlock_bin, name), 6);
}
END_TEST

/* The URL with its user and password replaced (the URL has a "user@" part). */
static void url_with_login(char *out, size_t outlen, const char *server_url, const char *login)
{
    const char *scheme_end = strstr(server_url, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    ck_assert_msg(at != NULL, "test URL without a user part");
    snprintf(out, outlen, "%.*s%s%s", (int)(scheme_end + 3 - server_url), server_url, login, at);
}

/* dlock run with `store_url` (which must not open): its exit status, and
 * its stderr in dir/stderr. */
static int run_against(const char *store_url, const char *env)
{
    return sh("%s '%s' run -u '%s' %s -- true 2>'%s/stderr'", env, dlock_bin, store_url, name, dir);
}

/* With the server of $env_var, logging in as `login` (a wrong password) is
 * refused: dlock run and dlock status exit 69, the message says what the
 * server said, and never the password.  0 when no such server is set. */
static int refused_login_exits_69(const char *env_var, const char *backend, const char *login, const char *server_says)
{
    const char *server = getenv(env_var);
    if (!server || !*server) {
        ck_assert_msg(!dlt_required(backend), "%s is not set", env_var);
        return 0;
    }
    char bad[4400], path[4300];
    snprintf(path, sizeof path, "%s/stderr", dir);
    url_with_login(bad, sizeof bad, server, login);
    ck_assert_int_eq(run_against(bad, ""), 69);
    ck_assert_msg(file_has(path, server_says), "%s: no '%s' in the message", backend, server_says);
    ck_assert(!file_has(path, "Wr0ngPassw0rd"));
    ck_assert_int_eq(sh("'%s' status -u '%s' %s >/dev/null 2>&1", dlock_bin, bad, name), 69);
    return 1;
}

/* One mistake, one status: a refused login, an unknown host and a wrong
 * database exit 69 on every backend (PostgreSQL could not tell them apart). */
START_TEST(refused_login_exits_69_on_every_backend)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/stderr", dir);
    ck_assert_int_eq(run_against("postgresql://jobs@no-such-host.invalid/app", ""), 69);
    ck_assert_int_eq(run_against("mysql://jobs:Secr3t@no-such-host.invalid/app", ""), 69);
    ck_assert(!file_has(path, "Secr3t"));

    int tried = 0, logins = 0;
    for (const struct dlt_store *const *st = dlt_stores(); *st; st++) {
        const struct dlt_store *store = *st;
        if (!store->bad_login_userinfo)
            continue; /* no logins to refuse */
        logins++;
        tried += refused_login_exits_69(store->login_url_env ? store->login_url_env : store->url_env, store->backend,
                                        store->bad_login_userinfo, store->bad_login_word);
    }
    if (tried < logins)
        fprintf(stderr, "refused_login: %d of %d servers configured\n", tried, logins);
}
END_TEST

/* A host without the client library (Debian's --no-install-recommends can
 * drop libpq5): the store is unavailable (69), not a usage error (64).  A
 * file that is not a library, first on LD_LIBRARY_PATH, makes dlopen() fail
 * as a missing one does. */
START_TEST(missing_client_library_exits_69)
{
    const char *sonames[] = {"libpq.so.5", "libmariadb.so.3", "libmysqlclient.so.21", "libhiredis.so.0.14"};
    char env[4400], path[4300];
    for (size_t i = 0; i < sizeof sonames / sizeof sonames[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, sonames[i]);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs("not a shared library\n", f);
        fclose(f);
    }
    snprintf(env, sizeof env, "LD_LIBRARY_PATH='%s'", dir);
    snprintf(path, sizeof path, "%s/stderr", dir);
    const char *urls[] = {"postgresql://jobs@127.0.0.1:1/app", "mysql://jobs:Secr3t@127.0.0.1:1/app",
                          "redis://jobs:Secr3t@127.0.0.1:1/0"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        ck_assert_int_eq(run_against(urls[i], env), 69);
        ck_assert_msg(file_has(path, "client library") || file_has(path, "not built into"), "no reason given for %s",
                      urls[i]);
        ck_assert(!file_has(path, "Secr3t"));
        ck_assert_int_eq(sh("%s '%s' status -u '%s' %s >/dev/null 2>&1", env, dlock_bin, urls[i], name), 69);
    }
}
END_TEST

START_TEST(busy_exit_and_conflict_code)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char out[4300], ran[4300];
    snprintf(out, sizeof out, "%s/stderr", dir);
    snprintf(ran, sizeof ran, "%s/ran", dir);
    ck_assert_int_eq(sh("'%s' run %s -- touch %s 2>%s", dlock_bin, name, ran, out), 75);
    ck_assert(file_has(out, "busy"));
    ck_assert(file_has(out, "pid="));
    ck_assert_int_eq(sh("'%s' run -E 9 %s -- touch %s 2>/dev/null", dlock_bin, name, ran), 9);
    ck_assert_int_eq(sh("'%s' run -q -E 0 %s -- touch %s 2>%s", dlock_bin, name, ran, out), 0);
    ck_assert_int_eq(count_lines(out), 0);
    ck_assert_int_ne(access(ran, F_OK), 0); /* the job never ran */
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(sh("'%s' run -w 600ms %s -- touch %s 2>/dev/null", dlock_bin, name, ran), 75);
    ck_assert_int_ge(dlt_now_ms() - start, 550);
    ck_assert_int_eq(sh("'%s' status %s > %s", dlock_bin, name, out), 0);
    ck_assert(file_has(out, "held by"));
    dlt_child_stop(&holder, 0);
    dlt_sleep_ms(50);
}
END_TEST

/* dlock run against one server store: one of several runs, waiters one
 * after another, status, and (where the lock outlives its connection) a
 * killed dlock run's lock free after its TTL, not before. */
static void dlock_run_against(const struct dlt_store *store, const char *redis)
{
    enum { N = 4 };
    char log[4300], out[4300];
    snprintf(log, sizeof log, "%s/ran-%s", dir, store->backend);
    snprintf(out, sizeof out, "%s/out", dir);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -u '%s' -t 10s %s -- sh -c 'echo start >> %s; sleep 0.5; echo end >> %s'",
                        dlock_bin, redis, name, log, log);
    int ran = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        int rc = wait_exit(pids[i]);
        ran += rc == 0;
        busy += rc == 75;
    }
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(busy, N - 1);
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -u '%s' -w 20s %s -- sh -c 'echo start >> %s; sleep 0.2; echo end >> %s'",
                        dlock_bin, redis, name, log, log);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(wait_exit(pids[i]), 0);
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[32];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        ck_assert_str_eq(line, lines % 2 == 0 ? "start\n" : "end\n");
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(lines, 2 * (N + 1));
    ck_assert_int_eq(sh("'%s' status -u '%s' %s > %s", dlock_bin, redis, name, out), 1);
    /* A dlock run killed with -9 (its job too): free after its TTL, not before. */
    pid_t holder = sh_bg("exec '%s' run -u '%s' -t 1500ms %s -- sleep 30", dlock_bin, redis, name);
    int64_t start = dlt_now_ms();
    while (sh("'%s' status -u '%s' %s > %s", dlock_bin, redis, name, out) != 0 && dlt_now_ms() - start < 5000)
        dlt_sleep_ms(20);
    ck_assert(file_has(out, "held by"));
    if (!(store->caps(redis) & DLT_OUTLIVES_CONNECTION)) {
        kill(holder, SIGKILL);
        wait_exit(holder);
        return; /* freed with its connection: conformance checks that */
    }
    int64_t taken = dlt_now_ms();
    kill(holder, SIGKILL); /* its job dies with it (job_dies_with_dlock) */
    wait_exit(holder);
    ck_assert_int_eq(sh("'%s' run -u '%s' %s -- true 2>/dev/null", dlock_bin, redis, name), 75);
    ck_assert_int_eq(sh("'%s' run -u '%s' -w 5s %s -- true", dlock_bin, redis, name), 0);
    ck_assert_int_ge(dlt_now_ms() - taken, 1000);
}

/* dlock run against every server store this build has (tests/stores/). */
START_TEST(dlock_run_against_every_server_store)
{
    int tried = 0;
    for (const struct dlt_store *const *st = dlt_stores(); *st; st++) {
        const struct dlt_store *store = *st;
        if (!store->url_env)
            continue;
        const char *server = getenv(store->url_env);
        if (!server || !*server) {
            ck_assert_msg(!dlt_required(store->backend), "%s is not set", store->url_env);
            continue;
        }
        char *own = dlt_unique_name("process-run");
        free(name);
        name = own;
        dlock_run_against(store, server);
        tried++;
    }
    if (tried == 0)
        fprintf(stderr, "dlock_run_against_every_server_store: no server configured\n");
}
END_TEST

START_TEST(status_free_and_held)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(sh("'%s' status %s > %s", dlock_bin, name, out), 1);
    ck_assert(file_has(out, "free"));
    ck_assert_int_eq(sh("'%s' status 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(sh("'%s' status a b 2>/dev/null", dlock_bin), 64);
}
END_TEST

/* Holder text comes from the store, where anyone may have written it: no
 * control character of it reaches the terminal. */
START_TEST(status_output_has_no_control_characters)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    if (sh("command -v sqlite3 >/dev/null") != 0) {
        dlt_child_stop(&holder, 0);
        return; /* the sqlite3 shell is part of the test dependencies; no way to plant the text */
    }
    ck_assert_int_eq(
        sh("sqlite3 '%s/locks.db' \"UPDATE dlock_locks SET holder_host = char(27) || '[2J' || char(7) || 'evil'\"",
           dir),
        0);
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(sh("'%s' status %s > %s 2>&1", dlock_bin, name, out), 0);
    ck_assert(file_has(out, "evil"));
    ck_assert(!file_has(out, "\033"));
    ck_assert(!file_has(out, "\007"));
    ck_assert_int_eq(sh("'%s' run %s -- true > %s 2>&1", dlock_bin, name, out), 75);
    ck_assert(file_has(out, "evil"));
    ck_assert(!file_has(out, "\033"));
    dlt_child_stop(&holder, 0);
}
END_TEST

/* No DLOCK_URL: the default is an owner-only SQLite file in the user's state folder. */
START_TEST(default_url_for_a_user)
{
    char home[4300], db[4400];
    snprintf(home, sizeof home, "%s/home", dir);
    mkdir(home, 0755);
    snprintf(db, sizeof db, "%s/.local/state/dlock/dlock.db", home);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0) {
            struct passwd *nobody = getpwnam("nobody");
            if (!nobody || chown(home, nobody->pw_uid, nobody->pw_gid) != 0 || setgid(nobody->pw_gid) != 0 ||
                setuid(nobody->pw_uid) != 0)
                _exit(98);
        }
        unsetenv("DLOCK_URL");
        unsetenv("XDG_STATE_HOME");
        setenv("HOME", home, 1);
        execl(dlock_bin, "dlock", "run", name, "--", "true", (char *)NULL);
        _exit(97);
    }
    ck_assert_int_eq(wait_exit(pid), 0);
    struct stat st;
    ck_assert_int_eq(stat(db, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    char state_dir[4400];
    snprintf(state_dir, sizeof state_dir, "%s/.local/state/dlock", home);
    ck_assert_int_eq(stat(state_dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
}
END_TEST

/* SQLite database files are never reached through a symbolic link. */
START_TEST(sqlite_refuses_symlinked_database)
{
    char target[4300], link_path[4300], link_url[4400];
    snprintf(target, sizeof target, "%s/real.db", dir);
    snprintf(link_path, sizeof link_path, "%s/link.db", dir);
    snprintf(link_url, sizeof link_url, "sqlite://%s", link_path);
    ck_assert_int_eq(symlink(target, link_path), 0);
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(link_url, &c), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "symbolic link"));
    ck_assert_int_ne(access(target, F_OK), 0); /* nothing was written through it */
}
END_TEST

/* The row is taken away behind the holder's back while its lease still looks
 * alive (a new owner token, written through SQLite's own client): the job
 * ends well, and the final release finds the lock lost.  dlock keeps the
 * job's status and says so, even with -q (issue 10: it used to say nothing). */
START_TEST(lost_at_the_final_release_is_said)
{
    char started[4300], err[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    pid_t run = sh_bg("exec '%s' run -q -t 30s %s -- sh -c 'touch \"%s\"; sleep 1.5; exit 3' 2>'%s'", dlock_bin, name,
                      started, err);
    ck_assert(wait_for_file(started, 10000));
    ck_assert_int_eq(sh("sqlite3 -cmd '.timeout 5000' '%s/locks.db' "
                        "\"UPDATE dlock_locks SET owner = randomblob(16) WHERE name = '%s'\"",
                        dir, name),
                     0);
    ck_assert_int_eq(wait_exit(run), 3);
    ck_assert_msg(file_has(err, "found lost when it was released"), "dlock said nothing of the lost lock");
}
END_TEST

/* Without a readable boot id (here an empty file bind-mounted over it in a
 * private mount namespace, as a chroot without /proc or ProcSubset=pid
 * would give) the SQLite backend refuses to open rather than guess, so a
 * lock held by another process is never judged expired (issue 10). */
START_TEST(sqlite_without_boot_id_refuses)
{
    if (geteuid() != 0 || sh("unshare -m true 2>/dev/null") != 0) {
        fprintf(stderr, "sqlite_without_boot_id_refuses: no private mount namespace here (needs root)\n");
        ck_assert_int_ne(geteuid(), 0); /* root must be able to make one */
        return;
    }
    dlock_client *c = NULL;
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &held), DLOCK_OK);
    char ran[4300], err[4300];
    snprintf(ran, sizeof ran, "%s/ran", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    ck_assert_int_eq(sh("touch '%s/empty'", dir), 0);
    int rc = sh("unshare -m sh -c \"mount --bind '%s/empty' /proc/sys/kernel/random/boot_id && "
                "exec '%s' run %s -- touch '%s'\" 2>'%s'",
                dir, dlock_bin, name, ran, err);
    ck_assert_msg(access(ran, F_OK) != 0, "the job ran while another process held the lock");
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(file_has(err, "boot id"), "no word of the boot id");
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    dlock_close(c);
}
END_TEST

/* --- operations: --once-per, DLOCK_NAME/DLOCK_FENCE, list, status --json, release --force, metrics --- */

/* Runs of the same job started in one slot, each waiting for the lock
 * (without --once-per every one would run it, one after the other): the
 * job runs exactly once, the others find the slot done and exit 75. */
START_TEST(once_per_runs_once_in_a_slot)
{
    enum { N = 5 };
    char log[4300];
    snprintf(log, sizeof log, "%s/ran", dir);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -q -w 20s --once-per 24h %s -- sh -c 'echo %d >> %s'", dlock_bin, name, i, log);
    int ran = 0, done = 0;
    for (int i = 0; i < N; i++) {
        int rc = wait_exit(pids[i]);
        if (rc == 0)
            ran++;
        else if (rc == 75)
            done++;
        else
            ck_abort_msg("dlock run exited %d", rc);
    }
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(done, N - 1);
    ck_assert_int_eq(count_lines(log), 1);
    /* The control: the same runs without --once-per all run the job. */
    for (int i = 0; i < 3; i++)
        pids[i] = sh_bg("exec '%s' run -q -w 20s %s -- sh -c 'echo %d >> %s'", dlock_bin, name, i, log);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(wait_exit(pids[i]), 0);
    ck_assert_int_eq(count_lines(log), 4);
}
END_TEST

/* Only a success marks the slot: a failed run is retried by the next one in
 * the same slot; a done slot exits 75, or -E. */
START_TEST(once_per_retries_a_failed_run)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(sh("'%s' run --once-per 1w %s -- true 2>/dev/null", dlock_bin, name), 64); /* no 'w' unit */
    ck_assert_int_eq(sh("'%s' run --once-per 500ms %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run --once-per 24h %s -- sh -c 'exit 3'", dlock_bin, name), 3);
    ck_assert_int_eq(sh("'%s' run --once-per 24h %s -- sh -c 'kill -TERM $$'", dlock_bin, name), 128 + 15);
    ck_assert_int_eq(sh("'%s' run --once-per 24h %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(sh("'%s' run --once-per 24h %s -- touch %s/again 2>%s", dlock_bin, name, dir, out), 75);
    ck_assert(file_has(out, "has run already"));
    ck_assert_int_eq(sh("'%s' run -q -E 9 --once-per 24h %s -- touch %s/again 2>%s", dlock_bin, name, dir, out), 9);
    ck_assert_int_eq(count_lines(out), 0);
    ck_assert_int_eq(sh("test -e %s/again", dir), 1); /* the job never ran again */
    ck_assert(lock_is_free());
}
END_TEST

/* The job learns its lock's name and fencing token from its environment;
 * a DLOCK_FENCE in dlock's own environment is not passed on as the job's. */
START_TEST(job_gets_name_and_fence)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/env", dir);
    ck_assert_int_eq(
        sh("DLOCK_FENCE=999 '%s' run %s -- sh -c 'echo \"$DLOCK_NAME:$DLOCK_FENCE\"' > %s", dlock_bin, name, out), 0);
    char expect[400];
    snprintf(expect, sizeof expect, "%s:1\n", name);
    ck_assert(file_has(out, expect));
    ck_assert_int_eq(sh("'%s' run %s -- sh -c 'echo \"$DLOCK_NAME:$DLOCK_FENCE\"' > %s", dlock_bin, name, out), 0);
    snprintf(expect, sizeof expect, "%s:2\n", name);
    ck_assert(file_has(out, expect));
}
END_TEST

/* dlock list: a table with a header, the held lock in it; --json: an array
 * of objects with the documented fields; names escaped as JSON strings. */
START_TEST(list_table_and_json)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char odd[400];
    snprintf(odd, sizeof odd, "%s/q\"b\\s\001\xc3\xa9", name);
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, odd, 30000, 0, &l), DLOCK_OK);
    char out[4300], expect[600];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(sh("'%s' list > %s", dlock_bin, out), 0);
    ck_assert(file_has(out, "NAME"));
    ck_assert(file_has(out, "HOLDER"));
    ck_assert(file_has(out, "FENCE"));
    snprintf(expect, sizeof expect, "%s  ", name);
    ck_assert(file_has(out, expect));
    ck_assert(!file_has(out, "\001"));
    ck_assert_int_eq(count_lines(out), 3);
    ck_assert_int_eq(sh("'%s' list --json %s > %s", dlock_bin, name, out), 0);
    snprintf(expect, sizeof expect, "{\"name\":\"%s\",\"key\":\"%s\",\"holder\":", name, name);
    ck_assert(file_has(out, expect));
    snprintf(expect, sizeof expect, "\"pid\":%ld,", (long)holder.pid);
    ck_assert(file_has(out, expect));
    snprintf(expect, sizeof expect, "\"name\":\"%s/q\\\"b\\\\s\\u0001\xc3\xa9\"", name);
    ck_assert_msg(file_has(out, expect), "escaped name not found");
    ck_assert(file_has(out, "\"fence\":1}"));
    ck_assert(file_has(out, "Z\",\"expires\":\""));
    if (sh("command -v jq >/dev/null") == 0)
        ck_assert_int_eq(
            sh("jq -e 'length == 2 and .[0].pid > 0 and (.[1].name | endswith(\"\\u00e9\"))' %s >/dev/null", out), 0);
    /* A prefix that matches nothing: an empty array, status 0. */
    ck_assert_int_eq(sh("'%s' list --json nothing-here/ > %s", dlock_bin, out), 0);
    ck_assert(file_has(out, "[]"));
    ck_assert_int_eq(sh("'%s' list a b 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(sh("'%s' list --force 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    dlt_child_stop(&holder, 0);
}
END_TEST

START_TEST(status_json)
{
    char out[4300], expect[400];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(sh("'%s' status --json %s > %s", dlock_bin, name, out), 1);
    snprintf(expect, sizeof expect, "{\"name\":\"%s\",\"held\":false}\n", name);
    ck_assert(file_has(out, expect));
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    ck_assert_int_eq(sh("'%s' status --json %s > %s", dlock_bin, name, out), 0);
    snprintf(expect, sizeof expect, "{\"name\":\"%s\",\"held\":true,", name);
    ck_assert(file_has(out, expect));
    snprintf(expect, sizeof expect, "\"pid\":%ld,", (long)holder.pid);
    ck_assert(file_has(out, expect));
    dlt_child_stop(&holder, 0);
}
END_TEST

/* release --force breaks another's lock (its holder then finds it lost),
 * says what it did; a free name answers 1; without --force it is refused. */
START_TEST(release_force_breaks)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(sh("'%s' release %s 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 30000", 5000), DLOCK_OK);
    ck_assert_int_eq(sh("'%s' release --force %s > %s", dlock_bin, name, out), 0);
    ck_assert(file_has(out, "broken"));
    ck_assert(file_has(out, "pid="));
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 30000", 5000), DLOCK_ELOST);
    ck_assert(lock_is_free());
    ck_assert_int_eq(sh("'%s' release --force %s > %s", dlock_bin, name, out), 1);
    ck_assert(file_has(out, "free"));
    ck_assert_int_eq(sh("'%s' release --force '' 2>/dev/null", dlock_bin), 64);
    dlt_child_stop(&holder, 0);
}
END_TEST

/* One metric sample per line: `name{labels} value`; NULL when the line is
 * not one.  Returns the value's text. */
static const char *sample_value(const char *line, char *metric, size_t metric_len)
{
    const char *brace = strchr(line, '{');
    const char *close = strstr(line, "} ");
    if (!brace || !close || close < brace || (size_t)(brace - line) >= metric_len)
        return NULL;
    for (const char *p = line; p < brace; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z')))
            return NULL;
    memcpy(metric, line, (size_t)(brace - line));
    metric[brace - line] = '\0';
    char *end;
    strtod(close + 2, &end);
    return end != close + 2 && (*end == '\n' || *end == '\0') ? close + 2 : NULL;
}

/* Every line of the file is a comment or a sample; `want` (a whole line
 * without its newline) is among them; returns the number of samples. */
static int check_metrics(const char *path, const char *const *want)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024], metric[128];
    int samples = 0, found[16] = {0};
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            ck_assert(strncmp(line, "# HELP dlock_run_", 17) == 0 || strncmp(line, "# TYPE dlock_run_", 17) == 0);
            continue;
        }
        ck_assert_msg(sample_value(line, metric, sizeof metric), "not a sample: %s", line);
        samples++;
        line[strcspn(line, "\n")] = '\0';
        for (int i = 0; want[i]; i++)
            if (strcmp(line, want[i]) == 0)
                found[i] = 1;
    }
    fclose(f);
    for (int i = 0; want[i]; i++)
        ck_assert_msg(found[i], "missing: %s", want[i]);
    return samples;
}

START_TEST(metrics_file_is_prometheus_text)
{
    char prom[4300], lock[300], w[6][400];
    snprintf(prom, sizeof prom, "%s/job.prom", dir);
    snprintf(lock, sizeof lock, "%s\\\"x", name); /* the label value escapes \ and " */
    ck_assert_int_eq(sh("'%s' run --metrics-file %s '%s/\\\"x' -- true", dlock_bin, prom, name), 0);
    snprintf(w[0], sizeof w[0], "dlock_run_outcome{lock=\"%s/\\\\\\\"x\",outcome=\"ran\"} 1", name);
    snprintf(w[1], sizeof w[1], "dlock_run_outcome{lock=\"%s/\\\\\\\"x\",outcome=\"busy\"} 0", name);
    snprintf(w[2], sizeof w[2], "dlock_run_exit_status{lock=\"%s/\\\\\\\"x\"} 0", name);
    const char *want[] = {w[0], w[1], w[2], NULL};
    ck_assert_int_eq(check_metrics(prom, want), 9); /* 5 outcomes, status, start, duration, last success */
    ck_assert(file_has(prom, "dlock_run_last_success_time_seconds{"));
    ck_assert(file_has(prom, "# TYPE dlock_run_outcome gauge"));

    /* A failed run: its status, and the last success carried over. */
    snprintf(prom, sizeof prom, "%s/plain.prom", dir);
    ck_assert_int_eq(sh("'%s' run --metrics-file %s %s -- true", dlock_bin, prom, name), 0);
    ck_assert_int_eq(sh("'%s' run --metrics-file %s %s -- sh -c 'exit 3'", dlock_bin, prom, name), 3);
    snprintf(w[0], sizeof w[0], "dlock_run_exit_status{lock=\"%s\"} 3", name);
    snprintf(w[1], sizeof w[1], "dlock_run_outcome{lock=\"%s\",outcome=\"ran\"} 1", name);
    const char *want2[] = {w[0], w[1], NULL};
    ck_assert_int_eq(check_metrics(prom, want2), 9);

    /* Busy, and a slot already done. */
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    ck_assert_int_eq(sh("'%s' run -q --metrics-file %s %s -- true", dlock_bin, prom, name), 75);
    snprintf(w[0], sizeof w[0], "dlock_run_outcome{lock=\"%s\",outcome=\"busy\"} 1", name);
    snprintf(w[1], sizeof w[1], "dlock_run_outcome{lock=\"%s\",outcome=\"ran\"} 0", name);
    snprintf(w[2], sizeof w[2], "dlock_run_exit_status{lock=\"%s\"} 75", name);
    const char *want3[] = {w[0], w[1], w[2], NULL};
    ck_assert_int_eq(check_metrics(prom, want3), 9);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_OK);
    dlt_child_stop(&holder, 0);
    ck_assert_int_eq(sh("'%s' run -q --once-per 24h %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(sh("'%s' run -q --once-per 24h --metrics-file %s %s -- true", dlock_bin, prom, name), 75);
    snprintf(w[0], sizeof w[0], "dlock_run_outcome{lock=\"%s\",outcome=\"done\"} 1", name);
    const char *want4[] = {w[0], NULL};
    check_metrics(prom, want4);
    /* Nothing left behind but the file itself. */
    ck_assert_int_eq(sh("test $(ls %s | grep -c prom) -eq 2", dir), 0);
}
END_TEST

/* A lock table made before run records existed gets its last_slot column
 * on first open, and keeps its rows. */
START_TEST(sqlite_old_table_gets_last_slot)
{
    if (sh("command -v sqlite3 >/dev/null") != 0)
        return; /* the sqlite3 shell is part of the test dependencies */
    ck_assert_int_eq(sh("sqlite3 '%s/locks.db' \"CREATE TABLE dlock_locks (name TEXT PRIMARY KEY NOT NULL,"
                        " owner BLOB, fence INTEGER NOT NULL DEFAULT 0, holder_host TEXT, holder_pid INTEGER,"
                        " boot_id TEXT, acquired_at INTEGER, expires_boot_ms INTEGER) WITHOUT ROWID;"
                        " INSERT INTO dlock_locks(name, fence) VALUES ('%s', 41)\"",
                        dir, name),
                     0);
    char out[4300];
    snprintf(out, sizeof out, "%s/env", dir);
    ck_assert_int_eq(sh("'%s' run --once-per 24h %s -- sh -c 'echo $DLOCK_FENCE' > %s", dlock_bin, name, out), 0);
    ck_assert(file_has(out, "42\n"));
    ck_assert_int_eq(sh("'%s' run -q --once-per 24h %s -- true", dlock_bin, name), 75);
    /* The record: the start of the run that succeeded, Unix ms on the store's clock. */
    ck_assert_int_eq(sh("test $(( $(date +%%s%%3N) - $(sqlite3 '%s/locks.db' \"SELECT last_slot FROM dlock_locks\") ))"
                        " -lt 60000",
                        dir),
                     0);
}
END_TEST

/* --- issue 23: --once-per at every phase of the period ---------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Start `dlock run -q --once-per PERIOD lock -- sh -c 'echo >> log'` at
 * the Unix time at_ms (the child sleeps until then, as cron would start it). */
static pid_t once_per_at(int64_t at_ms, const char *period, const char *lock, const char *log)
{
    char job[4400];
    snprintf(job, sizeof job, "echo ran >> '%s'", log);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec until = {(time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L};
        while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL) == EINTR) {
        }
        execl(dlock_bin, dlock_bin, "run", "-q", "--once-per", period, lock, "--", "sh", "-c", job, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Two servers fire the same schedule, their starts 0.3 PERIOD apart one
 * way or the other, at every eighth of the period (so that some pairs
 * straddle the half-period point, where the nearest-multiple slot of the
 * second wave split them), in two consecutive periods: the job runs once
 * in each period, never twice in one, never zero times. */
START_TEST(once_per_every_phase_and_skew)
{
    enum { PHASES = 8, SKEWS = 2, ROUNDS = 2, SERVERS = 2 };
    const int64_t period = 4000;
    /* 0.3 PERIOD: a margin of 0.8 s for a loaded machine's start-up delays
     * (the unit test in check_run_policy goes to PERIOD/2 - 1 ms). */
    const int64_t skews[SKEWS] = {period * 3 / 10, -period * 3 / 10};
    int64_t base = (wall_ms() / period + 2) * period; /* at least one period ahead */
    pid_t pids[PHASES][SKEWS][ROUNDS][SERVERS];
    char logs[PHASES][SKEWS][4400];
    for (int k = 0; k < PHASES; k++) {
        for (int d = 0; d < SKEWS; d++) {
            char lock[400];
            snprintf(lock, sizeof lock, "%s-p%d-s%d", name, k, d);
            snprintf(logs[k][d], sizeof logs[k][d], "%s/ran-p%d-s%d", dir, k, d);
            for (int round = 0; round < ROUNDS; round++) {
                int64_t fired = base + round * period + k * period / PHASES;
                pids[k][d][round][0] = once_per_at(fired, "4s", lock, logs[k][d]);
                pids[k][d][round][1] = once_per_at(fired + skews[d], "4s", lock, logs[k][d]);
            }
        }
    }
    int bad = 0;
    for (int k = 0; k < PHASES; k++)
        for (int d = 0; d < SKEWS; d++) {
            for (int round = 0; round < ROUNDS; round++)
                for (int i = 0; i < SERVERS; i++) {
                    int rc = wait_exit(pids[k][d][round][i]);
                    ck_assert_msg(rc == 0 || rc == 75, "phase %d/8, skew %lld: dlock run exited %d", k,
                                  (long long)skews[d], rc);
                }
            int ran = count_lines(logs[k][d]);
            if (ran != ROUNDS) {
                fprintf(stderr,
                        "phase %d/8 of the period, second server %+lld ms: the job ran %d times in %d periods\n", k,
                        (long long)skews[d], ran, ROUNDS);
                bad++;
            }
        }
    ck_assert_msg(bad == 0, "%d of %d schedules did not run exactly once a period", bad, PHASES * SKEWS);
}
END_TEST

/* The record is the start of the successful run, not its end: a job that
 * takes longer than PERIOD/2 does not make the next period's run skip. */
START_TEST(once_per_long_job_next_period_runs)
{
    char log[4300];
    snprintf(log, sizeof log, "%s/ran", dir);
    int64_t start = wall_ms();
    ck_assert_int_eq(sh("'%s' run -q --once-per 4s %s -- sh -c 'sleep 2.6; echo ran >> %s'", dlock_bin, name, log), 0);
    int64_t next = start + 4000;
    while (wall_ms() < next)
        dlt_sleep_ms(20);
    ck_assert_int_eq(sh("'%s' run -q --once-per 4s %s -- sh -c 'echo ran >> %s'", dlock_bin, name, log), 0);
    ck_assert_int_eq(count_lines(log), 2);
}
END_TEST

/* --- issue 23: the metrics file ----------------------------------------------------------- */

/* The last success time of the file, -1 when it has none. */
static double last_success_in(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[2048];
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "dlock_run_last_success_time_seconds{", 36) == 0)
            v = atof(strrchr(line, ' ') + 1);
    fclose(f);
    return v;
}

/* Runs that overlap at their end share one metrics file: one succeeds, the
 * others fail or find the lock busy, all write the file at about the same
 * moment.  Every round, the file keeps the success (a read-modify-rename
 * without a lock loses it now and then). */
START_TEST(metrics_overlapping_runs_keep_the_success)
{
    enum { ROUNDS = 80, RUNS = 8 };
    char prom[4300];
    snprintf(prom, sizeof prom, "%s/job.prom", dir);
    int lost = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double before = (double)wall_ms() / 1000.0;
        pid_t pids[RUNS];
        for (int i = 0; i < RUNS; i++)
            pids[i] = sh_bg("exec '%s' run -q -w 5s --metrics-file %s %s -- sh -c 'exit %d'", dlock_bin, prom, name,
                            i == 0 ? 0 : 3);
        for (int i = 0; i < RUNS; i++)
            wait_exit(pids[i]);
        double last = last_success_in(prom);
        if (last < before - 0.002) {
            fprintf(stderr, "round %d: last success %.3f, this round's success after %.3f\n", round, last, before);
            lost++;
        }
    }
    ck_assert_msg(lost == 0, "the success was lost in %d of %d rounds", lost, ROUNDS);
}
END_TEST

/* A writer holds the file's lock (the hidden .NAME.lock beside it): dlock
 * run waits for it before reading the file it replaces. */
START_TEST(metrics_writer_waits_for_the_file_lock)
{
    char prom[4300];
    snprintf(prom, sizeof prom, "%s/job.prom", dir);
    ck_assert_int_eq(sh("'%s' run -q --metrics-file %s %s -- true", dlock_bin, prom, name), 0);
    double first = last_success_in(prom);
    ck_assert(first > 0);
    pid_t holder = sh_bg("exec flock %s/.job.prom.lock sleep 1.5", dir);
    dlt_sleep_ms(300);
    int64_t t0 = wall_ms();
    ck_assert_int_eq(sh("'%s' run -q --metrics-file %s %s -- sh -c 'exit 3'", dlock_bin, prom, name), 3);
    int64_t took = wall_ms() - t0;
    ck_assert_int_eq(wait_exit(holder), 0);
    ck_assert_msg(took >= 1000, "dlock run wrote the file after %lld ms, while another writer held its lock",
                  (long long)took);
    ck_assert(last_success_in(prom) == first);
    /* No file the textfile collector would read is left beside it. */
    ck_assert_int_eq(sh("test $(ls %s | grep -c prom) -eq 1", dir), 0);
}
END_TEST

/* A lock name that the label escapes (spaces, quotes, a backslash) keeps
 * its last success time across a failed run. */
START_TEST(metrics_escaped_name_keeps_the_success)
{
    char prom[4300];
    snprintf(prom, sizeof prom, "%s/job.prom", dir);
    ck_assert_int_eq(sh("'%s' run --metrics-file %s '%s a \"b\" c\\d e' -- true", dlock_bin, prom, name), 0);
    double first = last_success_in(prom);
    ck_assert(first > 0);
    ck_assert_int_eq(sh("'%s' run --metrics-file %s '%s a \"b\" c\\d e' -- sh -c 'exit 4'", dlock_bin, prom, name), 4);
    ck_assert_msg(last_success_in(prom) == first, "last success %.3f, was %.3f", last_success_in(prom), first);
}
END_TEST

/* --- issue 23: a break acts on exactly one name ------------------------------------------ */

/* Two holders (real processes) of N and N-2; release --force N: N-2 keeps
 * its holder, whose extend still succeeds. */
START_TEST(release_force_breaks_one_name)
{
    char other[400];
    snprintf(other, sizeof other, "%s-2", name);
    dlt_child a, b;
    ck_assert_int_eq(dlt_child_start(&a, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&a, 10000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_start(&b, url, other, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&b, 10000), DLOCK_OK);
    ck_assert_int_eq(sh("'%s' release --force %s >/dev/null", dlock_bin, name), 0);
    ck_assert_int_eq(sh("'%s' status %s >/dev/null", dlock_bin, other), 0);
    ck_assert_int_eq(dlt_child_cmd(&b, "extend 30000", 5000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_cmd(&a, "extend 30000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&b, "release", 5000), DLOCK_OK);
    dlt_child_stop(&a, 0);
    dlt_child_stop(&b, 0);
}
END_TEST

/* --- issue 23: SQLite tokens across a power loss ------------------------------------------ */

/* A power loss loses the last commits of the WAL that were not synced, and
 * reboots the host.  Simulated with real processes: tokens are taken, the
 * WAL's size is noted, more tokens are taken, then a copy of the database
 * gets the WAL cut back to that size (the lost frames) and the previous
 * boot's id in place of this one (the reboot).  The next token from the
 * copy is above every token handed out before the "power loss". */
START_TEST(sqlite_tokens_survive_lost_wal_frames)
{
    if (sh("command -v sqlite3 >/dev/null") != 0) {
        ck_assert_msg(!dlt_required("sqlite"), "the sqlite3 shell is needed");
        return;
    }
    char out[4300];
    snprintf(out, sizeof out, "%s/fence", dir);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sh("'%s' run %s -- sh -c 'echo $DLOCK_FENCE' > %s", dlock_bin, name, out), 0);
    struct stat st;
    char wal[4300];
    snprintf(wal, sizeof wal, "%s/locks.db-wal", dir);
    ck_assert_int_eq(stat(wal, &st), 0);
    long long synced = (long long)st.st_size;
    unsigned long long last = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(sh("'%s' run %s -- sh -c 'echo $DLOCK_FENCE' > %s", dlock_bin, name, out), 0);
        FILE *f = fopen(out, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%llu", &last), 1);
        fclose(f);
    }
    ck_assert_int_gt(stat(wal, &st), -1);
    ck_assert_int_gt((long long)st.st_size, synced); /* the later takes are in frames after it */
    /* The power loss: the database file as it is (no checkpoint ran), the
     * WAL without its last frames, no -shm (rebuilt from the WAL). */
    ck_assert_int_eq(sh("mkdir %s/after && cp %s/locks.db %s/after/locks.db && head -c %lld %s > %s/after/locks.db-wal",
                        dir, dir, dir, synced, wal, dir),
                     0);
    char fence_text[64] = "";
    ck_assert_int_eq(
        sh("sqlite3 %s/after/locks.db \"SELECT fence FROM dlock_locks WHERE name = '%s'\" > %s", dir, name, out), 0);
    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(fence_text, sizeof fence_text, f));
    fclose(f);
    ck_assert_msg(strtoull(fence_text, NULL, 10) < last, "the cut WAL kept fence %s (last token %llu): nothing lost",
                  fence_text, last);
    /* The reboot: every boot id the copy records is an earlier boot's. */
    ck_assert_int_eq(sh("sqlite3 %s/after/locks.db \"UPDATE dlock_locks SET boot_id = "
                        "'00000000-0000-4000-8000-000000000000';"
                        " UPDATE dlock_epoch SET boot_id = '00000000-0000-4000-8000-000000000000'\" 2>/dev/null ||"
                        " sqlite3 %s/after/locks.db \"UPDATE dlock_locks SET boot_id = "
                        "'00000000-0000-4000-8000-000000000000'\"",
                        dir, dir),
                     0);
    ck_assert_int_eq(
        sh("'%s' run -u sqlite://%s/after/locks.db %s -- sh -c 'echo $DLOCK_FENCE' > %s", dlock_bin, dir, name, out),
        0);
    unsigned long long after = 0;
    f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%llu", &after), 1);
    fclose(f);
    ck_assert_msg(after > last, "token %llu after the power loss, %llu before it", after, last);
}
END_TEST

/* --- names and limits in messages ---------------------------------------------------- */

/* The bytes of a file (at most 64 KiB), NUL-terminated; "" when absent. */
static char *slurp(const char *path)
{
    char *buf = calloc(1, 65536);
    ck_assert_ptr_nonnull(buf);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, 65535, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

/* Whether some line of `text` starts with `start`. */
static int has_line_starting(const char *text, const char *start)
{
    for (const char *p = text; p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, start, strlen(start)) == 0)
            return 1;
    }
    return 0;
}

/* A name with a newline is printed escaped by the busy message, status and
 * list: it never makes a line of its own that looks like dlock's. */
START_TEST(name_with_newline_cannot_forge_a_line)
{
    char forged[300], out[4300];
    snprintf(forged, sizeof forged, "%s\ndlock: lock 'x' was lost", name);
    snprintf(out, sizeof out, "%s/out", dir);
    setenv("DLOCK_FORGED_NAME", forged, 1);
    pid_t holder = sh_bg("'%s' run \"$DLOCK_FORGED_NAME\" -- sleep 4", dlock_bin);
    int64_t start = dlt_now_ms();
    while (sh("'%s' status \"$DLOCK_FORGED_NAME\" >/dev/null 2>&1", dlock_bin) != 0 && dlt_now_ms() - start < 3000)
        dlt_sleep_ms(20);
    ck_assert_int_eq(sh("'%s' run \"$DLOCK_FORGED_NAME\" -- true 2> %s", dlock_bin, out), 75);
    char *text = slurp(out);
    ck_assert_int_eq(count_lines(out), 1);
    ck_assert_ptr_nonnull(strstr(text, "\\ndlock: lock 'x' was lost"));
    ck_assert(!has_line_starting(text, "dlock: lock 'x'"));
    free(text);
    ck_assert_int_eq(sh("'%s' status \"$DLOCK_FORGED_NAME\" > %s 2>&1", dlock_bin, out), 0);
    ck_assert_int_eq(count_lines(out), 1);
    text = slurp(out);
    ck_assert_ptr_nonnull(strstr(text, "\\ndlock: lock 'x' was lost: held by"));
    free(text);
    ck_assert_int_eq(sh("'%s' list > %s 2>&1", dlock_bin, out), 0);
    ck_assert_int_eq(count_lines(out), 2); /* the heading and one lock */
    text = slurp(out);
    ck_assert(!has_line_starting(text, "dlock: lock 'x'"));
    free(text);
    /* JSON escapes it as JSON does. */
    ck_assert_int_eq(sh("'%s' status --json \"$DLOCK_FORGED_NAME\" > %s 2>&1", dlock_bin, out), 0);
    ck_assert_int_eq(count_lines(out), 1);
    ck_assert_int_eq(wait_exit(holder), 0);
    unsetenv("DLOCK_FORGED_NAME");
}
END_TEST

/* A 10,000-byte name is refused (64) with a message that shows it short. */
START_TEST(long_name_gives_a_short_message)
{
    char *huge = malloc(10001), out[4300];
    ck_assert_ptr_nonnull(huge);
    memset(huge, 'n', 10000);
    huge[10000] = '\0';
    setenv("DLOCK_HUGE_NAME", huge, 1);
    free(huge);
    snprintf(out, sizeof out, "%s/out", dir);
    static const char *const commands[] = {"run \"$DLOCK_HUGE_NAME\" -- true", "status \"$DLOCK_HUGE_NAME\"",
                                           "status --json \"$DLOCK_HUGE_NAME\"",
                                           "release --force \"$DLOCK_HUGE_NAME\""};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        ck_assert_int_eq(sh("'%s' %s > %s 2>&1", dlock_bin, commands[i], out), 64);
        char *text = slurp(out);
        ck_assert_msg(strlen(text) < 400, "%s: %zu bytes", commands[i], strlen(text));
        ck_assert_ptr_nonnull(strstr(text, "(10000 bytes)"));
        free(text);
    }
    unsetenv("DLOCK_HUGE_NAME");
    /* The longest name there is: standard output names it whole. */
    char longest[256];
    memset(longest, 'n', 255);
    longest[255] = '\0';
    ck_assert_int_eq(sh("'%s' status %s > %s 2>&1", dlock_bin, longest, out), 1);
    char *text = slurp(out);
    ck_assert_uint_eq(strlen(text), 255 + strlen(": free\n"));
    ck_assert(strncmp(text, longest, 255) == 0);
    free(text);
}
END_TEST

/* -t: under 100ms is refused as too short to be renewed, with the reason;
 * limits are said in the units a user writes; d is a unit. */
START_TEST(ttl_limits_in_human_units)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(sh("'%s' run -t 1ms %s -- true 2> %s", dlock_bin, name, out), 64);
    ck_assert(file_has(out, "too short to be renewed: at least 100ms"));
    ck_assert(file_has(out, "TTL/3"));
    ck_assert_int_eq(sh("'%s' run -t 99ms %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(sh("'%s' run -t 99999d %s -- true 2> %s", dlock_bin, name, out), 64);
    ck_assert(file_has(out, "from 100ms to 24.855d"));
    ck_assert(!file_has(out, "2147483647"));
    ck_assert_int_eq(sh("'%s' run -w 99999d %s -- true 2> %s", dlock_bin, name, out), 64);
    ck_assert(file_has(out, "at most 24.855d"));
    ck_assert_int_eq(sh("'%s' run -t 100ms %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(sh("'%s' run -t 24.855d %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(sh("'%s' run -t 2d -m 0.5s %s -- true", dlock_bin, name), 0);
}
END_TEST

/* A scheme that is a typo of a built-in one is a usage error (64) with a
 * suggestion; a scheme of a backend not built in stays 69. */
START_TEST(scheme_typo_is_a_usage_error)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(sh("'%s' run -u 'sqlitee://%s/x.db' %s -- true 2> %s", dlock_bin, dir, name, out), 64);
    ck_assert(file_has(out, "did you mean 'sqlite'"));
    ck_assert_int_eq(sh("'%s' status -u 'sqlte://%s/x.db' %s 2> %s", dlock_bin, dir, name, out), 64);
    ck_assert(file_has(out, "did you mean 'sqlite'"));
    ck_assert_int_eq(sh("'%s' list -u 'zookeeper://x/0' 2>/dev/null", dlock_bin), 69);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("process");
    TCase *t = tcase_create("exclusion");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, concurrent_runs_exactly_one);
    tcase_add_test(t, concurrent_waiters_serialize);
    suite_add_tcase(s, t);
    t = tcase_create("faults");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, killed_holder_frees_after_ttl_not_before);
    tcase_add_test(t, stopped_holder_loses_lock);
    tcase_add_test(t, stopped_dlock_terminates_its_job);
    tcase_add_test(t, lost_lock_kills_stubborn_job);
    tcase_add_test(t, job_dies_with_dlock);
    tcase_add_test(t, lost_at_the_final_release_is_said);
    tcase_add_test(t, sqlite_without_boot_id_refuses);
    suite_add_tcase(s, t);
    t = tcase_create("cli");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, heartbeat_keeps_long_job_locked);
    tcase_add_test(t, min_hold_keeps_the_lock);
    tcase_add_test(t, forwards_sigint);
    tcase_add_test(t, forwards_sigterm);
    tcase_add_test(t, forwards_sighup);
    tcase_add_test(t, job_killed_by_signal_gives_128_plus_n);
    tcase_add_test(t, signal_while_waiting);
    tcase_add_test(t, exit_statuses);
    tcase_add_test(t, refused_login_exits_69_on_every_backend);
    tcase_add_test(t, missing_client_library_exits_69);
    tcase_add_test(t, busy_exit_and_conflict_code);
    tcase_add_test(t, status_free_and_held);
    tcase_add_test(t, status_output_has_no_control_characters);
    tcase_add_test(t, default_url_for_a_user);
    tcase_add_test(t, sqlite_refuses_symlinked_database);
    suite_add_tcase(s, t);
    t = tcase_create("every-server-store");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, dlock_run_against_every_server_store);
    suite_add_tcase(s, t);
    t = tcase_create("ops");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, once_per_runs_once_in_a_slot);
    tcase_add_test(t, once_per_retries_a_failed_run);
    tcase_add_test(t, job_gets_name_and_fence);
    tcase_add_test(t, list_table_and_json);
    tcase_add_test(t, status_json);
    tcase_add_test(t, release_force_breaks);
    tcase_add_test(t, metrics_file_is_prometheus_text);
    tcase_add_test(t, sqlite_old_table_gets_last_slot);
    suite_add_tcase(s, t);
    t = tcase_create("once-per-window");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, once_per_every_phase_and_skew);
    tcase_add_test(t, once_per_long_job_next_period_runs);
    suite_add_tcase(s, t);
    t = tcase_create("metrics-file");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, metrics_overlapping_runs_keep_the_success);
    tcase_add_test(t, metrics_writer_waits_for_the_file_lock);
    tcase_add_test(t, metrics_escaped_name_keeps_the_success);
    suite_add_tcase(s, t);
    t = tcase_create("break-one-name");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, release_force_breaks_one_name);
    suite_add_tcase(s, t);
    t = tcase_create("power-loss");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, sqlite_tokens_survive_lost_wal_frames);
    suite_add_tcase(s, t);
    t = tcase_create("messages");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, name_with_newline_cannot_forge_a_line);
    tcase_add_test(t, long_name_gives_a_short_message);
    tcase_add_test(t, ttl_limits_in_human_units);
    tcase_add_test(t, scheme_typo_is_a_usage_error);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
