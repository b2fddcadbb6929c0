/*
 * The MySQL backend's table statements (lease mode's are used by lease.c),
 * the fence counter of session mode with fencing=on, and the operations of
 * both modes (list, break, store time, run records).
 *
 * Every statement is prepared once per session, takes the names as bound
 * parameters (the table name was checked by the URL parser and is quoted
 * with backticks) and runs as one autocommit statement within the call's
 * deadline (the watchdog).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "backend.h"
#include <mysqld_error.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"

/* The server's clock, as Unix ms: UTC_TIMESTAMP() does not depend on the
 * session's time zone, and TIMESTAMPDIFF on DATETIME values is plain
 * arithmetic (no daylight-saving fold). */
#define NOW_MS "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) DIV 1000)"

/* The statement texts, with %s for the table name (backticks around it). */
static const char *const op_sql[MYSQLBE_OPS_MAX] = {
    /* Take the row when it is free (no owner, or its lease is over) or
     * already ours (a retry after a lost answer): 1 inserted, 2 taken,
     * 0 held by someone else.  The condition reads the old values: owner
     * is assigned last but one, and expires_at (which then only asks
     * whether the owner is ours now) last. */
    [OP_LEASE_TAKE] =
        "INSERT INTO `%s` (name, owner, fence, expires_at, holder_host, holder_pid, taken_at, last_slot)"
        " VALUES (?, ?, LAST_INSERT_ID(1), " NOW_MS " + ?, ?, ?, " NOW_MS ", 0)"
        " ON DUPLICATE KEY UPDATE"
        " fence = IF(owner IS NULL OR expires_at <= " NOW_MS " OR owner = VALUES(owner),"
        " LAST_INSERT_ID(fence + 1), fence),"
        " holder_host = IF(owner IS NULL OR expires_at <= " NOW_MS
        " OR owner = VALUES(owner), VALUES(holder_host), holder_host),"
        " holder_pid = IF(owner IS NULL OR expires_at <= " NOW_MS
        " OR owner = VALUES(owner), VALUES(holder_pid), holder_pid),"
        " taken_at = IF(owner IS NULL OR expires_at <= " NOW_MS
        " OR owner = VALUES(owner), VALUES(taken_at), taken_at),"
        " owner = IF(owner IS NULL OR expires_at <= " NOW_MS " OR owner = VALUES(owner), VALUES(owner), owner),"
        " expires_at = IF(owner = VALUES(owner), VALUES(expires_at), expires_at)",
    /* How long the holder's lease still runs (no row: free). */
    [OP_LEASE_LEFT] = "SELECT IF(owner IS NULL, 0, GREATEST(expires_at - " NOW_MS ", 0)) FROM `%s` WHERE name = ?",
    [OP_LEASE_EXTEND] =
        "UPDATE `%s` SET expires_at = " NOW_MS " + ? WHERE name = ? AND owner = ? AND expires_at > " NOW_MS,
    [OP_LEASE_CHECK] = "SELECT COUNT(*) FROM `%s` WHERE name = ? AND owner = ? AND expires_at > " NOW_MS,
    [OP_LEASE_RELEASE] =
        "UPDATE `%s` SET owner = NULL, expires_at = 0 WHERE name = ? AND owner = ? AND expires_at > " NOW_MS,
    [OP_LEASE_HOLDER] = "SELECT holder_host, holder_pid, taken_at, expires_at - " NOW_MS ", fence FROM `%s`"
                        " WHERE name = ? AND owner IS NOT NULL AND expires_at > " NOW_MS,
    [OP_LEASE_LIST] = "SELECT name, holder_host, holder_pid, taken_at, expires_at, fence FROM `%s`"
                      " WHERE owner IS NOT NULL AND expires_at > " NOW_MS " AND LEFT(name, ?) = ?",
    [OP_LEASE_BREAK] = "UPDATE `%s` SET owner = NULL, expires_at = 0"
                       " WHERE name = ? AND owner IS NOT NULL AND expires_at > " NOW_MS,
    [OP_LEASE_RECORD_GET] = "SELECT last_slot FROM `%s` WHERE name = ? AND owner = ? AND expires_at > " NOW_MS,
    [OP_LEASE_RECORD_PUT] = "UPDATE `%s` SET last_slot = ? WHERE name = ? AND owner = ? AND expires_at > " NOW_MS,
    /* Session mode, fencing=on: the counter, bumped after a granted GET_LOCK. */
    [OP_FENCE_BUMP] = "INSERT INTO `%s` (name, lock_name, fence, last_slot) VALUES (?, ?, LAST_INSERT_ID(1), 0)"
                      " ON DUPLICATE KEY UPDATE fence = LAST_INSERT_ID(fence + 1)",
    /* ... and in the same round trip as GET_LOCK: the row is written only
     * when the lock was granted (1 new, 2 bumped; 0 not granted). */
    [OP_FENCE_TAKE] = "INSERT INTO `%s` (name, lock_name, fence, last_slot)"
                      " SELECT ?, ?, LAST_INSERT_ID(1), 0 FROM DUAL WHERE GET_LOCK(?, ?) = 1"
                      " ON DUPLICATE KEY UPDATE fence = LAST_INSERT_ID(fence + 1)",
    [OP_SESSION_RECORD_GET] = "SELECT IS_USED_LOCK(?) <=> CONNECTION_ID(), (SELECT last_slot FROM `%s` WHERE name = ?)",
    /* Written only while this session holds the lock, checked in the same
     * statement. */
    [OP_SESSION_RECORD_PUT] = "INSERT INTO `%s` (name, lock_name, fence, last_slot)"
                              " SELECT ?, ?, 0, ? FROM DUAL WHERE IS_USED_LOCK(?) <=> CONNECTION_ID()"
                              " ON DUPLICATE KEY UPDATE last_slot = VALUES(last_slot)",
    [OP_SESSION_LIST] = "SELECT name, lock_name, IS_USED_LOCK(lock_name), fence FROM `%s`"
                        " WHERE IS_USED_LOCK(lock_name) IS NOT NULL AND LEFT(name, ?) = ?",
    [OP_SESSION_LOCK_ID] = "SELECT IS_USED_LOCK(?)",
    /* MariaDB's metadata_lock_info plugin: every user lock, by connection. */
    [OP_SESSION_MLI] = "SELECT TABLE_SCHEMA, THREAD_ID FROM information_schema.METADATA_LOCK_INFO"
                       " WHERE LOCK_TYPE = 'User lock'",
    /* ... with the name and since of the locks that wrote a row into the
     * holders' table (at their first renewal), while the same connection
     * holds them. */
    [OP_SESSION_MLI_NAMES] = "SELECT m.TABLE_SCHEMA, m.THREAD_ID, h.name, h.since, h.host, h.pid"
                             " FROM information_schema.METADATA_LOCK_INFO m LEFT JOIN " MYSQL_HOLDERS_TABLE " h"
                             " ON h.lock_name = CONVERT(m.TABLE_SCHEMA USING binary) AND h.conn = m.THREAD_ID"
                             " WHERE m.LOCK_TYPE = 'User lock'",
    [OP_HOLDERS_PUT] = "INSERT INTO " MYSQL_HOLDERS_TABLE " (lock_name, name, conn, since, host, pid)"
                       " VALUES (?, ?, CONNECTION_ID(), " NOW_MS " - ?, ?, ?)"
                       " ON DUPLICATE KEY UPDATE name = VALUES(name), conn = VALUES(conn), since = VALUES(since),"
                       " host = VALUES(host), pid = VALUES(pid)",
    [OP_HOLDERS_DROP] = "DELETE FROM " MYSQL_HOLDERS_TABLE " WHERE lock_name = ? AND conn = CONNECTION_ID()",
    [OP_HOLDERS_LIST] = "SELECT name, lock_name, conn, since, host, pid FROM " MYSQL_HOLDERS_TABLE
                        " WHERE IS_USED_LOCK(lock_name) <=> conn AND LEFT(name, ?) = ?",
    [OP_HOLDERS_GET] = "SELECT host, pid, since FROM " MYSQL_HOLDERS_TABLE " WHERE lock_name = ? AND conn = ?",
    [OP_STORE_TIME] = "SELECT " NOW_MS,
    /* Session mode: a lease-mode holder of the name in the default table
     * (not `%s`: session mode's own table is the fence table). */
    [OP_MODES_LEASE_ROW] = "SELECT holder_host, holder_pid, expires_at - " NOW_MS " FROM `dlock_leases`"
                           " WHERE name = ? AND owner IS NOT NULL AND expires_at > " NOW_MS,
};

/* The tables, created on first use when the role may (docs/mysql.md). */
static const char lease_ddl[] = "CREATE TABLE IF NOT EXISTS `%s` ("
                                " name VARBINARY(255) NOT NULL PRIMARY KEY,"
                                " owner BINARY(16) NULL,"
                                " fence BIGINT UNSIGNED NOT NULL,"
                                " expires_at BIGINT NOT NULL,"
                                " holder_host VARBINARY(255) NULL,"
                                " holder_pid BIGINT NULL,"
                                " taken_at BIGINT NOT NULL,"
                                " last_slot BIGINT NOT NULL DEFAULT 0"
                                ") ENGINE=InnoDB";
static const char fences_ddl[] = "CREATE TABLE IF NOT EXISTS `%s` ("
                                 " name VARBINARY(255) NOT NULL PRIMARY KEY,"
                                 " lock_name VARCHAR(64) CHARACTER SET ascii NOT NULL,"
                                 " fence BIGINT UNSIGNED NOT NULL,"
                                 " last_slot BIGINT NOT NULL DEFAULT 0"
                                 ") ENGINE=InnoDB";

/* An unlogged list of names: a MEMORY table loses its rows when the server
 * restarts, and the locks go with the sessions then anyway. */
static const char holders_ddl[] = "CREATE TABLE IF NOT EXISTS " MYSQL_HOLDERS_TABLE " ("
                                  " lock_name VARBINARY(64) NOT NULL PRIMARY KEY,"
                                  " name VARBINARY(255) NOT NULL,"
                                  " conn BIGINT UNSIGNED NOT NULL,"
                                  " since BIGINT NOT NULL,"
                                  " host VARBINARY(255) NOT NULL,"
                                  " pid BIGINT NOT NULL"
                                  ") ENGINE=MEMORY";

/* ------------------------------------------------------------------------ */
/* Running one statement                                                    */
/* ------------------------------------------------------------------------ */

/* The statement text with the table name in place of every %s (the name was
 * checked by the URL parser: letters, digits and _ only). */
static void with_table(char *out, size_t size, const char *template, const char *table)
{
    size_t n = 0, tlen = strlen(table);
    for (const char *p = template; *p && n + 1 < size; p++) {
        if (p[0] == '%' && p[1] == 's') {
            size_t k = tlen < size - 1 - n ? tlen : size - 1 - n;
            memcpy(out + n, table, k);
            n += k;
            p++;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

void dlock__mysql_ops_close(struct mysqlbe_conn *c)
{
    for (int i = 0; i < MYSQLBE_OPS_MAX; i++) {
        if (c->stmt_ops[i])
            mysql_stmt_close(c->stmt_ops[i]);
        c->stmt_ops[i] = NULL;
    }
}

/* "Rows matched: 1  Changed: 0  Warnings: 0" (an UPDATE's info): 1; -1
 * when the text is not there. */
static long rows_matched(const char *info)
{
    const char *p = info ? strstr(info, "matched:") : NULL;
    if (!p)
        return -1;
    char *end;
    long n = strtol(p + 8, &end, 10);
    return end == p + 8 ? -1 : n;
}

/* Prepare (once) and run op with params; fetch every row into results,
 * calling row(arg) for each.  0 or -1 with *error filled. */
static int exec_watched(struct mysqlbe_conn *c, enum mysqlbe_op op, MYSQL_BIND *params, MYSQL_BIND *results,
                        int (*row)(void *), void *arg, struct mysqlbe_result *out, struct statement_error *error)
{
    if (!c->stmt_ops[op]) {
        char sql[2048];
        with_table(sql, sizeof sql, op_sql[op], c->table);
        if (dlock__mysql_prepare(c, &c->stmt_ops[op], sql, error) != 0)
            return -1;
    }
    MYSQL_STMT *stmt = c->stmt_ops[op];
    if ((params && mysql_stmt_bind_param(stmt, params) != 0) || mysql_stmt_execute(stmt) != 0) {
        dlock__mysql_error_from(error, stmt);
        mysql_stmt_free_result(stmt);
        return -1;
    }
    out->affected = mysql_stmt_affected_rows(stmt);
    out->insert_id = mysql_stmt_insert_id(stmt);
    out->matched = rows_matched(mysql_info(c->db));
    out->rows = 0;
    if (results) {
        if (mysql_stmt_bind_result(stmt, results) != 0) {
            dlock__mysql_error_from(error, stmt);
            mysql_stmt_free_result(stmt);
            return -1;
        }
        int fetch;
        int stop = 0;
        while ((fetch = mysql_stmt_fetch(stmt)) == 0 || fetch == MYSQL_DATA_TRUNCATED) {
            out->rows++;
            if (!stop && row && row(arg) != 0)
                stop = 1; /* read on: the result must be drained */
        }
        if (fetch == 1) {
            dlock__mysql_error_from(error, stmt);
            mysql_stmt_free_result(stmt);
            return -1;
        }
        if (stop)
            out->stopped = 1;
    }
    mysql_stmt_free_result(stmt);
    return 0;
}

/* Create the table this connection uses (IF NOT EXISTS).  DLOCK_OK, or
 * DLOCK_EBACKEND pointing to the DDL (the role may not create tables), or
 * a lost connection. */
static int create_table(struct mysqlbe_conn *c, int lost_status)
{
    char sql[1024];
    with_table(sql, sizeof sql, c->lease ? lease_ddl : fences_ddl, c->table);
    dlock__mysql_watch(c, c->db, c->deadline_ms);
    int failed = mysql_query(c->db, sql) != 0;
    if (dlock__mysql_unwatch(c))
        return dlock__mysql_session_error(c, CR_SERVER_LOST, NO_ANSWER_TEXT, "creating the table", lost_status);
    if (failed) {
        unsigned int err = mysql_errno(c->db);
        if (dlock__mysql_connection_lost(err))
            return dlock__mysql_session_error(c, err, mysql_error(c->db), "creating the table", lost_status);
        return dlock__error(DLOCK_EBACKEND,
                            "the table `%s` does not exist and could not be created: create it as docs/mysql.md "
                            "shows (%s mode), or grant CREATE on the database (%s)",
                            c->table, c->lease ? "lease" : "session", mysql_error(c->db));
    }
    c->table_ready = 1;
    return DLOCK_OK;
}

/* A statement that reads what any session may read (lists, a holder, the
 * clock): after a lost connection it may run again on a new one, in either
 * mode.  The statements of a lock's own session (its fence, its record, its
 * name row, the lease-row look inside an acquire) may not. */
static int reads_anywhere(enum mysqlbe_op op)
{
    switch (op) {
    case OP_SESSION_LIST:
    case OP_SESSION_LOCK_ID:
    case OP_SESSION_MLI:
    case OP_SESSION_MLI_NAMES:
    case OP_HOLDERS_LIST:
    case OP_HOLDERS_GET:
    case OP_STORE_TIME:
        return 1;
    default:
        return 0;
    }
}

int dlock__mysql_exec(struct mysqlbe_conn *c, enum mysqlbe_op op, MYSQL_BIND *params, MYSQL_BIND *results,
                 int (*row)(void *), void *arg, struct mysqlbe_result *out, const char *doing, int lost_status)
{
    memset(out, 0, sizeof *out);
    c->last_errno = 0;
    int created = c->no_create;
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        int status = dlock__mysql_ensure_session(c, &fresh);
        if (status != DLOCK_OK)
            return status;
        struct statement_error error = {0, ""};
        dlock__mysql_watch(c, c->db, c->deadline_ms);
        int failed = exec_watched(c, op, params, results, row, arg, out, &error);
        int cut = dlock__mysql_unwatch(c);
        if (!failed && !cut)
            return DLOCK_OK;
        if (cut) {
            error.code = CR_SERVER_LOST;
            dlock__copy_text(error.text, sizeof error.text, NO_ANSWER_TEXT);
        }
        c->last_errno = error.code;
        if (error.code == ER_NO_SUCH_TABLE && !created) {
            created = 1;
            status = create_table(c, lost_status);
            if (status != DLOCK_OK)
                return status;
            attempt--; /* not a failure of the connection */
            continue;
        }
        if (dlock__mysql_connection_lost(error.code)) {
            dlock__mysql_session_error(c, error.code, error.text, doing, lost_status);
            /* Lease mode keeps nothing in the session, and a read needs
             * nothing from it: one more try on a new connection (a KILL, an
             * idle timeout, a restart). */
            if ((c->lease || reads_anywhere(op)) && dlock__session_may_retry(attempt, fresh, cut))
                continue;
            return dlock__error(lost_status, "connection lost while %s: %s", doing, error.text);
        }
        return dlock__error(DLOCK_EBACKEND, "%s failed: %s", doing, error.text);
    }
}

/* ------------------------------------------------------------------------ */
/* Session mode                                                             */
/* ------------------------------------------------------------------------ */

int dlock__mysql_fence_bump(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name)
{
    unsigned long name_len = (unsigned long)strlen(name), lock_len = (unsigned long)strlen(l->server_name);
    MYSQL_BIND p[2];
    bind_bytes(&p[0], name, &name_len);
    bind_str(&p[1], l->server_name, &lock_len);
    struct mysqlbe_result r;
    int status = dlock__mysql_exec(c, OP_FENCE_BUMP, p, NULL, NULL, NULL, &r, "bumping the fence", DLOCK_ECONN);
    if (status != DLOCK_OK)
        return status;
    if (r.insert_id == 0)
        return dlock__error(DLOCK_EBACKEND, "the server gave no fence for '%s'", name);
    l->base.fence = r.insert_id;
    return DLOCK_OK;
}

int dlock__mysql_fenced_get_lock(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, double timeout_s,
                            long long *granted, struct statement_error *error)
{
    unsigned long name_len = (unsigned long)strlen(name), lock_len = (unsigned long)strlen(l->server_name);
    double timeout = timeout_s;
    MYSQL_BIND p[4];
    bind_bytes(&p[0], name, &name_len);
    bind_str(&p[1], l->server_name, &lock_len);
    bind_str(&p[2], l->server_name, &lock_len);
    memset(&p[3], 0, sizeof p[3]);
    p[3].buffer_type = MYSQL_TYPE_DOUBLE;
    p[3].buffer = &timeout;
    *granted = 0;
    for (int created = 0;; created = 1) {
        struct mysqlbe_result r = {0, 0, 0, 0, -1};
        error->code = 0;
        error->text[0] = '\0';
        dlock__mysql_watch(c, c->db, c->deadline_ms);
        int failed = exec_watched(c, OP_FENCE_TAKE, p, NULL, NULL, NULL, &r, error);
        if (dlock__mysql_unwatch(c)) {
            error->code = CR_SERVER_LOST;
            dlock__copy_text(error->text, sizeof error->text, NO_ANSWER_TEXT);
            return -1;
        }
        /* A missing table fails the prepare, before GET_LOCK ran. */
        if (failed && error->code == ER_NO_SUCH_TABLE && !created) {
            if (create_table(c, DLOCK_ECONN) == DLOCK_OK)
                continue;
            error->code = c->db ? ER_NO_SUCH_TABLE : CR_SERVER_LOST;
            dlock__copy_text(error->text, sizeof error->text, dlock_last_error());
            return -1;
        }
        if (failed)
            return -1;
        if (r.affected >= 1) {
            if (r.insert_id == 0) {
                error->code = CR_UNKNOWN_ERROR;
                dlock__copy_text(error->text, sizeof error->text, "the server gave no fence");
                return -1;
            }
            *granted = 1;
            l->base.fence = r.insert_id;
        }
        return 0;
    }
}

int dlock__mysql_session_record(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, int put, int64_t *slot,
                           struct dlock_call *call)
{
    dlock__mysql_lease_call(c, call->deadline_ms);
    unsigned long name_len = (unsigned long)strlen(name), lock_len = (unsigned long)strlen(l->server_name);
    long long value = put ? *slot : 0, ours = 0;
    mysqlbe_flag nulls[2] = {0};
    MYSQL_BIND p[4], out[2];
    struct mysqlbe_result r;
    int status;
    if (put) {
        bind_bytes(&p[0], name, &name_len);
        bind_str(&p[1], l->server_name, &lock_len);
        bind_i64(&p[2], &value);
        bind_str(&p[3], l->server_name, &lock_len);
        status = dlock__mysql_exec(c, OP_SESSION_RECORD_PUT, p, NULL, NULL, NULL, &r, "writing the run record", DLOCK_ELOST);
        if (status != DLOCK_OK || r.affected != 0)
            return status;
        /* 0: not ours, or the same slot was there already. */
    }
    bind_str(&p[0], l->server_name, &lock_len);
    bind_bytes(&p[1], name, &name_len);
    bind_out_i64(&out[0], &ours, &nulls[0]);
    bind_out_i64(&out[1], &value, &nulls[1]);
    status = dlock__mysql_exec(c, OP_SESSION_RECORD_GET, p, out, NULL, NULL, &r, "reading the run record", DLOCK_ELOST);
    if (status != DLOCK_OK)
        return status;
    if (r.rows != 1 || nulls[0] || ours != 1)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer held by this session", name);
    if (!put)
        *slot = nulls[1] ? 0 : value;
    return DLOCK_OK;
}

int dlock__mysql_exec_i64(struct mysqlbe_conn *c, enum mysqlbe_op op, MYSQL_BIND *params, const char *what,
                          long long *value, int *found)
{
    mysqlbe_flag is_null = 0;
    MYSQL_BIND out;
    *value = 0;
    *found = 0;
    bind_out_i64(&out, value, &is_null);
    struct mysqlbe_result r;
    int status = dlock__mysql_exec(c, op, params, &out, NULL, NULL, &r, what, DLOCK_ECONN);
    if (status != DLOCK_OK)
        return status;
    *found = r.rows == 1 && !is_null;
    if (!*found)
        *value = 0;
    return DLOCK_OK;
}

int dlock__mysql_store_time(struct mysqlbe_conn *c, int64_t *unix_ms, struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    long long now = 0;
    int found = 0;
    int status = dlock__mysql_exec_i64(c, OP_STORE_TIME, NULL, "reading the server's clock", &now, &found);
    if (status != DLOCK_OK)
        return status;
    if (!found)
        return dlock__error(DLOCK_EBACKEND, "the server's clock gave no answer");
    *unix_ms = now;
    return DLOCK_OK;
}

static int session_row(void *arg)
{
    struct list_rows *rows = arg;
    terminate(rows->name, sizeof rows->name, rows->name_len, rows->nulls[0]);
    terminate(rows->key, sizeof rows->key, rows->key_len, rows->nulls[1]);
    char holder[64];
    snprintf(holder, sizeof holder, "mysql connection %lld", rows->id);
    struct dlock_list_entry e = {rows->name, rows->key, holder, NULL, 0, -1, -1, (uint64_t)rows->fence};
    rows->status = dlock__list_add(rows->list, &e);
    return rows->status != DLOCK_OK;
}

/* The holder of a listed row: its host and pid where the holders' table
 * has them (columns 4 and 5), and its connection. */
static void listed_holder(struct list_rows *rows, char *holder, size_t size, struct dlock_list_entry *e)
{
    terminate(rows->host, sizeof rows->host, rows->host_len, rows->nulls[4]);
    if (!rows->nulls[4] && !rows->nulls[5]) {
        snprintf(holder, size, "host=%s pid=%lld connection=%lld", rows->host, rows->pid, rows->id);
        e->host = rows->host;
        e->pid = rows->pid;
    } else {
        snprintf(holder, size, "mysql connection %lld", rows->id);
    }
    e->holder = holder;
}

/* One row of METADATA_LOCK_INFO: a user lock and its connection, and (with
 * OP_SESSION_MLI_NAMES) the name and since its holder wrote. */
static int mli_row(void *arg)
{
    struct list_rows *rows = arg;
    terminate(rows->key, sizeof rows->key, rows->key_len, rows->nulls[0]);
    terminate(rows->listed_name, sizeof rows->listed_name, rows->listed_name_len, rows->nulls[2]);
    /* A verbatim name is the dlock name; a digest keeps none, unless the
     * holder listed it.  The prefix can only be checked on names: digests
     * without one show when it is empty. */
    int digest = strncmp(rows->key, DLOCK_MYSQL_DIGEST_PREFIX, strlen(DLOCK_MYSQL_DIGEST_PREFIX)) == 0;
    const char *name = !rows->nulls[2] ? rows->listed_name : digest ? NULL : rows->key;
    size_t n = strlen(rows->name); /* the prefix, kept there */
    if (name ? strncmp(name, rows->name, n) != 0 : n > 0)
        return 0;
    struct dlock_list_entry e = {name, rows->key, NULL, NULL, 0, rows->nulls[3] ? -1 : rows->since, -1, 0};
    char holder[320];
    listed_holder(rows, holder, sizeof holder, &e);
    rows->status = dlock__list_add(rows->list, &e);
    return rows->status != DLOCK_OK;
}

/* One row of the holders' table whose connection still holds the lock
 * (the list without the plugin): its since on the fence table's entry, or
 * an entry of its own. */
static int holders_row(void *arg)
{
    struct list_rows *rows = arg;
    terminate(rows->name, sizeof rows->name, rows->name_len, rows->nulls[0]);
    terminate(rows->key, sizeof rows->key, rows->key_len, rows->nulls[1]);
    if (dlock__list_set_since(rows->list, rows->key, rows->since))
        return 0;
    struct dlock_list_entry e = {rows->name, rows->key, NULL, NULL, 0, rows->since, -1, 0};
    char holder[320];
    listed_holder(rows, holder, sizeof holder, &e);
    rows->status = dlock__list_add(rows->list, &e);
    return rows->status != DLOCK_OK;
}

/* The holders' table is missing, or cannot be (no database named). */
static int no_holders_table(const struct mysqlbe_conn *c)
{
    return c->last_errno == ER_NO_SUCH_TABLE || c->last_errno == ER_NO_DB_ERROR;
}

int dlock__mysql_list_register(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name)
{
    if (l->listed || c->holders_off)
        return DLOCK_OK;
    l->listed = -1;
    unsigned long lock_len = (unsigned long)strlen(l->server_name), name_len = (unsigned long)strlen(name);
    int64_t elapsed = dlock__now_ms() - l->taken_ms;
    long long ago = elapsed > 0 ? elapsed : 0;
    const char *host = dlock__hostname();
    unsigned long host_len = (unsigned long)strlen(host);
    long long pid = (long long)getpid();
    MYSQL_BIND p[5];
    bind_str(&p[0], l->server_name, &lock_len);
    bind_bytes(&p[1], name, &name_len);
    bind_i64(&p[2], &ago);
    bind_bytes(&p[3], host, &host_len);
    bind_i64(&p[4], &pid);
    for (int attempt = 0;; attempt++) {
        struct mysqlbe_result r;
        c->no_create = 1;
        int status = dlock__mysql_exec(c, OP_HOLDERS_PUT, p, NULL, NULL, NULL, &r, "listing the lock's name", DLOCK_ELOST);
        c->no_create = 0;
        if (status == DLOCK_OK) {
            l->listed = 1;
            return DLOCK_OK;
        }
        if (!c->db)
            return status; /* the session broke: the lock went with it */
        /* The name is a courtesy: never the lock's failure. */
        dlock__clear_error();
        if (c->last_errno != ER_NO_SUCH_TABLE || attempt) {
            c->holders_off = 1;
            return DLOCK_OK;
        }
        dlock__mysql_watch(c, c->db, c->deadline_ms);
        int failed = mysql_query(c->db, holders_ddl) != 0;
        if (dlock__mysql_unwatch(c))
            return dlock__mysql_session_error(c, CR_SERVER_LOST, NO_ANSWER_TEXT, "listing the lock's name", DLOCK_ELOST);
        if (failed) {
            unsigned int err = mysql_errno(c->db);
            if (dlock__mysql_connection_lost(err))
                return dlock__mysql_session_error(c, err, mysql_error(c->db), "listing the lock's name", DLOCK_ELOST);
            c->holders_off = 1;
            return DLOCK_OK;
        }
    }
}

void dlock__mysql_listed_holder(struct mysqlbe_conn *c, const char *server_name, long long conn, char *buf,
                                size_t buflen)
{
    unsigned long lock_len = (unsigned long)strlen(server_name);
    MYSQL_BIND p[2], out[3];
    bind_str(&p[0], server_name, &lock_len);
    bind_i64(&p[1], &conn);
    char host[256];
    unsigned long host_len = 0;
    long long pid = 0, since = 0;
    mysqlbe_flag nulls[3] = {0, 0, 0};
    bind_out_text(&out[0], host, sizeof host, &host_len, &nulls[0]);
    bind_out_i64(&out[1], &pid, &nulls[1]);
    bind_out_i64(&out[2], &since, &nulls[2]);
    struct mysqlbe_result r;
    c->no_create = 1;
    int status = dlock__mysql_exec(c, OP_HOLDERS_GET, p, out, NULL, NULL, &r, "looking for the lock's name", DLOCK_ECONN);
    c->no_create = 0;
    if (status != DLOCK_OK || r.rows != 1 || nulls[0] || nulls[1] || nulls[2]) {
        dlock__clear_error(); /* no table, no row: the text stays as it is */
        return;
    }
    terminate(host, sizeof host, host_len, nulls[0]);
    char when[32], text[1024];
    dlock__utc_text(when, sizeof when, since);
    snprintf(text, sizeof text, "host=%s pid=%lld since=%s %s", host, pid, when, buf);
    dlock__copy_text(buf, buflen, text);
}

void dlock__mysql_list_unregister(struct mysqlbe_conn *c, struct mysqlbe_lock *l)
{
    if (l->listed != 1 || !c->db)
        return;
    unsigned long lock_len = (unsigned long)strlen(l->server_name);
    MYSQL_BIND p[1];
    bind_str(&p[0], l->server_name, &lock_len);
    struct mysqlbe_result r;
    c->no_create = 1;
    (void)dlock__mysql_exec(c, OP_HOLDERS_DROP, p, NULL, NULL, NULL, &r, "dropping the lock's name", DLOCK_ECONN);
    c->no_create = 0;
    dlock__clear_error();
}

/* Session mode.  The server keeps a list of user locks only with MariaDB's
 * metadata_lock_info plugin (information_schema.METADATA_LOCK_INFO); without
 * it, the names known from the fence table (locks taken with fencing=on, or
 * that wrote a run record) are checked with IS_USED_LOCK; without either,
 * DLOCK_ENOTSUP saying what to enable (docs/mysql.md). */
int dlock__mysql_session_list(struct mysqlbe_conn *c, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    struct list_rows *rows = calloc(1, sizeof *rows);
    if (!rows)
        return dlock__oom();
    rows->list = list;
    dlock__copy_text(rows->name, sizeof rows->name, prefix);
    MYSQL_BIND out[6];
    bind_out_text(&out[0], rows->key, sizeof rows->key, &rows->key_len, &rows->nulls[0]);
    bind_out_i64(&out[1], &rows->id, &rows->nulls[1]);
    bind_out_text(&out[2], rows->listed_name, sizeof rows->listed_name, &rows->listed_name_len, &rows->nulls[2]);
    bind_out_i64(&out[3], &rows->since, &rows->nulls[3]);
    bind_out_text(&out[4], rows->host, sizeof rows->host, &rows->host_len, &rows->nulls[4]);
    bind_out_i64(&out[5], &rows->pid, &rows->nulls[5]);
    struct mysqlbe_result r;
    c->no_create = 1;
    int status =
        dlock__mysql_exec(c, OP_SESSION_MLI_NAMES, NULL, out, mli_row, rows, &r, "listing the locks", DLOCK_ECONN);
    c->no_create = 0;
    if (status != DLOCK_OK && no_holders_table(c)) {
        dlock__clear_error(); /* no names listed yet: the plugin alone */
        rows->nulls[2] = rows->nulls[3] = rows->nulls[4] = rows->nulls[5] = 1;
        status = dlock__mysql_exec(c, OP_SESSION_MLI, NULL, out, mli_row, rows, &r, "listing the locks", DLOCK_ECONN);
    }
    if (status == DLOCK_OK || c->last_errno == 0 || dlock__mysql_connection_lost(c->last_errno)) {
        if (status == DLOCK_OK && rows->status != DLOCK_OK)
            status = rows->status;
        free(rows);
        return status;
    }
    /* No plugin: the fence table. */
    dlock__clear_error();
    unsigned long prefix_len = (unsigned long)strlen(prefix);
    long long prefix_n = (long long)prefix_len;
    MYSQL_BIND p[2];
    bind_i64(&p[0], &prefix_n);
    bind_bytes(&p[1], prefix, &prefix_len);
    bind_out_text(&out[0], rows->name, sizeof rows->name, &rows->name_len, &rows->nulls[0]);
    bind_out_text(&out[1], rows->key, sizeof rows->key, &rows->key_len, &rows->nulls[1]);
    bind_out_i64(&out[2], &rows->id, &rows->nulls[2]);
    bind_out_i64(&out[3], &rows->fence, &rows->nulls[3]);
    rows->nulls[4] = rows->nulls[5] = 1;
    c->no_create = 1;
    status = dlock__mysql_exec(c, OP_SESSION_LIST, p, out, session_row, rows, &r, "listing the locks", DLOCK_ECONN);
    if (status == DLOCK_OK && rows->status != DLOCK_OK)
        status = rows->status;
    /* The locks that listed their names, with or without a fence table. */
    unsigned int fence_errno = c->last_errno;
    if (status == DLOCK_OK || !dlock__mysql_connection_lost(fence_errno)) {
        bind_out_i64(&out[2], &rows->id, &rows->nulls[2]);
        bind_out_i64(&out[3], &rows->since, &rows->nulls[3]);
        int listed =
            dlock__mysql_exec(c, OP_HOLDERS_LIST, p, out, holders_row, rows, &r, "listing the locks", DLOCK_ECONN);
        if (listed == DLOCK_OK && rows->status != DLOCK_OK)
            listed = rows->status;
        if (listed != DLOCK_OK && no_holders_table(c)) {
            c->last_errno = fence_errno; /* the fence table's answer stands */
            if (status == DLOCK_OK)
                dlock__clear_error();
        } else if (listed != DLOCK_OK) {
            status = listed;
        } else if (status != DLOCK_OK && (fence_errno == ER_NO_SUCH_TABLE || fence_errno == ER_NO_DB_ERROR)) {
            dlock__clear_error(); /* no fence table: the holders' table alone */
            status = DLOCK_OK;
        }
    }
    c->no_create = 0;
    free(rows);
    /* No fence table, or no database to have one in (the quick start's URL
     * names none): one message, one status. */
    if (status != DLOCK_OK && (c->last_errno == ER_NO_SUCH_TABLE || c->last_errno == ER_NO_DB_ERROR))
        return dlock__error(DLOCK_ENOTSUP,
                            "session mode cannot list locks on this server: install MariaDB's metadata_lock_info "
                            "plugin (INSTALL SONAME 'metadata_lock_info'), or take locks with fencing=on (their names "
                            "are kept in `%s`%s), or use mode=lease",
                            c->table, c->last_errno == ER_NO_DB_ERROR ? ", in the URL's database: add /DBNAME" : "");
    return status;
}

/* KILL CONNECTION only marks the session: its locks go when its thread has
 * cleaned up, a moment later.  "Broken" is said once the lock is no longer
 * held by the killed connection (1), within the call's deadline; past it,
 * an error says that it is not broken yet. */
static int killed_session_let_go(struct mysqlbe_conn *c, const char *name, MYSQL_BIND *p, long long killed)
{
    for (int64_t pause_ms = 1;; pause_ms = pause_ms * 2 > 50 ? 50 : pause_ms * 2) {
        long long id = 0;
        int found = 0;
        int status = dlock__mysql_exec_i64(c, OP_SESSION_LOCK_ID, p, "confirming the break", &id, &found);
        if (status != DLOCK_OK)
            return status;
        if (!found || id != killed)
            return 1;
        if (dlock__now_ms() + pause_ms >= c->deadline_ms)
            return dlock__error(DLOCK_EBACKEND,
                                "'%s' is not broken yet: its session (connection %lld) was killed but still holds it",
                                name, killed);
        struct timespec pause = {0, (long)pause_ms * 1000000L};
        nanosleep(&pause, NULL);
    }
}

int dlock__mysql_session_break(struct mysqlbe_conn *c, const char *name, struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    dlock__mysql_lock_name(name, server_name, sizeof server_name);
    unsigned long len = (unsigned long)strlen(server_name);
    MYSQL_BIND p[1];
    bind_str(&p[0], server_name, &len);
    long long id = 0;
    int found = 0;
    int status = dlock__mysql_exec_i64(c, OP_SESSION_LOCK_ID, p, "finding the holder", &id, &found);
    if (status != DLOCK_OK)
        return status;
    if (!found)
        return 0;
    if ((unsigned long)id == c->connection_id)
        return dlock__error(DLOCK_EBUSY, "'%s' is held by this client's own session: release it instead", name);
    /* The holder's session ends, and its locks with it. */
    char sql[64];
    snprintf(sql, sizeof sql, "KILL CONNECTION %lld", id);
    dlock__mysql_watch(c, c->db, c->deadline_ms);
    int failed = mysql_query(c->db, sql) != 0;
    if (dlock__mysql_unwatch(c))
        return dlock__mysql_session_error(c, CR_SERVER_LOST, NO_ANSWER_TEXT, "breaking the lock", DLOCK_ECONN);
    if (failed) {
        unsigned int err = mysql_errno(c->db);
        if (err == ER_NO_SUCH_THREAD)
            return 0; /* it ended meanwhile */
        if (err == ER_KILL_DENIED_ERROR)
            return dlock__error(DLOCK_EBACKEND,
                                "breaking '%s' ends the session that holds it (connection %lld), and this user may "
                                "not: it needs the CONNECTION ADMIN (MariaDB: CONNECTION ADMIN or SUPER) privilege",
                                name, id);
        return dlock__mysql_session_error(c, err, mysql_error(c->db), "breaking the lock", DLOCK_ECONN);
    }
    return killed_session_let_go(c, name, p, id);
}

int dlock__mysql_session_lock_holder(struct mysqlbe_conn *c, const char *server_name, long long *id)
{
    unsigned long len = (unsigned long)strlen(server_name);
    MYSQL_BIND p[1];
    bind_str(&p[0], server_name, &len);
    int found = 0;
    int status = dlock__mysql_exec_i64(c, OP_SESSION_LOCK_ID, p, "looking for a session-mode holder", id, &found);
    return status != DLOCK_OK ? status : found;
}
