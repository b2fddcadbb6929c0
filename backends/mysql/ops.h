/*
 * The MySQL backend's table statements (backends/mysql/ops.c): lease mode,
 * session mode's fence counter, and the operations of both modes.
 * Internal; not installed.
 */
#ifndef DLOCK_MYSQL_OPS_H
#define DLOCK_MYSQL_OPS_H

#include "backend.h"

struct mysqlbe_result {
    unsigned long long affected;  /* rows changed (INSERT ... ON DUPLICATE KEY UPDATE: 1 new, 2 updated) */
    unsigned long long insert_id; /* LAST_INSERT_ID(expr) set by the statement */
    unsigned long rows;           /* rows fetched */
    long matched;                 /* UPDATE: rows matched, changed or not (mysql_info()); -1 unknown */
    int stopped;                  /* the row callback asked to stop */
};

/* Close the prepared statements (the session is dropped). */
void dlock__mysql_ops_close(struct mysqlbe_conn *c);
/* Run statement `op` (prepared once per session; the table is created on
 * first use), bounded by c->deadline_ms.  A lost connection is dropped and
 * reported as lost_status; lease mode tries once more on a new one. */
int dlock__mysql_exec(struct mysqlbe_conn *c, enum mysqlbe_op op, MYSQL_BIND *params, MYSQL_BIND *results,
                 int (*row)(void *), void *arg, struct mysqlbe_result *out, const char *doing, int lost_status);

/* Lease mode (mode=lease). */
int dlock__mysql_lease_acquire(struct mysqlbe_conn *c, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                          struct dlock_call *call, struct dlock_held **lock_out);
int dlock__mysql_lease_extend(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, uint32_t ttl_ms,
                         struct dlock_call *call);
/* Frees l. */
int dlock__mysql_lease_release(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, struct dlock_call *call);
int dlock__mysql_lease_holder(struct mysqlbe_conn *c, const char *name, char *buf, size_t buflen, struct dlock_call *call);
int dlock__mysql_lease_list(struct mysqlbe_conn *c, const char *prefix, struct dlock_list *list, struct dlock_call *call);
int dlock__mysql_lease_break(struct mysqlbe_conn *c, const char *name, struct dlock_call *call);
int dlock__mysql_lease_record(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, int put, int64_t *slot,
                         struct dlock_call *call);

/* Session mode. */
/* fencing=on: bump the counter of `name` after a granted GET_LOCK. */
int dlock__mysql_fence_bump(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name);
/* fencing=on: GET_LOCK(name, timeout_s) and the bump in one statement (one
 * round trip, bounded by c->deadline_ms).  0 with *granted 0 or 1 (then
 * l->base.fence is set), or -1 with *error filled as dlock__mysql_run_int does. */
int dlock__mysql_fenced_get_lock(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, double timeout_s,
                            long long *granted, struct statement_error *error);
int dlock__mysql_session_record(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, int put, int64_t *slot,
                           struct dlock_call *call);
int dlock__mysql_session_list(struct mysqlbe_conn *c, const char *prefix, struct dlock_list *list, struct dlock_call *call);
int dlock__mysql_session_break(struct mysqlbe_conn *c, const char *name, struct dlock_call *call);

/* Both. */
int dlock__mysql_store_time(struct mysqlbe_conn *c, int64_t *unix_ms, struct dlock_call *call);

#endif
