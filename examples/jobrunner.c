/*
 * jobrunner - a minimal job runner on libdlock's public API: run COMMAND only
 * while holding the lock NAME, renew the lease every TTL/3, and stop the
 * command if the lock is lost.
 *
 * Build against an installed libdlock (pkg-config finds it):
 *     cc -o jobrunner jobrunner.c $(pkg-config --cflags --libs dlock)
 *
 * Usage:
 *     jobrunner [-u URL] [-t TTL_SECONDS] [-w WAIT_SECONDS] NAME COMMAND [ARG...]
 * URL defaults to $DLOCK_URL.  WAIT -1 waits without bound.
 * Exit: COMMAND's status (128+N for a signal), 75 busy, 69 store unreachable,
 * 79 lock lost while COMMAND ran, 64 usage, 70 any other libdlock error.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlock.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_USAGE = 64, EXIT_UNREACHABLE = 69, EXIT_STORE = 70, EXIT_BUSY = 75, EXIT_LOST = 79 };

static void usage(void)
{
    fprintf(stderr, "usage: jobrunner [-u URL] [-t TTL_SECONDS] [-w WAIT_SECONDS] NAME COMMAND [ARG...]\n");
    exit(EXIT_USAGE);
}

static long parse_number(const char *text, long min, long max)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max)
        usage();
    return value;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int exit_status_of(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return EXIT_STORE;
}

static int status_for_failure(int rc)
{
    switch (rc) {
    case DLOCK_EBUSY:
        return EXIT_BUSY;
    case DLOCK_ECONN:   /* unreachable, or the login was refused */
    case DLOCK_ENOTSUP: /* backend not built in, or its client library missing */
        return EXIT_UNREACHABLE;
    case DLOCK_EINVAL:
        return EXIT_USAGE;
    default:
        return EXIT_STORE;
    }
}

/* Terminate the job (then kill it after 5 s) and reap it. */
static void stop_job(pid_t job)
{
    kill(job, SIGTERM);
    for (int waited_ms = 0; waited_ms < 5000; waited_ms += 20) {
        if (waitpid(job, NULL, WNOHANG) == job)
            return;
        sleep_ms(20);
    }
    kill(job, SIGKILL);
    waitpid(job, NULL, 0);
}

struct options {
    const char *url, *name;
    char **command;
    long ttl_s;
    uint32_t ttl_ms;
    int32_t wait_ms;
};

static void parse_options(int argc, char **argv, struct options *o)
{
    o->url = getenv("DLOCK_URL");
    o->ttl_s = 60;
    long wait_s = 0;
    int opt;
    while ((opt = getopt(argc, argv, "+u:t:w:")) != -1) {
        switch (opt) {
        case 'u':
            o->url = optarg;
            break;
        case 't':
            o->ttl_s = parse_number(optarg, 1, 2147483);
            break;
        case 'w':
            wait_s = parse_number(optarg, -1, 2147483);
            break;
        default:
            usage();
        }
    }
    if (argc - optind < 2 || !o->url)
        usage();
    o->name = argv[optind];
    o->command = argv + optind + 1;
    o->ttl_ms = (uint32_t)o->ttl_s * 1000;
    o->wait_ms = wait_s < 0 ? DLOCK_WAIT_FOREVER : (int32_t)(wait_s * 1000);
}

/* Start the command; -1 when fork failed. */
static pid_t start_job(char **command)
{
    pid_t job = fork();
    if (job == 0) {
        /* The library's descriptors are close-on-exec: the job never keeps
         * the lock's session alive by itself. */
        execvp(command[0], command);
        fprintf(stderr, "jobrunner: %s: %s\n", command[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    if (job == -1)
        perror("jobrunner: fork");
    return job;
}

/* Renew the lease every TTL/3 while the job runs: the job's exit status,
 * or EXIT_LOST (the job stopped) when the lock is lost. */
static int supervise(pid_t job, dlock_lock *lock, const struct options *o)
{
    long renew_every_ms = (long)o->ttl_ms / 3;
    long since_renew_ms = 0;
    int rc = DLOCK_OK;
    for (;;) {
        int wstatus;
        if (waitpid(job, &wstatus, WNOHANG) == job)
            return exit_status_of(wstatus);
        if (since_renew_ms >= renew_every_ms) {
            rc = dlock_extend(lock, o->ttl_ms);
            since_renew_ms = 0;
            if (rc != DLOCK_OK && rc != DLOCK_ELOST) {
                /* e.g. a broken connection: retry soon, until the lease runs out */
                fprintf(stderr, "jobrunner: extend: %s: %s\n", dlock_strerror(rc), dlock_last_error());
                since_renew_ms = renew_every_ms > 250 ? renew_every_ms - 250 : 0;
            }
        }
        /* Checked on every turn, without asking the store. */
        if (rc == DLOCK_ELOST || dlock_remaining_ms(lock) == 0) {
            fprintf(stderr, "jobrunner: lost the lock '%s': stopping the job\n", o->name);
            stop_job(job);
            return EXIT_LOST;
        }
        sleep_ms(20);
        since_renew_ms += 20;
    }
}

int main(int argc, char **argv)
{
    struct options o;
    parse_options(argc, argv, &o);

    dlock_client *client;
    int rc = dlock_open(o.url, &client);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "jobrunner: %s: %s\n", dlock_strerror(rc), dlock_last_error());
        return status_for_failure(rc);
    }
    dlock_lock *lock;
    rc = dlock_acquire(client, o.name, o.ttl_ms, o.wait_ms, &lock);
    if (rc != DLOCK_OK) {
        fprintf(stderr, "jobrunner: '%s': %s%s%s\n", o.name, dlock_strerror(rc), *dlock_last_error() ? ": " : "",
                dlock_last_error());
        dlock_close(client);
        return status_for_failure(rc);
    }
    fprintf(stderr, "jobrunner: libdlock %s, %s backend, holding '%s' for %lds\n", dlock_version(),
            dlock_backend(client), dlock_name(lock), o.ttl_s);

    pid_t job = start_job(o.command);
    int status = job == -1 ? EXIT_STORE : supervise(job, lock, &o);
    if (dlock_release(lock) == DLOCK_ELOST && status != EXIT_LOST)
        fprintf(stderr, "jobrunner: the lock was lost before release: this run may have overlapped another\n");
    dlock_close(client);
    return status;
}
