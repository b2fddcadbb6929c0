/* What the parts of dlock(1) share: exit statuses, messages, the clock. */
#ifndef DLOCK_TOOLS_CLI_H
#define DLOCK_TOOLS_CLI_H

#include <stdint.h>

#include "dlock.h"

/* Exit statuses of dlock itself (sysexits.h values where one fits). */
#define EXIT_USAGE 64       /* bad command line, name, duration or URL */
#define EXIT_UNAVAILABLE 69 /* the store could not be used before the job started */
#define EXIT_SOFTWARE 70    /* the store answered with an error, or an internal error */
#define EXIT_OSERR 71       /* fork, pipe, signalfd ... failed */
#define EXIT_BUSY 75        /* default for a busy lock; -E changes it */
#define EXIT_LOST 79        /* the lock was lost or not confirmed while the job ran */
#define EXIT_NOEXEC 126     /* COMMAND found but could not be run */
#define EXIT_NOTFOUND 127   /* COMMAND not found */

/* -q: no message when the lock is busy, no warnings. */
extern int cli_quiet;

/* "dlock: <message>" on standard error. */
void cli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The exit status for a libdlock status before the job started. */
int cli_exit_for(int status);

/* A client of the store at `url` for an operator's command, or NULL after
 * saying why it cannot be opened, with dlock's exit status in *exit_status. */
dlock_client *cli_open_store(const char *url, int *exit_status);

/* Replace control characters (text from the store) with '?'. */
void cli_make_printable(char *text);

/* Milliseconds on CLOCK_BOOTTIME, the clock of the library's leases: it
 * keeps counting while the host is suspended, as the stores' timers do. */
int64_t cli_now_ms(void);

/* Arm a CLOCK_BOOTTIME timerfd for the absolute time `deadline` (ms);
 * INT64_MAX disarms it. */
void cli_arm_timer(int timer_fd, int64_t deadline);

#endif
