/*
 * The etcd backend against a real three-member cluster
 * (tests/etcd-server.sh): the URL parser, the key encoding with vectors,
 * keys written by etcdctl read by libdlock and back, and the real faults of
 * issue 22: the leader killed (kill -9) and stopped (SIGSTOP) while a lock
 * is held, the member the holder talks to stopped, a stopped holder, a
 * lease revoked and a key deleted with etcdctl, a waiter whose lease ends
 * while it waits, and no quorum.
 *
 * Needs DLOCK_TEST_ETCD_URL and DLOCK_TEST_ETCD_DIR (skips without them,
 * fails when DLOCK_TEST_REQUIRE names etcd or all).  The fault tests stop
 * and kill members; each test's teardown brings the whole cluster back.
 */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "etcd/suite.h"
#include "etcd/url.h"
#include "internal.h"

static const char *url;
static char *name;
static dlock_client *client;

/* --- helpers ---------------------------------------------------------------------------- */

static void resume_cluster(void);

static void setup(void)
{
    resume_cluster(); /* a failed test's teardown does not run */
    dlt_fixture_open(url, "etcd", &client, &name);
}

/* Every member running again and a leader elected. */
static void resume_cluster(void)
{
    const char *src = getenv("top_srcdir"), *dir = getenv("DLOCK_TEST_ETCD_DIR");
    ck_assert_msg(dir != NULL, "DLOCK_TEST_ETCD_DIR is not set");
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "'%s/tests/etcd-server.sh' resume '%s' >/dev/null", src ? src : "..", dir);
    ck_assert_int_eq(dlt_system(cmd), 0);
}

static void teardown(void)
{
    dlt_fixture_close(&client, &name);
    resume_cluster();
}

/* etcdctl with the cluster's endpoints: its standard output (trimmed) into
 * out, its exit status returned. */
static int ctl(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int ctl(char *out, size_t outlen, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl --endpoints='%s' --command-timeout=5s %s 2>/dev/null",
             getenv("DLOCK_TEST_ETCD_ENDPOINTS"), args);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = out ? fread(out, 1, outlen - 1, p) : 0;
    if (out) {
        out[n] = '\0';
        while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
            out[--n] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof sink, p) > 0) {
        }
    }
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The pid of member n (1..3) from its pid file (a restart changes it). */
static pid_t member_pid(int n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/m%d.pid", getenv("DLOCK_TEST_ETCD_DIR"), n);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long pid = -1;
    ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    return (pid_t)pid;
}

/* The member (1..3) that leads now, as `etcdctl endpoint status` says. */
static int leader_member(void)
{
    for (int tries = 0; tries < 50; tries++) {
        char out[8192];
        ctl(out, sizeof out, "--command-timeout=1s endpoint status -w json");
        for (int n = 1; n <= 3; n++) {
            char var[32], want[64];
            snprintf(var, sizeof var, "DLOCK_TEST_ETCD_EP%d", n);
            snprintf(want, sizeof want, "\"Endpoint\":\"%s\"", getenv(var));
            const char *e = strstr(out, want), *m = e ? strstr(e, "\"member_id\":") : NULL;
            const char *l = e ? strstr(e, "\"leader\":") : NULL;
            if (m && l && strtoull(m + 12, NULL, 10) == strtoull(l + 9, NULL, 10) && strtoull(l + 9, NULL, 10))
                return n;
        }
        dlt_sleep_ms(100);
    }
    ck_abort_msg("no leader found");
    return 0;
}

/* The key of the lowest contender of `n` and its lease (decimal). */
static int lowest(const char *n, int index, char *key, size_t keylen, char *lease, size_t leaselen)
{
    char out[8192], prefix[DLOCK_ETCD_KEY_MAX];
    dlock__etcd_name_prefix("dlock", n, prefix);
    ctl(out, sizeof out, "get --prefix '%s' --sort-by=CREATE --order=ASCEND -w fields", prefix);
    const char *k = out;
    for (int i = 0; i <= index; i++) {
        k = strstr(k, "\"Key\" : \"");
        if (!k)
            return 0;
        k += 9;
    }
    snprintf(key, keylen, "%.*s", (int)strcspn(k, "\""), k);
    const char *l = strstr(k, "\"Lease\" : ");
    ck_assert_ptr_nonnull(l);
    snprintf(lease, leaselen, "%llx", strtoull(l + 10, NULL, 10));
    return 1;
}

static uint64_t fence_of(dlock_lock *l)
{
    uint64_t token = 0;
    ck_assert_int_eq(dlock_fence(l, &token), DLOCK_OK);
    ck_assert_uint_gt(token, 0);
    return token;
}

/* Another client may not take `n` now. */
static void nobody_else_gets(const char *n)
{
    dlock_client *other = NULL;
    ck_assert_msg(dlock_open(url, &other) == DLOCK_OK, "%s", dlock_last_error());
    dlock_lock *l = NULL;
    int rc = dlock_acquire(other, n, 5000, 0, &l);
    ck_assert_msg(rc == DLOCK_EBUSY, "another client: %d %s", rc, dlock_last_error());
    dlock_close(other);
}

/* --- etcdctl and libdlock on the same keys -------------------------------------------- */

/* libdlock's key is PREFIX/NAME/LEASEID, on a lease of at least the TTL in
 * whole seconds, holding the holder's text; etcdctl sees all of it. */
START_TEST(etcdctl_reads_our_keys)
{
    char *slashed = dlt_unique_name("etcd/with/slash");
    dlock_lock *l = NULL, *s = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 2500, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, slashed, 5000, 0, &s), DLOCK_OK);
    char key[DLOCK_ETCD_KEY_MAX], lease[32], out[4096], want[DLOCK_ETCD_KEY_MAX];
    ck_assert(lowest(name, 0, key, sizeof key, lease, sizeof lease));
    snprintf(want, sizeof want, "dlock/%s/%s", name, lease);
    ck_assert_str_eq(key, want);
    ctl(out, sizeof out, "get '%s' --print-value-only", key);
    ck_assert_msg(strncmp(out, "host=", 5) == 0 && strstr(out, " pid="), "value: %s", out);
    ctl(out, sizeof out, "lease timetolive %s", lease);
    ck_assert_msg(strstr(out, "granted with TTL(3s)"), "lease: %s", out); /* 2.5 s: 3 whole seconds */
    /* The fence is the key's creation revision. */
    ctl(out, sizeof out, "get '%s' -w fields", key);
    char rev[32];
    snprintf(rev, sizeof rev, "\"CreateRevision\" : %" PRIu64 "\n", fence_of(l));
    ck_assert_msg(strstr(out, rev), "%s", out);
    /* A '/' in a name is escaped: the key stays one level deep. */
    char escaped[DLOCK_ETCD_KEY_MAX];
    dlock__etcd_name_prefix("dlock", slashed, escaped);
    ck_assert(strstr(escaped, "%2F"));
    ctl(out, sizeof out, "get --prefix '%s' --keys-only", escaped);
    ck_assert_msg(strncmp(out, escaped, strlen(escaped)) == 0, "%s", out);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(s), DLOCK_OK);
    ctl(out, sizeof out, "get --prefix 'dlock/%s/' --keys-only", name);
    ck_assert_str_eq(out, "");
    free(slashed);
}
END_TEST

/* `etcdctl lock dlock/NAME` is the same recipe: it and libdlock exclude
 * each other both ways. */
START_TEST(etcdctl_lock_is_the_same_lock)
{
    char cmd[4400], flag[4300], out[4096];
    char *dir = dlt_tmpdir();
    snprintf(flag, sizeof flag, "%s/got", dir);
    /* etcdctl holds for 2 s: libdlock's try is busy, its wait gets it after. */
    snprintf(cmd, sizeof cmd,
             "ETCDCTL_API=3 etcdctl --endpoints='%s' lock 'dlock/%s' -- sh -c 'touch %s; sleep 2' >/dev/null 2>&1 &",
             getenv("DLOCK_TEST_ETCD_ENDPOINTS"), name, flag);
    ck_assert_int_eq(dlt_system(cmd), 0);
    for (int i = 0; i < 100 && access(flag, F_OK) != 0; i++)
        dlt_sleep_ms(50);
    ck_assert_int_eq(access(flag, F_OK), 0);
    char holder[512];
    ck_assert_int_eq(dlock_holder(client, name, holder, sizeof holder), 1);
    ck_assert_msg(strncmp(holder, "key=dlock/", 10) == 0, "%s", holder);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    int64_t start = dlt_now_ms();
    ck_assert_msg(dlock_acquire(client, name, 5000, 10000, &l) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_int_ge(dlt_now_ms() - start, 1000);
    /* libdlock holds: etcdctl lock waits (and is stopped by timeout; its
     * key lives on for its 1 s lease). */
    unlink(flag);
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 timeout 1.5 etcdctl --endpoints='%s' lock --ttl=1 'dlock/%s' touch %s",
             getenv("DLOCK_TEST_ETCD_ENDPOINTS"), name, flag);
    ck_assert_int_ne(dlt_system(cmd), 0);
    ck_assert_int_ne(access(flag, F_OK), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 timeout 5 etcdctl --endpoints='%s' lock 'dlock/%s' touch %s >/dev/null",
             getenv("DLOCK_TEST_ETCD_ENDPOINTS"), name, flag);
    ck_assert_int_eq(dlt_system(cmd), 0);
    ck_assert_int_eq(access(flag, F_OK), 0);
    ctl(out, sizeof out, "get --prefix 'dlock/%s/' --keys-only", name);
    ck_assert_str_eq(out, "");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
}
END_TEST

/* --- faults ------------------------------------------------------------------------------ */

/* Extend every 500 ms for ms: each must succeed (within its lease of
 * ttl), and the other client may not take the lock meanwhile.  (A client's
 * first call after a member stopped costs it that member's share of the
 * call's deadline, and a follower forwards a keep-alive to a stopped leader
 * until the election: the TTL leaves room for both.) */
static void keep_holding(dlock_lock *l, uint32_t ttl, dlock_client *other, int64_t ms)
{
    int64_t until = dlt_now_ms() + ms;
    while (dlt_now_ms() < until) {
        int rc = dlock_extend(l, ttl);
        ck_assert_msg(rc == DLOCK_OK, "extend: %d %s", rc, dlock_last_error());
        dlock_lock *theirs = NULL;
        rc = dlock_acquire(other, name, 5000, 0, &theirs);
        ck_assert_msg(rc == DLOCK_EBUSY, "another client: %d %s", rc, dlock_last_error());
        dlt_sleep_ms(500);
    }
}

static void leader_fault(int sig)
{
    dlock_lock *l = NULL;
    dlock_client *other = NULL;
    ck_assert_int_eq(dlock_open(url, &other), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    uint64_t first = fence_of(l);
    int leader = leader_member();
    ck_assert_int_eq(kill(member_pid(leader), sig), 0);
    keep_holding(l, 10000, other, 4000);
    dlock_close(other);
    int now_leader = leader_member();
    ck_assert_int_ne(now_leader, leader);
    fprintf(stderr, "leader %s: member %d, then member %d led; the lock was held throughout\n",
            sig == SIGKILL ? "killed" : "stopped", leader, now_leader);
    int rc = dlock_release(l);
    ck_assert_msg(rc == DLOCK_OK, "release: %d %s", rc, dlock_last_error());
    resume_cluster();
    ck_assert_int_eq(dlock_acquire(client, name, 3000, 0, &l), DLOCK_OK);
    ck_assert_uint_gt(fence_of(l), first);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}

/* leader_killed_lock_stays and leader_stopped_lock_stays */
DLT_LEADER_FAULT_TESTS(leader_fault)

/* The member the holder talks to (the URL's first) stops: the holder moves
 * on to the next within its extend's deadline and keeps the lock. */
START_TEST(holders_member_stopped)
{
    dlock_lock *l = NULL;
    dlock_client *other = NULL;
    ck_assert_int_eq(dlock_open(url, &other), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 3000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(kill(member_pid(1), SIGSTOP), 0);
    int64_t start = dlt_now_ms();
    ck_assert_msg(dlock_extend(l, 6000) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_int_lt(dlt_now_ms() - start, 2500); /* a third of the 3 s left, then the next member */
    keep_holding(l, 6000, other, 2000);
    dlock_close(other);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A stopped holder: its lock is free within TTL plus the lease rounding,
 * and it learns DLOCK_ELOST when it wakes. */
START_TEST(stopped_holder_loses_the_lock)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 1500, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    int64_t stopped = dlt_now_ms();
    ck_assert_int_eq(kill(holder.pid, SIGSTOP), 0);
    nobody_else_gets(name);
    dlock_lock *l = NULL;
    ck_assert_msg(dlock_acquire(client, name, 5000, 10000, &l) == DLOCK_OK, "%s", dlock_last_error());
    int64_t freed = dlt_now_ms() - stopped;
    /* 1.5 s is a 2 s lease; the leader looks for expired leases every 500 ms. */
    ck_assert_msg(freed >= 1400 && freed <= 2000 + 1500, "freed after %lld ms", (long long)freed);
    fprintf(stderr, "stopped holder: its 1.5 s lock (a 2 s lease) went to another client %lld ms after the stop\n",
            (long long)freed);
    kill(holder.pid, SIGCONT);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 1500", 10000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 10000), DLOCK_ELOST);
    dlt_child_stop(&holder, SIGKILL);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

START_TEST(lease_revoked_with_etcdctl)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &l), DLOCK_OK);
    char key[DLOCK_ETCD_KEY_MAX], lease[32];
    ck_assert(lowest(name, 0, key, sizeof key, lease, sizeof lease));
    ck_assert_int_eq(ctl(NULL, 0, "lease revoke %s", lease), 0);
    ck_assert_int_eq(dlock_extend(l, 60000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* Delete the key of contender `index` (0: the holder) and write it again
 * by hand, on the same lease: a key of that name, but a new creation
 * revision, so not ours. */
static void rewrite_behind_back_at(const char *n, int index)
{
    char key[DLOCK_ETCD_KEY_MAX], lease[32], out[64];
    ck_assert(lowest(n, index, key, sizeof key, lease, sizeof lease));
    ck_assert_int_eq(ctl(out, sizeof out, "del '%s'", key), 0);
    ck_assert_str_eq(out, "1");
    ck_assert_int_eq(ctl(out, sizeof out, "put '%s' intruder --lease=%s", key, lease), 0);
}

static void rewrite_behind_back(const char *n)
{
    rewrite_behind_back_at(n, 0);
}

START_TEST(key_deleted_with_etcdctl)
{
    dlock_lock *l = NULL;
    char out[64];
    /* extend */
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &l), DLOCK_OK);
    rewrite_behind_back(name);
    ck_assert_int_eq(dlock_extend(l, 60000), DLOCK_ELOST);
    dlock_release(l);
    ck_assert_int_eq(ctl(out, sizeof out, "del --prefix 'dlock/%s/'", name), 0);
    /* release, first thing after */
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &l), DLOCK_OK);
    rewrite_behind_back(name);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST); /* (revoking its own lease takes the intruder along) */
    ck_assert_int_eq(ctl(out, sizeof out, "del --prefix 'dlock/%s/'", name), 0);
    /* run records */
    int64_t slot = 0;
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(l, 1234), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1234);
    rewrite_behind_back(name);
    ck_assert_int_eq(dlock_record_put(l, 5678), DLOCK_ELOST);
    dlock_release(l);
    ck_assert_int_eq(ctl(out, sizeof out, "del --prefix 'dlock/%s/'", name), 0);
    /* a new TTL moves the key to a new lease, guarded: not a key that is gone */
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(ctl(out, sizeof out, "del --prefix 'dlock/%s/'", name), 0);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    dlock_release(l);
}
END_TEST

/* A new TTL moves the own key to a new lease: the old one is revoked, the
 * key and its fence stay. */
START_TEST(extend_with_new_ttl_moves_the_lease)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 2000, 0, &l), DLOCK_OK);
    uint64_t fence = fence_of(l);
    char key[DLOCK_ETCD_KEY_MAX], lease[32], key2[DLOCK_ETCD_KEY_MAX], lease2[32], out[512];
    ck_assert(lowest(name, 0, key, sizeof key, lease, sizeof lease));
    ck_assert_int_eq(dlock_extend(l, 7000), DLOCK_OK);
    ck_assert(lowest(name, 0, key2, sizeof key2, lease2, sizeof lease2));
    ck_assert_str_eq(key2, key);
    ck_assert_str_ne(lease2, lease);
    ctl(out, sizeof out, "lease timetolive %s", lease2);
    ck_assert_msg(strstr(out, "granted with TTL(7s)"), "%s", out);
    ctl(out, sizeof out, "lease timetolive %s", lease);
    ck_assert_msg(strstr(out, "already expired"), "the old lease: %s", out);
    ck_assert_uint_eq(fence_of(l), fence);
    dlt_sleep_ms(2500); /* past the old lease */
    ck_assert_int_eq(dlock_extend(l, 7000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

struct waiter {
    const char *url, *name;
    uint32_t ttl;
    int rc;
    int64_t granted_at;
    uint64_t fence;
    dlock_client *c;
    dlock_lock *l;
};

static void *waiter_main(void *p)
{
    struct waiter *w = p;
    w->rc = dlock_acquire(w->c, w->name, w->ttl, 15000, &w->l);
    w->granted_at = dlt_now_ms();
    if (w->rc == DLOCK_OK)
        dlock_fence(w->l, &w->fence);
    return NULL;
}

static void waiter_start(struct waiter *w, pthread_t *t, uint32_t ttl)
{
    memset(w, 0, sizeof *w);
    w->url = url;
    w->name = name;
    w->ttl = ttl;
    ck_assert_int_eq(dlock_open(url, &w->c), DLOCK_OK);
    ck_assert_int_eq(pthread_create(t, NULL, waiter_main, w), 0);
}

/* The number of contenders of `name`, waiting up to 5 s for `want`. */
static int contenders_become(int want)
{
    char key[DLOCK_ETCD_KEY_MAX], lease[32];
    for (int i = 0; i < 100; i++) {
        int n = 0;
        while (lowest(name, n, key, sizeof key, lease, sizeof lease))
            n++;
        if (n == want)
            return n;
        dlt_sleep_ms(50);
    }
    return -1;
}

/* The end of a test where the first waiter w lost its place: the holder
 * lets go, the later waiter c2 is granted first, and w only after c2, with
 * a higher token. */
static void later_waiter_first(dlock_lock *held, struct waiter *w, pthread_t tw, struct waiter *c2, pthread_t tc)
{
    dlt_sleep_ms(200);
    int64_t released = dlt_now_ms();
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    pthread_join(tc, NULL);
    ck_assert_msg(c2->rc == DLOCK_OK, "the later waiter: %d", c2->rc);
    ck_assert_int_lt(c2->granted_at - released, 2000);
    dlt_sleep_ms(1500); /* w must still be waiting: c2 holds */
    ck_assert_int_eq(w->rc, 0);
    ck_assert_ptr_null(w->l);
    ck_assert_int_eq(dlock_release(c2->l), DLOCK_OK);
    pthread_join(tw, NULL);
    ck_assert_msg(w->rc == DLOCK_OK, "the first waiter: %d", w->rc);
    ck_assert_uint_gt(w->fence, c2->fence);
    ck_assert_int_eq(dlock_release(w->l), DLOCK_OK);
    dlock_close(w->c);
    dlock_close(c2->c);
}

/* A waiter whose lease (and key) is gone while it waits never reports a
 * grant on it: it queues again, behind a waiter that came later. */
START_TEST(waiter_whose_lease_ends_never_granted)
{
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &held), DLOCK_OK);
    struct waiter w, c2;
    pthread_t tw, tc;
    waiter_start(&w, &tw, 3000);
    ck_assert_int_eq(contenders_become(2), 2);
    waiter_start(&c2, &tc, 60000);
    ck_assert_int_eq(contenders_become(3), 3);
    char key[DLOCK_ETCD_KEY_MAX], lease[32];
    ck_assert(lowest(name, 1, key, sizeof key, lease, sizeof lease)); /* w's key */
    ck_assert_int_eq(ctl(NULL, 0, "lease revoke %s", lease), 0);
    later_waiter_first(held, &w, tw, &c2, tc);
}
END_TEST

/* A waiter whose own key is taken away while it waits (deleted with
 * etcdctl, or deleted and written again on its lease: a key of that name
 * but a new creation revision), its lease left alive: when it is woken,
 * its renewal succeeds and its read (sent at once) finds the key not its
 * own.  It is never granted on it: it queues again, behind a waiter that
 * came later, which gets the lock first; its own grant comes after, with a
 * higher token. */
static void waiter_key_taken(int rewrite)
{
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &held), DLOCK_OK);
    struct waiter w, c2;
    pthread_t tw, tc;
    waiter_start(&w, &tw, 60000);
    ck_assert_int_eq(contenders_become(2), 2);
    waiter_start(&c2, &tc, 60000);
    ck_assert_int_eq(contenders_become(3), 3);
    char key[DLOCK_ETCD_KEY_MAX], lease[32], out[64];
    ck_assert(lowest(name, 1, key, sizeof key, lease, sizeof lease)); /* w's key */
    if (rewrite) {
        rewrite_behind_back_at(name, 1);
    } else {
        ck_assert_int_eq(ctl(out, sizeof out, "del '%s'", key), 0);
        ck_assert_str_eq(out, "1");
    }
    ctl(out, sizeof out, "lease timetolive %s", lease);
    ck_assert_msg(strstr(out, "remaining"), "w's lease must stay alive: %s", out);
    later_waiter_first(held, &w, tw, &c2, tc);
}

START_TEST(waiter_whose_key_is_deleted_never_granted)
{
    waiter_key_taken(0);
}
END_TEST

START_TEST(waiter_whose_key_is_rewritten_never_granted)
{
    waiter_key_taken(1);
}
END_TEST

/* The member a waiter talks to stops while it waits: its watch goes
 * silent, its next renewal and read (sent at once) get no answer from that
 * member and are sent again to the next one; the lease lives on, and the
 * waiter is granted once the holder has released (through another member
 * too), with a higher token. */
START_TEST(waiters_member_stopped)
{
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 60000, 0, &held), DLOCK_OK);
    uint64_t first = fence_of(held);
    struct waiter w;
    pthread_t tw;
    waiter_start(&w, &tw, 10000); /* a look every 2 s; a member's share of a deadline is 3.3 s */
    ck_assert_int_eq(contenders_become(2), 2);
    dlt_sleep_ms(300); /* its watch is open */
    ck_assert_int_eq(kill(member_pid(1), SIGSTOP), 0);
    int64_t stopped = dlt_now_ms();
    int rc = dlock_release(held);
    ck_assert_msg(rc == DLOCK_OK, "release: %d %s", rc, dlock_last_error());
    pthread_join(tw, NULL);
    ck_assert_msg(w.rc == DLOCK_OK, "the waiter: %d", w.rc);
    fprintf(stderr, "waiter's member stopped: granted %lld ms after the stop\n", (long long)(w.granted_at - stopped));
    ck_assert_int_lt(w.granted_at - stopped, 9000);
    ck_assert_uint_gt(w.fence, first);
    ck_assert_int_eq(dlock_release(w.l), DLOCK_OK);
    dlock_close(w.c);
}
END_TEST

static void two_contenders(void)
{
    ck_assert_int_eq(contenders_become(2), 2);
}

static void signal_members(int sig)
{
    for (int n = 1; n <= 3; n++)
        kill(member_pid(n), sig);
}

static void stop_members(void)
{
    signal_members(SIGSTOP);
}

static void continue_members(void)
{
    signal_members(SIGCONT);
}

/* No member answers (all three stopped) while this process waits without
 * bound: dlock_cancel() still ends the wait within a short while. */
START_TEST(cancel_with_cluster_stopped)
{
    dlt_cancel_on_stalled_store(url, name, two_contenders, stop_members, continue_members);
}
END_TEST

/* No member answers from before an acquire without bound begins: the cancel
 * comes during its first round trips, and still ends it promptly. */
START_TEST(cancel_before_the_wait_with_cluster_stopped)
{
    dlt_cancel_before_stalled_wait(url, name, stop_members, continue_members);
}
END_TEST

/* No quorum (two members stopped): dlock run's heartbeat gets no answer, the
 * lock is lost at the end of its lease, the job is stopped, exit 79. */
START_TEST(no_quorum_dlock_run_exits_79)
{
    const char *bin = getenv("DLOCK_BIN");
    ck_assert_msg(bin != NULL, "DLOCK_BIN is not set (make check sets it)");
    char *dir = dlt_tmpdir();
    char started[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    fflush(NULL);
    pid_t run = fork();
    if (run == 0) {
        char job[4400];
        snprintf(job, sizeof job, "touch '%s'; exec sleep 60", started);
        execl(bin, "dlock", "run", "-q", "-u", url, "-t", "3s", "-k", "1s", name, "--", "sh", "-c", job,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && access(started, F_OK) != 0; i++)
        dlt_sleep_ms(50);
    ck_assert_int_eq(access(started, F_OK), 0);
    int leader = leader_member();
    int64_t stopped = dlt_now_ms();
    for (int n = 1; n <= 3; n++)
        if (n != leader) /* the leader alone: it cannot commit or read */
            ck_assert_int_eq(kill(member_pid(n), SIGSTOP), 0);
    int status = -1;
    for (int i = 0; i < 150; i++) {
        if (waitpid(run, &status, WNOHANG) == run)
            break;
        dlt_sleep_ms(100);
    }
    int64_t took = dlt_now_ms() - stopped;
    if (!WIFEXITED(status))
        kill(run, SIGKILL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 79, "dlock run: status %d after %lld ms", status,
                  (long long)took);
    /* TTL 3 s + grace 1 s + letting go; never before the lease ran out. */
    ck_assert_msg(took >= 2000 && took <= 8000, "exit 79 after %lld ms", (long long)took);
    fprintf(stderr, "no quorum: dlock run exited 79 %lld ms after two members stopped\n", (long long)took);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
}
END_TEST

/* Authentication: a refused login is DLOCK_ECONN without the password; a
 * token the server forgot is renewed. */
START_TEST(authentication)
{
    const char *auth = getenv("DLOCK_TEST_ETCD_AUTH_URL");
    if (!auth || !*auth)
        return;
    dlock_client *c = NULL;
    ck_assert_msg(dlock_open(auth, &c) == DLOCK_OK, "%s", dlock_last_error());
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    char bad[1024];
    snprintf(bad, sizeof bad, "etcd://dlock:Wr0ngPassw0rd@%s", getenv("DLOCK_TEST_ETCD_AUTH_EP"));
    ck_assert_int_eq(dlock_open(bad, &c), DLOCK_ECONN);
    ck_assert_msg(strstr(dlock_last_error(), "authentication failed"), "%s", dlock_last_error());
    ck_assert_msg(!strstr(dlock_last_error(), "Wr0ng"), "%s", dlock_last_error());
    /* Without a user, the server's refusal says so. */
    snprintf(bad, sizeof bad, "etcd://%s", getenv("DLOCK_TEST_ETCD_AUTH_EP"));
    ck_assert_int_ne(dlock_open(bad, &c), DLOCK_OK);
}
END_TEST

/* etcds://: the member's HTTPS port with the test CA works (acquire,
 * fence, extend, release); another CA, or the system's CAs, refuse its
 * certificate (DLOCK_ECONN saying so, never the password); plain HTTP
 * to the HTTPS port, and etcds:// to the plain one, fail. */
START_TEST(tls_verifies_the_server)
{
    const char *tls = getenv("DLOCK_TEST_ETCD_TLS_URL"), *ep = getenv("DLOCK_TEST_ETCD_TLS_EP");
    const char *dir = getenv("DLOCK_TEST_ETCD_TLS_DIR"), *plain = getenv("DLOCK_TEST_ETCD_AUTH_EP");
    const char *password = getenv("DLOCK_TEST_ETCD_AUTH_PASSWORD");
    if (!tls || !*tls || !ep || !dir || !plain || !password) {
        ck_assert_msg(!dlt_required("etcd"), "no DLOCK_TEST_ETCD_TLS_URL (tests/etcd-server.sh needs openssl)");
        return;
    }
    dlock_client *c = NULL;
    ck_assert_msg(dlock_open(tls, &c) == DLOCK_OK, "%s", dlock_last_error());
    dlock_lock *l = NULL;
    ck_assert_msg(dlock_acquire(c, name, 5000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
    uint64_t fence = 0;
    ck_assert_int_eq(dlock_fence(l, &fence), DLOCK_OK);
    ck_assert_uint_gt(fence, 0);
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);

    char bad[2048];
    for (size_t i = 0; i < 2; i++) {
        /* A CA that signed nothing, then none: the system's CAs. */
        char query[1200] = "";
        if (i == 0)
            snprintf(query, sizeof query, "?cafile=%s/other-ca.pem", dir);
        snprintf(bad, sizeof bad, "etcds://dlock:%s@%s%s", password, ep, query);
        c = NULL;
        int rc = dlock_open(bad, &c);
        if (rc == DLOCK_OK) { /* a backend may connect on first use */
            rc = dlock_acquire(c, name, 5000, 0, &l);
            dlock_close(c);
        }
        ck_assert_msg(rc == DLOCK_ECONN, "case %zu: %d %s", i, rc, dlock_last_error());
        ck_assert_msg(strstr(dlock_last_error(), "certificate"), "case %zu: %s", i, dlock_last_error());
        ck_assert_msg(!strstr(dlock_last_error(), password), "case %zu: %s", i, dlock_last_error());
    }
    snprintf(bad, sizeof bad, "etcd://dlock:%s@%s", password, ep);
    c = NULL;
    int rc = dlock_open(bad, &c);
    if (rc == DLOCK_OK) {
        rc = dlock_acquire(c, name, 5000, 0, &l);
        dlock_close(c);
    }
    ck_assert_msg(rc == DLOCK_ECONN, "plain HTTP to HTTPS: %d %s", rc, dlock_last_error());
    snprintf(bad, sizeof bad, "etcds://dlock:%s@%s?cafile=%s/ca.pem", password, plain, dir);
    c = NULL;
    rc = dlock_open(bad, &c);
    if (rc == DLOCK_OK) {
        rc = dlock_acquire(c, name, 5000, 0, &l);
        dlock_close(c);
    }
    ck_assert_msg(rc == DLOCK_ECONN, "HTTPS to plain HTTP: %d %s", rc, dlock_last_error());
    ck_assert_msg(!strstr(dlock_last_error(), password), "%s", dlock_last_error());
}
END_TEST

/* --- the overlap check under chaos ------------------------------------------------------ */

/* Several `dlock run` loops on one name while the leader is killed and
 * members are paused: no two jobs ever run at once (the job's mkdir of a
 * shared folder would fail), and the fencing tokens the jobs see only
 * grow.  $DLOCK_TEST_CHAOS_SECONDS (default 12) bounds it. */
static void chaos_worker(const char *dir, int64_t until)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd,
             "'%s' run -q -u '%s' -t 5s -w 3s -k 1s '%s' -- sh -c "
             "'mkdir \"%s/inside\" 2>/dev/null || echo overlap >>\"%s/overlaps\"; "
             "echo $DLOCK_FENCE >>\"%s/fences\"; sleep 0.05; rmdir \"%s/inside\"' >/dev/null 2>&1",
             getenv("DLOCK_BIN"), url, name, dir, dir, dir, dir);
    while (dlt_now_ms() < until)
        if (dlt_system(cmd) != 0)
            dlt_sleep_ms(20);
    _exit(0);
}

static int chaos_seconds(void)
{
    const char *s = getenv("DLOCK_TEST_CHAOS_SECONDS");
    int n = s ? atoi(s) : 12;
    return n > 0 ? n : 12;
}

START_TEST(chaos_no_overlap_tokens_grow)
{
    ck_assert_msg(getenv("DLOCK_BIN") != NULL, "DLOCK_BIN is not set (make check sets it)");
    char *dir = dlt_tmpdir();
    int64_t start = dlt_now_ms(), until = start + chaos_seconds() * 1000LL;
    pid_t workers[3];
    fflush(NULL);
    for (int i = 0; i < 3; i++)
        if ((workers[i] = fork()) == 0)
            chaos_worker(dir, until);
    int kills = 0, pauses = 0;
    for (int round = 0; dlt_now_ms() < until - 1500; round++) {
        dlt_sleep_ms(800);
        int leader = leader_member();
        if (round % 3 == 0) { /* the leader killed, restarted a second later */
            ck_assert_int_eq(kill(member_pid(leader), SIGKILL), 0);
            kills++;
            dlt_sleep_ms(1000);
            resume_cluster();
        } else { /* the leader, then a follower, paused for a second */
            int n = round % 3 == 1 ? leader : leader % 3 + 1;
            pid_t pid = member_pid(n);
            ck_assert_int_eq(kill(pid, SIGSTOP), 0);
            pauses++;
            dlt_sleep_ms(1000);
            kill(pid, SIGCONT);
        }
        if (getenv("DLOCK_TEST_CHAOS_SECONDS"))
            fprintf(stderr, "chaos: %lld s: round %d, %s member %d\n", (long long)(dlt_now_ms() - start) / 1000, round,
                    round % 3 ? "paused" : "killed", round % 3 == 2 ? leader % 3 + 1 : leader);
    }
    for (int i = 0; i < 3; i++)
        waitpid(workers[i], NULL, 0);
    char path[4300];
    snprintf(path, sizeof path, "%s/overlaps", dir);
    ck_assert_msg(access(path, F_OK) != 0, "two jobs ran at once");
    snprintf(path, sizeof path, "%s/fences", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    unsigned long long prev = 0, token;
    int sections = 0;
    while (fscanf(f, "%llu", &token) == 1) {
        ck_assert_msg(token > prev, "token %llu after %llu", token, prev);
        prev = token;
        sections++;
    }
    fclose(f);
    fprintf(stderr, "chaos: %lld s, %d sections, %d leader kills, %d member pauses, no overlap, tokens grew\n",
            (long long)(dlt_now_ms() - start) / 1000, sections, kills, pauses);
    ck_assert_int_gt(sections, 10);
    ck_assert_int_gt(kills, 0);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
}
END_TEST

/* An etcd role that may write the locks' keys but not the history's: check
 * warns (exit 1) naming the prefix to grant, and a run keeps its job's
 * status with one line that says why. */
static void etcd_role_without_history_in(const char *work_dir, const char *lock_name, const char *dlock_bin)
{
    const char *ep = getenv("DLOCK_TEST_ETCD_AUTH_EP"), *pw = getenv("DLOCK_TEST_ETCD_AUTH_PASSWORD");
    if (!ep || !*ep || !pw) {
        ck_assert_msg(!dlt_required("etcd"), "DLOCK_TEST_ETCD_AUTH_URL is required");
        return;
    }
    char ctl[512], u[512], out[4400];
    snprintf(ctl, sizeof ctl, "ETCDCTL_API=3 etcdctl --endpoints=%s --user=root:%s", ep, pw);
    dlt_sh("%s user delete hist_nohist >/dev/null 2>&1; %s role delete hist_nohist >/dev/null 2>&1", ctl, ctl);
    /* The locks' keys "dlock/..." and the key "dlock" (read for the store's
     * clock), not "dlock!history/...". */
    ck_assert_int_eq(dlt_sh("%s role add hist_nohist >/dev/null && %s role grant-permission hist_nohist --prefix=true"
                        " readwrite dlock/ >/dev/null && %s role grant-permission hist_nohist readwrite dlock"
                        " >/dev/null && %s user add hist_nohist --new-user-password=hist-pw"
                        " >/dev/null && %s user grant-role hist_nohist hist_nohist >/dev/null",
                        ctl, ctl, ctl, ctl, ctl),
                     0);
    snprintf(u, sizeof u, "etcd://hist_nohist:hist-pw@%s", ep);
    snprintf(out, sizeof out, "%s/out", work_dir);
    int rc = dlt_sh("'%s' check -u '%s' >'%s'", dlock_bin, u, out);
    const char *text = dlt_slurp(out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, text);
    ck_assert_msg(strstr(text, "ok    rights") && strstr(text, "warn  history") && strstr(text, "dlock!history/"),
                  "%s", text);
    ck_assert_msg(!strstr(text, "hist-pw"), "%s", text);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- sh -c 'exit 6' 2>'%s'", dlock_bin, u, lock_name, out), 6);
    text = dlt_slurp(out);
    ck_assert_msg(strstr(text, "is not in the run history") && strstr(text, "grant-permission"), "%s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
    ck_assert_msg(!strstr(text, "hist-pw"), "%s", text);
    dlt_sh("%s user delete hist_nohist >/dev/null 2>&1; %s role delete hist_nohist >/dev/null 2>&1", ctl, ctl);
}
START_TEST(etcd_role_without_history)
{
    char *work_dir = dlt_tmpdir(), *lock_name = dlt_unique_name("hist");
    etcd_role_without_history_in(work_dir, lock_name, dlt_dlock_bin());
    dlt_sh("rm -rf '%s'", work_dir);
    free(work_dir);
    free(lock_name);
}
END_TEST

static TCase *add_case(Suite *s, const char *title, int timeout)
{
    TCase *tc = tcase_create(title);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *etcd_suite(void)
{
    Suite *s = suite_create("etcd");
    dlt_etcd_add_units(s);
    TCase *t = add_case(s, "etcdctl", 30);
    tcase_add_test(t, etcdctl_reads_our_keys);
    tcase_add_test(t, etcdctl_lock_is_the_same_lock);
    tcase_add_test(t, extend_with_new_ttl_moves_the_lease);
    tcase_add_test(t, authentication);
    tcase_add_test(t, tls_verifies_the_server);
    tcase_add_test(t, lease_revoked_with_etcdctl);
    tcase_add_test(t, key_deleted_with_etcdctl);
    tcase_add_test(t, etcd_role_without_history);
    tcase_add_test(add_case(s, "leader-kill", 40), leader_killed_lock_stays);
    tcase_add_test(add_case(s, "leader-stop", 40), leader_stopped_lock_stays);
    tcase_add_test(add_case(s, "member-stop", 40), holders_member_stopped);
    tcase_add_test(add_case(s, "stopped-holder", 40), stopped_holder_loses_the_lock);
    tcase_add_test(add_case(s, "waiter-lease", 40), waiter_whose_lease_ends_never_granted);
    t = add_case(s, "waiter-key", 40);
    tcase_add_test(t, waiter_whose_key_is_deleted_never_granted);
    tcase_add_test(t, waiter_whose_key_is_rewritten_never_granted);
    tcase_add_test(add_case(s, "waiter-member-stop", 40), waiters_member_stopped);
    tcase_add_test(add_case(s, "no-quorum", 40), no_quorum_dlock_run_exits_79);
    tcase_add_test(add_case(s, "cluster-stop", 40), cancel_with_cluster_stopped);
    tcase_add_test(add_case(s, "cluster-stop-first", 40), cancel_before_the_wait_with_cluster_stopped);
    tcase_add_test(add_case(s, "chaos", chaos_seconds() + 60), chaos_no_overlap_tokens_grow);
    return s;
}

int main(void)
{
    url = dlt_require_url("DLOCK_TEST_ETCD_URL", "etcd");
    int failed = dlt_run_suite(etcd_suite());
    return failed ? 1 : 0;
}
