/*
 * etcd run history and the preflight.
 *
 * The history of a name is the keys "PREFIX!history/NAME/<end_ms>-<random>"
 * (NAME escaped as in the lock keys, so no name's range holds another's, and
 * the range sits outside "PREFIX/" that lists the locks and outside
 * "PREFIX!record/"), one per run, without a lease.  The value is the run:
 *   "<start_ms> <end_ms> <pid> <exit_status> <fence> <outcome> <host>"
 * (exit_status -1: no job ran; fence and pid 0: none; the host last, as it
 * may hold a space).  Runs are ordered by their keys' creation revision,
 * which etcd gives every put in commit order, so the key's own name only
 * has to be unique.
 *
 * An add is one txn: the put, and the deletes of the oldest runs beyond
 * `keep`, each guarded on its creation revision (read just before: the
 * oldest TRIM_MAX keys and the range's count).  A concurrent add that
 * deleted one of them first makes the guard fail: the add looks again.  A
 * read is one range sorted by creation, newest first, limited to `max`;
 * a value that does not parse is skipped.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "backend.h"

#define TRIM_MAX 16 /* deletes per txn (etcd allows 128 ops); more go in the next adds */
#define RUN_MAX 600

/* "PREFIX!history/NAME/": the range of one name's runs. */
static size_t history_prefix(const etcd_conn *c, const char *name, char *out)
{
    size_t n = (size_t)snprintf(out, DLOCK_ETCD_KEY_MAX, "%s!history/", c->url.prefix);
    n += dlock__etcd_escape_name(name, out + n);
    out[n++] = '/';
    out[n] = '\0';
    return n;
}

static int refused(etcd_conn *c, const char *doing)
{
    if (c->grpc_code == GRPC_PERMISSION_DENIED)
        return dlock__error(DLOCK_EBACKEND,
                            "%s: this etcd user may not write or read '%s!history/' (etcdctl role grant-permission"
                            " ROLE --prefix=true readwrite %s)",
                            doing, c->url.prefix, c->url.prefix);
    return DLOCK_EBACKEND; /* the text of dlock__etcd_post stands */
}

/* The oldest TRIM_MAX keys of the range (by creation) and the range's
 * count: the reply (json_object_put it), kvs and count out. */
static int oldest_runs(etcd_conn *c, const char *from, size_t flen, struct dlock_call *call, json_object **reply,
                       json_object **kvs, int64_t *count)
{
    char to[DLOCK_ETCD_KEY_MAX];
    size_t tlen = dlock__etcd_range_end(from, flen, to);
    json_object *req = dlock__etcd_range_req(from, flen, to, tlen, 1);
    dlock__etcd_add_i64(req, "limit", TRIM_MAX);
    int rc = dlock__etcd_post(c, "kv/range", req, dlock__etcd_deadline(call), 0, reply, NULL);
    if (rc != DLOCK_OK)
        return rc;
    *kvs = dlock__etcd_get(*reply, "kvs");
    if (*kvs && json_object_get_type(*kvs) != json_type_array)
        *kvs = NULL;
    *count = dlock__etcd_get_i64(*reply, "count", 0);
    return DLOCK_OK;
}

int dlock__etcd_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                            unsigned keep, struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    char from[DLOCK_ETCD_KEY_MAX], key[DLOCK_ETCD_KEY_MAX + 40], value[RUN_MAX];
    size_t flen = history_prefix(c, name, from);
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        nonce = (uint64_t)dlock__now_ms() ^ ((uint64_t)run->pid << 32);
    snprintf(key, sizeof key, "%s%016" PRId64 "-%016" PRIx64, from, run->end_ms, nonce);
    dlock__history_to_text(run, value, sizeof value);
    if (keep < 1)
        keep = 1;
    for (int attempt = 0; attempt < 8; attempt++) {
        json_object *old = NULL, *kvs = NULL;
        int64_t count = 0;
        int rc = oldest_runs(c, from, flen, call, &old, &kvs, &count);
        if (rc != DLOCK_OK)
            return rc == DLOCK_EBACKEND ? refused(c, "cannot record the run") : rc;
        int64_t excess = count + 1 > (int64_t)keep ? count + 1 - (int64_t)keep : 0;
        size_t listed = kvs ? json_object_array_length(kvs) : 0;
        size_t n = (size_t)excess < listed ? (size_t)excess : listed;
        json_object *compare = json_object_new_array(), *success = json_object_new_array();
        json_object_array_add(success, dlock__etcd_op_put(key, value, 0, 0));
        for (size_t i = 0; i < n; i++) {
            json_object *kv = json_object_array_get_idx(kvs, i);
            char old_key[DLOCK_ETCD_KEY_MAX + 40];
            if (dlock__etcd_get_bytes(kv, "key", old_key, sizeof old_key) < 0)
                continue; /* not a key we could have written: left alone */
            json_object_array_add(compare, dlock__etcd_cmp_create(old_key, dlock__etcd_get_i64(kv, "create_revision", 0)));
            json_object_array_add(success, dlock__etcd_op_delete(old_key));
        }
        json_object_put(old);
        json_object *reply = NULL;
        rc = dlock__etcd_post(c, "kv/txn", dlock__etcd_txn(compare, success, NULL), dlock__etcd_deadline(call), 0,
                              &reply, NULL);
        if (rc != DLOCK_OK)
            return rc == DLOCK_EBACKEND ? refused(c, "cannot record the run") : rc;
        int done = json_object_get_boolean(dlock__etcd_get(reply, "succeeded"));
        json_object_put(reply);
        if (done)
            return DLOCK_OK;
        /* an old run went meanwhile (another add trimmed it): look again */
    }
    return dlock__error(DLOCK_EBUSY, "the run history of '%s' changed too often to add to it", name);
}

int dlock__etcd_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                             struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    char from[DLOCK_ETCD_KEY_MAX], to[DLOCK_ETCD_KEY_MAX];
    size_t flen = history_prefix(c, name, from), tlen = dlock__etcd_range_end(from, flen, to);
    json_object *req = dlock__etcd_range_req(from, flen, to, tlen, 0), *reply = NULL;
    dlock__etcd_add_str(req, "sort_order", "DESCEND");
    dlock__etcd_add_i64(req, "limit", (int64_t)max);
    int rc = dlock__etcd_post(c, "kv/range", req, dlock__etcd_deadline(call), 0, &reply, NULL);
    if (rc != DLOCK_OK)
        return rc == DLOCK_EBACKEND ? refused(c, "cannot read the run history") : rc;
    json_object *kvs = dlock__etcd_get(reply, "kvs");
    size_t n = kvs && json_object_get_type(kvs) == json_type_array ? json_object_array_length(kvs) : 0;
    for (size_t i = 0; i < n && rc == DLOCK_OK; i++) {
        char text[RUN_MAX + 8];
        struct dlock_history_entry e;
        if (dlock__etcd_get_bytes(json_object_array_get_idx(kvs, i), "value", text, sizeof text) >= 0 &&
            dlock__history_from_text(text, &e))
            rc = dlock__history_add(out, &e);
    }
    json_object_put(reply);
    return rc;
}

/* --- the preflight ------------------------------------------------------------------ */

/* A uint64 field that the gateway writes as a decimal string: 0 absent. */
static uint64_t get_u64(json_object *o, const char *field)
{
    json_object *v = dlock__etcd_get(o, field);
    if (!v)
        return 0;
    if (json_object_get_type(v) == json_type_int)
        return (uint64_t)json_object_get_int64(v);
    const char *s = json_object_get_string(v);
    return s ? strtoull(s, NULL, 10) : 0;
}

static int server_items(etcd_conn *c, struct dlock_call *call, struct dlock_check_list *out)
{
    json_object *reply = NULL;
    int rc = dlock__etcd_post(c, "maintenance/status", dlock__etcd_obj(), dlock__etcd_deadline(call), 0, &reply, NULL);
    if (rc != DLOCK_OK) {
        if (rc == DLOCK_ECONN)
            return rc;
        char why[256];
        dlock__copy_text(why, sizeof why, dlock_last_error());
        dlock__clear_error();
        return dlock__check_add(out, "server", DLOCK_CHECK_WARN, "etcd, its status is not shown to this user: %s", why);
    }
    json_object *version = dlock__etcd_get(reply, "version");
    uint64_t leader = get_u64(reply, "leader");
    uint64_t member = get_u64(dlock__etcd_get(reply, "header"), "member_id");
    uint64_t cluster = get_u64(dlock__etcd_get(reply, "header"), "cluster_id");
    const struct dlock_etcd_endpoint *e = &c->url.endpoints[c->current < c->url.count ? c->current : 0];
    rc = dlock__check_add(out, "server", DLOCK_CHECK_INFO, "etcd %s, member %" PRIx64 " at %s:%d answering, cluster %" PRIx64,
                          version ? json_object_get_string(version) : "?", member, e->host, e->port, cluster);
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "leader", leader ? DLOCK_CHECK_OK : DLOCK_CHECK_FAIL,
                              leader ? "member %" PRIx64 "%s" : "none: this member has no leader (no quorum?)", leader,
                              leader == member ? " (the member answering)" : "");
    json_object_put(reply);
    return rc;
}

/* Put and delete a probe key: ZOK-like 0, else the gRPC code (-1: no
 * answer, the text set). */
static int try_write(etcd_conn *c, const char *key, struct dlock_call *call)
{
    json_object *reply = NULL;
    int rc = dlock__etcd_post(c, "kv/txn",
                              dlock__etcd_txn(NULL, dlock__etcd_array(dlock__etcd_op_put(key, "dlock check", 0, 0)), NULL),
                              dlock__etcd_deadline(call), 0, &reply, NULL);
    if (rc == DLOCK_OK) {
        json_object_put(reply);
        rc = dlock__etcd_post(c, "kv/txn", dlock__etcd_txn(NULL, dlock__etcd_array(dlock__etcd_op_delete(key)), NULL),
                              dlock__etcd_deadline(call), 0, &reply, NULL);
        if (rc == DLOCK_OK)
            json_object_put(reply);
    }
    if (rc == DLOCK_OK)
        return 0;
    if (rc != DLOCK_EBACKEND || !c->grpc_code)
        return -1;
    dlock__clear_error();
    return c->grpc_code;
}

static int rights_items(etcd_conn *c, struct dlock_call *call, struct dlock_check_list *out)
{
    /* "%00" is never in an escaped name: the probes are in no lock's
     * range, in no name's history, and dlock list skips them. */
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        nonce = (uint64_t)dlock__now_ms();
    char locks[DLOCK_ETCD_KEY_MAX + 40], runs[DLOCK_ETCD_KEY_MAX + 40];
    snprintf(locks, sizeof locks, "%s/%%00check/%016" PRIx64, c->url.prefix, nonce);
    snprintf(runs, sizeof runs, "%s!history/%%00check/%016" PRIx64, c->url.prefix, nonce);
    int lock_rc = try_write(c, locks, call);
    char why[256] = "";
    if (lock_rc == -1)
        dlock__copy_text(why, sizeof why, dlock_last_error());
    int rc = dlock__check_add(out, "rights", lock_rc == 0 ? DLOCK_CHECK_OK : DLOCK_CHECK_FAIL,
                              lock_rc == 0 ? "this user may put and delete keys under '%s/' (locks)%s"
                                           : "this user may not write keys under '%s/' (%s): no lock can be taken",
                              c->url.prefix,
                              lock_rc == 0            ? ""
                              : lock_rc == -1         ? why
                              : lock_rc == GRPC_PERMISSION_DENIED ? "permission denied"
                                                                  : "refused");
    int runs_rc = lock_rc == 0 ? try_write(c, runs, call) : lock_rc;
    if (runs_rc == -1)
        dlock__copy_text(why, sizeof why, dlock_last_error());
    if (rc == DLOCK_OK && runs_rc == 0)
        rc = dlock__check_add(out, "history", DLOCK_CHECK_OK, "keys under '%s!history/', the newest %d runs of each name",
                              c->url.prefix, DLOCK_HISTORY_KEEP);
    else if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "history", DLOCK_CHECK_WARN,
                              "this user may not write keys under '%s!history/' (%s): dlock run cannot keep its run"
                              " history (etcdctl role grant-permission ROLE --prefix=true readwrite %s!history/)",
                              c->url.prefix,
                              runs_rc == -1                       ? why
                              : runs_rc == GRPC_PERMISSION_DENIED ? "permission denied"
                                                                  : "refused",
                              c->url.prefix);
    dlock__clear_error();
    return rc;
}

/* The shortest lease the cluster grants: ask for 1 s and see (then revoke). */
static int lease_item(etcd_conn *c, struct dlock_call *call, struct dlock_check_list *out)
{
    json_object *body = dlock__etcd_obj(), *reply = NULL;
    dlock__etcd_add_i64(body, "TTL", 1);
    if (dlock__etcd_post(c, "lease/grant", body, dlock__etcd_deadline(call), 0, &reply, NULL) != DLOCK_OK) {
        char why[256];
        dlock__copy_text(why, sizeof why, dlock_last_error());
        dlock__clear_error();
        return dlock__check_add(out, "lease", DLOCK_CHECK_FAIL, "cannot grant a lease: %s (every lock needs one)", why);
    }
    int64_t id = dlock__etcd_get_i64(reply, "ID", 0), ttl = dlock__etcd_get_i64(reply, "TTL", 0);
    json_object_put(reply);
    if (id) {
        body = dlock__etcd_obj();
        dlock__etcd_add_i64(body, "ID", id);
        if (dlock__etcd_post(c, "lease/revoke", body, dlock__etcd_deadline(call), 0, &reply, NULL) == DLOCK_OK)
            json_object_put(reply);
        else
            dlock__clear_error(); /* it runs out in a second or two anyway */
    }
    return dlock__check_add(out, "lease", DLOCK_CHECK_OK,
                            "leases are whole seconds, at least %" PRId64 " s here: a TTL is rounded up to them on the"
                            " server (the holder's own clock keeps the TTL asked)",
                            ttl > 0 ? ttl : 1);
}

int dlock__etcd_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out,
                      struct dlock_call *call)
{
    (void)name; /* one mode: the core asks for the holder */
    etcd_conn *c = etcd_of(conn);
    int rc = server_items(c, call, out);
    if (rc == DLOCK_OK) {
        char endpoints[1024] = "";
        for (size_t i = 0; i < c->url.count; i++)
            snprintf(endpoints + strlen(endpoints), sizeof endpoints - strlen(endpoints), "%s%s:%d", i ? "," : "",
                     c->url.endpoints[i].host, c->url.endpoints[i].port);
        rc = dlock__check_add(out, "database", DLOCK_CHECK_INFO, "endpoints %s%s, prefix '%s', %s%s", endpoints,
                              c->url.tls ? " (HTTPS)" : "", c->url.prefix, c->url.user ? "user " : "no user",
                              c->url.user ? c->url.user : "");
    }
    if (rc == DLOCK_OK)
        rc = lease_item(c, call, out);
    if (rc == DLOCK_OK)
        rc = rights_items(c, call, out);
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "settings", DLOCK_CHECK_INFO,
                              "etcd shows no settings to clients (WAL fsync, election timeout, auto-compaction):"
                              " docs/etcd.md says what to set");
    return rc;
}
