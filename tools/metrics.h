/* dlock run --metrics-file: Prometheus text for node_exporter's textfile collector. */
#ifndef DLOCK_TOOLS_METRICS_H
#define DLOCK_TOOLS_METRICS_H

#include <stdint.h>

enum run_outcome { OUTCOME_RAN, OUTCOME_BUSY, OUTCOME_DONE, OUTCOME_LOST, OUTCOME_ERROR, OUTCOME_COUNT };

struct run_metrics {
    const char *lock;
    enum run_outcome outcome;
    int exit_status;       /* dlock's own */
    int64_t start_unix_ms; /* when dlock run started */
    int64_t duration_ms;   /* how long dlock run took */
    int succeeded;         /* the job ran and exited 0 */
    int64_t end_unix_ms;   /* when it ended */
};

/* Replace `path` atomically (a temporary file in the same folder, fsync,
 * rename).  The last success time is carried over from the file it
 * replaces when this run did not succeed.  Runs that share the file take
 * turns (a lock file beside it, waited for up to 10 s), so that one never
 * reads the file before another's rename and writes after it.  0, or -1
 * with errno. */
int metrics_write(const char *path, const struct run_metrics *m);

#endif
