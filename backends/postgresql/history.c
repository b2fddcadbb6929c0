/*
 * PostgreSQL run history and the preflight, in both modes.  The history is
 * a table (dlock_runs in the session's schema, created on first use; the
 * DDL is in docs/postgresql.md for roles that may not create it).  A run
 * and the trimming of its name's oldest runs are one statement.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define PG_TYPE_TEXT 25
#define HISTORY_TABLE "dlock_runs"

static const char history_ddl[] = "CREATE TABLE IF NOT EXISTS " HISTORY_TABLE " ("
                                  " id bigserial PRIMARY KEY," /* the order of the runs */
                                  " name text NOT NULL,"
                                  " start_ms bigint NOT NULL," /* Unix ms, the server's clock */
                                  " end_ms bigint NOT NULL,"
                                  " host text,"
                                  " pid bigint,"
                                  " outcome text NOT NULL," /* ran, busy, done, lost, error */
                                  " exit_status integer,"   /* NULL: no job ran */
                                  " fence bigint)";         /* NULL: none */
static const char history_index_ddl[] =
    "CREATE INDEX IF NOT EXISTS " HISTORY_TABLE "_by_name ON " HISTORY_TABLE " (name, id)";

/* The insert and the trim in one statement.  The DELETE does not see the
 * row being inserted (one snapshot), so it keeps the newest keep - 1 ($9)
 * of the rows that were there. */
static const char add_sql[] =
    "WITH added AS (INSERT INTO " HISTORY_TABLE " (name, start_ms, end_ms, host, pid, outcome, exit_status, fence)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id)"
    " DELETE FROM " HISTORY_TABLE " WHERE name = $1 AND id <= (SELECT id FROM " HISTORY_TABLE
    " WHERE name = $1 ORDER BY id DESC LIMIT 1 OFFSET $9)";
static const char read_sql[] = "SELECT start_ms, end_ms, host, pid, outcome, exit_status, fence FROM " HISTORY_TABLE
                               " WHERE name = $1 ORDER BY id DESC LIMIT $2";

/* The message of a failed statement, without a password. */
static void why_text(const pg_conn *c, const PGresult *res, char *why, size_t len)
{
    const char *message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    dlock__pg_clean_text(why, len, message ? message : "failed", c->password);
}

static int create_history_table(pg_conn *c)
{
    const char *const ddl[2] = {history_ddl, history_index_ddl};
    for (int i = 0; i < 2; i++) {
        PGresult *res = dlock__pg_exec(c, ddl[i], 0, NULL, NULL, NULL, NULL);
        static const struct pg_what creating = {DLOCK_ECONN, "the connection broke while creating " HISTORY_TABLE,
                                                "cannot create " HISTORY_TABLE, 0};
        int kind;
        int rc = dlock__pg_answer(c, res, &creating, &kind);
        if (kind == OUTCOME_CONNECTION_LOST) {
            PQclear(res);
            return rc;
        }
        dlock__clear_error(); /* said below, or it was a race that another client won */
        if (kind != OUTCOME_OK && !dlock__pg_has_sqlstate(res, "23505") && !dlock__pg_has_sqlstate(res, "42P07")) {
            char why[PG_ERRTEXT_MAX];
            why_text(c, res, why, sizeof why);
            PQclear(res);
            return dlock__error(DLOCK_EBACKEND,
                                "table " HISTORY_TABLE " does not exist and this role cannot create it (%s): have it"
                                " created with the DDL in docs/postgresql.md (\"Run history\"), or run dlock with"
                                " --no-history",
                                why);
        }
        PQclear(res);
    }
    return DLOCK_OK;
}

/* One history statement: a session, the table created when missing. */
static PGresult *history_exec(pg_conn *c, const char *sql, int nparams, const char *const *values, int create,
                              const char *what, int *rc_out)
{
    for (int created = 0;;) {
        int rc = dlock__pg_ensure_session(c, NULL);
        if (rc != DLOCK_OK) {
            *rc_out = rc;
            return NULL;
        }
        PGresult *res = dlock__pg_exec(c, sql, nparams, NULL, values, NULL, NULL);
        const struct pg_what w = {DLOCK_ECONN, what, what, 0};
        int kind;
        *rc_out = dlock__pg_answer(c, res, &w, &kind);
        if (kind == OUTCOME_OK)
            return res;
        if (kind == OUTCOME_CONNECTION_LOST) {
            PQclear(res);
            return NULL;
        }
        /* The server refused it: said here in the words of run history. */
        if (dlock__pg_has_sqlstate(res, "42P01")) { /* undefined_table */
            PQclear(res);
            dlock__clear_error();
            if (!create || created) {
                *rc_out = 1; /* no table: nothing recorded yet */
                return NULL;
            }
            created = 1;
            rc = create_history_table(c);
            if (rc != DLOCK_OK) {
                *rc_out = rc;
                return NULL;
            }
            continue;
        }
        char why[PG_ERRTEXT_MAX];
        why_text(c, res, why, sizeof why);
        *rc_out = dlock__pg_has_sqlstate(res, "42501")
                      ? dlock__error(DLOCK_EBACKEND, "%s: this role may not use table " HISTORY_TABLE " (%s)", what, why)
                      : dlock__error(DLOCK_EBACKEND, "%s: %s", what, why);
        PQclear(res);
        return NULL;
    }
}

int dlock__pg_history_add(pg_conn *c, const char *name, const struct dlock_history_entry *run, unsigned keep)
{
    char start[24], end[24], pid[24], status[16], fence[24], offset[16];
    snprintf(start, sizeof start, "%" PRId64, run->start_ms);
    snprintf(end, sizeof end, "%" PRId64, run->end_ms);
    snprintf(pid, sizeof pid, "%" PRId64, run->pid);
    snprintf(status, sizeof status, "%d", run->exit_status);
    snprintf(fence, sizeof fence, "%" PRIu64, run->fence);
    snprintf(offset, sizeof offset, "%u", keep > 0 ? keep - 1 : 0);
    const char *values[9] = {name,
                             start,
                             end,
                             run->host,
                             run->pid > 0 ? pid : NULL,
                             run->outcome,
                             run->exit_status >= 0 ? status : NULL,
                             run->fence ? fence : NULL,
                             offset};
    int rc;
    PGresult *res = history_exec(c, add_sql, 9, values, 1, "cannot record the run", &rc);
    PQclear(res);
    return rc;
}

int dlock__pg_history_read(pg_conn *c, const char *name, size_t max, struct dlock_history *out)
{
    char limit[24];
    snprintf(limit, sizeof limit, "%zu", max);
    const char *values[2] = {name, limit};
    int rc;
    PGresult *res = history_exec(c, read_sql, 2, values, 0, "cannot read the run history", &rc);
    if (!res)
        return rc > 0 ? DLOCK_OK : rc;
    for (int i = 0; i < PQntuples(res) && rc == DLOCK_OK; i++) {
        struct dlock_history_entry e = {
            .start_ms = strtoll(PQgetvalue(res, i, 0), NULL, 10),
            .end_ms = strtoll(PQgetvalue(res, i, 1), NULL, 10),
            .host = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2),
            .pid = strtoll(PQgetvalue(res, i, 3), NULL, 10),
            .outcome = PQgetvalue(res, i, 4),
            .exit_status = PQgetisnull(res, i, 5) ? -1 : (int)strtol(PQgetvalue(res, i, 5), NULL, 10),
            .fence = strtoull(PQgetvalue(res, i, 6), NULL, 10),
        };
        rc = dlock__history_add(out, &e);
    }
    PQclear(res);
    return rc;
}

/* --- the preflight ------------------------------------------------------------------ */

/* What a table needs: it exists and this role may use it, or it may be
 * created.  $1: the table (quoted identifier or plain name). */
static const char check_sql[] =
    "SELECT pg_catalog.current_setting('server_version'), pg_catalog.current_database(), current_user,"
    " pg_catalog.current_schema(), pg_catalog.current_setting('synchronous_commit'),"
    " pg_catalog.to_regclass($1) IS NOT NULL,"
    " CASE WHEN pg_catalog.to_regclass($1) IS NULL THEN false ELSE"
    "  pg_catalog.has_table_privilege(pg_catalog.to_regclass($1)::oid, 'SELECT, INSERT, UPDATE, DELETE') END,"
    " pg_catalog.to_regclass('" HISTORY_TABLE "') IS NOT NULL,"
    " CASE WHEN pg_catalog.to_regclass('" HISTORY_TABLE "') IS NULL THEN false ELSE"
    "  pg_catalog.has_table_privilege(pg_catalog.to_regclass('" HISTORY_TABLE "')::oid, 'SELECT, INSERT, DELETE')"
    "  END,"
    " COALESCE(pg_catalog.has_schema_privilege(pg_catalog.current_schema(), 'CREATE'), false),"
    " pg_catalog.current_setting('idle_session_timeout'),"
    " pg_catalog.to_regclass('" PG_HOLDERS_TABLE "') IS NOT NULL,"
    " CASE WHEN pg_catalog.to_regclass('" PG_HOLDERS_TABLE "') IS NULL THEN false ELSE"
    "  pg_catalog.has_table_privilege(pg_catalog.to_regclass('" PG_HOLDERS_TABLE "')::oid,"
    " 'SELECT, INSERT, UPDATE, DELETE') END";

static int is_true(const PGresult *res, int col)
{
    return !PQgetisnull(res, 0, col) && PQgetvalue(res, 0, col)[0] == 't';
}

/* One table's item: usable, creatable, or what is missing.  `needed`: the
 * feature cannot work without it (a fail), else a warning. */
static int table_item(struct dlock_check_list *out, const char *key, const char *table, const char *feature, int exists,
                      int usable, int can_create, int needed)
{
    if (exists && usable)
        return dlock__check_add(out, key, DLOCK_CHECK_OK, "table %s exists and this role may use it (%s)", table,
                                feature);
    if (exists)
        return dlock__check_add(out, key, needed ? DLOCK_CHECK_FAIL : DLOCK_CHECK_WARN,
                                "table %s exists but this role may not read and write it: %s will fail (GRANT"
                                " SELECT, INSERT, UPDATE, DELETE)",
                                table, feature);
    if (can_create)
        return dlock__check_add(out, key, DLOCK_CHECK_OK, "table %s is created on first use (%s)", table, feature);
    return dlock__check_add(out, key, needed ? DLOCK_CHECK_FAIL : DLOCK_CHECK_WARN,
                            "table %s does not exist and this role may not create it: %s will fail (the DDL is in"
                            " docs/postgresql.md)",
                            table, feature);
}

/* Session mode's advisory lock on the key ($1), whoever took it. */
static const char advisory_holder_sql[] =
    "SELECT COALESCE(a.application_name, ''), l.pid FROM pg_catalog.pg_locks l"
    " LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted"
    " AND l.classid = (($1::bigint >> 32) & 4294967295)::oid AND l.objid = ($1::bigint & 4294967295)::oid"
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
    " LIMIT 1";
/* Lease mode's row in the default table, when that table exists (it is
 * never created here). */
static const char lease_holder_sql[] =
    "SELECT holder FROM dlock_leases WHERE name = $1 AND owner IS NOT NULL"
    " AND expires_at > pg_catalog.clock_timestamp()";

/* Who holds `name` in the mode the URL does not name: a session lock seen
 * by a lease-mode URL, or a lease row (table dlock_leases) seen by a
 * session-mode URL.  Taking the same name in both modes does not exclude:
 * this is what shows it. */
static int other_mode_holder(pg_conn *c, const char *name, const char *key, struct dlock_check_list *out)
{
    const char *mode = c->lease ? "session" : "lease (table dlock_leases)";
    PGresult *res;
    if (c->lease) {
        const char *values[1] = {key};
        res = dlock__pg_exec(c, advisory_holder_sql, 1, NULL, values, NULL, NULL);
    } else {
        static const Oid text_type[1] = {PG_TYPE_TEXT};
        const char *table[1] = {"dlock_leases"};
        res = dlock__pg_exec(c, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, text_type, table, NULL, NULL);
        int exists = dlock__pg_outcome(c, res) == OUTCOME_OK && dlock__pg_first_bool(res);
        PQclear(res);
        if (!exists)
            return dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO,
                                    "no lease table dlock_leases: '%s' is not taken in lease mode", name);
        static const Oid bytea_type[1] = {PG_TYPE_BYTEA};
        const char *values[1] = {name};
        const int lengths[1] = {(int)strlen(name)};
        res = dlock__pg_exec(c, lease_holder_sql, 1, bytea_type, values, lengths, NULL);
    }
    int kind;
    int rc = dlock__pg_answer(c, res, &dlock__pg_reading_holder, &kind);
    if (kind == OUTCOME_CONNECTION_LOST) {
        PQclear(res);
        return rc;
    }
    if (kind != OUTCOME_OK) {
        dlock__clear_error(); /* an item, not a failure */
        char why[PG_ERRTEXT_MAX];
        why_text(c, res, why, sizeof why);
        rc = dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO, "cannot tell who holds '%s' in %s mode: %s",
                              name, mode, why);
    } else if (PQntuples(res) < 1) {
        rc = dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO, "'%s' is free in %s mode", name, mode);
    } else {
        /* Held in the other mode: the two modes exclude each other on one
         * database (the default lease table), so this client waits for it. */
        rc = dlock__check_add(out, "holder (other mode)", DLOCK_CHECK_INFO,
                              "'%s' is held in %s mode, by %s%s%s (the modes exclude each other: this client waits)",
                              name, mode, PQgetvalue(res, 0, 0), c->lease ? " pid " : "",
                              c->lease ? PQgetvalue(res, 0, 1) : "");
    }
    PQclear(res);
    return rc;
}

int dlock__pg_check(pg_conn *c, const char *name, const char *key, struct dlock_check_list *out)
{
    const char *values[1] = {c->table};
    int rc;
    PGresult *res = history_exec(c, check_sql, 1, values, 0, "cannot ask the server", &rc);
    if (!res)
        return rc > 0 ? dlock__error(DLOCK_EBACKEND, "cannot ask the server") : rc;
    char plain[PG_TABLE_MAX];
    size_t n = strlen(c->table);
    snprintf(plain, sizeof plain, "%.*s", n >= 2 ? (int)(n - 2) : 0, c->table + 1);
    const char *sync = PQgetvalue(res, 0, 4);
    int sync_off = strcmp(sync, "off") == 0;
    rc = dlock__check_add(out, "server", DLOCK_CHECK_INFO, "PostgreSQL %s", PQgetvalue(res, 0, 0));
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "database", DLOCK_CHECK_INFO, "%s, user %s, schema %s", PQgetvalue(res, 0, 1),
                              PQgetvalue(res, 0, 2), PQgetisnull(res, 0, 3) ? "(none)" : PQgetvalue(res, 0, 3));
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "mode", DLOCK_CHECK_INFO, "%s, table %s, fencing %s",
                              c->lease ? "lease (a row per lock)" : "session (advisory locks)", plain,
                              c->lease || c->fencing ? "on" : "off");
    if (rc == DLOCK_OK)
        rc = table_item(out, "table", plain,
                        c->lease ? "every lock" : c->fencing ? "fencing and --once-per" : "fencing=on and --once-per",
                        is_true(res, 5), is_true(res, 6), is_true(res, 9), c->lease);
    if (rc == DLOCK_OK)
        rc = table_item(out, "history", HISTORY_TABLE, "dlock run's run history", is_true(res, 7), is_true(res, 8),
                        is_true(res, 9), 0);
    if (rc == DLOCK_OK && !c->lease)
        rc = table_item(out, "names", PG_HOLDERS_TABLE, "names and since of session-mode locks in dlock list",
                        is_true(res, 11), is_true(res, 12), is_true(res, 9), 0);
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "synchronous_commit", sync_off ? DLOCK_CHECK_WARN : DLOCK_CHECK_OK,
                              sync_off ? "off: a server crash can forget the last fences, leases and run records"
                                         " that were acknowledged (set it to on)"
                                       : "%s: what the server acknowledged survives its crash",
                              sync);
    if (rc == DLOCK_OK && !c->lease)
        rc = dlock__check_add(out, "idle_session_timeout", DLOCK_CHECK_INFO,
                              "%s on the server (libdlock sets it per session to the smallest TTL held)",
                              PQgetvalue(res, 0, 10));
    PQclear(res);
    if (rc == DLOCK_OK && name)
        rc = other_mode_holder(c, name, key, out);
    return rc;
}
