/*
 * MySQL suite, tcase "server": names, holders, round trips, cancel, TLS on a live server.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* ------------------------------------------------------------------------ */
/* Names on a live server                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(names_the_server_would_confuse_are_distinct)
{
    char *base = unique("n");
    char job_upper[300], job_lower[300], e_plain[300], e_accent[300], long_a[300], long_b[300];
    snprintf(job_upper, sizeof job_upper, "%s-Job", base);
    snprintf(job_lower, sizeof job_lower, "%s-job", base);
    snprintf(e_plain, sizeof e_plain, "%s-e", base);
    snprintf(e_accent, sizeof e_accent, "%s-\xc3\xa9", base);
    /* Two names sharing their first 64 (and more) characters. */
    snprintf(long_a, sizeof long_a, "%s-%s-A", base,
             "0123456789012345678901234567890123456789012345678901234567890123456789");
    snprintf(long_b, sizeof long_b, "%s-%s-B", base,
             "0123456789012345678901234567890123456789012345678901234567890123456789");
    const char *pairs[][2] = {
        {job_upper, job_lower}, {e_plain, e_accent}, {long_a, long_b}, {"Job", "job"}, {"e", "\xc3\xa9"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        dlock_client *one = open_client(), *two = open_client();
        dlock_lock *l1 = NULL, *l2 = NULL;
        ck_assert_msg(dlock_acquire(one, pairs[i][0], 10000, 0, &l1) == DLOCK_OK, "%s: %s", pairs[i][0],
                      dlock_last_error());
        ck_assert_msg(dlock_acquire(two, pairs[i][1], 10000, 0, &l2) == DLOCK_OK, "'%s' conflicts with '%s': %s",
                      pairs[i][1], pairs[i][0], dlock_last_error());
        ck_assert(busy_for_others(pairs[i][0]));
        ck_assert(busy_for_others(pairs[i][1]));
        ck_assert_int_eq(dlock_release(l1), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
        dlock_close(one);
        dlock_close(two);
    }
    free(base);
}
END_TEST

START_TEST(hostile_names_are_just_names)
{
    char looks_like_digest[128];
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    dlock__mysql_lock_name("Job", server_name, sizeof server_name);
    /* A name spelled like the digest form of another: it maps elsewhere. */
    snprintf(looks_like_digest, sizeof looks_like_digest, "%s", server_name);
    char long_name[256];
    memset(long_name, 'Z', 255);
    long_name[255] = '\0';
    const char *names[] = {
        "'; DROP TABLE mysql.user; --",
        "\\",
        "\\'",
        "%",
        "_",
        "a\"b",
        "x' OR '1'='1",
        "NULL",
        "0",
        " ",
        "tab\there",
        "new\nline",
        "\xf0\x9f\x94\x92 lock",
        "\xe2\x80\xae reversed",
        "/*comment*/",
        "`backtick`",
        "a;b",
        "dlock#",
        long_name,
    };
    dlock_client *c = open_client();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        dlock_lock *l = NULL;
        ck_assert_msg(dlock_acquire(c, names[i], 10000, 0, &l) == DLOCK_OK, "'%s': %s", names[i], dlock_last_error());
        ck_assert_msg(busy_for_others(names[i]), "'%s' is not exclusive", names[i]);
        char who[256];
        ck_assert_int_eq(dlock_holder(c, names[i], who, sizeof who), 1);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        ck_assert_int_eq(dlock_holder(c, names[i], who, sizeof who), 0);
    }
    /* "Job" and the name that looks like Job's server name never meet. */
    dlock_lock *a = NULL, *b = NULL;
    ck_assert_int_eq(dlock_acquire(c, "Job", 10000, 0, &a), DLOCK_OK);
    dlock_client *other = open_client();
    ck_assert_int_eq(dlock_acquire(other, looks_like_digest, 10000, 0, &b), DLOCK_OK);
    ck_assert_int_eq(dlock_release(b), DLOCK_OK);
    ck_assert_int_eq(dlock_release(a), DLOCK_OK);
    dlock_close(other);
    /* Nothing was executed as SQL: the server is as it was. */
    MYSQL *db = raw_open(root_url ? root_url : url);
    ck_assert_int_eq(raw_int(db,
                             "SELECT COUNT(*) > 0 FROM information_schema.TABLES "
                             "WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = ?",
                             root_url ? "user" : "db") ||
                         !root_url,
                     1);
    mysql_close(db);
    dlock_close(c);
}
END_TEST

/* A plain client's GET_LOCK blocks dlock, and the other way round; the
 * documented SQL for digest names takes the same lock. */
START_TEST(plain_client_and_dlock_exclude_each_other)
{
    char *name = unique("plain");
    MYSQL *raw = raw_open(url);
    dlock_client *c = open_client();
    dlock_lock *l = NULL;

    ck_assert_int_eq(raw_int(raw, "SELECT GET_LOCK(?, 0)", name), 1);
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_EBUSY);
    char who[256];
    ck_assert_int_eq(dlock_holder(c, name, who, sizeof who), 1);
    char expect[64];
    snprintf(expect, sizeof expect, "connection %lu,", mysql_thread_id(raw));
    ck_assert_msg(strstr(who, expect) != NULL, "holder text: %s", who);
    ck_assert_msg(strstr(who, "user dlock") != NULL, "holder text: %s", who);
    ck_assert_int_eq(raw_int(raw, "SELECT RELEASE_LOCK(?)", name), 1);

    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(raw_int(raw, "SELECT GET_LOCK(?, 0)", name), 0);
    ck_assert_int_eq(dlock_holder(c, name, who, sizeof who), 1);
    ck_assert_msg(strstr(who, "(this client)") != NULL, "holder text: %s", who);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);

    /* A name that maps to the digest form, taken with the documented SQL. */
    const char *fancy = "Nightly Backup \xc3\xa9t\xc3\xa9";
    const char *digest_sql = "SELECT GET_LOCK(CONCAT('dlock#', LEFT(SHA2(?, 256), 58)), 0)";
    ck_assert_int_eq(raw_int(raw, digest_sql, fancy), 1);
    ck_assert_int_eq(dlock_acquire(c, fancy, 10000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(raw_int(raw, "SELECT RELEASE_LOCK(CONCAT('dlock#', LEFT(SHA2(?, 256), 58)))", fancy), 1);
    ck_assert_int_eq(dlock_acquire(c, fancy, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(raw_int(raw, digest_sql, fancy), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);

    /* A dlock waiter gets the lock about one round trip after the plain
     * client lets go. */
    ck_assert_int_eq(raw_int(raw, "SELECT GET_LOCK(?, 0)", name), 1);
    dlt_child waiter;
    ck_assert_int_eq(dlt_child_start(&waiter, url, name, 10000, 10000), 0);
    dlt_sleep_ms(300); /* the child is waiting in GET_LOCK now */
    int64_t released_at = dlt_now_ms();
    ck_assert_int_eq(raw_int(raw, "SELECT RELEASE_LOCK(?)", name), 1);
    ck_assert_int_eq(dlt_child_read(&waiter, 5000), DLOCK_OK);
    int64_t handoff = dlt_now_ms() - released_at;
    fprintf(stderr, "FIGURE: plain client RELEASE_LOCK -> waiting dlock client granted: %lld ms\n", (long long)handoff);
    ck_assert_int_lt(handoff, 500);
    ck_assert_int_eq(raw_int(raw, "SELECT GET_LOCK(?, 0)", name), 0);
    ck_assert_int_eq(dlt_child_cmd(&waiter, "release", 5000), DLOCK_OK);
    dlt_child_stop(&waiter, 0);

    mysql_close(raw);
    dlock_close(c);
    free(name);
}
END_TEST

START_TEST(holder_of_a_free_lock)
{
    dlock_client *c = open_client();
    char *name = unique("free");
    char who[64] = "untouched";
    ck_assert_int_eq(dlock_holder(c, name, who, sizeof who), 0);
    ck_assert_int_eq(dlock_holder(c, name, NULL, 0), 0);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_holder(c, name, NULL, 0), 1);
    char tiny[8];
    ck_assert_int_eq(dlock_holder(c, name, tiny, sizeof tiny), 1);
    ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    free(name);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Lease: wait_timeout follows the smallest TTL on the session               */
/* ------------------------------------------------------------------------ */

START_TEST(lease_follows_the_smallest_ttl)
{
    dlock_client *c = open_client();
    char *long_name = unique("long"), *short_name = unique("short"), *busy_name = unique("busy");
    dlock_lock *long_lock = NULL, *short_lock = NULL, *busy_lock = NULL;
    ck_assert_int_eq(dlock_acquire(c, long_name, 60000, 0, &long_lock), DLOCK_OK);
    ck_assert_int_gt(dlock_remaining_ms(long_lock), 50000);
    /* A 1.5 s lock makes the whole session's lease 2 s (whole seconds, up). */
    ck_assert_int_eq(dlock_acquire(c, short_name, 1500, 0, &short_lock), DLOCK_OK);
    ck_assert_int_le(dlock_remaining_ms(long_lock), 2000);
    ck_assert_int_le(dlock_remaining_ms(short_lock), 1500);
    /* Releasing it gives the long lock its own lease back... */
    ck_assert_int_eq(dlock_release(short_lock), DLOCK_OK);
    /* ...and the session survives a silence longer than the short TTL. */
    dlt_sleep_ms(3000);
    ck_assert_msg(dlock_extend(long_lock, 60000) == DLOCK_OK, "%s", dlock_last_error());

    /* An extend to a shorter TTL shortens the session's lease; back again,
     * the session outlives the short one. */
    ck_assert_int_eq(dlock_extend(long_lock, 1000), DLOCK_OK);
    ck_assert_int_le(dlock_remaining_ms(long_lock), 1000);
    ck_assert_int_eq(dlock_extend(long_lock, 60000), DLOCK_OK);
    ck_assert_int_gt(dlock_remaining_ms(long_lock), 50000);
    dlt_sleep_ms(2200);
    ck_assert_msg(dlock_extend(long_lock, 60000) == DLOCK_OK, "%s", dlock_last_error());

    /* A short try that fails must not shorten the session's lease either. */
    dlock_client *other = open_client();
    ck_assert_int_eq(dlock_acquire(other, busy_name, 60000, 0, &busy_lock), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, busy_name, 1000, 0, &short_lock), DLOCK_EBUSY);
    dlt_sleep_ms(2500);
    ck_assert_msg(dlock_extend(long_lock, 60000) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_int_eq(dlock_release(busy_lock), DLOCK_OK);
    dlock_close(other);

    ck_assert_int_eq(dlock_release(long_lock), DLOCK_OK);
    dlock_close(c);
    free(long_name);
    free(short_name);
    free(busy_name);
}
END_TEST

/* wait_timeout is whole seconds: a TTL of 1.9 s needs 2 s, not 1 s, or an
 * extend well within the TTL would find the session gone. */
START_TEST(a_fractional_ttl_rounds_the_session_lease_up)
{
    dlock_client *c = open_client();
    char *name = unique("fraction");
    dlock_lock *lock = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 1900, 0, &lock), DLOCK_OK);
    ck_assert_int_gt(dlock_remaining_ms(lock), 1000);
    dlt_sleep_ms(1300);
    ck_assert_msg(dlock_extend(lock, 1900) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_int_eq(dlock_release(lock), DLOCK_OK);
    dlock_close(c);
    free(name);
}
END_TEST

static long long global_status(MYSQL *db, const char *variable)
{
    return raw_int(db,
                   "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                   "WHERE VARIABLE_NAME = ?",
                   variable);
}

/* Steady state: one statement per acquire, extend and release, and no
 * session setting sent again while the TTL stays the same.  Counted with the
 * server's global counters (a test running at the same time on the same
 * server could add to them: then it tries again). */
START_TEST(one_round_trip_per_call)
{
    /* _i: 0 session mode, 1 fencing=on (the fence in the acquire's round
     * trip), 2 lease mode.  Since issue 23 an acquire costs a second
     * statement: each mode looks for a holder of the other (session mode:
     * the lease row; lease mode: the GET_LOCK name).  In session mode a
     * lock's first renewal also writes its name and since into
     * dlock_holders, and its release drops that row (issue 24); a second
     * renewal is one statement.  So 7 per cycle in session mode, 5 in
     * lease mode. */
    static const char *const options[] = {NULL, "fencing=on", "mode=lease"};
    const long long per_cycle = _i == 2 ? 5 : 7;
    char u[8192];
    snprintf(u, sizeof u, "%s", options[_i] ? url_with(url, options[_i]) : url);
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(u, &c), DLOCK_OK);
    char *name = unique("rtt");
    MYSQL *monitor = raw_open(root_url ? root_url : url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK); /* warm up */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    const int cycles = 100;
    long long questions = -1, settings = -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        long long q0 = global_status(monitor, "QUESTIONS");
        long long s0 = global_status(monitor, "COM_SET_OPTION");
        for (int i = 0; i < cycles; i++) {
            ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
            ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_OK);
            ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_OK);
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        }
        /* The monitor's own two status queries count too. */
        questions = global_status(monitor, "QUESTIONS") - q0 - 2;
        settings = global_status(monitor, "COM_SET_OPTION") - s0;
        if (questions == per_cycle * cycles && settings == 0)
            break;
    }
    fprintf(stderr,
            "FIGURE: %s: %d x (acquire + 2 extends + release), same TTL: %lld statements, %lld "
            "session settings\n",
            options[_i] ? options[_i] : "session mode", cycles, questions, settings);
    ck_assert_int_eq(questions, per_cycle * cycles);
    ck_assert_int_eq(settings, 0);
    mysql_close(monitor);
    dlock_close(c);
    free(name);
}
END_TEST

/* A client whose idle session the server closed reconnects for the next
 * acquire by itself. */
START_TEST(idle_session_reconnects_for_new_acquires)
{
    dlock_client *c = open_client();
    char *name = unique("idle");
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 1000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_sleep_ms(2500); /* wait_timeout is 1 s now: the server drops us */
    ck_assert_msg(dlock_acquire(c, name, 1000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert(busy_for_others(name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    char who[128];
    dlt_sleep_ms(2500);
    ck_assert_int_eq(dlock_holder(c, name, who, sizeof who), 0);
    dlock_close(c);
    free(name);
}
END_TEST

/* A waiter blocked by a plain client is woken by dlock_cancel (KILL QUERY
 * over a second connection) and its session is still good afterwards. */
struct cancel_args {
    dlock_client *client;
    int delay_ms;
};

static void *cancel_later(void *arg)
{
    struct cancel_args *a = arg;
    dlt_sleep_ms(a->delay_ms);
    dlock_cancel(a->client);
    return NULL;
}

START_TEST(cancel_interrupts_a_server_side_wait)
{
    char *name = unique("cancel"), *other_name = unique("kept");
    MYSQL *raw = raw_open(url);
    ck_assert_int_eq(raw_int(raw, "SELECT GET_LOCK(?, 0)", name), 1);
    dlock_client *c = open_client();
    dlock_lock *kept = NULL, *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, other_name, 30000, 0, &kept), DLOCK_OK);
    for (int round = 0; round < 3; round++) {
        struct cancel_args args = {c, 200};
        pthread_t thread;
        ck_assert_int_eq(pthread_create(&thread, NULL, cancel_later, &args), 0);
        int64_t start = dlt_now_ms();
        int rc = dlock_acquire(c, name, 30000, round == 1 ? 20000 : DLOCK_WAIT_FOREVER, &l);
        int64_t took = dlt_now_ms() - start;
        pthread_join(thread, NULL);
        ck_assert_msg(rc == DLOCK_ECANCELED, "round %d: %d %s", round, rc, dlock_last_error());
        ck_assert_int_ge(took, 150);
        ck_assert_int_lt(took, 1500);
        if (round == 0)
            fprintf(stderr,
                    "FIGURE: dlock_cancel -> waiting acquire returned after %lld ms "
                    "(cancel sent at 200 ms)\n",
                    (long long)took);
    }
    /* The session survived the KILL QUERY: the other lock is still held. */
    ck_assert_int_eq(dlock_extend(kept, 30000), DLOCK_OK);
    ck_assert(busy_for_others(other_name));
    /* And a later wait is not cancelled by an old request. */
    ck_assert_int_eq(raw_int(raw, "SELECT RELEASE_LOCK(?)", name), 1);
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 1000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(kept), DLOCK_OK);
    dlock_close(c);
    mysql_close(raw);
    free(name);
    free(other_name);
}
END_TEST

/* A KILL QUERY from outside (not ours) is not a cancel and not a grant. */
START_TEST(foreign_kill_query_is_a_backend_error)
{
    char *name = unique("kq");
    MYSQL *raw = raw_open(url);
    ck_assert_int_eq(raw_int(raw, "SELECT GET_LOCK(?, 0)", name), 1);
    dlt_child waiter;
    ck_assert_int_eq(dlt_child_start(&waiter, url, name, 10000, 20000), 0);
    /* Find the waiting connection: the one running GET_LOCK. */
    long long id = -1;
    MYSQL *admin = raw_open(root_url ? root_url : url);
    for (int i = 0; i < 100 && id < 0; i++) {
        dlt_sleep_ms(30);
        id = raw_int(admin,
                     "SELECT MAX(ID) FROM information_schema.PROCESSLIST "
                     "WHERE INFO LIKE 'SELECT GET_LOCK(%' AND ID <> CONNECTION_ID()",
                     NULL);
    }
    ck_assert_int_gt(id, 0);
    kill_connection(id, 1);
    int rc = dlt_child_read(&waiter, 5000);
    ck_assert_msg(rc == DLOCK_EBACKEND, "got %d", rc);
    dlt_child_stop(&waiter, 0);
    mysql_close(admin);
    mysql_close(raw);
    free(name);
}
END_TEST

START_TEST(connection_failures)
{
    dlock_client *c = NULL;
    /* Nothing listens on port 1. */
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_open("mysql://dlock:Sup3rS3cret@127.0.0.1:1/dlock_test", &c), DLOCK_ECONN);
    ck_assert_int_lt(dlt_now_ms() - start, 5000);
    ck_assert_ptr_null(c);
    ck_assert(strstr(dlock_last_error(), "Sup3rS3cret") == NULL);
    ck_assert(strstr(dlock_last_error(), "127.0.0.1:1") != NULL);

    /* The right server, a wrong password: no session, ECONN as on PostgreSQL. */
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url(url, &u), DLOCK_OK);
    char bad[512];
    snprintf(bad, sizeof bad, "mysql://%s:Wr0ngPassw0rd@%s:%u/%s", u.user, u.host, u.port,
             u.database ? u.database : "");
    ck_assert_int_eq(dlock_open(bad, &c), DLOCK_ECONN);
    ck_assert(strstr(dlock_last_error(), "Wr0ngPassw0rd") == NULL);
    ck_assert(strstr(dlock_last_error(), "Access denied") != NULL);

    dlock__mysql_url_free(&u);

    /* An unknown database: no session either. */
    ck_assert_int_eq(dlock__mysql_parse_url(url, &u), DLOCK_OK);
    snprintf(bad, sizeof bad, "mysql://%s:%s@%s:%u/no_such_db_here", u.user, "x", u.host, u.port);
    dlock__mysql_url_free(&u);
    ck_assert_int_eq(dlock_open(bad, &c), DLOCK_ECONN);
}
END_TEST

/* The shared test server offers TLS (tests/mysql-server.sh makes a CA). */
START_TEST(tls_modes)
{
    const char *ca = getenv("DLOCK_TEST_MYSQL_CA");
    const char *other_ca = getenv("DLOCK_TEST_MYSQL_OTHER_CA");
    if (!ca || !*ca || !other_ca || !*other_ca) {
        fprintf(stderr, "DLOCK_TEST_MYSQL_CA not set (no openssl?): skipping the TLS test\n");
        return;
    }
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url(url, &u), DLOCK_OK);
    char options[4400];
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    char *name = unique("tls");

    ck_assert_msg(dlock_open(url_with(url, "ssl-mode=REQUIRED"), &c) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);

    snprintf(options, sizeof options, "ssl-mode=VERIFY_IDENTITY&ssl-ca=%s", ca);
    ck_assert_msg(dlock_open(url_with(url, options), &c) == DLOCK_OK, "%s", dlock_last_error());
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);

    /* A certificate that the given CA did not sign is refused. */
    snprintf(options, sizeof options, "ssl-mode=VERIFY_CA&ssl-ca=%s", other_ca);
    c = NULL;
    ck_assert_int_eq(dlock_open(url_with(url, options), &c), DLOCK_ECONN);
    ck_assert_ptr_null(c);
    ck_assert(strstr(dlock_last_error(), u.password) == NULL);
    snprintf(options, sizeof options, "ssl-mode=VERIFY_IDENTITY&ssl-ca=%s", other_ca);
    ck_assert_int_eq(dlock_open(url_with(url, options), &c), DLOCK_ECONN);
    /* Verification without a CA of ours: the system's CAs did not sign it. */
    ck_assert_int_eq(dlock_open(url_with(url, "ssl-mode=VERIFY_CA"), &c), DLOCK_ECONN);

    ck_assert_msg(dlock_open(url_with(url, "ssl-mode=DISABLED&connect-timeout=3"), &c) == DLOCK_OK, "%s",
                  dlock_last_error());
    dlock_close(c);
    dlock__mysql_url_free(&u);
    free(name);
}
END_TEST

START_TEST(socket_is_close_on_exec)
{
    dlock_client *c = open_client();
    char *name = unique("cloexec");
    dlock_lock *l = NULL;
    /* A wait opens the cancel connection too: two sockets. */
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 1000, &l), DLOCK_OK);
    /* Every socket this process holds must carry FD_CLOEXEC. */
    int sockets = 0;
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        sockets++;
        int flags = fcntl(fd, F_GETFD);
        ck_assert_msg(flags >= 0 && (flags & FD_CLOEXEC), "socket fd %d is inherited by exec", fd);
    }
    ck_assert_int_ge(sockets, 2);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    free(name);
}
END_TEST

void dlt_mysql_add_server(Suite *s)
{
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, integration_setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, names_the_server_would_confuse_are_distinct);
    tcase_add_test(tc, hostile_names_are_just_names);
    tcase_add_test(tc, plain_client_and_dlock_exclude_each_other);
    tcase_add_test(tc, holder_of_a_free_lock);
    tcase_add_test(tc, lease_follows_the_smallest_ttl);
    tcase_add_test(tc, a_fractional_ttl_rounds_the_session_lease_up);
    tcase_add_loop_test(tc, one_round_trip_per_call, 0, 3);
    tcase_add_test(tc, idle_session_reconnects_for_new_acquires);
    tcase_add_test(tc, cancel_interrupts_a_server_side_wait);
    tcase_add_test(tc, foreign_kill_query_is_a_backend_error);
    tcase_add_test(tc, connection_failures);
    tcase_add_test(tc, tls_modes);
    tcase_add_test(tc, socket_is_close_on_exec);
    suite_add_tcase(s, tc);
}
