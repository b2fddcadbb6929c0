/*
 * PostgreSQL operations beside the lock itself, both modes: list the locks,
 * break one, the server's clock, and the run record of --once-per.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "key.h"

/* Session mode: the advisory locks on bigint keys in this database, with
 * the holder's session, and the name where the fence table knows it. */
#define PG_LIST_LOCKS                                                                                                \
    "SELECT k.key, a.application_name, k.pid, %s FROM (SELECT ((l.classid::bigint << 32) | l.objid::bigint) AS key," \
    " l.pid FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted"               \
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))"      \
    " AS k LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = k.pid %s"
#define PG_SINCE "(EXTRACT(epoch FROM h.since) * 1000)::bigint"
#define PG_NAME_KEY "('x' || pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(f.name), 'hex'), 16))::bit(64)::bigint"

/* Session mode: is `table` there (*exists)?  A status. */
static int table_exists(pg_conn *c, const char *table, int *exists)
{
    const char *values[1] = {table};
    static const Oid types[1] = {PG_TYPE_TEXT};
    PGresult *res = dlock__pg_exec(c, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, types, values, NULL, NULL);
    static const struct pg_what looking = {DLOCK_ECONN, "the connection broke while looking for the table",
                                           "cannot look for the table", 0};
    int rc = dlock__pg_answer(c, res, &looking, NULL);
    if (rc == DLOCK_OK)
        *exists = dlock__pg_first_bool(res);
    PQclear(res);
    return rc;
}

char *dlock__pg_from_hex(const char *hex)
{
    size_t n = strlen(hex) / 2;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        char pair[3] = {hex[2 * k], hex[2 * k + 1], 0};
        out[k] = (char)strtol(pair, NULL, 16);
    }
    out[n] = '\0';
    return out;
}

/* --- names and since of session-mode locks ---------------------------------------- */

/* An advisory lock has a key but no name and no time of grant.  A lock that
 * lives to its first renewal writes both into an unlogged table (no WAL: a
 * crash loses the rows, and the locks with them), with the holder's
 * session; the listing reads a row only while that session holds the key.
 * A lock released before its first renewal costs nothing. */
static const char holders_ddl[] = "CREATE UNLOGGED TABLE IF NOT EXISTS " PG_HOLDERS_TABLE " ("
                                  " key bigint PRIMARY KEY,"
                                  " name bytea NOT NULL,"
                                  " pid integer NOT NULL,"
                                  " backend_start timestamptz,"
                                  " since timestamptz NOT NULL)";
/* $1 key, $2 name, $3 ms since the grant (the client's count). */
static const char holders_put[] =
    "INSERT INTO " PG_HOLDERS_TABLE " AS h (key, name, pid, backend_start, since)"
    " SELECT $1::bigint, $2::bytea, pg_catalog.pg_backend_pid(),"
    " (SELECT backend_start FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid()),"
    " pg_catalog.clock_timestamp() - $3::bigint * interval '1 millisecond'"
    " ON CONFLICT (key) DO UPDATE SET name = excluded.name, pid = excluded.pid,"
    " backend_start = excluded.backend_start, since = excluded.since";
static const char holders_drop[] =
    "DELETE FROM " PG_HOLDERS_TABLE " WHERE key = $1::bigint AND pid = pg_catalog.pg_backend_pid()";

int dlock__pg_list_register(pg_conn *c, pg_lock *l, const char *name)
{
    if (l->listed || c->holders_off)
        return DLOCK_OK;
    l->listed = -1;
    char key[24], ago[24];
    dlock__pg_key_text(key, l->key);
    int64_t elapsed = dlock__now_ms() - l->taken_ms;
    snprintf(ago, sizeof ago, "%lld", (long long)(elapsed > 0 ? elapsed : 0));
    const char *values[3] = {key, name, ago};
    const int lengths[3] = {0, (int)strlen(name), 0};
    static const Oid types[3] = {PG_TYPE_INT8, PG_TYPE_BYTEA, PG_TYPE_INT8};
    static const struct pg_what listing = {DLOCK_ELOST, "the connection broke: the lock is lost",
                                           "cannot list the lock's name", 0};
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *res = dlock__pg_exec(c, holders_put, 3, types, values, lengths, NULL);
        int kind;
        (void)dlock__pg_answer(c, res, &listing, &kind);
        int missing = kind == OUTCOME_SQL_ERROR && dlock__pg_has_sqlstate(res, "42P01");
        int refused = kind == OUTCOME_SQL_ERROR && dlock__pg_has_sqlstate(res, "42501");
        PQclear(res);
        if (kind == OUTCOME_CONNECTION_LOST)
            return dlock__pg_session_ended(name);
        dlock__clear_error(); /* the name is a courtesy: never the lock's failure */
        if (kind == OUTCOME_OK) {
            l->listed = 1;
            return DLOCK_OK;
        }
        if (refused)
            c->holders_off = 1;
        if (!missing || attempt)
            return DLOCK_OK;
        res = dlock__pg_exec(c, holders_ddl, 0, NULL, NULL, NULL, NULL);
        (void)dlock__pg_answer(c, res, &listing, &kind);
        refused = kind == OUTCOME_SQL_ERROR && dlock__pg_has_sqlstate(res, "42501");
        PQclear(res);
        if (kind == OUTCOME_CONNECTION_LOST)
            return dlock__pg_session_ended(name);
        dlock__clear_error();
        if (refused) {
            c->holders_off = 1;
            return DLOCK_OK;
        }
    }
    return DLOCK_OK;
}

void dlock__pg_list_unregister(pg_conn *c, pg_lock *l)
{
    if (l->listed != 1 || !c->pg)
        return;
    char key[24];
    dlock__pg_key_text(key, l->key);
    const char *values[1] = {key};
    static const Oid types[1] = {PG_TYPE_INT8};
    PGresult *res = dlock__pg_exec(c, holders_drop, 1, types, values, NULL, NULL);
    static const struct pg_what dropping = {DLOCK_ECONN, "the connection broke", "cannot drop the lock's name", 0};
    (void)dlock__pg_answer(c, res, &dropping, NULL);
    PQclear(res);
    dlock__clear_error();
}

/* Row i of the session-mode listing, its name (NULL: only the key known). */
static int add_session_row(const PGresult *res, int i, const char *name, struct dlock_list *list)
{
    const char *app = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
    char host[256] = "";
    int64_t pid = 0;
    if (app && strncmp(app, "dlock host=", 11) == 0) {
        const char *p = strstr(app, " pid=");
        if (p) {
            snprintf(host, sizeof host, "%.*s", (int)(p - app - 11), app + 11);
            pid = strtoll(p + 5, NULL, 10);
        }
    }
    char holder[320];
    snprintf(holder, sizeof holder, "%s backend_pid=%s",
             app && strncmp(app, "dlock ", 6) == 0 ? app + 6
             : app && app[0]                       ? app
                                                   : "?",
             PQgetvalue(res, i, 2));
    struct dlock_list_entry e = {
        .name = name,
        .key = PQgetvalue(res, i, 0),
        .holder = holder,
        .host = host[0] ? host : NULL,
        .pid = pid,
        .since_ms = PQgetisnull(res, i, 5) ? -1 : strtoll(PQgetvalue(res, i, 5), NULL, 10),
        .expires_ms = -1,
        .fence = PQgetisnull(res, i, 4) ? 0 : strtoull(PQgetvalue(res, i, 4), NULL, 10),
    };
    return dlock__list_add(list, &e);
}

static int session_list(pg_conn *c, const char *prefix, struct dlock_list *list)
{
    int rc = DLOCK_OK;
    /* The fence table and the holders' table give the names; a list never
     * creates them (issue 23). */
    int holders = 0;
    rc = dlock__pg_ensure_session(c, NULL);
    if (rc == DLOCK_OK && !c->table_ready)
        rc = table_exists(c, c->table, &c->table_ready);
    if (rc == DLOCK_OK)
        rc = table_exists(c, PG_HOLDERS_TABLE, &holders);
    if (rc != DLOCK_OK)
        dlock__clear_error(); /* no names then */
    rc = DLOCK_OK;
    char sql[2048], join[512] = "";
    size_t used = 0;
    if (c->table_ready)
        used += (size_t)snprintf(join, sizeof join, " LEFT JOIN %s f ON " PG_NAME_KEY " = k.key", c->table);
    if (holders)
        snprintf(join + used, sizeof join - used,
                 " LEFT JOIN " PG_HOLDERS_TABLE " h ON h.key = k.key AND h.pid = k.pid"
                 " AND h.backend_start IS NOT DISTINCT FROM COALESCE(a.backend_start, h.backend_start)");
    snprintf(sql, sizeof sql, PG_LIST_LOCKS,
             c->table_ready && holders ? "pg_catalog.encode(COALESCE(f.name, h.name), 'hex'), f.fence, " PG_SINCE
             : c->table_ready          ? "pg_catalog.encode(f.name, 'hex'), f.fence, NULL::bigint"
             : holders                 ? "pg_catalog.encode(h.name, 'hex'), NULL::bigint, " PG_SINCE
                                       : "NULL::text, NULL::bigint, NULL::bigint",
             join);
    PGresult *res = dlock__pg_session_exec(c, sql, 0, NULL, NULL, NULL, "list the locks", &rc);
    if (!res)
        return rc;
    size_t plen = strlen(prefix);
    /* A key-only entry cannot be matched against a prefix, but it can be
     * against a whole name: the prefix's own key is that name's lock. */
    char prefix_key[32] = "";
    if (plen && dlock__check_name(prefix) == DLOCK_OK)
        snprintf(prefix_key, sizeof prefix_key, "%lld", (long long)dlock__pg_key(prefix, plen));
    dlock__clear_error();
    for (int i = 0; rc == DLOCK_OK && i < PQntuples(res); i++) {
        char *decoded = NULL;
        if (PQgetisnull(res, i, 3) && prefix_key[0] && strcmp(PQgetvalue(res, i, 0), prefix_key) == 0) {
            decoded = strdup(prefix);
            if (!decoded) {
                rc = dlock__oom();
                break;
            }
        }
        if (!decoded && !PQgetisnull(res, i, 3) && !(decoded = dlock__pg_from_hex(PQgetvalue(res, i, 3)))) {
            rc = dlock__oom();
            break;
        }
        if (plen && (!decoded || strncmp(decoded, prefix, plen) != 0)) {
            free(decoded);
            continue;
        }
        rc = add_session_row(res, i, decoded, list);
        free(decoded);
    }
    PQclear(res);
    return rc;
}

int dlock__pg_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    return c->lease ? dlock__pg_lease_list(c, prefix, list) : session_list(c, prefix, list);
}

/* Session mode: end the holder's server session (its locks go with it),
 * waiting up to PG_BREAK_WAIT_MS for it to be gone (PostgreSQL 14's timeout
 * argument), so that the lock is free when this returns 1.  A session that
 * did not end in time (a stopped server process) is not broken yet: an
 * error that says so, never "it was free" (issue 23). */
#define PG_BREAK_WAIT_MS "5000"

int dlock__pg_break_lock(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    if (c->lease)
        return dlock__pg_lease_break(c, name);
    char key[24];
    dlock__pg_key_text(key, dlock__pg_key(name, strlen(name)));
    const char *values[1] = {key};
    static const Oid types[1] = {PG_TYPE_INT8};
    /* Holders found, holders ended, and the one still there (if any). */
    static const char sql[] =
        "WITH t AS MATERIALIZED (SELECT l.pid, pg_catalog.pg_terminate_backend(l.pid, " PG_BREAK_WAIT_MS ") AS ended"
        " FROM pg_catalog.pg_locks l"
        " WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted"
        " AND l.classid = (($1 >> 32) & 4294967295)::oid AND l.objid = ($1 & 4294967295)::oid"
        " AND l.pid <> pg_catalog.pg_backend_pid() AND l.database ="
        " (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))"
        " SELECT count(*), count(*) FILTER (WHERE ended),"
        " (SELECT k.pid FROM pg_catalog.pg_locks k WHERE k.locktype = 'advisory' AND k.objsubid = 1 AND k.granted"
        " AND k.pid IN (SELECT pid FROM t) AND k.classid = (($1 >> 32) & 4294967295)::oid"
        " AND k.objid = ($1 & 4294967295)::oid LIMIT 1) FROM t";
    int rc = dlock__pg_ensure_session(c, NULL);
    if (rc != DLOCK_OK)
        return rc;
    PGresult *res = dlock__pg_exec(c, sql, 1, types, values, NULL, NULL);
    int kind;
    rc = dlock__pg_answer(c, res, &dlock__pg_breaking, &kind);
    if (kind == OUTCOME_OK) {
        long found = strtol(PQgetvalue(res, 0, 0), NULL, 10), ended = strtol(PQgetvalue(res, 0, 1), NULL, 10);
        int still_held = !PQgetisnull(res, 0, 2);
        if (found == 0)
            rc = c->leases_seen ? dlock__pg_lease_break_default(c, name) : 0;
        else if (ended < found && still_held)
            rc = dlock__error(DLOCK_EBACKEND,
                              "lock '%s' is not broken yet: its holder's server session (pid %s) did not end"
                              " within " PG_BREAK_WAIT_MS " ms (a stopped or stuck server process?); it ends"
                              " when that process runs again, or try again",
                              name, PQgetvalue(res, 0, 2));
        else
            rc = 1;
    } else if (kind == OUTCOME_SQL_ERROR && dlock__pg_has_sqlstate(res, "42501")) {
        rc = dlock__error(DLOCK_EBACKEND,
                          "cannot break lock '%s': this role may not end the holder's server session"
                          " (pg_terminate_backend needs membership in pg_signal_backend, or superuser for a"
                          " superuser's session)",
                          name);
    }
    PQclear(res);
    return rc;
}

int dlock__pg_clock(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    return dlock__pg_store_time(c, unix_ms);
}

/* Session mode: the run record lives in the fence table, read and written
 * only while this session holds the lock (checked in the same statement,
 * with the session's token). */
static int session_record(pg_conn *c, pg_lock *l, const char *name, int64_t *slot, int put)
{
    if (l->base.generation != c->session.generation || !l->base.linked)
        return dlock__pg_session_ended(name);
    if (!dlock__pg_session_usable(c)) {
        dlock__pg_drop_session(c);
        return dlock__pg_session_ended(name);
    }
    static const char get_sql[] =
        "WITH ok AS MATERIALIZED (SELECT pg_catalog.current_setting('dlock.session', true) = $3"
        " AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
        " AND objsubid = 1 AND granted AND classid = (($1 >> 32) & 4294967295)::oid"
        " AND objid = ($1 & 4294967295)::oid AND pid = pg_catalog.pg_backend_pid()) AS ok)"
        " SELECT ok, COALESCE((SELECT last_slot FROM %1$s WHERE name = $2), 0) FROM ok";
    static const char put_sql[] =
        "WITH ok AS MATERIALIZED (SELECT pg_catalog.current_setting('dlock.session', true) = $3"
        " AND EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
        " AND objsubid = 1 AND granted AND classid = (($1 >> 32) & 4294967295)::oid"
        " AND objid = ($1 & 4294967295)::oid AND pid = pg_catalog.pg_backend_pid()) AS ok),"
        " w AS (INSERT INTO %1$s AS f (name, last_slot) SELECT $2, $4::bigint FROM ok WHERE ok"
        " ON CONFLICT (name) DO UPDATE SET last_slot = excluded.last_slot RETURNING 1)"
        " SELECT ok, (SELECT count(*) FROM w) FROM ok";
    static const Oid types[4] = {PG_TYPE_INT8, PG_TYPE_BYTEA, PG_TYPE_TEXT, PG_TYPE_TEXT};
    char key[24], value[24];
    dlock__pg_key_text(key, l->key);
    snprintf(value, sizeof value, "%" PRId64, *slot);
    const char *values[4] = {key, name, c->token, value};
    const int lengths[4] = {0, (int)strlen(name), 0, 0};
    int rc;
    PGresult *res = dlock__pg_session_exec(c, put ? put_sql : get_sql, put ? 4 : 3, types, values, lengths,
                                           put ? "write the run record" : "read the run record", &rc);
    if (!res)
        return l->base.generation != c->session.generation ? dlock__pg_session_ended(name) : rc;
    if (!dlock__pg_first_bool(res))
        rc = dlock__pg_no_longer_held(name);
    else if (!put)
        *slot = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return rc;
}

static int pg_record(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                     struct dlock_call *call, int put)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    pg_lock *l = dlock__pg_lock_of(held);
    return c->lease ? dlock__pg_lease_record(c, l, name, slot, put) : session_record(c, l, name, slot, put);
}

int dlock__pg_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                         struct dlock_call *call)
{
    return pg_record(conn, held, name, slot, call, 0);
}

int dlock__pg_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                         struct dlock_call *call)
{
    return pg_record(conn, held, name, &slot, call, 1);
}
