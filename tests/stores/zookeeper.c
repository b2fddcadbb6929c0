/* The ZooKeeper store, as the shared suites see it (tests/stores/store.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "zookeeper/backend.h"

/* A connection of the backend's own, as a raw client (no recipe). */
static zk_conn *raw_open(const char *url, struct dlock_call *call)
{
    char bare[4096];
    dlt_url_without_options(url, bare, sizeof bare);
    struct dlock_conn *conn = NULL;
    ck_assert_int_eq(dlock__backend_zookeeper.connect(bare, &conn), DLOCK_OK);
    zk_conn *c = zk_of(conn);
    *call = (struct dlock_call){dlock__now_ms() + 10000, 0};
    ck_assert_int_eq(dlock__zk_session(c, 0, call), DLOCK_OK);
    return c;
}

/* One request, waited for. */
static struct zk_op *raw_wait(zk_conn *c, struct zk_op *op, int sent, const struct dlock_call *call)
{
    ck_assert_int_eq(sent, ZOK);
    ck_assert_int_eq(dlock__zk_pump(c, &op, 1, call->deadline_ms, 0), ZK_PUMP_DONE);
    return op;
}

/* The path of the node that holds `name` ("" free). */
static void holder_node(zk_conn *c, const char *url, const char *name, const struct dlock_call *call, char *out,
                        size_t outlen)
{
    struct dlock_zk_url u;
    ck_assert_int_eq(dlock__zk_parse_url(url, &u), DLOCK_OK);
    char dir[ZK_PATH_MAX];
    size_t used = (size_t)snprintf(dir, sizeof dir, "%s/", u.base);
    ck_assert_int_eq(dlock__zk_encode(u.prefix, dir, sizeof dir, &used), 0);
    ck_assert_int_eq(dlock__zk_encode(name, dir, sizeof dir, &used), 0);
    dlock__zk_url_free(&u);
    struct zk_op *op = dlock__zk_op_new(c);
    op = raw_wait(c, op, zoo_aget_children(c->zh, dir, 0, dlock__zk_strings_done, op), call);
    int low = op->rc == ZOK ? dlock__zk_lowest(op->children, op->count) : -1;
    out[0] = '\0';
    if (low >= 0)
        snprintf(out, outlen, "%s/%s", dir, op->children[low]);
    dlock__zk_op_free(op);
}

static unsigned caps(const char *url)
{
    (void)url;
    /* Not DLT_RELEASES_ON_EXIT: a session outlives its TCP connection, so a
     * holder killed without closing frees the lock at its session timeout. */
    return DLT_FENCES | DLT_OUTLIVES_CONNECTION | DLT_LISTS_NAMES | DLT_CLUSTER | DLT_HISTORY;
}

/* BASE/~history/ENC(prefix + name): the folder of a name's runs. */
static void history_dir(const char *url, const char *name, char *dir, size_t len)
{
    struct dlock_zk_url u;
    ck_assert_int_eq(dlock__zk_parse_url(url, &u), DLOCK_OK);
    size_t used = (size_t)snprintf(dir, len, "%s/~history/", u.base);
    ck_assert_int_eq(dlock__zk_encode(u.prefix, dir, len, &used), 0);
    ck_assert_int_eq(dlock__zk_encode(name, dir, len, &used), 0);
    dlock__zk_url_free(&u);
}

/* Every child of the folder, runs or not (zkCli.sh ls). */
static int history_entries(const char *url, const char *name)
{
    char dir[ZK_PATH_MAX];
    history_dir(url, name, dir, sizeof dir);
    struct dlock_call call;
    zk_conn *c = raw_open(url, &call);
    struct zk_op *op = dlock__zk_op_new(c);
    op = raw_wait(c, op, zoo_aget_children(c->zh, dir, 0, dlock__zk_strings_done, op), &call);
    ck_assert_msg(op->rc == ZOK || op->rc == ZNONODE, "ls %s: %d", dir, op->rc);
    int count = op->rc == ZOK ? op->count : 0;
    dlock__zk_op_free(op);
    dlock__backend_zookeeper.disconnect(&c->base);
    return count;
}

/* As zkCli.sh create would: run-shaped nodes whose data is no run, and a
 * node of another shape whose data looks like one. */
static void history_junk(const char *url, const char *name, int *count)
{
    static const struct {
        const char *node;
        int flags;
        const char *data;
    } junk[] = {
        {"r-", ZK_PERSISTENT_SEQUENTIAL, "not a run at all"},
        {"r-", ZK_PERSISTENT_SEQUENTIAL, "1 2 3 4 5 RAN host"},
        {"r-", ZK_PERSISTENT_SEQUENTIAL, ""},
        {"r-", ZK_PERSISTENT_SEQUENTIAL, "1 2 -5 0 0 ran host"},
        {"operator-note", ZK_PERSISTENT, "1 2 3 0 0 ran forged"},
    };
    char dir[ZK_PATH_MAX], path[ZK_PATH_MAX + 32];
    history_dir(url, name, dir, sizeof dir);
    struct dlock_call call;
    zk_conn *c = raw_open(url, &call);
    snprintf(path, sizeof path, "%s/x", dir);
    ck_assert_int_eq(dlock__zk_make_parents(c, path, &call), DLOCK_OK);
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, junk[i].node);
        struct zk_op *op = dlock__zk_op_new(c);
        op = raw_wait(c, op,
                      zoo_acreate2(c->zh, path, junk[i].data, (int)strlen(junk[i].data), &c->acl, junk[i].flags,
                                   dlock__zk_create_done, op),
                      &call);
        ck_assert_int_eq(op->rc, ZOK);
        dlock__zk_op_free(op);
    }
    *count = (int)(sizeof junk / sizeof junk[0]);
    dlock__backend_zookeeper.disconnect(&c->base);
}

static void view(const char *url, const char *name, char *out, size_t outlen)
{
    struct dlock_call call;
    zk_conn *c = raw_open(url, &call);
    char node[ZK_PATH_MAX + 64];
    holder_node(c, url, name, &call, node, sizeof node);
    out[0] = '\0';
    if (node[0]) {
        struct zk_op *op = dlock__zk_op_new(c);
        op = raw_wait(c, op, zoo_aget(c->zh, node, 0, dlock__zk_data_done, op), &call);
        if (op->rc == ZOK)
            snprintf(out, outlen, "%s czxid=%lld owner=%llx data=%s", node, (long long)op->stat.czxid,
                     (unsigned long long)op->stat.ephemeralOwner, op->text ? op->text : "");
        dlock__zk_op_free(op);
    }
    dlock__backend_zookeeper.disconnect(&c->base);
}

/* As an operator would: delete the holder's node (zkCli.sh delete). */
static void take_away(const char *url, const char *name)
{
    struct dlock_call call;
    zk_conn *c = raw_open(url, &call);
    char node[ZK_PATH_MAX + 64];
    holder_node(c, url, name, &call, node, sizeof node);
    ck_assert_msg(node[0], "take_away: '%s' is not held", name);
    struct zk_op *op = dlock__zk_op_new(c);
    op = raw_wait(c, op, zoo_adelete(c->zh, node, -1, dlock__zk_void_done, op), &call);
    ck_assert_int_eq(op->rc, ZOK);
    dlock__zk_op_free(op);
    dlock__backend_zookeeper.disconnect(&c->base);
}

static const struct dlt_bad_url bad_urls[] = {
    {"TLS (zookeepers)", "zookeepers://{user}:{secret}@{host}:{port}", {DLOCK_ENOTSUP}, 1},
    {"the password as an option value", "{scheme}://{user}:{secret}@{host}:{port}?prefix=x&mode={secret}",
     {DLOCK_EINVAL}, 1},
    {"the password as an option name", "{scheme}://{user}:{secret}@{host}:{port}?{secret}=1", {DLOCK_EINVAL}, 1},
    {"a chroot with '..'", "{scheme}://{user}:{secret}@{host}:{port}/a/../{secret}", {DLOCK_EINVAL}, 1},
    {"an empty host in the list", "{scheme}://{user}:{secret}@{host}:{port},,{host}:{port}", {DLOCK_EINVAL}, 1},
    {"a port out of range", "{scheme}://{user}:{secret}@{host}:70000", {DLOCK_EINVAL}, 1},
    {NULL, NULL, {0}, 0},
};

/* server_pid is NULL: stopping one member does not stall an ensemble (the
 * client moves); check_zookeeper stops a quorum instead. */
const struct dlt_store dlt_store_zookeeper = {
    .backend = "zookeeper",
    .url_env = "DLOCK_TEST_ZK_URL",
    .caps = caps,
    .expiry_slack_ms = 1000, /* a tick (100 ms) for the ensemble's expiry, and slack */
    .max_lease_ms = 60000,   /* maxSessionTimeout of tests/zookeeper-server.sh */
    .default_port = "2181",
    .url_path = "",
    .missing_db = NULL,
    .bad_urls = bad_urls,
    .view = view,
    .take_away = take_away,
    .history_entries = history_entries,
    .history_junk = history_junk,
};
