/*
 * ZooKeeper suite, tcase "faults": the leader killed or stopped, the holder's server stopped, silent
 * and stopped holders, a lost create reply, a record read through another server, an expired waiter,
 * no quorum.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

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
    struct dlock_call call;
    zk_conn *c = raw_session(&conn, &call);
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

/* --- real faults (issue 21, point 5) ------------------------------------------------- */

/* Another client tries the lock over and over from its own thread (its
 * calls may block while members are down): it must never get it. */
struct rival {
    const char *name;
    atomic_int stop, done;
    atomic_int granted, tries;
};

static void *rival_main(void *arg)
{
    struct rival *r = arg;
    dlock_client *other = NULL;
    if (dlock_open(url, &other) != DLOCK_OK) {
        atomic_store(&r->done, 1);
        return NULL;
    }
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
    atomic_store(&r->done, 1);
    return NULL;
}

/* The lease of the leader faults: an election after a stopped leader, and
 * the holder's move to another server, must fit in it also on a loaded
 * machine (docs/zookeeper.md advises TTLs of a minute). */
#define LEADER_FAULT_TTL_MS 20000

/* Each extend of a leader fault, printed when the test fails: the only
 * account of how long the ensemble took to serve again on a loaded CI machine. */
static struct {
    int64_t at, took, remaining;
    int rc;
    char error[120];
} trace[96];
static int traced;
static int64_t fault_at;

/* dlock_extend(l, LEADER_FAULT_TTL_MS), traced. */
static int traced_extend(dlock_lock *l)
{
    int64_t sent = dlt_now_ms();
    int rc = dlock_extend(l, LEADER_FAULT_TTL_MS);
    if (traced < (int)(sizeof trace / sizeof trace[0])) {
        trace[traced].at = sent - fault_at;
        trace[traced].took = dlt_now_ms() - sent;
        trace[traced].remaining = dlock_remaining_ms(l);
        trace[traced].rc = rc;
        snprintf(trace[traced].error, sizeof trace[traced].error, "%s", rc ? dlock_last_error() : "");
        traced++;
    }
    return rc;
}

static void trace_print(const char *why)
{
    fprintf(stderr, "%s; the extends since the fault (ms after it, call took, remaining):\n", why);
    for (int i = 0; i < traced; i++)
        fprintf(stderr, "  +%lld took %lld rc %d remaining %lld %s\n", (long long)trace[i].at,
                (long long)trace[i].took, trace[i].rc, (long long)trace[i].remaining, trace[i].error);
}

/* Keep `l` extended (every 500 ms) for ms while a rival tries the lock: never lost here, never granted there.
 * The heartbeats go on until the rival has stopped: its last try may wait out the outage (up to 10 s),
 * and a holder that stopped extending meanwhile would lose a lease that the ensemble kept. */
static void hold_through(dlock_lock *l, int64_t ms, const char *n)
{
    struct rival r = {.name = n};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, rival_main, &r), 0);
    int64_t end = dlt_now_ms() + ms;
    while (dlt_now_ms() < end || !atomic_load(&r.done)) {
        if (dlt_now_ms() >= end)
            atomic_store(&r.stop, 1);
        int rc = traced_extend(l);
        if ((rc != DLOCK_OK && rc != DLOCK_ECONN) || dlock_remaining_ms(l) <= 0) {
            trace_print("the lock was lost while the ensemble recovered");
            ck_abort_msg("extend: %d %s", rc, rc ? dlock_last_error() : "no time remaining");
        }
        dlt_sleep_ms(500);
    }
    pthread_join(thread, NULL);
    if (getenv("DLOCK_ZK_DEBUG"))
        trace_print("held through the fault");
    ck_assert_int_gt(atomic_load(&r.tries), 0);
    ck_assert_int_eq(atomic_load(&r.granted), 0);
}

/* The extend once the fault is over (`what`): it must succeed. */
static void extend_after(dlock_lock *l, const char *what)
{
    int rc = traced_extend(l);
    if (rc != DLOCK_OK) {
        char why[64];
        snprintf(why, sizeof why, "the extend after the %s failed", what);
        trace_print(why);
        ck_abort_msg("extend after the %s: %s", what, dlock_last_error());
    }
}

static void leader_fault(int sig)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, LEADER_FAULT_TTL_MS, 0, &l), DLOCK_OK);
    uint64_t before = 0, after = 0;
    ck_assert_int_eq(dlock_fence(l, &before), DLOCK_OK);
    int lead = leader();
    ck_assert_int_gt(lead, 0);
    traced = 0;
    fault_at = dlt_now_ms();
    if (sig == SIGKILL)
        kill_member(lead);
    else
        pause_member(lead, SIGSTOP);
    hold_through(l, 8000, name);
    int now_leads = leader();
    ck_assert_int_ne(now_leads, 0); /* a new one was elected */
    ck_assert_int_ne(now_leads, lead);
    extend_after(l, "fault");
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &after), DLOCK_OK);
    ck_assert_uint_gt(after, before);
    ck_assert_uint_gt(after >> 32, before >> 32); /* a new epoch */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}

/* leader_killed_lock_stays and leader_stopped_lock_stays */
DLT_LEADER_FAULT_TESTS(leader_fault)

/* The leader killed while a second member is stopped: no quorum until that
 * member comes back 3 s later, then an election. The holder's 20 s lease
 * outlives the outage: its heartbeats fail meanwhile and succeed again, and
 * nobody else gets the lock. (A longer outage costs more than itself: the
 * lone member's election notifications back off, doubling from 200 ms, and a
 * 9 s outage was seen to end in an election of 19.9 s: docs/zookeeper.md.) */
START_TEST(slow_election_lock_stays)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, LEADER_FAULT_TTL_MS, 0, &l), DLOCK_OK);
    int lead = leader();
    ck_assert_int_gt(lead, 0);
    int other = lead % 3 + 1;
    pid_t paused = member_pid(other);
    ck_assert_int_gt(paused, 0);
    traced = 0;
    fault_at = dlt_now_ms();
    kill_member(lead);
    ck_assert_int_eq(kill(paused, SIGSTOP), 0);
    pid_t resumer = fork();
    ck_assert_int_ge(resumer, 0);
    if (resumer == 0) {
        dlt_sleep_ms(3000);
        kill(paused, SIGCONT);
        _exit(0);
    }
    hold_through(l, 8000, name);
    int status = 0;
    ck_assert_int_eq(waitpid(resumer, &status, 0), resumer);
    extend_after(l, "election");
    ck_assert_int_ne(leader(), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
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
    traced = 0;
    fault_at = dlt_now_ms();
    pause_member(member, SIGSTOP);
    hold_through(l, 8000, name);
    int now_on = member_of(sid);
    ck_assert_int_gt(now_on, 0);
    ck_assert_int_ne(now_on, member);
    /* The move came from the backend's own silence rule (a quarter of the
     * session timeout, at least 2 s: 2.5 s here, 5 s if the next member
     * is silent too), not from the C client's, which waits 2/3 of it
     * (6,665-6,667 ms measured here) and leaves too little of a lease when
     * the next member it tries is also silent. */
    int64_t longest = 0;
    for (int i = 0; i < traced; i++)
        if (trace[i].took > longest)
            longest = trace[i].took;
    if (longest >= 6600)
        trace_print("an extend waited for the C client's own timeout");
    ck_assert_int_lt(longest, 6600);
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
    /* 30 s until dlock run holds its lock (its start may take seconds immediately after
     * the tests that stop and restart members); then leases of 2 s. */
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
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

static void wait_a_second(void)
{
    dlt_sleep_ms(1000);
}

static void stop_ensemble(void)
{
    for (int n = 1; n <= 3; n++)
        pause_member(n, SIGSTOP);
}

static void continue_ensemble(void)
{
    for (int n = 1; n <= 3; n++)
        pause_member(n, SIGCONT);
}

/* The whole ensemble stops answering (SIGSTOP of all three members) while
 * this process waits without bound: dlock_cancel() still ends the wait
 * within a short while, and the contender's node it could not delete then
 * goes with the next call's sweep or its session (it used to take 8 s, the
 * withdrawal's bound, here). */
START_TEST(cancel_with_ensemble_stopped)
{
    dlt_cancel_on_stalled_store(url, name, wait_a_second, stop_ensemble, continue_ensemble);
}
END_TEST

/* The ensemble stops before an acquire without bound begins: the cancel
 * comes during its first round trips (the contender's node not yet made),
 * and still ends it promptly. */
START_TEST(cancel_before_the_wait_with_ensemble_stopped)
{
    dlt_cancel_before_stalled_wait(url, name, stop_ensemble, continue_ensemble);
}
END_TEST

void dlt_zk_add_faults(Suite *s)
{
    TCase *t = tcase_create("faults");
    tcase_add_checked_fixture(t, fault_setup, fault_teardown);
    tcase_set_timeout(t, 90);
    tcase_add_test(t, leader_killed_lock_stays);
    tcase_add_test(t, leader_stopped_lock_stays);
    tcase_add_test(t, slow_election_lock_stays);
    tcase_add_test(t, holders_member_stopped_moves);
    tcase_add_test(t, idle_holder_lost_within_ttl);
    tcase_add_test(t, stopped_holder_lost_within_ttl);
    tcase_add_test(t, lost_create_reply_leaves_no_orphan);
    tcase_add_test(t, record_written_here_read_there);
    tcase_add_test(t, expired_waiter_never_granted);
    tcase_add_test(t, no_quorum_lease_ends);
    tcase_add_test(t, cancel_with_ensemble_stopped);
    tcase_add_test(t, cancel_before_the_wait_with_ensemble_stopped);
    suite_add_tcase(s, t);
}
