/* Holder, list, break, store time and run records on ZooKeeper. */
#include "config.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static int send_children(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_aget_children(c->zh, arg, 0, dlock__zk_strings_done, op);
}

static int send_get(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_aget(c->zh, arg, 0, dlock__zk_data_done, op);
}

static int send_delete(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_adelete(c->zh, arg, -1, dlock__zk_void_done, op);
}

/* The children of `dir` as the leader has them: a sync and the list in one
 * round trip, so that a member that has not yet applied a release (another
 * client's) does not show the lock as still held.  The op, or NULL with
 * *status. */
struct zk_op *dlock__zk_synced_children(zk_conn *c, const char *dir, struct dlock_call *call, int *status)
{
    for (;;) {
        int64_t deadline = dlock__zk_deadline(call);
        struct zk_op *ops[2] = {c->zh ? dlock__zk_op_new(c) : NULL, c->zh ? dlock__zk_op_new(c) : NULL};
        if (!ops[0] || !ops[1]) {
            dlock__zk_op_free(ops[0]);
            dlock__zk_op_free(ops[1]);
            *status = c->zh ? dlock__oom() : dlock__error(DLOCK_ECONN, "the ZooKeeper session has ended");
            return NULL;
        }
        int s1 = zoo_async(c->zh, dir, dlock__zk_string_done, ops[0]);
        int s2 = zoo_aget_children(c->zh, dir, 0, dlock__zk_strings_done, ops[1]);
        ops[0]->done |= s1 != ZOK;
        ops[1]->done |= s2 != ZOK;
        int end = dlock__zk_pump(c, ops, 2, deadline, 0);
        int sync_rc = s1 != ZOK ? s1 : ops[0]->done ? ops[0]->rc : ZOPERATIONTIMEOUT;
        int list_rc = s2 != ZOK ? s2 : ops[1]->done ? ops[1]->rc : ZOPERATIONTIMEOUT;
        dlock__zk_op_free(ops[0]);
        if (end == ZK_PUMP_DONE && !dlock__zk_uncertain(sync_rc) && !dlock__zk_uncertain(list_rc) &&
            list_rc != ZSESSIONEXPIRED) {
            ops[1]->rc = list_rc;
            return ops[1];
        }
        dlock__zk_op_free(ops[1]);
        if (end == ZK_PUMP_DONE && list_rc != ZSESSIONEXPIRED && dlock__now_ms() < deadline)
            continue; /* a lost connection: again, on the next server */
        if (end == ZK_PUMP_DONE && list_rc == ZSESSIONEXPIRED)
            dlock__zk_session_end(c);
        *status = dlock__error(DLOCK_ECONN, "no ZooKeeper server answered in time (%s)", zerror(list_rc));
        return NULL;
    }
}

/* A node's data is "<pid> <host>" (zookeeper.c): the parts, and the holder
 * text as the other stores give it. */
static void parse_holder(const char *data, long long *pid, const char **host, char *text, size_t textlen)
{
    char *end = NULL;
    *pid = data ? strtoll(data, &end, 10) : 0;
    *host = end && end != data && *end == ' ' ? end + 1 : NULL;
    if (!*host)
        *pid = 0;
    if (*host)
        snprintf(text, textlen, "host=%s pid=%lld", *host, *pid);
    else
        dlock__copy_text(text, textlen, data && data[0] ? data : "(unknown holder)");
}

/* The lowest node of `dir` and its data (the holder) and stat: 1 found
 * (*path_out, *data_out malloc'ed), 0 none, <0 error.
 *
 * Sequence numbers only grow: a node made after a listing comes after every
 * node in it.  So when the lowest listed node is gone by the time it is
 * read, the next listed one that is still there is the lowest of the folder
 * at the moment it is read, and only when every listed node is gone is a new
 * listing needed.  A lock may change hands faster than this reads for a
 * while (CI once saw five listings in a row outrun), not for the whole call:
 * it reads until the call's deadline. */
static int lowest_node(zk_conn *c, const char *dir, struct dlock_call *call, char **path_out, char **data_out,
                       struct Stat *stat)
{
    for (;;) {
        int status = DLOCK_OK;
        struct zk_op *list = dlock__zk_synced_children(c, dir, call, &status);
        if (!list)
            return status;
        if (list->rc == ZNONODE) {
            dlock__zk_op_free(list);
            return 0;
        }
        if (list->rc != ZOK) {
            int rc = list->rc;
            dlock__zk_op_free(list);
            return dlock__zk_error(rc, "listing the lock's folder");
        }
        /* Nodes found gone are moved past `left` (still freed with the list). */
        char **names = list->children;
        int left = list->count, low, listed = dlock__zk_lowest(names, left) >= 0, rc = ZNONODE;
        struct zk_op *get = NULL;
        char path[ZK_PATH_MAX + 32];
        while (rc == ZNONODE && (low = dlock__zk_lowest(names, left)) >= 0) {
            snprintf(path, sizeof path, "%s/%s", dir, names[low]);
            dlock__zk_op_free(get);
            if (!(get = dlock__zk_call(c, send_get, path, 1, call, &status, NULL))) {
                dlock__zk_op_free(list);
                return status;
            }
            rc = get->rc;
            char *gone = names[low];
            names[low] = names[--left];
            names[left] = gone;
        }
        dlock__zk_op_free(list);
        if (rc == ZOK) {
            *stat = get->stat;
            *data_out = get->text;
            get->text = NULL;
            *path_out = strdup(path);
        }
        dlock__zk_op_free(get);
        if (rc == ZOK)
            return *path_out ? 1 : dlock__oom();
        if (rc != ZNONODE)
            return dlock__zk_error(rc, "reading the holder's node");
        if (!listed)
            return 0;
        /* every listed node went meanwhile: list again */
        if (dlock__now_ms() >= call->deadline_ms)
            return dlock__error(DLOCK_ECONN, "the lock changed hands faster than it could be read before the call's"
                                             " deadline");
    }
}

/* The lowest node of a name's folder, on a session: lowest_node's answer. */
static int lowest_of(zk_conn *c, const char *name, struct dlock_call *call, char **path, char **data,
                     struct Stat *stat)
{
    char dir[ZK_PATH_MAX];
    int rc = dlock__zk_dir(c, name, dir);
    if (rc == DLOCK_OK)
        rc = dlock__zk_session(c, 0, call);
    if (rc != DLOCK_OK)
        return rc;
    return lowest_node(c, dir, call, path, data, stat);
}

int dlock__zk_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    zk_conn *c = zk_of(conn);
    char *path = NULL, *data = NULL;
    struct Stat stat = {0};
    int rc = lowest_of(c, name, call, &path, &data, &stat);
    if (rc == 1 && buf && buflen) {
        long long pid;
        const char *host;
        char text[600];
        parse_holder(data, &pid, &host, text, sizeof text);
        if (host) {
            char since[32];
            dlock__utc_text(since, sizeof since, stat.ctime);
            size_t n = strlen(text);
            snprintf(text + n, sizeof text - n, " since=%s", since);
        }
        dlock__copy_text(buf, buflen, text);
    }
    free(path);
    free(data);
    return rc;
}

int dlock__zk_break(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    zk_conn *c = zk_of(conn);
    char *path = NULL, *data = NULL;
    struct Stat stat = {0};
    int rc = lowest_of(c, name, call, &path, &data, &stat);
    free(data);
    if (rc != 1) {
        free(path);
        return rc;
    }
    int status = DLOCK_OK;
    struct zk_op *op = dlock__zk_call(c, send_delete, path, 1, call, &status, NULL);
    free(path);
    if (!op)
        return status;
    int zrc = op->rc;
    dlock__zk_op_free(op);
    if (zrc == ZNOAUTH)
        return dlock__error(DLOCK_EBACKEND, "no privilege to delete the holder's node (its ACL keeps this user out)");
    if (zrc == ZNONODE)
        return 0;
    return zrc == ZOK ? 1 : dlock__zk_error(zrc, "deleting the holder's node");
}

/* --- list ------------------------------------------------------------------------------ */

static int list_one(zk_conn *c, const char *segment, struct dlock_list *list, struct dlock_call *call)
{
    char dir[ZK_PATH_MAX], decoded[DLOCK_ZK_SEGMENT_MAX];
    if (dlock__zk_decode(segment, decoded, sizeof decoded) != DLOCK_OK)
        return DLOCK_OK; /* not a lock folder of libdlock's */
    size_t plen = strlen(c->url.prefix);
    if (strncmp(decoded, c->url.prefix, plen) != 0 || !decoded[plen])
        return DLOCK_OK;
    snprintf(dir, sizeof dir, "%s/%s", c->url.base, segment);
    char *path = NULL, *data = NULL;
    struct Stat stat = {0};
    int rc = lowest_node(c, dir, call, &path, &data, &stat);
    if (rc == 1) {
        long long pid;
        const char *host;
        char holder[400];
        parse_holder(data, &pid, &host, holder, sizeof holder);
        struct dlock_list_entry e = {.name = decoded + plen,
                                     .key = path,
                                     .holder = holder,
                                     .host = host,
                                     .pid = pid,
                                     .since_ms = stat.ctime,
                                     .expires_ms = -1,
                                     .fence = (uint64_t)stat.czxid};
        rc = dlock__list_add(list, &e);
    }
    free(path);
    free(data);
    return rc < 0 ? rc : DLOCK_OK;
}

int dlock__zk_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    zk_conn *c = zk_of(conn);
    int rc = dlock__zk_session(c, 0, call);
    if (rc != DLOCK_OK)
        return rc;
    char want[DLOCK_ZK_SEGMENT_MAX];
    size_t used = 0;
    if (dlock__zk_encode(c->url.prefix, want, sizeof want, &used) != 0 ||
        dlock__zk_encode(prefix, want, sizeof want, &used) != 0)
        return dlock__error(DLOCK_EINVAL, "the prefix is too long");
    int status = DLOCK_OK;
    struct zk_op *op = dlock__zk_call(c, send_children, c->url.base, 1, call, &status, NULL);
    if (!op)
        return status;
    if (op->rc != ZOK && op->rc != ZNONODE) {
        int zrc = op->rc;
        dlock__zk_op_free(op);
        return dlock__zk_error(zrc, "listing the lock folders");
    }
    /* The encoding keeps prefixes: a folder of a matching name starts with
     * the encoded prefix. */
    for (int i = 0; rc == DLOCK_OK && i < op->count; i++)
        if (strncmp(op->children[i], want, used) == 0)
            rc = list_one(c, op->children[i], list, call);
    dlock__zk_op_free(op);
    return rc;
}

/* --- store time ------------------------------------------------------------------------ */

struct set_arg {
    const char *path;
    const char *data;
};

static int send_set(zk_conn *c, struct zk_op *op, const void *arg)
{
    const struct set_arg *a = arg;
    return zoo_aset(c->zh, a->path, a->data, (int)strlen(a->data), -1, dlock__zk_stat_done, op);
}

static int send_create_persistent(zk_conn *c, struct zk_op *op, const void *arg)
{
    const struct set_arg *a = arg;
    return zoo_acreate2(c->zh, a->path, a->data, (int)strlen(a->data), &c->acl, ZK_PERSISTENT,
                        dlock__zk_create_done, op);
}

/* Write `data` to `path` (made with its folders when missing): the op (the
 * new stat) or NULL with *status. */
static struct zk_op *write_node(zk_conn *c, const char *path, const char *data, struct dlock_call *call, int *status)
{
    struct set_arg arg = {path, data};
    for (int attempt = 0; attempt < 3; attempt++) {
        struct zk_op *op = dlock__zk_call(c, send_set, &arg, 1, call, status, NULL);
        if (!op || op->rc != ZNONODE)
            return op;
        dlock__zk_op_free(op);
        if ((*status = dlock__zk_make_parents(c, path, call)) != DLOCK_OK)
            return NULL;
        op = dlock__zk_call(c, send_create_persistent, &arg, 1, call, status, NULL);
        if (!op || (op->rc != ZNODEEXISTS))
            return op; /* made with the data: its stat is the answer */
        dlock__zk_op_free(op);
    }
    *status = dlock__error(DLOCK_EBACKEND, "the node %s keeps vanishing", path);
    return NULL;
}

/* The leader's clock: the modification time of a node just written (every
 * write is stamped by the leader). */
int dlock__zk_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    zk_conn *c = zk_of(conn);
    int rc = dlock__zk_session(c, 0, call);
    if (rc != DLOCK_OK)
        return rc;
    char path[ZK_PATH_MAX];
    snprintf(path, sizeof path, "%s/~clock", c->url.base);
    int status = DLOCK_OK;
    struct zk_op *op = write_node(c, path, "", call, &status);
    if (!op)
        return status;
    int zrc = op->rc;
    *unix_ms = op->stat.mtime;
    dlock__zk_op_free(op);
    return zrc == ZOK ? DLOCK_OK : dlock__zk_error(zrc, "writing the clock node");
}

/* --- run records ------------------------------------------------------------------------ */

static int record_path(zk_conn *c, const char *name, char *out)
{
    size_t used = (size_t)snprintf(out, ZK_PATH_MAX, "%s/~records/", c->url.base);
    if (dlock__zk_encode(c->url.prefix, out, ZK_PATH_MAX, &used) != 0 ||
        dlock__zk_encode(name, out, ZK_PATH_MAX, &used) != 0)
        return dlock__error(DLOCK_EINVAL, "the record's path is too long");
    return DLOCK_OK;
}

int dlock__zk_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                         struct dlock_call *call)
{
    zk_conn *c = zk_of(conn);
    char path[ZK_PATH_MAX];
    int rc = record_path(c, name, path);
    /* Through the leader: the sync of the own-node check comes first. */
    if (rc == DLOCK_OK)
        rc = dlock__zk_check_own(c, zk_lock_of(held), call);
    if (rc == DLOCK_ELOST)
        dlock__session_remove(&c->s, held);
    if (rc != DLOCK_OK)
        return rc;
    int status = DLOCK_OK;
    struct zk_op *op = dlock__zk_call(c, send_get, path, 1, call, &status, NULL);
    if (!op)
        return status;
    int zrc = op->rc;
    *slot = zrc == ZOK && op->text ? strtoll(op->text, NULL, 10) : 0;
    dlock__zk_op_free(op);
    return zrc == ZOK || zrc == ZNONODE ? DLOCK_OK : dlock__zk_error(zrc, "reading the run record");
}

struct put_arg {
    const char *own;
    const char *path;
    const char *data;
    int create;
};

/* One transaction: the own node still exists (version 0: it is never
 * written), and the record is set (or made). */
static int send_put(zk_conn *c, struct zk_op *op, const void *arg)
{
    const struct put_arg *a = arg;
    zoo_check_op_init(&op->multi[0], a->own, 0);
    if (a->create)
        zoo_create_op_init(&op->multi[1], a->path, a->data, (int)strlen(a->data), &c->acl, ZK_PERSISTENT, NULL, 0);
    else
        zoo_set_op_init(&op->multi[1], a->path, a->data, (int)strlen(a->data), -1, &op->multi_stat);
    return zoo_amulti(c->zh, 2, op->multi, op->results, dlock__zk_void_done, op);
}

int dlock__zk_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                         struct dlock_call *call)
{
    zk_conn *c = zk_of(conn);
    zk_lock *lock = zk_lock_of(held);
    char path[ZK_PATH_MAX], data[24];
    int rc = record_path(c, name, path);
    if (rc != DLOCK_OK)
        return rc;
    if (!dlock__session_holds(&c->s, held))
        return dlock__error(DLOCK_ELOST, "the session that held the lock has ended");
    snprintf(data, sizeof data, "%" PRId64, slot);
    struct put_arg arg = {lock->path, path, data, 0};
    for (int attempt = 0; attempt < 4; attempt++) {
        int status = DLOCK_OK;
        struct zk_op *op = dlock__zk_call(c, send_put, &arg, 1, call, &status, NULL);
        if (!op)
            return status;
        int zrc = op->rc, own_rc = op->results[0].err, rec_rc = op->results[1].err;
        dlock__zk_op_free(op);
        if (zrc == ZOK)
            return DLOCK_OK;
        if (own_rc == ZNONODE || own_rc == ZBADVERSION) {
            dlock__session_remove(&c->s, held); /* a release must not delete what is there now */
            return dlock__error(DLOCK_ELOST, "the lock is no longer held: the record was not written");
        }
        if (rec_rc == ZNONODE && !arg.create) {
            arg.create = 1;
            if ((rc = dlock__zk_make_parents(c, path, call)) != DLOCK_OK)
                return rc;
        } else if (rec_rc == ZNODEEXISTS && arg.create) {
            arg.create = 0;
        } else {
            return dlock__zk_error(zrc, "writing the run record");
        }
    }
    return dlock__error(DLOCK_EBACKEND, "the run record keeps changing shape");
}
