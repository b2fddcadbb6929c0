/*
 * The MySQL / MariaDB backend's connection, shared by its files
 * (backends/mysql/):
 *   mysql.c    the backend table: connect, acquire, extend, release, holder
 *   conn.c     the server session: connect, statements, errors, wait_timeout
 *   io.c       the watchdog: the deadline of every round trip
 *   cancel.c   dlock_cancel(): KILL QUERY from a second connection
 *   ops.c      the table statements (ops.h), fences, list/break/records
 *   lease.c    lease mode: a row per name (mode=lease)
 *   history.c  run history (the dlock_runs table) and the preflight
 *   url.c      URLs and lock names (pure; no client library; url.h)
 *   api.c      the client library, loaded at first use (api.h)
 * Cross-file functions are dlock__mysql_*, types and statics mysqlbe_*, so
 * that mysql_xxx() is always the client library's.  Internal; not installed.
 */
#ifndef DLOCK_MYSQL_CONN_H
#define DLOCK_MYSQL_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <mysql.h> /* the client library */
#include "api.h"
#include <errmsg.h>

#include "internal.h"
#include "url.h"
#include "session.h"

/* my_bool went away in MySQL 8.0; MariaDB keeps it. */
#if defined(MARIADB_PACKAGE_VERSION_ID) || defined(MARIADB_BASE_VERSION) || !defined(MYSQL_VERSION_ID) || \
    MYSQL_VERSION_ID < 80001
typedef my_bool mysqlbe_flag;
#else
typedef bool mysqlbe_flag;
#endif

#if defined(MARIADB_PACKAGE_VERSION_ID) || defined(MARIADB_BASE_VERSION)
#define HAVE_MARIADB_CONNECTOR 1
#endif

struct mysqlbe_lock {
    struct dlock_held base; /* first: the core passes this; its links, generation and
                             * ttl_ms are kept by lib/session.c */
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    unsigned char owner[16]; /* lease mode: this acquisition's random owner token */
    /* Session mode: when it was taken (dlock__now_ms), and its row in
     * MYSQL_HOLDERS_TABLE: 0 none yet, 1 written, -1 not to be. */
    int64_t taken_ms;
    int listed;
};

/* Session mode: a lock's name and since, written at its first renewal
 * (ops.c, docs/mysql.md "Listing session-mode locks"). */
#define MYSQL_HOLDERS_TABLE "dlock_holders"

/* The statements of mysql_ops.c, prepared once per session. */
enum mysqlbe_op {
    OP_LEASE_TAKE,
    OP_LEASE_LEFT,
    OP_LEASE_EXTEND,
    OP_LEASE_CHECK,
    OP_LEASE_RELEASE,
    OP_LEASE_HOLDER,
    OP_LEASE_LIST,
    OP_LEASE_BREAK,
    OP_LEASE_RECORD_GET,
    OP_LEASE_RECORD_PUT,
    OP_FENCE_BUMP,
    OP_FENCE_TAKE,
    OP_SESSION_RECORD_GET,
    OP_SESSION_RECORD_PUT,
    OP_SESSION_LIST,
    OP_SESSION_LOCK_ID,
    OP_SESSION_MLI,
    OP_SESSION_MLI_NAMES,
    OP_HOLDERS_PUT,
    OP_HOLDERS_DROP,
    OP_HOLDERS_LIST,
    OP_HOLDERS_GET,
    OP_STORE_TIME,
    OP_MODES_LEASE_ROW,
    MYSQLBE_OPS_MAX
};

/* See mysql_watchdog.c. */
struct mysqlbe_watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
    pthread_t thread;
    int started, quit;
    int fd;              /* armed: the socket to shut down, else -1 */
    int64_t deadline_ms; /* dlock__now_ms() time, INT64_MAX: none */
    int64_t wake_ms;     /* when the thread wakes by itself (INT64_MAX: never) */
    int64_t cap_ms;      /* a cancel's: no round trip of the acquire outlives it (INT64_MAX: none) */
    int fired;
};

struct mysqlbe_conn {
    struct dlock_conn base; /* first */
    struct dlock_mysql_url url;
    struct mysqlbe_watchdog dog;
    int64_t deadline_ms;          /* of the round trips of the call in progress */
    MYSQL *db;                    /* NULL while disconnected */
    struct dlock_session session; /* its locks, smallest TTL, generation */
    unsigned long connection_id;
    int is_mariadb;
    unsigned int wait_timeout_s; /* the session's wait_timeout now */
    int flush_at_commit;         /* @@global.innodb_flush_log_at_trx_commit when the session began */
    int binlog_statement;        /* @@session.binlog_format is STATEMENT */
    MYSQL_STMT *stmt_get_lock;
    MYSQL_STMT *stmt_is_ours;
    MYSQL_STMT *stmt_release;
    MYSQL_STMT *stmt_holder;
    MYSQL_STMT *stmt_ops[MYSQLBE_OPS_MAX]; /* mysql_ops.c, by enum mysqlbe_op */

    /* The URL options common to every backend (lib/urlopt.c). */
    int lease;               /* mode=lease: a row per name (mysql_lease.c) */
    int fencing;             /* session mode, fencing=on: a counter per name */
    char table[64];          /* lease mode: the leases; session mode: fences and run records */
    int table_ready;         /* created (or found) on this connection's behalf */
    int no_create;           /* mysql_ops.c: a missing table is an error, not created */
    int holders_off;         /* session mode: this user cannot write MYSQL_HOLDERS_TABLE */
    unsigned int last_errno; /* mysql_ops.c: the errno of the last failed statement */

    /* Cancellation.  cancel_db is a second connection that sends
     * KILL QUERY; only one thread uses it at a time: the acquiring thread
     * while no wait is in progress, a kill thread while kill_in_flight. */
    pthread_mutex_t cancel_mu;
    pthread_cond_t cancel_cv;
    MYSQL *cancel_db;
    unsigned long waiting_id; /* connection id of a GET_LOCK now waiting, or 0 */
    int acquiring;            /* an acquire call is in progress */
    int cancel_requested;     /* dlock_cancel() was called during it */
    int kill_in_flight;
};

/* The one place that recovers the backend's own structs from the bases. */
static inline struct mysqlbe_conn *dlock__mysql_of(struct dlock_conn *conn)
{
    return (struct mysqlbe_conn *)conn;
}

static inline struct mysqlbe_lock *dlock__mysql_lock_of(struct dlock_held *held)
{
    return (struct mysqlbe_lock *)held;
}

/* What went wrong in one statement: the client library's errno (0 for "no
 * row") and its text. */
struct statement_error {
    unsigned int code;
    char text[256];
};

#define NO_ANSWER_TEXT "the server did not answer before the deadline (the session was dropped)"

/* --- mysql_session.c ---------------------------------------------------- */

/* 1 when a client or server errno means that the session is gone. */
int dlock__mysql_connection_lost(unsigned int err);
/* Open one connection as the URL says.  On failure sets the error text.
 * io_timeout_s (0: none) bounds every read and write after connecting. */
int dlock__mysql_open_handle(const struct dlock_mysql_url *url, MYSQL **out, unsigned int connect_timeout,
                        unsigned int io_timeout_s);
/* Connect a new session if there is none.  *fresh (may be NULL) says
 * whether it did. */
int dlock__mysql_ensure_session(struct mysqlbe_conn *c, int *fresh);
/* The session is gone: every lock on it is lost.  The next call reconnects. */
void dlock__mysql_drop_session(struct mysqlbe_conn *c);
/* Report a failed call on the session.  A lost session is dropped and
 * reported as `lost_status` (DLOCK_ECONN, or DLOCK_ELOST for a held lock). */
int dlock__mysql_session_error(struct mysqlbe_conn *c, unsigned int err, const char *text, const char *doing,
                          int lost_status);
/* A client library's statement error into *error (CR_UNKNOWN_ERROR when it
 * gives none). */
void dlock__mysql_error_from(struct statement_error *error, MYSQL_STMT *stmt);
/* Prepare sql into *slot unless it is there already: 0, or -1 with *error
 * filled. */
int dlock__mysql_prepare(struct mysqlbe_conn *c, MYSQL_STMT **slot, const char *sql, struct statement_error *error);
/* Run a prepared statement (prepared into *slot on first use) with one
 * string parameter and an optional double, fetching one nullable integer
 * (*value_null set when NULL), bounded by the call's deadline.  0 or -1
 * with *error filled. */
int dlock__mysql_run_int(struct mysqlbe_conn *c, MYSQL_STMT **slot, const char *sql, const char *name, const double *number,
                    long long *value, int *value_null, struct statement_error *error);
/* The deadline of one backend call's round trips: only a wait may be
 * unbounded; everything around it gets DLOCK_CALL_TIMEOUT_MS at most. */
void dlock__mysql_begin_call(struct mysqlbe_conn *c, int64_t deadline_ms);
/* Extend and release: bounded by the lease itself, however long (a
 * heartbeat that cannot finish before the lease ends has failed). */
void dlock__mysql_lease_call(struct mysqlbe_conn *c, int64_t deadline_ms);
/* The idle limit the session needs, in whole seconds: the smallest TTL of
 * its locks, `skip` left out and `extra_ttl_ms` (0: none) taken in. */
unsigned int dlock__mysql_lease_needed(const struct mysqlbe_conn *c, const struct mysqlbe_lock *skip, uint32_t extra_ttl_ms);
/* Make the session's wait_timeout `seconds` (one round trip, only when it
 * changes).  0 means "no lock needs anything": leave it. */
int dlock__mysql_set_lease(struct mysqlbe_conn *c, unsigned int seconds, int lost_status);

/* DLOCK_OK when the server commits durably (innodb_flush_log_at_trx_commit
 * = 1) or the URL says flush-check=off; else DLOCK_ENOTSUP saying so.  For
 * the takes of lease mode and fencing=on, on a connected session. */
int dlock__mysql_check_durable(const struct mysqlbe_conn *c);

/* --- mysql_watchdog.c --------------------------------------------------- */

int dlock__mysql_watchdog_start(struct mysqlbe_watchdog *w);
void dlock__mysql_watchdog_stop(struct mysqlbe_watchdog *w);
/* Round trips on `db` from now on end by deadline_ms (INT64_MAX: none, yet
 * a cancel may still set one with dlock__mysql_watch_shorten). */
void dlock__mysql_watch(struct mysqlbe_conn *c, MYSQL *db, int64_t deadline_ms);
/* A cancel: the round trip in flight, and every later one until
 * dlock__mysql_watch_uncap(), ends by deadline_ms. */
void dlock__mysql_watch_shorten(struct mysqlbe_conn *c, int64_t deadline_ms);
void dlock__mysql_watch_uncap(struct mysqlbe_conn *c);
/* The cap is deadline_ms from now on (later or earlier than before). */
void dlock__mysql_watch_recap(struct mysqlbe_conn *c, int64_t deadline_ms);
/* deadline_ms, or the cancel's cap when that comes first. */
int64_t dlock__mysql_watch_capped(struct mysqlbe_conn *c, int64_t deadline_ms);
/* The round trips are over: 1 when the watchdog cut them short (then the
 * session must be dropped, whatever the call said). */
int dlock__mysql_unwatch(struct mysqlbe_conn *c);

/* --- mysql_cancel.c ----------------------------------------------------- */

void dlock__mysql_cancel_init(struct mysqlbe_conn *c);
/* No kill thread runs after it; closes the cancel connection. */
void dlock__mysql_cancel_destroy(struct mysqlbe_conn *c);
/* The backend table's cancel and cancel_clear. */
void dlock__mysql_cancel(struct dlock_conn *conn);
void dlock__mysql_cancel_clear(struct dlock_conn *conn);
/* An acquire call begins (active 1) or ends (0). */
void dlock__mysql_acquiring(struct mysqlbe_conn *c, int active);
/* Was dlock_cancel() called during the acquire in progress? */
int dlock__mysql_cancel_asked(struct mysqlbe_conn *c);
/* Around a GET_LOCK that waits: see mysql_cancel.c. */
int dlock__mysql_begin_wait(struct mysqlbe_conn *c);
int dlock__mysql_end_wait(struct mysqlbe_conn *c);

/* --- history.c: run history and the preflight (both modes) ---------------- */
int dlock__mysql_history_add(struct mysqlbe_conn *c, const char *name, const struct dlock_history_entry *run,
                             unsigned keep, struct dlock_call *call);
int dlock__mysql_history_read(struct mysqlbe_conn *c, const char *name, size_t max, struct dlock_history *out,
                              struct dlock_call *call);
/* With a name (NULL: none), also who holds it in the mode the URL does not name. */
int dlock__mysql_check(struct mysqlbe_conn *c, const char *name, struct dlock_check_list *out,
                       struct dlock_call *call);
#endif /* DLOCK_MYSQL_CONN_H */
