/*
 * The parts of the multi-process suite, and the fixtures they share.
 * tests/check_process.c builds the suite; each file adds its cases.
 */
#ifndef DLOCK_TESTS_PROCESS_SUITE_H
#define DLOCK_TESTS_PROCESS_SUITE_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../common.h"
#include "../stores/store.h"

extern char *dir;      /* a fresh folder for each test */
extern char url[4200]; /* an SQLite database in it */
extern char *name;
extern const char *dlock_bin;
void setup(void);
void teardown(void);

/* Start a shell command line in the background; returns its pid. */
pid_t sh_bg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Start dlock itself (no shell in between) so that signals reach it. */
pid_t dlock_bg(char *const argv[]);
int wait_exit(pid_t pid);
int count_lines(const char *path);
int file_has(const char *path, const char *text);

int lock_is_free(void);
int64_t wall_ms(void);

/* Process suite, tcase "exclusion": concurrent dlock runs, exactly one at a time. */
void dlt_process_add_exclusion(Suite *s);
/* Process suite, tcase "faults": kill -9 and SIGSTOP of a holder, stubborn and orphaned jobs, a lost
 * final release. */
void dlt_process_add_faults(Suite *s);
/* Process suite, tcase "cli": dlock(1) heartbeats, minimum hold, forwarded signals, exit statuses,
 * status output. */
void dlt_process_add_cli(Suite *s);
/* Process suite, tcase "every-server-store": dlock run against every configured server store. */
void dlt_process_add_every_store(Suite *s);
/* Process suite, tcases "ops" and "break-one-name": --once-per, the job's environment, list, status,
 * release --force, metrics. */
void dlt_process_add_ops(Suite *s);
/* Process suite, tcase "once-per-window": --once-per at every phase and clock skew, long jobs. */
void dlt_process_add_once_per(Suite *s);
/* Process suite, tcase "metrics-file": overlapping runs, the file lock and escaped names in the
 * metrics file. */
void dlt_process_add_metrics(Suite *s);
/* Process suite, tcase "break-one-name" (ops.c): release --force breaks one name only. */
void dlt_process_add_break_one_name(Suite *s);
/* Process suite, tcase "power-loss": SQLite fencing tokens survive lost WAL frames. */
void dlt_process_add_power_loss(Suite *s);
/* Process suite, tcase "messages": one-line messages, short names, TTL limits, scheme typos. */
void dlt_process_add_messages(Suite *s);

#endif
