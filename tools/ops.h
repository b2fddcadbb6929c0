/* dlock status, dlock list and dlock release --force (the operator's side). */
#ifndef DLOCK_TOOLS_OPS_H
#define DLOCK_TOOLS_OPS_H

#include <stddef.h>

/* Exit status of dlock status and dlock release --force when the lock is
 * free. */
#define STATUS_FREE 1

/* Each returns dlock's exit status. */
int ops_status(const char *url, const char *name, int json);
int ops_list(const char *url, const char *prefix, int json);
int ops_break(const char *url, const char *name);
/* tools/history.c: dlock history and dlock check. */
int ops_history(const char *url, const char *name, size_t count, int json);
int ops_check(const char *url, const char *name, int json);
/* dlock check's statuses: warnings (69, unusable, is EXIT_UNAVAILABLE). */
#define CHECK_WARNINGS 1

#endif
