/*
 * The ZooKeeper backend's one private header.
 *
 * File map:
 *   zookeeper.c  the table, connect/disconnect, acquire (the recipe), extend, release
 *   conn.c       the session: open, reuse, end; the sweep of nodes a failed call may have left
 *   io.c         async calls as heap "ops", and the poll loop that drives the single-threaded
 *                client (zookeeper_interest / poll / zookeeper_process) to a deadline
 *   ops.c        holder, list, break, store time, run records
 *   history.c    dlock run's history (a folder of sequential nodes per name) and the preflight
 *   url.c url.h  the URL parser and the name encoding (pure)
 *   api.c api.h  the client-library loader
 *
 * Node layout (docs/zookeeper.md):
 *   BASE                      the chroot of the URL, else /dlock (persistent)
 *   BASE/ENC                  one container per lock name: ENC = encode(prefix= + name)
 *   BASE/ENC/s<sid>-lock-NNNNNNNNNN  one ephemeral sequential node per contender; <sid> is
 *                             the owner's session id (16 hex digits), data: the holder text
 *   BASE/~records/ENC         a lock's run record (decimal), persistent
 *   BASE/~clock               written to read the leader's clock (store time)
 *   BASE/~history/ENC/r-NNNNNNNNNN  one run of dlock run (persistent sequential, the newest
 *                             DLOCK_HISTORY_KEEP kept), data: the run (history.c)
 * '~' never appears in an encoded name, so the two never meet a lock folder.
 */
#ifndef DLOCK_ZK_INTERNAL_H
#define DLOCK_ZK_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "session.h"
#include "api.h"
#include "url.h"

#define ZK_PATH_MAX (1024 + DLOCK_ZK_SEGMENT_MAX + 64)
#define ZK_STALE_MAX 16 /* folders to sweep; more: end the session */
/* How long a cancelled wait tries to delete its own node before it returns
 * (and leaves the node to the next call's sweep, or to its session). */
#define WITHDRAW_CANCELED_MS 500
/* The session timeout of a session opened for a call with no lock (a
 * holder query, a list): a lock with another TTL opens its own. */
#define ZK_DEFAULT_SESSION_MS 10000
/* The shortest silence of a member, during a call, after which the
 * backend drops the connection and the client moves on (io.c). */
#define ZK_SILENT_MIN_MS 2000
/* The longest session timeout asked for (the C client's int arithmetic). */
#define ZK_SESSION_MS_MAX 1000000000u

static inline uint32_t dlock__zk_asked_ms(uint32_t ttl_ms)
{
    return ttl_ms > ZK_SESSION_MS_MAX ? ZK_SESSION_MS_MAX : ttl_ms;
}

/* One asynchronous call in flight.  Heap-allocated: a call that gives up on
 * its deadline leaves it to the completion, which frees it. */
struct zk_op {
    struct zk_conn *conn;
    int done;      /* the completion ran */
    int rc;        /* its ZOK / Z* code */
    int abandoned; /* nobody waits: the completion frees it */
    struct Stat stat;
    int have_stat;
    char *text; /* create: the path made; get: the data (NUL-terminated) */
    int text_len;
    char **children; /* get_children */
    int count;
    zoo_op_result_t results[2]; /* multi */
    zoo_op_t multi[2];
    struct Stat multi_stat;
};

typedef struct zk_conn {
    struct dlock_conn base; /* first: the core passes this (lib/internal.h) */
    struct dlock_zk_url url;
    zhandle_t *zh;           /* NULL: no session */
    struct dlock_session s;  /* the locks on the session, its generation (lib/session.c) */
    int64_t session_id;      /* of zh once connected */
    uint32_t asked_ms;       /* the session timeout asked for */
    uint32_t negotiated_ms;  /* what the ensemble granted (0: not yet connected) */
    int64_t last_answer_ms;  /* the send time of the last call the server answered */
    int cloexec_fd;          /* the client's socket last marked close-on-exec */
    int cancel_fd;           /* eventfd: dlock_cancel() writes, a waiter polls */
    int wake_on_cancel;      /* ZK_WAKE_ON_CANCEL during an acquire that waits, else 0 */
    int watch_fired;         /* a watch event came (the waiter looks again) */
    char *stale[ZK_STALE_MAX]; /* lock folders where a node of ours may be left */
    int stale_count;
    struct ACL_vector acl;   /* for every node made */
    struct ACL acl_entry;
} zk_conn;

typedef struct zk_lock {
    struct dlock_held base; /* first */
    char *path;             /* the own node */
    char *dir;              /* its folder */
} zk_lock;

static inline zk_conn *zk_of(struct dlock_conn *conn)
{
    return (zk_conn *)conn;
}

static inline zk_lock *zk_lock_of(struct dlock_held *held)
{
    return (zk_lock *)held;
}

/* --- io.c --- */
enum { ZK_PUMP_DONE, ZK_PUMP_TIMEOUT, ZK_PUMP_CANCELED, ZK_PUMP_WOKEN, ZK_PUMP_ENDED };
enum { ZK_WAKE_ON_WATCH = 1, ZK_WAKE_ON_CANCEL = 2, ZK_UNTIL_CONNECTED = 4 };
struct zk_op *dlock__zk_op_new(zk_conn *c);
/* Free an op, or leave it to its completion when it has not run yet. */
void dlock__zk_op_free(struct zk_op *op);
/* The completions, for the zoo_a* calls (data: the op). */
void dlock__zk_void_done(int rc, const void *data);
void dlock__zk_stat_done(int rc, const struct Stat *stat, const void *data);
void dlock__zk_string_done(int rc, const char *value, const void *data);
void dlock__zk_create_done(int rc, const char *value, const struct Stat *stat, const void *data);
void dlock__zk_data_done(int rc, const char *value, int value_len, const struct Stat *stat, const void *data);
void dlock__zk_strings_done(int rc, const struct String_vector *strings, const void *data);
/* The watcher of a waiter's predecessor and of the session. */
void dlock__zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx);
/* Drive the session until every op of ops[0..n) is done (or as `flags`
 * say), or the deadline passes: ZK_PUMP_*.  ZK_PUMP_ENDED: the session
 * expired (or its authentication failed): it is closed, its locks lost. */
int dlock__zk_pump(zk_conn *c, struct zk_op *const *ops, int n, int64_t deadline_ms, int flags);
/* A Z* code that says the call may or may not have happened. */
int dlock__zk_uncertain(int rc);
/* DLOCK_ECONN / DLOCK_EBACKEND text for a Z* code. */
int dlock__zk_error(int rc, const char *what);
/* The deadline of one round trip of `call`: at most DLOCK_CALL_TIMEOUT_MS. */
int64_t dlock__zk_deadline(const struct dlock_call *call);

/* --- conn.c --- */
/* A connected session, opened with timeout_ms when a new one is needed (0:
 * any; an idle session with another timeout is replaced).  Sweeps the
 * stale folders first (a failed sweep is tried again at the next call). */
int dlock__zk_session(zk_conn *c, uint32_t timeout_ms, struct dlock_call *call);
/* Close the session (the ensemble deletes its nodes): its locks are lost. */
void dlock__zk_session_end(zk_conn *c);
/* Remember a lock folder where a node of ours may be left behind. */
void dlock__zk_stale_add(zk_conn *c, const char *dir);
/* "BASE/ENC(prefix= + name)" into out[ZK_PATH_MAX]. */
int dlock__zk_dir(const zk_conn *c, const char *name, char *out);
/* "s<session id>-": the start of every node of this session. */
void dlock__zk_node_prefix(const zk_conn *c, char out[24]);
/* The sequence number at the end of a node's name; -1 none. */
long long dlock__zk_sequence(const char *node);
/* Index of the lowest sequence among children[0..count) (-1: none). */
int dlock__zk_lowest(char *const *children, int count);
/* Create the persistent folders of `path` (each component, BASE and up).
 * Every ancestor only: `path` itself is not made. */
int dlock__zk_make_parents(zk_conn *c, const char *path, struct dlock_call *call);
/* Run one op and wait for it within the call's round-trip deadline,
 * retrying it after a connection loss while `idempotent`.  Returns the op
 * (done) or NULL with *status set. */
typedef int (*zk_send_fn)(zk_conn *c, struct zk_op *op, const void *arg);
struct zk_op *dlock__zk_call(zk_conn *c, zk_send_fn send, const void *arg, int idempotent,
                             struct dlock_call *call, int *status, int64_t *sent_ms);

/* --- zookeeper.c --- */
/* The own node, read through the leader (sync + exists, one round trip):
 * DLOCK_OK while it is this session's with the grant's creation zxid,
 * DLOCK_ELOST, or an error. */
int dlock__zk_check_own(zk_conn *c, zk_lock *lock, struct dlock_call *call);

/* --- ops.c --- */
int dlock__zk_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call);
int dlock__zk_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call);
int dlock__zk_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call);
int dlock__zk_break(struct dlock_conn *conn, const char *name, struct dlock_call *call);
int dlock__zk_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                         struct dlock_call *call);
int dlock__zk_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                         struct dlock_call *call);
/* The children of `dir` as the leader has them (a sync and the list in one
 * round trip): the op (its rc ZOK or ZNONODE...), or NULL with *status. */
struct zk_op *dlock__zk_synced_children(zk_conn *c, const char *dir, struct dlock_call *call, int *status);

/* --- history.c --- */
int dlock__zk_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                          unsigned keep, struct dlock_call *call);
int dlock__zk_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                           struct dlock_call *call);
int dlock__zk_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out, struct dlock_call *call);

#endif
