/*
 * PostgreSQL lease mode (mode=lease): the lock is a row of a table, keyed by
 * the exact bytes of the name, that records a random owner token, a fence,
 * the expiry (on the server's clock), the holder and when it was taken.
 *
 * Acquire, extend and release are each one autocommit statement, sent
 * unnamed (PQsendQueryParams): nothing is prepared, no session setting is
 * relied on, so that a transaction pooler may run every statement in a
 * different server session.  A dropped connection loses nothing; the next
 * call connects again.  A holder that stops talking loses the lock when the
 * row expires.
 *
 * Released rows are kept (owner NULL), so that the fence and the run record
 * outlive the holders.
 */
#include "config.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "key.h"

/* Waiting: the first poll after this long, doubling up to the cap (with
 * jitter: a random 50..100% of it), and never later than the row's expiry. */
#define PG_POLL_FIRST_MS 5
#define PG_POLL_CAP_MS 50


/* The SQL is a format whose %1$s is the table (quoted).  $1 the name
 * (bytea), $2 the owner token, $3 a TTL in ms, $4 the holder. */
#define PG_EXPIRY(ttl) "pg_catalog.clock_timestamp() + " ttl "::bigint * interval '1 millisecond'"
#define PG_LIVE "expires_at > pg_catalog.clock_timestamp()"

static const char lease_ddl[] = "CREATE TABLE IF NOT EXISTS %1$s ("
                                " name bytea PRIMARY KEY,"
                                " owner uuid,"
                                " fence bigint NOT NULL DEFAULT 0,"
                                " expires_at timestamptz,"
                                " holder text,"
                                " taken_at timestamptz,"
                                " last_slot bigint NOT NULL DEFAULT 0)";
static const char fence_ddl[] = "CREATE TABLE IF NOT EXISTS %1$s ("
                                " name bytea PRIMARY KEY,"
                                " fence bigint NOT NULL DEFAULT 0,"
                                " last_slot bigint NOT NULL DEFAULT 0)";

/* Take the row when it is free, expired, or already ours (a retry after a
 * connection broke), answering the fence.  Only while no session-mode
 * client holds the name's advisory lock ($5, the key): taken here as a
 * transaction-level lock, which works through a transaction pooler, so
 * that the two modes exclude each other (issue 23).  The commit is
 * synchronous whatever synchronous_commit says (PG_DURABLE). */
#define PG_DURABLE "pg_catalog.set_config('synchronous_commit', 'on', true)"
#define PG_TAKE                                                                                                    \
    "INSERT INTO %1$s AS l (name, owner, fence, expires_at, holder, taken_at)"                                     \
    " SELECT $1, $2::uuid, 1, " PG_EXPIRY("$3") ", $4, pg_catalog.clock_timestamp()"                               \
    " WHERE pg_catalog.pg_try_advisory_xact_lock($5::bigint)"                                                      \
    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, fence = l.fence + 1,"                               \
    " expires_at = excluded.expires_at, holder = excluded.holder, taken_at = excluded.taken_at"                    \
    " WHERE l.owner IS NULL OR l.expires_at <= pg_catalog.clock_timestamp() OR l.owner = excluded.owner"           \
    " RETURNING l.fence, " PG_DURABLE
static const char try_sql[] = PG_TAKE;
/* A waiter's look between tries (read-only): how long the holder's lease
 * still runs; no row: free, try again. */
static const char peek_sql[] =
    "SELECT pg_catalog.ceil(EXTRACT(EPOCH FROM expires_at - pg_catalog.clock_timestamp()) * 1000)::bigint"
    " FROM %1$s WHERE name = $1 AND owner IS NOT NULL AND " PG_LIVE;
static const char extend_sql[] = "UPDATE %1$s SET expires_at = " PG_EXPIRY(
    "$3") " WHERE name = $1 AND owner = $2::uuid AND " PG_LIVE " RETURNING fence, " PG_DURABLE;
/* Ours, live or not, is let go; the answer says whether it was still live. */
static const char release_sql[] = "UPDATE %1$s SET owner = NULL WHERE name = $1 AND owner = $2::uuid"
                                  " RETURNING " PG_LIVE ", " PG_DURABLE;
/* After a release whose answer was lost: the row is free and its fence is
 * still ours, so no one took the lock since (a take bumps the fence): the
 * first send went through. */
static const char released_sql[] = "SELECT 1 FROM %1$s WHERE name = $1 AND owner IS NULL AND fence = $2::bigint";
static const char record_get_sql[] = "SELECT last_slot FROM %1$s WHERE name = $1 AND owner = $2::uuid AND " PG_LIVE;
static const char record_put_sql[] = "UPDATE %1$s SET last_slot = $3::bigint"
                                     " WHERE name = $1 AND owner = $2::uuid AND " PG_LIVE " RETURNING last_slot";
static const char holder_sql[] =
    "SELECT holder, pg_catalog.to_char(taken_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " pg_catalog.ceil(EXTRACT(EPOCH FROM expires_at - pg_catalog.clock_timestamp()) * 1000)::bigint, fence"
    " FROM %1$s WHERE name = $1 AND owner IS NOT NULL AND " PG_LIVE;
static const char list_sql[] =
    "SELECT pg_catalog.encode(name, 'hex'), holder,"
    " pg_catalog.floor(EXTRACT(EPOCH FROM taken_at) * 1000)::bigint,"
    " pg_catalog.floor(EXTRACT(EPOCH FROM expires_at) * 1000)::bigint, fence"
    " FROM %1$s WHERE owner IS NOT NULL AND " PG_LIVE " AND pg_catalog.substr(name, 1, pg_catalog.length($1)) = $1";
static const char break_sql[] = "UPDATE %1$s SET owner = NULL WHERE name = $1 AND owner IS NOT NULL AND " PG_LIVE
                                " RETURNING fence, " PG_DURABLE;

static int hot_statement(const char *fmt)
{
    return fmt == try_sql ? 0 : fmt == peek_sql ? 1 : fmt == extend_sql ? 2 : fmt == release_sql ? 3 : -1;
}

static char *format_sql(const pg_conn *c, const char *fmt)
{
    return dlock__format_alloc(fmt, c->table);
}

static const char *table_text(const pg_conn *c, char *buf, size_t len)
{
    /* the identifier without its quotes, for messages */
    size_t n = strlen(c->table);
    snprintf(buf, len, "%.*s", n >= 2 ? (int)(n - 2) : 0, c->table + 1);
    return buf;
}

int dlock__pg_create_table(pg_conn *c)
{
    char plain[PG_TABLE_MAX];
    table_text(c, plain, sizeof plain);
    const char *values[1] = {c->table};
    static const Oid types[1] = {PG_TYPE_TEXT};
    PGresult *res = dlock__pg_exec(c, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, types, values, NULL, NULL);
    static const struct pg_what looking = {DLOCK_ECONN, "the connection broke while looking for the table",
                                           "cannot look for the table", 0};
    int kind;
    int rc = dlock__pg_answer(c, res, &looking, &kind);
    int exists = kind == OUTCOME_OK && dlock__pg_first_bool(res);
    PQclear(res);
    if (kind == OUTCOME_CONNECTION_LOST)
        return rc;
    dlock__clear_error(); /* an error here: try to create it (and say why that fails) */
    if (exists) {
        c->table_ready = 1;
        return DLOCK_OK;
    }
    char *sql = format_sql(c, c->lease ? lease_ddl : fence_ddl);
    if (!sql)
        return dlock__oom();
    res = dlock__pg_exec(c, sql, 0, NULL, NULL, NULL, NULL);
    free(sql);
    static const struct pg_what creating = {DLOCK_ECONN, "the connection broke while creating the table",
                                            "cannot create the table", 0};
    rc = dlock__pg_answer(c, res, &creating, &kind);
    /* Two clients creating it at once: one of them sees the other's. */
    if (kind == OUTCOME_SQL_ERROR && (dlock__pg_has_sqlstate(res, "23505") || dlock__pg_has_sqlstate(res, "42P07"))) {
        dlock__clear_error();
        rc = DLOCK_OK;
    } else if (kind == OUTCOME_SQL_ERROR) {
        char why[PG_ERRTEXT_MAX];
        const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        dlock__pg_clean_text(why, sizeof why, message ? message : "failed", c->password);
        rc = dlock__error(DLOCK_EBACKEND,
                          "table %s does not exist and this role cannot create it (%s, SQLSTATE %s): have it"
                          " created with the DDL in docs/postgresql.md (\"Tables\"), or name another one"
                          " with table=",
                          plain, why, sqlstate ? sqlstate : "?");
    }
    PQclear(res);
    if (rc == DLOCK_OK)
        c->table_ready = 1;
    return rc;
}

/* Lease mode's hot statements are prepared on a connection that keeps them
 * (a direct one, a session pooler, a pooler that forwards prepared
 * statements), from their second use on that connection (so that a
 * one-shot `dlock run` pays no extra round trip); named
 * "dlock_lease<i>_<token>" with the connection's random token.  The first
 * answer that says a prepared statement is missing (26000: a transaction
 * pooler ran it in another server session) or cannot be made turns the
 * client to unnamed statements for good, and the statement is sent again
 * unnamed (it did nothing). */
static PGresult *run_hot(pg_conn *c, int hot, const char *sql, int nparams, const Oid *types,
                         const char *const *values, const int *lengths, int64_t *sent_ms)
{
    unsigned bit = 1u << hot;
    if (c->lease_unnamed || !(c->lease_used & bit)) {
        c->lease_used |= bit;
        return dlock__pg_exec(c, sql, nparams, types, values, lengths, sent_ms);
    }
    char base[24], name[PG_STMT_NAME_MAX];
    snprintf(base, sizeof base, "dlock_lease%d", hot);
    dlock__pg_stmt_name(c, base, name);
    int cancel_sent = 0;
    if (!(c->lease_prepared & bit)) {
        if (!PQsendPrepare(c->pg, name, sql, nparams, types)) {
            c->failure = PG_FAIL_CONN;
            return NULL;
        }
        PGresult *p = dlock__pg_await_result(c, 0, &cancel_sent);
        if (!p)
            return NULL;
        int prepared = PQresultStatus(p) == PGRES_COMMAND_OK;
        PQclear(p);
        if (!prepared) {
            c->lease_unnamed = 1;
            return dlock__pg_exec(c, sql, nparams, types, values, lengths, sent_ms);
        }
        c->lease_prepared |= bit;
    }
    int formats[8] = {0};
    for (int i = 0; i < nparams && i < 8; i++)
        formats[i] = types && types[i] == PG_TYPE_BYTEA;
    if (sent_ms)
        *sent_ms = dlock__now_ms();
    if (!PQsendQueryPrepared(c->pg, name, nparams, values, lengths, formats, 0)) {
        c->failure = PG_FAIL_CONN;
        return NULL;
    }
    PGresult *res = dlock__pg_await_result(c, 0, &cancel_sent);
    if (res && dlock__pg_has_sqlstate(res, "26000")) {
        PQclear(res);
        c->lease_unnamed = 1;
        return dlock__pg_exec(c, sql, nparams, types, values, lengths, sent_ms);
    }
    return res;
}

/* One statement of lease mode: connects when there is no connection,
 * creates the table when it is missing, and tries once more on a fresh
 * connection when the one it had broke (every statement here may run
 * twice: a retry finds its own row).  Returns the result (OUTCOME_OK), or
 * NULL with the error set (status `lost_status` for a broken connection). */
static PGresult *lease_run_as(pg_conn *c, const char *fmt, int nparams, const Oid *types, const char *const *values,
                              const int *lengths, int64_t *sent_ms, const char *what, int *rc_out, int conflict_status)
{
    char *sql = format_sql(c, fmt);
    if (!sql) {
        *rc_out = dlock__oom();
        return NULL;
    }
    char broke[64], failed[64];
    snprintf(broke, sizeof broke, "the connection broke (%s)", what);
    snprintf(failed, sizeof failed, "cannot %s", what);
    PGresult *out = NULL;
    int rc = DLOCK_OK;
    for (int attempt = 0, created = 0;; attempt++) {
        int fresh = 0;
        rc = dlock__pg_ensure_session(c, &fresh);
        if (rc != DLOCK_OK)
            break;
        int hot = c->lease ? hot_statement(fmt) : -1;
        PGresult *res = hot >= 0 ? run_hot(c, hot, sql, nparams, types, values, lengths, sent_ms)
                                 : dlock__pg_exec(c, sql, nparams, types, values, lengths, sent_ms);
        int kind;
        /* A serialization failure or deadlock (a default isolation of
         * repeatable read or serializable): for a take, busy (issue 23). */
        const struct pg_what w = {DLOCK_ECONN, broke, failed, conflict_status};
        if (!created && dlock__pg_outcome(c, res) == OUTCOME_SQL_ERROR &&
            dlock__pg_has_sqlstate(res, "42P01")) { /* undefined_table: first use */
            PQclear(res);
            created = 1;
            rc = dlock__pg_create_table(c);
            if (rc != DLOCK_OK)
                break;
            continue;
        }
        rc = dlock__pg_answer(c, res, &w, &kind);
        if (kind == OUTCOME_OK) {
            out = res;
            break;
        }
        PQclear(res);
        if (kind == OUTCOME_CONNECTION_LOST && attempt == 0 && c->failure != PG_FAIL_TIMEOUT)
            continue;
        break;
    }
    free(sql);
    *rc_out = rc;
    return out;
}

static PGresult *lease_run(pg_conn *c, const char *fmt, int nparams, const Oid *types, const char *const *values,
                           const int *lengths, int64_t *sent_ms, const char *what, int *rc_out)
{
    return lease_run_as(c, fmt, nparams, types, values, lengths, sent_ms, what, rc_out, DLOCK_EBACKEND);
}

static void new_owner(char out[37], const unsigned char b[16])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static const Oid types_name_owner[5] = {PG_TYPE_BYTEA, PG_TYPE_TEXT, PG_TYPE_TEXT, PG_TYPE_TEXT, PG_TYPE_TEXT};

/* One try: DLOCK_OK (the fence set), DLOCK_EBUSY, or an error. */
static int try_once(pg_conn *c, pg_lock *l, const char *name, uint32_t ttl_ms, int64_t *sent_ms)
{
    char ttl[16], key[24];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    snprintf(key, sizeof key, "%" PRId64, l->key);
    const char *values[5] = {name, l->owner, ttl, c->appname + 6, key};
    const int lengths[5] = {(int)strlen(name), 0, 0, 0, 0};
    int rc;
    PGresult *res =
        lease_run_as(c, try_sql, 5, types_name_owner, values, lengths, sent_ms, "take the lock", &rc, DLOCK_EBUSY);
    if (!res)
        return rc;
    if (PQntuples(res) >= 1 && !PQgetisnull(res, 0, 0)) {
        l->base.fence = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        rc = DLOCK_OK;
    } else {
        rc = dlock__busy(name, 0);
    }
    PQclear(res);
    return rc;
}

/* A waiter's look: 1 held (*left_ms: how long its lease still runs), 0
 * free, <0 an error. */
static int peek(pg_conn *c, const char *name, int64_t *left_ms)
{
    const char *values[1] = {name};
    const int lengths[1] = {(int)strlen(name)};
    int rc;
    PGresult *res = lease_run(c, peek_sql, 1, types_name_owner, values, lengths, NULL, "look at the lock", &rc);
    if (!res)
        return rc;
    int held = PQntuples(res) >= 1;
    *left_ms = held && !PQgetisnull(res, 0, 0) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
    PQclear(res);
    return held;
}

static uint32_t jitter(void)
{
    static _Thread_local uint32_t state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = (uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)&ts ^ 0x9e3779b9u;
        if (!state)
            state = 1;
    }
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

int dlock__pg_lease_acquire(pg_conn *c, const char *name, uint32_t ttl_ms, int32_t wait_ms, struct dlock_call *call,
                            pg_lock *l)
{
    unsigned char token[16];
    int rc = dlock__random(token, sizeof token);
    if (rc != DLOCK_OK)
        return rc;
    new_owner(l->owner, token);
    int64_t start = dlock__now_ms();
    int64_t until = wait_ms < 0 ? INT64_MAX : start + wait_ms;
    int64_t step = PG_POLL_FIRST_MS;
    dlock__pg_begin_call(c, call->deadline_ms);
    rc = try_once(c, l, name, ttl_ms, &call->lease_start_ms);
    if (rc != DLOCK_EBUSY || wait_ms == 0)
        return rc;
    /* Waiting: look (read-only) every jittered step, no later than the
     * holder's lease ends, and try again when the row looks free. */
    int64_t left = -1;
    for (;;) {
        int64_t now = dlock__now_ms();
        if (now >= until)
            return dlock__busy(name, wait_ms);
        int64_t nap = step / 2 + (int64_t)(jitter() % (uint32_t)(step / 2 + 1));
        if (left >= 0 && left + 1 < nap)
            nap = left + 1;
        if (nap < 1)
            nap = 1;
        int64_t wake = now + nap;
        if (wake > until)
            wake = until;
        /* dlock_cancel() wakes the sleep through wake_fd. */
        (void)dlock__pg_wait_socket(-1, 0, wake, c->wake_fd);
        step = step * 2 > PG_POLL_CAP_MS ? PG_POLL_CAP_MS : step * 2;
        if (atomic_load(&c->cancel_requested))
            return dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
        dlock__pg_begin_call(c, call->deadline_ms);
        int held = peek(c, name, &left);
        if (held < 0)
            return held;
        if (held)
            continue;
        rc = try_once(c, l, name, ttl_ms, &call->lease_start_ms);
        if (rc != DLOCK_EBUSY)
            return rc;
        left = -1;
    }
}

static int not_ours(const char *name)
{
    return dlock__error(DLOCK_ELOST, "lock '%s' is lost: its lease expired or another holder took it", name);
}

int dlock__pg_lease_extend(pg_conn *c, pg_lock *l, const char *name, uint32_t ttl_ms)
{
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%" PRIu32, ttl_ms);
    const char *values[3] = {name, l->owner, ttl};
    const int lengths[3] = {(int)strlen(name), 0, 0};
    int rc;
    PGresult *res = lease_run(c, extend_sql, 3, types_name_owner, values, lengths, NULL, "extend the lock", &rc);
    if (!res)
        return rc;
    rc = PQntuples(res) >= 1 ? DLOCK_OK : not_ours(name);
    PQclear(res);
    return rc;
}

/* 1 when the row of `name` is free with l's fence: released, and not
 * taken since. */
static int released_by_lost_send(pg_conn *c, const pg_lock *l, const char *name)
{
    char fence[24];
    snprintf(fence, sizeof fence, "%" PRIu64, l->base.fence);
    const char *values[2] = {name, fence};
    const int lengths[2] = {(int)strlen(name), 0};
    int rc;
    PGresult *res = lease_run(c, released_sql, 2, types_name_owner, values, lengths, NULL, "release the lock", &rc);
    int released = res && PQntuples(res) >= 1;
    PQclear(res);
    dlock__clear_error();
    return released;
}

int dlock__pg_lease_release(pg_conn *c, pg_lock *l, const char *name)
{
    const char *values[2] = {name, l->owner};
    const int lengths[2] = {(int)strlen(name), 0};
    int rc;
    uint64_t generation = c->session.generation;
    PGresult *res = lease_run(c, release_sql, 2, types_name_owner, values, lengths, NULL, "release the lock", &rc);
    if (!res)
        return rc;
    /* Released live; or this was the retry of a release whose answer was
     * lost, and the first send went through (issue 23). */
    if ((PQntuples(res) >= 1 && dlock__pg_first_bool(res)) ||
        (c->session.generation != generation && released_by_lost_send(c, l, name)))
        rc = DLOCK_OK;
    else
        rc = dlock__error(DLOCK_ELOST, "lock '%s' had already been lost: its lease expired or another holder took it",
                          name);
    PQclear(res);
    return rc;
}

/* The lease row's holder text: 1 (buf set) or 0 (no live row). */
static int holder_text(PGresult *res, char *buf, size_t buflen)
{
    if (PQntuples(res) < 1)
        return 0;
    char text[512];
    snprintf(text, sizeof text, "%s since=%s expires_in=%sms fence=%s",
             PQgetisnull(res, 0, 0) ? "?" : PQgetvalue(res, 0, 0), PQgetisnull(res, 0, 1) ? "?" : PQgetvalue(res, 0, 1),
             PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
    dlock__copy_text(buf, buflen, text);
    return 1;
}

/* A session-mode holder of the name's advisory lock (issue 23: the two
 * modes see each other).  1 (buf set), 0 none, <0 a status. */
static int session_mode_holder(pg_conn *c, const char *name, char *buf, size_t buflen)
{
    static const char sql[] = "SELECT a.application_name, l.pid FROM pg_catalog.pg_locks l"
                              " LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
                              " WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted"
                              " AND l.classid = (($1::bigint >> 32) & 4294967295)::oid"
                              " AND l.objid = ($1::bigint & 4294967295)::oid AND l.database ="
                              " (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
                              " LIMIT 1";
    char key[24];
    snprintf(key, sizeof key, "%" PRId64, dlock__pg_key(name, strlen(name)));
    const char *values[1] = {key};
    int rc;
    PGresult *res = lease_run(c, sql, 1, NULL, values, NULL, NULL, "read the holder", &rc);
    if (!res)
        return rc;
    rc = PQntuples(res) >= 1;
    if (rc) {
        const char *app = PQgetisnull(res, 0, 0) ? "?" : PQgetvalue(res, 0, 0);
        char text[512];
        snprintf(text, sizeof text, "%s backend_pid=%s (session mode)", strncmp(app, "dlock ", 6) == 0 ? app + 6 : app,
                 PQgetvalue(res, 0, 1));
        dlock__copy_text(buf, buflen, text);
    }
    PQclear(res);
    return rc;
}

int dlock__pg_lease_holder(pg_conn *c, const char *name, char *buf, size_t buflen)
{
    const char *values[1] = {name};
    const int lengths[1] = {(int)strlen(name)};
    int rc;
    PGresult *res = lease_run(c, holder_sql, 1, types_name_owner, values, lengths, NULL, "read the holder", &rc);
    if (!res)
        return rc;
    rc = holder_text(res, buf, buflen);
    PQclear(res);
    return rc ? rc : session_mode_holder(c, name, buf, buflen);
}

/* Session mode: the holder of the name in lease mode's default table, when
 * that table exists.  1 (buf set), 0 none, <0 a status. */
int dlock__pg_leased_holder(pg_conn *c, const char *name, char *buf, size_t buflen)
{
    if (!c->leases_seen)
        return 0;
    char sql[sizeof holder_sql + PG_TABLE_MAX];
    dlock__format_into(sql, sizeof sql, holder_sql, PG_LEASE_TABLE);
    const char *values[1] = {name};
    const int lengths[1] = {(int)strlen(name)};
    PGresult *res = dlock__pg_exec(c, sql, 1, types_name_owner, values, lengths, NULL);
    int rc = dlock__pg_answer(c, res, &dlock__pg_reading_holder, NULL);
    if (rc == DLOCK_OK) {
        char found[512] = "", text[560];
        rc = holder_text(res, found, sizeof found);
        snprintf(text, sizeof text, "%s (lease mode)", found);
        if (rc)
            dlock__copy_text(buf, buflen, text);
    }
    PQclear(res);
    return rc;
}

/* Split "host=H pid=P" (our holder text) into its parts, where it is one. */
static void split_holder(const char *holder, char *host, size_t hostlen, int64_t *pid)
{
    host[0] = '\0';
    *pid = 0;
    const char *h = strncmp(holder, "host=", 5) == 0 ? holder + 5 : NULL;
    const char *p = strstr(holder, " pid=");
    if (!h || !p)
        return;
    snprintf(host, hostlen, "%.*s", (int)(p - h), h);
    *pid = strtoll(p + 5, NULL, 10);
}

int dlock__pg_lease_list(pg_conn *c, const char *prefix, struct dlock_list *list)
{
    const char *values[1] = {prefix};
    const int lengths[1] = {(int)strlen(prefix)};
    int rc;
    PGresult *res = lease_run(c, list_sql, 1, types_name_owner, values, lengths, NULL, "list the locks", &rc);
    if (!res)
        return rc;
    for (int i = 0; rc == DLOCK_OK && i < PQntuples(res); i++) {
        char *decoded = dlock__pg_from_hex(PQgetvalue(res, i, 0));
        if (!decoded) {
            rc = dlock__oom();
            break;
        }
        const char *holder = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
        char host[256] = "";
        int64_t pid = 0;
        if (holder)
            split_holder(holder, host, sizeof host, &pid);
        struct dlock_list_entry e = {
            .name = decoded,
            .key = NULL,
            .holder = holder,
            .host = holder && host[0] ? host : NULL,
            .pid = pid,
            .since_ms = PQgetisnull(res, i, 2) ? -1 : strtoll(PQgetvalue(res, i, 2), NULL, 10),
            .expires_ms = PQgetisnull(res, i, 3) ? -1 : strtoll(PQgetvalue(res, i, 3), NULL, 10),
            .fence = strtoull(PQgetvalue(res, i, 4), NULL, 10),
        };
        rc = dlock__list_add(list, &e);
        free(decoded);
    }
    PQclear(res);
    return rc;
}

int dlock__pg_lease_break(pg_conn *c, const char *name)
{
    const char *values[1] = {name};
    const int lengths[1] = {(int)strlen(name)};
    int rc;
    PGresult *res = lease_run(c, break_sql, 1, types_name_owner, values, lengths, NULL, "break the lock", &rc);
    if (!res)
        return rc;
    rc = PQntuples(res) >= 1 ? 1 : 0;
    PQclear(res);
    if (rc == 0) {
        /* Free in this table, but a session-mode client may hold it. */
        char who[512];
        int held = session_mode_holder(c, name, who, sizeof who);
        if (held < 0)
            return held;
        if (held)
            return dlock__error(DLOCK_EBACKEND,
                                "lock '%s' is not broken: a session-mode client holds it (%s); break it"
                                " through a session-mode URL (without mode=lease)",
                                name, who);
    }
    return rc;
}

/* Session mode: break the name's row in lease mode's default table. */
int dlock__pg_lease_break_default(pg_conn *c, const char *name)
{
    char sql[sizeof break_sql + PG_TABLE_MAX];
    dlock__format_into(sql, sizeof sql, break_sql, PG_LEASE_TABLE);
    const char *values[1] = {name};
    const int lengths[1] = {(int)strlen(name)};
    PGresult *res = dlock__pg_exec(c, sql, 1, types_name_owner, values, lengths, NULL);
    int rc = dlock__pg_answer(c, res, &dlock__pg_breaking, NULL);
    if (rc == DLOCK_OK)
        rc = PQntuples(res) >= 1 ? 1 : 0;
    PQclear(res);
    return rc;
}

int dlock__pg_lease_record(pg_conn *c, pg_lock *l, const char *name, int64_t *slot, int put)
{
    char value[24];
    snprintf(value, sizeof value, "%" PRId64, *slot);
    const char *values[3] = {name, l->owner, value};
    const int lengths[3] = {(int)strlen(name), 0, 0};
    int rc;
    PGresult *res = lease_run(c, put ? record_put_sql : record_get_sql, put ? 3 : 2, types_name_owner, values, lengths,
                              NULL, put ? "write the run record" : "read the run record", &rc);
    if (!res)
        return rc;
    if (PQntuples(res) < 1) {
        rc = not_ours(name);
    } else {
        if (!put)
            *slot = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        rc = DLOCK_OK;
    }
    PQclear(res);
    return rc;
}

int dlock__pg_store_time(pg_conn *c, int64_t *unix_ms)
{
    int rc;
    PGresult *res =
        lease_run(c, "SELECT pg_catalog.floor(EXTRACT(EPOCH FROM pg_catalog.clock_timestamp()) * 1000)::bigint", 0,
                  NULL, NULL, NULL, NULL, "read the server's clock", &rc);
    if (!res)
        return rc;
    *unix_ms = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return DLOCK_OK;
}

/* Session mode: any statement (unnamed) in the session, the fence table
 * created when it is missing.  See lease_run. */
PGresult *dlock__pg_session_exec(pg_conn *c, const char *fmt, int nparams, const Oid *types, const char *const *values,
                                 const int *lengths, const char *what, int *rc_out)
{
    return lease_run(c, fmt, nparams, types, values, lengths, NULL, what, rc_out);
}
