/*
 * The MySQL backend's table statements: ops.c prepares and runs them (and
 * holds session mode's fence counter and the operations: list, break, store
 * time, run records); lease.c is lease mode (a row per name).  Internal;
 * not installed.
 */
#ifndef DLOCK_MYSQL_OPS_H
#define DLOCK_MYSQL_OPS_H

#include <string.h>

#include "backend.h"

struct mysqlbe_result {
    unsigned long long affected;  /* rows changed (INSERT ... ON DUPLICATE KEY UPDATE: 1 new, 2 updated) */
    unsigned long long insert_id; /* LAST_INSERT_ID(expr) set by the statement */
    unsigned long rows;           /* rows fetched */
    long matched;                 /* UPDATE: rows matched, changed or not (mysql_info()); -1 unknown */
    int stopped;                  /* the row callback asked to stop */
};

/* Binding helpers for the statements of ops.c, lease.c and history.c. */
static inline void bind_bytes(MYSQL_BIND *b, const void *data, unsigned long *len)
{
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_BLOB;
    b->buffer = (void *)data;
    b->buffer_length = *len;
    b->length = len;
}

static inline void bind_str(MYSQL_BIND *b, const char *s, unsigned long *len)
{
    bind_bytes(b, s, len);
    b->buffer_type = MYSQL_TYPE_STRING;
}

static inline void bind_i64(MYSQL_BIND *b, long long *v)
{
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
}

/* A result, or a parameter that may be NULL. */
static inline void bind_out_i64(MYSQL_BIND *b, long long *v, mysqlbe_flag *is_null)
{
    bind_i64(b, v);
    b->is_null = is_null;
}

static inline void bind_out_text(MYSQL_BIND *b, char *buf, size_t size, unsigned long *len, mysqlbe_flag *is_null)
{
    memset(b, 0, sizeof *b);
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = buf;
    b->buffer_length = (unsigned long)size - 1;
    b->length = len;
    b->is_null = is_null;
}

static inline void terminate(char *buf, size_t size, unsigned long len, mysqlbe_flag is_null)
{
    size_t n = is_null ? 0 : (len < size - 1 ? len : size - 1);
    buf[n] = '\0';
}

/* Rows of a list, into the list (lease.c and ops.c). */
struct list_rows {
    struct dlock_list *list;
    char name[256], host[256], key[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    char listed_name[256]; /* session mode: from the holders' table */
    unsigned long name_len, host_len, key_len, listed_name_len;
    long long pid, since, expires, fence, id;
    mysqlbe_flag nulls[6];
    int status;
};

/* Close the prepared statements (the session is dropped). */
void dlock__mysql_ops_close(struct mysqlbe_conn *c);
/* Run statement `op` (prepared once per session; the table is created on
 * first use), bounded by c->deadline_ms.  A lost connection is dropped and
 * reported as lost_status; lease mode tries once more on a new one. */
int dlock__mysql_exec(struct mysqlbe_conn *c, enum mysqlbe_op op, MYSQL_BIND *params, MYSQL_BIND *results,
                 int (*row)(void *), void *arg, struct mysqlbe_result *out, const char *doing, int lost_status);
/* Statement `op` that answers one integer (or nothing): DLOCK_OK with
 * *value and *found (a row with a non-NULL value; *value 0 otherwise), or
 * the error of dlock__mysql_exec() (a lost connection: DLOCK_ECONN). */
int dlock__mysql_exec_i64(struct mysqlbe_conn *c, enum mysqlbe_op op, MYSQL_BIND *params, const char *what,
                          long long *value, int *found);

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
/* Session mode, at a lock's first renewal: its name and since in
 * MYSQL_HOLDERS_TABLE (created when missing).  DLOCK_OK, also when the user
 * may not write it; the session broke: its status (the lock is lost). */
int dlock__mysql_list_register(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name);
/* Put "host=… pid=… since=… " before the holder text in buf when
 * connection `conn`, which holds `server_name`, listed it. */
void dlock__mysql_listed_holder(struct mysqlbe_conn *c, const char *server_name, long long conn, char *buf,
                                size_t buflen);
/* ... and its removal after the release (errors are ignored). */
void dlock__mysql_list_unregister(struct mysqlbe_conn *c, struct mysqlbe_lock *l);
int dlock__mysql_session_list(struct mysqlbe_conn *c, const char *prefix, struct dlock_list *list, struct dlock_call *call);
int dlock__mysql_session_break(struct mysqlbe_conn *c, const char *name, struct dlock_call *call);

/* The two modes see each other's holder of a name (docs/mysql.md, "Modes
 * side by side"): an unexpired row of the default lease table, read from
 * session mode (1 held, buf filled when given; 0 none or no such table; <0
 * a status), and the session-mode lock of the name, read from lease mode
 * (1 held, *id its connection; 0 free; <0 a status). */
int dlock__mysql_lease_row_holder(struct mysqlbe_conn *c, const char *name, char *buf, size_t buflen);
int dlock__mysql_session_lock_holder(struct mysqlbe_conn *c, const char *server_name, long long *id);
/* Sleep up to ms, or until a cancel: 1 when canceled. */
int dlock__mysql_pause(struct mysqlbe_conn *c, int64_t ms);

/* Both. */
int dlock__mysql_store_time(struct mysqlbe_conn *c, int64_t *unix_ms, struct dlock_call *call);

#endif
