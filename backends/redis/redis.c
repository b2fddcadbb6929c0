/*
 * Redis backend: a lock is a key set with NX and a millisecond expiry,
 * holding a random owner token and the holder; a second key counts the
 * fencing tokens.  Extend, release and the run records are scripts that act
 * only while the owner token matches (backends/redis/scripts.h).  Waiters
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

#include "backend.h"

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
    c->pid = getpid(); /* the holder's pid in every lock value: one system call less a take */
    c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->cancel_fd < 0) {
        rc = dlock__error(DLOCK_ENOMEM, "eventfd: %s", strerror(errno));
        redis_disconnect(&c->base);
        return rc;
    }
    /* Connect now: a wrong password or an unreachable server shows at once. */
    if ((rc = dlock__redis_open(c, DLOCK_CALL_TIMEOUT_MS, 1, &c->ctx)) != DLOCK_OK) {
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
    dlock__redis_drop(&c->ctx);
    dlock__redis_drop(&c->sub);
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
    size_t klen = dlock__redis_key(c, name, "", key), flen = dlock__redis_key(c, name, ":fence", fence);
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int vlen = snprintf(value, sizeof value, "%s %lld %ld %s", lock->token,
                        (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, (long)c->pid, dlock__hostname());
    if (vlen < 0 || (size_t)vlen >= sizeof value)
        vlen = (int)strlen(value);
    const char *a[] = {key, fence, value, ttl};
    size_t alen[] = {klen, flen, (size_t)vlen, strlen(ttl)};
    redisReply *r = NULL;
    int rc = dlock__redis_script(c, call, SCRIPT_ACQUIRE, 2, a, alen, 4, &r, &call->lease_start_ms);
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
    long long left_ms = -1 - value_in; /* the script answers -1 - PTTL when busy */
    *pttl = left_ms > 0 ? left_ms : -1;
    return DLOCK_EBUSY;
}

/* Subscribe the waiters' connection to `channel` and wait for the server to
 * confirm (so that no release after the next try can be missed). */
static int subscribe(redis_conn *c, const char *channel, size_t len, struct dlock_call *call)
{
    int64_t ms = dlock__redis_left_ms(call);
    if (ms <= 0)
        return DLOCK_ECONN;
    if (!c->sub) {
        int rc = dlock__redis_open(c, ms, 0, &c->sub);
        if (rc != DLOCK_OK)
            return rc;
        c->sub_dirty = 0;
        ms = dlock__redis_left_ms(call);
    }
    struct redis_cmd cmd = {0};
    dlock__redis_args(&cmd, "SUBSCRIBE");
    dlock__redis_arg(&cmd, channel, len);
    if (redisSetTimeout(c->sub, dlock__redis_tv(ms)) != REDIS_OK)
        return dlock__redis_io_error(c, &c->sub, "waiters' connection to");
    int rc = dlock__redis_send(c, &c->sub, 1, &cmd, "waiters' connection to");
    if (rc != DLOCK_OK)
        return rc;
    /* Skip what an earlier wait left (its unsubscribe, late messages). */
    int64_t end_ms = dlock__now_ms() + ms;
    for (;;) {
        void *v = NULL;
        rc = dlock__redis_read(c, &c->sub, end_ms, &v, "waiters' connection to");
        if (rc != DLOCK_OK)
            return rc;
        redisReply *r = v;
        int done = 0, refused = r->type == REDIS_REPLY_ERROR;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "subscribe") == 0 && r->element[1]->type == REDIS_REPLY_STRING &&
            r->element[1]->len == len && memcmp(r->element[1]->str, channel, len) == 0)
            done = 1;
        freeReplyObject(r);
        if (refused) {
            dlock__redis_drop(&c->sub);
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
    struct redis_cmd cmd = {0};
    dlock__redis_args(&cmd, "UNSUBSCRIBE");
    if (redisSetTimeout(c->sub, dlock__redis_tv(100)) != REDIS_OK)
        dlock__redis_drop(&c->sub);
    else if (dlock__redis_send(c, &c->sub, 1, &cmd, "waiters' connection to") != DLOCK_OK)
        dlock__clear_error(); /* dropped; the next wait connects again */
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
            dlock__redis_drop(&c->sub); /* retried at once; the next wait connects again */
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
    return dlock__random_hex(lock->token, TOKEN_HEX / 2);
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
    size_t chlen = dlock__redis_key(c, name, ":released", channel);
    int64_t start = dlock__now_ms();
    int subscribed = 0;
    /* A wait's round trips end on a cancel too, also when the server has
     * stopped answering.  A take abandoned that way may still run on the
     * server: its key then lasts its TTL, as a crashed client's would. */
    c->cancellable = wait_ms != 0;
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
            if (src == DLOCK_ECANCELED) {
                rc = src;
                break;
            }
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
    c->cancellable = 0;
    if (subscribed)
        unsubscribe(c);
    if (rc == DLOCK_EBUSY)
        dlock__busy(name, wait_ms);
    else if (rc == DLOCK_ECANCELED)
        dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
    if (rc == DLOCK_OK)
        *lock_out = &lock->base;
    else
        free(lock);
    return rc;
}

static int redis_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                        struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    long long ours = 0;
    int rc = dlock__redis_owned_script(c, SCRIPT_EXTEND, name, redis_lock_of(held)->token, ttl, strlen(ttl), NULL, call,
                                       &ours, &call->lease_start_ms);
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
    char key[KEY_MAX], fence_key[KEY_MAX], channel[KEY_MAX], fence[24];
    size_t klen = dlock__redis_key(c, name, "", key), flen = dlock__redis_key(c, name, ":fence", fence_key);
    size_t chlen = dlock__redis_key(c, name, ":released", channel);
    snprintf(fence, sizeof fence, "%" PRIu64, held->fence);
    const char *a[] = {key, fence_key, redis_lock_of(held)->token, channel, fence};
    size_t alen[] = {klen, flen, TOKEN_HEX, chlen, strlen(fence)};
    redisReply *r = NULL;
    c->resent = 0;
    int rc = dlock__redis_script(c, call, SCRIPT_RELEASE, 2, a, alen, 5, &r, NULL);
    free(held);
    if (rc != DLOCK_OK)
        return rc;
    long long ours = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    if (ours < 0)
        return dlock__error(DLOCK_EBACKEND, "unexpected answer to the release script");
    /* Sent twice (the first answer was lost) and found free with no holder
     * since ours: the first send released it. */
    if (ours == 1 || (ours == 2 && c->resent))
        return DLOCK_OK;
    return dlock__error(
        DLOCK_ELOST, "lock '%s' had already been lost: its key expired, was deleted or another holder took it", name);
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
    .holder = dlock__redis_holder,
    .cancel = redis_cancel,
    .cancel_clear = redis_cancel_clear,
    .list = dlock__redis_list,
    .break_lock = dlock__redis_break,
    .store_time = dlock__redis_store_time,
    .record_get = dlock__redis_record_get,
    .record_put = dlock__redis_record_put,
    .history_add = dlock__redis_history_add,
    .history_read = dlock__redis_history_read,
    .check = dlock__redis_check,
};
