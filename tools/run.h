/* `dlock run`: take the lock, run the job while it is held, release. */
#ifndef DLOCK_TOOLS_RUN_H
#define DLOCK_TOOLS_RUN_H

#include <stdint.h>

struct run_options {
    const char *url;
    char default_url[4200];
    int64_t ttl_ms, wait_ms, min_hold_ms, grace_ms;
    int conflict_exit;
    int64_t once_per_ms;      /* --once-per: 0 none */
    const char *metrics_file; /* --metrics-file: NULL none */
    int no_history;           /* --no-history: the run is not recorded in the store */
    const char *name;
    char **command;
};

/* Run it; returns dlock's exit status. */
int run_command(const struct run_options *o);

#endif
