/* Raw MySQL/MariaDB baseline: prepared GET_LOCK(?, 0) + prepared
 * RELEASE_LOCK(?) on one connection, through the same client library and the
 * same URL parser as the backend.  Connecting and preparing are not timed. */
#include "config.h"

#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mysql_url.h" /* the pure URL parser, through -I (Makefile.am) */
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
