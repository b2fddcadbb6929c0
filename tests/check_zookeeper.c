/*
 * The ZooKeeper backend against a real three-server ensemble
 * (tests/zookeeper-server.sh): the URL parser and the name encoding (no
 * server needed), the nodes as zkCli.sh sees them, and the real faults of
 * issue 21: the leader killed or stopped, the holder's server stopped, a
 * holder that stops calling or is stopped, a create whose answer is lost, a
 * record read through another server, a waiter whose session expires, and
 * no quorum.
 *
 * The server tests need DLOCK_TEST_ZK_URL and DLOCK_TEST_ZK_DIR (they skip
 * without, and fail when DLOCK_TEST_REQUIRE names zookeeper or all); the
 * fault tests stop, kill and restart members through DLOCK_TEST_ZK_SCRIPT
 * and leave the ensemble whole again.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "zookeeper/suite.h"

const char *url;
char *name;
dlock_client *client;

void setup(void)
{
    dlt_fixture_open(url, "zk", &client, &name);
}

void teardown(void)
{
    dlt_fixture_close(&client, &name);
}

zk_conn *raw_session(struct dlock_conn **conn, struct dlock_call *call)
{
    ck_assert_int_eq(dlock__backend_zookeeper.connect(url, conn), DLOCK_OK);
    zk_conn *c = zk_of(*conn);
    *call = (struct dlock_call){dlock__now_ms() + 10000, 0};
    ck_assert_int_eq(dlock__zk_session(c, 0, call), DLOCK_OK);
    return c;
}

/* --- the ensemble ------------------------------------------------------------------- */

int member_port(int n)
{
    char var[32];
    snprintf(var, sizeof var, "DLOCK_TEST_ZK_PORT%d", n);
    const char *v = getenv(var);
    ck_assert_ptr_nonnull(v);
    return atoi(v);
}

/* The session id in the name of the node that holds `n` ("s<16 hex>-"). */
uint64_t holder_session(const char *n)
{
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, n, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    const char *node = strrchr(dlock_list_key(list, 0), '/');
    ck_assert_ptr_nonnull(node);
    ck_assert_int_eq(node[1], 's');
    uint64_t sid = strtoull(node + 2, NULL, 16);
    dlock_list_free(list);
    return sid;
}

char *dir_of(const char *n)
{
    char *dir = malloc(ZK_PATH_MAX);
    size_t used = (size_t)snprintf(dir, ZK_PATH_MAX, "%s/", DLOCK_ZK_DEFAULT_BASE);
    ck_assert_int_eq(dlock__zk_encode(n, dir, ZK_PATH_MAX, &used), 0);
    return dir;
}

static Suite *zookeeper_suite(int with_server)
{
    Suite *s = suite_create("zookeeper");
    dlt_zk_add_url(s);
    if (!with_server)
        return s;
    dlt_zk_add_server(s);
    dlt_zk_add_faults(s);
    return s;
}

int main(void)
{
    /* The parser and the encoding need no server; the rest does. */
    url = getenv("DLOCK_TEST_ZK_URL");
    if (url && !*url)
        url = NULL;
    if (!url && dlt_required("zookeeper")) {
        fprintf(stderr, "check_zookeeper: DLOCK_TEST_ZK_URL is not set but DLOCK_TEST_REQUIRE asks for it\n");
        return DLT_HARD_ERROR;
    }
    if (url && (!getenv("DLOCK_TEST_ZK_DIR") || !getenv("DLOCK_TEST_ZK_SCRIPT"))) {
        fprintf(stderr, "check_zookeeper: DLOCK_TEST_ZK_DIR and DLOCK_TEST_ZK_SCRIPT are needed beside the URL\n");
        return DLT_HARD_ERROR;
    }
    int failed = dlt_run_suite(zookeeper_suite(url != NULL));
    if (failed)
        return 1;
    return url ? 0 : DLT_SKIP;
}
