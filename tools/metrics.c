/* dlock run --metrics-file (see metrics.h and dlock(1), METRICS). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int metrics_write(const char *path, const struct run_metrics *m)
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
