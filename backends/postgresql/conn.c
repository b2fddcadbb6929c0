/*
 * PostgreSQL connections and sessions: the connection's options from the
 * URL, connect by a deadline, check the server, apply the session settings
 * and prepare the statements (one round trip), notice a session that ended
 * while idle, and drop one (its locks are lost).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend.h"

/* idle_session_timeout appeared in PostgreSQL 14: without it a stopped
 * holder would keep its lock forever, so older servers are refused. */
#define PG_MIN_SERVER_VERSION 140000
/* transaction_timeout appeared in PostgreSQL 17. */
#define PG_TRANSACTION_TIMEOUT_VERSION 170000

/* --- SQL -------------------------------------------------------------------------- */

/* How pg_locks shows a session advisory lock on a bigint key: classid is
 * its high 32 bits, objid its low 32 bits, objsubid 1. */
#define PG_KEY_MATCHES(alias)                                                    \
    alias "locktype = 'advisory' AND " alias "objsubid = 1 AND " alias "granted" \
          " AND " alias "classid = (($1 >> 32) & 4294967295)::oid"               \
          " AND " alias "objid = ($1 & 4294967295)::oid"

#define PG_HELD_BY_THIS_SESSION \
    "EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE " PG_KEY_MATCHES("") " AND pid = pg_catalog.pg_backend_pid())"

/* Settings, then the token: set only when no client has set one in this
 * server session (else a pooler shares it: the column is NULL). */
#define PG_TOKEN_SET                                                                   \
    ", CASE WHEN COALESCE(pg_catalog.current_setting('dlock.session', true), '') = ''" \
    " THEN pg_catalog.set_config('dlock.session', '%1$s', false) END"

/* Session settings, sent once right after connect.  The lease: none while
 * no lock is held.  Our waits are bounded by lock_timeout alone.  A waiter
 * whose client vanished stops waiting (and is never granted a lock for
 * nobody): the server checks the socket during long queries, and TCP
 * keepalives / tcp_user_timeout tell it that the peer is gone. */
#define PG_SESSION_SETTINGS                                                                     \
    "SELECT"                                                                                    \
    " pg_catalog.set_config('idle_session_timeout', '0', false),"                               \
    " pg_catalog.set_config('statement_timeout', '0', false),"                                  \
    " pg_catalog.set_config('lock_timeout', '0', false),"                                       \
    " pg_catalog.set_config('idle_in_transaction_session_timeout', '0', false),"                \
    " pg_catalog.set_config('client_connection_check_interval', '1000', false),"                \
    " pg_catalog.set_config('tcp_keepalives_idle', '" PG_KEEPALIVES_IDLE_S "', false),"         \
    " pg_catalog.set_config('tcp_keepalives_interval', '" PG_KEEPALIVES_INTERVAL_S "', false)," \
    " pg_catalog.set_config('tcp_keepalives_count', '" PG_KEEPALIVES_COUNT "', false),"         \
    " pg_catalog.set_config('tcp_user_timeout', '" PG_TCP_USER_TIMEOUT_MS "', false)"
static const char session_settings_sql[] = PG_SESSION_SETTINGS PG_TOKEN_SET;
/* PostgreSQL 17: a role's or database's transaction_timeout would end a
 * long wait (one statement, so one transaction) and the session with it. */
static const char session_settings_17_sql[] =
    PG_SESSION_SETTINGS ", pg_catalog.set_config('transaction_timeout', '0', false)" PG_TOKEN_SET;


/* The token check: the statement runs in the server session that this
 * client set up (a transaction pooler hands statements to any session). */
#define PG_OURS "pg_catalog.current_setting('dlock.session', true) = '%1$s'"
/* fencing=on: the counter of the name ($N, bytea), bumped only when the
 * lock was got, in the same statement. */
#define PG_FENCE_BUMP(param)                                                           \
    ", f AS (INSERT INTO %2$s AS f (name, fence) SELECT " param ", 1 FROM l WHERE got" \
    " ON CONFLICT (name) DO UPDATE SET fence = f.fence + 1 RETURNING f.fence)"
#define PG_SET_IDLE(cond, param) \
    " CASE WHEN " cond " AND " param " <> '' THEN pg_catalog.set_config('idle_session_timeout', " param ", false) END"
/* A statement that writes what a crash must not lose (a fence) commits
 * synchronously whatever the server's synchronous_commit says: a
 * transaction-local setting, in the same statement (issue 23). */
#define PG_DURABLE ", pg_catalog.set_config('synchronous_commit', 'on', true)"
/* Lease mode's default table (%3$s) holds a live row for the name ($N):
 * the two modes exclude each other on one database (issue 23). */
#define PG_LEASED(param)                                                                            \
    "EXISTS (SELECT 1 FROM %3$s x WHERE x.name = " param " AND x.owner IS NOT NULL"                 \
    " AND x.expires_at > pg_catalog.clock_timestamp())"
/* The state of a checked take: NULL not our session, 0 busy, 1 got, 2
 * leased (the advisory lock was got, and given back at once).  One
 * expression: CASE evaluates in order, and the look at the table (an
 * initplan, run when first needed) only after the lock was got. */
#define PG_LEASE_STATE(took, param)                                                                              \
    "CASE WHEN " took " THEN CASE WHEN " PG_LEASED(param) " THEN 2 + 0 * pg_catalog.pg_advisory_unlock($1)::int" \
    " ELSE 1 END ELSE 0 END"
#define PG_TRY_LOCK "CASE WHEN " PG_OURS " THEN pg_catalog.pg_try_advisory_lock($1) END"
/* The wait: lock_timeout is set for this statement only (is_local); the
 * MATERIALIZED CTEs fix the order: check, timeout, wait, lease. */
#define PG_WAIT_LOCK(cte, col)                                                                                  \
    "WITH pre AS MATERIALIZED (SELECT " PG_OURS " AS ours),"                                                    \
    " timeout AS MATERIALIZED (SELECT pg_catalog.set_config('lock_timeout', $2, true) FROM pre WHERE ours),"    \
    " granted AS MATERIALIZED (SELECT pg_catalog.pg_advisory_lock($1) FROM timeout),"                          \
    " " cte " AS MATERIALIZED (SELECT CASE WHEN ours THEN EXISTS (SELECT 1 FROM granted) END AS " col " FROM pre)"

/* The prepared statements, named "<name>_<token>" so that two clients
 * whose setups a pooler sends to one server session never collide.  $1 is
 * always the key.  Every lock statement answers its boolean in the first
 * column, NULL when the statement ran in another client's (or no client's)
 * server session, and then it did nothing; the second column is the fence
 * (fencing=on), the fourth (where there is one) whether the name is held in
 * lease mode (the lock was then given back).  The *_set variants (and the
 * fencing forms, with an idle parameter other than '') also move
 * idle_session_timeout (the lease) in the same round trip, when the lock
 * statement succeeded.  The tries take (key, idle, name), the waits (key,
 * lock_timeout, idle, name), whether they use them or not.  The SQL is a
 * format: %1$s the token, %2$s the fence table, %3$s lease mode's default
 * table (the "leased" forms: prepared when that table exists). */
static const Oid types_key[1] = {PG_TYPE_INT8};
static const Oid types_key_text[2] = {PG_TYPE_INT8, PG_TYPE_TEXT};
static const Oid types_try[3] = {PG_TYPE_INT8, PG_TYPE_TEXT, PG_TYPE_BYTEA};
static const Oid types_wait[4] = {PG_TYPE_INT8, PG_TYPE_TEXT, PG_TYPE_TEXT, PG_TYPE_BYTEA};
static const Oid types_bump[2] = {PG_TYPE_INT8, PG_TYPE_BYTEA};

static const struct pg_statement {
    const char *name;
    int nparams;
    const Oid *types;
    int fencing; /* 0 both, 1 only with fencing=on, -1 only without */
    int leased;  /* 0 both, 1 only when the lease table exists, -1 only when it does not */
    const char *sql;
} pg_statements[] = {
    {"dlock_try", 3, types_try, -1, -1, "SELECT " PG_TRY_LOCK},
    {"dlock_try_set", 3, types_try, -1, -1,
     "SELECT got, NULL::bigint, CASE WHEN got THEN pg_catalog.set_config('idle_session_timeout', $2, false) END"
     " FROM (SELECT " PG_TRY_LOCK " AS got OFFSET 0) AS t"},
    {"dlock_try", 3, types_try, 1, -1,
     "WITH l AS MATERIALIZED (SELECT " PG_TRY_LOCK " AS got)" PG_FENCE_BUMP(
         "$3") " SELECT got, (SELECT fence FROM f)," PG_SET_IDLE("got", "$2") ", NULL::boolean" PG_DURABLE " FROM l"},
    {"dlock_wait", 4, types_wait, -1, -1, PG_WAIT_LOCK("l", "got") " SELECT got, NULL::bigint," PG_SET_IDLE("got", "$3") " FROM l"},
    {"dlock_wait", 4, types_wait, 1, -1,
     PG_WAIT_LOCK("l", "got") PG_FENCE_BUMP("$4") " SELECT got, (SELECT fence FROM f)," PG_SET_IDLE(
         "got", "$3") ", NULL::boolean" PG_DURABLE " FROM l"},
    /* The same, refused while lease mode's default table holds the name. */
    {"dlock_try", 3, types_try, -1, 1,
     "SELECT s = 1, NULL::bigint, NULL::text, s = 2 FROM (SELECT CASE WHEN " PG_OURS " THEN " PG_LEASE_STATE(
         "pg_catalog.pg_try_advisory_lock($1)", "$3") " END AS s OFFSET 0) AS t"},
    {"dlock_try_set", 3, types_try, -1, 1,
     "SELECT s = 1, NULL::bigint," PG_SET_IDLE("s = 1", "$2") ", s = 2 FROM (SELECT CASE WHEN " PG_OURS
     " THEN " PG_LEASE_STATE("pg_catalog.pg_try_advisory_lock($1)", "$3") " END AS s OFFSET 0) AS t"},
    {"dlock_try", 3, types_try, 1, 1,
     "WITH l AS MATERIALIZED (SELECT s = 1 AS got, s = 2 AS leased FROM (SELECT CASE WHEN " PG_OURS
     " THEN " PG_LEASE_STATE("pg_catalog.pg_try_advisory_lock($1)", "$3") " END AS s OFFSET 0) AS t)" PG_FENCE_BUMP(
         "$3") " SELECT got, (SELECT fence FROM f)," PG_SET_IDLE("got", "$2") ", leased" PG_DURABLE " FROM l"},
    {"dlock_wait", 4, types_wait, -1, 1,
     PG_WAIT_LOCK("t", "took") ", l AS MATERIALIZED (SELECT s = 1 AS got, s = 2 AS leased FROM (SELECT CASE WHEN"
                               " took IS NOT NULL THEN " PG_LEASE_STATE("took", "$4") " END AS s FROM t OFFSET 0) AS v)"
                               " SELECT got, NULL::bigint," PG_SET_IDLE("got", "$3") ", leased FROM l"},
    {"dlock_wait", 4, types_wait, 1, 1,
     PG_WAIT_LOCK("t", "took") ", l AS MATERIALIZED (SELECT s = 1 AS got, s = 2 AS leased FROM (SELECT CASE WHEN"
                               " took IS NOT NULL THEN " PG_LEASE_STATE("took", "$4") " END AS s FROM t OFFSET 0) AS v)"
                               PG_FENCE_BUMP("$4") " SELECT got, (SELECT fence FROM f)," PG_SET_IDLE(
                                   "got", "$3") ", leased" PG_DURABLE " FROM l"},
    {"dlock_check", 1, types_key, 0, 0, "SELECT CASE WHEN " PG_OURS " THEN " PG_HELD_BY_THIS_SESSION " END"},
    {"dlock_check_set", 2, types_key_text, 0, 0,
     "SELECT held, NULL::bigint, CASE WHEN held THEN pg_catalog.set_config('idle_session_timeout', $2, false) END"
     " FROM (SELECT CASE WHEN " PG_OURS " THEN " PG_HELD_BY_THIS_SESSION " END AS held OFFSET 0) AS s"},
    {"dlock_unlock", 1, types_key, 0, 0, "SELECT CASE WHEN " PG_OURS " THEN pg_catalog.pg_advisory_unlock($1) END"},
    {"dlock_unlock_set", 2, types_key_text, 0, 0,
     "SELECT released, NULL::bigint,"
     " CASE WHEN released IS NOT NULL THEN pg_catalog.set_config('idle_session_timeout', $2, false) END"
     " FROM (SELECT CASE WHEN " PG_OURS " THEN pg_catalog.pg_advisory_unlock($1) END AS released OFFSET 0) AS u"},
    /* A wait granted in a statement that then failed (a late cancel or
     * lock timeout, a serialization failure): the fence is bumped on its
     * own, while the lock is held. */
    {"dlock_bump", 2, types_bump, 1, 0,
     "WITH l AS MATERIALIZED (SELECT CASE WHEN " PG_OURS " THEN " PG_HELD_BY_THIS_SESSION
     " END AS got)" PG_FENCE_BUMP("$2") " SELECT got, (SELECT fence FROM f)" PG_DURABLE " FROM l"},
    /* A lock granted outside its statement: given back when leased. */
    {"dlock_leased", 2, types_bump, 0, 1,
     "SELECT CASE WHEN " PG_OURS " THEN leased END, CASE WHEN leased THEN pg_catalog.pg_advisory_unlock($1) END"
     " FROM (SELECT " PG_LEASED("$2") " AS leased OFFSET 0) AS s"},
    {"dlock_holder", 1, types_key, 0, 0,
     "SELECT a.application_name, pg_catalog.host(a.client_addr), l.pid,"
     " pg_catalog.to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
     " pg_catalog.to_char(a.state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
     " FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
     " WHERE " PG_KEY_MATCHES(
         "l.") " AND l.database ="
               " (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
               " LIMIT 1"},
};
#define PG_STATEMENT_COUNT (sizeof pg_statements / sizeof pg_statements[0])

static int statement_wanted(const pg_conn *c, const struct pg_statement *st)
{
    return (st->fencing == 0 || (st->fencing > 0) == (c->fencing != 0)) &&
           (st->leased == 0 || (st->leased > 0) == (c->leases_seen != 0));
}

/* The SQL of a statement for this session (malloc'ed), NULL: no memory. */
static char *statement_sql(const pg_conn *c, const struct pg_statement *st)
{
    return dlock__format_alloc(st->sql, c->token, c->table, PG_LEASE_TABLE);
}

/* --- sessions ------------------------------------------------------------------------ */

static void notice_receiver(void *arg, const PGresult *res)
{
    pg_conn *c = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    /* An error while idle is the server telling why it ends the session
     * (idle_session_timeout, pg_terminate_backend, shutdown).  Warnings such
     * as pg_advisory_unlock's "you don't own a lock" are expected: quiet. */
    if (severity &&
        (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0 || strcmp(severity, "ERROR") == 0))
        c->fatal_seen = 1;
}

/* The session is gone (or must go): every lock on it is lost. */
void dlock__pg_drop_session(pg_conn *c)
{
    if (!c->pg)
        return;
    if (c->cancel)
        PQfreeCancel(c->cancel);
    c->cancel = NULL;
    PQfinish(c->pg);
    c->pg = NULL;
    c->session_idle_ms = 0;
    c->fatal_seen = 0;
    c->lease_used = c->lease_prepared = 0;
    dlock__session_new(&c->session);
}

static int setup_failed(pg_conn *c, PGconn *pg, const PGresult *res)
{
    if (c->failure == PG_FAIL_TIMEOUT)
        return dlock__error(DLOCK_ECONN, "cannot set up the session: the server did not answer in time");
    PGconn *saved = c->pg;
    c->pg = pg; /* for libpq's message */
    /* No answer, or one without an SQLSTATE (libpq's own), is the
     * connection failing, as dlock__pg_outcome() judges it. */
    int lost = PQstatus(pg) != CONNECTION_OK || !res || dlock__pg_outcome(c, res) == OUTCOME_CONNECTION_LOST;
    int rc = dlock__pg_result_error(c, lost ? DLOCK_ECONN : DLOCK_EBACKEND, "cannot set up the session", res);
    c->pg = saved;
    return rc;
}

static char *settings_for(const pg_conn *c, PGconn *pg)
{
    const char *fmt =
        PQserverVersion(pg) >= PG_TRANSACTION_TIMEOUT_VERSION ? session_settings_17_sql : session_settings_sql;
    return dlock__format_alloc(fmt, c->token);
}

/* The settings' answer: the token is ours, else another client set this
 * server session up (a pooler shares it between clients). */
static int settings_took(const pg_conn *c, const PGresult *res)
{
    int n = PQnfields(res);
    if (PQntuples(res) < 1 || n < 1 || PQgetisnull(res, 0, n - 1) || strcmp(PQgetvalue(res, 0, n - 1), c->token) != 0)
        return dlock__pg_pooler_error();
    return DLOCK_OK;
}

#ifdef LIBPQ_HAS_PIPELINING
/* Settings and every prepared statement in one round trip (a pipeline), so
 * that pg_stat_activity shows each statement's own text. */
static int setup_session(pg_conn *c, PGconn *pg)
{
    char *settings = settings_for(c, pg);
    int sent = settings && PQenterPipelineMode(pg) && PQsendQueryParams(pg, settings, 0, NULL, NULL, NULL, NULL, 0);
    free(settings);
    size_t count = 1;
    for (size_t i = 0; sent && i < PG_STATEMENT_COUNT; i++) {
        const struct pg_statement *st = &pg_statements[i];
        if (!statement_wanted(c, st))
            continue;
        char name[PG_STMT_NAME_MAX];
        dlock__pg_stmt_name(c, st->name, name);
        char *sql = statement_sql(c, st);
        sent = sql && PQsendPrepare(pg, name, sql, st->nparams, st->types);
        free(sql);
        count++;
    }
    if (!sent || !PQpipelineSync(pg))
        return setup_failed(c, pg, NULL);
    int rc = DLOCK_OK;
    for (size_t i = 0; i < count; i++) {
        PGresult *res = dlock__pg_next_result(c, pg);
        ExecStatusType st = PQresultStatus(res);
        if (rc == DLOCK_OK && (!res || (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)))
            rc = setup_failed(c, pg, res);
        else if (rc == DLOCK_OK && i == 0)
            rc = settings_took(c, res);
        PQclear(res);
        if (!res)
            return rc;
        while ((res = dlock__pg_next_result(c, pg))) /* the NULL that ends each command */
            PQclear(res);
        if (c->failure != PG_FAIL_NONE)
            return rc == DLOCK_OK ? setup_failed(c, pg, NULL) : rc;
    }
    PGresult *sync = dlock__pg_next_result(c, pg);
    if (PQresultStatus(sync) != PGRES_PIPELINE_SYNC && rc == DLOCK_OK)
        rc = setup_failed(c, pg, sync);
    PQclear(sync);
    if (!PQexitPipelineMode(pg) && rc == DLOCK_OK)
        rc = setup_failed(c, pg, NULL);
    return rc;
}
#else
/* libpq before 14: the same in one simple-query batch of SQL PREPAREs. */
static int setup_session(pg_conn *c, PGconn *pg)
{
    char *settings = settings_for(c, pg);
    if (!settings)
        return dlock__oom();
    size_t len = strlen(settings) + 2;
    for (size_t i = 0; i < PG_STATEMENT_COUNT; i++)
        len += strlen(pg_statements[i].sql) * 3 + PG_STMT_NAME_MAX + 320;
    char *batch = malloc(len);
    if (!batch) {
        free(settings);
        return dlock__oom();
    }
    size_t used = (size_t)snprintf(batch, len, "%s;", settings);
    free(settings);
    for (size_t i = 0; i < PG_STATEMENT_COUNT; i++) {
        const struct pg_statement *st = &pg_statements[i];
        if (!statement_wanted(c, st))
            continue;
        char name[PG_STMT_NAME_MAX], types[64] = "";
        dlock__pg_stmt_name(c, st->name, name);
        for (int k = 0; k < st->nparams; k++)
            snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s", k ? ", " : "(",
                     st->types[k] == PG_TYPE_INT8    ? "bigint"
                     : st->types[k] == PG_TYPE_BYTEA ? "bytea"
                                                     : "text");
        char *sql = statement_sql(c, st);
        if (!sql) {
            free(batch);
            return dlock__oom();
        }
        used += (size_t)snprintf(batch + used, len - used, "PREPARE %s%s%s AS %s;", name, types, st->nparams ? ")" : "",
                                 sql);
        free(sql);
    }
    int sent = PQsendQuery(pg, batch);
    free(batch);
    int rc = sent ? DLOCK_OK : setup_failed(c, pg, NULL);
    PGresult *res;
    int first = 1;
    while (sent && (res = dlock__pg_next_result(c, pg))) {
        ExecStatusType st = PQresultStatus(res);
        if (rc == DLOCK_OK && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            rc = setup_failed(c, pg, res);
        else if (rc == DLOCK_OK && first)
            rc = settings_took(c, res);
        first = 0;
        PQclear(res);
    }
    if (rc == DLOCK_OK && c->failure != PG_FAIL_NONE)
        rc = setup_failed(c, pg, NULL);
    return rc;
}
#endif

/* Drive a connection started with PQconnectStartParams to its end, no later
 * than the call's deadline or the URL's connect_timeout. */
static int connect_by_deadline(pg_conn *c, PGconn *pg)
{
    int64_t start = dlock__now_ms(), until = c->deadline_ms;
    if (c->connect_timeout_ms > 0 && start + c->connect_timeout_ms < until)
        until = start + c->connect_timeout_ms;
    PostgresPollingStatusType st = PQstatus(pg) == CONNECTION_BAD ? PGRES_POLLING_FAILED : PGRES_POLLING_WRITING;
    for (;;) {
        if (st == PGRES_POLLING_OK)
            return DLOCK_OK;
        if (st == PGRES_POLLING_FAILED)
            return dlock__pg_libpq_error(c, DLOCK_ECONN, "cannot connect", PQerrorMessage(pg));
        int r = dlock__pg_wait_socket(PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, until, -1);
        if (r == 0)
            return dlock__error(DLOCK_ECONN, "cannot connect: no answer within %lld ms", (long long)(until - start));
        if (r < 0)
            return dlock__error(DLOCK_ECONN, "cannot connect: poll: %s", strerror(errno));
        st = PQconnectPoll(pg);
    }
}

/* What the server must be: 14 or later, and not a read-only standby. */
static int check_server(const pg_conn *c, PGconn *pg)
{
    int v = PQserverVersion(pg);
    /* Lease mode keeps no session state: any server with ON CONFLICT. */
    if (v < (c->lease ? 90500 : PG_MIN_SERVER_VERSION))
        return dlock__error(DLOCK_ENOTSUP,
                            "server version %d.%d is too old: libdlock needs PostgreSQL 14 or"
                            " later, whose idle_session_timeout ends the session of a silent lock holder",
                            v / 10000, v >= 100000 ? v % 10000 : v / 100 % 100);
    const char *standby = PQparameterStatus(pg, "in_hot_standby");
    if (standby && strcmp(standby, "on") == 0)
        return dlock__error(DLOCK_EBACKEND, "the server is a read-only standby: its advisory locks are not"
                                            " shared with the primary or other standbys; connect to the primary"
                                            " (e.g. target_session_attrs=read-write)");
    return DLOCK_OK;
}

static PGconn *start_connect(pg_conn *c)
{
    const char *keywords[10], *values[10];
    int n = 0;
    keywords[n] = "fallback_application_name", values[n++] = c->appname;
    keywords[n] = "keepalives", values[n++] = "1";
    keywords[n] = "keepalives_idle", values[n++] = PG_KEEPALIVES_IDLE_S;
    keywords[n] = "keepalives_interval", values[n++] = PG_KEEPALIVES_INTERVAL_S;
    keywords[n] = "keepalives_count", values[n++] = PG_KEEPALIVES_COUNT;
    keywords[n] = "tcp_user_timeout", values[n++] = PG_TCP_USER_TIMEOUT_MS;
    /* Last, so that what the URL says wins over the defaults above. */
    keywords[n] = "dbname", values[n++] = c->url;
    keywords[n] = NULL, values[n] = NULL;
    return PQconnectStartParams(keywords, values, 1);
}

/* Session mode: does lease mode's default table exist here?  Then the lock
 * statements refuse a name that it holds (issue 23).  Looked for at each
 * new session (a table made or dropped since is seen); never created by
 * session mode. */
static int look_for_leases(pg_conn *c)
{
    PGresult *res =
        dlock__pg_exec(c, "SELECT pg_catalog.to_regclass('" PG_LEASE_TABLE "') IS NOT NULL", 0, NULL, NULL, NULL, NULL);
    static const struct pg_what setting_up = {DLOCK_ECONN, "cannot set up the session", "cannot set up the session",
                                              0};
    int rc = dlock__pg_answer(c, res, &setting_up, NULL);
    if (rc == DLOCK_OK)
        c->leases_seen = dlock__pg_first_bool(res);
    PQclear(res);
    return rc;
}

int dlock__pg_open_session(pg_conn *c)
{
    PGconn *pg = start_connect(c);
    if (!pg)
        return dlock__oom();
    int rc = connect_by_deadline(c, pg);
    if (rc == DLOCK_OK)
        rc = check_server(c, pg);
    /* Non-blocking: every send and receive goes through pg_ready(), which
     * keeps the deadline. */
    if (rc == DLOCK_OK && PQsetnonblocking(pg, 1) != 0)
        rc = dlock__pg_libpq_error(c, DLOCK_ECONN, "cannot connect", PQerrorMessage(pg));
    if (rc != DLOCK_OK) {
        PQfinish(pg);
        return rc;
    }
    /* libpq marks its socket close-on-exec; make sure, so that a child
     * process never keeps a lock alive. */
    int fd = PQsocket(pg);
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC))
        (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    c->fatal_seen = 0;
    PQsetNoticeReceiver(pg, notice_receiver, c);

    /* The token: session mode's proof of its server session, and the
     * suffix of prepared statements' names in both modes. */
    rc = dlock__random_hex(c->token, PG_TOKEN_HEX / 2);
    c->lease_used = c->lease_prepared = 0;
    /* Lease mode: nothing to set up, every statement stands alone. */
    if (!c->lease) {
        /* The fence table must exist before the statements are prepared;
         * which lock statements to prepare depends on the lease table.  A
         * connection that breaks meanwhile is dropped (and finished) there. */
        c->pg = pg;
        if (rc == DLOCK_OK && c->fencing && !c->table_ready)
            rc = dlock__pg_create_table(c);
        if (rc == DLOCK_OK)
            rc = look_for_leases(c);
        if (!c->pg)
            return rc;
        c->pg = NULL;
        if (rc == DLOCK_OK)
            rc = setup_session(c, pg);
    }
    if (rc != DLOCK_OK) {
        PQfinish(pg);
        return rc;
    }
    c->cancel = PQgetCancel(pg);
    if (!c->cancel) {
        PQfinish(pg);
        return dlock__oom();
    }
    c->pg = pg;
    c->session_idle_ms = 0;
    c->fatal_seen = 0;
    return DLOCK_OK;
}

/* Without a round trip: has the server ended the session while we were
 * not looking?  It says so (a FATAL message) and closes the socket. */
int dlock__pg_session_usable(pg_conn *c)
{
    if (!c->pg || PQstatus(c->pg) != CONNECTION_OK || c->fatal_seen)
        return 0;
    int fd = PQsocket(c->pg);
    for (int round = 0; round < 16; round++) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 1;
        if (!PQconsumeInput(c->pg))
            return 0;
        (void)PQisBusy(c->pg); /* parses what came: a FATAL goes to notice_receiver */
        PGnotify *note;
        while ((note = PQnotifies(c->pg)))
            PQfreemem(note);
        if (PQstatus(c->pg) != CONNECTION_OK || c->fatal_seen)
            return 0;
    }
    return 1;
}

int dlock__pg_ensure_session(pg_conn *c, int *fresh)
{
    if (dlock__pg_session_usable(c))
        return DLOCK_OK;
    if (fresh)
        *fresh = 1;
    dlock__pg_drop_session(c);
    return dlock__pg_open_session(c);
}

/* The connection failed in the middle of `what` (or the server did not
 * answer in time): say so, then drop the session. */
int dlock__pg_connection_lost(pg_conn *c, int status, const char *what)
{
    int rc = c->failure == PG_FAIL_TIMEOUT
                 ? dlock__error(status,
                                "the server did not answer before the deadline: the"
                                " session was dropped%s",
                                status == DLOCK_ELOST ? ", and the lock with it" : "")
                 : dlock__pg_libpq_error(c, status, what, c->pg ? PQerrorMessage(c->pg) : "no connection");
    dlock__pg_drop_session(c);
    return rc;
}

/* --- connect, disconnect ------------------------------------------------------------- */

/* Connection default; a connect_timeout in the URL (or PGCONNECT_TIMEOUT) wins. */
#define PG_CONNECT_TIMEOUT_MS 10000

static void conn_free(pg_conn *c)
{
    dlock__pg_drop_session(c);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    dlock__pg_secret_free(c->url);
    dlock__pg_secret_free(c->password);
    free(c);
}

/* What the connection needs from the URL, through libpq's own parser: the
 * password (to scrub it out of messages), the ports and the values of the
 * options libpq checks only when it connects (checked here so that a typo
 * is DLOCK_EINVAL, not a connection failure), connect_timeout. */
static int read_url_options(const char *url, char **password, int64_t *connect_timeout_ms)
{
    char *parse_error = NULL;
    PQconninfoOption *options = PQconninfoParse(url, &parse_error);
    if (!options) {
        if (!parse_error)
            return dlock__oom();
        char text[PG_ERRTEXT_MAX];
        dlock__pg_scrub_parse_error(text, sizeof text, parse_error, url);
        PQfreemem(parse_error);
        return dlock__error(DLOCK_EINVAL, "malformed PostgreSQL URL: %s", text);
    }
    int ports_ok = 1;
    char bad_option[64] = "";
    const char *bad_expects = NULL;
    const char *env_timeout = getenv("PGCONNECT_TIMEOUT");
    *connect_timeout_ms = env_timeout ? strtol(env_timeout, NULL, 10) * 1000 : PG_CONNECT_TIMEOUT_MS;
    *password = NULL;
    for (PQconninfoOption *o = options; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0 && o->val[0] && !*password) /* each keyword comes once */
            *password = strdup(o->val);
        else if (strcmp(o->keyword, "port") == 0)
            ports_ok = dlock__pg_valid_ports(o->val);
        else if (strcmp(o->keyword, "connect_timeout") == 0)
            *connect_timeout_ms = strtol(o->val, NULL, 10) * 1000;
        const char *expects = dlock__pg_option_expects(o->keyword, o->val);
        if (expects && !bad_expects) {
            dlock__copy_text(bad_option, sizeof bad_option, o->keyword);
            bad_expects = expects;
        }
    }
    PQconninfoFree(options);
    if (ports_ok && !bad_expects)
        return DLOCK_OK;
    dlock__pg_secret_free(*password);
    *password = NULL;
    if (!ports_ok)
        return dlock__error(DLOCK_EINVAL, "malformed PostgreSQL URL: bad port number");
    /* The option's name and what it takes, never its value. */
    return dlock__error(DLOCK_EINVAL, "malformed PostgreSQL URL: bad value for %s (expected: %s)", bad_option,
                        bad_expects);
}

/* A connection for `url` (already prepared for libpq), without a session. */
static int conn_new(const char *url, pg_conn **out)
{
    char *password = NULL;
    int64_t connect_timeout_ms = 0;
    int rc = read_url_options(url, &password, &connect_timeout_ms);
    if (rc != DLOCK_OK)
        return rc;
    pg_conn *c = calloc(1, sizeof *c);
    if (!c) {
        dlock__pg_secret_free(password);
        return dlock__oom();
    }
    c->password = password;
    /* libpq: 0 or less waits without limit; less than 2 s means 2 s. */
    c->connect_timeout_ms = connect_timeout_ms <= 0 ? 0 : connect_timeout_ms < 2000 ? 2000 : connect_timeout_ms;
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_init(&c->cancel_requested, 0);
    c->url = strdup(url);
    if (!c->url || c->wake_fd < 0) {
        rc = c->wake_fd < 0 ? dlock__error(DLOCK_ENOMEM, "eventfd: %s", strerror(errno)) : dlock__oom();
        conn_free(c);
        return rc;
    }
    /* "dlock host=<host> pid=<pid>", the host cut so that the pid stays. */
    char pid_part[32];
    snprintf(pid_part, sizeof pid_part, " pid=%ld", (long)getpid());
    int host_room = PG_APPNAME_MAX - (int)strlen("dlock host=") - (int)strlen(pid_part);
    snprintf(c->appname, sizeof c->appname, "dlock host=%.*s%s", host_room, dlock__hostname(), pid_part);
    *out = c;
    return DLOCK_OK;
}

int dlock__pg_connect(const char *url, struct dlock_conn **conn_out)
{
    int rc = dlock__libpq_load();
    if (rc != DLOCK_OK)
        return rc;
    struct dlock_url_options opts = {0};
    char *rest = NULL;
    rc = dlock__url_options(url, &opts, &rest);
    if (rc == DLOCK_OK)
        rc = dlock__url_options_only(&opts, DLOCK_OPT_MODE | DLOCK_OPT_TABLE | DLOCK_OPT_FENCING, "postgresql");
    char *prepared = NULL;
    if (rc == DLOCK_OK)
        rc = dlock__pg_url_prepare(rest, &prepared);
    dlock__pg_secret_free(rest);
    if (rc != DLOCK_OK) {
        dlock__url_options_free(&opts);
        return rc;
    }
    pg_conn *c = NULL; /* set on success only */
    rc = conn_new(prepared, &c);
    dlock__pg_secret_free(prepared);
    if (!c) {
        dlock__url_options_free(&opts);
        return rc;
    }
    c->lease = opts.mode == DLOCK_MODE_LEASE;
    c->fencing = !c->lease && opts.fencing == DLOCK_FENCING_ON;
    const char *table = opts.table ? opts.table : c->lease ? "dlock_leases" : "dlock_fences";
    snprintf(c->table, sizeof c->table, "\"%s\"", table);
    dlock__url_options_free(&opts);
    dlock__pg_begin_call(c, INT64_MAX);
    rc = dlock__pg_open_session(c);
    if (rc != DLOCK_OK) {
        conn_free(c);
        return rc;
    }
    *conn_out = &c->base;
    return DLOCK_OK;
}

void dlock__pg_disconnect(struct dlock_conn *conn)
{
    /* Ending the session releases every advisory lock still on it. */
    if (conn)
        conn_free(dlock__pg_of(conn));
}
