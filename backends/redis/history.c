/*
 * Redis run history and the preflight.  The history of a name is a list,
 * "<prefix>{<name>}:runs" (the lock's hash tag, so it lives on the lock's
 * slot), newest first: LPUSH and LTRIM in one MULTI/EXEC, so it never holds
 * more than `keep` runs.  A run is one string:
 *   "<start_ms> <end_ms> <pid> <exit_status> <fence> <outcome> <host>"
 * (exit_status -1: no job ran; fence and pid 0: none; the host last, as it
 * is the one field that might hold a space).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

/* The first error among n replies, or NULL. */
static const redisReply *first_error(redisReply **r, int n)
{
    for (int i = 0; i < n; i++) {
        if (r[i]->type == REDIS_REPLY_ERROR)
            return r[i];
        if (r[i]->type == REDIS_REPLY_ARRAY)
            for (size_t k = 0; k < r[i]->elements; k++)
                if (r[i]->element[k]->type == REDIS_REPLY_ERROR)
                    return r[i]->element[k];
    }
    return NULL;
}

static void free_replies(redisReply **r, int n)
{
    for (int i = 0; i < n; i++)
        freeReplyObject(r[i]);
}

static int refused(const redisReply *e, const char *doing)
{
    if (strncmp(e->str, "NOPERM", 6) == 0 || strstr(e->str, "NOPERM"))
        return dlock__error(DLOCK_EBACKEND, "%s: this ACL user may not use LPUSH, LTRIM, LRANGE or MULTI on the"
                                            " lock's keys (%s); docs/redis.md lists the ACL dlock needs",
                            doing, e->str);
    return dlock__error(DLOCK_EBACKEND, "%s: %s", doing, e->str);
}

int dlock__redis_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                             unsigned keep, struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char key[KEY_MAX], value[600], last[16];
    size_t klen = dlock__redis_key(c, name, ":runs", key);
    int vlen = dlock__history_to_text(run, value, sizeof value);
    if (vlen < 0 || (size_t)vlen >= sizeof value)
        vlen = (int)sizeof value - 1;
    snprintf(last, sizeof last, "%u", keep > 0 ? keep - 1 : 0);
    struct redis_cmd cmds[4] = {{0}, {0}, {0}, {0}};
    dlock__redis_args(&cmds[0], "MULTI");
    dlock__redis_args(&cmds[1], "LPUSH");
    dlock__redis_arg(&cmds[1], key, klen);
    dlock__redis_arg(&cmds[1], value, (size_t)vlen);
    dlock__redis_args(&cmds[2], "LTRIM");
    dlock__redis_arg(&cmds[2], key, klen);
    dlock__redis_args(&cmds[2], "0");
    dlock__redis_args(&cmds[2], last);
    dlock__redis_args(&cmds[3], "EXEC");
    redisReply *r[4];
    int rc = dlock__redis_round_trip(c, call, 4, cmds, r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    const redisReply *e = first_error(r, 4);
    rc = e ? refused(e, "cannot record the run") : DLOCK_OK;
    free_replies(r, 4);
    return rc;
}

int dlock__redis_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                              struct dlock_call *call)
{
    redis_conn *c = redis_of(conn);
    char key[KEY_MAX], last[24];
    size_t klen = dlock__redis_key(c, name, ":runs", key);
    snprintf(last, sizeof last, "%zu", max - 1);
    struct redis_cmd cmd = {0};
    dlock__redis_args(&cmd, "LRANGE");
    dlock__redis_arg(&cmd, key, klen);
    dlock__redis_args(&cmd, "0");
    dlock__redis_args(&cmd, last);
    redisReply *r;
    int rc = dlock__redis_round_trip(c, call, 1, &cmd, &r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        rc = refused(r, "cannot read the run history");
    } else if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements && rc == DLOCK_OK; i++) {
            redisReply *item = r->element[i];
            struct dlock_history_entry e;
            if (item->type == REDIS_REPLY_STRING && dlock__history_from_text(item->str, &e))
                rc = dlock__history_add(out, &e);
        }
    }
    freeReplyObject(r);
    return rc;
}

/* --- the preflight ------------------------------------------------------------------ */

/* The value of `field` in INFO's text ("field:value\r\n"), copied into buf. */
static const char *info_field(const redisReply *info, const char *field, char *buf, size_t len)
{
    buf[0] = '\0';
    if (info->type != REDIS_REPLY_STRING)
        return buf;
    size_t flen = strlen(field);
    for (const char *p = info->str; p && *p;) {
        if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
            p += flen + 1;
            size_t n = strcspn(p, "\r\n");
            snprintf(buf, len, "%.*s", (int)n, p);
            return buf;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return buf;
}

static int right_item(struct dlock_check_list *out, const char *key, const redisReply *r, int verdict_if_refused,
                      const char *ok_text, const char *refused_text)
{
    if (r->type != REDIS_REPLY_ERROR)
        return dlock__check_add(out, key, DLOCK_CHECK_OK, "%s", ok_text);
    return dlock__check_add(out, key, verdict_if_refused, "%s (%s); docs/redis.md lists the ACL dlock needs",
                            refused_text, r->str);
}

int dlock__redis_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out,
                       struct dlock_call *call)
{
    (void)name; /* one mode: the core asks for the holder */
    redis_conn *c = redis_of(conn);
    /* Probes that change nothing: a message on a channel no one listens
     * to, a script that returns 1, the run history of a name no one uses. */
    char channel[KEY_MAX], runs[KEY_MAX];
    size_t chlen = dlock__redis_key(c, "dlock-check-probe", ":released", channel);
    size_t rlen = dlock__redis_key(c, "dlock-check-probe", ":runs", runs);
    struct redis_cmd cmds[4] = {{0}, {0}, {0}, {0}};
    dlock__redis_args(&cmds[0], "INFO");
    dlock__redis_args(&cmds[1], "PUBLISH");
    dlock__redis_arg(&cmds[1], channel, chlen);
    dlock__redis_args(&cmds[1], "");
    dlock__redis_args(&cmds[2], "EVAL");
    dlock__redis_args(&cmds[2], "return 1");
    dlock__redis_args(&cmds[2], "0");
    dlock__redis_args(&cmds[3], "LRANGE");
    dlock__redis_arg(&cmds[3], runs, rlen);
    dlock__redis_args(&cmds[3], "0");
    dlock__redis_args(&cmds[3], "0");
    redisReply *r[4];
    int rc = dlock__redis_round_trip(c, call, 4, cmds, r, NULL);
    if (rc != DLOCK_OK)
        return rc;
    char version[64], role[32], aof[8], rdb_changes[32], policy[64];
    info_field(r[0], "redis_version", version, sizeof version);
    info_field(r[0], "role", role, sizeof role);
    info_field(r[0], "aof_enabled", aof, sizeof aof);
    info_field(r[0], "rdb_changes_since_last_save", rdb_changes, sizeof rdb_changes);
    info_field(r[0], "maxmemory_policy", policy, sizeof policy);
    int master = strcmp(role, "master") == 0;
    int evicts = policy[0] && strstr(policy, "allkeys") != NULL;
    rc = dlock__check_add(out, "server", DLOCK_CHECK_INFO, "Redis %s",
                          version[0] ? version : "(this user may not run INFO: role and persistence unknown)");
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "database", DLOCK_CHECK_INFO, "db %d, user %s, prefix '%s'", c->url.db,
                              c->url.user ? c->url.user : "default", c->url.prefix);
    if (rc == DLOCK_OK && role[0])
        rc = dlock__check_add(out, "role", master ? DLOCK_CHECK_OK : DLOCK_CHECK_FAIL,
                              master ? "master" : "%s: locks must be taken on the master", role);
    if (rc == DLOCK_OK && aof[0])
        rc = dlock__check_add(out, "persistence", strcmp(aof, "1") == 0 ? DLOCK_CHECK_OK : DLOCK_CHECK_WARN,
                              strcmp(aof, "1") == 0
                                  ? "appendonly yes: fences and run history survive a restart"
                                  : "appendonly no: a restart goes back to the last snapshot (%s changes since): run"
                                    " records and run history since are lost, and a lock held then is free"
                                    " (fences stay above the server's clock; appendonly yes)",
                              rdb_changes[0] ? rdb_changes : "?");
    if (rc == DLOCK_OK && policy[0])
        rc = dlock__check_add(out, "maxmemory-policy", evicts ? DLOCK_CHECK_WARN : DLOCK_CHECK_OK,
                              evicts ? "%s: the server may evict a held lock's key under memory pressure"
                                     : "%s: held locks are not evicted",
                              policy);
    if (rc == DLOCK_OK)
        rc = right_item(out, "acl-scripts", r[2], DLOCK_CHECK_FAIL, "EVAL allowed (acquire, extend, release)",
                        "EVAL refused: no lock can be taken");
    if (rc == DLOCK_OK)
        rc = right_item(out, "acl-channels", r[1], DLOCK_CHECK_WARN,
                        "PUBLISH allowed on the prefix's channels (a release wakes its waiters at once)",
                        "PUBLISH refused on the prefix's channels: waiters fall back to timed polls");
    if (rc == DLOCK_OK)
        rc = right_item(out, "history", r[3], DLOCK_CHECK_WARN, "lists allowed (run history: LPUSH, LTRIM, LRANGE)",
                        "lists refused: dlock run cannot keep its run history");
    free_replies(r, 4);
    return rc;
}
