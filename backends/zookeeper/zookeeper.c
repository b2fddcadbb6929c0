/*
 * ZooKeeper backend: the standard lock recipe on the single-threaded C
 * client.  Each contender makes an ephemeral sequential node in the lock's
 * folder (a container node); the lowest sequence holds; a waiter watches
 * only its predecessor.  The session timeout is the lease, and the fencing
 * token is the own node's creation zxid.  docs/zookeeper.md tells the whole
 * story; backend.h maps the files.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend.h"

static void zk_disconnect(struct dlock_conn *conn);

static int zk_connect(const char *url, struct dlock_conn **conn_out)
{
    struct dlock_zk_url parsed;
    int rc = dlock__zk_parse_url(url, &parsed);
    if (rc != DLOCK_OK)
        return rc;
    if ((rc = dlock__zk_load()) != DLOCK_OK) {
        dlock__zk_url_free(&parsed);
        return rc;
    }
    zk_conn *c = calloc(1, sizeof *c);
    if (!c) {
        dlock__zk_url_free(&parsed);
        return dlock__oom();
    }
    c->url = parsed;
    c->cloexec_fd = -1;
    /* With digest credentials, every node is the creator's alone ("auth"
     * scheme: the authenticated ids of the session that makes it). */
    static char world[] = "world", anyone[] = "anyone", auth[] = "auth", empty[] = "";
    c->acl_entry.perms = ZK_PERM_ALL;
    c->acl_entry.id.scheme = c->url.user ? auth : world;
    c->acl_entry.id.id = c->url.user ? empty : anyone;
    c->acl.count = 1;
    c->acl.data = &c->acl_entry;
    c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->cancel_fd < 0) {
        rc = dlock__error(DLOCK_ENOMEM, "eventfd: %s", strerror(errno));
        zk_disconnect(&c->base);
        return rc;
    }
    /* The session opens with the first call: its timeout is the first
     * lock's TTL. */
    *conn_out = &c->base;
    return DLOCK_OK;
}

static void zk_disconnect(struct dlock_conn *conn)
{
    zk_conn *c = zk_of(conn);
    if (!c)
        return;
    dlock__zk_session_end(c);
    if (c->cancel_fd >= 0)
        close(c->cancel_fd);
    dlock__zk_url_free(&c->url);
    free(c);
}

static void lock_free(zk_lock *lock)
{
    if (!lock)
        return;
    free(lock->path);
    free(lock->dir);
    free(lock);
}

/* --- acquire ------------------------------------------------------------------------- */

struct create_arg {
    const char *prefix_path; /* DIR/s<sid>- */
    const char *data;
};

static int send_create(zk_conn *c, struct zk_op *op, const void *arg)
{
    const struct create_arg *a = arg;
    return zoo_acreate2(c->zh, a->prefix_path, a->data, (int)strlen(a->data), &c->acl, ZK_EPHEMERAL_SEQUENTIAL,
                        dlock__zk_create_done, op);
}

static int send_container(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_acreate2(c->zh, arg, NULL, -1, &c->acl, ZK_CONTAINER, dlock__zk_create_done, op);
}

static int send_children(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_aget_children(c->zh, arg, 0, dlock__zk_strings_done, op);
}

static int send_exists(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_aexists(c->zh, arg, 0, dlock__zk_stat_done, op);
}

static int send_delete(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_adelete(c->zh, arg, -1, dlock__zk_void_done, op);
}

/* The lock's folder, and the folders above it the first time (a write
 * each: they are made only when the folder's parent is missing). */
static int make_dir(zk_conn *c, const char *dir, struct dlock_call *call)
{
    for (int attempt = 0;; attempt++) {
        int status = DLOCK_OK;
        struct zk_op *op = dlock__zk_call(c, send_container, dir, 1, call, &status, NULL);
        if (!op)
            return status;
        int zrc = op->rc;
        dlock__zk_op_free(op);
        if (zrc == ZOK || zrc == ZNODEEXISTS)
            return DLOCK_OK;
        if (zrc != ZNONODE || attempt > 0)
            return dlock__zk_error(zrc, "creating the lock's folder");
        int rc = dlock__zk_make_parents(c, dir, call);
        if (rc != DLOCK_OK)
            return rc;
    }
}

/* After a create whose answer was lost: the node, if it was made, is the one
 * in the folder whose name carries this session's id (no orphan is left to
 * hold or queue for the lock).  DLOCK_OK with lock->path set, or not found. */
static int find_own(zk_conn *c, zk_lock *lock, struct dlock_call *call, int *found)
{
    *found = 0;
    int status = DLOCK_OK;
    struct zk_op *op = dlock__zk_call(c, send_children, lock->dir, 1, call, &status, NULL);
    if (!op)
        return status;
    char mine[24];
    dlock__zk_node_prefix(c, mine);
    for (int i = 0; op->rc == ZOK && i < op->count && !*found; i++) {
        if (strncmp(op->children[i], mine, strlen(mine)) != 0)
            continue;
        size_t len = strlen(lock->dir) + strlen(op->children[i]) + 2;
        lock->path = malloc(len);
        if (!lock->path) {
            dlock__zk_op_free(op);
            return dlock__oom();
        }
        snprintf(lock->path, len, "%s/%s", lock->dir, op->children[i]);
        *found = 1;
    }
    int zrc = op->rc;
    dlock__zk_op_free(op);
    return zrc == ZOK || zrc == ZNONODE ? DLOCK_OK : dlock__zk_error(zrc, "looking for the own node");
}

/* The own node's stat (its creation zxid is the fencing token). */
static int own_stat(zk_conn *c, zk_lock *lock, struct dlock_call *call, struct Stat *stat)
{
    int status = DLOCK_OK;
    struct zk_op *op = dlock__zk_call(c, send_exists, lock->path, 1, call, &status, NULL);
    if (!op)
        return status;
    int zrc = op->rc;
    *stat = op->stat;
    dlock__zk_op_free(op);
    if (zrc == ZNONODE)
        return dlock__error(DLOCK_ECONN, "the own node vanished before the lock was granted");
    return zrc == ZOK ? DLOCK_OK : dlock__zk_error(zrc, "reading the own node");
}

/* Make the own node (and the folders, the first time). */
static int create_own(zk_conn *c, zk_lock *lock, struct dlock_call *call)
{
    char prefix_path[ZK_PATH_MAX + 32], mine[24];
    dlock__zk_node_prefix(c, mine);
    snprintf(prefix_path, sizeof prefix_path, "%s/%slock-", lock->dir, mine);
    char data[320];
    snprintf(data, sizeof data, "%ld %s", (long)getpid(), dlock__hostname());
    struct create_arg arg = {prefix_path, data};
    for (int attempt = 0;; attempt++) {
        int status = DLOCK_OK;
        struct zk_op *op = dlock__zk_call(c, send_create, &arg, 0, call, &status, NULL);
        if (!op) {
            /* The create may still land: sweep the folder at the next call. */
            dlock__zk_stale_add(c, lock->dir);
            return status;
        }
        int zrc = op->rc;
        if (zrc == ZOK) {
            lock->path = op->text;
            op->text = NULL;
            lock->base.fence = (uint64_t)op->stat.czxid;
            dlock__zk_op_free(op);
            return DLOCK_OK;
        }
        dlock__zk_op_free(op);
        if (zrc == ZNONODE && attempt == 0) {
            int rc = make_dir(c, lock->dir, call);
            if (rc != DLOCK_OK)
                return rc;
            continue;
        }
        if (!dlock__zk_uncertain(zrc))
            return dlock__zk_error(zrc, "creating the own node");
        int found = 0, rc = find_own(c, lock, call, &found);
        if (rc != DLOCK_OK) {
            dlock__zk_stale_add(c, lock->dir);
            return rc;
        }
        if (found) {
            struct Stat stat = {0};
            if ((rc = own_stat(c, lock, call, &stat)) != DLOCK_OK)
                return rc;
            lock->base.fence = (uint64_t)stat.czxid;
            return DLOCK_OK;
        }
        if (attempt > 3)
            return dlock__zk_error(zrc, "creating the own node");
    }
}

/* Remove the own node of a contender that gives up (`status`: why); a
 * failure leaves the folder to the next call's sweep (or the node to its
 * session's end).  A cancelled wait gives the delete only
 * WITHDRAW_CANCELED_MS: a cancel must end a wait promptly also when no
 * server answers. */
static void withdraw(zk_conn *c, zk_lock *lock, int status, struct dlock_call *call)
{
    if (!lock->path || !c->zh)
        return;
    char why[256];
    dlock__copy_text(why, sizeof why, dlock_last_error());
    struct dlock_call bounded = {dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS, 0};
    if (call->deadline_ms > bounded.deadline_ms)
        bounded.deadline_ms = call->deadline_ms;
    if (status == DLOCK_ECANCELED)
        bounded.deadline_ms = dlock__now_ms() + WITHDRAW_CANCELED_MS;
    int sent = DLOCK_OK, wake = c->wake_on_cancel;
    c->wake_on_cancel = 0; /* the cancel is what this delete follows */
    struct zk_op *op = dlock__zk_call(c, send_delete, lock->path, 1, &bounded, &sent, NULL);
    c->wake_on_cancel = wake;
    if (!op || (op->rc != ZOK && op->rc != ZNONODE))
        dlock__zk_stale_add(c, lock->dir);
    dlock__zk_op_free(op);
    dlock__error(DLOCK_OK, "%s", why); /* keep the caller's text */
}

enum { WAIT_AGAIN, WAIT_GRANTED };

/* Wait for the predecessor to go.  WAIT_AGAIN (look again) or an error. */
static int wait_predecessor(zk_conn *c, zk_lock *lock, const char *pred, int64_t wait_end, struct dlock_call *call)
{
    char path[ZK_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", lock->dir, pred);
    c->watch_fired = 0;
    struct zk_op *op = dlock__zk_op_new(c);
    if (!op)
        return dlock__oom();
    int rc = zoo_awexists(c->zh, path, dlock__zk_watcher, c, dlock__zk_stat_done, op);
    if (rc != ZOK) {
        op->done = 1;
        dlock__zk_op_free(op);
        return dlock__zk_error(rc, "watching the predecessor");
    }
    int end = dlock__zk_pump(c, &op, 1, dlock__zk_deadline(call), ZK_WAKE_ON_CANCEL);
    int zrc = op->done ? op->rc : ZOPERATIONTIMEOUT;
    dlock__zk_op_free(op);
    if (end == ZK_PUMP_CANCELED)
        return dlock__error(DLOCK_ECANCELED, "the wait for '%s' was canceled", lock->dir);
    if (end == ZK_PUMP_ENDED)
        return dlock__error(DLOCK_ECONN, "the ZooKeeper session expired while waiting");
    if (end != ZK_PUMP_DONE)
        return dlock__error(DLOCK_ECONN, "no ZooKeeper server answered in time");
    if (zrc == ZNONODE || dlock__zk_uncertain(zrc))
        return WAIT_AGAIN;
    if (zrc != ZOK)
        return dlock__zk_error(zrc, "watching the predecessor");
    end = dlock__zk_pump(c, NULL, 0, wait_end, ZK_WAKE_ON_WATCH | ZK_WAKE_ON_CANCEL);
    if (end == ZK_PUMP_CANCELED)
        return dlock__error(DLOCK_ECANCELED, "the wait was canceled");
    if (end == ZK_PUMP_ENDED)
        return dlock__error(DLOCK_ECONN, "the ZooKeeper session expired while waiting");
    if (end == ZK_PUMP_TIMEOUT)
        return DLOCK_EBUSY;
    return WAIT_AGAIN;
}

/* Look at the folder: granted (the lowest), or the predecessor to watch. */
static int look(zk_conn *c, zk_lock *lock, struct dlock_call *call, char *pred, size_t predlen)
{
    int status = DLOCK_OK;
    int64_t sent = 0;
    struct zk_op *op = dlock__zk_call(c, send_children, lock->dir, 1, call, &status, &sent);
    if (!op)
        return status;
    if (op->rc != ZOK) {
        int zrc = op->rc;
        dlock__zk_op_free(op);
        return dlock__zk_error(zrc, "listing the lock's folder");
    }
    const char *slash = lock->path ? strrchr(lock->path, '/') : NULL;
    if (!slash) {
        dlock__zk_op_free(op);
        return dlock__error(DLOCK_EBACKEND, "the lock's own node has no path");
    }
    const char *own = slash + 1;
    long long own_seq = dlock__zk_sequence(own), pred_seq = -1;
    int seen = 0;
    pred[0] = '\0';
    for (int i = 0; i < op->count; i++) {
        long long seq = dlock__zk_sequence(op->children[i]);
        if (strcmp(op->children[i], own) == 0)
            seen = 1;
        else if (seq >= 0 && seq < own_seq && seq > pred_seq) {
            pred_seq = seq;
            dlock__copy_text(pred, predlen, op->children[i]);
        }
    }
    dlock__zk_op_free(op);
    if (!seen)
        return dlock__error(DLOCK_ECONN, "the own node is gone (the session ended, or a break removed it)");
    if (pred_seq >= 0)
        return WAIT_AGAIN;
    call->lease_start_ms = sent;
    return WAIT_GRANTED;
}

/* The session's lease for a lock of ttl_ms: DLOCK_EINVAL when the ensemble
 * cannot grant one that short; lock->base.granted_ms when shorter. */
static int check_lease(zk_conn *c, zk_lock *lock, uint32_t ttl_ms)
{
    if (c->negotiated_ms > ttl_ms && c->asked_ms == dlock__zk_asked_ms(ttl_ms))
        return dlock__error(DLOCK_EINVAL,
                            "ttl_ms %u is below the ZooKeeper ensemble's minimum session timeout (%u ms; the "
                            "server's minSessionTimeout)",
                            (unsigned)ttl_ms, (unsigned)c->negotiated_ms);
    lock->base.granted_ms = c->negotiated_ms < ttl_ms ? c->negotiated_ms : 0;
    return DLOCK_OK;
}

static int take(zk_conn *c, zk_lock *lock, const char *name, uint32_t ttl_ms, int32_t wait_ms, int64_t wait_end,
                struct dlock_call *call)
{
    int rc = dlock__zk_session(c, ttl_ms, call);
    if (rc == DLOCK_OK)
        rc = check_lease(c, lock, ttl_ms);
    if (rc == DLOCK_OK)
        rc = create_own(c, lock, call);
    while (rc == DLOCK_OK) {
        char pred[256];
        rc = look(c, lock, call, pred, sizeof pred);
        if (rc == WAIT_GRANTED)
            return DLOCK_OK;
        if (rc != WAIT_AGAIN)
            break;
        if (wait_ms == 0) {
            rc = dlock__error(DLOCK_EBUSY, "lock '%s' is held by another session", name);
            break;
        }
        rc = wait_predecessor(c, lock, pred, wait_end, call);
        if (rc == WAIT_AGAIN)
            rc = DLOCK_OK;
        else if (rc == DLOCK_EBUSY)
            dlock__error(DLOCK_EBUSY, "lock '%s' was still held by another session when the wait ended", name);
    }
    withdraw(c, lock, rc, call);
    return rc;
}

static int zk_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                      struct dlock_call *call, struct dlock_held **lock_out)
{
    zk_conn *c = zk_of(conn);
    zk_lock *lock = calloc(1, sizeof *lock);
    if (!lock)
        return dlock__oom();
    char dir[ZK_PATH_MAX];
    int rc = dlock__zk_dir(c, name, dir);
    if (rc == DLOCK_OK && !(lock->dir = strdup(dir)))
        rc = dlock__oom();
    if (rc != DLOCK_OK) {
        lock_free(lock);
        return rc;
    }
    lock->base.ttl_ms = ttl_ms;
    int64_t wait_end = wait_ms == DLOCK_WAIT_FOREVER ? INT64_MAX : dlock__now_ms() + wait_ms;
    int attempts = 0;
    /* A wait can be cancelled (the core calls zk_cancel only then): every
     * round trip of it, the session's connect and the node's create too. */
    c->wake_on_cancel = wait_ms != 0 ? ZK_WAKE_ON_CANCEL : 0;
    for (;;) {
        uint64_t generation = c->s.generation;
        rc = take(c, lock, name, ttl_ms, wait_ms, wait_end, call);
        if (rc == DLOCK_OK)
            break;
        free(lock->path);
        lock->path = NULL;
        /* A session that expired under the call (idle for longer than its
         * timeout) is replaced once; a waiter whose session expired never
         * reports a grant: it starts again on a new session while its wait
         * lasts. */
        int again = rc == DLOCK_ECONN && generation != c->s.generation &&
                    (++attempts == 1 || (wait_ms != 0 && dlock__now_ms() < wait_end));
        if (!again) {
            c->wake_on_cancel = 0;
            lock_free(lock);
            return rc;
        }
    }
    c->wake_on_cancel = 0;
    dlock__session_add(&c->s, &lock->base);
    *lock_out = &lock->base;
    return DLOCK_OK;
}

/* --- extend, release ---------------------------------------------------------------------- */

static int send_sync(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_async(c->zh, arg, dlock__zk_string_done, op);
}

/* A plain read may be answered for seconds by a follower that has lost its
 * leader: the sync before the exists makes the server catch up first. */
int dlock__zk_check_own(zk_conn *c, zk_lock *lock, struct dlock_call *call)
{
    for (;;) {
        if (!dlock__session_holds(&c->s, &lock->base))
            return dlock__error(DLOCK_ELOST, "the session that held the lock has ended");
        int64_t deadline = dlock__zk_deadline(call);
        struct zk_op *ops[2] = {dlock__zk_op_new(c), dlock__zk_op_new(c)};
        if (!ops[0] || !ops[1]) {
            dlock__zk_op_free(ops[0]);
            dlock__zk_op_free(ops[1]);
            return dlock__oom();
        }
        int s1 = send_sync(c, ops[0], lock->path), s2 = send_exists(c, ops[1], lock->path);
        ops[0]->done |= s1 != ZOK;
        ops[1]->done |= s2 != ZOK;
        int end = dlock__zk_pump(c, ops, 2, deadline, 0);
        int sync_rc = ops[0]->done ? (s1 != ZOK ? s1 : ops[0]->rc) : ZOPERATIONTIMEOUT;
        int rc = ops[1]->done ? (s2 != ZOK ? s2 : ops[1]->rc) : ZOPERATIONTIMEOUT;
        struct Stat stat = ops[1]->stat;
        dlock__zk_op_free(ops[0]);
        dlock__zk_op_free(ops[1]);
        if (end == ZK_PUMP_DONE && (sync_rc == ZSESSIONEXPIRED || rc == ZSESSIONEXPIRED)) {
            dlock__zk_session_end(c);
            end = ZK_PUMP_ENDED;
        }
        if (end == ZK_PUMP_ENDED)
            return dlock__error(DLOCK_ELOST, "the ZooKeeper session that held the lock expired");
        if (end != ZK_PUMP_DONE)
            return dlock__error(DLOCK_ECONN, "no ZooKeeper server confirmed the lock in time");
        if (dlock__zk_uncertain(sync_rc) || dlock__zk_uncertain(rc))
            continue; /* the connection moved: ask the next server */
        if (rc == ZNONODE)
            return dlock__error(DLOCK_ELOST, "the own node is gone (broken, or the session expired)");
        if (sync_rc != ZOK && sync_rc != ZNONODE)
            return dlock__zk_error(sync_rc, "sync with the leader");
        if (rc != ZOK)
            return dlock__zk_error(rc, "reading the own node");
        if (stat.ephemeralOwner != c->session_id || (uint64_t)stat.czxid != lock->base.fence)
            return dlock__error(DLOCK_ELOST, "the own node now belongs to another session");
        return DLOCK_OK;
    }
}

static int zk_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                     struct dlock_call *call)
{
    (void)name;
    zk_conn *c = zk_of(conn);
    zk_lock *lock = zk_lock_of(held);
    if (c->zh && dlock__session_holds(&c->s, held)) {
        int state = zoo_state(c->zh);
        if (state == ZK_EXPIRED_SESSION_STATE || state == ZK_AUTH_FAILED_STATE)
            dlock__zk_session_end(c); /* no new session for a lock that is gone */
    }
    int rc = dlock__session_holds(&c->s, held) ? dlock__zk_session(c, 0, call)
                                                : dlock__error(DLOCK_ELOST, "the session that held it has ended");
    if (rc == DLOCK_OK)
        rc = dlock__zk_check_own(c, lock, call);
    if (rc == DLOCK_ELOST) {
        dlock__session_remove(&c->s, held);
        return rc;
    }
    if (rc == DLOCK_OK && !dlock__session_holds(&c->s, held))
        return dlock__error(DLOCK_ELOST, "the session that held it has ended");
    if (rc == DLOCK_OK) {
        held->granted_ms = c->negotiated_ms < ttl_ms ? c->negotiated_ms : 0;
        if (ttl_ms != held->ttl_ms)
            dlock__session_retime(&c->s, held, ttl_ms);
    }
    return rc;
}

static int zk_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    (void)name;
    zk_conn *c = zk_of(conn);
    zk_lock *lock = zk_lock_of(held);
    int rc;
    if (!dlock__session_holds(&c->s, held)) {
        rc = dlock__error(DLOCK_ELOST, "the session that held it has ended");
    } else {
        int status = DLOCK_OK;
        struct zk_op *op = dlock__zk_call(c, send_delete, lock->path, 1, call, &status, NULL);
        dlock__session_remove(&c->s, held);
        if (!op && !c->zh) {
            rc = dlock__error(DLOCK_ELOST, "the ZooKeeper session that held the lock expired");
        } else if (!op) {
            dlock__zk_stale_add(c, lock->dir); /* the next call deletes it */
            rc = status;
        } else {
            rc = op->rc == ZOK ? DLOCK_OK
                 : op->rc == ZNONODE
                     ? dlock__error(DLOCK_ELOST, "the own node was already gone (broken, or the session expired)")
                     : dlock__zk_error(op->rc, "deleting the own node");
            if (rc != DLOCK_OK && rc != DLOCK_ELOST)
                dlock__zk_stale_add(c, lock->dir);
        }
        dlock__zk_op_free(op);
    }
    dlock__session_remove(&c->s, held);
    lock_free(lock);
    return rc;
}

/* --- cancel, session ----------------------------------------------------------------------- */

static void zk_cancel(struct dlock_conn *conn)
{
    uint64_t one = 1;
    ssize_t n = write(zk_of(conn)->cancel_fd, &one, sizeof one);
    (void)n;
}

static void zk_cancel_clear(struct dlock_conn *conn)
{
    uint64_t value;
    ssize_t n = read(zk_of(conn)->cancel_fd, &value, sizeof value);
    (void)n;
}

static uint32_t zk_session_ttl_ms(struct dlock_conn *conn)
{
    zk_conn *c = zk_of(conn);
    return c->zh ? c->negotiated_ms : 0;
}

static uint64_t zk_session_generation(struct dlock_conn *conn)
{
    return zk_of(conn)->s.generation;
}

static const char *const zk_schemes[] = {"zookeeper", "zookeepers", NULL};

const struct dlock_backend dlock__backend_zookeeper = {
    .name = "zookeeper",
    .schemes = zk_schemes,
    .connect = zk_connect,
    .disconnect = zk_disconnect,
    .acquire = zk_acquire,
    .extend = zk_extend,
    .release = zk_release,
    .holder = dlock__zk_holder,
    .cancel = zk_cancel,
    .cancel_clear = zk_cancel_clear,
    .session_ttl_ms = zk_session_ttl_ms,
    .session_generation = zk_session_generation,
    .list = dlock__zk_list,
    .break_lock = dlock__zk_break,
    .store_time = dlock__zk_store_time,
    .record_get = dlock__zk_record_get,
    .record_put = dlock__zk_record_put,
    .history_add = dlock__zk_history_add,
    .history_read = dlock__zk_history_read,
    .check = dlock__zk_check,
};
