/*
 * dlock(1): run a command only while holding a named lock.
 *
 *   dlock run [-u URL] [-t TTL] [-w WAIT] [-m MIN_HOLD] [-E CODE] [-k GRACE] [-q] NAME -- COMMAND [ARG...]
 *   dlock status [-u URL] NAME
 *
 * A client of the public API only.  The main thread owns the job and the
 * signals (signalfd); a heartbeat thread acquires, extends every TTL/3 and
 * releases, so that a store that hangs never keeps the main thread from
 * stopping the job when the lease runs out.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dlock.h"
#include "duration.h"

/* Exit statuses of dlock itself (sysexits.h values where one fits). */
#define EXIT_USAGE 64       /* bad command line, name, duration or URL */
#define EXIT_UNAVAILABLE 69 /* the store could not be used before the job started */
#define EXIT_SOFTWARE 70    /* the store answered with an error, or an internal error */
#define EXIT_OSERR 71       /* fork, pipe, signalfd ... failed */
#define EXIT_BUSY 75        /* default for a busy lock; -E changes it */
#define EXIT_LOST 79        /* the lock was lost or not confirmed while the job ran */
#define EXIT_NOEXEC 126     /* COMMAND found but could not be run */
#define EXIT_NOTFOUND 127   /* COMMAND not found */
#define STATUS_FREE 1       /* dlock status: the lock is free */

#define DEFAULT_TTL_MS 60000
#define DEFAULT_GRACE_MS 10000

static int quiet;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dlock: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char usage_text[] =
    "Usage: dlock run [OPTIONS] NAME -- COMMAND [ARG...]\n"
    "       dlock status [-u URL] NAME\n"
    "       dlock --version | --help\n"
    "\n"
    "Run COMMAND only while holding the lock NAME, so that a job scheduled on\n"
    "several servers runs on one of them at a time.\n"
    "\n"
    "Options:\n"
    "  -u, --url URL          lock store (default: $DLOCK_URL, else an SQLite file under\n"
    "                         /var/lib/dlock/ for root, ~/.local/state/dlock/ for others)\n"
    "  -t, --ttl TTL          lease of the lock, renewed every TTL/3 (default 60s)\n"
    "  -w, --wait WAIT        how long to wait for a busy lock; 0 skips, 'forever' (default 0)\n"
    "  -m, --min-hold TIME    hold the lock at least this long after taking it (default 0)\n"
    "  -E, --conflict-exit-code CODE  exit status when the lock is busy (default 75)\n"
    "  -k, --kill-after GRACE SIGKILL the job this long after SIGTERM when the lock\n"
    "                         is lost (default 10s)\n"
    "  -q, --quiet            no message when the lock is busy, no warnings\n"
    "  -h, --help             show this help\n"
    "  -V, --version          show the version\n"
    "\n"
    "Durations: 250ms, 30s, 5m, 2h, or a bare number of seconds.\n"
    "URLs: sqlite:///path/file.db, postgresql://user@host/db, mysql://user:pass@host/db\n"
    "\n"
    "Exit status: COMMAND's status (128+N if signal N ended it); 75 busy; 79 lock lost\n"
    "while COMMAND ran; 64 usage; 69 store unusable (unreachable, login refused, client\n"
    "library missing); 70 store error; 71 system error;\n"
    "126 COMMAND not executable; 127 COMMAND not found.  dlock status: 0 held, 1 free.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dlock: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'dlock --help' for more information.\n", stderr);
    return EXIT_USAGE;
}

/*
 * The status for a failure before the job started.  One cause, one status,
 * whatever the backend:
 *   64  the command line is wrong (option, duration, name, malformed URL);
 *   69  this store cannot be used from here: unreachable, login refused,
 *       unknown host or database, its client library missing, its backend
 *       not built into this libdlock, a server version it does not support;
 *   70  the store answered an error on a working session.
 */
static int exit_for(int status)
{
    switch (status) {
    case DLOCK_EINVAL:
        return EXIT_USAGE;
    case DLOCK_ECONN:
    case DLOCK_ENOTSUP:
        return EXIT_UNAVAILABLE;
    default:
        return EXIT_SOFTWARE;
    }
}

/* The holder text comes from the store, where anyone who can connect may
 * have written it (application_name, a host name): show control characters
 * as '?' so that none reaches the terminal. */
static void make_printable(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* --- default URL --------------------------------------------------------- */

/* Append path percent-encoding %, ? and #; -1 when it does not fit. */
static int append_encoded_path(char *out, size_t outlen, const char *path)
{
    size_t o = strlen(out);
    for (const char *p = path; *p; p++) {
        if (o + 4 >= outlen)
            return -1;
        if (*p == '%' || *p == '?' || *p == '#')
            o += (size_t)snprintf(out + o, outlen - o, "%%%02X", (unsigned char)*p);
        else
            out[o++] = *p;
    }
    out[o] = '\0';
    return 0;
}

/*
 * The URL to use: -u, else $DLOCK_URL, else the embedded SQLite default,
 * built in buf.  URLs are used as given, never copied into a fixed buffer:
 * a cut URL could silently lose a trailing sslmode=require.  NULL with a
 * message when there is none.
 */
static const char *resolve_url(const char *given, char *buf, size_t buflen)
{
    if (given)
        return given;
    const char *env = getenv("DLOCK_URL");
    if (env && *env)
        return env;
    char dir[4096];
    int n;
    if (geteuid() == 0) {
        n = snprintf(dir, sizeof dir, "/var/lib/dlock");
    } else {
        const char *state = getenv("XDG_STATE_HOME");
        const char *home = getenv("HOME");
        if (state && state[0] == '/')
            n = snprintf(dir, sizeof dir, "%s/dlock", state);
        else if (home && home[0] == '/')
            n = snprintf(dir, sizeof dir, "%s/.local/state/dlock", home);
        else {
            usage_error("%s", "no URL: set DLOCK_URL, pass -u, or set HOME");
            return NULL;
        }
    }
    snprintf(buf, buflen, "sqlite://");
    if (n < 0 || (size_t)n >= sizeof dir || append_encoded_path(buf, buflen, dir) != 0 ||
        append_encoded_path(buf, buflen, "/dlock.db") != 0) {
        usage_error("%s", "the default database path is too long: set DLOCK_URL or pass -u");
        return NULL;
    }
    return buf;
}

/* --- the heartbeat thread ------------------------------------------------- */

enum event_kind { EV_ACQUIRED = 'A', EV_EXTENDED = 'E', EV_RELEASED = 'R' };

struct event {
    char kind;
    int status;
};

typedef struct runner {
    dlock_client *client;
    const char *name;
    uint32_t ttl_ms;
    int32_t wait_ms;
    dlock_lock *lock;
    int event_fd;            /* write end of the pipe to the main thread */
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int stop;                /* main -> heartbeat: release now */
    char error[512];         /* detail of the last failure, copied for the main thread */
} runner;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void post(runner *r, char kind, int status)
{
    struct event ev = {kind, status};
    if (status != DLOCK_OK) {
        pthread_mutex_lock(&r->mutex);
        snprintf(r->error, sizeof r->error, "%s", dlock_last_error());
        pthread_mutex_unlock(&r->mutex);
    }
    while (write(r->event_fd, &ev, sizeof ev) < 0 && errno == EINTR) {
    }
}

/* Wait until `deadline` or a stop request; returns 1 when asked to stop. */
static int nap_until(runner *r, int64_t deadline)
{
    pthread_mutex_lock(&r->mutex);
    while (!r->stop) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(left / 1000);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cond, &r->mutex, &ts);
    }
    int stop = r->stop;
    pthread_mutex_unlock(&r->mutex);
    return stop;
}

static void *heartbeat_main(void *arg)
{
    runner *r = arg;
    int rc = dlock_acquire(r->client, r->name, r->ttl_ms, r->wait_ms, &r->lock);
    post(r, EV_ACQUIRED, rc);
    if (rc != DLOCK_OK)
        return NULL;
    int64_t interval = r->ttl_ms / 3 ? r->ttl_ms / 3 : 1;
    int64_t retry = interval / 3 ? interval / 3 : 1;
    int64_t next = now_ms() + interval;
    int lost = 0;
    for (;;) {
        if (nap_until(r, lost ? INT64_MAX : next))
            break;
        int64_t sent = now_ms();
        rc = dlock_extend(r->lock, r->ttl_ms);
        post(r, EV_EXTENDED, rc);
        if (rc == DLOCK_ELOST)
            lost = 1;
        next = (rc == DLOCK_OK ? sent + interval : now_ms() + retry);
    }
    rc = dlock_release(r->lock);
    r->lock = NULL;
    post(r, EV_RELEASED, rc);
    return NULL;
}

static void request_stop(runner *r)
{
    pthread_mutex_lock(&r->mutex);
    r->stop = 1;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mutex);
}

static int read_event(int fd, struct event *ev)
{
    ssize_t n;
    while ((n = read(fd, ev, sizeof *ev)) < 0 && errno == EINTR) {
    }
    return n == (ssize_t)sizeof *ev ? 0 : -1;
}

/* --- the job ---------------------------------------------------------------- */

/* Start COMMAND in its own process group; returns its pid, or -status. */
static pid_t start_job(char **argv, const sigset_t *orig_mask, int *exec_errno)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0)
        return -EXIT_OSERR;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(report[0]);
        close(report[1]);
        return -EXIT_OSERR;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here on. */
        setpgid(0, 0);
        /* If dlock dies, the job must not run on without its lock. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(EXIT_LOST);
        sigprocmask(SIG_SETMASK, orig_mask, NULL);
        execvp(argv[0], argv);
        int err = errno;
        if (write(report[1], &err, sizeof err) < 0) {
        }
        _exit(err == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC);
    }
    setpgid(pid, pid); /* also from here, so that no signal races the child's own call */
    close(report[1]);
    int err = 0;
    ssize_t n;
    while ((n = read(report[0], &err, sizeof err)) < 0 && errno == EINTR) {
    }
    close(report[0]);
    *exec_errno = n == (ssize_t)sizeof err ? err : 0;
    return pid;
}

/*
 * The job's leader gets SIGKILL when dlock dies (parent-death signal), but
 * its own children would not.  A guard process waits for dlock's death too
 * and then kills the job's whole process group.  It only makes
 * async-signal-safe calls: it is forked from a threaded process.
 */
static pid_t start_guard(pid_t job_pgid)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, SIGTERM); /* blocked, as inherited from dlock */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        _exit(EXIT_OSERR);
    for (;;) {
        if (getppid() != parent) {
            kill(-job_pgid, SIGKILL);
            _exit(0);
        }
        siginfo_t info;
        sigwaitinfo(&wake, &info); /* a SIGTERM from anyone else changes nothing */
    }
}

static int wait_status_to_exit(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return EXIT_SOFTWARE;
}

/* --- dlock run ------------------------------------------------------------------ */

struct run_options {
    const char *url;
    char default_url[4200];
    int64_t ttl_ms, wait_ms, min_hold_ms, grace_ms;
    int conflict_exit;
    const char *name;
    char **command;
};

static int parse_int_exit(const char *text, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 0 || v > 255)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_run(int argc, char **argv, struct run_options *o)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"ttl", required_argument, NULL, 't'},
        {"wait", required_argument, NULL, 'w'},
        {"min-hold", required_argument, NULL, 'm'},
        {"conflict-exit-code", required_argument, NULL, 'E'},
        {"kill-after", required_argument, NULL, 'k'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    o->ttl_ms = DEFAULT_TTL_MS;
    o->wait_ms = 0;
    o->min_hold_ms = 0;
    o->grace_ms = DEFAULT_GRACE_MS;
    o->conflict_exit = EXIT_BUSY;
    o->url = NULL;
    /* Options end at "--"; with no "--", at NAME. */
    int dashdash = -1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            dashdash = i;
            break;
        }
    int optc = dashdash >= 0 ? dashdash : argc;
    const char *optstring = dashdash >= 0 ? ":u:t:w:m:E:k:qh" : "+:u:t:w:m:E:k:qh";
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(optc, argv, optstring, longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            o->url = optarg;
            break;
        case 't':
            if (dlock_parse_duration(optarg, INT32_MAX, 0, &o->ttl_ms) || o->ttl_ms < 1)
                return usage_error("bad TTL '%s' (use e.g. 30s, 5m; from 1ms to 2147483647ms)", optarg);
            break;
        case 'w':
            if (dlock_parse_duration(optarg, INT32_MAX, 1, &o->wait_ms))
                return usage_error("bad WAIT '%s' (use e.g. 0, 30s, 5m or forever)", optarg);
            break;
        case 'm':
            if (dlock_parse_duration(optarg, INT64_MAX / 4, 0, &o->min_hold_ms))
                return usage_error("bad MIN_HOLD '%s' (use e.g. 30s, 5m)", optarg);
            break;
        case 'k':
            if (dlock_parse_duration(optarg, INT64_MAX / 4, 0, &o->grace_ms))
                return usage_error("bad GRACE '%s' (use e.g. 10s)", optarg);
            break;
        case 'E':
            if (parse_int_exit(optarg, &o->conflict_exit))
                return usage_error("bad exit code '%s' (0 to 255)", optarg);
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (dashdash >= 0) {
        if (optind != dashdash - 1)
            return usage_error("%s", optind >= dashdash ? "NAME is missing" : "exactly one NAME goes before '--'");
        o->name = argv[optind];
        o->command = argv + dashdash + 1;
    } else {
        if (optind >= argc)
            return usage_error("%s", "NAME is missing");
        o->name = argv[optind];
        o->command = argv + optind + 1;
    }
    if (!o->command[0])
        return usage_error("%s", "COMMAND is missing (dlock run NAME -- COMMAND [ARG...])");
    o->url = resolve_url(o->url, o->default_url, sizeof o->default_url);
    if (!o->url)
        return EXIT_USAGE;
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    struct run_options o;
    int rc = parse_run(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;

    /* Signals are read from a signalfd by the main thread; every thread
     * inherits the mask, the job gets the original one back. */
    sigset_t mask, orig_mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &mask, &orig_mask);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    int events[2];
    if (sfd < 0 || pipe2(events, O_CLOEXEC) != 0) {
        say("cannot set up signal handling: %s", strerror(errno));
        return EXIT_OSERR;
    }

    dlock_client *client = NULL;
    rc = dlock_open(o.url, &client);
    if (rc != DLOCK_OK) {
        say("cannot open the lock store: %s", dlock_last_error());
        return exit_for(rc);
    }

    runner r = {.client = client, .name = o.name, .ttl_ms = (uint32_t)o.ttl_ms,
                .wait_ms = (int32_t)o.wait_ms, .event_fd = events[1]};
    pthread_mutex_init(&r.mutex, NULL);
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&r.cond, &cattr);
    pthread_t heartbeat;
    if (pthread_create(&heartbeat, NULL, heartbeat_main, &r) != 0) {
        say("cannot start the heartbeat thread");
        dlock_close(client);
        return EXIT_OSERR;
    }

    int exit_status = EXIT_SOFTWARE;
    int got_signal = 0;
    pid_t job = -1, guard = -1;
    int job_done = 0, job_status = 0;
    int lease_ok_at_exit = 1;
    int lost = 0;
    int64_t acquired_at = 0, kill_at = -1;
    int acquired = 0, released = 0, release_status = DLOCK_OK;
    int stop_requested = 0;

    while (!released) {
        int64_t now = now_ms();
        int64_t timeout = -1;
        if (acquired && !lost && !stop_requested) {
            int64_t left = dlock_remaining_ms(r.lock);
            if (left == 0) {
                lost = 1;
                if (!job_done) {
                    if (!quiet)
                        say("lock '%s' not confirmed before its lease ran out: stopping the job", o.name);
                    kill(-job, SIGTERM);
                    kill_at = now + o.grace_ms;
                }
            } else {
                timeout = left;
            }
        }
        if (kill_at >= 0 && !job_done) {
            if (now >= kill_at) {
                kill(-job, SIGKILL);
                kill_at = -1;
            } else if (timeout < 0 || kill_at - now < timeout) {
                timeout = kill_at - now;
            }
        }
        /* The job has ended: hold on for --min-hold, then release. */
        if (job_done && !stop_requested) {
            int64_t hold_until = acquired_at + o.min_hold_ms;
            if (lost || got_signal || now >= hold_until) {
                request_stop(&r);
                stop_requested = 1;
                timeout = -1;
            } else if (timeout < 0 || hold_until - now < timeout) {
                timeout = hold_until - now;
            }
        }

        /* A signal while waiting: cancel, and again until the wait ends (a
         * cancel that comes before the wait has started is not kept). */
        if (!acquired && got_signal) {
            dlock_cancel(client);
            if (timeout < 0 || timeout > 50)
                timeout = 50;
        }
        struct pollfd fds[2] = {{sfd, POLLIN, 0}, {events[0], POLLIN, 0}};
        int n = poll(fds, 2, timeout > INT32_MAX ? INT32_MAX : (int)timeout);
        if (n < 0 && errno != EINTR) {
            say("poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                int sig = (int)si.ssi_signo;
                if (sig == SIGCHLD) {
                    int status;
                    if (job > 0 && !job_done && waitpid(job, &status, WNOHANG) == job) {
                        job_done = 1;
                        job_status = wait_status_to_exit(status);
                        lease_ok_at_exit = !lost && dlock_remaining_ms(r.lock) > 0;
                    }
                } else if (job > 0 && !job_done) {
                    kill(-job, sig); /* forward to the job's process group */
                } else {
                    got_signal = sig;
                }
            }
        }
        if (n > 0 && (fds[1].revents & POLLIN)) {
            struct event ev;
            if (read_event(events[0], &ev) != 0)
                break;
            if (ev.kind == EV_ACQUIRED) {
                if (ev.status != DLOCK_OK) {
                    pthread_join(heartbeat, NULL);
                    if (ev.status == DLOCK_EBUSY) {
                        if (!quiet) {
                            char who[512];
                            if (dlock_holder(client, o.name, who, sizeof who) == 1) {
                                make_printable(who);
                                say("lock '%s' is busy (held by %s); not running the job", o.name, who);
                            } else {
                                say("lock '%s' is busy; not running the job", o.name);
                            }
                        }
                        exit_status = o.conflict_exit;
                    } else if (ev.status == DLOCK_ECANCELED && got_signal) {
                        exit_status = 128 + got_signal;
                    } else {
                        say("cannot take lock '%s': %s", o.name, r.error);
                        exit_status = exit_for(ev.status);
                    }
                    dlock_close(client);
                    return exit_status;
                }
                acquired = 1;
                acquired_at = now_ms();
                if (got_signal) {
                    /* Stopped while waiting, just as the lock came: do not start. */
                    job_done = 1;
                    job_status = 128 + got_signal;
                    continue;
                }
                int exec_errno = 0;
                job = start_job(o.command, &orig_mask, &exec_errno);
                if (job > 0 && !exec_errno)
                    guard = start_guard(job);
                if (job < 0) {
                    say("cannot start %s: %s", o.command[0], strerror(errno));
                    job_done = 1;
                    job_status = (int)-job;
                } else if (exec_errno) {
                    say("cannot run %s: %s", o.command[0], strerror(exec_errno));
                    int status;
                    waitpid(job, &status, 0);
                    job_done = 1;
                    job_status = exec_errno == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC;
                }
            } else if (ev.kind == EV_EXTENDED) {
                if (ev.status == DLOCK_ELOST && !lost) {
                    lost = 1;
                    if (!job_done) {
                        say("lock '%s' was lost (%s): stopping the job", o.name, r.error);
                        kill(-job, SIGTERM);
                        kill_at = now_ms() + o.grace_ms;
                    } else if (!quiet) {
                        say("lock '%s' was lost after the job ended (%s)", o.name, r.error);
                    }
                } else if (ev.status != DLOCK_OK && ev.status != DLOCK_ELOST && !quiet) {
                    say("warning: cannot extend lock '%s' (%s); retrying", o.name, r.error);
                }
            } else if (ev.kind == EV_RELEASED) {
                released = 1;
                release_status = ev.status;
            }
        }
    }
    /* Also after an unexpected way out of the loop: the heartbeat thread
     * releases and ends only when asked. */
    request_stop(&r);
    pthread_join(heartbeat, NULL);
    dlock_close(client);
    if (guard > 0) {
        kill(guard, SIGKILL);
        waitpid(guard, NULL, 0);
    }

    if (!lease_ok_at_exit) {
        say("lock '%s' was lost while the job ran; it may have overlapped another run", o.name);
        return EXIT_LOST;
    }
    if (release_status != DLOCK_OK && release_status != DLOCK_ELOST && !quiet)
        say("warning: releasing lock '%s': %s", o.name, r.error);
    return job_status;
}

/* --- dlock status ---------------------------------------------------------------- */

static int cmd_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *url = NULL;
    char default_url[4200];
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":u:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return usage_error("%s", optind >= argc ? "NAME is missing" : "dlock status takes one NAME");
    const char *name = argv[optind];
    url = resolve_url(url, default_url, sizeof default_url);
    if (!url)
        return EXIT_USAGE;
    dlock_client *client = NULL;
    int rc = dlock_open(url, &client);
    if (rc != DLOCK_OK) {
        say("cannot open the lock store: %s", dlock_last_error());
        return exit_for(rc);
    }
    char who[512];
    rc = dlock_holder(client, name, who, sizeof who);
    if (rc < 0) {
        say("cannot read lock '%s': %s", name, dlock_last_error());
        dlock_close(client);
        return exit_for(rc);
    }
    if (rc == 1) {
        make_printable(who);
        printf("%s: held by %s\n", name, who);
    }
    else
        printf("%s: free\n", name);
    dlock_close(client);
    return rc == 1 ? 0 : STATUS_FREE;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("%s", "a command is missing (run or status)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("dlock (libdlock) %s\n", dlock_version());
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    return usage_error("unknown command '%s' (use run or status)", cmd);
}
