/* dlock run --metrics-file (see metrics.h and dlock(1), METRICS). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format.h"
#include "metrics.h"

static const char *const outcome_names[OUTCOME_COUNT] = {"ran", "busy", "done", "lost", "error"};

#define LAST_SUCCESS "dlock_run_last_success_time_seconds"

/* The last success time in the file this run replaces, -1 when none.  The
 * file holds one lock's metrics, so the first sample of the metric is it. */
static double previous_success(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[4096];
    double value = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, LAST_SUCCESS "{", sizeof LAST_SUCCESS) != 0)
            continue;
        char *space = strrchr(line, ' ');
        char *end;
        double v = space ? strtod(space + 1, &end) : -1;
        if (space && end != space + 1 && v >= 0)
            value = v;
        break;
    }
    fclose(f);
    return value;
}

static void sample(FILE *f, const char *metric, const char *lock, const char *outcome, const char *value)
{
    fprintf(f, "%s{lock=", metric);
    fmt_prom_label(f, lock);
    if (outcome)
        fprintf(f, ",outcome=\"%s\"", outcome);
    fprintf(f, "} %s\n", value);
}

static void header(FILE *f, const char *metric, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", metric, help, metric);
}

static void write_metrics(FILE *f, const struct run_metrics *m, double last_success)
{
    char v[64];
    header(f, "dlock_run_outcome", "How the last dlock run of the lock ended (1 for its outcome, 0 for the others).");
    for (int i = 0; i < OUTCOME_COUNT; i++)
        sample(f, "dlock_run_outcome", m->lock, outcome_names[i], (int)m->outcome == i ? "1" : "0");
    header(f, "dlock_run_exit_status", "Exit status of the last dlock run (the job's, or dlock's own).");
    snprintf(v, sizeof v, "%d", m->exit_status);
    sample(f, "dlock_run_exit_status", m->lock, NULL, v);
    header(f, "dlock_run_start_time_seconds", "When the last dlock run started, Unix time.");
    snprintf(v, sizeof v, "%.3f", (double)m->start_unix_ms / 1000.0);
    sample(f, "dlock_run_start_time_seconds", m->lock, NULL, v);
    header(f, "dlock_run_duration_seconds", "How long the last dlock run took.");
    snprintf(v, sizeof v, "%.3f", (double)m->duration_ms / 1000.0);
    sample(f, "dlock_run_duration_seconds", m->lock, NULL, v);
    if (last_success >= 0) {
        header(f, LAST_SUCCESS,
               "When a run of the lock through this file last ended with the job's status 0, Unix time.");
        snprintf(v, sizeof v, "%.3f", last_success);
        sample(f, LAST_SUCCESS, m->lock, NULL, v);
    }
}

/* How long a run waits for another run's write of the same file. */
#define FILE_LOCK_WAIT_MS 10000

/* The lock that serializes the read, the write and the rename of `path`
 * between runs: flock(2) on ".NAME.lock" beside it (hidden, and not *.prom,
 * so the textfile collector never reads it; never deleted, since a lock
 * file that is removed can be locked twice).  The fd, or -1 with errno. */
static int lock_file(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
    size_t len = strlen(path) + 8;
    char *lock_path = malloc(len);
    if (!lock_path)
        return -1;
    snprintf(lock_path, len, "%.*s.%s.lock", (int)dir_len, path, path + dir_len);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && (errno == EACCES || errno == EPERM))
        fd = open(lock_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW); /* another user's: flock works read-only */
    int err = errno;
    free(lock_path);
    if (fd < 0) {
        errno = err;
        return -1;
    }
    /* Bounded: a writer that hangs (a stopped process) must not keep the
     * run from ending. */
    for (int waited_ms = 0;; waited_ms += 10) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        if ((errno != EWOULDBLOCK && errno != EINTR) || waited_ms >= FILE_LOCK_WAIT_MS) {
            err = errno;
            close(fd);
            errno = err;
            return -1;
        }
        struct timespec ten_ms = {0, 10 * 1000000L};
        nanosleep(&ten_ms, NULL);
    }
}

static int write_locked(const char *path, const struct run_metrics *m);

int metrics_write(const char *path, const struct run_metrics *m)
{
    int lock_fd = lock_file(path);
    if (lock_fd < 0)
        return -1;
    int rc = write_locked(path, m);
    int err = errno;
    close(lock_fd); /* unlocks */
    errno = err;
    return rc;
}

static int write_locked(const char *path, const struct run_metrics *m)
{
    double last_success = m->succeeded ? (double)m->end_unix_ms / 1000.0 : previous_success(path);
    size_t len = strlen(path) + 16;
    char *tmp = malloc(len);
    if (!tmp)
        return -1;
    /* Same folder as the target, so that rename() is atomic; a name that
     * the textfile collector ignores (it reads *.prom only). */
    snprintf(tmp, len, "%s.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        free(tmp);
        return -1;
    }
    (void)fchmod(fd, 0644); /* the collector runs as another user */
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int err = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        errno = err;
        return -1;
    }
    write_metrics(f, m, last_success);
    int failed = fflush(f) != 0 || fsync(fileno(f)) != 0;
    int err = errno;
    failed = fclose(f) != 0 || failed;
    if (!failed && rename(tmp, path) != 0) {
        err = errno;
        failed = 1;
    }
    if (failed)
        unlink(tmp);
    free(tmp);
    errno = err;
    return failed ? -1 : 0;
}
