/*
 * ZooKeeper run history and the preflight.
 *
 * The history of a name is a folder, BASE/~history/ENC (ENC: the name
 * encoded as its lock folder is, prefix= included, so a name prefix stays a
 * prefix), of persistent sequential nodes "r-NNNNNNNNNN", one per run; the
 * folder's own counter orders them, so the highest sequence is the newest.
 * A node's data is the run:
 *   "<start_ms> <end_ms> <pid> <exit_status> <fence> <outcome> <host>"
 * (exit_status -1: no job ran; fence and pid 0: none; the host last, as it
 * may hold a space).  The nodes carry the lock nodes' ACL: with digest
 * credentials, the creator's alone.
 *
 * An add is one `multi`: the create and the delete of the oldest runs beyond
 * `keep`, so the folder never holds more than `keep` runs that the adds
 * made (a concurrent add that deleted the same node first makes the multi
 * fail as a whole: it is tried again on a fresh listing).  A read syncs with
 * the leader and lists the folder in one round trip, then reads the newest
 * `max` nodes in one pipelined batch.  A child that is not "r-" and ten
 * digits is not ours: never read, never deleted; a run whose data does not
 * parse is skipped.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define RUN_NODE "r-"
#define TRIM_MAX 16   /* deletes per multi; more (after a larger keep) go one by one after it */
#define READ_BATCH 64 /* gets sent before waiting for their answers */

static int history_dir(const zk_conn *c, const char *name, char *out)
{
    size_t used = (size_t)snprintf(out, ZK_PATH_MAX, "%s/~history/", c->url.base);
    if (used >= ZK_PATH_MAX - 1 || dlock__zk_encode(c->url.prefix, out, ZK_PATH_MAX, &used) != 0 ||
        dlock__zk_encode(name, out, ZK_PATH_MAX, &used) != 0)
        return dlock__error(DLOCK_EINVAL, "the run history's path is too long for ZooKeeper");
    return DLOCK_OK;
}

/* A run node of ours: its sequence, else -1. */
static long long run_sequence(const char *child)
{
    if (strncmp(child, RUN_NODE, strlen(RUN_NODE)) != 0 || strlen(child) != strlen(RUN_NODE) + 10)
        return -1;
    return dlock__zk_sequence(child);
}

struct run_node {
    long long seq;
    const char *child;
};

static int by_sequence(const void *a, const void *b)
{
    long long x = ((const struct run_node *)a)->seq, y = ((const struct run_node *)b)->seq;
    return (x > y) - (x < y);
}

/* The run nodes of a listing, oldest first: a malloc'ed array (NULL and
 * *count 0 when there are none, or out of memory: *oom). */
static struct run_node *run_nodes(const struct zk_op *list, int *count, int *oom)
{
    *count = 0;
    *oom = 0;
    if (list->rc != ZOK || list->count == 0)
        return NULL;
    struct run_node *nodes = malloc((size_t)list->count * sizeof *nodes);
    if (!nodes) {
        *oom = 1;
        return NULL;
    }
    for (int i = 0; i < list->count; i++) {
        long long seq = run_sequence(list->children[i]);
        if (seq >= 0)
            nodes[(*count)++] = (struct run_node){seq, list->children[i]};
    }
    qsort(nodes, (size_t)*count, sizeof *nodes, by_sequence);
    return nodes;
}

/* --- add ---------------------------------------------------------------------------- */

/* A multi of a create and up to TRIM_MAX deletes.  Its zk_op comes first,
 * so that the completion frees the whole block when the caller gave up on
 * it (io.c frees an abandoned op with free()). */
struct add_op {
    struct zk_op op;
    zoo_op_t ops[1 + TRIM_MAX];
    zoo_op_result_t results[1 + TRIM_MAX];
};

static int send_children(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_aget_children(c->zh, arg, 0, dlock__zk_strings_done, op);
}

static int send_delete(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_adelete(c->zh, arg, -1, dlock__zk_void_done, op);
}

static int refused(int rc, const char *doing, const char *dir)
{
    if (rc == ZNOAUTH)
        return dlock__error(DLOCK_EBACKEND,
                            "%s: not allowed under %s (its ACL is another user's: with digest credentials every"
                            " node is its creator's alone, docs/zookeeper.md)",
                            doing, dir);
    return dlock__zk_error(rc, doing);
}

/* Send the multi: create `node_prefix` with `value`, delete the `n` paths.
 * Returns the Z* code of the multi (ZOPERATIONTIMEOUT when it did not come
 * back in time); *failed: the index of the op that failed, -1 none. */
static int run_multi(zk_conn *c, const char *node_prefix, const char *value, char paths[][ZK_PATH_MAX + 16], int n,
                     struct dlock_call *call, int *failed)
{
    *failed = -1;
    struct add_op *m = calloc(1, sizeof *m);
    if (!m)
        return ZSYSTEMERROR;
    m->op.conn = c;
    zoo_create_op_init(&m->ops[0], node_prefix, value, (int)strlen(value), &c->acl, ZK_PERSISTENT_SEQUENTIAL, NULL, 0);
    for (int i = 0; i < n; i++)
        zoo_delete_op_init(&m->ops[1 + i], paths[i], -1);
    int rc = zoo_amulti(c->zh, 1 + n, m->ops, m->results, dlock__zk_void_done, &m->op);
    if (rc != ZOK) {
        free(m);
        return rc;
    }
    struct zk_op *op = &m->op;
    int end = dlock__zk_pump(c, &op, 1, dlock__zk_deadline(call), 0);
    rc = end == ZK_PUMP_DONE ? m->op.rc : ZOPERATIONTIMEOUT;
    if (end == ZK_PUMP_DONE && rc != ZOK)
        for (int i = 0; i <= n && *failed < 0; i++)
            if (m->results[i].err != ZOK && m->results[i].err != ZRUNTIMEINCONSISTENCY)
                *failed = i;
    dlock__zk_op_free(op);
    if (end == ZK_PUMP_ENDED)
        return ZSESSIONEXPIRED;
    return rc;
}

/* Delete the runs beyond what one multi could, oldest first (rare: only
 * after a history written with a larger bound). */
static void trim_rest(zk_conn *c, const char *dir, const struct run_node *nodes, int from, int to,
                      struct dlock_call *call)
{
    for (int i = from; i < to; i++) {
        char path[ZK_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/%s", dir, nodes[i].child);
        int status = DLOCK_OK;
        struct zk_op *op = dlock__zk_call(c, send_delete, path, 1, call, &status, NULL);
        if (!op) {
            dlock__clear_error(); /* the next add trims them */
            return;
        }
        dlock__zk_op_free(op);
    }
}

int dlock__zk_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                          unsigned keep, struct dlock_call *call)
{
    zk_conn *c = zk_of(conn);
    char dir[ZK_PATH_MAX], node_prefix[ZK_PATH_MAX + 8], value[600];
    int rc = history_dir(c, name, dir);
    if (rc == DLOCK_OK)
        rc = dlock__zk_session(c, 0, call);
    if (rc != DLOCK_OK)
        return rc;
    snprintf(node_prefix, sizeof node_prefix, "%s/" RUN_NODE, dir);
    dlock__history_to_text(run, value, sizeof value);
    if (keep < 1)
        keep = 1;
    for (int attempt = 0; attempt < 8; attempt++) {
        int status = DLOCK_OK;
        struct zk_op *list = dlock__zk_call(c, send_children, dir, 1, call, &status, NULL);
        if (!list)
            return status;
        if (list->rc != ZOK && list->rc != ZNONODE) {
            int zrc = list->rc;
            dlock__zk_op_free(list);
            return refused(zrc, "cannot record the run (listing its history)", dir);
        }
        int count = 0, oom = 0;
        struct run_node *nodes = run_nodes(list, &count, &oom);
        if (oom) {
            dlock__zk_op_free(list);
            return dlock__oom();
        }
        int excess = count + 1 > (int)keep ? count + 1 - (int)keep : 0;
        int n = excess < TRIM_MAX ? excess : TRIM_MAX;
        char paths[TRIM_MAX][ZK_PATH_MAX + 16];
        for (int i = 0; i < n; i++)
            snprintf(paths[i], sizeof paths[i], "%s/%s", dir, nodes[i].child);
        int failed = -1;
        int zrc = run_multi(c, node_prefix, value, paths, n, call, &failed);
        if (zrc == ZOK && excess > n)
            trim_rest(c, dir, nodes, n, excess, call);
        free(nodes);
        dlock__zk_op_free(list);
        if (zrc == ZOK)
            return DLOCK_OK;
        if (zrc == ZSESSIONEXPIRED) {
            dlock__zk_session_end(c);
            return dlock__error(DLOCK_ECONN, "the ZooKeeper session expired: the run may not be recorded");
        }
        if (dlock__zk_uncertain(zrc))
            return dlock__error(DLOCK_ECONN, "no answer from ZooKeeper in time (%s): the run may or may not be recorded",
                                zerror(zrc));
        if (zrc == ZNONODE && failed == 0) { /* the folder is not there yet */
            if ((rc = dlock__zk_make_parents(c, node_prefix, call)) != DLOCK_OK)
                return rc;
            continue;
        }
        if (zrc == ZNONODE && failed > 0)
            continue; /* another add trimmed the same run first: look again */
        return refused(zrc, "cannot record the run", dir);
    }
    return dlock__error(DLOCK_EBUSY, "the run history of '%s' changed too often to add to it", name);
}

/* --- read ---------------------------------------------------------------------------- */

static int send_get(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_aget(c->zh, arg, 0, dlock__zk_data_done, op);
}

/* Read nodes[from..to) (newest first) in one pipelined batch and add the
 * runs that parse. */
static int read_batch(zk_conn *c, const char *dir, const struct run_node *nodes, int from, int to,
                      struct dlock_history *out, struct dlock_call *call)
{
    struct zk_op *ops[READ_BATCH];
    int n = 0, rc = DLOCK_OK;
    for (int i = from; i < to && rc == DLOCK_OK; i++) {
        char path[ZK_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/%s", dir, nodes[i].child);
        struct zk_op *op = c->zh ? dlock__zk_op_new(c) : NULL;
        if (!op) {
            rc = c->zh ? dlock__oom() : dlock__error(DLOCK_ECONN, "the ZooKeeper session has ended");
            break;
        }
        ops[n++] = op;
        if (send_get(c, op, path) != ZOK) {
            op->done = 1;
            op->rc = ZCONNECTIONLOSS;
        }
    }
    int end = rc == DLOCK_OK ? dlock__zk_pump(c, ops, n, dlock__zk_deadline(call), 0) : ZK_PUMP_DONE;
    if (rc == DLOCK_OK && end != ZK_PUMP_DONE)
        rc = dlock__error(DLOCK_ECONN, "no ZooKeeper server answered in time while reading the run history");
    for (int i = 0; i < n; i++) {
        struct dlock_history_entry e;
        if (rc == DLOCK_OK && ops[i]->rc != ZOK && ops[i]->rc != ZNONODE)
            rc = dlock__zk_uncertain(ops[i]->rc)
                     ? dlock__error(DLOCK_ECONN, "the connection to ZooKeeper broke while reading the run history")
                     : refused(ops[i]->rc, "cannot read the run history", dir);
        /* ZNONODE: trimmed since the listing.  Junk data: skipped. */
        if (rc == DLOCK_OK && ops[i]->rc == ZOK && ops[i]->text && dlock__history_from_text(ops[i]->text, &e))
            rc = dlock__history_add(out, &e);
        dlock__zk_op_free(ops[i]);
    }
    return rc;
}

int dlock__zk_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                           struct dlock_call *call)
{
    zk_conn *c = zk_of(conn);
    char dir[ZK_PATH_MAX];
    int rc = history_dir(c, name, dir);
    if (rc == DLOCK_OK)
        rc = dlock__zk_session(c, 0, call);
    if (rc != DLOCK_OK)
        return rc;
    struct zk_op *list = dlock__zk_synced_children(c, dir, call, &rc);
    if (!list)
        return rc;
    if (list->rc != ZOK && list->rc != ZNONODE) {
        int zrc = list->rc;
        dlock__zk_op_free(list);
        return refused(zrc, "cannot read the run history", dir);
    }
    int count = 0, oom = 0;
    struct run_node *nodes = run_nodes(list, &count, &oom);
    if (oom) {
        dlock__zk_op_free(list);
        return dlock__oom();
    }
    /* Newest first. */
    for (int i = 0, j = count - 1; i < j; i++, j--) {
        struct run_node t = nodes[i];
        nodes[i] = nodes[j];
        nodes[j] = t;
    }
    int want = (size_t)count < max ? count : (int)max;
    for (int from = 0; from < want && rc == DLOCK_OK; from += READ_BATCH)
        rc = read_batch(c, dir, nodes, from, from + READ_BATCH < want ? from + READ_BATCH : want, out, call);
    free(nodes);
    dlock__zk_op_free(list);
    return rc;
}

/* --- the preflight ------------------------------------------------------------------ */

/* The session timeout the ensemble grants when asked for `asked_ms`, on a
 * session of its own (opened and closed here): 0 when none could be opened. */
static uint32_t granted_for(const zk_conn *c, uint32_t asked_ms, struct dlock_call *call)
{
    zk_conn probe = {0};
    probe.url = c->url; /* borrowed: never freed here */
    probe.acl = c->acl;
    probe.cancel_fd = -1;
    probe.cloexec_fd = -1;
    uint32_t granted = 0;
    if (dlock__zk_session(&probe, asked_ms, call) == DLOCK_OK)
        granted = probe.negotiated_ms;
    else
        dlock__clear_error();
    dlock__zk_session_end(&probe);
    return granted;
}

static int send_create_probe(zk_conn *c, struct zk_op *op, const void *arg)
{
    return zoo_acreate2(c->zh, arg, "", 0, &c->acl, ZK_EPHEMERAL_SEQUENTIAL, dlock__zk_create_done, op);
}

/* May this user create (and delete) a node in `folder` (made first when
 * missing)?  ZOK, or the Z* code (or -1 with the error text: no answer). */
static int try_create(zk_conn *c, const char *folder, struct dlock_call *call)
{
    char path[ZK_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/~check-", folder);
    if (dlock__zk_make_parents(c, path, call) != DLOCK_OK) {
        int zrc = strstr(dlock_last_error(), "not allowed") ? ZNOAUTH : -1;
        if (zrc == ZNOAUTH)
            dlock__clear_error();
        return zrc;
    }
    int status = DLOCK_OK;
    struct zk_op *op = dlock__zk_call(c, send_create_probe, path, 0, call, &status, NULL);
    if (!op)
        return -1;
    int zrc = op->rc;
    char *made = zrc == ZOK && op->text ? strdup(op->text) : NULL;
    dlock__zk_op_free(op);
    if (made) {
        op = dlock__zk_call(c, send_delete, made, 1, call, &status, NULL);
        if (op) {
            if (op->rc != ZOK && op->rc != ZNONODE)
                zrc = op->rc;
            dlock__zk_op_free(op);
        } else {
            dlock__clear_error(); /* ephemeral: it goes with the session */
        }
        free(made);
    }
    return zrc;
}

static int rights_items(zk_conn *c, struct dlock_check_list *out, struct dlock_call *call)
{
    char history[ZK_PATH_MAX];
    snprintf(history, sizeof history, "%s/~history", c->url.base);
    int locks = try_create(c, c->url.base, call);
    if (locks == -1) {
        char why[256];
        dlock__copy_text(why, sizeof why, dlock_last_error());
        return dlock__check_add(out, "rights", DLOCK_CHECK_FAIL, "cannot try a node under %s: %s", c->url.base, why);
    }
    int rc = locks == ZOK ? dlock__check_add(out, "rights", DLOCK_CHECK_OK,
                                             "this user may create and delete nodes under %s (locks, records)",
                                             c->url.base)
                          : dlock__check_add(out, "rights", DLOCK_CHECK_FAIL,
                                             "this user may not create nodes under %s (%s): no lock can be taken",
                                             c->url.base, zerror(locks));
    int runs = locks == ZOK ? try_create(c, history, call) : locks;
    if (runs == -1) {
        char why[256];
        dlock__copy_text(why, sizeof why, dlock_last_error());
        return dlock__check_add(out, "history", DLOCK_CHECK_WARN, "cannot try a node under %s: %s", history, why);
    }
    if (rc == DLOCK_OK && runs == ZOK)
        rc = dlock__check_add(out, "history", DLOCK_CHECK_OK, "sequential nodes under %s, the newest %d runs of each name",
                              history, DLOCK_HISTORY_KEEP);
    else if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "history", DLOCK_CHECK_WARN,
                              "this user may not create nodes under %s (%s): dlock run cannot keep its run history",
                              history, zerror(runs));
    return rc;
}

/* The ensemble's bounds on a session timeout (minSessionTimeout and
 * maxSessionTimeout are not shown to clients): what it grants to two
 * probe sessions, one asking very little and one very much. */
static int session_items(zk_conn *c, struct dlock_call *call, struct dlock_check_list *out)
{
    enum { LOW_ASK = 200, DEFAULT_TTL = 60000 };
    uint32_t low = granted_for(c, LOW_ASK, call), high = granted_for(c, ZK_SESSION_MS_MAX, call);
    if (!low || !high)
        return dlock__check_add(out, "session", DLOCK_CHECK_WARN,
                                "this session's timeout: %u ms granted for %u asked; the ensemble's bounds could not"
                                " be probed",
                                (unsigned)c->negotiated_ms, (unsigned)c->asked_ms);
    char low_text[64];
    if (low > LOW_ASK)
        snprintf(low_text, sizeof low_text, "%u ms", (unsigned)low);
    else
        snprintf(low_text, sizeof low_text, "at most %u ms", (unsigned)LOW_ASK);
    int short_max = high < DEFAULT_TTL;
    return dlock__check_add(out, "session", short_max ? DLOCK_CHECK_WARN : DLOCK_CHECK_OK,
                            "the ensemble grants session timeouts (the lease) from %s (minSessionTimeout: a shorter"
                            " TTL is refused) to %u ms (maxSessionTimeout: a longer TTL is granted that)%s",
                            low_text, (unsigned)high,
                            short_max ? "; dlock run's default TTL of 60s is cut to it, and its heartbeat follows"
                                      : "");
}

/* The members in the ensemble's own view (/zookeeper/config, readable by
 * every client since 3.5; empty without dynamic configuration). */
static void ensemble_config(zk_conn *c, struct dlock_call *call, char *out, size_t len)
{
    out[0] = '\0';
    int status = DLOCK_OK;
    struct zk_op *op = dlock__zk_call(c, send_get, "/zookeeper/config", 1, call, &status, NULL);
    if (!op) {
        dlock__clear_error();
        return;
    }
    if (op->rc == ZOK && op->text) {
        size_t used = 0;
        char *save = NULL;
        for (char *line = strtok_r(op->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "server.", 7) != 0)
                continue;
            int n = snprintf(out + used, len - used, "%s%s", used ? ", " : "", line);
            if (n < 0 || (size_t)n >= len - used)
                break;
            used += (size_t)n;
        }
    }
    dlock__zk_op_free(op);
}

int dlock__zk_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out, struct dlock_call *call)
{
    (void)name; /* one mode: the core asks for the holder */
    zk_conn *c = zk_of(conn);
    int rc = dlock__zk_session(c, 0, call);
    if (rc != DLOCK_OK)
        return rc;
    char current[300];
    const char *server = zoo_get_current_server(c->zh); /* a static buffer of the client's: copied at once */
    dlock__copy_text(current, sizeof current, server ? server : "?");
    char members[512];
    ensemble_config(c, call, members, sizeof members);
    rc = dlock__check_add(out, "server", DLOCK_CHECK_INFO,
                          "ZooKeeper, this session on %s of %s (the C client is not told the server's version:"
                          " `echo srvr | nc HOST PORT` shows it)",
                          current, c->url.hosts);
    if (rc == DLOCK_OK && members[0])
        rc = dlock__check_add(out, "ensemble", DLOCK_CHECK_INFO, "%s", members);
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "database", DLOCK_CHECK_INFO, "folder %s, prefix '%s', %s%s%s", c->url.base,
                              c->url.prefix, c->url.user ? "digest user " : "no credentials (nodes world:anyone)",
                              c->url.user ? c->url.user : "", c->url.user ? " (every node its creator's alone)" : "");
    if (rc == DLOCK_OK)
        rc = session_items(c, call, out);
    if (rc == DLOCK_OK)
        rc = rights_items(c, out, call);
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "settings", DLOCK_CHECK_INFO,
                              "tickTime, syncLimit and forceSync are not shown to clients: docs/zookeeper.md says"
                              " what to set");
    return rc;
}
