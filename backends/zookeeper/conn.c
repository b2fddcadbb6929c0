/*
 * The session.  A session costs a quorum write to open and to close, so one
 * serves every lock of a client with the same TTL (the session timeout is
 * the lease) and outlives a release for the next lock; losing it marks every
 * lock on it lost (lib/session.c keeps the list and the generation).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static void discard_log(const char *message)
{
    if (getenv("DLOCK_ZK_DEBUG"))
        fprintf(stderr, "zookeeper client: %s\n", message);
}

void dlock__zk_session_end(zk_conn *c)
{
    if (c->zh) {
        zhandle_t *zh = c->zh;
        c->zh = NULL;
        (void)zookeeper_close(zh); /* runs the completions still pending */
    }
    c->negotiated_ms = 0;
    c->session_id = 0;
    c->cloexec_fd = -1;
    for (int i = 0; i < c->stale_count; i++)
        free(c->stale[i]);
    c->stale_count = 0; /* the ensemble deletes a closed session's nodes */
    dlock__session_new(&c->s);
}

void dlock__zk_stale_add(zk_conn *c, const char *dir)
{
    for (int i = 0; i < c->stale_count; i++)
        if (strcmp(c->stale[i], dir) == 0)
            return;
    char *copy = c->stale_count < ZK_STALE_MAX ? strdup(dir) : NULL;
    if (!copy) {
        /* Cannot remember it: only ending the session surely removes it. */
        dlock__zk_session_end(c);
        return;
    }
    c->stale[c->stale_count++] = copy;
}

void dlock__zk_node_prefix(const zk_conn *c, char out[24])
{
    snprintf(out, 24, "s%016" PRIx64 "-", (uint64_t)c->session_id);
}

int dlock__zk_dir(const zk_conn *c, const char *name, char *out)
{
    size_t used = (size_t)snprintf(out, ZK_PATH_MAX, "%s/", c->url.base);
    if (used >= ZK_PATH_MAX - 1 || dlock__zk_encode(c->url.prefix, out, ZK_PATH_MAX, &used) != 0 ||
        dlock__zk_encode(name, out, ZK_PATH_MAX, &used) != 0)
        return dlock__error(DLOCK_EINVAL, "the lock's path is too long for ZooKeeper");
    return DLOCK_OK;
}

long long dlock__zk_sequence(const char *node)
{
    size_t len = strlen(node);
    if (len < 10)
        return -1;
    long long v = 0;
    for (const char *p = node + len - 10; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

int dlock__zk_lowest(char *const *children, int count)
{
    int best = -1;
    long long best_seq = -1;
    for (int i = 0; i < count; i++) {
        long long seq = dlock__zk_sequence(children[i]);
        if (seq >= 0 && (best < 0 || seq < best_seq)) {
            best = i;
            best_seq = seq;
        }
    }
    return best;
}

struct zk_op *dlock__zk_call(zk_conn *c, zk_send_fn send, const void *arg, int idempotent, struct dlock_call *call,
                             int *status, int64_t *sent_ms)
{
    for (;;) {
        int64_t deadline = dlock__zk_deadline(call);
        struct zk_op *op = c->zh ? dlock__zk_op_new(c) : NULL;
        if (!op) {
            *status = c->zh ? dlock__oom() : dlock__error(DLOCK_ECONN, "the ZooKeeper session has ended");
            return NULL;
        }
        int64_t sent = dlock__now_ms();
        int rc = send(c, op, arg);
        if (rc != ZOK) {
            op->done = 1;
            dlock__zk_op_free(op);
            *status = dlock__zk_error(rc, "sending a request");
            return NULL;
        }
        /* An acquire that waits: a cancel ends every round trip of it.  The
         * answer still gets WITHDRAW_CANCELED_MS: a node whose create was
         * applied unbeknown to us would stay queued, ahead of everyone,
         * for as long as the session lives (a live ensemble answers well
         * within that; the caller then withdraws as after any cancel).  No
         * answer by then (no server answers): the callers clean up as
         * after a timeout. */
        int end = dlock__zk_pump(c, &op, 1, deadline, c->wake_on_cancel);
        if (end == ZK_PUMP_CANCELED) {
            int64_t grace = dlock__now_ms() + WITHDRAW_CANCELED_MS;
            end = dlock__zk_pump(c, &op, 1, grace < deadline ? grace : deadline, 0);
            if (end != ZK_PUMP_DONE || (idempotent && dlock__zk_uncertain(op->rc))) {
                dlock__zk_op_free(op);
                *status = dlock__error(DLOCK_ECANCELED, "the wait was canceled");
                return NULL;
            }
        }
        if (end == ZK_PUMP_DONE && op->rc == ZSESSIONEXPIRED) {
            dlock__zk_op_free(op);
            dlock__zk_session_end(c); /* its locks are lost */
            *status = dlock__error(DLOCK_ECONN, "the ZooKeeper session expired");
            return NULL;
        }
        if (end == ZK_PUMP_DONE && !(idempotent && dlock__zk_uncertain(op->rc))) {
            if (sent_ms)
                *sent_ms = sent;
            return op;
        }
        int op_rc = op->done ? op->rc : ZOPERATIONTIMEOUT;
        dlock__zk_op_free(op);
        if (end == ZK_PUMP_DONE && dlock__now_ms() < deadline)
            continue; /* a lost connection: again, on the next server */
        *status = end == ZK_PUMP_ENDED ? dlock__error(DLOCK_ECONN, "the ZooKeeper session expired")
                                       : dlock__error(DLOCK_ECONN, "no ZooKeeper server answered in time (%s)",
                                                      zerror(op_rc));
        return NULL;
    }
}

static int send_create_folder(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_acreate2(c->zh, arg, NULL, -1, &c->acl, ZK_PERSISTENT, dlock__zk_create_done, op);
}

int dlock__zk_make_parents(zk_conn *c, const char *path, struct dlock_call *call)
{
    char partial[ZK_PATH_MAX];
    dlock__copy_text(partial, sizeof partial, path);
    for (char *slash = strchr(partial + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        int status = DLOCK_OK;
        struct zk_op *op = dlock__zk_call(c, send_create_folder, partial, 1, call, &status, NULL);
        if (!op)
            return status;
        int rc = op->rc;
        dlock__zk_op_free(op);
        if (rc != ZOK && rc != ZNODEEXISTS)
            return dlock__zk_error(rc, "creating the lock folders");
        *slash = '/';
    }
    return DLOCK_OK;
}

/* --- opening a session ------------------------------------------------------------ */

static int open_session(zk_conn *c, uint32_t timeout_ms, struct dlock_call *call)
{
    /* The C client cannot hold a timeout above ~12 days (it computes in
     * int milliseconds); the ensemble grants at most its maxSessionTimeout
     * anyway, and a shorter grant is a shorter lease. */
    if (timeout_ms > ZK_SESSION_MS_MAX)
        timeout_ms = ZK_SESSION_MS_MAX;
    int timeout = (int)(timeout_ms ? timeout_ms : ZK_DEFAULT_SESSION_MS);
    c->zh = zookeeper_init2(c->url.hosts, dlock__zk_watcher, timeout, NULL, c, 0, discard_log);
    if (!c->zh)
        return dlock__error(DLOCK_ECONN, "cannot start a ZooKeeper session: %s", strerror(errno));
    c->asked_ms = (uint32_t)timeout;
    c->cloexec_fd = -1;
    if (c->url.user) {
        char cred[512];
        int len = snprintf(cred, sizeof cred, "%s:%s", c->url.user, c->url.password);
        int rc = len > 0 && (size_t)len < sizeof cred ? zoo_add_auth(c->zh, "digest", cred, len, NULL, NULL)
                                                       : ZBADARGUMENTS;
        memset(cred, 0, sizeof cred);
        if (rc != ZOK) {
            dlock__zk_session_end(c);
            return dlock__error(DLOCK_EINVAL, "zookeeper: the digest credentials cannot be used");
        }
    }
    int end = dlock__zk_pump(c, NULL, 0, dlock__zk_deadline(call), ZK_UNTIL_CONNECTED | c->wake_on_cancel);
    if (end != ZK_PUMP_DONE) {
        int auth = c->zh && zoo_state(c->zh) == ZK_AUTH_FAILED_STATE;
        dlock__zk_session_end(c); /* cancelled too: the next call opens a session afresh */
        if (end == ZK_PUMP_CANCELED)
            return dlock__error(DLOCK_ECANCELED, "the wait was canceled");
        if (auth)
            return dlock__error(DLOCK_ECONN, "the ZooKeeper ensemble refused the credentials");
        return dlock__error(DLOCK_ECONN, "no server of the ZooKeeper ensemble (%s) answered in time", c->url.hosts);
    }
    c->session_id = zoo_client_id(c->zh)->client_id;
    c->negotiated_ms = (uint32_t)zoo_recv_timeout(c->zh);
    c->last_answer_ms = dlock__now_ms();
    return DLOCK_OK;
}

static int send_delete(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_adelete(c->zh, arg, -1, dlock__zk_void_done, op);
}

static int send_children(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_aget_children(c->zh, arg, 0, dlock__zk_strings_done, op);
}

static int held_here(const zk_conn *c, const char *path)
{
    for (const struct dlock_held *h = c->s.locks; h; h = h->next)
        if (strcmp(((const zk_lock *)h)->path, path) == 0)
            return 1;
    return 0;
}

/* Delete every node of this session in `dir` that no held lock owns. */
static int sweep_dir(zk_conn *c, const char *dir, struct dlock_call *call)
{
    int status = DLOCK_OK;
    struct zk_op *list = dlock__zk_call(c, send_children, dir, 1, call, &status, NULL);
    if (!list)
        return status;
    char mine[24], path[ZK_PATH_MAX];
    dlock__zk_node_prefix(c, mine);
    int rc = list->rc == ZNONODE ? ZOK : list->rc;
    for (int i = 0; rc == ZOK && i < list->count; i++) {
        if (strncmp(list->children[i], mine, strlen(mine)) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, list->children[i]);
        if (held_here(c, path))
            continue;
        struct zk_op *del = dlock__zk_call(c, send_delete, path, 1, call, &status, NULL);
        if (!del)
            break;
        rc = del->rc == ZNONODE ? ZOK : del->rc;
        dlock__zk_op_free(del);
    }
    dlock__zk_op_free(list);
    if (status != DLOCK_OK)
        return status;
    return rc == ZOK ? DLOCK_OK : dlock__zk_error(rc, "removing a node left by a failed call");
}

static int sweep(zk_conn *c, struct dlock_call *call)
{
    while (c->stale_count > 0 && c->zh) {
        int rc = sweep_dir(c, c->stale[c->stale_count - 1], call);
        if (rc != DLOCK_OK)
            return rc;
        free(c->stale[--c->stale_count]);
    }
    return DLOCK_OK;
}

int dlock__zk_session(zk_conn *c, uint32_t timeout_ms, struct dlock_call *call)
{
    if (c->zh) {
        int state = zoo_state(c->zh);
        int idle_too_long = c->negotiated_ms && dlock__now_ms() - c->last_answer_ms > (int64_t)c->negotiated_ms;
        /* An ended session is dropped; an idle one is reused only for the
         * same lease, and only while alive. */
        if (state == ZK_EXPIRED_SESSION_STATE || state == ZK_AUTH_FAILED_STATE ||
            (!c->s.locks && ((timeout_ms && dlock__zk_asked_ms(timeout_ms) != c->asked_ms) || idle_too_long)))
            dlock__zk_session_end(c);
    }
    if (!c->zh) {
        int rc = open_session(c, timeout_ms, call);
        if (rc != DLOCK_OK)
            return rc;
    } else if (zoo_state(c->zh) != ZK_CONNECTED_STATE) {
        int end = dlock__zk_pump(c, NULL, 0, dlock__zk_deadline(call), ZK_UNTIL_CONNECTED | c->wake_on_cancel);
        if (end == ZK_PUMP_CANCELED)
            return dlock__error(DLOCK_ECANCELED, "the wait was canceled");
        if (end == ZK_PUMP_ENDED)
            return dlock__error(DLOCK_ECONN, "the ZooKeeper session expired");
        if (end != ZK_PUMP_DONE)
            return dlock__error(DLOCK_ECONN, "no server of the ZooKeeper ensemble (%s) answered in time",
                                c->url.hosts);
    }
    /* A sweep that fails now is tried again at the next call: it must not
     * fail this one (whose own requests say what they say). */
    if (sweep(c, call) != DLOCK_OK)
        dlock__clear_error();
    return c->zh ? DLOCK_OK : dlock__error(DLOCK_ECONN, "the ZooKeeper session ended");
}
