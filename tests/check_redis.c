/*
 * The Redis backend against a real redis-server (tests/redis-server.sh):
 * the URL parser, the keys and the scripts as redis-cli would see them, and
 * real faults: a holder killed or stopped, its connection killed, the server
 * restarted without persistence or stopped, the script cache flushed.
 *
 * Needs DLOCK_TEST_REDIS_URL (skips without it, fails when
 * DLOCK_TEST_REQUIRE names redis or all); the restart and server-stop tests
 * also need DLOCK_TEST_REDIS_DIR (the folder given to redis-server.sh).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"
#include "redis/scripts.h"
#include "redis/url.h"

static const char *url;
static char *name;
static dlock_client *client;

static void setup(void)
{
    ck_assert_int_eq(dlock_open(url, &client), DLOCK_OK);
    name = dlt_unique_name("redis");
}

static void teardown(void)
{
    dlock_close(client);
    client = NULL;
    free(name);
}

/* A plain hiredis connection to the test server, as an operator's redis-cli. */
static redisContext *raw(void)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(u.host, u.port, tv);
    ck_assert(c && !c->err);
    redisReply *r = u.password ? redisCommand(c, "AUTH %s", u.password) : NULL;
    if (r)
        ck_assert_int_ne(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = redisCommand(c, "SELECT %d", u.db);
    freeReplyObject(r);
    dlock__redis_url_free(&u);
    return c;
}

/* One command's reply as a string ("" nil, the integer in decimal). */
static char *raw_cmd(const char *fmt, const char *a)
{
    redisContext *c = raw();
    redisReply *r = redisCommand(c, fmt, a);
    ck_assert_ptr_nonnull(r);
    char buf[1024] = "";
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
        snprintf(buf, sizeof buf, "%s", r->str);
    else if (r->type == REDIS_REPLY_INTEGER)
        snprintf(buf, sizeof buf, "%lld", r->integer);
    freeReplyObject(r);
    redisFree(c);
    return strdup(buf);
}

static char *key_of(const char *n, const char *suffix)
{
    char buf[600];
    snprintf(buf, sizeof buf, "dlock:{%s}%s", n, suffix);
    return strdup(buf);
}

/* --- the URL parser ------------------------------------------------------------------- */

START_TEST(url_forms)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url("redis://h", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "h");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);
    ck_assert_str_eq(u.prefix, "dlock:");
    ck_assert_ptr_null(u.password);
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis://app:p%40ss@[::1]:7000/3?prefix=x%7B", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 3);
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "p@ss");
    ck_assert_str_eq(u.prefix, "x{");
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis://:a@b@h:1/", &u), DLOCK_OK);
    ck_assert_ptr_null(u.user);
    ck_assert_str_eq(u.password, "a@b");
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis+unix:///run/r%20s.sock?db=2&prefix=p", &u), DLOCK_OK);
    ck_assert_str_eq(u.socket, "/run/r s.sock");
    ck_assert_int_eq(u.db, 2);
    ck_assert_str_eq(u.prefix, "p");
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis+unix://u:pw@/r.sock", &u), DLOCK_OK);
    ck_assert_str_eq(u.socket, "/r.sock");
    ck_assert_str_eq(u.user, "u");
    ck_assert_str_eq(u.password, "pw");
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis://h?mode=lease&fencing=on", &u), DLOCK_OK);
    dlock__redis_url_free(&u);
}
END_TEST

START_TEST(url_hostile)
{
    static const struct {
        const char *url;
        int rc;
    } cases[] = {
        {"redis://", DLOCK_EINVAL},
        {"redis:h", DLOCK_EINVAL},
        {"redis://h:0", DLOCK_EINVAL},
        {"redis://h:65536", DLOCK_EINVAL},
        {"redis://h:12x", DLOCK_EINVAL},
        {"redis://h/x", DLOCK_EINVAL},
        {"redis://h/-1", DLOCK_EINVAL},
        {"redis://h/99999999999", DLOCK_EINVAL},
        {"redis://[::1", DLOCK_EINVAL},
        {"redis://[::1]x", DLOCK_EINVAL},
        {"redis://user@h", DLOCK_EINVAL},
        {"redis://:@h", DLOCK_EINVAL},
        {"redis://:S3cr3t%zz@h", DLOCK_EINVAL},
        {"redis://:S3cr3t@h%00", DLOCK_EINVAL},
        {"redis://:S3cr3t@h/0#frag", DLOCK_EINVAL},
        {"redis://:S3cr3t@h/0?what=1", DLOCK_EINVAL},
        {"redis://h?db=1", DLOCK_EINVAL},
        {"redis://h?table=t", DLOCK_EINVAL},
        {"redis://h?mode=session", DLOCK_EINVAL},
        {"redis://h?fencing=off", DLOCK_EINVAL},
        {"redis+unix://host/x.sock", DLOCK_EINVAL},
        {"redis+unix://", DLOCK_EINVAL},
        {"redis+unix:relative.sock", DLOCK_EINVAL},
        {"redis+unix:///x.sock?db=a", DLOCK_EINVAL},
        {"redis+unix:///x.sock?db=1&db=2", DLOCK_EINVAL},
        {"rediss://:S3cr3t@h/0", DLOCK_ENOTSUP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dlock_redis_url u;
        int rc = dlock__redis_parse_url(cases[i].url, &u);
        ck_assert_msg(rc == cases[i].rc, "%s: %d", cases[i].url, rc);
        ck_assert_msg(!strstr(dlock_last_error(), "S3cr3t"), "%s: %s", cases[i].url, dlock_last_error());
        ck_assert_uint_gt(strlen(dlock_last_error()), 5);
        dlock_client *c = NULL;
        ck_assert_int_eq(dlock_open(cases[i].url, &c), cases[i].rc);
        ck_assert(!strstr(dlock_last_error(), "S3cr3t"));
    }
}
END_TEST

START_TEST(wrong_password_not_shown)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    char bad[512];
    snprintf(bad, sizeof bad, "redis://:Wr0ng-S3cret@%s:%d/0", u.host, u.port);
    dlock__redis_url_free(&u);
    dlock_client *c = NULL;
    int rc = dlock_open(bad, &c);
    ck_assert(rc == DLOCK_ECONN || rc == DLOCK_EBACKEND);
    ck_assert_ptr_null(strstr(dlock_last_error(), "Wr0ng-S3cret"));
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "WRONGPASS"));
    snprintf(bad, sizeof bad, "redis://:Wr0ng-S3cret@127.0.0.1:1/0");
    ck_assert_int_eq(dlock_open(bad, &c), DLOCK_ECONN);
    ck_assert_ptr_null(strstr(dlock_last_error(), "Wr0ng-S3cret"));
}
END_TEST

/* --- the keys, as an operator sees them ------------------------------------------------- */

/* The test server's socket, with the password in the URL. */
START_TEST(unix_socket_url)
{
    const char *dir = getenv("DLOCK_TEST_REDIS_DIR");
    if (!dir || !*dir)
        return;
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    char sock[4400];
    snprintf(sock, sizeof sock, "redis+unix://:%s@%s/redis.sock?db=1", u.password ? u.password : "", dir);
    dlock__redis_url_free(&u);
    dlock_client *c = NULL;
    ck_assert_msg(dlock_open(sock, &c) == DLOCK_OK, "%s", dlock_last_error());
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK); /* db 0: another lock */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
}
END_TEST

START_TEST(keys_and_values)
{
    char weird[64];
    snprintf(weird, sizeof weird, "%s {x} *?[]\\ é", name);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, weird, 5000, 0, &l), DLOCK_OK);
    char *key = key_of(weird, ""), *fence = key_of(weird, ":fence");
    char *value = raw_cmd("GET %s", key);
    ck_assert_uint_gt(strlen(value), 40);
    char host[300];
    snprintf(host, sizeof host, " %ld %s", (long)getpid(), dlock__hostname());
    ck_assert_msg(strstr(value, host), "value: %s", value);
    char *pttl = raw_cmd("PTTL %s", key);
    ck_assert_int_gt(atol(pttl), 3000);
    char *counter = raw_cmd("GET %s", fence);
    uint64_t token = 0;
    ck_assert_int_eq(dlock_fence(l, &token), DLOCK_OK);
    ck_assert_uint_eq(strtoull(counter, NULL, 10), token);
    /* A second client sees it held, by us. */
    char buf[512];
    ck_assert_int_eq(dlock_holder(client, weird, buf, sizeof buf), 1);
    ck_assert_ptr_nonnull(strstr(buf, "fence="));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(value);
    value = raw_cmd("EXISTS %s", key);
    ck_assert_str_eq(value, "0");
    ck_assert_int_eq(dlock_holder(client, weird, buf, sizeof buf), 0);
    free(value);
    free(pttl);
    free(counter);
    free(key);
    free(fence);
}
END_TEST

/* redis-cli SET ... NX takes the same lock: dlock sees it busy. */
START_TEST(redis_cli_takes_the_same_lock)
{
    char *key = key_of(name, "");
    redisContext *rc = raw();
    redisReply *ok =
        redisCommand(rc, "SET %s %s PX 1500 NX", key, "0123456789abcdef0123456789abcdef 1700000000000 1 ops");
    ck_assert_ptr_nonnull(ok);
    ck_assert_str_eq(ok->str, "OK");
    freeReplyObject(ok);
    redisFree(rc);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    char buf[256];
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 1);
    ck_assert_ptr_nonnull(strstr(buf, "host=ops"));
    int64_t t0 = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 5000, &l), DLOCK_OK);
    ck_assert_int_ge(dlt_now_ms() - t0, 1000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(key);
}
END_TEST

START_TEST(fence_strictly_increasing)
{
    uint64_t last = 0;
    for (int i = 0; i < 5; i++) {
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
        uint64_t f = 0;
        ck_assert_int_eq(dlock_fence(l, &f), DLOCK_OK);
        ck_assert_uint_gt(f, last);
        ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
        uint64_t g = 0;
        ck_assert_int_eq(dlock_fence(l, &g), DLOCK_OK);
        ck_assert_uint_eq(f, g);
        last = f;
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    /* The counter lost (a server restarted without persistence): the next
     * token still comes from the server's clock in microseconds, above it. */
    char *fence = key_of(name, ":fence");
    free(raw_cmd("DEL %s", fence));
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    uint64_t f = 0;
    ck_assert_int_eq(dlock_fence(l, &f), DLOCK_OK);
    ck_assert_uint_gt(f, last);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(fence);
}
END_TEST

/* --- list, break, records ------------------------------------------------------------ */

START_TEST(list_break_records)
{
    char other[300];
    snprintf(other, sizeof other, "%s-b", name);
    dlock_lock *a = NULL, *b = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 8000, 0, &a), DLOCK_OK);
    dlock_client *c2 = NULL;
    ck_assert_int_eq(dlock_open(url, &c2), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c2, other, 8000, 0, &b), DLOCK_OK);
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 2);
    int64_t now = 0;
    ck_assert_int_eq(dlock_store_time(client, &now), DLOCK_OK);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_ptr_nonnull(dlock_list_name(list, i));
        ck_assert(strncmp(dlock_list_name(list, i), name, strlen(name)) == 0);
        ck_assert_str_eq(dlock_list_host(list, i), dlock__hostname());
        ck_assert_int_eq(dlock_list_pid(list, i), getpid());
        ck_assert_int_le(dlock_list_since(list, i), now);
        ck_assert_int_gt(dlock_list_since(list, i), now - 10000);
        ck_assert_int_gt(dlock_list_expires(list, i), now + 5000);
        ck_assert_uint_gt(dlock_list_fence(list, i), 0);
    }
    dlock_list_free(list);
    /* Records: only while held. */
    int64_t slot = -1;
    ck_assert_int_eq(dlock_record_get(a, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(a, 1234567), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(a, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1234567);
    /* Break the other one: its holder loses it, its records refuse. */
    ck_assert_int_eq(dlock_break(client, other), 1);
    ck_assert_int_eq(dlock_break(client, other), 0);
    ck_assert_int_eq(dlock_record_put(b, 99), DLOCK_ELOST);
    ck_assert_int_eq(dlock_extend(b, 8000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(b), DLOCK_ELOST);
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    dlock_list_free(list);
    /* Another holder's token cannot write the first lock's record. */
    ck_assert_int_eq(dlock_break(c2, name), 1);
    ck_assert_int_eq(dlock_acquire(c2, name, 8000, 0, &b), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(a, 7), DLOCK_ELOST); /* the script's check: an ELOST is sticky in the core */
    ck_assert_int_eq(dlock_record_get(b, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1234567);
    ck_assert_int_eq(dlock_release(b), DLOCK_OK);
    ck_assert_int_eq(dlock_release(a), DLOCK_ELOST);
    /* And another holder's token cannot read it. */
    ck_assert_int_eq(dlock_acquire(client, name, 8000, 0, &a), DLOCK_OK);
    ck_assert_int_eq(dlock_break(c2, name), 1);
    ck_assert_int_eq(dlock_acquire(c2, name, 8000, 0, &b), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(a, &slot), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(b), DLOCK_OK);
    ck_assert_int_eq(dlock_release(a), DLOCK_ELOST);
    dlock_close(c2);
}
END_TEST

/* --- waiting ----------------------------------------------------------------------------- */

struct waiter {
    dlock_client *client;
    const char *name;
    int rc;
    int64_t done_ms;
};

static void *wait_forever(void *arg)
{
    struct waiter *w = arg;
    dlock_lock *l = NULL;
    w->rc = dlock_acquire(w->client, w->name, 5000, DLOCK_WAIT_FOREVER, &l);
    w->done_ms = dlt_now_ms();
    if (l)
        dlock_release(l);
    return NULL;
}

/* The release wakes a waiter at once (publish), long before the holder's
 * TTL would; dlock_cancel ends a wait. */
START_TEST(release_wakes_waiter_cancel_ends_wait)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    struct waiter w = {NULL, name, 1, 0};
    ck_assert_int_eq(dlock_open(url, &w.client), DLOCK_OK);
    pthread_t t;
    pthread_create(&t, NULL, wait_forever, &w);
    dlt_sleep_ms(600);
    int64_t released = dlt_now_ms();
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, DLOCK_OK);
    ck_assert_int_lt(w.done_ms - released, 150);

    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    w.rc = 1;
    pthread_create(&t, NULL, wait_forever, &w);
    dlt_sleep_ms(300);
    int64_t canceled = dlt_now_ms();
    ck_assert_int_eq(dlock_cancel(w.client), DLOCK_OK);
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, DLOCK_ECANCELED);
    ck_assert_int_lt(w.done_ms - canceled, 150);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(w.client);
}
END_TEST

/* --- faults ------------------------------------------------------------------------------ */

/* A holder killed with -9 keeps its lock until its TTL, not after. */
START_TEST(killed_holder_free_after_ttl)
{
    dlt_child h;
    ck_assert_int_eq(dlt_child_start(&h, url, name, 1500, 0), 0);
    ck_assert_int_eq(dlt_child_read(&h, 10000), DLOCK_OK);
    int64_t taken = dlt_now_ms();
    dlt_child_stop(&h, SIGKILL);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 5000, &l), DLOCK_OK);
    int64_t free_at = dlt_now_ms() - taken;
    ck_assert_int_ge(free_at, 1300);
    ck_assert_int_le(free_at, 1500 + 600);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A stopped holder loses the lock at its TTL and learns it when it wakes. */
START_TEST(stopped_holder_gets_lost)
{
    dlt_child h;
    ck_assert_int_eq(dlt_child_start(&h, url, name, 1000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&h, 10000), DLOCK_OK);
    kill(h.pid, SIGSTOP);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 4000, &l), DLOCK_OK);
    kill(h.pid, SIGCONT);
    ck_assert_int_eq(dlt_child_cmd(&h, "extend 1000", 10000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&h, "release", 10000), DLOCK_ELOST);
    dlt_child_stop(&h, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* CLIENT KILL of every connection: the key holds the lock; the holder
 * connects again and extends. */
START_TEST(client_kill_keeps_lock)
{
    dlt_child h;
    ck_assert_int_eq(dlt_child_start(&h, url, name, 8000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&h, 10000), DLOCK_OK);
    char *killed = raw_cmd("CLIENT KILL TYPE %s SKIPME yes", "normal");
    ck_assert_int_ge(atoi(killed), 1);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlt_child_cmd(&h, "extend 8000", 10000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_cmd(&h, "release", 10000), DLOCK_OK);
    dlt_child_stop(&h, 0);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(killed);
}
END_TEST

/* SCRIPT FLUSH: the scripts are loaded again, nothing fails. */
START_TEST(script_flush_reloads)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    free(raw_cmd("SCRIPT FLUSH", NULL));
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    free(raw_cmd("SCRIPT FLUSH", NULL));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(raw_cmd("SCRIPT FLUSH", NULL));
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

static int server_script(const char *action)
{
    const char *dir = getenv("DLOCK_TEST_REDIS_DIR");
    const char *src = getenv("top_srcdir");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/redis-server.sh' %s '%s' >/dev/null", src ? src : "..", action, dir);
    return dlt_system(cmd);
}

static pid_t server_pid(void)
{
    const char *dir = getenv("DLOCK_TEST_REDIS_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/redis.pid", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long pid = 0;
    ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    return (pid_t)pid;
}

static int have_dir(void)
{
    const char *dir = getenv("DLOCK_TEST_REDIS_DIR");
    if (dir && *dir)
        return 1;
    ck_assert_msg(!dlt_required("redis"), "DLOCK_TEST_REDIS_DIR is not set");
    fprintf(stderr, "DLOCK_TEST_REDIS_DIR is not set: server fault test skipped\n");
    return 0;
}

/* A server restarted without persistence forgot the key: the holder gets
 * DLOCK_ELOST at its next extend, and the lock can be taken again. */
START_TEST(server_restart_loses_lock)
{
    if (!have_dir())
        return;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 20000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(server_script("restart"), 0);
    ck_assert_int_eq(dlock_extend(l, 20000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A stopped server: every call returns by its deadline (the extend by the
 * end of the lease), and the client works again once the server does. */
START_TEST(stopped_server_calls_return)
{
    if (!have_dir())
        return;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 1500, 0, &l), DLOCK_OK);
    pid_t pid = server_pid();
    ck_assert_int_eq(kill(pid, SIGSTOP), 0);
    int64_t t0 = dlt_now_ms();
    int rc = dlock_extend(l, 1500);
    int64_t took = dlt_now_ms() - t0;
    kill(pid, SIGCONT);
    ck_assert_msg(rc == DLOCK_ELOST || rc == DLOCK_ECONN, "extend: %d", rc);
    ck_assert_int_le(took, 1500 + 300);
    dlock_release(l);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 5000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* --- issue 23: tokens after a restore, keys of other tools, one name per break ------------- */

static uint64_t take_fence(dlock_client *c, const char *n)
{
    dlock_lock *l = NULL;
    ck_assert_msg(dlock_acquire(c, n, 5000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
    uint64_t f = 0;
    ck_assert_int_eq(dlock_fence(l, &f), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    return f;
}

/* A snapshot (SAVE), more tokens, then kill -9 of redis-server and a
 * restart that loads the snapshot: the counter comes back older than the
 * last token, and the next token must still be above every token before
 * the crash. */
START_TEST(fence_survives_a_crash_and_an_old_snapshot)
{
    if (!have_dir())
        return;
    uint64_t last = 0;
    for (int i = 0; i < 3; i++)
        last = take_fence(client, name);
    char *saved = raw_cmd("SAVE", "");
    ck_assert_str_eq(saved, "OK");
    free(saved);
    for (int i = 0; i < 5; i++) {
        uint64_t f = take_fence(client, name);
        ck_assert_uint_gt(f, last);
        last = f;
    }
    ck_assert_int_eq(server_script("crash"), 0);
    /* The snapshot was loaded: the counter is back at an older value. */
    char *fence_key = key_of(name, ":fence");
    char *restored = raw_cmd("GET %s", fence_key);
    ck_assert_msg(*restored && strtoull(restored, NULL, 10) < last, "restored counter '%s', last token %llu", restored,
                  (unsigned long long)last);
    free(restored);
    uint64_t after = take_fence(client, name);
    ck_assert_msg(after > last, "token %llu after the crash, %llu before it", (unsigned long long)after,
                  (unsigned long long)last);
    free(fence_key);
}
END_TEST

/* The acquire script's retry branch (the answer to the first send was lost,
 * the lock key holds our own value) with the counter gone: the token still
 * comes from the clock floor, not a plain INCR that answers 1. */
START_TEST(fence_retry_branch_keeps_the_floor)
{
    char *key = key_of(name, ""), *fence_key = key_of(name, ":fence");
    const char *value = "0123456789abcdef0123456789abcdef 1700000000000 1 retry";
    redisContext *rc = raw();
    redisReply *r = redisCommand(rc, "SET %s %s PX 5000", key, value);
    freeReplyObject(r);
    r = redisCommand(rc, "DEL %s", fence_key);
    freeReplyObject(r);
    r = redisCommand(rc, "EVAL %s 2 %s %s %s %s", DLOCK_REDIS_ACQUIRE, key, fence_key, value, "5000");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long retried = r->integer;
    freeReplyObject(r);
    r = redisCommand(rc, "TIME");
    long long now_us = atoll(r->element[0]->str) * 1000000LL + atoll(r->element[1]->str);
    freeReplyObject(r);
    ck_assert_msg(retried > now_us - 60LL * 1000000 && retried <= now_us, "retry answered %lld at %lld", retried,
                  now_us);
    r = redisCommand(rc, "DEL %s %s", key, fence_key);
    freeReplyObject(r);
    redisFree(rc);
    free(key);
    free(fence_key);
}
END_TEST

/* A counter ahead of the server's clock (the clock was stepped back, or
 * tokens were taken faster than one a microsecond): tokens go on from the
 * counter, strictly increasing. */
START_TEST(fence_counter_ahead_of_the_clock)
{
    char *fence_key = key_of(name, ":fence");
    char ahead[32];
    snprintf(ahead, sizeof ahead, "%llu", (unsigned long long)(take_fence(client, name) + 1000000000000ULL));
    redisContext *rc = raw();
    redisReply *r = redisCommand(rc, "SET %s %s", fence_key, ahead);
    freeReplyObject(r);
    redisFree(rc);
    uint64_t f = take_fence(client, name);
    ck_assert_uint_eq(f, strtoull(ahead, NULL, 10) + 1);
    ck_assert_uint_eq(take_fence(client, name), f + 1);
    free(fence_key);
}
END_TEST

/* A key in the lock's place that libdlock did not write (an operator's
 * SET ... NX): held by an unknown holder, in holder, list and the CLI. */
START_TEST(foreign_key_is_held_by_unknown)
{
    char *key = key_of(name, "");
    redisContext *rc = raw();
    redisReply *r = redisCommand(rc, "SET %s %s NX PX 600000", key, "maintenance by ops");
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    char buf[256] = "";
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 1);
    ck_assert_msg(strstr(buf, "unknown"), "holder text '%s'", buf);
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    ck_assert_str_eq(dlock_list_name(list, 0), name);
    ck_assert_str_eq(dlock_list_holder(list, 0), "unknown");
    ck_assert_int_gt(dlock_list_expires(list, 0), 0);
    dlock_list_free(list);
    /* dlock status --json says so too (make check sets DLOCK_BIN). */
    const char *bin = getenv("DLOCK_BIN");
    if (bin && *bin) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' status --json -u '%s' '%s' | grep -q '\"held\":true,.*\"holder\":\"unknown\"'",
                 bin, url, name);
        ck_assert_int_eq(dlt_system(cmd), 0);
    }
    /* A key of another type too. */
    r = redisCommand(rc, "DEL %s", key);
    freeReplyObject(r);
    r = redisCommand(rc, "HSET %s a b", key);
    freeReplyObject(r);
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 1);
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    ck_assert_int_eq(dlock_list_expires(list, 0), -1);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_break(client, name), 1);
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 0);
    redisFree(rc);
    free(key);
}
END_TEST

/* A break acts on exactly one name: hold N and N-2, break N. */
START_TEST(break_acts_on_one_name)
{
    char other[300];
    snprintf(other, sizeof other, "%s-2", name);
    dlock_client *c2 = NULL;
    ck_assert_int_eq(dlock_open(url, &c2), DLOCK_OK);
    dlock_lock *a = NULL, *b = NULL;
    ck_assert_int_eq(dlock_acquire(c2, name, 8000, 0, &a), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c2, other, 8000, 0, &b), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 1);
    char buf[256];
    ck_assert_int_eq(dlock_holder(client, other, buf, sizeof buf), 1);
    ck_assert_int_eq(dlock_extend(b, 8000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(b), DLOCK_OK);
    ck_assert_int_eq(dlock_release(a), DLOCK_ELOST);
    dlock_close(c2);
}
END_TEST

/* A stale holder that extends, with a TTL of its own, a lock someone else
 * now holds leaves the new holder's expiry alone. */
START_TEST(stale_extend_leaves_the_new_expiry)
{
    dlock_client *c2 = NULL;
    ck_assert_int_eq(dlock_open(url, &c2), DLOCK_OK);
    dlock_lock *stale = NULL, *fresh = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 20000, 0, &stale), DLOCK_OK);
    ck_assert_int_eq(dlock_break(c2, name), 1);
    ck_assert_int_eq(dlock_acquire(c2, name, 20000, 0, &fresh), DLOCK_OK);
    ck_assert_int_eq(dlock_extend(stale, 300), DLOCK_ELOST);
    char *key = key_of(name, "");
    char *pttl = raw_cmd("PTTL %s", key);
    ck_assert_msg(atoll(pttl) > 15000, "the new holder's key expires in %s ms", pttl);
    free(pttl);
    dlt_sleep_ms(500);
    dlock_lock *third = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &third), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_release(fresh), DLOCK_OK);
    dlock_release(stale);
    free(key);
    dlock_close(c2);
}
END_TEST

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

static Suite *redis_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *t = tcase_create("url");
    tcase_add_test(t, url_forms);
    tcase_add_test(t, url_hostile);
    tcase_add_test(t, wrong_password_not_shown);
    suite_add_tcase(s, t);
    t = tcase_create("lock");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, unix_socket_url);
    tcase_add_test(t, keys_and_values);
    tcase_add_test(t, redis_cli_takes_the_same_lock);
    tcase_add_test(t, fence_strictly_increasing);
    tcase_add_test(t, list_break_records);
    tcase_add_test(t, release_wakes_waiter_cancel_ends_wait);
    suite_add_tcase(s, t);
    t = tcase_create("faults");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 40);
    tcase_add_test(t, killed_holder_free_after_ttl);
    tcase_add_test(t, stopped_holder_gets_lost);
    tcase_add_test(t, client_kill_keeps_lock);
    tcase_add_test(t, script_flush_reloads);
    tcase_add_test(t, server_restart_loses_lock);
    tcase_add_test(t, stopped_server_calls_return);
    suite_add_tcase(s, t);
    t = tcase_create("fences-and-foreign-keys");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 40);
    tcase_add_test(t, fence_survives_a_crash_and_an_old_snapshot);
    tcase_add_test(t, fence_retry_branch_keeps_the_floor);
    tcase_add_test(t, fence_counter_ahead_of_the_clock);
    tcase_add_test(t, foreign_key_is_held_by_unknown);
    tcase_add_test(t, break_acts_on_one_name);
    tcase_add_test(t, stale_extend_leaves_the_new_expiry);
    suite_add_tcase(s, t);
    t = tcase_create("lost-replies");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, release_after_a_lost_reply_is_not_lost);
    tcase_add_test(t, break_after_a_lost_reply_is_broken);
    tcase_add_test(t, deadline_bounds_the_whole_reply);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    url = dlt_require_url("DLOCK_TEST_REDIS_URL", "redis");
    SRunner *sr = srunner_create(redis_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
