/* Messages, exit statuses and the clock shared by the parts of dlock(1). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>

#include "cli.h"
#include "dlock.h"
#include "format.h"

int cli_quiet;

/* A message is one line: a control character in it (from a lock name, or
 * from a store's text) is escaped, so that nothing in it can start a line
 * that looks like dlock's own or move the terminal's cursor. */
void cli_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    fputs("dlock: ", stderr);
    if (n >= 0) {
        fmt_escaped(stderr, text);
        free(text);
    } else {
        fputs("out of memory while formatting a message", stderr);
    }
    fputc('\n', stderr);
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
int cli_exit_for(int status)
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

dlock_client *cli_open_store(const char *url, int *exit_status)
{
    dlock_client *client = NULL;
    int rc = dlock_open(url, &client);
    if (rc != DLOCK_OK) {
        cli_say("cannot open the lock store: %s", dlock_last_error());
        *exit_status = cli_exit_for(rc);
        return NULL;
    }
    return client;
}

/* The holder text comes from the store, where anyone who can connect may
 * have written it (application_name, a host name): show control characters
 * as '?' so that none reaches the terminal. */
void cli_make_printable(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_arm_timer(int timer_fd, int64_t deadline)
{
    struct itimerspec spec = {{0, 0}, {0, 0}};
    if (deadline != INT64_MAX) {
        if (deadline < 1)
            deadline = 1;
        spec.it_value.tv_sec = (time_t)(deadline / 1000);
        spec.it_value.tv_nsec = (long)(deadline % 1000) * 1000000L;
    }
    (void)timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &spec, NULL);
}
