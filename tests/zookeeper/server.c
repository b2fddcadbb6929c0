/*
 * ZooKeeper suite, tcase "server": the nodes as zkCli.sh sees them, tokens, leases, sessions, waits,
 * ACLs, lost nodes.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- the nodes as others see them ----------------------------------------------------- */

/* zkCli.sh with its commands on standard input.  -waitforconnection: it
 * reads them only once connected (on a loaded machine the JVM may read the
 * pipe before its session is up, and a command then fails with
 * ConnectionLoss); -timeout is its session timeout. */
static char *zkcli(const char *commands, int hold_s)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "(printf '%%s\\n' %s; sleep %d; echo quit) | /usr/share/zookeeper/bin/zkCli.sh -waitforconnection -timeout 30000 -server 127.0.0.1:%d 2>&1 | "
             "grep -v -E 'INFO|WARN|SLF4J|^$|Welcome|JLine|WATCHER|WatchedEvent|Connecting'",
             commands, hold_s, member_port(1));
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char *out = calloc(1, 65536);
    size_t used = fread(out, 1, 65535, p);
    out[used] = '\0';
    pclose(p);
    return out;
}

/* zkCli.sh sees libdlock's node (its name carries the session, its data the
 * holder), and a node it makes itself holds the lock against libdlock. */
START_TEST(zkcli_sees_and_takes_the_same_lock)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    char *dir = dir_of(name), commands[2048];
    snprintf(commands, sizeof commands, "'ls %s'", dir);
    char *out = zkcli(commands, 0);
    ck_assert_msg(strstr(out, "-lock-0000000000"), "zkCli.sh ls: %s", out);
    free(out);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);

    /* The operator's own contender, as docs/zookeeper.md shows it. */
    snprintf(commands, sizeof commands, "'create -e -s %s/zkcli-lock- operator'", dir);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Its session lives while zkCli.sh reads: long enough for a JVM
         * that starts slowly on a loaded machine to create the node first. */
        char *o = zkcli(commands, 15);
        free(o);
        _exit(0);
    }
    int busy = 0;
    for (int i = 0; i < 300 && !busy; i++) {
        char who[256];
        busy = dlock_holder(client, name, who, sizeof who) == 1 && strcmp(who, "operator") == 0;
        if (!busy)
            dlt_sleep_ms(100);
    }
    ck_assert_msg(busy, "zkCli.sh's node was never seen as the holder");
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    /* Once zkCli.sh's session closes, the lock is free. */
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 40000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    int status = 0;
    waitpid(pid, &status, 0);
    free(dir);
}
END_TEST

/* The recipe's invariants: one holder, strictly growing tokens (creation
 * zxids), list/holder/break/records/store time. */
START_TEST(tokens_list_break_records)
{
    uint64_t last = 0;
    for (int i = 0; i < 5; i++) {
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
        uint64_t fence = 0;
        ck_assert_int_eq(dlock_fence(l, &fence), DLOCK_OK);
        ck_assert_uint_gt(fence, last);
        last = fence;
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 5000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char who[256];
    ck_assert_int_eq(dlock_holder(client, name, who, sizeof who), 1);
    ck_assert_ptr_nonnull(strstr(who, "pid="));
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    ck_assert_str_eq(dlock_list_name(list, 0), name);
    ck_assert_int_eq(dlock_list_pid(list, 0), holder.pid);
    ck_assert_uint_gt(dlock_list_fence(list, 0), last);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_break(client, name), 1);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 5000", 10000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_break(client, name), 0);
    dlt_child_stop(&holder, SIGKILL);

    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    int64_t slot = -1;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(l, 42), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(l, 43), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 43);
    int64_t t = 0;
    ck_assert_int_eq(dlock_store_time(client, &t), DLOCK_OK);
    ck_assert_int_lt(llabs(t - (int64_t)time(NULL) * 1000), 5000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* The granted lease: a TTL under the ensemble's minimum session timeout is
 * EINVAL naming it; one above its maximum is granted shorter. */
START_TEST(granted_lease)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 50, 0, &l), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "100 ms"));
    ck_assert_int_eq(dlock_acquire(client, name, 120000, 0, &l), DLOCK_OK);
    ck_assert_int_le(dlock_remaining_ms(l), 60000);
    ck_assert_int_gt(dlock_remaining_ms(l), 50000);
    ck_assert_int_eq(dlock_extend(l, 120000), DLOCK_OK);
    ck_assert_int_le(dlock_remaining_ms(l), 60000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* One session serves the locks of a client with the same TTL; it outlives
 * a release for the next lock.  Losing it loses every lock on it. */
START_TEST(session_reused_and_lost_together)
{
    dlock_lock *a = NULL, *b = NULL;
    char *other = dlt_unique_name("zk-other");
    ck_assert_int_eq(dlock_acquire(client, name, 3000, 0, &a), DLOCK_OK);
    uint64_t sid = holder_session(name);
    ck_assert_int_eq(dlock_acquire(client, other, 3000, 0, &b), DLOCK_OK);
    ck_assert_uint_eq(holder_session(other), sid);
    ck_assert_int_eq(dlock_release(a), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 3000, 0, &a), DLOCK_OK);
    ck_assert_uint_eq(holder_session(name), sid);
    /* No call for longer than the lease: the ensemble ends the session. */
    dlt_sleep_ms(3000 + 1500);
    ck_assert_int_eq(dlock_remaining_ms(a), 0);
    ck_assert_int_eq(dlock_extend(a, 3000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_extend(b, 3000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(a), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(b), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(client, name, 3000, 0, &a), DLOCK_OK);
    ck_assert_uint_ne(holder_session(name), sid);
    ck_assert_int_eq(dlock_release(a), DLOCK_OK);
    free(other);
}
END_TEST

/* Digest credentials: the nodes are their creator's alone, so another
 * user (or none) can neither take, read nor break the lock. */
static char *with_user(const char *userinfo)
{
    const char *hosts = strstr(url, "://") + 3;
    char *out = malloc(strlen(url) + strlen(userinfo) + 2);
    sprintf(out, "zookeeper://%s@%s", userinfo, hosts);
    return out;
}

START_TEST(digest_acl_keeps_others_out)
{
    char *alice_url = with_user("alice:Alice-Pw1"), *bob_url = with_user("bob:Bob-Pw2");
    dlock_client *alice = NULL, *bob = NULL;
    ck_assert_int_eq(dlock_open(alice_url, &alice), DLOCK_OK);
    ck_assert_int_eq(dlock_open(bob_url, &bob), DLOCK_OK);
    dlock_lock *l = NULL, *theirs = NULL;
    ck_assert_int_eq(dlock_acquire(alice, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_break(bob, name), DLOCK_EBACKEND);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "not allowed"));
    ck_assert_ptr_null(strstr(dlock_last_error(), "Bob-Pw2"));
    ck_assert_int_eq(dlock_acquire(bob, name, 5000, 0, &theirs), DLOCK_EBACKEND);
    ck_assert_int_eq(dlock_break(client, name), DLOCK_EBACKEND); /* no credentials at all */
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    /* The same user from another client takes it as usual. */
    dlock_client *alice2 = NULL;
    ck_assert_int_eq(dlock_open(alice_url, &alice2), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(alice2, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(alice2);
    dlock_close(alice);
    dlock_close(bob);
    free(alice_url);
    free(bob_url);
}
END_TEST

/* Another node put at the own node's very path (an operator deletes it and
 * creates one of the same name): the extend's owner and zxid check says
 * ELOST; a record write after the own node is gone is refused. */
static void raw_node(const char *path, int create)
{
    struct dlock_conn *conn = NULL;
    struct dlock_call call;
    zk_conn *c = raw_session(&conn, &call);
    struct zk_op *op = dlock__zk_op_new(c);
    int sent = create ? zoo_acreate2(c->zh, path, "intruder", 8, &c->acl, ZK_PERSISTENT, dlock__zk_create_done, op)
                      : zoo_adelete(c->zh, path, -1, dlock__zk_void_done, op);
    ck_assert_int_eq(sent, ZOK);
    ck_assert_int_eq(dlock__zk_pump(c, &op, 1, call.deadline_ms, 0), ZK_PUMP_DONE);
    ck_assert_int_eq(op->rc, ZOK);
    dlock__zk_op_free(op);
    dlock__backend_zookeeper.disconnect(conn);
}

static char *own_path(const char *n)
{
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, n, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    char *path = strdup(dlock_list_key(list, 0));
    dlock_list_free(list);
    return path;
}

START_TEST(own_node_replaced_is_lost)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    char *path = own_path(name);
    raw_node(path, 0);
    raw_node(path, 1); /* the same name, another node */
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    raw_node(path, 0); /* the release left the intruder alone */
    free(path);

    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(l, 7), DLOCK_OK);
    path = own_path(name);
    raw_node(path, 0);
    ck_assert_int_eq(dlock_record_put(l, 8), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    int64_t slot = 0;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 7);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(path);
}
END_TEST

/* A waiter whose predecessor leaves while the holder stays is not granted:
 * it looks again and watches the next one (no grant on a mere wake). */
START_TEST(waiter_woken_by_a_leaving_waiter_still_waits)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    dlt_child first, second;
    ck_assert_int_eq(dlt_child_start(&first, url, name, 1000, 20000), 0);
    dlt_sleep_ms(700);
    ck_assert_int_eq(dlt_child_start(&second, url, name, 5000, 20000), 0);
    dlt_sleep_ms(700);
    dlt_child_stop(&first, SIGKILL); /* its node goes when its session expires */
    int64_t end = dlt_now_ms() + 3000;
    while (dlt_now_ms() < end) {
        ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
        ck_assert_int_eq(dlt_child_read(&second, 300), DLT_TIMEOUT);
    }
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlt_child_read(&second, 5000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_cmd(&second, "release", 10000), DLOCK_OK);
    dlt_child_stop(&second, SIGKILL);
}
END_TEST

/* The own session itself puts a new node at the own node's path (what a
 * retried create could do): the owner matches, the creation zxid does not,
 * and the extend says ELOST.  Through the backend's table, which gives the
 * session. */
START_TEST(same_session_new_node_is_lost)
{
    struct dlock_conn *conn = NULL;
    ck_assert_int_eq(dlock__backend_zookeeper.connect(url, &conn), DLOCK_OK);
    zk_conn *c = zk_of(conn);
    struct dlock_call call = {dlock__now_ms() + 10000, dlock__now_ms()};
    struct dlock_held *held = NULL;
    ck_assert_int_eq(dlock__backend_zookeeper.acquire(conn, name, 5000, 0, &call, &held), DLOCK_OK);
    const char *path = zk_lock_of(held)->path;
    struct zk_op *op = dlock__zk_op_new(c);
    ck_assert_int_eq(zoo_adelete(c->zh, path, -1, dlock__zk_void_done, op), ZOK);
    ck_assert_int_eq(dlock__zk_pump(c, &op, 1, call.deadline_ms, 0), ZK_PUMP_DONE);
    ck_assert_int_eq(op->rc, ZOK);
    dlock__zk_op_free(op);
    op = dlock__zk_op_new(c);
    ck_assert_int_eq(zoo_acreate2(c->zh, path, "again", 5, &c->acl, 1 /* ephemeral */, dlock__zk_create_done, op),
                     ZOK);
    ck_assert_int_eq(dlock__zk_pump(c, &op, 1, call.deadline_ms, 0), ZK_PUMP_DONE);
    ck_assert_int_eq(op->rc, ZOK);
    ck_assert_int_eq(op->stat.ephemeralOwner, c->session_id);
    dlock__zk_op_free(op);
    call = (struct dlock_call){dlock__now_ms() + 5000, dlock__now_ms()};
    ck_assert_int_eq(dlock__backend_zookeeper.extend(conn, held, name, 5000, &call), DLOCK_ELOST);
    call = (struct dlock_call){dlock__now_ms() + 5000, dlock__now_ms()};
    ck_assert_int_eq(dlock__backend_zookeeper.release(conn, held, name, &call), DLOCK_ELOST);
    dlock__backend_zookeeper.disconnect(conn);
}
END_TEST

/* The session is closed behind the client's back (another handle attaches
 * to it with its id and password and closes it): the next call learns it,
 * and every lock on the session is lost at once: the generation moves. */
static void quiet(const char *message)
{
    (void)message;
}

START_TEST(closed_session_loses_every_lock)
{
    struct dlock_conn *conn = NULL;
    ck_assert_int_eq(dlock__backend_zookeeper.connect(url, &conn), DLOCK_OK);
    zk_conn *c = zk_of(conn);
    char *other = dlt_unique_name("zk-other");
    struct dlock_call call = {dlock__now_ms() + 10000, dlock__now_ms()};
    struct dlock_held *x = NULL, *y = NULL;
    ck_assert_int_eq(dlock__backend_zookeeper.acquire(conn, name, 10000, 0, &call, &x), DLOCK_OK);
    ck_assert_int_eq(dlock__backend_zookeeper.acquire(conn, other, 10000, 0, &call, &y), DLOCK_OK);
    uint64_t generation = dlock__backend_zookeeper.session_generation(conn);
    clientid_t id = *zoo_client_id(c->zh);
    zk_conn intruder = {.cloexec_fd = -1, .cancel_fd = -1};
    intruder.zh = zookeeper_init2(c->url.hosts, dlock__zk_watcher, 10000, &id, &intruder, 0, quiet);
    ck_assert_ptr_nonnull(intruder.zh);
    ck_assert_int_eq(dlock__zk_pump(&intruder, NULL, 0, dlock__now_ms() + 10000, ZK_UNTIL_CONNECTED), ZK_PUMP_DONE);
    zookeeper_close(intruder.zh); /* closes the session on the ensemble */
    dlt_sleep_ms(300);
    call = (struct dlock_call){dlock__now_ms() + 5000, dlock__now_ms()};
    ck_assert_int_eq(dlock__backend_zookeeper.extend(conn, x, name, 10000, &call), DLOCK_ELOST);
    ck_assert_uint_ne(dlock__backend_zookeeper.session_generation(conn), generation);
    ck_assert_int_eq(dlock__session_holds(&c->s, y), 0);
    call = (struct dlock_call){dlock__now_ms() + 5000, dlock__now_ms()};
    ck_assert_int_eq(dlock__backend_zookeeper.release(conn, y, other, &call), DLOCK_ELOST);
    call = (struct dlock_call){dlock__now_ms() + 5000, dlock__now_ms()};
    ck_assert_int_eq(dlock__backend_zookeeper.release(conn, x, name, &call), DLOCK_ELOST);
    dlock__backend_zookeeper.disconnect(conn);
    free(other);
}
END_TEST

/* dlock run's job inherits no socket of the session: the client's socket is
 * marked close-on-exec by libdlock (Debian's client library does not). */
START_TEST(run_job_inherits_no_socket)
{
    char cmd[8192], out[1024];
    snprintf(out, sizeof out, "%.900s/fds-%ld", getenv("DLOCK_TEST_ZK_DIR"), (long)getpid());
    snprintf(cmd, sizeof cmd,
             "'%s' run -u '%s' -t 5s '%s' -- sh -c 'for f in /proc/$$/fd/*; do readlink \"$f\" || true; done' >'%s'",
             getenv("DLOCK_BIN"), url, name, out);
    ck_assert_int_eq(dlt_system(cmd), 0);
    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        ck_assert_msg(!strstr(line, "socket:"), "the job inherited %s", line);
    }
    fclose(f);
    unlink(out);
    ck_assert_int_ge(lines, 3);
}
END_TEST

START_TEST(release_wakes_waiter_cancel_ends_wait)
{
    dlt_child waiter;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlt_child_start(&waiter, url, name, 5000, 20000), 0);
    dlt_sleep_ms(500);
    /* The waiter's node is in the folder too: holder, list and break go by
     * the lowest sequence, ours. */
    char who[256], mine[64];
    snprintf(mine, sizeof mine, "pid=%ld", (long)getpid());
    ck_assert_int_eq(dlock_holder(client, name, who, sizeof who), 1);
    ck_assert_msg(strstr(who, mine), "holder: %s", who);
    uint64_t fence = 0;
    ck_assert_int_eq(dlock_fence(l, &fence), DLOCK_OK);
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    ck_assert_uint_eq(dlock_list_fence(list, 0), fence);
    dlock_list_free(list);
    int64_t released = dlt_now_ms();
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlt_child_read(&waiter, 10000), DLOCK_OK);
    ck_assert_int_lt(dlt_now_ms() - released, 1000);
    ck_assert_int_eq(dlt_child_cmd(&waiter, "release", 10000), DLOCK_OK);
    dlt_child_stop(&waiter, SIGKILL);
}
END_TEST


/* dlock_holder while the lock changes hands faster than it can read: 300
 * queued nodes, deleted lowest first in one pipelined burst by another
 * session.  The lowest node a read listed is gone when it reads it, again
 * and again; it must answer held or free, never an error (the stress suite
 * once saw "the lock changed hands too often to be read" in CI: the read
 * gave up after five lists in a row). */
#define CHURN_NODES 1000
struct churn {
    zk_conn *c;
    char (*paths)[ZK_PATH_MAX + 32];
    int64_t deadline_ms;
    atomic_int done;
    int failed;
};

static void *delete_them_all(void *arg)
{
    struct churn *ch = arg;
    struct zk_op *ops[CHURN_NODES];
    for (int i = 0; i < CHURN_NODES; i++) {
        ops[i] = dlock__zk_op_new(ch->c);
        if (zoo_adelete(ch->c->zh, ch->paths[i], -1, dlock__zk_void_done, ops[i]) != ZOK)
            ch->failed++;
    }
    if (dlock__zk_pump(ch->c, ops, CHURN_NODES, ch->deadline_ms, 0) != ZK_PUMP_DONE)
        ch->failed++;
    for (int i = 0; i < CHURN_NODES; i++) {
        ch->failed += ops[i]->rc != ZOK;
        dlock__zk_op_free(ops[i]);
    }
    atomic_store(&ch->done, 1);
    return NULL;
}

START_TEST(holder_read_while_the_lock_changes_hands)
{
    dlock_lock *l = NULL; /* the lock's folder */
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    struct dlock_conn *conn = NULL;
    struct dlock_call call;
    struct churn ch = {.c = raw_session(&conn, &call), .deadline_ms = dlock__now_ms() + 20000};
    ch.paths = calloc(CHURN_NODES, sizeof *ch.paths);
    char *dir = dir_of(name), prefix[ZK_PATH_MAX + 32], data[64];
    snprintf(prefix, sizeof prefix, "%s/s%016llx-", dir, (unsigned long long)ch.c->session_id);
    snprintf(data, sizeof data, "%ld churn", (long)getpid());
    struct zk_op *ops[CHURN_NODES];
    for (int i = 0; i < CHURN_NODES; i++) {
        ops[i] = dlock__zk_op_new(ch.c);
        ck_assert_int_eq(zoo_acreate2(ch.c->zh, prefix, data, (int)strlen(data), &ch.c->acl,
                                      3 /* ephemeral, sequential */, dlock__zk_create_done, ops[i]),
                         ZOK);
    }
    ck_assert_int_eq(dlock__zk_pump(ch.c, ops, CHURN_NODES, ch.deadline_ms, 0), ZK_PUMP_DONE);
    for (int i = 0; i < CHURN_NODES; i++) {
        ck_assert_int_eq(ops[i]->rc, ZOK);
        snprintf(ch.paths[i], sizeof ch.paths[i], "%s", ops[i]->text);
        dlock__zk_op_free(ops[i]);
    }
    char who[256];
    ck_assert_int_eq(dlock_holder(client, name, who, sizeof who), 1);
    ck_assert_msg(strstr(who, "churn") != NULL, "%s", who);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, delete_them_all, &ch), 0);
    int held = 0, free_ = 0, errors = 0;
    char first_error[512] = "";
    while (!atomic_load(&ch.done) || held + free_ + errors < 20) {
        int rc = dlock_holder(client, name, who, sizeof who);
        if (rc == 1)
            held++;
        else if (rc == 0)
            free_++;
        else if (errors++ == 0)
            snprintf(first_error, sizeof first_error, "%s: %s", dlock_strerror(rc), dlock_last_error());
    }
    pthread_join(t, NULL);
    ck_assert_int_eq(ch.failed, 0);
    ck_assert_msg(errors == 0, "%d of %d reads failed, the first: %s", errors, held + free_ + errors, first_error);
    ck_assert_int_eq(dlock_holder(client, name, who, sizeof who), 0);
    dlock__backend_zookeeper.disconnect(conn);
    free(ch.paths);
    free(dir);
}
END_TEST

/* ZooKeeper digest users: a name's history folder is its first writer's
 * alone (the lock nodes' ACL).  In a chroot that no credentials made (so
 * that every user may take locks there), user B's run of user A's name
 * keeps its job's status with one line that says why, B cannot read A's
 * runs, and A reads them. */
static void zk_history_of_another_user_in(const char *work_dir, const char *lock_name, const char *dlock_bin)
{
    const char *zk = getenv("DLOCK_TEST_ZK_URL");
    if (!zk || !*zk) {
        ck_assert_msg(!dlt_required("zookeeper"), "DLOCK_TEST_ZK_URL is required");
        return;
    }
    const char *hosts = zk + strlen("zookeeper://");
    char world[4400], a[4400], b[4400], out[4400], err[4400];
    snprintf(world, sizeof world, "zookeeper://%s/%s", hosts, lock_name);
    snprintf(a, sizeof a, "zookeeper://hist_a:pw-a@%s/%s", hosts, lock_name);
    snprintf(b, sizeof b, "zookeeper://hist_b:pw-b@%s/%s", hosts, lock_name);
    snprintf(out, sizeof out, "%s/out", work_dir);
    snprintf(err, sizeof err, "%s/err", work_dir);
    /* The chroot and its shared folders, made without credentials. */
    ck_assert_int_le(dlt_sh("'%s' check -u '%s' >'%s'", dlock_bin, world, out), 1);
    ck_assert_msg(strstr(dlt_slurp(out), "ok    history") != NULL, "%s", dlt_slurp(out));
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(a, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_history_add(c, "job", "ran", 0, 5, 0), DLOCK_OK);
    dlock_close(c);
    int rc = dlt_sh("'%s' check -u '%s' >'%s'", dlock_bin, b, out);
    const char *text = dlt_slurp(out);
    ck_assert_msg(rc <= 1 && strstr(text, "ok    rights") && strstr(text, "ok    history"), "exit %d: %s", rc, text);
    ck_assert_msg(!strstr(text, "pw-b"), "%s", text);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' job -- sh -c 'exit 4' 2>'%s'", dlock_bin, b, err), 4);
    text = dlt_slurp(err);
    ck_assert_msg(strstr(text, "is not in the run history") && strstr(text, "not allowed"), "%s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
    ck_assert_msg(!strstr(text, "pw-b"), "%s", text);
    ck_assert_int_ne(dlt_sh("'%s' history -u '%s' job >'%s' 2>&1", dlock_bin, b, out), 0);
    ck_assert_msg(strstr(dlt_slurp(out), "not allowed") != NULL, "%s", dlt_slurp(out));
    dlock_history *h = dlt_read_history(a, "job", 0);
    ck_assert_uint_eq(dlock_history_count(h), 1);
    dlock_history_free(h);
    /* B's own names are B's. */
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' mine -- true 2>'%s'", dlock_bin, b, err), 0);
    ck_assert_str_eq(dlt_slurp(err), "");
}
START_TEST(zk_history_of_another_user)
{
    char *work_dir = dlt_tmpdir(), *lock_name = dlt_unique_name("hist");
    zk_history_of_another_user_in(work_dir, lock_name, dlt_dlock_bin());
    dlt_sh("rm -rf '%s'", work_dir);
    free(work_dir);
    free(lock_name);
}
END_TEST

void dlt_zk_add_server(Suite *s)
{
    TCase *t = tcase_create("server");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, zkcli_sees_and_takes_the_same_lock);
    tcase_add_test(t, tokens_list_break_records);
    tcase_add_test(t, granted_lease);
    tcase_add_test(t, session_reused_and_lost_together);
    tcase_add_test(t, release_wakes_waiter_cancel_ends_wait);
    tcase_add_test(t, digest_acl_keeps_others_out);
    tcase_add_test(t, own_node_replaced_is_lost);
    tcase_add_test(t, same_session_new_node_is_lost);
    tcase_add_test(t, closed_session_loses_every_lock);
    tcase_add_test(t, run_job_inherits_no_socket);
    tcase_add_test(t, waiter_woken_by_a_leaving_waiter_still_waits);
    tcase_add_test(t, holder_read_while_the_lock_changes_hands);
    suite_add_tcase(s, t);
    tcase_add_test(t, zk_history_of_another_user);
}
