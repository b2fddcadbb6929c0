/*
 * MySQL suite, tcase "modes-and-durability": durable commits, late extends, breaks of one name,
 * session and lease modes seeing each other.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

static void set_flush(MYSQL *root, int value)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SET GLOBAL innodb_flush_log_at_trx_commit = %d", value);
    ck_assert_msg(mysql_query(root, sql) == 0, "%s: %s", sql, mysql_error(root));
}

/* Item 2: lease rows and fence counters are commits that a crash must not
 * lose; with innodb_flush_log_at_trx_commit other than 1 the takes that
 * depend on them are refused (flush-check=off takes the risk). */
START_TEST(takes_refused_without_durable_commits)
{
    if (!root_url) {
        ck_assert_msg(!dlt_required("mysql"), "DLOCK_TEST_MYSQL_ROOT_URL is needed");
        return;
    }
    MYSQL *root = raw_open(root_url);
    char *name = unique("flush");
    static char lease_off[sizeof lease_url + 32];
    snprintf(lease_off, sizeof lease_off, "%s&flush-check=off", lease_url);
    const char *const refused[] = {lease_url, fence_url};
    for (int value = 2; value >= 0; value -= 2) {
        set_flush(root, value);
        for (int i = 0; i < 2; i++) {
            dlock_client *c = open_url(refused[i]);
            dlock_lock *l = NULL;
            int rc = dlock_acquire(c, name, 5000, 0, &l);
            ck_assert_msg(rc == DLOCK_ENOTSUP, "flush %d, %s: %d %s", value, i ? "fencing" : "lease", rc,
                          dlock_last_error());
            ck_assert_ptr_nonnull(strstr(dlock_last_error(), "innodb_flush_log_at_trx_commit"));
            ck_assert(!busy_at(url, name)); /* nothing was taken */
            /* Reading is not refused. */
            ck_assert_int_eq(dlock_holder(c, name, NULL, 0), 0);
            dlock_close(c);
        }
        const char *const allowed[] = {url, lease_off};
        for (int i = 0; i < 2; i++) {
            dlock_client *c = open_url(allowed[i]);
            dlock_lock *l = NULL;
            ck_assert_msg(dlock_acquire(c, name, 5000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
            dlock_close(c);
        }
    }
    set_flush(root, 1);
    const char *const all[] = {lease_url, fence_url, url};
    for (int i = 0; i < 3; i++) {
        dlock_client *c = open_url(all[i]);
        dlock_lock *l = NULL;
        ck_assert_msg(dlock_acquire(c, name, 5000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        dlock_close(c);
    }
    mysql_close(root);
    free(name);
}
END_TEST

static void flush_restore(void)
{
    if (!root_url)
        return;
    MYSQL *root = raw_open(root_url);
    mysql_query(root, "SET GLOBAL innodb_flush_log_at_trx_commit = 1");
    mysql_close(root);
}

/* Property: an expired lease is lost even when nobody took it since -- a
 * late extend (or release, or record write) must not revive it.  The row's
 * expiry is moved into the past behind the holder's back; the owner stays. */
START_TEST(lease_late_extend_does_not_revive)
{
    char *name = unique("late");
    dlock_client *c = open_url(lease_url);
    MYSQL *db = raw_open(url);
    for (int op = 0; op < 3; op++) {
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
        MYSQL_STMT *stmt = mysql_stmt_init(db);
        const char *sql = "UPDATE dlock_leases SET expires_at = expires_at - 60000 WHERE name = ?";
        ck_assert_int_eq(mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)), 0);
        MYSQL_BIND b;
        memset(&b, 0, sizeof b);
        unsigned long len = (unsigned long)strlen(name);
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = name;
        b.buffer_length = len;
        b.length = &len;
        ck_assert_int_eq(mysql_stmt_bind_param(stmt, &b), 0);
        ck_assert_msg(mysql_stmt_execute(stmt) == 0, "%s", mysql_stmt_error(stmt));
        ck_assert_int_eq((int)mysql_stmt_affected_rows(stmt), 1);
        mysql_stmt_close(stmt);
        int rc = op == 0 ? dlock_extend(l, 30000) : op == 1 ? dlock_record_put(l, 5) : dlock_release(l);
        ck_assert_msg(rc == DLOCK_ELOST, "op %d: %d %s", op, rc, dlock_last_error());
        /* Not revived: anyone may take it now. */
        ck_assert(!busy_at(lease_url, name));
        if (op != 2)
            (void)dlock_release(l);
    }
    mysql_close(db);
    dlock_close(c);
    free(name);
}
END_TEST

/* Property: a break acts on exactly one name -- hold N and N-2, break N:
 * N-2 is untouched.  Session mode: on different sessions (a break ends the
 * holder's whole session, docs/mysql.md); lease mode: on one client. */
START_TEST(a_break_acts_on_one_name)
{
    char *n = unique("brk"), n2[300];
    snprintf(n2, sizeof n2, "%s-2", n);
    for (int lease = 0; lease < 2; lease++) {
        const char *u = lease ? lease_url : url;
        dlock_client *a = open_url(u), *b = lease ? a : open_url(u), *breaker = open_url(u);
        dlock_lock *la = NULL, *lb = NULL;
        ck_assert_int_eq(dlock_acquire(a, n, 30000, 0, &la), DLOCK_OK);
        ck_assert_int_eq(dlock_acquire(b, n2, 30000, 0, &lb), DLOCK_OK);
        ck_assert_int_eq(dlock_break(breaker, n), 1);
        ck_assert_msg(dlock_extend(lb, 30000) == DLOCK_OK, "%s: %s", lease ? "lease" : "session", dlock_last_error());
        ck_assert(busy_at(u, n2));
        ck_assert(!busy_at(u, n));
        ck_assert_int_eq(dlock_extend(la, 30000), DLOCK_ELOST);
        (void)dlock_release(la);
        ck_assert_int_eq(dlock_release(lb), DLOCK_OK);
        if (!lease)
            dlock_close(b);
        dlock_close(a);
        dlock_close(breaker);
    }
    free(n);
}
END_TEST

/* Suspected: session-mode break is IS_USED_LOCK then KILL, and KILL only
 * marks the session: "broken" must not be said before the lock is free.
 * A race: before the fix, 2 of 400 and 2 of 300 rounds saw the lock still
 * held right after "broken" (and 0 of 300 in another run). */
#ifndef BREAK_ROUNDS
#define BREAK_ROUNDS 300
#endif
START_TEST(session_break_returns_once_the_lock_is_free)
{
    char *name = unique("brkfree");
    dlock_client *breaker = open_client();
    MYSQL *db = raw_open(url);
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    dlock__mysql_lock_name(name, server_name, sizeof server_name);
    int still_held = 0;
    for (int i = 0; i < BREAK_ROUNDS; i++) {
        dlock_client *holder = open_client();
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(holder, name, 30000, 0, &l), DLOCK_OK);
        ck_assert_int_eq(dlock_break(breaker, name), 1);
        if (raw_int(db, "SELECT IS_USED_LOCK(?)", server_name) != -1)
            still_held++;
        (void)dlock_release(l);
        dlock_close(holder);
    }
    fprintf(stderr, "FIGURE: session break: the lock still held right after \"broken\" in %d of %d\n", still_held,
            BREAK_ROUNDS);
    ck_assert_int_eq(still_held, 0);
    mysql_close(db);
    dlock_close(breaker);
    free(name);
}
END_TEST

/* The same without a race: the holder's session has a large uncommitted
 * transaction, and the server rolls it back before it lets go of the
 * session's user locks, so the killed session keeps the lock for a while
 * (here 0.8-1.6 s for 100,000 rows).  "Broken" must wait for that. */
START_TEST(session_break_waits_for_the_killed_sessions_cleanup)
{
    char *name = unique("brkslow");
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1], table[64], sql[512];
    dlock__mysql_lock_name(name, server_name, sizeof server_name);
    snprintf(table, sizeof table, "brkslow_%d", (int)getpid());
    MYSQL *db = raw_open(url), *holder = raw_open(url);
    snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS %s (id INT AUTO_INCREMENT PRIMARY KEY, pad CHAR(200))"
             " ENGINE=InnoDB", table);
    ck_assert_msg(mysql_query(db, sql) == 0, "%s", mysql_error(db));
    ck_assert_int_eq(raw_int(holder, "SELECT GET_LOCK(?, 0)", server_name), 1);
    ck_assert_msg(mysql_query(holder, "START TRANSACTION") == 0, "%s", mysql_error(holder));
    snprintf(sql, sizeof sql, "INSERT INTO %s (pad) SELECT REPEAT('x', 200) FROM seq_1_to_100000", table);
    ck_assert_msg(mysql_query(holder, sql) == 0, "%s", mysql_error(holder));
    dlock_client *breaker = open_client();
    int64_t start = dlt_now_ms();
    int rc = dlock_break(breaker, name);
    int64_t took = dlt_now_ms() - start;
    ck_assert_msg(rc == 1, "break: %d %s", rc, dlock_last_error());
    long long after = raw_int(db, "SELECT IS_USED_LOCK(?)", server_name);
    fprintf(stderr, "FIGURE: session break of a session with 100,000 uncommitted rows: %lld ms\n", (long long)took);
    ck_assert_msg(after == -1, "\"broken\" while connection %lld still held the lock", after);
    mysql_close(holder);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    ck_assert_msg(mysql_query(db, sql) == 0, "%s", mysql_error(db));
    mysql_close(db);
    dlock_close(breaker);
    free(name);
}
END_TEST

/* Item 7: session mode (GET_LOCK) and lease mode (a row of the default
 * table) see each other's holder of a name. */
struct release_later {
    dlock_lock *lock;
    int64_t after_ms;
    int status;
};

static void *release_later_main(void *arg)
{
    struct release_later *r = arg;
    dlt_sleep_ms(r->after_ms);
    r->status = dlock_release(r->lock);
    return NULL;
}

/* `first` holds name; a client of `second` cannot take it, sees the holder
 * (its text contains `says`), and a wait of `second` gets it once `first`
 * lets go. */
static void excludes(const char *first, const char *second, const char *name, const char *says, int sees_back)
{
    dlock_client *a = open_url(first), *b = open_url(second);
    dlock_lock *la = NULL, *lb = NULL;
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &la), DLOCK_OK);
    int rc = dlock_acquire(b, name, 30000, 0, &lb);
    ck_assert_msg(rc == DLOCK_EBUSY, "%s then %s: %d %s", first, second, rc, dlock_last_error());
    rc = dlock_acquire(b, name, 30000, 300, &lb);
    ck_assert_msg(rc == DLOCK_EBUSY, "a wait: %d %s", rc, dlock_last_error());
    char who[512] = "";
    ck_assert_int_eq(dlock_holder(b, name, who, sizeof who), 1);
    ck_assert_msg(strstr(who, says) != NULL, "holder: %s", who);
    struct release_later later = {la, 400, -1};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, release_later_main, &later), 0);
    int64_t t0 = dlt_now_ms();
    rc = dlock_acquire(b, name, 30000, 5000, &lb);
    int64_t took = dlt_now_ms() - t0;
    pthread_join(thread, NULL);
    ck_assert_int_eq(later.status, DLOCK_OK);
    ck_assert_msg(rc == DLOCK_OK, "the wait: %d %s", rc, dlock_last_error());
    ck_assert_int_lt(took, 2500);
    rc = dlock_holder(a, name, who, sizeof who);
    ck_assert_msg(rc == sees_back, "%s sees %s's holder: %d %s", first, second, rc, dlock_last_error());
    ck_assert_int_eq(dlock_release(lb), DLOCK_OK);
    ck_assert_int_eq(dlock_holder(a, name, NULL, 0), 0);
    dlock_close(a);
    dlock_close(b);
}

START_TEST(session_and_lease_modes_exclude_each_other)
{
    char *name = unique("modes"), long_name[300];
    excludes(url, lease_url, name, "session mode", 1);
    excludes(lease_url, url, name, "lease mode", 1);
    excludes(fence_url, lease_url, name, "session mode", 1);
    excludes(lease_url, fence_url, name, "lease mode", 1);
    /* A digest-mapped name too (the session-mode name differs from the row's). */
    snprintf(long_name, sizeof long_name, "%s/Upper Case \xc3\xa9", name);
    excludes(url, lease_url, long_name, "session mode", 1);
    excludes(lease_url, url, long_name, "lease mode", 1);
    /* A lease of another table still sees a session-mode holder (not the
     * other way round: session mode reads the default table only). */
    static char other_table[sizeof lease_url + 32];
    snprintf(other_table, sizeof other_table, "%s&table=dlock_leases_other", lease_url);
    excludes(url, other_table, name, "session mode", 0);
    free(name);
}
END_TEST

/* Session mode needs no rights and no database: the look at the lease
 * table must not make it fail where it cannot read one. */
START_TEST(session_mode_needs_no_database_for_the_lease_check)
{
    char no_db[8192];
    snprintf(no_db, sizeof no_db, "%s", url);
    char *slash = strrchr(no_db, '/');
    ck_assert_ptr_nonnull(slash);
    slash[1] = '\0'; /* mysql://user:pass@host:port/ */
    char *name = unique("nodb");
    dlock_client *c = open_url(no_db);
    dlock_lock *l = NULL;
    ck_assert_msg(dlock_acquire(c, name, 5000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_holder(c, name, NULL, 0), 0);
    dlock_close(c);
    free(name);
}
END_TEST

/* Many takes at once from both modes: never two holders. */
START_TEST(mixed_modes_never_overlap)
{
    char *name = unique("mixed");
    char *dir = dlt_tmpdir(), marker[4200];
    snprintf(marker, sizeof marker, "%s/held", dir);
    enum { CHILDREN = 4 };
    pid_t pids[CHILDREN];
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            dlock_client *c = NULL;
            if (dlock_open(i % 2 ? lease_url : url, &c) != DLOCK_OK)
                _exit(3);
            int64_t end = dlt_now_ms() + 4000;
            int taken = 0;
            while (dlt_now_ms() < end) {
                dlock_lock *l = NULL;
                int rc = dlock_acquire(c, name, 10000, 1000, &l);
                if (rc == DLOCK_EBUSY)
                    continue;
                if (rc != DLOCK_OK)
                    _exit(4);
                int fd = open(marker, O_CREAT | O_EXCL | O_WRONLY, 0600);
                if (fd < 0)
                    _exit(1); /* two holders */
                close(fd);
                dlt_sleep_ms(2);
                unlink(marker);
                if (dlock_release(l) != DLOCK_OK)
                    _exit(5);
                taken++;
            }
            dlock_close(c);
            _exit(taken > 0 ? 0 : 6);
        }
    }
    for (int i = 0; i < CHILDREN; i++) {
        int st = 0;
        ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d (%s): status %d", i,
                      i % 2 ? "lease" : "session", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    free(dir);
    free(name);
}
END_TEST

/* dlock check shows the holder of the other mode (issue 23's modes exclude
 * each other). */
START_TEST(mysql_holder_in_the_other_mode)
{
    const char *session_url = getenv("DLOCK_TEST_MYSQL_URL");
    ck_assert_ptr_nonnull(session_url);
    char *dir = dlt_tmpdir(), *name = dlt_unique_name("hist");
    dlt_check_other_mode_holder(session_url, dir, name);
    dlt_sh("rm -rf '%s'", dir);
    free(dir);
    free(name);
}
END_TEST

void dlt_mysql_add_modes(Suite *s)
{
    TCase *tc = tcase_create("modes-and-durability");
    tcase_add_checked_fixture(tc, wave_setup, flush_restore);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, takes_refused_without_durable_commits);
    tcase_add_test(tc, lease_late_extend_does_not_revive);
    tcase_add_test(tc, a_break_acts_on_one_name);
    tcase_add_test(tc, session_break_returns_once_the_lock_is_free);
    tcase_add_test(tc, session_break_waits_for_the_killed_sessions_cleanup);
    tcase_add_test(tc, session_and_lease_modes_exclude_each_other);
    tcase_add_test(tc, mixed_modes_never_overlap);
    tcase_add_test(tc, session_mode_needs_no_database_for_the_lease_check);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, mysql_holder_in_the_other_mode);
}
