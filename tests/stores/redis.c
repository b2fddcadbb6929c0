/* The Redis store, as the shared suites see it (tests/stores/store.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "redis/url.h"
#include "store.h"

/* One command on a plain hiredis connection (as redis-cli), about `name`'s
 * keys: "GET", "DEL"; the reply as text ("" nil). */
static void raw(const char *url, const char *cmd, const char *name, const char *suffix, char *out, size_t outlen)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    struct timeval tv = {5, 0};
    redisContext *c =
        u.socket ? redisConnectUnixWithTimeout(u.socket, tv) : redisConnectWithTimeout(u.host, u.port, tv);
    ck_assert(c && !c->err);
    redisReply *r = NULL;
    if (u.password) {
        r = u.user ? redisCommand(c, "AUTH %s %s", u.user, u.password) : redisCommand(c, "AUTH %s", u.password);
        freeReplyObject(r);
    }
    r = redisCommand(c, "SELECT %d", u.db);
    freeReplyObject(r);
    char key[700];
    snprintf(key, sizeof key, "%s{%s}%s", u.prefix, name, suffix);
    r = redisCommand(c, "%s %s", cmd, key);
    ck_assert_ptr_nonnull(r);
    if (out)
        snprintf(out, outlen, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    if (!out && strcmp(cmd, "DEL") == 0)
        ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    dlock__redis_url_free(&u);
}

static unsigned caps(const char *url)
{
    (void)url;
    return DLT_NETWORK | DLT_FENCES | DLT_OUTLIVES_CONNECTION | DLT_LISTS_NAMES;
}

static void view(const char *url, const char *name, char *out, size_t outlen)
{
    char value[300] = "", fence[64] = "";
    raw(url, "GET", name, "", value, sizeof value);
    raw(url, "GET", name, ":fence", fence, sizeof fence);
    out[0] = '\0';
    if (value[0])
        snprintf(out, outlen, "%s fence=%s", value, fence);
}

static void take_away(const char *url, const char *name)
{
    raw(url, "DEL", name, "", NULL, 0);
}


static const struct dlt_bad_url bad_urls[] = {
    {"TLS (rediss)", "rediss://{user}:{secret}@{host}:{port}/{db}", {DLOCK_ENOTSUP}, 1},
    {"the password as an option value", "{scheme}://{user}:{secret}@{host}:{port}/{db}?prefix=x&mode={secret}",
     {DLOCK_EINVAL}, 1},
    {"the password as an option name", "{scheme}://{user}:{secret}@{host}:{port}/{db}?{secret}=1", {DLOCK_EINVAL}, 1},
    {"the password as the database", "{scheme}://{user}:{secret}@{host}:{port}/{secret}", {DLOCK_EINVAL}, 1},
    {"a missing socket", "redis+unix://{user}:{secret}@/nonexistent/redis.sock?db=0", {DLOCK_ECONN}, 1},
    {"an unterminated IPv6 host", "{scheme}://{user}:{secret}@[::1/{db}", {DLOCK_EINVAL}, 1},
    {"the real password, a database out of range", "{scheme}://{user}:{password}@{host}:{port}/99999",
     {DLOCK_EBACKEND, DLOCK_ECONN}, 2},
    {NULL, NULL, {0}, 0},
};

const struct dlt_store dlt_store_redis = {
    .backend = "redis",
    .url_env = "DLOCK_TEST_REDIS_URL",
    .caps = caps,
    .expiry_slack_ms = 1500,
    .default_port = "6379",
    .url_path = "0",
    .missing_db = "999",
    .bad_urls = bad_urls,
    .bad_login_userinfo = ":Wr0ngPassw0rd",
    .bad_login_word = "WRONGPASS",
    .view = view,
    .take_away = take_away,
    .pid_file_dir_env = "DLOCK_TEST_REDIS_DIR", /* one process serves every connection */
    .pid_file = "redis.pid",
};
