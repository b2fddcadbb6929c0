/*
 * The Redis backend's operations (see backend.h): who holds a lock, the
 * list of held locks (SCAN), breaking one, the server's clock, and the run
 * records that only the holder may read and write.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "backend.h"

/* --- reading a lock ------------------------------------------------------------------- */

struct lock_info {
    int64_t since_ms, pid, pttl_ms;
    uint64_t fence;
    const char *host; /* points into the reply; NULL: a key libdlock did not write */
};

/* "<token> <since_ms> <pid> <host>": 1 parsed, 0 not one of ours. */
static int parse_value(const redisReply *v, struct lock_info *info)
{
    if (v->type != REDIS_REPLY_STRING || v->len < TOKEN_HEX + 6 || v->str[TOKEN_HEX] != ' ')
        return 0;
    const char *p = v->str + TOKEN_HEX + 1;
    char *end;
    errno = 0;
    long long since = strtoll(p, &end, 10);
    if (end == p || *end != ' ' || errno)
        return 0;
    p = end + 1;
    long long pid = strtoll(p, &end, 10);
    if (end == p || *end != ' ' || errno)
        return 0;
    info->since_ms = since;
    info->pid = pid;
    info->host = end + 1;
    return 1;
}

/* GET, PTTL, GET fence of one lock key, in one round trip: 1 held (info
 * filled, *replies to free), 0 free, <0 error.  A key that exists is held,
 * whatever it holds: one that another tool set (an operator's SET ... NX, a
 * key of another type) keeps every acquire out, so it is held by an unknown
 * holder (info->host NULL, pid 0, since -1). */
static int read_lock(redis_conn *c, const char *key, size_t klen, struct dlock_call *call, redisReply **r,
                     struct lock_info *info)
{
    char fence[KEY_MAX + 8];
    if (klen + 7 > sizeof fence)
        return 0;
    memcpy(fence, key, klen);
    memcpy(fence + klen, ":fence", 7);
    struct redis_cmd cmds[3] = {{0}, {0}, {0}};
    dlock__redis_args(&cmds[0], "GET");
    dlock__redis_arg(&cmds[0], key, klen);
    dlock__redis_args(&cmds[1], "PTTL");
    dlock__redis_arg(&cmds[1], key, klen);
    dlock__redis_args(&cmds[2], "GET");
    dlock__redis_arg(&cmds[2], fence, klen + 6);
    int rc = dlock__redis_round_trip(c, call, 3, cmds, r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    int held = r[1]->type == REDIS_REPLY_INTEGER && r[1]->integer != -2;
    if (held) {
        if (!parse_value(r[0], info)) {
            info->host = NULL;
            info->pid = 0;
            info->since_ms = -1;
        }
        info->pttl_ms = r[1]->integer; /* -1: no expiry (set by another tool) */
        info->fence = r[2]->type == REDIS_REPLY_STRING ? strtoull(r[2]->str, NULL, 10) : 0;
    } else {
        for (int i = 0; i < 3; i++)
            freeReplyObject(r[i]);
    }
    return held;
}

int dlock__redis_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char key[KEY_MAX];
    size_t klen = dlock__redis_key(c, name, "", key);
    redisReply *r[3];
    struct lock_info info = {0};
    int held = read_lock(c, key, klen, call, r, &info);
    if (held <= 0)
        return held;
    char since[32];
    dlock__utc_text(since, sizeof since, info.since_ms);
    char text[512];
    if (!info.host)
        snprintf(text, sizeof text, "unknown (a key libdlock did not write) expires_in=%lldms",
                 (long long)info.pttl_ms);
    else
        snprintf(text, sizeof text, "host=%s pid=%lld since=%s expires_in=%lldms fence=%" PRIu64, info.host,
                 (long long)info.pid, since, (long long)info.pttl_ms, info.fence);
    dlock__copy_text(buf, buflen, text);
    for (int i = 0; i < 3; i++)
        freeReplyObject(r[i]);
    return 1;
}

int dlock__redis_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    struct redis_cmd cmd = {0};
    dlock__redis_args(&cmd, "TIME");
    redisReply *r;
    int rc = dlock__redis_round_trip(c, call, 1, &cmd, &r, NULL);
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
    struct lock_info info = {0};
    int held = read_lock(c, key, klen, call, r, &info);
    if (held <= 0)
        return held;
    char name[KEY_MAX], holder[512], keytext[KEY_MAX];
    snprintf(name, sizeof name, "%.*s", (int)(klen - plen - 2), key + plen + 1);
    snprintf(keytext, sizeof keytext, "%.*s", (int)klen, key);
    if (info.host)
        snprintf(holder, sizeof holder, "host=%s pid=%lld", info.host, (long long)info.pid);
    else
        snprintf(holder, sizeof holder, "unknown");
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

int dlock__redis_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    int64_t now_ms = 0;
    int rc = dlock__redis_store_time(conn, &now_ms, call);
    if (rc != DLOCK_OK)
        return rc;
    char pattern[2 * KEY_MAX];
    size_t n = glob_escape(c->url.prefix, pattern, sizeof pattern);
    n += glob_escape("{", pattern + n, sizeof pattern - n);
    n += glob_escape(prefix, pattern + n, sizeof pattern - n);
    snprintf(pattern + n, sizeof pattern - n, "*}");
    char cursor[32] = "0";
    do {
        struct redis_cmd cmd = {0};
        dlock__redis_args(&cmd, "SCAN");
        dlock__redis_args(&cmd, cursor);
        dlock__redis_args(&cmd, "MATCH");
        dlock__redis_args(&cmd, pattern);
        dlock__redis_args(&cmd, "COUNT");
        dlock__redis_args(&cmd, "1000");
        redisReply *r;
        if ((rc = dlock__redis_round_trip(c, call, 1, &cmd, &r, NULL)) != DLOCK_OK)
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

int dlock__redis_break(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char key[KEY_MAX], mark[KEY_MAX], channel[KEY_MAX], id[33];
    size_t klen = dlock__redis_key(c, name, "", key), mlen = dlock__redis_key(c, name, ":broken", mark);
    size_t chlen = dlock__redis_key(c, name, ":released", channel);
    int made = dlock__random_hex(id, 16);
    if (made != DLOCK_OK)
        return made;
    const char *a[] = {key, mark, channel, id};
    size_t alen[] = {klen, mlen, chlen, 32};
    redisReply *r = NULL;
    int rc = dlock__redis_script(c, call, SCRIPT_BREAK, 2, a, alen, 4, &r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    int broken = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return broken;
}

int dlock__redis_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                            struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char key[KEY_MAX], slot_key[KEY_MAX];
    size_t klen = dlock__redis_key(c, name, "", key), slen = dlock__redis_key(c, name, ":slot", slot_key);
    const char *a[] = {key, slot_key, redis_lock_of(held)->token};
    size_t alen[] = {klen, slen, TOKEN_HEX};
    redisReply *r = NULL;
    int rc = dlock__redis_script(c, call, SCRIPT_RECORD_GET, 2, a, alen, 3, &r, NULL);
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

int dlock__redis_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                            struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char value[24];
    snprintf(value, sizeof value, "%" PRId64, slot);
    long long ours = 0;
    int rc = dlock__redis_owned_script(c, SCRIPT_RECORD_PUT, name, redis_lock_of(held)->token, value, strlen(value),
                                       ":slot", call, &ours, NULL);
    if (rc != DLOCK_OK)
        return rc;
    if (ours != 1)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its run record was not written", name);
    return DLOCK_OK;
}
