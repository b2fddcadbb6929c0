/*
 * The Redis backend's round trips (see backend.h): hiredis in blocking
 * mode, with the socket's timeouts set to what is left of the call's
 * deadline; a connection that failed is dropped, and the next call connects
 * again.  Scripts go as EVALSHA, and as EVAL when the server lost them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "backend.h"

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

/* --- connections ------------------------------------------------------------------ */

struct timeval dlock__redis_tv(int64_t ms)
{
    if (ms < 1)
        ms = 1;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* The time left for one round trip of `call`. */
int64_t dlock__redis_left_ms(const struct dlock_call *call)
{
    int64_t now = dlock__now_ms();
    int64_t end = now + DLOCK_CALL_TIMEOUT_MS;
    if (call->deadline_ms < end)
        end = call->deadline_ms;
    return end - now;
}

void dlock__redis_drop(redisContext **ctx)
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

int dlock__redis_io_error(redis_conn *c, redisContext **ctx, const char *what)
{
    char at[300];
    if (!*ctx)
        return dlock__error(DLOCK_ECONN, "%s %s: not connected", what, where(c, at, sizeof at));
    int timed_out = (*ctx)->err == REDIS_ERR_IO &&
                    (errno == EAGAIN || errno == EWOULDBLOCK || strstr((*ctx)->errstr, "temporarily unavailable"));
    c->timed_out = timed_out;
    int rc = dlock__error(DLOCK_ECONN, "%s %s: %s", what, where(c, at, sizeof at),
                          timed_out ? "no answer before the call's deadline" : safe_text(c, (*ctx)->errstr));
    dlock__redis_drop(ctx);
    return rc;
}

int dlock__redis_send(redis_conn *c, redisContext **ctx, int n, const struct redis_cmd *cmds, const char *what)
{
    char *parts[REDIS_SEND_MAX];
    size_t total = 0;
    int lens[REDIS_SEND_MAX];
    if (n < 1 || n > REDIS_SEND_MAX)
        return dlock__error(DLOCK_EBACKEND, "internal error: %d commands in one round trip", n);
    for (int i = 0; i < n; i++) {
        lens[i] = redisFormatCommandArgv(&parts[i], cmds[i].argc, (const char **)cmds[i].argv, cmds[i].len);
        if (lens[i] < 0) {
            for (int j = 0; j < i; j++)
                redisFreeCommand(parts[j]);
            return dlock__oom();
        }
        total += (size_t)lens[i];
    }
    char *buf = n > 1 ? malloc(total) : parts[0];
    if (n > 1 && buf) {
        size_t at = 0;
        for (int i = 0; i < n; i++) {
            memcpy(buf + at, parts[i], (size_t)lens[i]);
            at += (size_t)lens[i];
        }
    }
    int err = 0;
    for (size_t sent = 0; buf && sent < total;) {
        ssize_t w = send((*ctx)->fd, buf + sent, total - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            err = errno;
            break;
        }
        sent += (size_t)w;
    }
    if (n > 1)
        free(buf);
    for (int i = 0; i < n; i++)
        redisFreeCommand(parts[i]);
    if (!buf)
        return dlock__oom();
    if (!err)
        return DLOCK_OK;
    char at[300];
    c->timed_out = err == EAGAIN || err == EWOULDBLOCK;
    int rc = dlock__error(DLOCK_ECONN, "%s %s: %s", what, where(c, at, sizeof at),
                          c->timed_out ? "no answer before the call's deadline" : strerror(err));
    dlock__redis_drop(ctx);
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
    if (redisSetTimeout(ctx, dlock__redis_tv(ms)) != REDIS_OK)
        return REDIS_ERR;
    *in_force = ms;
    return REDIS_OK;
}

/* Read one reply by `end_ms` (dlock__now_ms() time): the deadline bounds
 * the whole reply, not each read(), so a server that answers a byte at a
 * time cannot stretch a call past it.  The first read() of an exchange
 * (*blocking_read: the common case, one read a reply) blocks in the socket,
 * whose receive timeout set_timeout() keeps within the time left; every
 * later one waits in poll(2) for what is left.  In a wait (cancel_fd >= 0)
 * every read waits in poll(2), beside the cancel descriptor; a cancel gives
 * the answer CANCEL_GRACE_MS more (a cancel racing a grant: the answer is
 * on its way, and a take left unread would keep the key, unowned, for its
 * TTL), then abandons it (a server that stopped answering).  REDIS_OK with
 * *reply, READ_CANCELED, or REDIS_ERR (a timeout reported as hiredis
 * reports its own). */
#define READ_CANCELED 1
static int read_reply(redisContext *ctx, int64_t end_ms, int cancel_fd, int *blocking_read, void **reply)
{
    int64_t grace_end = 0; /* set when the cancel came */
    if (cancel_fd >= 0)
        *blocking_read = 0;
    for (;;) {
        *reply = NULL;
        if (redisGetReplyFromReader(ctx, reply) != REDIS_OK)
            return REDIS_ERR;
        if (*reply)
            return REDIS_OK;
        if (!*blocking_read) {
            int64_t now = dlock__now_ms(), left = (grace_end ? grace_end : end_ms) - now;
            int watch_cancel = cancel_fd >= 0 && !grace_end;
            struct pollfd p[2] = {{ctx->fd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
            int ready = left > 0 ? poll(p, watch_cancel ? 2 : 1, (int)left) : 0;
            if (ready < 0 && errno == EINTR)
                continue;
            if (ready > 0 && watch_cancel && (p[1].revents & POLLIN)) {
                grace_end = dlock__now_ms() + CANCEL_GRACE_MS;
                if (grace_end > end_ms)
                    grace_end = end_ms;
                continue;
            }
            if (ready == 0 && grace_end)
                return READ_CANCELED;
            if (ready == 0) {
                ctx->err = REDIS_ERR_IO;
                snprintf(ctx->errstr, sizeof ctx->errstr, "%s", strerror(EAGAIN));
                errno = EAGAIN;
                return REDIS_ERR;
            }
            if (ready < 0)
                return REDIS_ERR;
        }
        *blocking_read = 0;
        if (redisBufferRead(ctx) != REDIS_OK)
            return REDIS_ERR;
    }
}

/* The error of a failed read_reply(); the connection is dropped. */
static int read_error(redis_conn *c, redisContext **ctx, int got, const char *what)
{
    if (got != READ_CANCELED)
        return dlock__redis_io_error(c, ctx, what);
    dlock__redis_drop(ctx); /* the answer is abandoned with its connection */
    return dlock__error(DLOCK_ECANCELED, "canceled while waiting for an answer");
}

int dlock__redis_read(redis_conn *c, redisContext **ctx, int64_t end_ms, void **reply, const char *what)
{
    int blocking_read = 0;
    int got = read_reply(*ctx, end_ms, c->cancellable ? c->cancel_fd : -1, &blocking_read, reply);
    return got == REDIS_OK && *reply ? DLOCK_OK : read_error(c, ctx, got, what);
}

/* Send the commands and read one reply each, within `ms`.  On failure the
 * connection is dropped and the replies freed. */
static int exchange(redis_conn *c, redisContext **ctx, int64_t ms, int n, const struct redis_cmd *cmds,
                    redisReply **replies, const char *what)
{
    for (int i = 0; i < n; i++)
        replies[i] = NULL;
    int64_t end_ms = dlock__now_ms() + ms;
    int64_t unknown = 0, *in_force = ctx == &c->ctx ? &c->ctx_timeout_ms : &unknown;
    if (set_timeout(*ctx, ms, in_force) != REDIS_OK)
        return dlock__redis_io_error(c, ctx, what);
    int rc = dlock__redis_send(c, ctx, n, cmds, what);
    if (rc != DLOCK_OK)
        return rc;
    int blocking_read = 1;
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        int got = read_reply(*ctx, end_ms, c->cancellable ? c->cancel_fd : -1, &blocking_read, &r);
        if (got != REDIS_OK || !r) {
            rc = read_error(c, ctx, got, what);
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
int dlock__redis_open(redis_conn *c, int64_t ms, int select, redisContext **out)
{
    char at[300];
    int64_t start = dlock__now_ms();
    redisContext *ctx = c->url.socket ? redisConnectUnixWithTimeout(c->url.socket, dlock__redis_tv(ms))
                                      : redisConnectWithTimeout(c->url.host, c->url.port, dlock__redis_tv(ms));
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
    if (flags < 0 || fcntl(ctx->fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
        int err = errno;
        dlock__redis_drop(&ctx);
        return dlock__error(DLOCK_ECONN, "cannot make the connection close-on-exec: %s", strerror(err));
    }
    struct redis_cmd cmds[2] = {{0}, {0}};
    int n = 0;
    if (c->url.password) {
        dlock__redis_args(&cmds[n], "AUTH");
        if (c->url.user)
            dlock__redis_args(&cmds[n], c->url.user);
        dlock__redis_args(&cmds[n], c->url.password);
        n++;
    }
    char db[16];
    if (select && c->url.db) {
        snprintf(db, sizeof db, "%d", c->url.db);
        dlock__redis_args(&cmds[n], "SELECT");
        dlock__redis_args(&cmds[n], db);
        n++;
    }
    redisReply *r[2] = {NULL, NULL};
    int rc = DLOCK_OK;
    if (n)
        rc = exchange(c, &ctx, ms - (dlock__now_ms() - start), n, cmds, r, "cannot set up the connection to");
    /* A failed exchange has freed its replies (and left NULLs). */
    for (int i = 0; rc == DLOCK_OK && i < n; i++)
        if (!r[i] || r[i]->type == REDIS_REPLY_ERROR)
            rc = dlock__error(DLOCK_ECONN, "%s refused by %s: %s",
                              i == 0 && c->url.password ? "authentication" : "SELECT of the database",
                              where(c, at, sizeof at), r[i] ? safe_text(c, r[i]->str) : "no answer");
    for (int i = 0; i < n; i++)
        if (r[i])
            freeReplyObject(r[i]);
    if (rc != DLOCK_OK) {
        dlock__redis_drop(&ctx);
        return rc;
    }
    *out = ctx;
    if (out == &c->ctx)
        c->ctx_timeout_ms = 0;
    return DLOCK_OK;
}

/* A server that needs a password answers every command of a connection
 * that gave none with NOAUTH: that is a refused login (DLOCK_ECONN, as
 * on every other store), not an error of the command.  The replies are
 * freed then. */
static int refused_login(redis_conn *c, int n, redisReply **replies)
{
    int noauth = 0;
    for (int i = 0; i < n; i++)
        if (replies[i] && replies[i]->type == REDIS_REPLY_ERROR && strncmp(replies[i]->str, "NOAUTH", 6) == 0)
            noauth = 1;
    if (!noauth)
        return DLOCK_OK;
    for (int i = 0; i < n; i++) {
        if (replies[i])
            freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
    dlock__redis_drop(&c->ctx);
    char at[300];
    return dlock__error(DLOCK_ECONN,
                        "%s needs a password (it answered NOAUTH): give it in the URL, redis://:PASSWORD@HOST or "
                        "redis://USER:PASSWORD@HOST",
                        where(c, at, sizeof at));
}

/* One round trip on the main connection, bounded by the call's deadline.  A
 * connection that had been idle and turns out to be closed (a server
 * restart, CLIENT KILL, an idle timeout) is replaced once: every command the
 * backend sends may safely run twice. */
int dlock__redis_round_trip(redis_conn *c, struct dlock_call *call, int n, const struct redis_cmd *cmds,
                            redisReply **replies, int64_t *sent_ms)
{
    for (int attempt = 0;; attempt++) {
        int64_t ms = dlock__redis_left_ms(call);
        if (ms <= 0)
            return dlock__error(DLOCK_ECONN, "the call's deadline passed before the store answered");
        int fresh = !c->ctx;
        if (fresh) {
            int rc = dlock__redis_open(c, ms, 1, &c->ctx);
            if (rc != DLOCK_OK)
                return rc;
            ms = dlock__redis_left_ms(call);
            if (ms <= 0) {
                dlock__redis_drop(&c->ctx);
                return dlock__error(DLOCK_ECONN, "the call's deadline passed while connecting");
            }
        }
        /* The first send: a lost answer may mean it ran then (the acquire
         * script then answers the retry as taken, from that moment). */
        if (sent_ms && attempt == 0)
            *sent_ms = dlock__now_ms();
        int rc = exchange(c, &c->ctx, ms, n, cmds, replies, "lost the connection to");
        if (rc == DLOCK_OK)
            return refused_login(c, n, replies);
        if (fresh || attempt > 0 || dlock__redis_left_ms(call) <= 0)
            return rc;
        if (c->timed_out || rc == DLOCK_ECANCELED)
            return rc; /* the server is slow, not gone, or the wait was cancelled: no second wait */
        c->resent = 1; /* the first send may have run: the caller's script knows how to tell */
    }
}

/* Run a script: EVALSHA, and EVAL when the server has lost it (restart,
 * SCRIPT FLUSH), which also caches it again. */
int dlock__redis_script(redis_conn *c, struct dlock_call *call, int script, int nkeys, const char *const *a,
                        const size_t *alen, int nargs, redisReply **reply, int64_t *sent_ms)
{
    pthread_once(&script_sha_once, compute_shas);
    char numkeys[8];
    snprintf(numkeys, sizeof numkeys, "%d", nkeys);
    for (int pass = 0; pass < 2; pass++) {
        struct redis_cmd cmd = {0};
        dlock__redis_args(&cmd, pass == 0 ? "EVALSHA" : "EVAL");
        dlock__redis_args(&cmd, pass == 0 ? script_sha[script] : script_text[script]);
        dlock__redis_args(&cmd, numkeys);
        for (int i = 0; i < nargs; i++)
            dlock__redis_arg(&cmd, a[i], alen[i]);
        int rc = dlock__redis_round_trip(c, call, 1, &cmd, reply, pass == 0 ? sent_ms : NULL);
        if (rc != DLOCK_OK)
            return rc;
        if (!*reply)
            return dlock__error(DLOCK_EBACKEND, "no answer to a script");
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

/* A script on the lock's key with the owner token: its integer answer. */
int dlock__redis_owned_script(redis_conn *c, int script, const char *name, const char *token, const char *extra,
                              size_t extra_len, const char *suffix2, struct dlock_call *call, long long *out,
                              int64_t *sent_ms)
{
    char key[KEY_MAX], key2[KEY_MAX];
    size_t klen = dlock__redis_key(c, name, "", key);
    const char *a[4];
    size_t alen[4];
    int nkeys = 0, n = 0;
    a[n] = key;
    alen[n++] = klen;
    nkeys++;
    if (suffix2) {
        alen[n] = dlock__redis_key(c, name, suffix2, key2);
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
    int rc = dlock__redis_script(c, call, script, nkeys, a, alen, n, &r, sent_ms);
    if (rc != DLOCK_OK)
        return rc;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (r)
            freeReplyObject(r);
        return dlock__error(DLOCK_EBACKEND, "unexpected answer to a script");
    }
    *out = r->integer;
    freeReplyObject(r);
    return DLOCK_OK;
}
