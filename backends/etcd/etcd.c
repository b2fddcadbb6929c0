/*
 * etcd backend: a lock is a key PREFIX/NAME/LEASEID on a lease of its own;
 * of the keys under PREFIX/NAME/, the one with the lowest creation revision
 * holds, and its creation revision is the fencing token.  A waiter watches
 * its predecessor's key for its deletion, keeps its own lease alive, and
 * looks at its own key again before it answers granted.  Extend is a lease
 * keep-alive and a check that the own key still has the own creation
 * revision; release deletes the own key in a transaction guarded on it,
 * then revokes the lease.  docs/etcd.md tells the whole story.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"

#define TICK_MAX_MS 2000     /* a waiter keeps its lease alive and looks again at least this often */
#define CLEANUP_MS 1000      /* the bound on revoking a lease nobody will use */
#define AGAIN 1              /* the own key is gone: queue again */

/* The lease asked for ttl_ms: whole seconds, rounded up (the server may
 * grant more: its minimum; the core keeps ttl_ms, the shorter). */
static int64_t lease_seconds(uint32_t ttl_ms)
{
    return ((int64_t)ttl_ms + 999) / 1000;
}

void dlock__etcd_holder_value(char *out, size_t outlen)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(out, outlen, "host=%s pid=%ld since=%lld", dlock__hostname(), (long)getpid(),
             (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
}

static int grant(etcd_conn *c, int64_t seconds, int64_t deadline_ms, int cancellable, int64_t *lease,
                 int64_t *sent_ms)
{
    json_object *body = dlock__etcd_obj(), *reply = NULL;
    dlock__etcd_add_i64(body, "TTL", seconds);
    int rc = dlock__etcd_post(c, "lease/grant", body, deadline_ms, cancellable, &reply, sent_ms);
    if (rc != DLOCK_OK)
        return rc;
    *lease = dlock__etcd_get_i64(reply, "ID", 0);
    json_object_put(reply);
    return *lease ? DLOCK_OK : dlock__error(DLOCK_EBACKEND, "etcd granted a lease without an ID");
}

/* Best effort: a lease nobody renews expires anyway. */
static void revoke_lease(etcd_conn *c, int64_t lease, int64_t deadline_ms)
{
    json_object *body = dlock__etcd_obj(), *reply = NULL;
    dlock__etcd_add_i64(body, "ID", lease);
    if (dlock__etcd_post(c, "lease/revoke", body, deadline_ms, 0, &reply, NULL) == DLOCK_OK)
        json_object_put(reply);
}

static json_object *keep_alive_req(int64_t lease)
{
    json_object *body = dlock__etcd_obj();
    dlock__etcd_add_i64(body, "ID", lease);
    return body;
}

/* A keep-alive's answer: DLOCK_OK, or DLOCK_ELOST (the lease is gone). */
static int kept_alive(json_object *reply)
{
    return dlock__etcd_get_i64(dlock__etcd_get(reply, "result"), "TTL", 0) > 0 ? DLOCK_OK : DLOCK_ELOST;
}

/* DLOCK_OK, DLOCK_ELOST (the lease is gone), or an error. */
static int keep_alive(etcd_conn *c, int64_t lease, int64_t deadline_ms, int cancellable, int64_t *sent_ms)
{
    json_object *reply = NULL;
    int rc = dlock__etcd_post(c, "lease/keepalive", keep_alive_req(lease), deadline_ms, cancellable, &reply, sent_ms);
    if (rc != DLOCK_OK)
        return rc;
    rc = kept_alive(reply);
    json_object_put(reply);
    return rc;
}

/* Where the own key stands among a lock's contenders. */
struct place {
    int64_t revision;  /* the store's revision when they were read */
    int own_found;
    int64_t own_create;
    int64_t own_lease;
    int lowest;        /* the own key has the lowest creation revision: it holds */
    char pred[DLOCK_ETCD_KEY_MAX]; /* else the key just before it */
};

/* The own key holds when no contender was created before it. */
static int holds(int64_t own_create, int64_t other_create)
{
    return own_create <= other_create;
}

/* Read a range answer (kvs with keys and create revisions). */
static void read_place(json_object *range, const char *own, struct place *p)
{
    json_object *kvs = dlock__etcd_get(range, "kvs");
    size_t n = kvs && json_object_get_type(kvs) == json_type_array ? json_object_array_length(kvs) : 0;
    char key[DLOCK_ETCD_KEY_MAX];
    p->own_found = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *kv = json_object_array_get_idx(kvs, i);
        if (dlock__etcd_get_bytes(kv, "key", key, sizeof key) >= 0 && strcmp(key, own) == 0) {
            p->own_found = 1;
            p->own_create = dlock__etcd_get_i64(kv, "create_revision", 0);
            p->own_lease = dlock__etcd_get_i64(kv, "lease", 0);
        }
    }
    p->lowest = p->own_found;
    int64_t pred_create = 0;
    p->pred[0] = '\0';
    for (size_t i = 0; p->own_found && i < n; i++) {
        json_object *kv = json_object_array_get_idx(kvs, i);
        int64_t create = dlock__etcd_get_i64(kv, "create_revision", 0);
        if (dlock__etcd_get_bytes(kv, "key", key, sizeof key) < 0 || strcmp(key, own) == 0)
            continue;
        if (!holds(p->own_create, create)) {
            p->lowest = 0;
            if (create > pred_create) {
                pred_create = create;
                snprintf(p->pred, sizeof p->pred, "%s", key);
            }
        }
    }
}

/* The range of a lock's contenders (keys and revisions only). */
static json_object *contenders(etcd_conn *c, const char *name)
{
    char from[DLOCK_ETCD_KEY_MAX], to[DLOCK_ETCD_KEY_MAX];
    size_t flen = dlock__etcd_name_prefix(c->url.prefix, name, from);
    size_t tlen = dlock__etcd_range_end(from, flen, to);
    return dlock__etcd_range_req(from, flen, to, tlen, 1);
}

static json_object *wrap(const char *field, json_object *inner)
{
    json_object *o = dlock__etcd_obj();
    json_object_object_add(o, field, inner);
    return o;
}

/* Grant a lease and put the own key under it, then read the contenders (in
 * the same transaction).  call->lease_start_ms: the grant's send time.
 *
 * A cancel cuts both round trips short (no member answers, say): a lease
 * granted unbeknown to us has no key and ends by its TTL; a key put
 * unbeknown to us goes with the revoke below or, at the latest, with its
 * lease, as a crashed contender's does. */
static int enqueue(etcd_conn *c, etcd_lock *lock, const char *name, uint32_t ttl_ms, struct dlock_call *call,
                   struct place *p)
{
    int64_t deadline = dlock__etcd_deadline(call);
    lock->lease_ttl_s = lease_seconds(ttl_ms);
    int rc = grant(c, lock->lease_ttl_s, deadline, 1, &lock->lease, &call->lease_start_ms);
    if (rc == DLOCK_ECANCELED) {
        dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
        return DLOCK_ECANCELED;
    }
    if (rc != DLOCK_OK)
        return rc;
    dlock__etcd_lock_key(c->url.prefix, name, lock->lease, lock->key);
    char value[400];
    dlock__etcd_holder_value(value, sizeof value);
    /* A retry on another member after a lost answer finds the key there:
     * the failure branch reads the contenders all the same. */
    json_object *txn = dlock__etcd_txn(
        dlock__etcd_array(dlock__etcd_cmp_create(lock->key, 0)),
        dlock__etcd_array(dlock__etcd_op_put(lock->key, value, lock->lease, 0),
                          wrap("request_range", contenders(c, name))),
        dlock__etcd_array(wrap("request_range", contenders(c, name))));
    json_object *reply = NULL;
    if ((rc = dlock__etcd_post(c, "kv/txn", txn, deadline, 1, &reply, NULL)) != DLOCK_OK) {
        revoke_lease(c, lock->lease, dlock__now_ms() + CLEANUP_MS);
        if (rc == DLOCK_ECANCELED)
            dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
        return rc;
    }
    int succeeded = json_object_get_boolean(dlock__etcd_get(reply, "succeeded"));
    p->revision = dlock__etcd_get_i64(dlock__etcd_get(reply, "header"), "revision", 0);
    read_place(dlock__etcd_txn_response(reply, succeeded ? 1 : 0), lock->key, p);
    json_object_put(reply);
    if (!p->own_found) {
        revoke_lease(c, lock->lease, dlock__now_ms() + CLEANUP_MS);
        return dlock__error(DLOCK_EBACKEND, "etcd did not keep the lock's key '%s'", lock->key);
    }
    lock->base.fence = (uint64_t)p->own_create;
    return DLOCK_OK;
}

struct wait {
    const char *name;
    int64_t until_ms;  /* the end of the wait, INT64_MAX: none */
    int64_t tick_ms;   /* keep the lease alive and look again this often */
};

/* Keep the own lease alive and read the contenders again: DLOCK_OK (p
 * filled), AGAIN (the own key or lease is gone), or an error.
 *
 * The renewal and the read go out at once, on two connections (one round
 * trip from a wake to the answer, not two), and both must succeed.  In
 * whichever order the cluster serves them, a grant then stands on:
 *   - the read is linearizable: at some moment inside this call the own
 *     key existed with the own creation revision and no key created before
 *     it did.  Keys created before it can only disappear (a new key always
 *     gets a higher revision), so "none older" stays true from then on;
 *   - the renewal found the lease alive and ran it up to its full TTL no
 *     earlier than its send time, which is where the lease clock starts.
 * A key deleted after the read (a break) or a lease revoked after the
 * renewal is found by the next extend, as it would be after two requests
 * in sequence: neither order closes that window.
 * The read asks only for keys created up to the own one: the key before it
 * is all a waiter needs, whatever the number of waiters behind. */
static int renew_and_look(etcd_conn *c, etcd_lock *lock, const struct wait *w, struct place *p, int64_t *sent_ms)
{
    int64_t deadline = dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS;
    json_object *range = contenders(c, w->name);
    dlock__etcd_add_i64(range, "max_create_revision", (int64_t)lock->base.fence);
    json_object *reply[2];
    int rc = dlock__etcd_post_both(c, "lease/keepalive", keep_alive_req(lock->lease), "kv/range", range, deadline, 1,
                                   reply, sent_ms);
    if (rc != DLOCK_OK)
        return rc;
    rc = kept_alive(reply[0]);
    p->revision = dlock__etcd_get_i64(dlock__etcd_get(reply[1], "header"), "revision", 0);
    read_place(reply[1], lock->key, p);
    json_object_put(reply[0]);
    json_object_put(reply[1]);
    if (rc == DLOCK_ELOST || !p->own_found || p->own_create != (int64_t)lock->base.fence)
        return AGAIN;
    return DLOCK_OK;
}

/* Wait for the own turn: DLOCK_OK (call->lease_start_ms: the send time of
 * the keep-alive that confirmed it), AGAIN, DLOCK_EBUSY (the wait is over),
 * DLOCK_ECANCELED, or an error. */
static int wait_turn(etcd_conn *c, etcd_lock *lock, const struct wait *w, struct place *p, struct dlock_call *call)
{
    int64_t next_tick = dlock__now_ms() + w->tick_ms;
    for (;;) {
        if (!p->lowest) {
            int64_t end = next_tick < w->until_ms ? next_tick : w->until_ms;
            int woke = dlock__etcd_watch_delete(c, p->pred, p->revision + 1, end);
            if (woke == DLOCK_ECANCELED)
                return dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", w->name);
            int64_t now = dlock__now_ms();
            if (!woke && now >= w->until_ms)
                return DLOCK_EBUSY;
            next_tick = now + w->tick_ms;
        }
        /* Woken, due, or the lowest already: renew and look (at once).
         * When the own key is the lowest, that keep-alive confirms the
         * grant (one round trip from the predecessor's deletion to the
         * answer), and the own key must still be there and hold. */
        int64_t sent = 0;
        int rc = renew_and_look(c, lock, w, p, &sent);
        if (rc != DLOCK_OK)
            return rc;
        if (p->lowest) {
            call->lease_start_ms = sent;
            return DLOCK_OK;
        }
    }
}

static int etcd_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                        struct dlock_call *call, struct dlock_held **lock_out)
{
    etcd_conn *c = etcd_of(conn);
    etcd_lock *lock = calloc(1, sizeof *lock);
    if (!lock)
        return dlock__oom();
    int64_t lease_ms = lease_seconds(ttl_ms) * 1000 < ttl_ms ? lease_seconds(ttl_ms) * 1000 : ttl_ms;
    struct wait w = {name, wait_ms == DLOCK_WAIT_FOREVER ? INT64_MAX : dlock__now_ms() + wait_ms,
                     lease_ms / 3 < TICK_MAX_MS ? lease_ms / 3 : TICK_MAX_MS};
    if (w.tick_ms < 100)
        w.tick_ms = 100;
    int rc;
    for (;;) {
        struct place p;
        rc = enqueue(c, lock, name, ttl_ms, call, &p);
        if (rc != DLOCK_OK || p.lowest)
            break;
        rc = wait_ms == 0 ? DLOCK_EBUSY : wait_turn(c, lock, &w, &p, call);
        if (rc == DLOCK_OK)
            break;
        revoke_lease(c, lock->lease, dlock__now_ms() + CLEANUP_MS);
        if (rc != AGAIN)
            break;
        dlock__clear_error(); /* queue again, with a new lease and key */
    }
    if (rc == DLOCK_EBUSY)
        dlock__busy(name, wait_ms);
    if (rc == DLOCK_OK)
        *lock_out = &lock->base;
    else
        free(lock);
    return rc;
}

/* The own key, read alone: DLOCK_OK when it still has the own creation
 * revision and lease, else DLOCK_ELOST. */
static int check_own(etcd_conn *c, etcd_lock *lock, const char *name, int64_t deadline_ms)
{
    json_object *reply = NULL;
    int rc = dlock__etcd_post(c, "kv/range", dlock__etcd_range_req(lock->key, strlen(lock->key), NULL, 0, 1),
                              deadline_ms, 0, &reply, NULL);
    if (rc != DLOCK_OK)
        return rc;
    struct place p;
    read_place(reply, lock->key, &p);
    json_object_put(reply);
    if (!p.own_found || p.own_create != (int64_t)lock->base.fence || p.own_lease != lock->lease)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its key was deleted or replaced", name);
    return DLOCK_OK;
}

/* A new TTL: the own key moves to a new lease in one transaction guarded on
 * its creation revision; the old lease is then revoked. */
static int move_lease(etcd_conn *c, etcd_lock *lock, const char *name, uint32_t ttl_ms, struct dlock_call *call,
                      int64_t deadline)
{
    int64_t lease = 0, seconds = lease_seconds(ttl_ms);
    int rc = grant(c, seconds, deadline, 0, &lease, &call->lease_start_ms);
    if (rc != DLOCK_OK)
        return rc;
    json_object *txn = dlock__etcd_txn(dlock__etcd_array(dlock__etcd_cmp_create(lock->key, (int64_t)lock->base.fence)),
                                       dlock__etcd_array(dlock__etcd_op_put(lock->key, NULL, lease, 1)), NULL);
    json_object *reply = NULL;
    if ((rc = dlock__etcd_post(c, "kv/txn", txn, deadline, 0, &reply, NULL)) != DLOCK_OK) {
        revoke_lease(c, lease, dlock__now_ms() + CLEANUP_MS);
        return rc;
    }
    int moved = json_object_get_boolean(dlock__etcd_get(reply, "succeeded"));
    json_object_put(reply);
    revoke_lease(c, moved ? lock->lease : lease, deadline);
    if (!moved)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its key was deleted or replaced", name);
    lock->lease = lease;
    lock->lease_ttl_s = seconds;
    return DLOCK_OK;
}

static int etcd_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                       struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    etcd_lock *lock = etcd_lock_of(held);
    int64_t deadline = dlock__etcd_deadline(call);
    int rc;
    if (lease_seconds(ttl_ms) != lock->lease_ttl_s)
        rc = move_lease(c, lock, name, ttl_ms, call, deadline);
    else if ((rc = keep_alive(c, lock->lease, deadline, 0, &call->lease_start_ms)) == DLOCK_ELOST)
        rc = dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its lease expired or was revoked", name);
    if (rc != DLOCK_OK)
        return rc;
    return check_own(c, lock, name, deadline);
}

static int etcd_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    etcd_conn *c = etcd_of(conn);
    etcd_lock *lock = etcd_lock_of(held);
    int64_t deadline = dlock__etcd_deadline(call);
    json_object *txn = dlock__etcd_txn(dlock__etcd_array(dlock__etcd_cmp_create(lock->key, (int64_t)lock->base.fence)),
                                       dlock__etcd_array(dlock__etcd_op_delete(lock->key)), NULL);
    json_object *reply = NULL;
    int rc = dlock__etcd_post(c, "kv/txn", txn, deadline, 0, &reply, NULL);
    /* An attempt that timed out may have deleted the key already: the
     * retry then finds it gone.  That is taken as our own release. */
    int deleted = rc == DLOCK_OK && (json_object_get_boolean(dlock__etcd_get(reply, "succeeded")) || c->ambiguous);
    if (reply)
        json_object_put(reply);
    if (rc == DLOCK_OK)
        revoke_lease(c, lock->lease, deadline);
    free(lock);
    if (rc == DLOCK_OK && !deleted)
        rc = dlock__error(DLOCK_ELOST, "lock '%s' had already been lost: its key was deleted or its lease expired",
                          name);
    return rc;
}

static void etcd_cancel(struct dlock_conn *conn)
{
    uint64_t one = 1;
    if (write(etcd_of(conn)->cancel_fd, &one, sizeof one) < 0) {
    }
}

static void etcd_cancel_clear(struct dlock_conn *conn)
{
    uint64_t value;
    while (read(etcd_of(conn)->cancel_fd, &value, sizeof value) == (ssize_t)sizeof value) {
    }
}

static const char *const etcd_schemes[] = {"etcd", "etcds", NULL};

const struct dlock_backend dlock__backend_etcd = {
    .name = "etcd",
    .schemes = etcd_schemes,
    .connect = dlock__etcd_connect,
    .disconnect = dlock__etcd_disconnect,
    .acquire = etcd_acquire,
    .extend = etcd_extend,
    .release = etcd_release,
    .holder = dlock__etcd_holder,
    .cancel = etcd_cancel,
    .cancel_clear = etcd_cancel_clear,
    .list = dlock__etcd_list,
    .break_lock = dlock__etcd_break,
    .store_time = dlock__etcd_store_time,
    .clock_step_ms = 1000, /* the Date header */
    .record_get = dlock__etcd_record_get,
    .record_put = dlock__etcd_record_put,
    .history_add = dlock__etcd_history_add,
    .history_read = dlock__etcd_history_read,
    .check = dlock__etcd_check,
};
