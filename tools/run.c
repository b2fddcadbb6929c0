/*
 * The run loop of `dlock run`, as libuv builds one: the state sits in one
 * struct, every event (a signal, the job's end, news from the heartbeat
 * thread, a timer) goes to a short handler that updates it, and the timing
 * decisions are run_next() in run_policy.c, a pure function with unit tests.
 *
 * The main thread owns the job and the signals (a signalfd); the heartbeat
 * thread (heartbeat.c) talks to the store.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dlock.h"
#include "format.h"
#include "heartbeat.h"
#include "job.h"
#include "metrics.h"
#include "run.h"
#include "run_policy.h"

/* Once nothing is left to protect (the job is over and the lock lost, or a
 * signal came before the lock did), dlock waits this long for the library
 * to let go, then exits anyway: a store that stopped answering never keeps
 * dlock alive (the lock ends with its lease or its connection). */
#define LET_GO_MS 1500
/* A signal while waiting: dlock_cancel() again this often until the wait
 * ends (a cancel that comes before the wait has started is not kept). */
#define CANCEL_EVERY_MS 50

struct run {
    const struct run_options *o;
    struct run_state st;
    dlock_client *client;
    heartbeat hb;
    dlock_lock *lock;   /* from the heartbeat's HB_ACQUIRED until the release is asked */
    sigset_t orig_mask; /* the job gets it back */
    int signal_fd, timer_fd;
    pid_t job, guard;
    int job_status;
    int lease_ok_at_exit; /* the lease was still confirmed when the job ended */
    int released, release_status;
    int finished, exit_status; /* the run ended before any job (busy, error) */
    int leave_now;             /* exit without waiting for the library (see leave()) */
    int outcome;               /* enum run_outcome once known, -1 before */
    int64_t store_start_ms;    /* --once-per: the store's clock when the lock was taken (run_policy.h) */
    uint64_t fence;            /* the lock's fencing token, 0 none: for the run history */
    int store_unreachable;     /* the acquire found no store: no history is written there */
    int store_silent;          /* the last extend got no answer (reset by one that did) */
    int64_t last_answer_ms;    /* when the store last confirmed the lock (acquire, extend) */
    char **envp;               /* the job's environment: dlock's, with DLOCK_NAME and DLOCK_FENCE */
    char *env_added[2];        /* the strings of envp that dlock made */
    char shown[FMT_NAME_SHOWN_SIZE]; /* the name as messages show it: escaped, a long one cut */
};

/* --- handlers ------------------------------------------------------------------ */

static void on_child(struct run *r)
{
    int status;
    if (r->job <= 0 || !r->st.job_running || waitpid(r->job, &status, WNOHANG) != r->job)
        return;
    r->st.job_running = 0;
    r->st.job_done = 1;
    r->job_status = job_exit_status(status);
    r->lease_ok_at_exit = !r->st.lost && dlock_remaining_ms(r->lock) > 0;
    /* The start of this run is recorded while the lock is still held,
     * before the release; only a success records it, so a failed run can
     * be retried. */
    if (r->o->once_per_ms > 0 && r->lease_ok_at_exit && run_slot_marks_done(r->job_status)) {
        int rc = dlock_record_put(r->lock, r->store_start_ms);
        if (rc == DLOCK_ELOST) {
            r->lease_ok_at_exit = 0;
        } else if (rc != DLOCK_OK) {
            cli_say("warning: cannot record the success of lock '%s' (%s); another server may run it again"
                    " in this period",
                    r->shown, dlock_last_error());
        }
    }
}

static void on_signal(struct run *r, int sig, int64_t now)
{
    if (sig == SIGCHLD) {
        on_child(r);
        return;
    }
    r->st.told_to_stop = 1;
    if (r->st.job_running) {
        kill(-r->job, sig); /* forward to the job's process group */
        return;
    }
    r->st.got_signal = sig;
    r->st.next_cancel_at = now;
}

static void say_busy(struct run *r)
{
    char who[512];
    if (dlock_holder(r->client, r->o->name, who, sizeof who) == 1) {
        cli_make_printable(who);
        cli_say("lock '%s' is busy (held by %s); not running the job", r->shown, who);
    } else {
        cli_say("lock '%s' is busy; not running the job", r->shown);
    }
}

static void on_acquire_failed(struct run *r, int status)
{
    heartbeat_join(&r->hb);
    r->outcome = status == DLOCK_EBUSY ? OUTCOME_BUSY : OUTCOME_ERROR;
    r->store_unreachable = status == DLOCK_ECONN;
    if (status == DLOCK_EBUSY) {
        if (!cli_quiet)
            say_busy(r);
        r->exit_status = r->o->conflict_exit;
    } else if (status == DLOCK_ECANCELED && r->st.got_signal) {
        r->exit_status = 128 + r->st.got_signal;
    } else {
        char why[512];
        heartbeat_error(&r->hb, why, sizeof why);
        cli_say("cannot take lock '%s': %s", r->shown, why);
        r->exit_status = cli_exit_for(status);
    }
    /* Told to stop: leave now, without closing, which on a store that does
     * not answer could wait for its connect timeout; exiting closes. */
    if (r->st.got_signal)
        r->leave_now = 1;
    r->finished = 1;
}

static void start_the_job(struct run *r)
{
    int exec_errno = 0;
    r->job = job_start(r->o->command, r->envp, &r->orig_mask, &exec_errno);
    if (r->job < 0 || exec_errno)
        r->outcome = OUTCOME_ERROR;
    if (r->job < 0) {
        cli_say("cannot start %s: %s", r->o->command[0], strerror(errno));
        r->st.job_done = 1;
        r->job_status = (int)-r->job;
    } else if (exec_errno) {
        cli_say("cannot run %s: %s", r->o->command[0], strerror(exec_errno));
        int status;
        waitpid(r->job, &status, 0);
        r->st.job_done = 1;
        r->job_status = exec_errno == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC;
    } else {
        r->st.job_running = 1;
        r->guard = job_start_guard(r->job);
    }
}

/* DLOCK_NAME and DLOCK_FENCE (when the store gives a token) for the job,
 * on top of dlock's own environment.  Built before the fork: the child of
 * a threaded process may not allocate. */
static char **job_environment(const char *name, dlock_lock *lock, char *added[2])
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + 3, sizeof *envp);
    if (!envp)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "DLOCK_NAME=", 11) != 0 && strncmp(environ[i], "DLOCK_FENCE=", 12) != 0)
            envp[k++] = environ[i];
    size_t len = strlen(name) + 12;
    char *name_var = malloc(len);
    if (!name_var) {
        free(envp);
        return NULL;
    }
    snprintf(name_var, len, "DLOCK_NAME=%s", name);
    envp[k++] = added[0] = name_var;
    uint64_t token;
    if (dlock_fence(lock, &token) == DLOCK_OK) {
        char *fence_var = malloc(40);
        if (fence_var) {
            snprintf(fence_var, 40, "DLOCK_FENCE=%llu", (unsigned long long)token);
            envp[k++] = added[1] = fence_var;
        }
    }
    return envp;
}

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --once-per: whether this run is still to do (0), done already in this
 * period (1), or the store could not say (-1, with job_status set).  Asked
 * right after the lock was taken, on the store's clock. */
static int slot_is_done(struct run *r)
{
    int64_t store_now, last_start;
    int rc = dlock_store_time(r->client, &store_now);
    if (rc == DLOCK_OK) {
        r->store_start_ms = store_now;
        rc = dlock_record_get(r->lock, &last_start);
    }
    if (rc != DLOCK_OK) {
        cli_say("cannot read the run record of lock '%s': %s", r->shown, dlock_last_error());
        r->job_status = rc == DLOCK_ELOST ? EXIT_LOST : cli_exit_for(rc);
        return -1;
    }
    if (!run_once_done(last_start, store_now, r->o->once_per_ms))
        return 0;
    if (!cli_quiet) {
        time_t at = (time_t)(last_start / 1000);
        struct tm tm;
        char when[40] = "?";
        if (gmtime_r(&at, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cli_say("lock '%s': a run that started at %s (less than half the period ago) has run already;"
                " not running the job",
                r->shown, when);
    }
    r->job_status = r->o->conflict_exit;
    return 1;
}

static void on_acquired(struct run *r, int64_t now)
{
    r->lock = r->hb.lock;
    if (dlock_fence(r->lock, &r->fence) != DLOCK_OK)
        r->fence = 0;
    r->st.acquired = 1;
    r->st.acquired_at = now;
    r->last_answer_ms = now;
    if (r->st.got_signal) {
        /* Stopped while waiting, just as the lock came: do not start. */
        r->st.job_done = 1;
        r->job_status = 128 + r->st.got_signal;
        return;
    }
    if (r->o->once_per_ms > 0) {
        int done = slot_is_done(r);
        if (done != 0) {
            r->outcome = done > 0 ? OUTCOME_DONE : OUTCOME_ERROR;
            r->st.job_done = 1;
            return;
        }
    }
    r->envp = job_environment(r->o->name, r->lock, r->env_added);
    if (!r->envp) {
        cli_say("out of memory");
        r->outcome = OUTCOME_ERROR;
        r->st.job_done = 1;
        r->job_status = EXIT_OSERR;
        return;
    }
    start_the_job(r);
}

static void on_extended(struct run *r, int status, int64_t now)
{
    char why[512];
    heartbeat_error(&r->hb, why, sizeof why);
    if (status == DLOCK_OK) {
        r->store_silent = 0;
        r->last_answer_ms = now;
    } else if (status != DLOCK_ELOST || now - r->last_answer_ms >= r->o->ttl_ms / 2) {
        /* No answer, or "lost" after half a lease without one: the library
         * gave the lock up because the store stopped answering (it renews
         * every TTL/3 while the store works).  A lock broken or taken away
         * while the store answers is lost too, but the store is there. */
        r->store_silent = 1;
    }
    if (status == DLOCK_ELOST && !r->st.lost) {
        r->st.lost = 1;
        if (r->st.job_running)
            cli_say("lock '%s' was lost (%s): stopping the job", r->shown, why);
        else if (!cli_quiet)
            cli_say("lock '%s' was lost after the job ended (%s)", r->shown, why);
    } else if (status != DLOCK_OK && status != DLOCK_ELOST && !cli_quiet) {
        cli_say("warning: cannot extend lock '%s' (%s); retrying", r->shown, why);
    }
}

static void on_heartbeat(struct run *r, int64_t now)
{
    struct heartbeat_event ev;
    if (heartbeat_read(&r->hb, &ev) != 0) {
        r->released = 1; /* the thread is gone: nothing more will come */
        r->release_status = DLOCK_OK;
        return;
    }
    if (ev.kind == HB_ACQUIRED && ev.status != DLOCK_OK) {
        on_acquire_failed(r, ev.status);
    } else if (ev.kind == HB_ACQUIRED) {
        on_acquired(r, now);
    } else if (ev.kind == HB_EXTENDED) {
        on_extended(r, ev.status, now);
    } else if (ev.kind == HB_RELEASED) {
        r->released = 1;
        r->release_status = ev.status;
    }
}

/* --- the loop ---------------------------------------------------------------------- */

/* Do what run_next() decided; 1 when dlock must exit without the library. */
static int perform(struct run *r, enum run_action action)
{
    switch (action) {
    case RUN_LEASE_RAN_OUT:
        r->store_silent = 1; /* no extend came back in time */
        if (cli_quiet)
            break;
        if (r->st.job_running)
            cli_say("lock '%s' not confirmed before its lease ran out: stopping the job", r->shown);
        else
            cli_say("lock '%s' was not confirmed before its lease ran out, after the job ended", r->shown);
        break;
    case RUN_TERM_JOB:
        kill(-r->job, SIGTERM);
        break;
    case RUN_KILL_JOB:
        kill(-r->job, SIGKILL);
        break;
    case RUN_RELEASE:
        heartbeat_stop(&r->hb);
        break;
    case RUN_CANCEL_WAIT:
        dlock_cancel(r->client);
        break;
    case RUN_ABANDON:
        return 1;
    case RUN_WAIT:
        break;
    }
    return 0;
}

/* Wait for a signal, news from the heartbeat, or wake_at; hand it on. */
static int wait_and_dispatch(struct run *r, int64_t wake_at)
{
    cli_arm_timer(r->timer_fd, wake_at);
    struct pollfd fds[3] = {{r->signal_fd, POLLIN, 0}, {heartbeat_fd(&r->hb), POLLIN, 0}, {r->timer_fd, POLLIN, 0}};
    int n = poll(fds, 3, -1);
    if (n < 0 && errno != EINTR) {
        cli_say("poll: %s", strerror(errno));
        return -1;
    }
    int64_t now = cli_now_ms();
    if (n > 0 && (fds[2].revents & POLLIN)) {
        uint64_t expirations;
        (void)!read(r->timer_fd, &expirations, sizeof expirations);
    }
    struct signalfd_siginfo si;
    if (n > 0 && (fds[0].revents & POLLIN) && read(r->signal_fd, &si, sizeof si) == (ssize_t)sizeof si)
        on_signal(r, (int)si.ssi_signo, now);
    if (n > 0 && (fds[1].revents & POLLIN))
        on_heartbeat(r, now);
    return 0;
}

/* Run until the lock is released (1: dlock must leave without the library;
 * 0: done; -1: the loop failed). */
static int loop(struct run *r)
{
    while (!r->released && !r->finished) {
        int64_t now = cli_now_ms(), wake_at = INT64_MAX;
        if (r->st.acquired && !r->st.release_asked)
            r->st.lease_ends_at = now + dlock_remaining_ms(r->lock);
        enum run_action action;
        while ((action = run_next(&r->st, now, &wake_at)) != RUN_WAIT)
            if (perform(r, action))
                return 1;
        if (wait_and_dispatch(r, wake_at) != 0)
            return -1;
    }
    return 0;
}

/* --- set-up and the end ------------------------------------------------------------ */

/* Signals are read from a signalfd by the main thread; every thread
 * inherits the mask, the job gets the original one back. */
static int set_up(struct run *r)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &mask, &r->orig_mask);
    r->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
    r->timer_fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
    if (r->signal_fd < 0 || r->timer_fd < 0) {
        cli_say("cannot set up signal handling: %s", strerror(errno));
        return EXIT_OSERR;
    }
    int rc = dlock_open(r->o->url, &r->client);
    if (rc != DLOCK_OK) {
        cli_say("cannot open the lock store: %s", dlock_last_error());
        return cli_exit_for(rc);
    }
    if (heartbeat_start(&r->hb, r->client, r->o->name, (uint32_t)r->o->ttl_ms, (int32_t)r->o->wait_ms) != 0) {
        cli_say("cannot start the heartbeat thread: %s", strerror(errno));
        dlock_close(r->client);
        return EXIT_OSERR;
    }
    return 0;
}

static int finish(struct run *r, int abandoned)
{
    /* Also after an unexpected way out of the loop: the heartbeat thread
     * releases and ends only when asked.  When the store does not answer in
     * time, dlock leaves the thread behind: exiting ends it. */
    heartbeat_stop(&r->hb);
    if (!abandoned) {
        heartbeat_join(&r->hb);
    } else {
        r->leave_now = 1;
    }
    if (abandoned && !cli_quiet) {
        cli_say("the lock store did not answer in time; exiting without waiting for it"
                " (the lock ends with its lease or its connection)");
    }
    if (r->guard > 0) {
        kill(r->guard, SIGKILL);
        waitpid(r->guard, NULL, 0);
    }
    if (!r->st.acquired)
        return r->st.got_signal ? 128 + r->st.got_signal : EXIT_SOFTWARE;
    if (!r->lease_ok_at_exit) {
        cli_say("lock '%s' was lost while the job ran; it may have overlapped another run", r->shown);
        r->outcome = OUTCOME_LOST;
        return EXIT_LOST;
    }
    char why[512];
    heartbeat_error(&r->hb, why, sizeof why);
    /* Said even with -q: the job's status stands, but the store says that
     * the lock was no longer ours at the end, so another run may have
     * overlapped this one. */
    if (r->release_status == DLOCK_ELOST && !r->st.lost)
        cli_say("warning: lock '%s' was found lost when it was released (%s); another run may have"
                " overlapped this one",
                r->shown, why);
    else if (r->release_status != DLOCK_OK && r->release_status != DLOCK_ELOST && !cli_quiet)
        cli_say("warning: releasing lock '%s': %s", r->shown, why);
    return r->job_status;
}

/* Exit at once, leaving the client open and maybe the heartbeat thread in
 * a call: the store did not answer in time, or a signal said to stop.  No
 * atexit work (a leak check would count the client that was left on
 * purpose); the kernel closes the connection, which ends a session lock,
 * and an SQLite lease runs out by itself. */
static void leave(int status)
{
    fflush(NULL);
    _exit(status);
}

static enum run_outcome final_outcome(const struct run *r)
{
    return (enum run_outcome)(r->outcome >= 0 ? r->outcome : r->st.acquired ? OUTCOME_RAN : OUTCOME_ERROR);
}

/* The run history: written after the run, on the client that took the
 * lock (released by now).  A store that cannot keep it costs one line and
 * never the job's status; a store that keeps no history, nothing. */
static void record_history(const struct run *r, int64_t started)
{
    /* A store that could not be reached a moment ago would only make
     * dlock wait for its connect timeout once more. */
    if (r->o->no_history || r->store_unreachable)
        return;
    /* Nor one that stopped answering until the lease ran out (a stalled
     * server): dlock exits now, as its exit status promises, instead of
     * waiting out one more call. */
    if (r->st.lost && r->store_silent) {
        if (!cli_quiet)
            cli_say("warning: this run of lock '%s' is not in the run history: the store stopped answering",
                    r->shown);
        return;
    }
    int exit_status = r->job > 0 || r->st.job_done ? r->job_status : -1;
    enum run_outcome outcome = final_outcome(r);
    if (outcome == OUTCOME_BUSY || outcome == OUTCOME_DONE)
        exit_status = -1;
    int rc = dlock_history_add(r->client, r->o->name, run_outcome_name(outcome), exit_status, cli_now_ms() - started,
                               r->fence);
    if (rc != DLOCK_OK && rc != DLOCK_ENOTSUP && !cli_quiet)
        cli_say("warning: this run of lock '%s' is not in the run history: %s", r->shown, dlock_last_error());
}

/* --metrics-file: what this run did.  A failure to write is said, and
 * does not change the exit status (the job's result stands). */
static void write_metrics(const struct run *r, int status, int64_t started_wall, int64_t started)
{
    if (!r->o->metrics_file)
        return;
    struct run_metrics m = {.lock = r->o->name,
                            .outcome = final_outcome(r),
                            .exit_status = status,
                            .start_unix_ms = started_wall,
                            .duration_ms = cli_now_ms() - started,
                            .end_unix_ms = wall_now_ms()};
    m.succeeded = m.outcome == OUTCOME_RAN && status == 0;
    if (metrics_write(r->o->metrics_file, &m) != 0)
        cli_say("warning: cannot write the metrics file %s: %s", r->o->metrics_file, strerror(errno));
}

int run_command(const struct run_options *o)
{
    struct run r = {.o = o, .job = -1, .guard = -1, .lease_ok_at_exit = 1, .outcome = -1};
    fmt_shown_name(o->name, r.shown, sizeof r.shown);
    int64_t started_wall = wall_now_ms(), started = cli_now_ms();
    run_state_init(&r.st, o->min_hold_ms, o->grace_ms, LET_GO_MS, CANCEL_EVERY_MS);
    int rc = set_up(&r);
    if (rc != 0) {
        r.outcome = OUTCOME_ERROR;
        write_metrics(&r, rc, started_wall, started);
        return rc;
    }
    int outcome = loop(&r);
    int status = r.finished ? r.exit_status : finish(&r, outcome == 1);
    if (!r.leave_now) {
        record_history(&r, started);
        dlock_close(r.client);
    }
    write_metrics(&r, status, started_wall, started);
    if (r.leave_now)
        leave(status);
    free(r.env_added[0]);
    free(r.env_added[1]);
    free(r.envp);
    return status;
}
