/*
 * The Redis backend's connection, its round trips and its scripts, shared by
 * its files (backends/redis/):
 *   redis.c    the backend table: connect, acquire, wait, extend, release
 *   io.c       connections, deadlines, EVALSHA
 *   ops.c      holder, list, break, clock, run records
 *   history.c  run history (a capped list per name) and the preflight
 *   scripts.h  the Lua scripts
 *   url.c      URLs (pure; no client library; url.h)
 *   api.c      hiredis, loaded at first use (api.h)
 * Cross-file names are dlock__redis_*.  Include after <hiredis/hiredis.h>
 * (api.h).
 */
#ifndef DLOCK_REDIS_CONN_H
#define DLOCK_REDIS_CONN_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/types.h>

#include "internal.h"
#include "api.h"
#include "scripts.h"
#include "url.h"

#define TOKEN_HEX 32
#define WAIT_POLL_MAX_MS 250 /* a waiter looks again at least this often */
#define CANCEL_GRACE_MS 200  /* a cancelled wait's round trip may still answer this long */
#define KEY_MAX 600          /* prefix (255) + braces + name (255) + suffix */
#define MAX_ARGS 8

typedef struct redis_conn {
    struct dlock_conn base; /* first: the core passes this (lib/internal.h) */
    struct dlock_redis_url url;
    redisContext *ctx;      /* NULL: connect at the next call */
    redisContext *sub;      /* the waiters' connection; NULL until the first wait */
    int sub_failed;         /* the server refused SUBSCRIBE: waiters poll */
    int sub_dirty;          /* an UNSUBSCRIBE's answer may still be on its way */
    int cancel_fd;          /* eventfd: dlock_cancel() writes, a waiter polls */
    int cancellable;        /* in a wait: a round trip also ends on a cancel (DLOCK_ECANCELED) */
    int64_t ctx_timeout_ms; /* the main socket's timeouts in force; 0: unknown */
    int timed_out;          /* the last I/O error was a timeout */
    pid_t pid;              /* this process, at connect (a client is not used across fork()) */
    int resent;             /* a round trip was sent again after its answer was lost (set, never cleared, by
                               dlock__redis_round_trip: clear it before the call that asks) */
} redis_conn;

typedef struct redis_lock {
    struct dlock_held base; /* first */
    char token[TOKEN_HEX + 1];
} redis_lock;

static inline redis_conn *redis_of(struct dlock_conn *conn)
{
    return (redis_conn *)conn;
}

static inline redis_lock *redis_lock_of(struct dlock_held *held)
{
    return (redis_lock *)held;
}

/* One command: its arguments, binary-safe. */
struct redis_cmd {
    int argc;
    const char *argv[MAX_ARGS];
    size_t len[MAX_ARGS];
};

static inline void dlock__redis_arg(struct redis_cmd *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->len[c->argc] = len;
    c->argc++;
}

static inline void dlock__redis_args(struct redis_cmd *c, const char *s)
{
    dlock__redis_arg(c, s, strlen(s));
}

/* "<prefix>{<name>}<suffix>": the keys of one lock share the hash tag. */
static inline size_t dlock__redis_key(const redis_conn *c, const char *name, const char *suffix, char *out)
{
    int n = snprintf(out, KEY_MAX, "%s{%s}%s", c->url.prefix, name, suffix);
    return n < 0 ? 0 : (size_t)n;
}

/* --- io.c --- */
struct timeval dlock__redis_tv(int64_t ms);
/* The time left for one round trip of `call` (at most DLOCK_CALL_TIMEOUT_MS). */
int64_t dlock__redis_left_ms(const struct dlock_call *call);
void dlock__redis_drop(redisContext **ctx);
/* DLOCK_ECONN saying what failed (never the password); drops *ctx. */
int dlock__redis_io_error(redis_conn *c, redisContext **ctx, const char *what);
/* Send n (<= REDIS_SEND_MAX) commands with MSG_NOSIGNAL, not through
 * hiredis's write(): a write on a connection the server has reset raises
 * SIGPIPE, which would kill the process that uses the library.  The replies
 * are read with redisGetReply(), whose output buffer stays empty.  On
 * failure: DLOCK_ECONN, the connection dropped. */
#define REDIS_SEND_MAX 4
/* Read one reply on *ctx by end_ms (dlock__now_ms() time); in a wait
 * (c->cancellable) a cancel ends it with DLOCK_ECANCELED.  On failure the
 * connection is dropped. */
int dlock__redis_read(redis_conn *c, redisContext **ctx, int64_t end_ms, void **reply, const char *what);
int dlock__redis_send(redis_conn *c, redisContext **ctx, int n, const struct redis_cmd *cmds, const char *what);
/* A new connection within ms, authenticated, on the URL's database (`select`). */
int dlock__redis_open(redis_conn *c, int64_t ms, int select, redisContext **out);
/* n commands and their n replies in one round trip on the main connection,
 * bounded by the call's deadline; *sent_ms (may be NULL): when it was sent. */
int dlock__redis_round_trip(redis_conn *c, struct dlock_call *call, int n, const struct redis_cmd *cmds,
                            redisReply **replies, int64_t *sent_ms);
/* EVALSHA, EVAL when the server lost the script; an error reply is DLOCK_EBACKEND. */
int dlock__redis_script(redis_conn *c, struct dlock_call *call, int script, int nkeys, const char *const *a,
                        const size_t *alen, int nargs, redisReply **reply, int64_t *sent_ms);
/* A script on the lock's key (and <key><suffix2>) with the owner token and
 * `extra`: its integer answer in *out. */
int dlock__redis_owned_script(redis_conn *c, int script, const char *name, const char *token, const char *extra,
                              size_t extra_len, const char *suffix2, struct dlock_call *call, long long *out,
                              int64_t *sent_ms);

/* --- ops.c --- */
int dlock__redis_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call);
int dlock__redis_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call);
int dlock__redis_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call);
int dlock__redis_break(struct dlock_conn *conn, const char *name, struct dlock_call *call);
int dlock__redis_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                            struct dlock_call *call);
int dlock__redis_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                            struct dlock_call *call);

/* --- history.c --- */
int dlock__redis_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                             unsigned keep, struct dlock_call *call);
int dlock__redis_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                              struct dlock_call *call);
int dlock__redis_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out,
                       struct dlock_call *call);

#endif
