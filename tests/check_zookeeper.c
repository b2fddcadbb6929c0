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
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "zookeeper/backend.h"

static const char *url;
static char *name;
static dlock_client *client;

static void setup(void)
{
    ck_assert_int_eq(dlock_open(url, &client), DLOCK_OK);
    name = dlt_unique_name("zk");
}

static void teardown(void)
{
    dlock_close(client);
    client = NULL;
    free(name);
}

/* --- the ensemble ------------------------------------------------------------------- */

static int member_port(int n)
{
    char var[32];
    snprintf(var, sizeof var, "DLOCK_TEST_ZK_PORT%d", n);
    const char *v = getenv(var);
    ck_assert_ptr_nonnull(v);
    return atoi(v);
}

static pid_t member_pid(int n)
{
    char var[32];
    snprintf(var, sizeof var, "DLOCK_TEST_ZK_PIDFILE%d", n);
    const char *file = getenv(var);
    ck_assert_ptr_nonnull(file);
    FILE *f = fopen(file, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

/* A four-letter-word command's answer ("" when the member does not answer). */
static void four(int n, const char *cmd, char *out, size_t outlen)
{
    out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)member_port(n))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, cmd, strlen(cmd)) == (ssize_t)strlen(cmd)) {
        size_t used = 0;
        ssize_t r;
        while (used + 1 < outlen && (r = read(fd, out + used, outlen - used - 1)) > 0)
            used += (size_t)r;
        out[used] = '\0';
    }
    close(fd);
}

static int leader(void)
{
    char buf[4096];
    for (int n = 1; n <= 3; n++) {
        four(n, "srvr", buf, sizeof buf);
        if (strstr(buf, "Mode: leader"))
            return n;
    }
    return 0;
}

static void script(const char *action, int n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s '%s' %d >/dev/null", getenv("DLOCK_TEST_ZK_SCRIPT"), action,
             getenv("DLOCK_TEST_ZK_DIR"), n);
    ck_assert_int_eq(dlt_system(cmd), 0);
}

static void kill_member(int n)
{
    script("stop-member", n);
}

static void pause_member(int n, int sig)
{
    pid_t pid = member_pid(n);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(kill(pid, sig), 0);
}

/* Every member running and serving, with a leader: after each fault test. */
static void ensemble_whole(void)
{
    for (int n = 1; n <= 3; n++) {
        pid_t pid = member_pid(n);
        if (pid > 0)
            kill(pid, SIGCONT);
        script("start-member", n);
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' wait-leader '%s' >/dev/null", getenv("DLOCK_TEST_ZK_SCRIPT"),
             getenv("DLOCK_TEST_ZK_DIR"));
    ck_assert_int_eq(dlt_system(cmd), 0);
}

static void fault_setup(void)
{
    ensemble_whole();
    setup();
}

static void fault_teardown(void)
{
    teardown();
    ensemble_whole();
}

/* The session id in the name of the node that holds `n` ("s<16 hex>-"). */
static uint64_t holder_session(const char *n)
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

/* The member serving session `sid` (4lw cons), 0 none. */
static int member_of(uint64_t sid)
{
    char want[40], buf[16384];
    snprintf(want, sizeof want, "sid=0x%" PRIx64 ",", sid);
    for (int n = 1; n <= 3; n++) {
        four(n, "cons", buf, sizeof buf);
        if (strstr(buf, want))
            return n;
    }
    return 0;
}

/* Children of a folder, through a connection of the backend's own (a raw
 * view: no lock, no recipe). */
static int children_of(const char *dir, char ***out)
{
    struct dlock_conn *conn = NULL;
    ck_assert_int_eq(dlock__backend_zookeeper.connect(url, &conn), DLOCK_OK);
    zk_conn *c = zk_of(conn);
    struct dlock_call call = {dlock__now_ms() + 10000, 0};
    ck_assert_int_eq(dlock__zk_session(c, 0, &call), DLOCK_OK);
    struct zk_op *op = dlock__zk_op_new(c);
    ck_assert_int_eq(zoo_aget_children(c->zh, dir, 0, dlock__zk_strings_done, op), ZOK);
    ck_assert_int_eq(dlock__zk_pump(c, &op, 1, call.deadline_ms, 0), ZK_PUMP_DONE);
    int count = op->rc == ZOK ? op->count : 0;
    *out = calloc((size_t)count + 1, sizeof **out);
    for (int i = 0; i < count; i++)
        (*out)[i] = strdup(op->children[i]);
    dlock__zk_op_free(op);
    dlock__backend_zookeeper.disconnect(conn);
    return count;
}

static void free_strings(char **v)
{
    for (int i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static char *dir_of(const char *n)
{
    char *dir = malloc(ZK_PATH_MAX);
    size_t used = (size_t)snprintf(dir, ZK_PATH_MAX, "%s/", DLOCK_ZK_DEFAULT_BASE);
    ck_assert_int_eq(dlock__zk_encode(n, dir, ZK_PATH_MAX, &used), 0);
    return dir;
}

/* --- the URL parser ------------------------------------------------------------------- */

START_TEST(url_forms)
{
    struct dlock_zk_url u;
    ck_assert_int_eq(dlock__zk_parse_url("zookeeper://h", &u), DLOCK_OK);
    ck_assert_str_eq(u.hosts, "h:2181");
    ck_assert_str_eq(u.base, "/dlock");
    ck_assert_str_eq(u.prefix, "");
    ck_assert_ptr_null(u.user);
    dlock__zk_url_free(&u);
    ck_assert_int_eq(dlock__zk_parse_url("zookeeper://app:p%40ss@a:1,b,[::1]:3/my/locks/?prefix=x%2F", &u), DLOCK_OK);
    ck_assert_str_eq(u.hosts, "a:1,b:2181,[::1]:3");
    ck_assert_str_eq(u.base, "/my/locks");
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "p@ss");
    ck_assert_str_eq(u.prefix, "x/");
    dlock__zk_url_free(&u);
    ck_assert_int_eq(dlock__zk_parse_url("ZooKeeper://h:2/", &u), DLOCK_OK);
    ck_assert_str_eq(u.base, "/dlock");
    dlock__zk_url_free(&u);
}
END_TEST

START_TEST(url_hostile)
{
    static const char *const bad[] = {
        "zookeeper://",          "zookeeper://h:0",      "zookeeper://h:65536",   "zookeeper://h:x",
        "zookeeper://h,,g",      "zookeeper://::1",      "zookeeper://[::1",      "zookeeper://h/a//b",
        "zookeeper://h/a/../b",  "zookeeper://h/./b",    "zookeeper://h?db=1",    "zookeeper://h?mode=lease",
        "zookeeper://h?table=t", "zookeeper://:pw@h",    "zookeeper://user@h",    "zookeeper://h/a%00b",
        "zookeeper://h/%zz",     "zookeeper://h o",      "zookeeper://h/a%01",    "zookeeper://[::1]x",
        "zookeeper://h:66666666666666666666666", /* found by fuzz_zookeeper: the port's digits overflowed */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dlock_zk_url u;
        int rc = dlock__zk_parse_url(bad[i], &u);
        if (rc != DLOCK_EINVAL)
            ck_abort_msg("'%s' parsed (%d)", bad[i], rc);
    }
    struct dlock_zk_url u;
    ck_assert_int_eq(dlock__zk_parse_url("zookeepers://h:2281", &u), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "TLS"));
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open("zookeeper://u:Secret-Pw@h:1/%zz", &c), DLOCK_EINVAL);
    ck_assert_ptr_null(strstr(dlock_last_error(), "Secret-Pw"));
    ck_assert_int_eq(dlock_open("zookeeper://u:Secret-Pw@h:1?bogus=Secret-Pw", &c), DLOCK_EINVAL);
    ck_assert_ptr_null(strstr(dlock_last_error(), "Secret-Pw"));
}
END_TEST

/* --- the name encoding ----------------------------------------------------------------- */

static void encodes(const char *in, const char *want)
{
    char out[DLOCK_ZK_SEGMENT_MAX], back[DLOCK_ZK_SEGMENT_MAX];
    size_t used = 0;
    ck_assert_int_eq(dlock__zk_encode(in, out, sizeof out, &used), 0);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(used, strlen(want));
    ck_assert_int_eq(dlock__zk_decode(out, back, sizeof back), DLOCK_OK);
    ck_assert_str_eq(back, in);
}

START_TEST(name_encoding_vectors)
{
    encodes("nightly-backup_1", "nightly-backup_1");
    encodes("a/b", "a%2Fb");
    encodes(".", "%2E");
    encodes("..", "%2E%2E");
    encodes("zookeeper", "zookeeper");
    encodes("~records", "%7Erecords");
    encodes("a b%c", "a%20b%25c");
    encodes("caf\xc3\xa9", "caf%C3%A9");
    encodes("\x7f\x01", "%7F%01");
    /* Prefixes stay prefixes (dlock list PREFIX). */
    char whole[DLOCK_ZK_SEGMENT_MAX], part[DLOCK_ZK_SEGMENT_MAX];
    size_t wl = 0, pl = 0;
    ck_assert_int_eq(dlock__zk_encode("team/\xc3\xa9t\xc3\xa9/job", whole, sizeof whole, &wl), 0);
    ck_assert_int_eq(dlock__zk_encode("team/\xc3", part, sizeof part, &pl), 0);
    ck_assert_int_eq(strncmp(whole, part, pl), 0);
    /* Every encoding is one path segment, never "." or "..". */
    char every[256];
    for (int i = 1; i < 256; i++)
        every[i - 1] = (char)i;
    every[255] = '\0';
    size_t el = 0;
    ck_assert_int_eq(dlock__zk_encode(every, whole, sizeof whole, &el), 0);
    ck_assert_ptr_null(strchr(whole, '/'));
    ck_assert_ptr_null(strchr(whole, '.'));
    ck_assert_ptr_null(strchr(whole, '~'));
    for (const char *p = whole; *p; p++)
        ck_assert(isalnum((unsigned char)*p) || *p == '%' || *p == '-' || *p == '_');
    /* A 255-byte name of the worst kind, after a 255-byte prefix, fits. */
    char longest[256];
    memset(longest, '/', 255);
    longest[255] = '\0';
    size_t ll = 0;
    ck_assert_int_eq(dlock__zk_encode(longest, whole, sizeof whole, &ll), 0);
    ck_assert_int_eq(dlock__zk_encode(longest, whole, sizeof whole, &ll), 0);
    ck_assert_uint_eq(ll, 3 * 510);
    /* Decoding refuses what libdlock never makes: one encoding per name. */
    static const char *const not_ours[] = {"a/b", "%2f", "%41", "%4", "%", "a.b", "%00", "~clock", ""};
    char back[64];
    for (size_t i = 0; i < sizeof not_ours / sizeof not_ours[0]; i++)
        ck_assert_int_eq(dlock__zk_decode(not_ours[i], back, sizeof back), DLOCK_EINVAL);
}
END_TEST

/* --- the nodes as others see them ----------------------------------------------------- */

static char *zkcli(const char *commands, int hold_s)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "(printf '%%s\\n' %s; sleep %d; echo quit) | /usr/share/zookeeper/bin/zkCli.sh -server 127.0.0.1:%d 2>&1 | "
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
    ck_assert_int_eq(dlock__backend_zookeeper.connect(url, &conn), DLOCK_OK);
    zk_conn *c = zk_of(conn);
    struct dlock_call call = {dlock__now_ms() + 10000, 0};
    ck_assert_int_eq(dlock__zk_session(c, 0, &call), DLOCK_OK);
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

/* --- real faults (issue 21, point 5) ------------------------------------------------- */

/* Another client tries the lock over and over from its own thread (its
 * calls may block while members are down): it must never get it. */
struct rival {
    const char *name;
    atomic_int stop;
    atomic_int granted, tries;
};

static void *rival_main(void *arg)
{
    struct rival *r = arg;
    dlock_client *other = NULL;
    if (dlock_open(url, &other) != DLOCK_OK)
        return NULL;
    while (!atomic_load(&r->stop)) {
        dlock_lock *theirs = NULL;
        if (dlock_acquire(other, r->name, 6000, 0, &theirs) == DLOCK_OK) {
            atomic_fetch_add(&r->granted, 1);
            dlock_release(theirs);
        }
        atomic_fetch_add(&r->tries, 1);
        dlt_sleep_ms(200);
    }
    dlock_close(other);
    return NULL;
}

/* The lease of the leader faults: an election after a stopped leader, and
 * the holder's move to another server, must fit in it also on a loaded
 * machine (docs/zookeeper.md advises TTLs of a minute). */
#define LEADER_FAULT_TTL_MS 20000

/* Keep `l` extended (every 500 ms) for ms while a rival tries the lock: never lost here, never granted there. */
static void hold_through(dlock_lock *l, int64_t ms, const char *n)
{
    struct rival r = {.name = n};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, rival_main, &r), 0);
    int64_t end = dlt_now_ms() + ms;
    while (dlt_now_ms() < end) {
        int rc = dlock_extend(l, LEADER_FAULT_TTL_MS);
        ck_assert_msg(rc == DLOCK_OK || rc == DLOCK_ECONN, "extend: %s", dlock_last_error());
        ck_assert_int_gt(dlock_remaining_ms(l), 0);
        if (getenv("DLOCK_ZK_DEBUG"))
            fprintf(stderr, "%lld extend %d %s remaining %lld\n", (long long)dlt_now_ms(), rc,
                    rc ? dlock_last_error() : "", (long long)dlock_remaining_ms(l));
        dlt_sleep_ms(500);
    }
    atomic_store(&r.stop, 1);
    pthread_join(thread, NULL);
    ck_assert_int_gt(atomic_load(&r.tries), 0);
    ck_assert_int_eq(atomic_load(&r.granted), 0);
}

static void leader_fault(int sig)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, LEADER_FAULT_TTL_MS, 0, &l), DLOCK_OK);
    uint64_t before = 0, after = 0;
    ck_assert_int_eq(dlock_fence(l, &before), DLOCK_OK);
    int lead = leader();
    ck_assert_int_gt(lead, 0);
    if (sig == SIGKILL)
        kill_member(lead);
    else
        pause_member(lead, SIGSTOP);
    hold_through(l, 8000, name);
    int now_leads = leader();
    ck_assert_int_ne(now_leads, 0); /* a new one was elected */
    ck_assert_int_ne(now_leads, lead);
    int rc = dlock_extend(l, LEADER_FAULT_TTL_MS);
    ck_assert_msg(rc == DLOCK_OK, "extend after the fault: %s", dlock_last_error());
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &after), DLOCK_OK);
    ck_assert_uint_gt(after, before);
    ck_assert_uint_gt(after >> 32, before >> 32); /* a new epoch */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}

START_TEST(leader_killed_lock_stays)
{
    leader_fault(SIGKILL);
}
END_TEST

START_TEST(leader_stopped_lock_stays)
{
    leader_fault(SIGSTOP);
}
END_TEST

/* SIGSTOP of the member the holder's session is on: the client moves to
 * another member and keeps the lock. */
START_TEST(holders_member_stopped_moves)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    uint64_t sid = holder_session(name);
    int member = member_of(sid);
    ck_assert_int_gt(member, 0);
    pause_member(member, SIGSTOP);
    hold_through(l, 8000, name);
    int now_on = member_of(sid);
    ck_assert_int_gt(now_on, 0);
    ck_assert_int_ne(now_on, member);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A holder that stops calling (idle, or all its threads stopped while the
 * process lives): the lock is free within the TTL plus one tick (100 ms),
 * and the holder gets DLOCK_ELOST when it wakes. */
static void silent_holder(int stop)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 2000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    int64_t granted = dlt_now_ms();
    if (stop)
        ck_assert_int_eq(kill(holder.pid, SIGSTOP), 0);
    int64_t took = dlt_acquire_within(url, name, 2000, 8000);
    ck_assert_int_ge(took, 0);
    int64_t free_after = dlt_now_ms() - granted;
    /* TTL + one tick, and what the poll of the tries adds. */
    ck_assert_msg(free_after <= 2000 + 100 + 400, "free after %lld ms", (long long)free_after);
    ck_assert_msg(free_after >= 1500, "free after %lld ms: before the lease ran out", (long long)free_after);
    if (stop)
        ck_assert_int_eq(kill(holder.pid, SIGCONT), 0);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 2000", 10000), DLOCK_ELOST);
    dlt_child_stop(&holder, SIGKILL);
}

START_TEST(idle_holder_lost_within_ttl)
{
    silent_holder(0);
}
END_TEST

START_TEST(stopped_holder_lost_within_ttl)
{
    silent_holder(1);
}
END_TEST

/* The connection breaks right after a create was sent (the member the
 * session is on is stopped, so the create gets no answer): the acquire
 * completes through another member, and no orphan node is left to hold or
 * queue for the lock, also once the stopped member resumes and reads the
 * request it had buffered. */
START_TEST(lost_create_reply_leaves_no_orphan)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 6000, 0, &l), DLOCK_OK);
    uint64_t sid = holder_session(name);
    int member = member_of(sid);
    ck_assert_int_gt(member, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    pause_member(member, SIGSTOP);
    ck_assert_int_eq(dlock_acquire(client, name, 6000, 0, &l), DLOCK_OK);
    ck_assert_uint_eq(holder_session(name), sid); /* the same session, moved */
    pause_member(member, SIGCONT);
    dlt_sleep_ms(1000);
    char *dir = dir_of(name), **kids = NULL;
    int count = children_of(dir, &kids);
    ck_assert_msg(count == 1, "%d nodes in the folder, first %s", count, count ? kids[0] : "");
    free_strings(kids);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(children_of(dir, &kids), 0);
    free_strings(kids);
    free(dir);
}
END_TEST

/* A record written through one member and read through another right after
 * (the read syncs with the leader first). */
START_TEST(record_written_here_read_there)
{
    char one[128], two[128];
    snprintf(one, sizeof one, "zookeeper://127.0.0.1:%d", member_port(1));
    snprintf(two, sizeof two, "zookeeper://127.0.0.1:%d", member_port(2));
    dlock_client *a = NULL, *b = NULL;
    ck_assert_int_eq(dlock_open(one, &a), DLOCK_OK);
    ck_assert_int_eq(dlock_open(two, &b), DLOCK_OK);
    for (int64_t slot = 1; slot <= 20; slot++) {
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(a, name, 5000, 0, &l), DLOCK_OK);
        ck_assert_int_eq(dlock_record_put(l, slot), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        ck_assert_int_eq(dlock_acquire(b, name, 5000, 0, &l), DLOCK_OK);
        int64_t seen = 0;
        ck_assert_int_eq(dlock_record_get(l, &seen), DLOCK_OK);
        ck_assert_int_eq(seen, slot);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    dlock_close(a);
    dlock_close(b);
}
END_TEST

/* A waiter whose session expires while it waits (stopped longer than its
 * TTL) never reports a grant: the lock went to another meanwhile. */
START_TEST(expired_waiter_never_granted)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    dlt_child waiter;
    ck_assert_int_eq(dlt_child_start(&waiter, url, name, 1000, 6000), 0);
    dlt_sleep_ms(500);
    ck_assert_int_eq(kill(waiter.pid, SIGSTOP), 0);
    dlt_sleep_ms(1000 + 1000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_client *third = NULL;
    ck_assert_int_eq(dlock_open(url, &third), DLOCK_OK);
    dlock_lock *theirs = NULL;
    ck_assert_int_eq(dlock_acquire(third, name, 5000, 0, &theirs), DLOCK_OK);
    ck_assert_int_eq(kill(waiter.pid, SIGCONT), 0);
    /* The waiter's answer comes at the end of its wait: busy. */
    int64_t end = dlt_now_ms() + 9000;
    int answer = DLT_TIMEOUT;
    while (answer == DLT_TIMEOUT && dlt_now_ms() < end) {
        ck_assert_int_eq(dlock_extend(theirs, 5000), DLOCK_OK);
        answer = dlt_child_read(&waiter, 500);
    }
    ck_assert_int_eq(answer, DLOCK_EBUSY);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_OK);
    dlock_close(third);
    dlt_child_stop(&waiter, SIGKILL);
}
END_TEST

/* No quorum (two members stopped): extend fails, the lock is lost at the
 * end of its lease, and dlock run stops the job and exits 79. */
START_TEST(no_quorum_lease_ends)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 2000, 0, &l), DLOCK_OK);
    char cmd[2048];
    char *job = dlt_unique_name("zk-run");
    snprintf(cmd, sizeof cmd, "'%s' run -u '%s' -t 2s -k 1s '%s' -- sleep 60; echo $? >'%s/run.rc'",
             getenv("DLOCK_BIN"), url, job, getenv("DLOCK_TEST_ZK_DIR"));
    fflush(NULL);
    pid_t run = fork();
    ck_assert_int_ge(run, 0);
    if (run == 0)
        _exit(dlt_system(cmd));
    for (int i = 0; i < 50; i++) { /* dlock run holds its lock */
        char who[256];
        if (dlock_holder(client, job, who, sizeof who) == 1)
            break;
        dlt_sleep_ms(100);
    }
    ck_assert_int_eq(dlock_extend(l, 2000), DLOCK_OK);
    int lead = leader(), a = lead == 1 ? 2 : 1, b = lead == 3 ? 2 : 3;
    pause_member(a, SIGSTOP);
    pause_member(b, SIGSTOP);
    /* The leader answers until it sees it has lost its followers (syncLimit,
     * 2 s); then nothing does, and the lease ends a TTL after the last
     * extend that was answered. */
    int64_t stopped = dlt_now_ms(), last_ok = stopped;
    int rc = DLOCK_OK;
    while (rc != DLOCK_ELOST && dlt_now_ms() - stopped < 9000) {
        int64_t sent = dlt_now_ms();
        rc = dlock_extend(l, 2000);
        if (rc == DLOCK_OK)
            last_ok = sent;
        dlt_sleep_ms(100);
    }
    ck_assert_int_eq(rc, DLOCK_ELOST);
    ck_assert_int_lt(last_ok - stopped, 2500);
    ck_assert_int_le(dlt_now_ms() - last_ok, 2000 + 600);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    int status = 0;
    int64_t waited = dlt_now_ms();
    ck_assert_int_eq(waitpid(run, &status, 0), run);
    ck_assert_int_lt(dlt_now_ms() - waited, 6000);
    char rcfile[1024];
    snprintf(rcfile, sizeof rcfile, "%s/run.rc", getenv("DLOCK_TEST_ZK_DIR"));
    FILE *f = fopen(rcfile, "r");
    ck_assert_ptr_nonnull(f);
    int run_rc = -1;
    ck_assert_int_eq(fscanf(f, "%d", &run_rc), 1);
    fclose(f);
    ck_assert_int_eq(run_rc, 79);
    /* No server answers: the release cannot say more than that. */
    rc = dlock_release(l);
    ck_assert_msg(rc == DLOCK_ELOST || rc == DLOCK_ECONN, "release: %d", rc);
    free(job);
}
END_TEST

static Suite *zookeeper_suite(int with_server)
{
    Suite *s = suite_create("zookeeper");
    TCase *t = tcase_create("url");
    tcase_add_test(t, url_forms);
    tcase_add_test(t, url_hostile);
    tcase_add_test(t, name_encoding_vectors);
    suite_add_tcase(s, t);
    if (!with_server)
        return s;
    t = tcase_create("server");
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
    suite_add_tcase(s, t);
    t = tcase_create("faults");
    tcase_add_checked_fixture(t, fault_setup, fault_teardown);
    tcase_set_timeout(t, 90);
    tcase_add_test(t, leader_killed_lock_stays);
    tcase_add_test(t, leader_stopped_lock_stays);
    tcase_add_test(t, holders_member_stopped_moves);
    tcase_add_test(t, idle_holder_lost_within_ttl);
    tcase_add_test(t, stopped_holder_lost_within_ttl);
    tcase_add_test(t, lost_create_reply_leaves_no_orphan);
    tcase_add_test(t, record_written_here_read_there);
    tcase_add_test(t, expired_waiter_never_granted);
    tcase_add_test(t, no_quorum_lease_ends);
    suite_add_tcase(s, t);
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
    SRunner *sr = srunner_create(zookeeper_suite(url != NULL));
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed)
        return 1;
    return url ? 0 : DLT_SKIP;
}
