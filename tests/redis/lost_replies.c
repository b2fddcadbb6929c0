/*
 * Redis suite, tcase "lost-replies": replies lost on the way back, through a relay that cuts them.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- a TCP relay in front of the real server: lost replies, slow replies ------------------- */

/* Forwards every connection to the test server.  Armed with RELAY_DROP, it
 * swallows the next reply (the server ran the command) and closes that
 * connection; with RELAY_TRICKLE, it passes replies on one byte every
 * trickle_ms.  Not a store: the real server answers everything. */
enum { RELAY_PASS, RELAY_DROP, RELAY_TRICKLE };
#define RELAY_PAIRS 8
struct relay {
    int listen_fd, port;
    struct sockaddr_in server;
    atomic_int mode, stop, dropped;
    int trickle_ms;
    int client[RELAY_PAIRS], upstream[RELAY_PAIRS];
    pthread_t thread;
};

static void relay_close(struct relay *r, int i)
{
    close(r->client[i]);
    close(r->upstream[i]);
    r->client[i] = r->upstream[i] = -1;
}

static void relay_accept(struct relay *r)
{
    int c = accept(r->listen_fd, NULL, NULL);
    if (c < 0)
        return;
    int u = socket(AF_INET, SOCK_STREAM, 0);
    if (u < 0 || connect(u, (struct sockaddr *)&r->server, sizeof r->server) != 0) {
        close(c);
        if (u >= 0)
            close(u);
        return;
    }
    for (int i = 0; i < RELAY_PAIRS; i++)
        if (r->client[i] < 0) {
            r->client[i] = c;
            r->upstream[i] = u;
            return;
        }
    close(c);
    close(u);
}

/* Data from the server for pair i, as the mode says. */
static void relay_reply(struct relay *r, int i)
{
    char buf[16384];
    ssize_t n = read(r->upstream[i], buf, sizeof buf);
    if (n <= 0) {
        relay_close(r, i);
        return;
    }
    int mode = atomic_load(&r->mode);
    if (mode == RELAY_DROP) {
        atomic_store(&r->mode, RELAY_PASS);
        atomic_fetch_add(&r->dropped, 1);
        relay_close(r, i);
        return;
    }
    for (ssize_t at = 0; at < n;) {
        ssize_t chunk = mode == RELAY_TRICKLE ? 1 : n - at;
        if (mode == RELAY_TRICKLE)
            dlt_sleep_ms(r->trickle_ms);
        ssize_t w = send(r->client[i], buf + at, (size_t)chunk, MSG_NOSIGNAL);
        if (w <= 0) {
            relay_close(r, i);
            return;
        }
        at += w;
    }
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd p[1 + 2 * RELAY_PAIRS];
        int n = 0;
        p[n++] = (struct pollfd){r->listen_fd, POLLIN, 0};
        for (int i = 0; i < RELAY_PAIRS; i++) {
            p[n++] = (struct pollfd){r->client[i], POLLIN, 0};
            p[n++] = (struct pollfd){r->upstream[i], POLLIN, 0};
        }
        if (poll(p, (nfds_t)n, 50) <= 0)
            continue;
        if (p[0].revents & POLLIN)
            relay_accept(r);
        for (int i = 0; i < RELAY_PAIRS; i++) {
            if (r->client[i] >= 0 && (p[1 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR))) {
                char buf[16384];
                ssize_t got = read(r->client[i], buf, sizeof buf);
                if (got <= 0 || send(r->upstream[i], buf, (size_t)got, MSG_NOSIGNAL) != got) {
                    relay_close(r, i);
                    continue;
                }
            }
            if (r->upstream[i] >= 0 && (p[2 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)))
                relay_reply(r, i);
        }
    }
    for (int i = 0; i < RELAY_PAIRS; i++)
        if (r->client[i] >= 0)
            relay_close(r, i);
    close(r->listen_fd);
    return NULL;
}

/* A relay to the test server, and the URL of the server through it. */
static struct relay *relay_start(char *relay_url, size_t len)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    struct relay *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < RELAY_PAIRS; i++)
        r->client[i] = r->upstream[i] = -1;
    r->server.sin_family = AF_INET;
    r->server.sin_port = htons((uint16_t)u.port);
    ck_assert_int_eq(inet_pton(AF_INET, u.host, &r->server.sin_addr), 1);
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(r->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(r->listen_fd, 8), 0);
    socklen_t alen = sizeof a;
    ck_assert_int_eq(getsockname(r->listen_fd, (struct sockaddr *)&a, &alen), 0);
    r->port = ntohs(a.sin_port);
    snprintf(relay_url, len, "redis://:%s@127.0.0.1:%d/%d", u.password ? u.password : "", r->port, u.db);
    dlock__redis_url_free(&u);
    ck_assert_int_eq(pthread_create(&r->thread, NULL, relay_main, r), 0);
    return r;
}

static void relay_stop(struct relay *r)
{
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    free(r);
}

/* A release that went through, whose answer was lost: the retry on a new
 * connection finds the lock free, and no one took it since our token: the
 * release is a success, not "it had already been lost" (which dlock run
 * reports as a possible overlap). */
START_TEST(release_after_a_lost_reply_is_not_lost)
{
    char relay_url[512];
    struct relay *r = relay_start(relay_url, sizeof relay_url);
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(relay_url, &c), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    atomic_store(&r->mode, RELAY_DROP);
    int rc = dlock_release(l);
    ck_assert_int_eq(atomic_load(&r->dropped), 1);
    ck_assert_msg(rc == DLOCK_OK, "release after a lost reply: %d (%s)", rc, dlock_last_error());
    char buf[64];
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 0);
    /* The same retry when the lock really was lost, and taken by another
     * holder since: still "lost". */
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 1);
    dlock_lock *other = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &other), DLOCK_OK);
    ck_assert_int_eq(dlock_release(other), DLOCK_OK);
    atomic_store(&r->mode, RELAY_DROP);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(atomic_load(&r->dropped), 2);
    /* And when another tool's key stands in the lock's place (no fence
     * bumped): not ours, still "lost". */
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 1);
    char *key = key_of(name, "");
    redisContext *ops = raw();
    redisReply *set = redisCommand(ops, "SET %s %s PX 10000", key, "maintenance by ops");
    freeReplyObject(set);
    redisFree(ops);
    atomic_store(&r->mode, RELAY_DROP);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(atomic_load(&r->dropped), 3);
    free(raw_cmd("DEL %s", key));
    free(key);
    dlock_close(c);
    relay_stop(r);
}
END_TEST

/* A break that went through, whose answer was lost: the retry must not say
 * "it was free". */
START_TEST(break_after_a_lost_reply_is_broken)
{
    char relay_url[512];
    struct relay *r = relay_start(relay_url, sizeof relay_url);
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(relay_url, &c), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    atomic_store(&r->mode, RELAY_DROP);
    int rc = dlock_break(c, name);
    ck_assert_int_eq(atomic_load(&r->dropped), 1);
    ck_assert_msg(rc == 1, "break after a lost reply: %d (%s)", rc, dlock_last_error());
    ck_assert_int_eq(dlock_break(c, name), 0); /* and a new break finds it free */
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    dlock_close(c);
    relay_stop(r);
}
END_TEST

/* The deadline bounds the whole reply, not each read(): a reply that comes
 * one byte at a time, each within the socket timeout, still ends the call
 * at its deadline. */
START_TEST(deadline_bounds_the_whole_reply)
{
    char relay_url[512];
    struct relay *r = relay_start(relay_url, sizeof relay_url);
    r->trickle_ms = 250;
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(relay_url, &c), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 600, 0, &l), DLOCK_OK);
    atomic_store(&r->mode, RELAY_TRICKLE);
    int64_t t0 = dlt_now_ms();
    int rc = dlock_extend(l, 600); /* bounded by the lease: < 600 ms */
    int64_t took = dlt_now_ms() - t0;
    atomic_store(&r->mode, RELAY_PASS);
    ck_assert_msg(took <= 600 + 100, "extend took %lld ms with a 600 ms lease (%d)", (long long)took, rc);
    ck_assert_int_ne(rc, DLOCK_OK);
    dlock_release(l);
    dlock_close(c);
    relay_stop(r);
}
END_TEST

void dlt_redis_add_lost_replies(Suite *s)
{
    TCase *t = tcase_create("lost-replies");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, release_after_a_lost_reply_is_not_lost);
    tcase_add_test(t, break_after_a_lost_reply_is_broken);
    tcase_add_test(t, deadline_bounds_the_whole_reply);
    suite_add_tcase(s, t);
}
