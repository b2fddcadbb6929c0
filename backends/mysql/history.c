/*
 * MySQL / MariaDB run history and the preflight, in both modes.  The
 * history is a table (dlock_runs in the URL's database, created on first
 * use; the DDL is in docs/mysql.md for users that may not create it).  A
 * run and the trimming of its name's oldest runs are one transaction.  The
 * statements are prepared per call on the backend's session: history is
 * written once a run, so nothing is kept between calls.
 */
#include "config.h"

#include "backend.h"
#include "ops.h"
#include <mysqld_error.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_TABLE "dlock_runs"

static const char history_ddl[] = "CREATE TABLE IF NOT EXISTS " HISTORY_TABLE " ("
                                  " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY," /* the order */
                                  " name VARBINARY(255) NOT NULL," /* the exact bytes of the name */
                                  " start_ms BIGINT NOT NULL,"     /* Unix ms, the server's clock */
                                  " end_ms BIGINT NOT NULL,"
                                  " host VARCHAR(255),"
                                  " pid BIGINT,"
                                  " outcome VARCHAR(15) NOT NULL," /* ran, busy, done, lost, error */
                                  " exit_status INT,"              /* NULL: no job ran */
                                  " fence BIGINT UNSIGNED,"        /* NULL: none */
                                  " KEY " HISTORY_TABLE "_by_name (name, id)"
                                  ") ENGINE=InnoDB";

static const char insert_sql[] = "INSERT INTO " HISTORY_TABLE
                                 " (name, start_ms, end_ms, host, pid, outcome, exit_status, fence)"
                                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
/* Every run of the name older than the newest `keep` (the derived table
 * lets MySQL read the table it deletes from). */
static const char trim_sql[] = "DELETE FROM " HISTORY_TABLE " WHERE name = ? AND id <= (SELECT id FROM (SELECT id FROM "
                               HISTORY_TABLE " WHERE name = ? ORDER BY id DESC LIMIT 1 OFFSET ?) AS oldest_kept)";
static const char read_sql[] = "SELECT start_ms, end_ms, host, pid, outcome, exit_status, fence FROM " HISTORY_TABLE
                               " WHERE name = ? ORDER BY id DESC LIMIT ?";

/* A text parameter; its length is measured here. */
static void bind_text(MYSQL_BIND *b, const char *s, unsigned long *len)
{
    *len = s ? (unsigned long)strlen(s) : 0;
    bind_str(b, s, len);
}

/* What one statement did: 0 done, else the client library's errno (text
 * in why). */
struct step {
    unsigned int code;
    char why[256];
};

static void step_error(struct step *st, unsigned int code, const char *text)
{
    st->code = code ? code : CR_UNKNOWN_ERROR;
    dlock__copy_text(st->why, sizeof st->why, text);
}

/* Prepare, bind and run `sql` on the session; rows (when results) go to
 * row(arg).  Bounded by c->deadline_ms. */
static void run_stmt(struct mysqlbe_conn *c, const char *sql, MYSQL_BIND *params, MYSQL_BIND *results,
                     int (*row)(void *), void *arg, struct step *st)
{
    MYSQL_STMT *stmt = mysql_stmt_init(c->db);
    if (!stmt) {
        step_error(st, CR_OUT_OF_MEMORY, "out of memory");
        return;
    }
    if (mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) != 0 ||
        (params && mysql_stmt_bind_param(stmt, params) != 0) || mysql_stmt_execute(stmt) != 0 ||
        (results && mysql_stmt_bind_result(stmt, results) != 0)) {
        step_error(st, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
        mysql_stmt_close(stmt);
        return;
    }
    int fetch;
    while (results && ((fetch = mysql_stmt_fetch(stmt)) == 0 || fetch == MYSQL_DATA_TRUNCATED))
        if (row(arg) != 0)
            break;
    if (results && fetch == 1)
        step_error(st, mysql_stmt_errno(stmt), mysql_stmt_error(stmt));
    mysql_stmt_free_result(stmt);
    mysql_stmt_close(stmt);
}

/* A plain statement (no parameters, no rows). */
static void run_query(struct mysqlbe_conn *c, const char *sql, struct step *st)
{
    if (mysql_query(c->db, sql) != 0)
        step_error(st, mysql_errno(c->db), mysql_error(c->db));
}

/* The error of a failed history call; a lost session is dropped. */
static int history_error(struct mysqlbe_conn *c, const struct step *st, int cut, const char *doing)
{
    if (cut || dlock__mysql_connection_lost(st->code))
        return dlock__mysql_session_error(c, cut ? CR_SERVER_LOST : st->code, cut ? NO_ANSWER_TEXT : st->why, doing,
                                          DLOCK_ECONN);
    if (st->code == ER_TABLEACCESS_DENIED_ERROR || st->code == ER_DBACCESS_DENIED_ERROR)
        return dlock__error(DLOCK_EBACKEND, "%s: this user may not use table `" HISTORY_TABLE "` (%s)", doing, st->why);
    if (st->code == ER_NO_DB_ERROR)
        return dlock__error(DLOCK_EBACKEND,
                            "%s: the URL names no database to keep table `" HISTORY_TABLE "` in (add /DBNAME)", doing);
    return dlock__error(DLOCK_EBACKEND, "%s: %s", doing, st->why);
}

struct add_args {
    const char *name;
    const struct dlock_history_entry *run;
    unsigned keep;
};

static void add_statements(struct mysqlbe_conn *c, const struct add_args *a, struct step *st)
{
    const struct dlock_history_entry *run = a->run;
    unsigned long name_len, name_len2, host_len, outcome_len;
    long long start = run->start_ms, end = run->end_ms, pid = run->pid, status = run->exit_status,
              fence = (long long)run->fence, offset = a->keep;
    mysqlbe_flag no = 0, pid_null = run->pid <= 0, status_null = run->exit_status < 0, fence_null = run->fence == 0;
    MYSQL_BIND ins[8];
    bind_text(&ins[0], a->name, &name_len);
    bind_out_i64(&ins[1], &start, &no);
    bind_out_i64(&ins[2], &end, &no);
    bind_text(&ins[3], run->host, &host_len);
    bind_out_i64(&ins[4], &pid, &pid_null);
    bind_text(&ins[5], run->outcome, &outcome_len);
    bind_out_i64(&ins[6], &status, &status_null);
    bind_out_i64(&ins[7], &fence, &fence_null);
    ins[7].is_unsigned = 1;
    MYSQL_BIND trim[3];
    bind_text(&trim[0], a->name, &name_len);
    bind_text(&trim[1], a->name, &name_len2);
    bind_out_i64(&trim[2], &offset, &no);
    run_query(c, "START TRANSACTION", st);
    if (!st->code)
        run_stmt(c, insert_sql, ins, NULL, NULL, NULL, st);
    if (!st->code)
        run_stmt(c, trim_sql, trim, NULL, NULL, NULL, st);
    if (!st->code)
        run_query(c, "COMMIT", st);
    if (st->code && !dlock__mysql_connection_lost(st->code)) {
        struct step ignored = {0, ""};
        run_query(c, "ROLLBACK", &ignored);
    }
}

int dlock__mysql_history_add(struct mysqlbe_conn *c, const char *name, const struct dlock_history_entry *run,
                             unsigned keep, struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    const struct add_args args = {name, run, keep};
    /* Runs of one name that end together write the same rows: InnoDB may
     * pick one of them as a deadlock victim (1213) or time it out (1205),
     * and its transaction is rolled back whole, so it is tried again. */
    for (int created = 0, retries = 0;;) {
        int status = dlock__mysql_ensure_session(c, NULL);
        if (status != DLOCK_OK)
            return status;
        struct step st = {0, ""};
        dlock__mysql_watch(c, c->db, c->deadline_ms);
        add_statements(c, &args, &st);
        if (st.code == ER_NO_SUCH_TABLE && !created) {
            created = 1;
            st = (struct step){0, ""};
            run_query(c, history_ddl, &st);
            int cut = dlock__mysql_unwatch(c);
            if (st.code || cut) {
                if (cut || dlock__mysql_connection_lost(st.code))
                    return history_error(c, &st, cut, "creating the run history table");
                return dlock__error(DLOCK_EBACKEND,
                                    "cannot record the run: table `" HISTORY_TABLE "` does not exist and this user may"
                                    " not create it (%s): have it created with the DDL in docs/mysql.md (\"Run"
                                    " history\"), or run dlock with --no-history",
                                    st.why);
            }
            continue;
        }
        int cut = dlock__mysql_unwatch(c);
        if (!cut && (st.code == ER_LOCK_DEADLOCK || st.code == ER_LOCK_WAIT_TIMEOUT) && retries++ < 5 &&
            dlock__now_ms() < c->deadline_ms)
            continue;
        return st.code || cut ? history_error(c, &st, cut, "cannot record the run") : DLOCK_OK;
    }
}

struct read_rows {
    long long start, end, pid, status, fence;
    mysqlbe_flag nulls[7];
    char host[256], outcome[16];
    unsigned long host_len, outcome_len;
    struct dlock_history *out;
    int rc;
};

static int read_row(void *arg)
{
    struct read_rows *r = arg;
    r->host[r->nulls[2] ? 0 : (r->host_len < sizeof r->host ? r->host_len : sizeof r->host - 1)] = '\0';
    r->outcome[r->nulls[4] ? 0 : (r->outcome_len < sizeof r->outcome ? r->outcome_len : sizeof r->outcome - 1)] = '\0';
    struct dlock_history_entry e = {.start_ms = r->start,
                                    .end_ms = r->end,
                                    .host = r->nulls[2] ? NULL : r->host,
                                    .pid = r->nulls[3] ? 0 : r->pid,
                                    .outcome = r->outcome,
                                    .exit_status = r->nulls[5] ? -1 : (int)r->status,
                                    .fence = r->nulls[6] ? 0 : (uint64_t)r->fence};
    r->rc = dlock__history_add(r->out, &e);
    return r->rc != DLOCK_OK;
}

int dlock__mysql_history_read(struct mysqlbe_conn *c, const char *name, size_t max, struct dlock_history *out,
                              struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    int status = dlock__mysql_ensure_session(c, NULL);
    if (status != DLOCK_OK)
        return status;
    struct read_rows r;
    memset(&r, 0, sizeof r);
    r.out = out;
    unsigned long name_len;
    long long limit = (long long)max;
    mysqlbe_flag no = 0;
    MYSQL_BIND params[2], results[7];
    bind_text(&params[0], name, &name_len);
    bind_out_i64(&params[1], &limit, &no);
    bind_out_i64(&results[0], &r.start, &r.nulls[0]);
    bind_out_i64(&results[1], &r.end, &r.nulls[1]);
    bind_out_text(&results[2], r.host, sizeof r.host, &r.host_len, &r.nulls[2]);
    bind_out_i64(&results[3], &r.pid, &r.nulls[3]);
    bind_out_text(&results[4], r.outcome, sizeof r.outcome, &r.outcome_len, &r.nulls[4]);
    bind_out_i64(&results[5], &r.status, &r.nulls[5]);
    bind_out_i64(&results[6], &r.fence, &r.nulls[6]);
    results[6].is_unsigned = 1;
    struct step st = {0, ""};
    dlock__mysql_watch(c, c->db, c->deadline_ms);
    run_stmt(c, read_sql, params, results, read_row, &r, &st);
    int cut = dlock__mysql_unwatch(c);
    if (!cut && st.code == ER_NO_SUCH_TABLE)
        return DLOCK_OK; /* nothing recorded yet */
    if (st.code || cut)
        return history_error(c, &st, cut, "cannot read the run history");
    return r.rc;
}

/* --- the preflight ------------------------------------------------------------------ */

/* The grantee as information_schema writes it: 'user'@'host'. */
#define GRANTEE "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')"

/* Columns: version, database, user, innodb_flush_log_at_trx_commit, the
 * lock table exists, the history table exists, CREATE granted (global or
 * on this database), metadata_lock_info active (MariaDB), dlock_leases
 * exists, the holders' table exists. */
static const char check_sql[] =
    "SELECT VERSION(), DATABASE(), CURRENT_USER(), @@GLOBAL.innodb_flush_log_at_trx_commit,"
    " (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '%s'),"
    " (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '" HISTORY_TABLE
    "'),"
    " (SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = " GRANTEE
    " AND PRIVILEGE_TYPE = 'CREATE') + (SELECT COUNT(*) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = " GRANTEE
    " AND PRIVILEGE_TYPE = 'CREATE' AND DATABASE() LIKE TABLE_SCHEMA),"
    " (SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS ="
    " 'ACTIVE'),"
    " (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'dlock_leases'),"
    " (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '"
    MYSQL_HOLDERS_TABLE "')";

static int table_item(struct dlock_check_list *out, const char *key, const char *table, const char *feature, int exists,
                      int can_create, int have_db, int needed)
{
    if (!have_db)
        return dlock__check_add(out, key, needed ? DLOCK_CHECK_FAIL : DLOCK_CHECK_WARN,
                                "the URL names no database, so table `%s` has nowhere to be: %s will fail (add /DBNAME)",
                                table, feature);
    if (exists)
        return dlock__check_add(out, key, DLOCK_CHECK_OK, "table `%s` exists (%s)", table, feature);
    if (can_create)
        return dlock__check_add(out, key, DLOCK_CHECK_OK, "table `%s` is created on first use (%s)", table, feature);
    return dlock__check_add(out, key, needed ? DLOCK_CHECK_FAIL : DLOCK_CHECK_WARN,
                            "table `%s` does not exist and this user has no CREATE grant: %s will fail (the DDL is in"
                            " docs/mysql.md)",
                            table, feature);
}

/* A count or setting of the check's row: -1 when NULL. */
static long number(const char *text)
{
    return text ? strtol(text, NULL, 10) : -1;
}

static int check_items(struct mysqlbe_conn *c, MYSQL_ROW row, struct dlock_check_list *out)
{
    const char *db = row[1];
    int flush = (int)number(row[3]);
    int lock_table = number(row[4]) > 0, history = number(row[5]) > 0;
    int can_create = number(row[6]) > 0, mli = number(row[7]) > 0;
    int rc = dlock__check_add(out, "server", DLOCK_CHECK_INFO, "%s %s", c->is_mariadb ? "MariaDB" : "MySQL",
                              row[0] ? row[0] : "?");
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "database", DLOCK_CHECK_INFO, "%s, user %s", db ? db : "(none)",
                              row[2] ? row[2] : "?");
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "mode", DLOCK_CHECK_INFO, "%s, table %s, fencing %s",
                              c->lease ? "lease (a row per lock)" : "session (GET_LOCK)", c->table,
                              c->lease || c->fencing ? "on" : "off");
    if (rc == DLOCK_OK)
        rc = table_item(out, "table", c->table,
                        c->lease ? "every lock" : c->fencing ? "fencing and --once-per" : "fencing=on and --once-per",
                        lock_table, can_create, db != NULL, c->lease);
    if (rc == DLOCK_OK)
        rc = table_item(out, "history", HISTORY_TABLE, "dlock run's run history", history, can_create, db != NULL, 0);
    if (rc == DLOCK_OK && !c->lease)
        rc = table_item(out, "names", MYSQL_HOLDERS_TABLE, "names and since of session-mode locks in dlock list",
                        number(row[9]) > 0, can_create, db != NULL, 0);
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "innodb_flush_log_at_trx_commit", flush == 1 ? DLOCK_CHECK_OK : DLOCK_CHECK_WARN,
                              flush == 1 ? "1: what the server acknowledged survives its crash"
                                         : "%d: a server crash can forget the last fences, leases and run records"
                                           " that were acknowledged (set it to 1)",
                              flush);
    if (rc == DLOCK_OK && c->is_mariadb && !c->lease)
        rc = dlock__check_add(out, "metadata_lock_info", mli ? DLOCK_CHECK_OK : DLOCK_CHECK_WARN,
                              mli ? "the plugin is active: dlock list and status see session locks"
                                  : "the plugin is not active: dlock list cannot see session locks (INSTALL SONAME"
                                    " 'metadata_lock_info', or use mode=lease)");
    return rc;
}

/* --- who holds a name in the mode the URL does not name ------------------------------- */

#define NOW_MS "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01', UTC_TIMESTAMP(6)) DIV 1000)"

struct other_holder {
    long long id;
    mysqlbe_flag id_null;
    char text[300];
    unsigned long text_len;
    mysqlbe_flag text_null;
    int found;
};

static int other_row(void *arg)
{
    struct other_holder *h = arg;
    h->found = 1;
    return 1;
}

/* A lease-mode URL asks whether a session holds the name's GET_LOCK; a
 * session-mode URL whether dlock_leases (when it exists in this database:
 * check creates nothing) has a live row.  Held there is a warning: URLs
 * that differ in mode= do not exclude each other. */
static int other_mode_holder(struct mysqlbe_conn *c, const char *name, int lease_table_exists,
                             struct dlock_check_list *out)
{
    const char *mode = c->lease ? "session (GET_LOCK)" : "lease (table dlock_leases)";
    if (!c->lease && !lease_table_exists)
        return dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO,
                                "no lease table dlock_leases: '%s' is not taken in lease mode", name);
    struct other_holder h;
    memset(&h, 0, sizeof h);
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    unsigned long len;
    MYSQL_BIND param, result;
    if (c->lease) {
        if (dlock__mysql_lock_name(name, server_name, sizeof server_name) < 0)
            return dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO, "cannot map '%s'", name);
        bind_text(&param, server_name, &len);
        bind_out_i64(&result, &h.id, &h.id_null);
    } else {
        bind_text(&param, name, &len);
        bind_out_text(&result, h.text, sizeof h.text, &h.text_len, &h.text_null);
    }
    struct step st = {0, ""};
    dlock__mysql_watch(c, c->db, c->deadline_ms);
    run_stmt(c,
             c->lease ? "SELECT IS_USED_LOCK(?)"
                      : "SELECT CONCAT(COALESCE(holder_host, ''), ' pid ', COALESCE(holder_pid, 0)) FROM dlock_leases"
                        " WHERE name = ? AND owner IS NOT NULL AND expires_at > " NOW_MS,
             &param, &result, other_row, &h, &st);
    int cut = dlock__mysql_unwatch(c);
    if (cut || dlock__mysql_connection_lost(st.code))
        return history_error(c, &st, cut, "cannot ask for the holder");
    if (st.code)
        return dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO,
                                "cannot tell who holds '%s' in %s mode: %s", name, mode, st.why);
    int held = h.found && (c->lease ? !h.id_null : !h.text_null);
    if (!held)
        return dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO, "'%s' is free in %s mode", name, mode);
    if (c->lease)
        return dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO,
                                "'%s' is held in %s mode, by mysql connection %lld (the modes exclude each other:"
                                " this client waits)",
                                name, mode, h.id);
    h.text[h.text_len < sizeof h.text ? h.text_len : sizeof h.text - 1] = '\0';
    return dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO,
                            "'%s' is held in %s mode, by host=%s (the modes exclude each other: this client waits)",
                            name, mode, h.text);
}

int dlock__mysql_check(struct mysqlbe_conn *c, const char *name, struct dlock_check_list *out,
                       struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    int status = dlock__mysql_ensure_session(c, NULL);
    if (status != DLOCK_OK)
        return status;
    char sql[2048];
    snprintf(sql, sizeof sql, check_sql, c->table);
    struct step st = {0, ""};
    dlock__mysql_watch(c, c->db, c->deadline_ms);
    MYSQL_RES *res = NULL;
    run_query(c, sql, &st);
    if (!st.code && !(res = mysql_store_result(c->db)))
        step_error(&st, mysql_errno(c->db), mysql_error(c->db));
    int cut = dlock__mysql_unwatch(c);
    if (st.code || cut) {
        if (res)
            mysql_free_result(res);
        return history_error(c, &st, cut, "cannot ask the server");
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    status = row ? check_items(c, row, out) : dlock__error(DLOCK_EBACKEND, "cannot ask the server: no answer");
    int lease_table = row && number(row[8]) > 0;
    mysql_free_result(res);
    if (status == DLOCK_OK && name)
        status = other_mode_holder(c, name, lease_table, out);
    return status;
}
