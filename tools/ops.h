/* dlock status, dlock list and dlock release --force (the operator's side). */
#ifndef DLOCK_TOOLS_OPS_H
#define DLOCK_TOOLS_OPS_H

/* Exit status of dlock status and dlock release --force when the lock is
 * free. */
#define STATUS_FREE 1

/* Each returns dlock's exit status. */
int ops_status(const char *url, const char *name, int json);
int ops_list(const char *url, const char *prefix, int json);
int ops_break(const char *url, const char *name);

#endif
