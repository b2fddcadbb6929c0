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
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "redis/suite.h"

const char *url;
char *name;
dlock_client *client;

void setup(void)
{
    dlt_fixture_open(url, "redis", &client, &name);
}

void teardown(void)
{
    dlt_fixture_close(&client, &name);
}

/* A plain hiredis connection to the test server, as an operator's redis-cli. */
redisContext *raw(void)
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
char *raw_cmd(const char *fmt, const char *a)
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

char *key_of(const char *n, const char *suffix)
{
    char buf[600];
    snprintf(buf, sizeof buf, "dlock:{%s}%s", n, suffix);
    return strdup(buf);
}

int server_script(const char *action)
{
    const char *dir = getenv("DLOCK_TEST_REDIS_DIR");
    const char *src = getenv("top_srcdir");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/redis-server.sh' %s '%s' >/dev/null", src ? src : "..", action, dir);
    return dlt_system(cmd);
}

int have_dir(void)
{
    const char *dir = getenv("DLOCK_TEST_REDIS_DIR");
    if (dir && *dir)
        return 1;
    ck_assert_msg(!dlt_required("redis"), "DLOCK_TEST_REDIS_DIR is not set");
    fprintf(stderr, "DLOCK_TEST_REDIS_DIR is not set: server fault test skipped\n");
    return 0;
}

static Suite *redis_suite(void)
{
    Suite *s = suite_create("redis");
    dlt_redis_add_url(s);
    dlt_redis_add_lock(s);
    dlt_redis_add_faults(s);
    dlt_redis_add_fences(s);
    dlt_redis_add_lost_replies(s);
    return s;
}

int main(void)
{
    url = dlt_require_url("DLOCK_TEST_REDIS_URL", "redis");
    int failed = dlt_run_suite(redis_suite());
    return failed ? 1 : 0;
}
