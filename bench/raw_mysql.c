/* Raw MySQL/MariaDB baseline: prepared GET_LOCK(?, 0) + prepared
 * RELEASE_LOCK(?) on one connection, through the same client library and the
 * same URL parser as the backend.  Connecting and preparing are not timed. */
#include "config.h"

#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mysql/url.h" /* the pure URL parser, through -I (Makefile.am) */
#include "dlock.h"
#include "raw.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static MYSQL_STMT *prepare(MYSQL *db, const char *sql)
{
    MYSQL_STMT *stmt = mysql_stmt_init(db);
    if (stmt && mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) != 0) {
        fprintf(stderr, "raw mysql: %s: %s\n", sql, mysql_stmt_error(stmt));
        mysql_stmt_close(stmt);
        stmt = NULL;
    }
    return stmt;
}

/* Execute `stmt` with the lock name bound; 1 when it returned 1. */
static int run_one(MYSQL_STMT *stmt, MYSQL_BIND *param, MYSQL_BIND *result, long long *value)
{
    *value = 0; /* stays 0 for a NULL result */
    if (mysql_stmt_bind_param(stmt, param) != 0 || mysql_stmt_execute(stmt) != 0 ||
        mysql_stmt_bind_result(stmt, result) != 0 || mysql_stmt_fetch(stmt) != 0) {
        fprintf(stderr, "raw mysql: %s\n", mysql_stmt_error(stmt));
        mysql_stmt_free_result(stmt);
        return 0;
    }
    mysql_stmt_free_result(stmt);
    return *value == 1;
}

int bench_raw_mysql(const char *url, long cycles, double *elapsed_s)
{
    struct dlock_mysql_url u;
    if (dlock__mysql_parse_url(url, &u) != DLOCK_OK)
        return -1;
    MYSQL *db = mysql_init(NULL);
    if (!db) {
        dlock__mysql_url_free(&u);
        return -1;
    }
    if (u.socket) {
        unsigned int protocol = MYSQL_PROTOCOL_SOCKET;
        mysql_options(db, MYSQL_OPT_PROTOCOL, &protocol);
    }
    int rc = -1;
    MYSQL_STMT *take = NULL, *drop = NULL;
    if (!mysql_real_connect(db, u.host ? u.host : "localhost", u.user, u.password, u.database, u.port, u.socket, 0)) {
        fprintf(stderr, "raw mysql: connect: %s\n", mysql_error(db));
        goto out;
    }
    take = prepare(db, "SELECT GET_LOCK(?, 0)");
    drop = prepare(db, "SELECT RELEASE_LOCK(?)");
    if (!take || !drop)
        goto out;

    static const char name[] = "bench-raw";
    unsigned long name_len = sizeof name - 1;
    MYSQL_BIND param;
    memset(&param, 0, sizeof param);
    param.buffer_type = MYSQL_TYPE_STRING;
    param.buffer = (void *)name;
    param.buffer_length = name_len;
    param.length = &name_len;
    long long value = 0;
    MYSQL_BIND result;
    memset(&result, 0, sizeof result);
    result.buffer_type = MYSQL_TYPE_LONGLONG;
    result.buffer = &value;

    rc = 0;
    double start = now_s();
    for (long i = 0; i < cycles && rc == 0; i++) {
        if (!run_one(take, &param, &result, &value) || !run_one(drop, &param, &result, &value))
            rc = -1;
    }
    *elapsed_s = now_s() - start;
out:
    if (take)
        mysql_stmt_close(take);
    if (drop)
        mysql_stmt_close(drop);
    mysql_close(db);
    dlock__mysql_url_free(&u);
    return rc;
}

/* --- handoff baseline ------------------------------------------------------ */

struct raw_session {
    MYSQL *db;
    MYSQL_STMT *try_lock, *wait_lock, *unlock;
    MYSQL_BIND param, result;
    unsigned long name_len;
    long long value;
};

static const char handoff_name[] = "bench-raw-handoff";

void bench_raw_mysql_close(void *session)
{
    struct raw_session *s = session;
    if (!s)
        return;
    if (s->try_lock)
        mysql_stmt_close(s->try_lock);
    if (s->wait_lock)
        mysql_stmt_close(s->wait_lock);
    if (s->unlock)
        mysql_stmt_close(s->unlock);
    mysql_close(s->db);
    free(s);
}

void *bench_raw_mysql_open(const char *url)
{
    struct dlock_mysql_url u;
    if (dlock__mysql_parse_url(url, &u) != DLOCK_OK)
        return NULL;
    struct raw_session *s = calloc(1, sizeof *s);
    if (!s || !(s->db = mysql_init(NULL))) {
        free(s);
        dlock__mysql_url_free(&u);
        return NULL;
    }
    if (u.socket) {
        unsigned int protocol = MYSQL_PROTOCOL_SOCKET;
        mysql_options(s->db, MYSQL_OPT_PROTOCOL, &protocol);
    }
    int ok = mysql_real_connect(s->db, u.host ? u.host : "localhost", u.user, u.password, u.database, u.port, u.socket,
                                0) != NULL;
    dlock__mysql_url_free(&u);
    if (ok) {
        s->try_lock = prepare(s->db, "SELECT GET_LOCK(?, 0)");
        s->wait_lock = prepare(s->db, "SELECT GET_LOCK(?, 30)");
        s->unlock = prepare(s->db, "SELECT RELEASE_LOCK(?)");
    }
    if (!ok || !s->try_lock || !s->wait_lock || !s->unlock) {
        bench_raw_mysql_close(s);
        return NULL;
    }
    s->name_len = sizeof handoff_name - 1;
    s->param.buffer_type = MYSQL_TYPE_STRING;
    s->param.buffer = (void *)handoff_name;
    s->param.buffer_length = s->name_len;
    s->param.length = &s->name_len;
    s->result.buffer_type = MYSQL_TYPE_LONGLONG;
    s->result.buffer = &s->value;
    return s;
}

int bench_raw_mysql_lock(void *session, int wait)
{
    struct raw_session *s = session;
    return run_one(wait ? s->wait_lock : s->try_lock, &s->param, &s->result, &s->value);
}

int bench_raw_mysql_unlock(void *session)
{
    struct raw_session *s = session;
    return run_one(s->unlock, &s->param, &s->result, &s->value);
}

/* --- lease mode baseline --------------------------------------------------- */

/* The same two statements as the backend's lease mode (backends/mysql/ops.c):
 * the conditional upsert that takes the row, and the owner-checked update
 * that lets it go, with the affected rows and the fence read back the same
 * way.  %s: the table. */
#define RAW_NOW_MS "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) DIV 1000)"
#define RAW_FREE "(owner IS NULL OR expires_at <= " RAW_NOW_MS " OR owner = VALUES(owner))"
static const char raw_take_sql[] =
    "INSERT INTO `%s` (name, owner, fence, expires_at, holder_host, holder_pid, taken_at, last_slot)"
    " VALUES (?, ?, LAST_INSERT_ID(1), " RAW_NOW_MS " + ?, ?, ?, " RAW_NOW_MS ", 0)"
    " ON DUPLICATE KEY UPDATE fence = IF(" RAW_FREE ", LAST_INSERT_ID(fence + 1), fence),"
    " holder_host = IF(" RAW_FREE ", VALUES(holder_host), holder_host),"
    " holder_pid = IF(" RAW_FREE ", VALUES(holder_pid), holder_pid),"
    " taken_at = IF(" RAW_FREE ", VALUES(taken_at), taken_at),"
    " owner = IF(" RAW_FREE ", VALUES(owner), owner),"
    " expires_at = IF(owner = VALUES(owner), VALUES(expires_at), expires_at)";
static const char raw_release_sql[] =
    "UPDATE `%s` SET owner = NULL, expires_at = 0 WHERE name = ? AND owner = ? AND expires_at > " RAW_NOW_MS;

/* `url` without libdlock's own options; *table: the lease table. */
static char *strip_options(const char *url, char *table, size_t tablelen)
{
    char *out = strdup(url);
    if (!out)
        return NULL;
    snprintf(table, tablelen, "dlock_leases");
    char *q = strchr(out, '?');
    if (!q)
        return out;
    char *rest = strdup(q + 1), *save = NULL;
    *q = '\0';
    size_t n = strlen(out);
    int kept = 0;
    for (char *t = strtok_r(rest, "&", &save); t; t = strtok_r(NULL, "&", &save)) {
        if (strncmp(t, "table=", 6) == 0) {
            snprintf(table, tablelen, "%s", t + 6);
            continue;
        }
        if (strncmp(t, "mode=", 5) == 0 || strncmp(t, "fencing=", 8) == 0)
            continue;
        n += (size_t)sprintf(out + n, "%c%s", kept++ ? '&' : '?', t);
    }
    free(rest);
    return out;
}

char *bench_raw_mysql_plain_url(const char *url)
{
    char table[80];
    return strip_options(url, table, sizeof table);
}

int bench_raw_mysql_lease(const char *url, long cycles, double *elapsed_s)
{
    char table[80], sql[2048];
    char *plain = strip_options(url, table, sizeof table);
    struct dlock_mysql_url u;
    if (!plain || dlock__mysql_parse_url(plain, &u) != DLOCK_OK) {
        free(plain);
        return -1;
    }
    free(plain);
    MYSQL *db = mysql_init(NULL);
    int rc = -1;
    MYSQL_STMT *take = NULL, *drop = NULL;
    if (!db)
        goto out;
    if (u.socket) {
        unsigned int protocol = MYSQL_PROTOCOL_SOCKET;
        mysql_options(db, MYSQL_OPT_PROTOCOL, &protocol);
    }
    if (!mysql_real_connect(db, u.host ? u.host : "localhost", u.user, u.password, u.database, u.port, u.socket, 0)) {
        fprintf(stderr, "raw mysql lease: connect: %s\n", mysql_error(db));
        goto out;
    }
    snprintf(sql, sizeof sql, raw_take_sql, table);
    take = prepare(db, sql);
    snprintf(sql, sizeof sql, raw_release_sql, table);
    drop = prepare(db, sql);
    if (!take || !drop)
        goto out;
    static const char name[] = "bench-raw-lease", host[] = "bench";
    static const unsigned char owner[16] = {0x5a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    unsigned long name_len = sizeof name - 1, owner_len = 16, host_len = sizeof host - 1;
    long long ttl = 60000, pid = 1;
    MYSQL_BIND p[5];
    memset(p, 0, sizeof p);
    p[0].buffer_type = MYSQL_TYPE_BLOB;
    p[0].buffer = (void *)name;
    p[0].buffer_length = name_len;
    p[0].length = &name_len;
    p[1].buffer_type = MYSQL_TYPE_BLOB;
    p[1].buffer = (void *)owner;
    p[1].buffer_length = owner_len;
    p[1].length = &owner_len;
    p[2].buffer_type = MYSQL_TYPE_LONGLONG;
    p[2].buffer = &ttl;
    p[3].buffer_type = MYSQL_TYPE_BLOB;
    p[3].buffer = (void *)host;
    p[3].buffer_length = host_len;
    p[3].length = &host_len;
    p[4].buffer_type = MYSQL_TYPE_LONGLONG;
    p[4].buffer = &pid;
    MYSQL_BIND r[2];
    memcpy(r, p, sizeof r);
    rc = 0;
    double start = now_s();
    for (long i = 0; i < cycles && rc == 0; i++) {
        if (mysql_stmt_bind_param(take, p) != 0 || mysql_stmt_execute(take) != 0 ||
            mysql_stmt_affected_rows(take) == 0 || mysql_stmt_insert_id(take) == 0 ||
            mysql_stmt_bind_param(drop, r) != 0 || mysql_stmt_execute(drop) != 0 ||
            mysql_stmt_affected_rows(drop) != 1) {
            fprintf(stderr, "raw mysql lease: %s%s\n", mysql_stmt_error(take), mysql_stmt_error(drop));
            rc = -1;
        }
    }
    *elapsed_s = now_s() - start;
out:
    if (take)
        mysql_stmt_close(take);
    if (drop)
        mysql_stmt_close(drop);
    if (db)
        mysql_close(db);
    dlock__mysql_url_free(&u);
    return rc;
}
