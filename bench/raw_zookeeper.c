/*
 * The raw ZooKeeper baseline: the same work as libdlock's lock, straight on
 * the single-threaded C client, on one session, with the simplest loop that
 * drives it (zookeeper_interest / poll / zookeeper_process).
 *   cycles:  create an ephemeral sequential node, list the folder, delete it
 *   handoff: the waiter's node watches the holder's; the delete wakes it
 * The URL is parsed by the backend's pure parser (backends/zookeeper/url.h).
 */
#include "config.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#include "dlock.h"
#include "raw.h"
#include "zookeeper/url.h"

#define RAW_DIR "/dlock-raw"
#define RAW_CYCLES RAW_DIR "/cycles"
#define RAW_HANDOFF RAW_DIR "/handoff"

struct raw_zk {
    zhandle_t *zh;
    int done, rc, woken;
    char path[512];
    struct String_vector kids;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Drive the client until *flag is set (10 s at most). */
static int drive(struct raw_zk *s, const int *flag)
{
    double end = now_s() + 10;
    while (!*flag && now_s() < end) {
        int fd = -1, interest = 0;
        struct timeval tv;
        if (zookeeper_interest(s->zh, &fd, &interest, &tv) == ZINVALIDSTATE)
            return -1;
        struct pollfd p = {fd, (short)((interest & ZOOKEEPER_READ ? POLLIN : 0) |
                                       (interest & ZOOKEEPER_WRITE ? POLLOUT : 0)), 0};
        int ms = (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
        poll(&p, fd >= 0 ? 1 : 0, ms > 100 || ms < 1 ? 100 : ms);
        int events = (p.revents & (POLLIN | POLLERR | POLLHUP) ? ZOOKEEPER_READ : 0) |
                     (p.revents & (POLLOUT | POLLERR | POLLHUP) ? ZOOKEEPER_WRITE : 0);
        if (fd >= 0)
            zookeeper_process(s->zh, events);
    }
    return *flag ? 0 : -1;
}

static void void_done(int rc, const void *data)
{
    struct raw_zk *s = (struct raw_zk *)data;
    s->rc = rc;
    s->done = 1;
}

static void string_done(int rc, const char *value, const void *data)
{
    struct raw_zk *s = (struct raw_zk *)data;
    if (rc == ZOK && value)
        snprintf(s->path, sizeof s->path, "%s", value);
    void_done(rc, data);
}

static void stat_done(int rc, const struct Stat *stat, const void *data)
{
    (void)stat;
    void_done(rc, data);
}

static void strings_done(int rc, const struct String_vector *v, const void *data)
{
    struct raw_zk *s = (struct raw_zk *)data;
    s->kids.count = rc == ZOK && v ? v->count : 0; /* the count is all a cycle reads */
    void_done(rc, data);
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    (void)path;
    if (type != ZOO_SESSION_EVENT && ctx)
        ((struct raw_zk *)ctx)->woken = 1;
}

static int call_done(struct raw_zk *s, int sent)
{
    if (sent != ZOK)
        return -1;
    return drive(s, &s->done) == 0 ? s->rc : -1;
}

static int ensure(struct raw_zk *s, const char *path, int mode)
{
    s->done = 0;
    int rc = call_done(s, zoo_acreate(s->zh, path, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, mode, string_done, s));
    return rc == ZOK || rc == ZNODEEXISTS ? 0 : -1;
}

static int connected(struct raw_zk *s)
{
    double end = now_s() + 10;
    int flag = 0;
    while (zoo_state(s->zh) != ZOO_CONNECTED_STATE && now_s() < end) {
        int fd = -1, interest = 0;
        struct timeval tv;
        zookeeper_interest(s->zh, &fd, &interest, &tv);
        struct pollfd p = {fd, POLLIN | POLLOUT, 0};
        poll(&p, fd >= 0 ? 1 : 0, 20);
        if (fd >= 0)
            zookeeper_process(s->zh, ZOOKEEPER_READ | ZOOKEEPER_WRITE);
    }
    (void)flag;
    return zoo_state(s->zh) == ZOO_CONNECTED_STATE ? 0 : -1;
}

static struct raw_zk *raw_open(const char *url)
{
    struct dlock_zk_url u;
    if (dlock__zk_parse_url(url, &u) != DLOCK_OK)
        return NULL;
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    struct raw_zk *s = calloc(1, sizeof *s);
    if (s)
        s->zh = zookeeper_init(u.hosts, watcher, 60000, NULL, s, 0);
    dlock__zk_url_free(&u);
    if (!s || !s->zh || connected(s) != 0 || ensure(s, RAW_DIR, ZOO_PERSISTENT) != 0 ||
        ensure(s, RAW_CYCLES, ZOO_PERSISTENT) != 0 || ensure(s, RAW_HANDOFF, ZOO_PERSISTENT) != 0) {
        if (s && s->zh)
            zookeeper_close(s->zh);
        free(s);
        return NULL;
    }
    return s;
}

static void raw_close(struct raw_zk *s)
{
    if (!s)
        return;
    zookeeper_close(s->zh);
    free(s);
}

static int create_node(struct raw_zk *s, const char *dir)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/n-", dir);
    s->done = 0;
    return call_done(s, zoo_acreate(s->zh, prefix, "raw", 3, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL,
                                    string_done, s));
}

int bench_raw_zookeeper(const char *url, long cycles, double *elapsed_s)
{
    struct raw_zk *s = raw_open(url);
    if (!s)
        return -1;
    double start = now_s();
    int rc = 0;
    for (long i = 0; i < cycles && rc == 0; i++) {
        rc = create_node(s, RAW_CYCLES) == ZOK ? 0 : -1;
        s->done = 0;
        if (rc == 0 && call_done(s, zoo_aget_children(s->zh, RAW_CYCLES, 0, strings_done, s)) != ZOK)
            rc = -1;
        s->done = 0;
        if (rc == 0 && call_done(s, zoo_adelete(s->zh, s->path, -1, void_done, s)) != ZOK)
            rc = -1;
    }
    *elapsed_s = now_s() - start;
    raw_close(s);
    return rc;
}

void *bench_raw_zookeeper_open(const char *url)
{
    return raw_open(url);
}

/* The holder: its node.  The waiter: its node, then a watch on the
 * predecessor (the holder's), woken by its deletion. */
int bench_raw_zookeeper_lock(void *session, int wait)
{
    struct raw_zk *s = session;
    if (create_node(s, RAW_HANDOFF) != ZOK)
        return -1;
    if (!wait)
        return 1;
    long long mine = atoll(s->path + strlen(s->path) - 10);
    char pred[512];
    snprintf(pred, sizeof pred, "%s/n-%010lld", RAW_HANDOFF, mine - 1);
    s->woken = 0;
    s->done = 0;
    int rc = call_done(s, zoo_awexists(s->zh, pred, watcher, s, stat_done, s));
    if (rc == ZOK && drive(s, &s->woken) != 0)
        return -1;
    return rc == ZOK || rc == ZNONODE ? 1 : -1;
}

int bench_raw_zookeeper_unlock(void *session)
{
    struct raw_zk *s = session;
    s->done = 0;
    return call_done(s, zoo_adelete(s->zh, s->path, -1, void_done, s)) == ZOK ? 1 : 0;
}

void bench_raw_zookeeper_close(void *session)
{
    raw_close(session);
}
