/* Shared fixtures for the Check suites. */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int dlt_required(const char *backend)
{
    const char *req = getenv("DLOCK_TEST_REQUIRE");
    if (!req || !*req)
        return 0;
    if (strstr(req, "all"))
        return 1;
    return strstr(req, backend) != NULL;
}

const char *dlt_require_url(const char *env_var, const char *backend)
{
    const char *url = getenv(env_var);
    if (url && *url)
        return url;
    if (dlt_required(backend)) {
        fprintf(stderr, "%s is not set but DLOCK_TEST_REQUIRE requires the %s backend\n", env_var, backend);
        exit(DLT_HARD_ERROR);
    }
    fprintf(stderr, "%s is not set: skipping the %s tests\n", env_var, backend);
    exit(DLT_SKIP);
}

/* Temporary folders are removed when the process that made them exits. */
static char *tmpdirs[64];
static pid_t tmpdirs_owner;
static int tmpdir_count;

static void remove_tmpdirs(void)
{
    if (getpid() != tmpdirs_owner)
        return; /* a forked child leaving: the folders are its parent's */
    for (int i = 0; i < tmpdir_count; i++) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdirs[i]);
        if (system(cmd) != 0) {
        }
        free(tmpdirs[i]);
    }
    tmpdir_count = 0;
}

/* The test program's own process (Check forks each test from it).  The
 * temporary folders of all its tests carry its pid in their names, so that
 * at its exit it can stop what a test that failed half-way left running in
 * them (a failed assertion ends a forked test with _exit, before its own
 * clean-up: a private server of the crash tests, say) and remove them. */
static pid_t program_pid;

static const char *tmp_base(void)
{
    const char *base = getenv("TMPDIR");
    return base && *base ? base : "/tmp";
}

static void end_of_program(void)
{
    if (getpid() != program_pid)
        return;
    char cmd[4300];
    /* "[/]": the pattern does not match the shell that runs pkill. */
    snprintf(cmd, sizeof cmd, "pkill -KILL -f '[/]dlock-test-%ld-' 2>/dev/null", (long)program_pid);
    if (system(cmd) != 0) {
    } /* 1: nothing was left running, the usual case */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/dlock-test-%ld-*", tmp_base(), (long)program_pid);
    if (system(cmd) != 0) {
    }
}

__attribute__((constructor)) static void note_program(void)
{
    program_pid = getpid();
    atexit(end_of_program);
}

char *dlt_tmpdir(void)
{
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/dlock-test-%ld-XXXXXX", tmp_base(), (long)program_pid);
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        perror("mkdtemp");
        exit(DLT_HARD_ERROR);
    }
    if (tmpdirs_owner != getpid()) {
        /* first folder of this process (a test forked by Check, say) */
        tmpdir_count = 0;
        tmpdirs_owner = getpid();
        atexit(remove_tmpdirs);
    }
    if (tmpdir_count < (int)(sizeof tmpdirs / sizeof tmpdirs[0]))
        tmpdirs[tmpdir_count++] = strdup(dir);
    return strdup(dir);
}

char **dlt_conformance_urls(int *count)
{
    const char *env = getenv("DLOCK_TEST_URLS");
    char **urls = calloc(64, sizeof *urls);
    int n = 0;
    if (env && *env) {
        char *copy = strdup(env), *save = NULL;
        for (char *tok = strtok_r(copy, " \t\n", &save); tok && n < 63; tok = strtok_r(NULL, " \t\n", &save))
            urls[n++] = strdup(tok);
        free(copy);
    } else {
        char *dir = dlt_tmpdir();
        char buf[4200];
        snprintf(buf, sizeof buf, "sqlite://%s/conformance.db", dir);
        urls[n++] = strdup(buf);
        free(dir);
    }
    urls[n] = NULL;
    *count = n;
    return urls;
}

int dlt_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

/* One URL's suite; the number of failed tests (-1: the URL cannot be opened). */
static int run_one_url(const char *what, Suite *(*make_suite)(void), const char **url, const char **backend, char *u,
                       int i)
{
    *url = u;
    *backend = dlt_backend_of(u);
    if (!(*backend)[0]) {
        dlock_client *c = NULL;
        int rc = dlock_open(u, &c);
        fprintf(stderr, "%s: URL #%d cannot be opened: %s (%s)\n", what, i + 1, dlock_strerror(rc), dlock_last_error());
        return -1;
    }
    int failed = dlt_run_suite(make_suite());
    return failed;
}

/* The URLs are separate stores (or separate tables and keys of one server),
 * so their suites may run side by side: DLOCK_TEST_PARALLEL=N runs up to N
 * at once in child processes, each writing to its own file, printed in URL
 * order afterwards.  The tests' time bounds are liveness bounds, loose
 * enough for a loaded machine. */
int dlt_run_per_url(const char *what, Suite *(*make_suite)(void), const char **url, const char **backend)
{
    int count = 0, failed = 0;
    char **urls = dlt_conformance_urls(&count);
    const char *env = getenv("DLOCK_TEST_PARALLEL");
    int parallel = env ? atoi(env) : 1;
    if (parallel <= 1 || count <= 1) {
        for (int i = 0; i < count; i++) {
            int f = run_one_url(what, make_suite, url, backend, urls[i], i);
            failed += f < 0 ? 1 : f;
        }
    } else {
        /* Static, not malloc'ed: every test process forked from here would
         * otherwise count them as leaks at its exit (LeakSanitizer). */
        static pid_t pids[64];
        static FILE *outs[64];
        if (count > 64)
            count = 64;
        int running = 0, next = 0;
        while (next < count || running > 0) {
            if (next < count && running < parallel) {
                int i = next++;
                outs[i] = tmpfile();
                fflush(stdout);
                fflush(stderr);
                pid_t pid = fork();
                if (pid == 0) {
                    if (outs[i]) {
                        dup2(fileno(outs[i]), 1);
                        dup2(fileno(outs[i]), 2);
                    }
                    int f = run_one_url(what, make_suite, url, backend, urls[i], i);
                    fflush(stdout);
                    fflush(stderr);
                    _exit(f < 0 ? 1 : (f > 100 ? 100 : f));
                }
                pids[i] = pid;
                if (pid < 0) {
                    fprintf(stderr, "%s: fork failed\n", what);
                    failed++;
                } else {
                    running++;
                }
                continue;
            }
            int st = 0;
            pid_t done = waitpid(-1, &st, 0);
            if (done < 0) {
                if (errno == EINTR)
                    continue;
                break;
            }
            for (int i = 0; i < count; i++)
                if (pids[i] == done) {
                    running--;
                    if (!WIFEXITED(st)) {
                        fprintf(stderr, "%s: URL #%d: the suite's process died (status %d)\n", what, i + 1, st);
                        failed++;
                    } else {
                        failed += WEXITSTATUS(st);
                    }
                }
        }
        /* The failures again at the end, with their URL's number and store
         * (never the URL: it may carry a password): a log shown by its tail
         * still says what failed where. */
        static char failures[16][600];
        int nfail = 0;
        for (int i = 0; i < count; i++) {
            if (!outs[i])
                continue;
            rewind(outs[i]);
            char line[4096];
            while (fgets(line, sizeof line, outs[i])) {
                fputs(line, stdout);
                if (nfail < 16 && (strstr(line, ":F:") || strstr(line, ":E:")))
                    snprintf(failures[nfail++], sizeof failures[0], "URL #%d (%s): %.*s", i + 1,
                             dlt_backend_of(urls[i]), (int)strcspn(line, "\n") < 500 ? (int)strcspn(line, "\n") : 500,
                             line);
            }
            fclose(outs[i]);
        }
        for (int i = 0; i < nfail; i++)
            printf("%s: failed on %s\n", what, failures[i]);
        fflush(stdout);
    }
    for (int i = 0; i < count; i++)
        free(urls[i]);
    free(urls);
    return failed;
}

char *dlt_unique_name(const char *prefix)
{
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char buf[256];
    snprintf(buf, sizeof buf, "%s-%ld-%u-%lx", prefix, (long)getpid(), ++counter,
             (unsigned long)(ts.tv_nsec ^ ((unsigned long)ts.tv_sec << 20)));
    return strdup(buf);
}

void dlt_fixture_open(const char *url, const char *prefix, dlock_client **client, char **name)
{
    int rc = dlock_open(url, client);
    ck_assert_msg(rc == DLOCK_OK, "dlock_open: %d %s", rc, dlock_last_error());
    *name = dlt_unique_name(prefix);
}

void dlt_fixture_close(dlock_client **client, char **name)
{
    dlock_close(*client);
    *client = NULL;
    free(*name);
}

int64_t dlt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dlt_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

const char *dlt_backend_of(const char *url)
{
    static char name[32];
    dlock_client *c = NULL;
    name[0] = '\0';
    if (dlock_open(url, &c) == DLOCK_OK) {
        snprintf(name, sizeof name, "%s", dlock_backend(c));
        dlock_close(c);
    }
    return name;
}

static void child_write(int fd, const char *tag, int status)
{
    char line[64];
    int len = snprintf(line, sizeof line, "%s %d\n", tag, status);
    if (write(fd, line, (size_t)len) != len)
        _exit(3);
}

static void child_main(int in, int out, const char *url, const char *name, uint32_t ttl_ms, int32_t wait_ms)
{
    dlock_client *client = NULL;
    dlock_lock *lock = NULL;
    int rc = dlock_open(url, &client);
    if (rc == DLOCK_OK)
        rc = dlock_acquire(client, name, ttl_ms, wait_ms, &lock);
    child_write(out, "acq", rc);
    FILE *cmds = fdopen(in, "r");
    char line[128];
    while (cmds && fgets(line, sizeof line, cmds)) {
        unsigned long ttl;
        if (sscanf(line, "extend %lu", &ttl) == 1) {
            child_write(out, "ext", lock ? dlock_extend(lock, (uint32_t)ttl) : DLOCK_EINVAL);
        } else if (strncmp(line, "release", 7) == 0) {
            child_write(out, "rel", lock ? dlock_release(lock) : DLOCK_EINVAL);
            lock = NULL;
        } else if (strncmp(line, "remaining", 9) == 0) {
            child_write(out, "rem", lock ? (int)dlock_remaining_ms(lock) : -1);
        } else if (strncmp(line, "exit", 4) == 0) {
            break;
        }
    }
    _exit(0);
}

int dlt_child_start(dlt_child *c, const char *url, const char *name, uint32_t ttl_ms, int32_t wait_ms)
{
    int down[2], up[2];
    if (pipe(down) || pipe(up))
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        child_main(down[0], up[1], url, name, ttl_ms, wait_ms);
    }
    close(down[0]);
    close(up[1]);
    c->pid = pid;
    c->to_child = down[1];
    c->from_child = up[0];
    return 0;
}

int dlt_child_read(dlt_child *c, int timeout_ms)
{
    char line[64];
    size_t len = 0;
    int64_t deadline = dlt_now_ms() + timeout_ms;
    while (len < sizeof line - 1) {
        int64_t left = deadline - dlt_now_ms();
        if (left < 0)
            return DLT_TIMEOUT;
        struct pollfd p = {c->from_child, POLLIN, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return DLT_TIMEOUT;
        ssize_t got = read(c->from_child, line + len, 1);
        if (got <= 0)
            return DLT_TIMEOUT;
        if (line[len] == '\n')
            break;
        len++;
    }
    line[len] = '\0';
    char tag[8];
    int status;
    if (sscanf(line, "%7s %d", tag, &status) != 2)
        return DLT_TIMEOUT;
    return status;
}

int dlt_child_cmd(dlt_child *c, const char *cmd, int timeout_ms)
{
    size_t len = strlen(cmd);
    if (write(c->to_child, cmd, len) != (ssize_t)len || write(c->to_child, "\n", 1) != 1)
        return DLT_TIMEOUT;
    return dlt_child_read(c, timeout_ms);
}

int dlt_child_stop(dlt_child *c, int sig)
{
    int status = 0;
    if (c->pid <= 0)
        return -1;
    if (sig)
        kill(c->pid, sig);
    else if (write(c->to_child, "exit\n", 5) != 5)
        kill(c->pid, SIGKILL);
    close(c->to_child);
    close(c->from_child);
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
    }
    c->pid = -1;
    return status;
}

int64_t dlt_acquire_within(const char *url, const char *name, uint32_t ttl_ms, int64_t timeout_ms)
{
    int64_t start = dlt_now_ms();
    dlock_client *client = NULL;
    while (dlt_now_ms() - start <= timeout_ms) {
        if (!client && dlock_open(url, &client) != DLOCK_OK) {
            client = NULL;
            dlt_sleep_ms(20);
            continue;
        }
        dlock_lock *lock = NULL;
        int rc = dlock_acquire(client, name, ttl_ms, 0, &lock);
        if (rc == DLOCK_OK) {
            int64_t took = dlt_now_ms() - start;
            dlock_release(lock);
            dlock_close(client);
            return took;
        }
        dlt_sleep_ms(10);
    }
    dlock_close(client);
    return -1;
}

int dlt_system(const char *cmd)
{
    fflush(NULL);
    int status = system(cmd);
    if (status == -1)
        return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

void *dlt_waiter_main(void *arg)
{
    dlt_waiter *w = arg;
    dlock_lock *l = NULL;
    w->rc = dlock_acquire(w->client, w->name, 5000, w->wait_ms, &l);
    w->done_ms = dlt_now_ms();
    if (l)
        dlock_release(l);
    return NULL;
}

/* stall_first: the store stops before the acquire begins (waiting is
 * then not called), and the cancel comes 300 ms into the acquire. */
static int64_t cancel_on_stalled_store(const char *url, const char *name, void (*waiting)(void), void (*stall)(void),
                                       void (*resume)(void), int stall_first)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 60000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    dlt_waiter w = {NULL, name, DLOCK_WAIT_FOREVER, 99, 0};
    ck_assert_int_eq(dlock_open(url, &w.client), DLOCK_OK);
    pthread_t t;
    if (stall_first)
        stall();
    ck_assert_int_eq(pthread_create(&t, NULL, dlt_waiter_main, &w), 0);
    if (stall_first) {
        dlt_sleep_ms(300); /* the acquire's first round trip goes unanswered */
    } else {
        waiting();
        stall();
        dlt_sleep_ms(700); /* past a waiter's usual look again */
    }
    int64_t canceled = dlt_now_ms();
    ck_assert_int_eq(dlock_cancel(w.client), DLOCK_OK);
    for (int i = 0; i < 160 && w.done_ms == 0; i++)
        dlt_sleep_ms(50);
    resume();
    pthread_join(t, NULL);
    int64_t took = w.done_ms - canceled;
    fprintf(stderr, "cancel of %s on a store that does not answer: %d after %lld ms\n",
            stall_first ? "an acquire begun once it stopped" : "a wait", w.rc, (long long)took);
    ck_assert_msg(w.rc == DLOCK_ECANCELED, "the wait ended with %d", w.rc);
    ck_assert_msg(took <= 2000, "the cancel took %lld ms", (long long)took);
    /* The client works again once the store does, and nothing of the
     * cancelled wait is in its way. */
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 15000), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(w.client, name, 5000, 15000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(w.client);
    dlt_child_stop(&holder, 0);
    return took;
}

int64_t dlt_cancel_on_stalled_store(const char *url, const char *name, void (*waiting)(void), void (*stall)(void),
                                    void (*resume)(void))
{
    return cancel_on_stalled_store(url, name, waiting, stall, resume, 0);
}

int64_t dlt_cancel_before_stalled_wait(const char *url, const char *name, void (*stall)(void), void (*resume)(void))
{
    return cancel_on_stalled_store(url, name, NULL, stall, resume, 1);
}

pid_t dlt_hold_then_release(dlt_child *holder, const char *url, const char *name, uint32_t ttl_ms, int64_t hold_ms)
{
    ck_assert_int_eq(dlt_child_start(holder, url, name, ttl_ms, 0), 0);
    ck_assert_int_eq(dlt_child_read(holder, 10000), DLOCK_OK);
    char extend[32];
    snprintf(extend, sizeof extend, "extend %u", (unsigned)ttl_ms);
    fflush(NULL);
    pid_t driver = fork();
    ck_assert(driver >= 0);
    if (driver == 0) {
        int ok = 1;
        int64_t start = dlt_now_ms();
        while (dlt_now_ms() - start < hold_ms - 700) {
            dlt_sleep_ms(700);
            ok &= dlt_child_cmd(holder, extend, 10000) == DLOCK_OK;
        }
        dlt_sleep_ms(hold_ms - (dlt_now_ms() - start));
        ok &= dlt_child_cmd(holder, "release", 10000) == DLOCK_OK;
        _exit(ok ? 0 : 1);
    }
    return driver;
}

int dlt_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return dlt_system(cmd);
}

int dlt_wait_for_file(const char *path, int64_t timeout_ms)
{
    int64_t start = dlt_now_ms();
    while (access(path, F_OK) != 0) {
        if (dlt_now_ms() - start > timeout_ms)
            return 0;
        dlt_sleep_ms(10);
    }
    return 1;
}

const char *dlt_slurp(const char *path)
{
    static char buf[65536];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

const char *dlt_dlock_bin(void)
{
    const char *bin = getenv("DLOCK_BIN");
    return bin && *bin ? bin : "./dlock";
}

/* A name held in lease mode is shown by a session-mode URL's check, and
 * the other way round, as information: the two modes exclude each other
 * (issue 23), and the holder line shows the holder in either mode.  Files
 * go to dir. */
void dlt_check_other_mode_holder(const char *session_url, const char *dir, const char *name)
{
    const char *dlock_bin = dlt_dlock_bin();
    char lease[4500], out[4400];
    snprintf(lease, sizeof lease, "%s%smode=lease", session_url, strchr(session_url, '?') ? "&" : "?");
    snprintf(out, sizeof out, "%s/out", dir);
    const char *urls[2] = {lease, session_url}, *other[2] = {session_url, lease}, *mode[2] = {"in lease", "in session"};
    for (int i = 0; i < 2; i++) {
        dlock_client *c = NULL;
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_open(urls[i], &c), DLOCK_OK);
        ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
        int rc = dlt_sh("'%s' check -u '%s' '%s' >'%s'", dlock_bin, other[i], name, out);
        const char *text = dlt_slurp(out);
        ck_assert_msg(rc <= 1 && strstr(text, "info  holder (other mode)") && strstr(text, mode[i]) &&
                          strstr(text, "exclude each other"),
                      "exit %d: %s", rc, text);
        ck_assert_msg(strstr(text, "is held by") != NULL, "%s", text);
        dlock_release(l);
        dlock_close(c);
        dlt_sh("'%s' check -u '%s' '%s' >'%s'", dlock_bin, other[i], name, out);
        ck_assert_msg(strstr(dlt_slurp(out), "holder (other mode)") && !strstr(dlt_slurp(out), "warn  holder"), "%s",
                      dlt_slurp(out));
    }
}

dlock_history *dlt_read_history(const char *store, const char *lock, size_t max)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(store, &c), DLOCK_OK);
    dlock_history *h = NULL;
    int rc = dlock_history_read(c, lock, max, &h);
    ck_assert_msg(rc == DLOCK_OK, "dlock_history_read: %s", dlock_last_error());
    dlock_close(c);
    return h;
}
