/*
 * The PostgreSQL backend's own declarations, shared by its files
 * (backends/postgresql/):
 *   postgresql.c  the backend table and session mode's lock operations:
 *                 acquire (try, wait), extend, release, holder, cancel
 *   conn.c        connect and disconnect; sessions: settings, prepared
 *                 statements, drop
 *   io.c          round trips with a deadline and cancel; a statement's
 *                 outcome (dlock__pg_answer); error text
 *   lease.c       lease mode: a row per name (mode=lease)
 *   ops.c         list, break, the server's clock, run records (both modes)
 *   history.c     run history (the dlock_runs table) and the preflight
 *   url.c         URLs and password scrubbing, without libpq (url.h)
 *   api.c         libpq, loaded at first use (api.h)
 *   key.h         the advisory key of a name, for the tests
 * Cross-file names are dlock__pg_*.  Include after config.h.  Internal;
 * not installed.
 */
#ifndef DLOCK_PG_INTERNAL_H
#define DLOCK_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"
#include "api.h"
#include "url.h"
#include "session.h"

/* The server keeps NAMEDATALEN - 1 bytes of application_name. */
#define PG_APPNAME_MAX 63
/* Connection defaults; a value given in the URL wins (it comes later). */
#define PG_KEEPALIVES_IDLE_S "5"
#define PG_KEEPALIVES_INTERVAL_S "2"
#define PG_KEEPALIVES_COUNT "3"
#define PG_TCP_USER_TIMEOUT_MS "10000"

typedef struct pg_lock {
    /* First: the core passes this (lib/internal.h); lib/session.c keeps
     * its links, the generation it was taken in and its ttl_ms. */
    struct dlock_held base;
    int64_t key;
    char owner[37]; /* lease mode: this acquisition's owner token (a UUID) */
    /* Session mode: when it was taken (the core's clock, dlock__now_ms), and
     * its row in PG_HOLDERS_TABLE: 0 none yet, 1 written, -1 not to be. */
    int64_t taken_ms;
    int listed;
} pg_lock;

/* A per-session (session mode) or per-connection random token in hex. */
#define PG_TOKEN_HEX 32
/* "dlock_unlock_set_" + the token */
#define PG_STMT_NAME_MAX 64
/* A quoted identifier of at most 63 bytes (the URL parser checks it). */
#define PG_TABLE_MAX 72
/* Lease mode's default table, which session mode looks into (issue 23). */
#define PG_LEASE_TABLE "\"dlock_leases\""
/* Session mode: a lock's name and since, written at its first renewal
 * (ops.c, docs/postgresql.md "Listing session-mode locks"). */
#define PG_HOLDERS_TABLE "dlock_holders"
#define PG_TYPE_INT8 20
#define PG_TYPE_TEXT 25

/* Why a round trip ended without a result. */
enum pg_failure {
    PG_FAIL_NONE,
    PG_FAIL_CONN,    /* the connection broke */
    PG_FAIL_TIMEOUT, /* no answer before the call's deadline */
    PG_FAIL_CANCEL   /* a cancel that the server did not act on in time */
};

typedef struct pg_conn {
    struct dlock_conn base; /* first */
    char *url;              /* handed to libpq as is; never shown */
    char *password;         /* only to scrub it out of messages */
    char appname[PG_APPNAME_MAX + 1];
    PGconn *pg;                   /* NULL: no session (the next acquire opens one) */
    PGcancel *cancel;             /* used by the waiting thread itself */
    struct dlock_session session; /* the locks on it, the lease, the generation */
    uint32_t session_idle_ms;     /* idle_session_timeout in force, 0 none */
    int fatal_seen;               /* the server announced it is ending the session */
    int wake_fd;                  /* eventfd: dlock_cancel() wakes a waiting acquire */
    atomic_int cancel_requested;
    int64_t deadline_ms;        /* of the round trip in progress (dlock__now_ms) */
    int64_t connect_timeout_ms; /* the URL's connect_timeout (or the default); 0 none */
    enum pg_failure failure;    /* why the last round trip got no result */
    int lease;                  /* mode=lease: a row per lock, no session state */
    int fencing;                /* session mode: fencing=on */
    char table[PG_TABLE_MAX];   /* the lease table (lease) or the fence table (session), quoted */
    int table_ready;            /* the table is known to exist */
    int leases_seen;            /* session mode: PG_LEASE_TABLE exists (its check is prepared) */
    int holders_off;            /* session mode: this role cannot write PG_HOLDERS_TABLE */
    unsigned lease_used;        /* lease mode: hot statements sent on this connection (a bit each) */
    unsigned lease_prepared;    /* ... and prepared on it */
    int lease_unnamed;          /* lease mode: prepared statements do not work here (a pooler) */
    /* Session mode: this session's token, set in the server session at
     * setup (dlock.session) and checked by every lock statement, and the
     * suffix of its prepared statements' names. */
    char token[PG_TOKEN_HEX + 1];
} pg_conn;

/* The one place that recovers the backend's own structs from the bases. */
static inline pg_conn *dlock__pg_of(struct dlock_conn *conn)
{
    return (pg_conn *)conn;
}

static inline pg_lock *dlock__pg_lock_of(struct dlock_held *held)
{
    return (pg_lock *)held;
}

/* --- postgresql.c: session mode's lock operations ----------------------------------- */

/* A name's advisory key in decimal, as statements take it. */
void dlock__pg_key_text(char buf[24], int64_t key);
/* DLOCK_ELOST: the session that held lock `name` has ended. */
int dlock__pg_session_ended(const char *name);
/* DLOCK_ELOST: the session lives on, but no longer holds lock `name`. */
int dlock__pg_no_longer_held(const char *name);

/* --- ops.c: list, break, store time, run records (the backend table's slots) -------- */

int dlock__pg_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call);
int dlock__pg_break_lock(struct dlock_conn *conn, const char *name, struct dlock_call *call);
int dlock__pg_clock(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call);
/* A name from encode(name, 'hex'), malloc'ed (NULL: out of memory). */
char *dlock__pg_from_hex(const char *hex);
int dlock__pg_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                         struct dlock_call *call);
int dlock__pg_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                         struct dlock_call *call);

/* Session mode, at a lock's first renewal: its row in PG_HOLDERS_TABLE
 * (created when missing).  DLOCK_OK, also when the role may not write it;
 * the session broke: DLOCK_ELOST. */
int dlock__pg_list_register(pg_conn *c, pg_lock *l, const char *name);
/* ... and its removal after the release (errors are ignored). */
void dlock__pg_list_unregister(pg_conn *c, pg_lock *l);

/* The message when a statement ran in a server session that is not ours. */
int dlock__pg_pooler_error(void);

/* --- lease.c: lease mode ---------------------------------------------------------- */

int dlock__pg_lease_acquire(pg_conn *c, const char *name, uint32_t ttl_ms, int32_t wait_ms, struct dlock_call *call,
                            pg_lock *l);
int dlock__pg_lease_extend(pg_conn *c, pg_lock *l, const char *name, uint32_t ttl_ms);
int dlock__pg_lease_release(pg_conn *c, pg_lock *l, const char *name);
int dlock__pg_lease_holder(pg_conn *c, const char *name, char *buf, size_t buflen);
/* Session mode: the holder of `name` in lease mode's default table. */
int dlock__pg_leased_holder(pg_conn *c, const char *name, char *buf, size_t buflen);
int dlock__pg_lease_list(pg_conn *c, const char *prefix, struct dlock_list *list);
int dlock__pg_lease_break(pg_conn *c, const char *name);
/* Session mode: break the name's row in lease mode's default table. */
int dlock__pg_lease_break_default(pg_conn *c, const char *name);
int dlock__pg_lease_record(pg_conn *c, pg_lock *l, const char *name, int64_t *slot, int put);
/* One unnamed statement (PQsendQueryParams: works through a transaction
 * pooler), bounded by the call's deadline; *sent_ms when not NULL.  Every
 * parameter is text except those whose type is PG_TYPE_BYTEA (binary, with
 * its length in lengths[]). */
#define PG_TYPE_BYTEA 17
PGresult *dlock__pg_exec(pg_conn *c, const char *sql, int nparams, const Oid *types, const char *const *values,
                         const int *lengths, int64_t *sent_ms);
/* Create c->table when it is missing (CREATE TABLE IF NOT EXISTS); a role
 * that may not: DLOCK_EBACKEND pointing to the DDL in docs/postgresql.md. */
int dlock__pg_create_table(pg_conn *c);
/* The server's clock, in Unix ms (either mode). */
int dlock__pg_store_time(pg_conn *c, int64_t *unix_ms);
/* An unnamed statement whose SQL is a format (%1$s: the table), with the
 * table created on first use and one retry on a fresh connection (lease
 * mode only: session mode must not retry a lock statement elsewhere).  NULL
 * with *rc_out set on failure. */
PGresult *dlock__pg_session_exec(pg_conn *c, const char *fmt, int nparams, const Oid *types, const char *const *values,
                                 const int *lengths, const char *what, int *rc_out);
/* Statement names of this session: "<base>_<token>". */
void dlock__pg_stmt_name(const pg_conn *c, const char *base, char out[PG_STMT_NAME_MAX]);

/* What the result of a round trip says. */
enum { OUTCOME_OK, OUTCOME_SQL_ERROR, OUTCOME_CONNECTION_LOST };

/* How one statement's failure reads (dlock__pg_answer). */
struct pg_what {
    int lost_status;     /* the connection broke: DLOCK_ECONN, or DLOCK_ELOST (a held lock went with it) */
    const char *broke;   /* then: "the connection broke while ..." */
    const char *failed;  /* the server refused it: "cannot ..." (DLOCK_EBACKEND) */
    int conflict_status; /* a serialization failure or deadlock: this status (0: DLOCK_EBACKEND) */
};

/* --- history.c: run history and the preflight (both modes) ------------------------- */

int dlock__pg_history_add(pg_conn *c, const char *name, const struct dlock_history_entry *run, unsigned keep);
int dlock__pg_history_read(pg_conn *c, const char *name, size_t max, struct dlock_history *out);
/* With a name (NULL: none) and its advisory key (decimal), also who holds
 * it in the mode the URL does not name. */
int dlock__pg_check(pg_conn *c, const char *name, const char *key, struct dlock_check_list *out);

/* --- io.c: round trips, error text ---------------------------------------------- */

/* The deadline of the round trips of one backend call: the caller's, and
 * DLOCK_CALL_TIMEOUT_MS at most (the wait itself sets its own). */
void dlock__pg_begin_call(pg_conn *c, int64_t deadline_ms);
/* Extend and release: bounded by the lease itself, however long. */
void dlock__pg_lease_call(pg_conn *c, int64_t deadline_ms);
/* poll() `fd` for `events` (and wake_fd when >= 0, which is drained) until
 * until_ms (INT64_MAX: no limit).  >0 ready or woken, 0 the time is up, <0
 * an error. */
int dlock__pg_wait_socket(int fd, short events, int64_t until_ms, int wake_fd);
/* The next result of what is in flight on `pg`; NULL at the end of a
 * command, or on a failure (then c->failure is set). */
PGresult *dlock__pg_next_result(pg_conn *c, PGconn *pg);
/* Wait for the result of the statement in flight, no later than the
 * deadline; when `cancelable`, dlock_cancel() sends PQcancel.  NULL: no
 * result, c->failure says why. */
PGresult *dlock__pg_await_result(pg_conn *c, int cancelable, int *cancel_sent);
/* One prepared statement, one round trip, bounded by the call's deadline.
 * *sent_ms (when not NULL): when it was sent. */
PGresult *dlock__pg_run_at(pg_conn *c, const char *statement, int nparams, const char *const *values, int64_t *sent_ms);
/* The same with binary bytea parameters (see dlock__pg_exec). */
PGresult *dlock__pg_run_bin(pg_conn *c, const char *statement, int nparams, const char *const *values,
                            const int *lengths, const int *formats, int64_t *sent_ms);
PGresult *dlock__pg_run(pg_conn *c, const char *statement, int nparams, const char *const *values);
/* OUTCOME_OK, OUTCOME_SQL_ERROR or OUTCOME_CONNECTION_LOST. */
int dlock__pg_outcome(pg_conn *c, const PGresult *res);
/* The one reading of a statement's result.  DLOCK_OK: it ran (read `res`).
 * The connection broke or the deadline passed: the session is dropped and
 * the answer is w->lost_status ("<broke>: <why>").  The server refused the
 * statement: DLOCK_EBACKEND (or w->conflict_status) with "<failed>: <the
 * server's message> (SQLSTATE ...)", `res` still there for a caller that
 * looks at its SQLSTATE.  *kind (when not NULL): the OUTCOME_*.  `res`
 * stays the caller's to clear. */
int dlock__pg_answer(pg_conn *c, const PGresult *res, const struct pg_what *w, int *kind);
/* A serialization failure or a deadlock: "busy, try again". */
int dlock__pg_is_conflict(const PGresult *res);
/* Shared by both modes' statements. */
extern const struct pg_what dlock__pg_reading_holder, dlock__pg_breaking;
/* The first column of the first row is true. */
int dlock__pg_first_bool(const PGresult *res);
int dlock__pg_has_sqlstate(const PGresult *res, const char *state);
/* Set the error text ("what: why") from libpq's text or a result. */
int dlock__pg_libpq_error(pg_conn *c, int status, const char *what, const char *libpq_text);
int dlock__pg_result_error(pg_conn *c, int status, const char *what, const PGresult *res);

/* --- conn.c: connect, disconnect, sessions ------------------------------------------- */

/* The backend table's connect and disconnect. */
int dlock__pg_connect(const char *url, struct dlock_conn **conn_out);
void dlock__pg_disconnect(struct dlock_conn *conn);

/* Connect, check the server, set the session up (c->deadline_ms bounds it). */
int dlock__pg_open_session(pg_conn *c);
/* Without a round trip: is the session still there? */
int dlock__pg_session_usable(pg_conn *c);
/* A usable session: the one we have, or a new one (then *fresh, when not
 * NULL, is set to 1). */
int dlock__pg_ensure_session(pg_conn *c, int *fresh);
/* The session is gone (or must go): every lock on it is lost. */
void dlock__pg_drop_session(pg_conn *c);
/* The connection failed in the middle of `what` (or the server did not
 * answer in time): say so, then drop the session. */
int dlock__pg_connection_lost(pg_conn *c, int status, const char *what);

#endif
