/*
 * Raw Redis baselines for the benchmark, on hiredis directly (linked, not
 * loaded): what a hand-written lock costs.  Cycles: the safe pattern, SET
 * key token NX PX + a compare-and-delete script (EVALSHA: DEL only while
 * the key still holds our token), one round trip each; a plain DEL checks
 * no owner, so it is not a lock to compare with.  Handoff: the holder DELs and PUBLISHes in one
 * round trip; the waiter, subscribed on a second connection, retries its
 * SET NX when the message comes.
 */
#include "config.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raw.h"
#include "redis/url.h"

#define RAW_KEY "bench-raw-redis"
#define RAW_HANDOFF_KEY "bench-raw-redis-handoff"
#define RAW_CHANNEL "bench-raw-redis-handoff:released"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int ok_reply(redisReply *r, int type)
{
    int ok = r && r->type == type;
    freeReplyObject(r);
    return ok;
}

static redisContext *raw_connect(const char *url)
{
    struct dlock_redis_url u;
    if (dlock__redis_parse_url(url, &u) != 0)
        return NULL;
    struct timeval tv = {10, 0};
    redisContext *c =
        u.socket ? redisConnectUnixWithTimeout(u.socket, tv) : redisConnectWithTimeout(u.host, u.port, tv);
    int ok = c && !c->err;
    if (ok && u.password)
        ok = ok_reply(u.user ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                             : redisCommand(c, "AUTH %s", u.password),
                      REDIS_REPLY_STATUS);
    if (ok)
        ok = ok_reply(redisCommand(c, "SELECT %d", u.db), REDIS_REPLY_STATUS);
    dlock__redis_url_free(&u);
    if (!ok && c) {
        redisFree(c);
        c = NULL;
    }
    return c;
}

/* The compare-and-delete that every safe Redis lock uses for its release. */
#define RAW_UNLOCK_SCRIPT                             \
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n" \
    "  return redis.call('DEL', KEYS[1])\n"           \
    "end\n"                                           \
    "return 0\n"

int bench_raw_redis(const char *url, long cycles, double *elapsed_s)
{
    redisContext *c = raw_connect(url);
    if (!c)
        return -1;
    const char *token = "0123456789abcdef0123456789abcdef";
    redisReply *loaded = redisCommand(c, "SCRIPT LOAD %s", RAW_UNLOCK_SCRIPT);
    int ok = loaded && loaded->type == REDIS_REPLY_STRING && loaded->len == 40;
    char sha[41] = "";
    if (ok)
        memcpy(sha, loaded->str, 41);
    freeReplyObject(loaded);
    double start = now_s();
    for (long i = 0; i < cycles && ok; i++) {
        ok = ok_reply(redisCommand(c, "SET %s %s NX PX 60000", RAW_KEY, token), REDIS_REPLY_STATUS);
        redisReply *r = ok ? redisCommand(c, "EVALSHA %s 1 %s %s", sha, RAW_KEY, token) : NULL;
        ok = ok && r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        freeReplyObject(r);
    }
    *elapsed_s = now_s() - start;
    redisFree(c);
    return ok ? 0 : -1;
}

struct raw_redis {
    redisContext *cmd, *sub;
    char *url;
};

void *bench_raw_redis_open(const char *url)
{
    struct raw_redis *s = calloc(1, sizeof *s);
    if (s && !(s->cmd = raw_connect(url))) {
        free(s);
        return NULL;
    }
    if (s)
        s->url = strdup(url);
    return s;
}

static int try_set(struct raw_redis *s)
{
    redisReply *r = redisCommand(s->cmd, "SET %s %s NX PX 60000", RAW_HANDOFF_KEY, "token");
    int got = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return got;
}

int bench_raw_redis_lock(void *session, int wait)
{
    struct raw_redis *s = session;
    if (!wait)
        return try_set(s);
    /* A second connection, subscribed before the retry; then each message
     * is one more try. */
    if (!s->sub && !(s->sub = raw_connect(s->url)))
        return -1;
    redisReply *r = redisCommand(s->sub, "SUBSCRIBE %s", RAW_CHANNEL);
    int ok = r && r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    while (ok) {
        if (try_set(s))
            return 1;
        void *m = NULL;
        ok = redisGetReply(s->sub, &m) == REDIS_OK && m;
        freeReplyObject(m);
    }
    return -1;
}

int bench_raw_redis_unlock(void *session)
{
    struct raw_redis *s = session;
    redisAppendCommand(s->cmd, "DEL %s", RAW_HANDOFF_KEY);
    redisAppendCommand(s->cmd, "PUBLISH %s %s", RAW_CHANNEL, "released");
    void *a = NULL, *b = NULL;
    int ok = redisGetReply(s->cmd, &a) == REDIS_OK && redisGetReply(s->cmd, &b) == REDIS_OK;
    ok = ok && ((redisReply *)a)->type == REDIS_REPLY_INTEGER && ((redisReply *)a)->integer == 1;
    freeReplyObject(a);
    freeReplyObject(b);
    return ok;
}

void bench_raw_redis_close(void *session)
{
    struct raw_redis *s = session;
    if (!s)
        return;
    if (s->cmd)
        redisFree(s->cmd);
    if (s->sub)
        redisFree(s->sub);
    free(s->url);
    free(s);
}
