/*
 * The etcd backend's operations: who holds a lock, the list of held locks,
 * breaking one, the store's clock, and the run records that only the holder
 * may read and write (transactions guarded on the own key's creation
 * revision).
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"

/* --- reading a lock ------------------------------------------------------------------- */

struct holding {
    char key[DLOCK_ETCD_KEY_MAX];
    char value[512];
    int64_t create, lease;
};

static void read_kv(json_object *kv, struct holding *h)
{
    if (dlock__etcd_get_bytes(kv, "key", h->key, sizeof h->key) < 0)
        h->key[0] = '\0';
    if (dlock__etcd_get_bytes(kv, "value", h->value, sizeof h->value) < 0)
        h->value[0] = '\0';
    h->create = dlock__etcd_get_i64(kv, "create_revision", 0);
    h->lease = dlock__etcd_get_i64(kv, "lease", 0);
}

/* The range of the keys that start with `from` (values included), sorted
 * by creation when by_create, else by key. */
static int range_prefix(etcd_conn *c, const char *from, int by_create, struct dlock_call *call, json_object **reply)
{
    char to[DLOCK_ETCD_KEY_MAX];
    size_t flen = strlen(from), tlen = dlock__etcd_range_end(from, flen, to);
    json_object *req = dlock__etcd_range_req(from, flen, to, tlen, 0);
    if (!by_create) {
        dlock__etcd_add_str(req, "sort_order", "NONE");
        dlock__etcd_add_str(req, "sort_target", "KEY");
    }
    return dlock__etcd_post(c, "kv/range", req, dlock__etcd_deadline(call), 0, reply, NULL);
}

/* The holder of `name` (the lowest creation revision): 1, 0 free, <0. */
static int read_holder(etcd_conn *c, const char *name, struct dlock_call *call, struct holding *h)
{
    memset(h, 0, sizeof *h);
    char from[DLOCK_ETCD_KEY_MAX];
    dlock__etcd_name_prefix(c->url.prefix, name, from);
    json_object *reply = NULL;
    int rc = range_prefix(c, from, 1, call, &reply);
    if (rc != DLOCK_OK)
        return rc;
    json_object *kvs = dlock__etcd_get(reply, "kvs");
    size_t n = kvs && json_object_get_type(kvs) == json_type_array ? json_object_array_length(kvs) : 0;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        struct holding one;
        read_kv(json_object_array_get_idx(kvs, i), &one);
        if (!found || one.create < h->create)
            *h = one;
        found = 1;
    }
    json_object_put(reply);
    return found;
}

/* "host=H pid=P since=MS" (dlock__etcd_holder_value); anything else: 0. */
static int parse_value(const char *value, char *host, size_t hostlen, long long *pid, long long *since_ms)
{
    const char *p = strstr(value, " pid="), *s = strstr(value, " since=");
    if (strncmp(value, "host=", 5) != 0 || !p || !s || s < p)
        return 0;
    snprintf(host, hostlen, "%.*s", (int)(p - value - 5), value + 5);
    *pid = strtoll(p + 5, NULL, 10);
    *since_ms = strtoll(s + 7, NULL, 10);
    return 1;
}

int dlock__etcd_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    struct holding h;
    int held = read_holder(c, name, call, &h);
    if (held <= 0)
        return held;
    char host[256], text[DLOCK_ETCD_KEY_MAX + 200];
    long long pid = 0, since_ms = 0;
    if (parse_value(h.value, host, sizeof host, &pid, &since_ms)) {
        char since[32];
        dlock__utc_text(since, sizeof since, since_ms);
        snprintf(text, sizeof text, "host=%s pid=%lld since=%s fence=%" PRId64 " lease=%" PRIx64, host, pid, since,
                 h.create, (uint64_t)h.lease);
    } else { /* a key another client wrote (etcdctl lock leaves the value empty) */
        snprintf(text, sizeof text, "key=%s fence=%" PRId64 " lease=%" PRIx64, h.key, h.create, (uint64_t)h.lease);
    }
    dlock__copy_text(buf, buflen, text);
    return 1;
}

/* The Date header of the last answer, as Unix ms (whole seconds). */
static int answer_time(etcd_conn *c, int64_t *unix_ms)
{
    time_t t = c->date[0] ? curl_getdate(c->date, NULL) : (time_t)-1;
    if (t == (time_t)-1)
        return dlock__error(DLOCK_EBACKEND, "etcd's answer had no Date header to read its clock from");
    *unix_ms = (int64_t)t * 1000;
    return DLOCK_OK;
}

int dlock__etcd_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    json_object *body = dlock__etcd_obj(), *reply = NULL;
    dlock__etcd_add_bytes(body, "key", c->url.prefix, strlen(c->url.prefix));
    json_object_object_add(body, "count_only", json_object_new_boolean(1));
    int rc = dlock__etcd_post(c, "kv/range", body, dlock__etcd_deadline(call), 0, &reply, NULL);
    if (rc != DLOCK_OK)
        return rc;
    json_object_put(reply);
    return answer_time(c, unix_ms);
}

/* --- list ------------------------------------------------------------------------------ */

/* The seconds left on a lease, -1 unknown or gone. */
static int64_t lease_left(etcd_conn *c, int64_t lease, struct dlock_call *call)
{
    json_object *body = dlock__etcd_obj(), *reply = NULL;
    dlock__etcd_add_i64(body, "ID", lease);
    if (dlock__etcd_post(c, "lease/timetolive", body, dlock__etcd_deadline(call), 0, &reply, NULL) != DLOCK_OK) {
        dlock__clear_error();
        return -1;
    }
    int64_t ttl = dlock__etcd_get_i64(reply, "TTL", -1);
    json_object_put(reply);
    return ttl;
}

/* The name of a lock key "PREFIX/NAME/LEASEID" into name; 0 not one. */
static int key_name(const etcd_conn *c, const char *key, char *name, size_t *name_end)
{
    size_t plen = strlen(c->url.prefix);
    if (strncmp(key, c->url.prefix, plen) != 0 || key[plen] != '/')
        return 0;
    const char *start = key + plen + 1, *slash = strrchr(start, '/');
    if (!slash || !slash[1] || slash[1 + strspn(slash + 1, "0123456789abcdef")] != '\0')
        return 0;
    *name_end = (size_t)(slash - key);
    return dlock__etcd_unescape_name(start, (size_t)(slash - start), name) == DLOCK_OK;
}

static int add_entry(etcd_conn *c, const struct holding *h, const char *name, int64_t now_ms,
                     struct dlock_list *list, struct dlock_call *call)
{
    char host[256] = "", holder[DLOCK_ETCD_KEY_MAX + 100];
    long long pid = 0, since_ms = -1;
    int ours = parse_value(h->value, host, sizeof host, &pid, &since_ms);
    snprintf(holder, sizeof holder, ours ? "host=%s pid=%lld" : "key=%s", ours ? host : h->key, pid);
    int64_t left = h->lease ? lease_left(c, h->lease, call) : -1;
    struct dlock_list_entry e = {
        .name = dlock__valid_utf8(name, strlen(name)) ? name : NULL,
        .key = h->key,
        .holder = holder,
        .host = ours ? host : NULL,
        .pid = ours ? pid : 0,
        .since_ms = ours ? since_ms : -1,
        .expires_ms = left >= 0 ? now_ms + left * 1000 : -1,
        .fence = (uint64_t)h->create,
    };
    return dlock__list_add(list, &e);
}

int dlock__etcd_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    char from[DLOCK_ETCD_KEY_MAX];
    size_t n = (size_t)snprintf(from, sizeof from, "%s/", c->url.prefix);
    dlock__etcd_escape_name(prefix, from + n);
    json_object *reply = NULL;
    int rc = range_prefix(c, from, 0, call, &reply);
    if (rc != DLOCK_OK)
        return rc;
    int64_t now_ms = 0;
    if (answer_time(c, &now_ms) != DLOCK_OK)
        dlock__clear_error();
    json_object *kvs = dlock__etcd_get(reply, "kvs");
    size_t count = kvs && json_object_get_type(kvs) == json_type_array ? json_object_array_length(kvs) : 0;
    /* Keys come in key order: those of one name are next to each other. */
    struct holding best, one;
    char name[DLOCK_ETCD_KEY_MAX], best_name[DLOCK_ETCD_KEY_MAX];
    size_t end = 0, best_end = 0;
    int have = 0;
    for (size_t i = 0; rc == DLOCK_OK && i <= count; i++) {
        int valid = 0;
        if (i < count) {
            read_kv(json_object_array_get_idx(kvs, i), &one);
            valid = key_name(c, one.key, name, &end);
            if (!valid)
                continue;
        }
        int same = valid && have && end == best_end && strncmp(one.key, best.key, end) == 0;
        if (have && !same)
            rc = add_entry(c, &best, best_name, now_ms, list, call);
        if (valid && (!same || one.create < best.create)) {
            best = one;
            best_end = end;
            snprintf(best_name, sizeof best_name, "%s", name);
            have = 1;
        }
    }
    json_object_put(reply);
    return rc;
}

int dlock__etcd_break(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    struct holding h;
    int held = read_holder(c, name, call, &h);
    if (held <= 0)
        return held;
    json_object *txn = dlock__etcd_txn(dlock__etcd_array(dlock__etcd_cmp_create(h.key, h.create)),
                                       dlock__etcd_array(dlock__etcd_op_delete(h.key)), NULL);
    json_object *reply = NULL;
    int rc = dlock__etcd_post(c, "kv/txn", txn, dlock__etcd_deadline(call), 0, &reply, NULL);
    if (rc != DLOCK_OK)
        return rc;
    int broken = json_object_get_boolean(dlock__etcd_get(reply, "succeeded"));
    json_object_put(reply);
    if (broken && h.lease) { /* its holder's next keep-alive then fails too */
        json_object *body = dlock__etcd_obj();
        dlock__etcd_add_i64(body, "ID", h.lease);
        if (dlock__etcd_post(c, "lease/revoke", body, dlock__etcd_deadline(call), 0, &reply, NULL) == DLOCK_OK)
            json_object_put(reply);
        else
            dlock__clear_error();
    }
    return broken;
}

/* --- run records ------------------------------------------------------------------------ */

/* A transaction guarded on the own key, with one op: its answer's first
 * response (*reply to put), or DLOCK_ELOST when the key is not ours. */
static int guarded(etcd_conn *c, etcd_lock *lock, const char *name, json_object *op, struct dlock_call *call,
                   json_object **reply, json_object **response)
{
    json_object *txn =
        dlock__etcd_txn(dlock__etcd_array(dlock__etcd_cmp_create(lock->key, (int64_t)lock->base.fence)),
                        dlock__etcd_array(op), NULL);
    int rc = dlock__etcd_post(c, "kv/txn", txn, dlock__etcd_deadline(call), 0, reply, NULL);
    if (rc != DLOCK_OK)
        return rc;
    if (!json_object_get_boolean(dlock__etcd_get(*reply, "succeeded"))) {
        json_object_put(*reply);
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its run record was not touched", name);
    }
    *response = dlock__etcd_txn_response(*reply, 0);
    return DLOCK_OK;
}

int dlock__etcd_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                           struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    char key[DLOCK_ETCD_KEY_MAX];
    size_t klen = dlock__etcd_record_key(c->url.prefix, name, key);
    json_object *reply = NULL, *response = NULL;
    int rc = guarded(c, etcd_lock_of(held), name, dlock__etcd_op_range(key, klen, NULL, 0, 0), call, &reply,
                     &response);
    if (rc != DLOCK_OK)
        return rc;
    json_object *kvs = dlock__etcd_get(response, "kvs");
    char value[32] = "";
    if (kvs && json_object_get_type(kvs) == json_type_array && json_object_array_length(kvs) > 0 &&
        dlock__etcd_get_bytes(json_object_array_get_idx(kvs, 0), "value", value, sizeof value) < 0)
        value[0] = '\0';
    *slot = strtoll(value, NULL, 10);
    json_object_put(reply);
    return DLOCK_OK;
}

int dlock__etcd_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                           struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    char key[DLOCK_ETCD_KEY_MAX], value[32];
    dlock__etcd_record_key(c->url.prefix, name, key);
    snprintf(value, sizeof value, "%" PRId64, slot);
    json_object *reply = NULL, *response = NULL;
    int rc = guarded(c, etcd_lock_of(held), name, dlock__etcd_op_put(key, value, 0, 0), call, &reply, &response);
    if (rc == DLOCK_OK)
        json_object_put(reply);
    return rc;
}
