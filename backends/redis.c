/*
 * Redis backend: a lock is a key set with NX and a millisecond expiry,
 * holding a random owner token and the holder; a second key counts the
 * fencing tokens.  Extend, release and the run records are scripts that act
 * only while the owner token matches (backends/redis_scripts.h).  Waiters
 * subscribe to the lock's channel on a second connection, which the release
 * script publishes to.  docs/redis.md tells the whole story.
 *
 * hiredis is used in blocking mode with socket timeouts set, before every
 * round trip, to what is left of the call's deadline: a server that stops
 * answering costs the call its deadline, then the connection is dropped
 * (DLOCK_ECONN) and the next call connects again.  Nothing lives in the
 * server session, so a new connection loses no lock.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "redis_api.h"
#include "redis_scripts.h"
#include "redis_url.h"

#define TOKEN_HEX 32
#define WAIT_POLL_MAX_MS 250 /* a waiter looks again at least this often */
#define KEY_MAX 600          /* prefix (255) + braces + name (255) + suffix */
#define MAX_ARGS 8

static const char *const script_text[SCRIPT_COUNT] = {
    [SCRIPT_ACQUIRE] = DLOCK_REDIS_ACQUIRE,       [SCRIPT_EXTEND] = DLOCK_REDIS_EXTEND,
    [SCRIPT_RELEASE] = DLOCK_REDIS_RELEASE,       [SCRIPT_BREAK] = DLOCK_REDIS_BREAK,
    [SCRIPT_RECORD_GET] = DLOCK_REDIS_RECORD_GET, [SCRIPT_RECORD_PUT] = DLOCK_REDIS_RECORD_PUT,
};
static char script_sha[SCRIPT_COUNT][41];
static pthread_once_t script_sha_once = PTHREAD_ONCE_INIT;

static void compute_shas(void)
{
    for (int i = 0; i < SCRIPT_COUNT; i++)
        dlock__redis_sha1_hex(script_text[i], script_sha[i]);
}

typedef struct redis_conn {
    struct dlock_conn base; /* first: the core passes this (lib/internal.h) */
    struct dlock_redis_url url;
    redisContext *ctx;      /* NULL: connect at the next call */
    redisContext *sub;      /* the waiters' connection; NULL until the first wait */
    int sub_failed;         /* the server refused SUBSCRIBE: waiters poll */
    int sub_dirty;          /* an UNSUBSCRIBE's answer may still be on its way */
    int cancel_fd;          /* eventfd: dlock_cancel() writes, a waiter polls */
    int64_t ctx_timeout_ms; /* the main socket's timeouts in force; 0: unknown */
} redis_conn;

typedef struct redis_lock {
    struct dlock_held base; /* first */
    char token[TOKEN_HEX + 1];
} redis_lock;

static redis_conn *redis_of(struct dlock_conn *conn)
{
    return (redis_conn *)conn;
}

static redis_lock *redis_lock_of(struct dlock_held *held)
{
    return (redis_lock *)held;
}

/* One command: its arguments, binary-safe. */
struct cmd {
    int argc;
    const char *argv[MAX_ARGS];
    size_t len[MAX_ARGS];
};

static void arg(struct cmd *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->len[c->argc] = len;
    c->argc++;
}

static void args(struct cmd *c, const char *s)
{
    arg(c, s, strlen(s));
}

/* "<prefix>{<name>}<suffix>": the keys of one lock share the hash tag. */
static size_t make_key(const redis_conn *c, const char *name, const char *suffix, char *out)
{
    int n = snprintf(out, KEY_MAX, "%s{%s}%s", c->url.prefix, name, suffix);
    return n < 0 ? 0 : (size_t)n;
}

/* --- connections ------------------------------------------------------------------ */

static struct timeval tv_of(int64_t ms)
{
    if (ms < 1)
        ms = 1;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* The time left for one round trip of `call`. */
static int64_t left_ms(const struct dlock_call *call)
{
    int64_t now = dlock__now_ms();
    int64_t end = now + DLOCK_CALL_TIMEOUT_MS;
    if (call->deadline_ms < end)
        end = call->deadline_ms;
    return end - now;
}

static void drop(redisContext **ctx)
{
    if (*ctx)
        redisFree(*ctx);
    *ctx = NULL;
}

/* The server's error text, unless it would show the password. */
static const char *safe_text(const redis_conn *c, const char *text)
{
    if (!text)
        return "?";
    if (c->url.password && strstr(text, c->url.password))
        return "(message not shown: it holds the password)";
    return text;
}

static const char *where(const redis_conn *c, char *buf, size_t len)
{
    if (c->url.socket)
        snprintf(buf, len, "%s", c->url.socket);
    else
        snprintf(buf, len, "%s%s%s:%d", strchr(c->url.host, ':') ? "[" : "", c->url.host,
                 strchr(c->url.host, ':') ? "]" : "", c->url.port);
    return buf;
}

static int io_error(redis_conn *c, redisContext **ctx, const char *what)
{
    char at[300];
    int timed_out = (*ctx)->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
    int rc = dlock__error(DLOCK_ECONN, "%s %s: %s", what, where(c, at, sizeof at),
                          timed_out ? "no answer before the call's deadline" : safe_text(c, (*ctx)->errstr));
    drop(ctx);
    return rc;
}

/* The socket timeouts of a connection: set (two system calls) only when the
 * one in force would let the call run past its deadline, or is much shorter
 * than the time left (most calls have the same 10 s, or the same lease). */
static int set_timeout(redisContext *ctx, int64_t ms, int64_t *in_force)
{
    if (ms < 1)
        ms = 1;
    if (*in_force > 0 && *in_force <= ms && *in_force >= ms - ms / 8)
        return REDIS_OK;
    *in_force = 0;
    if (redisSetTimeout(ctx, tv_of(ms)) != REDIS_OK)
        return REDIS_ERR;
    *in_force = ms;
    return REDIS_OK;
}

/* Send the commands and read one reply each, within `ms`.  On failure the
 * connection is dropped and the replies freed. */
static int exchange(redis_conn *c, redisContext **ctx, int64_t ms, int n, const struct cmd *cmds, redisReply **replies,
                    const char *what)
{
    for (int i = 0; i < n; i++)
        replies[i] = NULL;
    int64_t unknown = 0, *in_force = ctx == &c->ctx ? &c->ctx_timeout_ms : &unknown;
    if (set_timeout(*ctx, ms, in_force) != REDIS_OK)
        return io_error(c, ctx, what);
    for (int i = 0; i < n; i++)
        if (redisAppendCommandArgv(*ctx, cmds[i].argc, (const char **)cmds[i].argv, cmds[i].len) != REDIS_OK)
            return io_error(c, ctx, what);
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(*ctx, &r) != REDIS_OK || !r) {
            int rc = io_error(c, ctx, what);
            for (int j = 0; j < i; j++) {
                freeReplyObject(replies[j]);
                replies[j] = NULL;
            }
            return rc;
        }
        replies[i] = r;
    }
    return DLOCK_OK;
}

/* A new connection, authenticated, on the URL's database (`select`). */
static int open_ctx(redis_conn *c, int64_t ms, int select, redisContext **out)
{
    char at[300];
    int64_t start = dlock__now_ms();
    redisContext *ctx = c->url.socket ? redisConnectUnixWithTimeout(c->url.socket, tv_of(ms))
                                      : redisConnectWithTimeout(c->url.host, c->url.port, tv_of(ms));
    if (!ctx)
        return dlock__oom();
    if (ctx->err) {
        int rc =
            dlock__error(DLOCK_ECONN, "cannot connect to %s: %s", where(c, at, sizeof at), safe_text(c, ctx->errstr));
        redisFree(ctx);
        return rc;
    }
    /* hiredis makes its socket without close-on-exec: a job that dlock run
     * starts must not inherit it. */
    int flags = fcntl(ctx->fd, F_GETFD);
    if (flags >= 0)
        fcntl(ctx->fd, F_SETFD, flags | FD_CLOEXEC);
    struct cmd cmds[2] = {{0}, {0}};
    int n = 0;
    if (c->url.password) {
        args(&cmds[n], "AUTH");
        if (c->url.user)
            args(&cmds[n], c->url.user);
        args(&cmds[n], c->url.password);
        n++;
    }
    char db[16];
    if (select && c->url.db) {
        snprintf(db, sizeof db, "%d", c->url.db);
        args(&cmds[n], "SELECT");
        args(&cmds[n], db);
        n++;
    }
    redisReply *r[2] = {NULL, NULL};
    int rc = DLOCK_OK;
    if (n)
        rc = exchange(c, &ctx, ms - (dlock__now_ms() - start), n, cmds, r, "cannot set up the connection to");
    /* A failed exchange has freed its replies (and left NULLs). */
    for (int i = 0; rc == DLOCK_OK && i < n; i++)
        if (r[i]->type == REDIS_REPLY_ERROR)
            rc = dlock__error(DLOCK_ECONN, "%s refused by %s: %s",
                              i == 0 && c->url.password ? "authentication" : "SELECT of the database",
                              where(c, at, sizeof at), safe_text(c, r[i]->str));
    for (int i = 0; i < n; i++)
        if (r[i])
            freeReplyObject(r[i]);
    if (rc != DLOCK_OK) {
        drop(&ctx);
        return rc;
    }
    *out = ctx;
    if (out == &c->ctx)
        c->ctx_timeout_ms = 0;
    return DLOCK_OK;
}

/* One round trip on the main connection, bounded by the call's deadline.  A
 * connection that had been idle and turns out to be closed (a server
 * restart, CLIENT KILL, an idle timeout) is replaced once: every command the
 * backend sends may safely run twice. */
static int round_trip(redis_conn *c, struct dlock_call *call, int n, const struct cmd *cmds, redisReply **replies,
                      int64_t *sent_ms)
{
    for (int attempt = 0;; attempt++) {
        int64_t ms = left_ms(call);
        if (ms <= 0)
            return dlock__error(DLOCK_ECONN, "the call's deadline passed before the store answered");
        int fresh = !c->ctx;
        if (fresh) {
            int rc = open_ctx(c, ms, 1, &c->ctx);
            if (rc != DLOCK_OK)
                return rc;
            ms = left_ms(call);
            if (ms <= 0) {
                drop(&c->ctx);
                return dlock__error(DLOCK_ECONN, "the call's deadline passed while connecting");
            }
        }
        /* The first send: a lost answer may mean it ran then (the acquire
         * script then answers the retry as taken, from that moment). */
        if (sent_ms && attempt == 0)
            *sent_ms = dlock__now_ms();
        int rc = exchange(c, &c->ctx, ms, n, cmds, replies, "lost the connection to");
        if (rc == DLOCK_OK || fresh || attempt > 0 || left_ms(call) <= 0)
            return rc;
        if (strstr(dlock_last_error(), "deadline"))
            return rc; /* a timeout: the server is slow, not gone */
    }
}

/* Run a script: EVALSHA, and EVAL when the server has lost it (restart,
 * SCRIPT FLUSH), which also caches it again. */
static int run_script(redis_conn *c, struct dlock_call *call, int script, int nkeys, const char *const *a,
                      const size_t *alen, int nargs, redisReply **reply, int64_t *sent_ms)
{
    pthread_once(&script_sha_once, compute_shas);
    char numkeys[8];
    snprintf(numkeys, sizeof numkeys, "%d", nkeys);
    for (int pass = 0; pass < 2; pass++) {
        struct cmd cmd = {0};
        args(&cmd, pass == 0 ? "EVALSHA" : "EVAL");
        args(&cmd, pass == 0 ? script_sha[script] : script_text[script]);
        args(&cmd, numkeys);
        for (int i = 0; i < nargs; i++)
            arg(&cmd, a[i], alen[i]);
        int rc = round_trip(c, call, 1, &cmd, reply, pass == 0 ? sent_ms : NULL);
        if (rc != DLOCK_OK)
            return rc;
        if ((*reply)->type == REDIS_REPLY_ERROR && pass == 0 && strncmp((*reply)->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(*reply);
            continue;
        }
        break;
    }
    if ((*reply)->type == REDIS_REPLY_ERROR) {
        int rc = dlock__error(DLOCK_EBACKEND, "the server refused a script: %s", safe_text(c, (*reply)->str));
        freeReplyObject(*reply);
        *reply = NULL;
        return rc;
    }
    return DLOCK_OK;
}

static void redis_disconnect(struct dlock_conn *conn);

static int redis_connect(const char *url, struct dlock_conn **conn_out)
{
    struct dlock_redis_url parsed;
    int rc = dlock__redis_parse_url(url, &parsed);
    if (rc != DLOCK_OK)
        return rc;
    if ((rc = dlock__redis_load()) != DLOCK_OK) {
        dlock__redis_url_free(&parsed);
        return rc;
    }
    redis_conn *c = calloc(1, sizeof *c);
    if (!c) {
        dlock__redis_url_free(&parsed);
        return dlock__oom();
    }
    c->url = parsed;
    c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->cancel_fd < 0) {
        rc = dlock__error(DLOCK_ENOMEM, "eventfd: %s", strerror(errno));
        redis_disconnect(&c->base);
        return rc;
    }
    /* Connect now: a wrong password or an unreachable server shows at once. */
    if ((rc = open_ctx(c, DLOCK_CALL_TIMEOUT_MS, 1, &c->ctx)) != DLOCK_OK) {
        redis_disconnect(&c->base);
        return rc;
    }
    *conn_out = &c->base;
    return DLOCK_OK;
}

static void redis_disconnect(struct dlock_conn *conn)
{
    redis_conn *c = redis_of(conn);
    if (!c)
        return;
    drop(&c->ctx);
    drop(&c->sub);
    if (c->cancel_fd >= 0)
        close(c->cancel_fd);
    dlock__redis_url_free(&c->url);
    free(c);
}

/* --- the lock ------------------------------------------------------------------------ */

/* One attempt.  DLOCK_OK (fence set), DLOCK_EBUSY (*pttl: the holder's time
 * left, -1 unknown), or an error. */
static int try_take(redis_conn *c, const char *name, uint32_t ttl_ms, redis_lock *lock, struct dlock_call *call,
                    int64_t *pttl)
{
    char key[KEY_MAX], fence[KEY_MAX], ttl[16], value[400];
    size_t klen = make_key(c, name, "", key), flen = make_key(c, name, ":fence", fence);
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int vlen = snprintf(value, sizeof value, "%s %lld %ld %s", lock->token,
                        (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, (long)getpid(), dlock__hostname());
    if (vlen < 0 || (size_t)vlen >= sizeof value)
        vlen = (int)strlen(value);
    const char *a[] = {key, fence, value, ttl};
    size_t alen[] = {klen, flen, (size_t)vlen, strlen(ttl)};
    redisReply *r = NULL;
    int rc = run_script(c, call, SCRIPT_ACQUIRE, 2, a, alen, 4, &r, &call->lease_start_ms);
    if (rc != DLOCK_OK)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER || r->integer == 0) {
        freeReplyObject(r);
        return dlock__error(DLOCK_EBACKEND, "unexpected answer to the acquire script");
    }
    long long value_in = r->integer;
    freeReplyObject(r);
    if (value_in > 0) {
        lock->base.fence = (uint64_t)value_in;
        return DLOCK_OK;
    }
    *pttl = -1 - value_in > 0 ? -1 - value_in : -1;
    return DLOCK_EBUSY;
}

/* Subscribe the waiters' connection to `channel` and wait for the server to
 * confirm (so that no release after the next try can be missed). */
static int subscribe(redis_conn *c, const char *channel, size_t len, struct dlock_call *call)
{
    int64_t ms = left_ms(call);
    if (ms <= 0)
        return DLOCK_ECONN;
    if (!c->sub) {
        int rc = open_ctx(c, ms, 0, &c->sub);
        if (rc != DLOCK_OK)
            return rc;
        c->sub_dirty = 0;
        ms = left_ms(call);
    }
    struct cmd cmd = {0};
    args(&cmd, "SUBSCRIBE");
    arg(&cmd, channel, len);
    if (redisSetTimeout(c->sub, tv_of(ms)) != REDIS_OK ||
        redisAppendCommandArgv(c->sub, cmd.argc, cmd.argv, cmd.len) != REDIS_OK)
        return io_error(c, &c->sub, "waiters' connection to");
    /* Skip what an earlier wait left (its unsubscribe, late messages). */
    for (;;) {
        void *v = NULL;
        if (redisGetReply(c->sub, &v) != REDIS_OK || !v)
            return io_error(c, &c->sub, "waiters' connection to");
        redisReply *r = v;
        int done = 0, refused = r->type == REDIS_REPLY_ERROR;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "subscribe") == 0 && r->element[1]->type == REDIS_REPLY_STRING &&
            r->element[1]->len == len && memcmp(r->element[1]->str, channel, len) == 0)
            done = 1;
        freeReplyObject(r);
        if (refused) {
            drop(&c->sub);
            c->sub_failed = 1; /* ACL without pub/sub: waiters poll */
            return DLOCK_EBACKEND;
        }
        if (done)
            return DLOCK_OK;
    }
}

static void unsubscribe(redis_conn *c)
{
    if (!c->sub)
        return;
    struct cmd cmd = {0};
    args(&cmd, "UNSUBSCRIBE");
    int done = 0;
    if (redisSetTimeout(c->sub, tv_of(100)) != REDIS_OK ||
        redisAppendCommandArgv(c->sub, cmd.argc, cmd.argv, cmd.len) != REDIS_OK)
        drop(&c->sub);
    while (c->sub && !done)
        if (redisBufferWrite(c->sub, &done) != REDIS_OK)
            drop(&c->sub);
    c->sub_dirty = 1;
}

enum nap_end { NAP_TIMEOUT, NAP_MESSAGE, NAP_CANCELED };

/* Sleep up to ms, until a message on `channel`, or dlock_cancel(). */
static enum nap_end nap(redis_conn *c, const char *channel, size_t len, int64_t ms)
{
    int64_t end = dlock__now_ms() + ms;
    for (;;) {
        if (c->sub) {
            void *v = NULL;
            while (c->sub && redisGetReplyFromReader(c->sub, &v) == REDIS_OK && v) {
                redisReply *r = v;
                int ours = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "message") == 0 &&
                           r->element[1]->len == len && memcmp(r->element[1]->str, channel, len) == 0;
                freeReplyObject(r);
                v = NULL;
                if (ours)
                    return NAP_MESSAGE;
            }
        }
        int64_t left = end - dlock__now_ms();
        if (left <= 0)
            return NAP_TIMEOUT;
        struct pollfd p[2] = {{c->cancel_fd, POLLIN, 0}, {c->sub ? c->sub->fd : -1, POLLIN, 0}};
        int r = poll(p, c->sub ? 2 : 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return NAP_TIMEOUT;
        if (p[0].revents & POLLIN)
            return NAP_CANCELED;
        if (c->sub && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && redisBufferRead(c->sub) != REDIS_OK) {
            drop(&c->sub); /* retried at once; the next wait connects again */
            return NAP_MESSAGE;
        }
    }
}

static void redis_cancel_clear(struct dlock_conn *conn)
{
    redis_conn *c = redis_of(conn);
    uint64_t value;
    while (read(c->cancel_fd, &value, sizeof value) == (ssize_t)sizeof value) {
    }
}

static void redis_cancel(struct dlock_conn *conn)
{
    redis_conn *c = redis_of(conn);
    uint64_t one = 1;
    if (write(c->cancel_fd, &one, sizeof one) < 0) {
    }
}

static int new_token(redis_lock *lock)
{
    unsigned char raw[TOKEN_HEX / 2];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return dlock__error(DLOCK_EBACKEND, "getrandom failed: %s", strerror(errno));
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(lock->token + 2 * i, 3, "%02x", raw[i]);
    return DLOCK_OK;
}

static int redis_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                         struct dlock_call *call, struct dlock_held **lock_out)
{
    redis_conn *c = redis_of(conn);
    redis_lock *lock = calloc(1, sizeof *lock);
    if (!lock)
        return dlock__oom();
    int rc = new_token(lock);
    if (rc != DLOCK_OK) {
        free(lock);
        return rc;
    }
    char channel[KEY_MAX];
    size_t chlen = make_key(c, name, ":released", channel);
    int64_t start = dlock__now_ms();
    int subscribed = 0;
    for (;;) {
        int64_t pttl = -1;
        rc = try_take(c, name, ttl_ms, lock, call, &pttl);
        if (rc != DLOCK_EBUSY || wait_ms == 0)
            break;
        int64_t left = wait_ms == DLOCK_WAIT_FOREVER ? INT64_MAX : start + wait_ms - dlock__now_ms();
        if (left <= 0)
            break;
        if (!subscribed && !c->sub_failed) {
            int src = subscribe(c, channel, chlen, call);
            subscribed = src == DLOCK_OK;
            if (subscribed)
                continue; /* a release before the subscription counted: look again */
        }
        int64_t ms = pttl > 0 && pttl < WAIT_POLL_MAX_MS ? pttl : WAIT_POLL_MAX_MS;
        if (left < ms)
            ms = left;
        if (nap(c, channel, chlen, ms) == NAP_CANCELED) {
            rc = dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
            break;
        }
        if (subscribed && !c->sub)
            subscribed = 0; /* the waiters' connection broke: subscribe again */
    }
    if (subscribed)
        unsubscribe(c);
    if (rc == DLOCK_EBUSY && wait_ms == 0)
        dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else", name);
    else if (rc == DLOCK_EBUSY)
        dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else (waited %ld ms)", name, (long)wait_ms);
    if (rc == DLOCK_OK)
        *lock_out = &lock->base;
    else
        free(lock);
    return rc;
}

/* A script on the lock's key with the owner token: its integer answer. */
static int owned_script(redis_conn *c, int script, const char *name, const char *token, const char *extra,
                        size_t extra_len, const char *suffix2, struct dlock_call *call, long long *out,
                        int64_t *sent_ms)
{
    char key[KEY_MAX], key2[KEY_MAX];
    size_t klen = make_key(c, name, "", key);
    const char *a[4];
    size_t alen[4];
    int nkeys = 0, n = 0;
    a[n] = key;
    alen[n++] = klen;
    nkeys++;
    if (suffix2) {
        alen[n] = make_key(c, name, suffix2, key2);
        a[n++] = key2;
        nkeys++;
    }
    a[n] = token;
    alen[n++] = TOKEN_HEX;
    if (extra) {
        a[n] = extra;
        alen[n++] = extra_len;
    }
    redisReply *r = NULL;
    int rc = run_script(c, call, script, nkeys, a, alen, n, &r, sent_ms);
    if (rc != DLOCK_OK)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return dlock__error(DLOCK_EBACKEND, "unexpected answer to a script");
    }
    *out = r->integer;
    freeReplyObject(r);
    return DLOCK_OK;
}

static int redis_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                        struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    long long ours = 0;
    int rc = owned_script(c, SCRIPT_EXTEND, name, redis_lock_of(held)->token, ttl, strlen(ttl), NULL, call, &ours,
                          &call->lease_start_ms);
    if (rc != DLOCK_OK)
        return rc;
    if (ours != 1)
        return dlock__error(
            DLOCK_ELOST, "lock '%s' is no longer ours: its key expired, was deleted or another holder took it", name);
    return DLOCK_OK;
}

static int redis_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char channel[KEY_MAX];
    size_t chlen = make_key(c, name, ":released", channel);
    long long ours = 0;
    int rc = owned_script(c, SCRIPT_RELEASE, name, redis_lock_of(held)->token, channel, chlen, NULL, call, &ours, NULL);
    free(held);
    if (rc != DLOCK_OK)
        return rc;
    if (ours != 1)
        return dlock__error(DLOCK_ELOST,
                            "lock '%s' had already been lost: its key expired, was deleted or another holder took it",
                            name);
    return DLOCK_OK;
}

/* --- reading a lock ------------------------------------------------------------------- */

struct lock_info {
    int64_t since_ms, pid, pttl_ms;
    uint64_t fence;
    const char *host; /* points into the reply */
};

/* "<token> <since_ms> <pid> <host>": 1 parsed, 0 not one of ours. */
static int parse_value(const redisReply *v, struct lock_info *info)
{
    if (v->type != REDIS_REPLY_STRING || v->len < TOKEN_HEX + 6 || v->str[TOKEN_HEX] != ' ')
        return 0;
    long long since = 0, pid = 0;
    int used = 0;
    if (sscanf(v->str + TOKEN_HEX + 1, "%lld %lld %n", &since, &pid, &used) != 2 || used == 0)
        return 0;
    info->since_ms = since;
    info->pid = pid;
    info->host = v->str + TOKEN_HEX + 1 + used;
    return 1;
}

/* GET, PTTL, GET fence of one lock key, in one round trip: 1 held (info
 * filled, *replies to free), 0 free, <0 error. */
static int read_lock(redis_conn *c, const char *key, size_t klen, struct dlock_call *call, redisReply **r,
                     struct lock_info *info)
{
    char fence[KEY_MAX + 8];
    if (klen + 7 > sizeof fence)
        return 0;
    memcpy(fence, key, klen);
    memcpy(fence + klen, ":fence", 7);
    struct cmd cmds[3] = {{0}, {0}, {0}};
    args(&cmds[0], "GET");
    arg(&cmds[0], key, klen);
    args(&cmds[1], "PTTL");
    arg(&cmds[1], key, klen);
    args(&cmds[2], "GET");
    arg(&cmds[2], fence, klen + 6);
    int rc = round_trip(c, call, 3, cmds, r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    int held = parse_value(r[0], info) && r[1]->type == REDIS_REPLY_INTEGER && r[1]->integer != -2;
    if (held) {
        info->pttl_ms = r[1]->integer; /* -1: no expiry (set by another tool) */
        info->fence = r[2]->type == REDIS_REPLY_STRING ? strtoull(r[2]->str, NULL, 10) : 0;
    } else {
        for (int i = 0; i < 3; i++)
            freeReplyObject(r[i]);
    }
    return held;
}

static int redis_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char key[KEY_MAX];
    size_t klen = make_key(c, name, "", key);
    redisReply *r[3];
    struct lock_info info;
    int held = read_lock(c, key, klen, call, r, &info);
    if (held <= 0)
        return held;
    char since[32] = "?";
    time_t t = (time_t)(info.since_ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char text[512];
    snprintf(text, sizeof text, "host=%s pid=%lld since=%s expires_in=%lldms fence=%" PRIu64, info.host,
             (long long)info.pid, since, (long long)info.pttl_ms, info.fence);
    dlock__copy_text(buf, buflen, text);
    for (int i = 0; i < 3; i++)
        freeReplyObject(r[i]);
    return 1;
}

static int redis_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    struct cmd cmd = {0};
    args(&cmd, "TIME");
    redisReply *r;
    int rc = round_trip(c, call, 1, &cmd, &r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return dlock__error(DLOCK_EBACKEND, "unexpected answer to TIME");
    }
    *unix_ms = strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return DLOCK_OK;
}

/* The glob pattern that matches `text` literally. */
static size_t glob_escape(const char *text, char *out, size_t room)
{
    size_t n = 0;
    for (; *text && n + 2 < room; text++) {
        if (strchr("*?[]\\", *text))
            out[n++] = '\\';
        out[n++] = *text;
    }
    out[n] = '\0';
    return n;
}

static int list_key(redis_conn *c, const char *key, size_t klen, struct dlock_list *list, int64_t now_ms,
                    struct dlock_call *call)
{
    size_t plen = strlen(c->url.prefix);
    /* Lock keys are "<prefix>{<name>}"; the fence, record and channel names
     * never end in '}'. */
    if (klen < plen + 3 || key[plen] != '{' || key[klen - 1] != '}')
        return DLOCK_OK;
    redisReply *r[3];
    struct lock_info info;
    int held = read_lock(c, key, klen, call, r, &info);
    if (held <= 0)
        return held;
    char name[KEY_MAX], holder[512], keytext[KEY_MAX];
    snprintf(name, sizeof name, "%.*s", (int)(klen - plen - 2), key + plen + 1);
    snprintf(keytext, sizeof keytext, "%.*s", (int)klen, key);
    snprintf(holder, sizeof holder, "host=%s pid=%lld", info.host, (long long)info.pid);
    struct dlock_list_entry e = {
        .name = dlock__valid_utf8(name, strlen(name)) ? name : NULL,
        .key = keytext,
        .holder = holder,
        .host = info.host,
        .pid = info.pid,
        .since_ms = info.since_ms,
        .expires_ms = info.pttl_ms >= 0 ? now_ms + info.pttl_ms : -1,
        .fence = info.fence,
    };
    int rc = dlock__list_add(list, &e);
    for (int i = 0; i < 3; i++)
        freeReplyObject(r[i]);
    return rc;
}

static int redis_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    int64_t now_ms;
    int rc = redis_store_time(conn, &now_ms, call);
    if (rc != DLOCK_OK)
        return rc;
    char pattern[2 * KEY_MAX];
    size_t n = glob_escape(c->url.prefix, pattern, sizeof pattern);
    n += glob_escape("{", pattern + n, sizeof pattern - n);
    n += glob_escape(prefix, pattern + n, sizeof pattern - n);
    snprintf(pattern + n, sizeof pattern - n, "*}");
    char cursor[32] = "0";
    do {
        struct cmd cmd = {0};
        args(&cmd, "SCAN");
        args(&cmd, cursor);
        args(&cmd, "MATCH");
        args(&cmd, pattern);
        args(&cmd, "COUNT");
        args(&cmd, "1000");
        redisReply *r;
        if ((rc = round_trip(c, call, 1, &cmd, &r, NULL)) != DLOCK_OK)
            return rc;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return dlock__error(DLOCK_EBACKEND, "unexpected answer to SCAN");
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; rc == DLOCK_OK && i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            if (k->type == REDIS_REPLY_STRING)
                rc = list_key(c, k->str, k->len, list, now_ms, call);
        }
        freeReplyObject(r);
        if (rc != DLOCK_OK)
            return rc;
    } while (strcmp(cursor, "0") != 0);
    return DLOCK_OK;
}

static int redis_break(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char key[KEY_MAX], channel[KEY_MAX];
    size_t klen = make_key(c, name, "", key), chlen = make_key(c, name, ":released", channel);
    const char *a[] = {key, channel};
    size_t alen[] = {klen, chlen};
    redisReply *r = NULL;
    int rc = run_script(c, call, SCRIPT_BREAK, 1, a, alen, 2, &r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    int broken = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return broken;
}

static int redis_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                            struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char key[KEY_MAX], slot_key[KEY_MAX];
    size_t klen = make_key(c, name, "", key), slen = make_key(c, name, ":slot", slot_key);
    const char *a[] = {key, slot_key, redis_lock_of(held)->token};
    size_t alen[] = {klen, slen, TOKEN_HEX};
    redisReply *r = NULL;
    int rc = run_script(c, call, SCRIPT_RECORD_GET, 2, a, alen, 3, &r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->element[0]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return dlock__error(DLOCK_EBACKEND, "unexpected answer to the record script");
    }
    if (r->element[0]->integer != 1) {
        freeReplyObject(r);
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its run record cannot be read", name);
    }
    *slot = r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING ? strtoll(r->element[1]->str, NULL, 10) : 0;
    freeReplyObject(r);
    return DLOCK_OK;
}

static int redis_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                            struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char value[24];
    snprintf(value, sizeof value, "%" PRId64, slot);
    long long ours = 0;
    int rc = owned_script(c, SCRIPT_RECORD_PUT, name, redis_lock_of(held)->token, value, strlen(value), ":slot", call,
                          &ours, NULL);
    if (rc != DLOCK_OK)
        return rc;
    if (ours != 1)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its run record was not written", name);
    return DLOCK_OK;
}

static const char *const redis_schemes[] = {"redis", "redis+unix", "rediss", NULL};

const struct dlock_backend dlock__backend_redis = {
    .name = "redis",
    .schemes = redis_schemes,
    .connect = redis_connect,
    .disconnect = redis_disconnect,
    .acquire = redis_acquire,
    .extend = redis_extend,
    .release = redis_release,
    .holder = redis_holder,
    .cancel = redis_cancel,
    .cancel_clear = redis_cancel_clear,
    .list = redis_list,
    .break_lock = redis_break,
    .store_time = redis_store_time,
    .record_get = redis_record_get,
    .record_put = redis_record_put,
};
