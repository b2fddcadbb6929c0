/*
 * The lock is taken away behind the holder's back while its lease still
 * looks alive, through the store's own client (not through libdlock): an
 * operator's DELETE of the SQLite row, a row that another clock or another
 * boot wrote, pg_terminate_backend, MySQL's KILL.  Then extend and release
 * must say DLOCK_ELOST, dlock_remaining_ms must say 0, and whoever holds the
 * lock now must find it untouched: same owner, same expiry, same session.
 *
 * These are the cases where the store's own "is this still mine?" check is
 * the only thing between the holder and someone else's lock: the client-side
 * lease clock cannot see them coming (scripts/mutants.sh cuts those checks
 * down and expects these tests to fail).  Also: a silent holder's lock is
 * never taken before its TTL, and a PostgreSQL wait that is granted and
 * cancelled in the same instant does not leave the lock held.
 *
 * Runs once per URL of $DLOCK_TEST_URLS (default: an SQLite file).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_SQLITE
#include <sqlite3.h>
#endif
#ifdef HAVE_POSTGRESQL
#include <libpq-fe.h>
#include "../backends/postgresql/key.h"
#endif
#ifdef HAVE_MYSQL
#include <mysql.h>
#include "mysql/url.h"
#endif

#ifdef HAVE_REDIS
#include <hiredis/hiredis.h>
#include "redis/url.h"
#endif

#include "internal.h"
#include "common.h"

static const char *url;     /* the store under test */
static const char *backend; /* its backend name */

static dlock_client *open_client(void)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    ck_assert_msg(rc == DLOCK_OK, "dlock_open: %d %s", rc, dlock_last_error());
    return c;
}

static int is(const char *which)
{
    return strcmp(backend, which) == 0;
}

/* Lease mode keeps a row, as SQLite does: no session to lose. */
static int is_lease(void)
{
    return is("mysql") && strstr(url, "mode=lease") != NULL;
}

static int pg_lease(void)
{
    return is("postgresql") && strstr(url, "mode=lease") != NULL;
}

/* A store whose lock outlives the connection that took it (a row with an
 * owner token, a key): nothing tells the holder before its next call. */
static int row_store(void)
{
    return is("sqlite") || is("redis") || is_lease() || pg_lease();
}
#ifdef HAVE_REDIS
/* One command on a plain hiredis connection (as redis-cli), about `name`'s
 * keys: "GET", "DEL"; the reply as text ("" nil). */
static void redis_raw(const char *cmd, const char *name, const char *suffix, char *out, size_t outlen)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    struct timeval tv = {5, 0};
    redisContext *c =
        u.socket ? redisConnectUnixWithTimeout(u.socket, tv) : redisConnectWithTimeout(u.host, u.port, tv);
    ck_assert(c && !c->err);
    redisReply *r = NULL;
    if (u.password) {
        r = u.user ? redisCommand(c, "AUTH %s %s", u.user, u.password) : redisCommand(c, "AUTH %s", u.password);
        freeReplyObject(r);
    }
    r = redisCommand(c, "SELECT %d", u.db);
    freeReplyObject(r);
    char key[700];
    snprintf(key, sizeof key, "%s{%s}%s", u.prefix, name, suffix);
    r = redisCommand(c, "%s %s", cmd, key);
    ck_assert_ptr_nonnull(r);
    if (out)
        snprintf(out, outlen, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    if (!out && strcmp(cmd, "DEL") == 0)
        ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    dlock__redis_url_free(&u);
}
#endif

/* --- the store's own view, through its own client ---------------------------------- */

#ifdef HAVE_SQLITE
/* The database file of an sqlite: URL (sqlite:///abs, sqlite:/abs, sqlite:rel). */
static sqlite3 *sqlite_raw(void)
{
    const char *p = strchr(url, ':') + 1;
    if (strncmp(p, "//", 2) == 0)
        p += 2;
    char *path = NULL;
    ck_assert_int_eq(dlock__percent_decode(p, strlen(p), &path), DLOCK_OK);
    sqlite3 *db = NULL;
    ck_assert_msg(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK, "open %s", path);
    sqlite3_busy_timeout(db, 10000);
    free(path);
    return db;
}

/* Run `sql` with ?1 bound to `name`; the first column of the first row as
 * text into out ("" when there is no row).  Returns the rows changed. */
static int sqlite_run(const char *sql, const char *name, char *out, size_t outlen)
{
    sqlite3 *db = sqlite_raw();
    sqlite3_stmt *s = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (out && outlen)
        out[0] = '\0';
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && out && outlen) {
        const unsigned char *text = sqlite3_column_text(s, 0);
        snprintf(out, outlen, "%s", text ? (const char *)text : "");
        rc = sqlite3_step(s);
    }
    ck_assert_msg(rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    int changed = sqlite3_changes(db);
    sqlite3_close(db);
    return changed;
}
#endif

#ifdef HAVE_POSTGRESQL
static PGconn *pg_raw(void)
{
    /* libdlock's own options (mode, table, fencing) are not libpq's. */
    char plain[1024];
    const char *q = strchr(url, '?');
    snprintf(plain, sizeof plain, "%.*s", (int)(q ? q - url : (ptrdiff_t)strlen(url)), url);
    for (const char *p = q; p && *p;) {
        p++;
        size_t n = strcspn(p, "&");
        if (strncmp(p, "mode=", 5) != 0 && strncmp(p, "table=", 6) != 0 && strncmp(p, "fencing=", 8) != 0)
            snprintf(plain + strlen(plain), sizeof plain - strlen(plain), "%c%.*s", strchr(plain, '?') ? '&' : '?',
                     (int)n, p);
        p += n;
    }
    PGconn *pg = PQconnectdb(plain);
    ck_assert_msg(pg && PQstatus(pg) == CONNECTION_OK, "raw connect: %s", pg ? PQerrorMessage(pg) : "");
    return pg;
}

/* Run `sql` on `pg` with $1 the advisory key of `name`; the first column of
 * the first row into out ("" when there is none).  0, or -1 on an error. */
static int pg_key_query(PGconn *pg, const char *sql, const char *name, char *out, size_t outlen)
{
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)dlock__pg_key(name, strlen(name)));
    const char *values[1] = {key};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, values, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (out && outlen)
        snprintf(out, outlen, "%s", ok && PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return ok ? 0 : -1;
}

/* How pg_locks shows the advisory lock of key $1. */
#define PG_LOCKS_OF_KEY                                                                \
    "SELECT pid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND objsubid = 1" \
    " AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid"

/* The server pid of the session that holds `name` as text ("" when free). */
static void pg_holder_pid(const char *name, char *out, size_t outlen)
{
    PGconn *pg = pg_raw();
    ck_assert_msg(pg_key_query(pg, PG_LOCKS_OF_KEY " AND granted", name, out, outlen) == 0, "pg_locks: %s",
                  PQerrorMessage(pg));
    PQfinish(pg);
}
#endif

#ifdef HAVE_MYSQL
static MYSQL *mysql_raw(void)
{
    struct dlock_mysql_url u;
    struct dlock_url_options opts; /* mode=, fencing=: libdlock's, not the client library's */
    char *rest = NULL;
    ck_assert_int_eq(dlock__url_options(url, &opts, &rest), DLOCK_OK);
    dlock__url_options_free(&opts);
    ck_assert_int_eq(dlock__mysql_parse_url(rest, &u), DLOCK_OK);
    free(rest);
    MYSQL *db = mysql_init(NULL);
    ck_assert_ptr_nonnull(db);
    ck_assert_msg(mysql_real_connect(db, u.host ? u.host : "localhost", u.user, u.password, u.database, u.port,
                                     u.socket, 0) != NULL,
                  "raw connect: %s", mysql_error(db));
    dlock__mysql_url_free(&u);
    return db;
}

/* The connection id that holds `name` now, as text ("" when free). */
static void mysql_lock_user(MYSQL *db, const char *name, char *out, size_t outlen)
{
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1], quoted[2 * DLOCK_MYSQL_LOCK_NAME_MAX + 1], query[1024];
    ck_assert_int_gt(dlock__mysql_lock_name(name, server_name, sizeof server_name), 0);
    mysql_real_escape_string(db, quoted, server_name, (unsigned long)strlen(server_name));
    if (is_lease()) {
        /* the row, named by the dlock name itself */
        char qname[600];
        mysql_real_escape_string(db, qname, name, (unsigned long)strlen(name));
        snprintf(query, sizeof query,
                 "SELECT CONCAT(HEX(owner), ' expires=', expires_at, ' fence=', fence) FROM dlock_leases"
                 " WHERE name = '%s' AND owner IS NOT NULL",
                 qname);
    } else {
        snprintf(query, sizeof query, "SELECT IS_USED_LOCK('%s')", quoted);
    }
    ck_assert_msg(mysql_query(db, query) == 0, "%s: %s", query, mysql_error(db));
    MYSQL_RES *res = mysql_store_result(db);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    snprintf(out, outlen, "%s", row && row[0] ? row[0] : "");
    if (res)
        mysql_free_result(res);
}
#endif

/*
 * Who holds `name`, as the store itself says, in a form that changes when
 * anything about that holding changes: the SQLite row (owner token, expiry,
 * fence), the PostgreSQL backend pid, the MySQL connection id.  "" when free.
 */
static void store_view(const char *name, char *out, size_t outlen)
{
    out[0] = '\0';
#ifdef HAVE_REDIS
    if (is("redis")) {
        char value[300] = "", fence[64] = "";
        redis_raw("GET", name, "", value, sizeof value);
        redis_raw("GET", name, ":fence", fence, sizeof fence);
        if (value[0])
            snprintf(out, outlen, "%s fence=%s", value, fence);
    }
#endif
#ifdef HAVE_SQLITE
    if (is("sqlite"))
        sqlite_run("SELECT hex(owner) || ' expires=' || expires_boot_ms || ' fence=' || fence"
                   " FROM dlock_locks WHERE name = ?1 AND owner IS NOT NULL",
                   name, out, outlen);
#endif
#ifdef HAVE_POSTGRESQL
    if (pg_lease()) {
        PGconn *pg = pg_raw();
        const char *values[1] = {name};
        PGresult *res = PQexecParams(pg,
                                     "SELECT owner || ' expires=' || expires_at || ' fence=' || fence FROM dlock_leases"
                                     " WHERE name = convert_to($1, 'UTF8') AND owner IS NOT NULL",
                                     1, NULL, values, NULL, NULL, 0);
        ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
        snprintf(out, outlen, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
        PQclear(res);
        PQfinish(pg);
    } else if (is("postgresql")) {
        pg_holder_pid(name, out, outlen);
    }
#endif
#ifdef HAVE_MYSQL
    if (is("mysql")) {
        MYSQL *db = mysql_raw();
        mysql_lock_user(db, name, out, outlen);
        mysql_close(db);
    }
#endif
}

/* Take `name` away from its holder behind libdlock's back, the way an
 * operator or the server would: delete the row, end the session. */
static void take_away(const char *name)
{
#ifdef HAVE_REDIS
    if (is("redis"))
        redis_raw("DEL", name, "", NULL, 0);
#endif
#ifdef HAVE_SQLITE
    if (is("sqlite"))
        ck_assert_int_eq(sqlite_run("DELETE FROM dlock_locks WHERE name = ?1", name, NULL, 0), 1);
#endif
#ifdef HAVE_POSTGRESQL
    if (pg_lease()) {
        PGconn *pg = pg_raw();
        const char *values[1] = {name};
        PGresult *res = PQexecParams(pg, "DELETE FROM dlock_leases WHERE name = convert_to($1, 'UTF8')", 1, NULL,
                                     values, NULL, NULL, 0);
        ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(res), "1") == 0, "delete: %s",
                      PQerrorMessage(pg));
        PQclear(res);
        PQfinish(pg);
    } else if (is("postgresql")) {
        char pid[32];
        pg_holder_pid(name, pid, sizeof pid);
        ck_assert_msg(pid[0], "nobody holds '%s'", name);
        PGconn *pg = pg_raw();
        const char *values[1] = {pid};
        PGresult *res =
            PQexecParams(pg, "SELECT pg_catalog.pg_terminate_backend($1::int)", 1, NULL, values, NULL, NULL, 0);
        ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't',
                      "pg_terminate_backend: %s", PQerrorMessage(pg));
        PQclear(res);
        PQfinish(pg);
    }
#endif
#ifdef HAVE_MYSQL
    if (is_lease()) {
        MYSQL *db = mysql_raw();
        char qname[600], sql[1024];
        mysql_real_escape_string(db, qname, name, (unsigned long)strlen(name));
        snprintf(sql, sizeof sql, "UPDATE dlock_leases SET owner = NULL, expires_at = 0 WHERE name = '%s'", qname);
        ck_assert_msg(mysql_query(db, sql) == 0, "%s: %s", sql, mysql_error(db));
        ck_assert_int_eq(mysql_affected_rows(db), 1);
        mysql_close(db);
    } else if (is("mysql")) {
        MYSQL *db = mysql_raw();
        char id[32], kill[64];
        mysql_lock_user(db, name, id, sizeof id);
        ck_assert_msg(id[0], "nobody holds '%s'", name);
        snprintf(kill, sizeof kill, "KILL %s", id);
        ck_assert_msg(mysql_query(db, kill) == 0, "%s: %s", kill, mysql_error(db));
        mysql_close(db);
    }
#endif
}

/* --- every backend ------------------------------------------------------------------ */

/*
 * The lock is taken away while the holder's lease still runs for a minute,
 * another client takes it, and the holder's client opens a new session (a
 * new acquire).  The old handle's extend and release are DLOCK_ELOST and
 * leave the new holder's lock exactly as it was.  On SQLite the row's owner
 * check says so; on the session stores the new session says so at once.
 */
START_TEST(taken_away_then_held_by_another)
{
    char *name = dlt_unique_name("takeover"), *other_name = dlt_unique_name("takeover-other");
    dlock_client *holder = open_client(), *thief = open_client();
    dlock_lock *mine = NULL, *theirs = NULL, *other = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 60000, 0, &mine), DLOCK_OK);
    take_away(name);
    /* A killed session lets go as the server notices: allow it a moment. */
    ck_assert_msg(dlock_acquire(thief, name, 60000, 5000, &theirs) == DLOCK_OK, "%s", dlock_last_error());
    char before[256], after[256];
    store_view(name, before, sizeof before);
    ck_assert_msg(before[0], "the store does not show the new holder");
    /* The holder's client goes on: a session store reconnects for this. */
    ck_assert_msg(dlock_acquire(holder, other_name, 60000, 0, &other) == DLOCK_OK, "%s", dlock_last_error());
    if (row_store())
        ck_assert_int_gt(dlock_remaining_ms(mine), 50000); /* the lease still looks alive */
    else /* the session it was taken on is gone: lost at once (issue 10) */
        ck_assert_int_eq(dlock_remaining_ms(mine), 0);

    ck_assert_int_eq(dlock_extend(mine, 60000), DLOCK_ELOST);
    if (!row_store()) /* the session it was taken on is gone, and the message says so */
        ck_assert_msg(strstr(dlock_last_error(), "session that held it"), "%s", dlock_last_error());
    ck_assert_int_eq(dlock_remaining_ms(mine), 0);
    ck_assert_int_eq(dlock_extend(mine, 60000), DLOCK_ELOST);
    store_view(name, after, sizeof after);
    ck_assert_str_eq(after, before);

    ck_assert_int_eq(dlock_release(mine), DLOCK_ELOST);
    if (!row_store())
        ck_assert_msg(strstr(dlock_last_error(), "session that held it"), "%s", dlock_last_error());
    store_view(name, after, sizeof after);
    ck_assert_str_eq(after, before);

    ck_assert_int_eq(dlock_extend(theirs, 60000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_OK);
    ck_assert_int_eq(dlock_release(other), DLOCK_OK);
    dlock_close(thief);
    dlock_close(holder);
    free(name);
    free(other_name);
}
END_TEST

/*
 * A silent holder's lock goes to another client once its lease has run out,
 * never before: the first acquire that succeeds comes no earlier than TTL
 * after the holder's acquire was sent.
 */
START_TEST(never_taken_before_the_lease_ends)
{
    const uint32_t ttl = 800;
    const int64_t slack = is("mysql") ? 2500 : 1500; /* mysql: whole seconds */
    char *name = dlt_unique_name("takeover-early");
    dlock_client *holder = open_client(), *other = open_client();
    dlock_lock *mine = NULL, *theirs = NULL;
    int64_t sent = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(holder, name, ttl, 0, &mine), DLOCK_OK);
    int64_t taken = -1;
    while (dlt_now_ms() - sent < ttl + slack) {
        int64_t tried = dlt_now_ms();
        int rc = dlock_acquire(other, name, 60000, 0, &theirs);
        if (rc == DLOCK_OK) {
            taken = tried;
            break;
        }
        ck_assert_msg(rc == DLOCK_EBUSY, "%d %s", rc, dlock_last_error());
        dlt_sleep_ms(5);
    }
    ck_assert_msg(taken >= 0, "not freed within TTL + %lld ms", (long long)slack);
    /* A 1 ms allowance: the store's clock and ours tick apart. */
    ck_assert_msg(taken - sent >= ttl - 1, "taken %lld ms after a %u ms lease began: two holders",
                  (long long)(taken - sent), ttl);
    ck_assert_int_eq(dlock_remaining_ms(mine), 0);
    ck_assert_int_eq(dlock_extend(mine, 60000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(mine), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_OK);
    dlock_close(other);
    dlock_close(holder);
    free(name);
}
END_TEST

/* --- PostgreSQL: a cancel that comes after the grant ----------------------------------- */

#ifdef HAVE_POSTGRESQL
typedef struct waiter {
    dlock_client *client;
    const char *name;
    dlock_lock *lock;
    int rc;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    w->rc = dlock_acquire(w->client, w->name, 30000, DLOCK_WAIT_FOREVER, &w->lock);
    return NULL;
}

/*
 * The waiting session is granted the lock and cancelled in the same instant:
 * its server process is stopped (SIGSTOP) while the holder lets go (which
 * grants the lock to it) and while dlock_cancel() sends the cancel request;
 * then it runs on and answers "canceling statement" with the lock held.  The
 * caller is told DLOCK_ECANCELED, so the lock must not stay held by its
 * session: the backend gives it back.
 */
START_TEST(pg_cancel_after_the_grant)
{
    char *name = dlt_unique_name("takeover-late-grant");
    PGconn *holder = pg_raw();
    char answer[32];
    ck_assert_int_eq(pg_key_query(holder, "SELECT pg_catalog.pg_advisory_lock($1::bigint)", name, NULL, 0), 0);
    waiter w = {open_client(), name, NULL, 99};
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, waiter_main, &w), 0);
    PGconn *observer = pg_raw();
    int pid = 0;
    for (int i = 0; i < 500 && pid == 0; i++) {
        ck_assert_int_eq(pg_key_query(observer, PG_LOCKS_OF_KEY " AND NOT granted", name, answer, sizeof answer), 0);
        pid = atoi(answer);
        if (pid == 0)
            dlt_sleep_ms(10);
    }
    ck_assert_msg(pid > 0, "the wait did not show in pg_locks");
    if (kill(pid, SIGSTOP) != 0) {
        /* A server on another host, or of another user: nothing to stop. */
        fprintf(stderr, "cannot stop PostgreSQL backend %d: the late-grant case is not tested\n", pid);
        ck_assert_int_eq(pg_key_query(holder, "SELECT pg_catalog.pg_advisory_unlock($1::bigint)", name, NULL, 0), 0);
        pthread_join(thread, NULL);
        ck_assert_int_eq(w.rc, DLOCK_OK);
        ck_assert_int_eq(dlock_release(w.lock), DLOCK_OK);
    } else {
        /* No assertion until SIGCONT: a stopped backend would outlive the test. */
        int unlocked = pg_key_query(holder, "SELECT pg_catalog.pg_advisory_unlock($1::bigint)", name, NULL, 0);
        int granted_pid = pg_key_query(observer, PG_LOCKS_OF_KEY " AND granted", name, answer, sizeof answer) == 0
                              ? atoi(answer)
                              : -1;
        int cancel_rc = dlock_cancel(w.client);
        dlt_sleep_ms(600); /* the cancel request reaches the stopped backend */
        kill(pid, SIGCONT);
        ck_assert_int_eq(unlocked, 0);
        ck_assert_int_eq(cancel_rc, DLOCK_OK);
        ck_assert_msg(granted_pid == pid, "the stopped waiter %d was not granted the lock (%d)", pid, granted_pid);
        pthread_join(thread, NULL);
        ck_assert_msg(w.rc == DLOCK_ECANCELED, "acquire: %d %s", w.rc, dlock_last_error());
        char now_held_by[32];
        pg_holder_pid(name, now_held_by, sizeof now_held_by);
        ck_assert_msg(now_held_by[0] == '\0', "cancelled, yet backend %s holds the lock", now_held_by);
    }
    dlock_close(w.client);
    PQfinish(observer);
    PQfinish(holder);
    free(name);
}
END_TEST
#endif

/* --- SQLite: rows rewritten behind the holder's back --------------------------------- */

#ifdef HAVE_SQLITE
static const struct {
    const char *what;
    const char *sql; /* ?1 is the name */
} row_rewrites[] = {
    /* Another process with another clock, or a suspended host, found it expired. */
    {"expired", "UPDATE dlock_locks SET expires_boot_ms = 1 WHERE name = ?1"},
    /* Written during an earlier boot: whatever its expiry says, it is over. */
    {"earlier boot", "UPDATE dlock_locks SET boot_id = 'an-earlier-boot', expires_boot_ms = 9000000000000000"
                     " WHERE name = ?1"},
};

/*
 * The row says the lease is over while the holder's own clock still gives
 * it a minute: extend (of one lock) and release (of another) are
 * DLOCK_ELOST, and another client takes the lock at once.
 */
START_TEST(sqlite_row_says_the_lease_is_over)
{
    char *a = dlt_unique_name("takeover-row-a"), *b = dlt_unique_name("takeover-row-b");
    dlock_client *holder = open_client(), *other = open_client();
    dlock_lock *la = NULL, *lb = NULL, *theirs = NULL;
    ck_assert_int_eq(dlock_acquire(holder, a, 60000, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(holder, b, 60000, 0, &lb), DLOCK_OK);
    ck_assert_int_eq(sqlite_run(row_rewrites[_i].sql, a, NULL, 0), 1);
    ck_assert_int_eq(sqlite_run(row_rewrites[_i].sql, b, NULL, 0), 1);
    ck_assert_int_gt(dlock_remaining_ms(la), 50000);

    ck_assert_msg(dlock_extend(la, 60000) == DLOCK_ELOST, "%s: extend was not ELOST", row_rewrites[_i].what);
    ck_assert_int_eq(dlock_remaining_ms(la), 0);
    ck_assert_msg(dlock_release(lb) == DLOCK_ELOST, "%s: release was not ELOST", row_rewrites[_i].what);

    ck_assert_msg(dlock_acquire(other, a, 60000, 0, &theirs) == DLOCK_OK, "%s: not free: %s", row_rewrites[_i].what,
                  dlock_last_error());
    ck_assert_int_eq(dlock_release(la), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(theirs), DLOCK_OK);
    dlock_close(other);
    dlock_close(holder);
    free(a);
    free(b);
}
END_TEST
#endif

/* --- main ----------------------------------------------------------------------------- */

/* One test per case, so that scripts/mutants.sh can run each alone
 * (CK_RUN_CASE). */
static TCase *add_case(Suite *s, const char *title)
{
    TCase *tc = tcase_create(title);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *takeover_suite(void)
{
    static char titles[3][64];
    static int used;
    char *title = titles[used++ % 3];
    snprintf(title, sizeof titles[0], "takeover[%s]", backend);
    Suite *s = suite_create(title);
    tcase_add_test(add_case(s, "taken-away"), taken_away_then_held_by_another);
    tcase_add_test(add_case(s, "early"), never_taken_before_the_lease_ends);
#ifdef HAVE_POSTGRESQL
    if (is("postgresql") && !pg_lease())
        tcase_add_test(add_case(s, "pg-late-grant"), pg_cancel_after_the_grant);
#endif
#ifdef HAVE_SQLITE
    if (is("sqlite"))
        tcase_add_loop_test(add_case(s, "sqlite-row"), sqlite_row_says_the_lease_is_over, 0,
                            (int)(sizeof row_rewrites / sizeof row_rewrites[0]));
#endif
    return s;
}

int main(void)
{
    int failed = dlt_run_per_url("takeover", takeover_suite, &url, &backend);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
