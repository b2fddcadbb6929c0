/*
 * PostgreSQL backend: a session-level advisory lock on a 64-bit key.
 *
 * The key is the first 8 bytes of SHA-256(name), big-endian and signed, so
 * that plain SQL can take the same lock (docs/postgresql.md).  The lease is
 * the session itself: the server ends a session that stays idle longer than
 * idle_session_timeout, which we keep at the smallest TTL of the locks the
 * session holds, and every statement we send resets that idle timer.  Ending
 * the session releases its advisory locks.
 *
 * Steady state costs one round trip per acquire, extend and release: the
 * statements are prepared once per session (one batch right after connect),
 * and a changed idle_session_timeout rides along inside the lock statement
 * itself (set_config) instead of costing a SET of its own.
 *
 * A session that broke takes its locks with it: every lock state carries the
 * generation of the session it was taken on, extend and release of a lock
 * from an earlier generation return DLOCK_ELOST, and the next acquire opens
 * a new session.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "libpq_api.h"
#include "postgresql.h"
#include "session.h"

/* idle_session_timeout appeared in PostgreSQL 14: without it a stopped
 * holder would keep its lock forever, so older servers are refused. */
#define PG_MIN_SERVER_VERSION 140000
/* The server keeps NAMEDATALEN - 1 bytes of application_name. */
#define PG_APPNAME_MAX 63
/* While a cancel is pending, ask again this often: a cancel request that
 * reaches the server before it starts executing our statement is dropped. */
#define PG_CANCEL_RETRY_MS 250
/* A cancel that the server does not act on within this long (its process
 * is stopped, say) is given up locally: the session is dropped. */
#define PG_CANCEL_GIVEUP_MS 1000
/* A wait whose granting round trip took at most TTL / this starts the
 * lease at its send time; a longer one is confirmed by one more round trip. */
#define PG_CONFIRM_FRACTION 10
/* transaction_timeout appeared in PostgreSQL 17. */
#define PG_TRANSACTION_TIMEOUT_VERSION 170000
#define PG_ERRTEXT_MAX 400

/* Connection defaults; a value given in the URL wins (it comes later). */
#define PG_CONNECT_TIMEOUT_MS 10000
#define PG_KEEPALIVES_IDLE_S "5"
#define PG_KEEPALIVES_INTERVAL_S "2"
#define PG_KEEPALIVES_COUNT "3"
#define PG_TCP_USER_TIMEOUT_MS "10000"


int64_t dlock__pg_key(const char *name, size_t len)
{
    unsigned char digest[32];
    dlock__sha256(name, len, digest);
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits = bits << 8 | digest[i];
    /* Two's complement without relying on implementation-defined conversion. */
    if (bits <= (uint64_t)INT64_MAX)
        return (int64_t)bits;
    return -(int64_t)(~bits) - 1;
}

/* --- SQL -------------------------------------------------------------------------- */

/* How pg_locks shows a session advisory lock on a bigint key: classid is
 * its high 32 bits, objid its low 32 bits, objsubid 1. */
#define PG_KEY_MATCHES(alias)                                                  \
    alias "locktype = 'advisory' AND " alias "objsubid = 1 AND " alias "granted" \
          " AND " alias "classid = (($1 >> 32) & 4294967295)::oid"             \
          " AND " alias "objid = ($1 & 4294967295)::oid"

#define PG_HELD_BY_THIS_SESSION                                                \
    "EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE " PG_KEY_MATCHES("")      \
    " AND pid = pg_catalog.pg_backend_pid())"

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
static const char session_settings_sql[] = PG_SESSION_SETTINGS;
/* PostgreSQL 17: a role's or database's transaction_timeout would end a
 * long wait (one statement, so one transaction) and the session with it. */
static const char session_settings_17_sql[] =
    PG_SESSION_SETTINGS ", pg_catalog.set_config('transaction_timeout', '0', false)";

#define PG_TYPE_INT8 20
#define PG_TYPE_TEXT 25

/* The prepared statements.  $1 is always the key.  The *_set variants also
 * move idle_session_timeout (the lease) to their last parameter in the same
 * round trip, and only when the lock statement succeeded. */
static const struct pg_statement {
    const char *name;
    int nparams;
    const char *sql;
} pg_statements[] = {
    {"dlock_try", 1, "SELECT pg_catalog.pg_try_advisory_lock($1)"},
    {"dlock_try_set", 2,
     "SELECT got, CASE WHEN got THEN pg_catalog.set_config('idle_session_timeout', $2, false) END"
     " FROM pg_catalog.pg_try_advisory_lock($1) AS t(got)"},
    /* lock_timeout is set for this statement only (is_local); the
     * MATERIALIZED CTEs fix the order: timeout, then wait, then lease. */
    {"dlock_wait", 3,
     "WITH timeout AS MATERIALIZED (SELECT pg_catalog.set_config('lock_timeout', $2, true)),"
     " granted AS MATERIALIZED (SELECT pg_catalog.pg_advisory_lock($1) FROM timeout)"
     " SELECT true, pg_catalog.set_config('idle_session_timeout', $3, false) FROM granted"},
    {"dlock_check", 1, "SELECT " PG_HELD_BY_THIS_SESSION},
    {"dlock_check_set", 2,
     "SELECT held, CASE WHEN held THEN pg_catalog.set_config('idle_session_timeout', $2, false) END"
     " FROM (SELECT " PG_HELD_BY_THIS_SESSION " AS held OFFSET 0) AS s"},
    {"dlock_unlock", 1, "SELECT pg_catalog.pg_advisory_unlock($1)"},
    {"dlock_unlock_set", 2,
     "SELECT released, pg_catalog.set_config('idle_session_timeout', $2, false)"
     " FROM pg_catalog.pg_advisory_unlock($1) AS t(released)"},
    {"dlock_holder", 1,
     "SELECT a.application_name, pg_catalog.host(a.client_addr), l.pid,"
     " pg_catalog.to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
     " pg_catalog.to_char(a.state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
     " FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid"
     " WHERE " PG_KEY_MATCHES("l.") " AND l.database ="
     " (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())"
     " LIMIT 1"},
};
#define PG_STATEMENT_COUNT (sizeof pg_statements / sizeof pg_statements[0])

/* --- state --------------------------------------------------------------------------- */

typedef struct pg_lock {
    /* First: the core passes this (lib/internal.h); lib/session.c keeps
     * its links, the generation it was taken in and its ttl_ms. */
    struct dlock_held base;
    int64_t key;
} pg_lock;

/* Why a round trip ended without a result. */
enum pg_failure {
    PG_FAIL_NONE,
    PG_FAIL_CONN,    /* the connection broke */
    PG_FAIL_TIMEOUT, /* no answer before the call's deadline */
    PG_FAIL_CANCEL   /* a cancel that the server did not act on in time */
};

typedef struct pg_conn {
    struct dlock_conn base; /* first */
    char *url;           /* handed to libpq as is; never shown */
    char *password;      /* only to scrub it out of messages */
    char appname[PG_APPNAME_MAX + 1];
    PGconn *pg;          /* NULL: no session (the next acquire opens one) */
    PGcancel *cancel;    /* used by the waiting thread itself */
    struct dlock_session session; /* the locks on it, the lease, the generation */
    uint32_t session_idle_ms; /* idle_session_timeout in force, 0 none */
    int fatal_seen;      /* the server announced it is ending the session */
    int wake_fd;         /* eventfd: dlock_cancel() wakes a waiting acquire */
    atomic_int cancel_requested;
    int64_t deadline_ms;       /* of the round trip in progress (dlock__now_ms) */
    int64_t connect_timeout_ms; /* the URL's connect_timeout (or the default); 0 none */
    enum pg_failure failure;   /* why the last round trip got no result */
} pg_conn;

/* The one place that recovers the backend's own structs from the bases. */
static pg_conn *pg_of(struct dlock_conn *conn)
{
    return (pg_conn *)conn;
}

static pg_lock *pg_lock_of(struct dlock_held *held)
{
    return (pg_lock *)held;
}

/* --- messages ------------------------------------------------------------------------ */

/* libpq text made fit for dlock_last_error(): one line, and no password
 * (libpq does not print it, but we do not rely on that). */
static void clean_text(char *dst, size_t dstlen, const char *src, const char *secret)
{
    size_t secret_len = secret ? strlen(secret) : 0;
    size_t o = 0;
    if (!dstlen)
        return;
    for (const char *p = src ? src : ""; *p && o + 1 < dstlen;) {
        if (secret_len && strncmp(p, secret, secret_len) == 0) {
            for (const char *r = "***"; *r && o + 1 < dstlen; r++)
                dst[o++] = *r;
            p += secret_len;
        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            if (o > 0 && dst[o - 1] != ' ')
                dst[o++] = ' ';
            p++;
        } else {
            dst[o++] = *p++;
        }
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
    /* PGPASSWORD too, in case libpq ever echoes it. */
    const char *env_password = getenv("PGPASSWORD");
    if (env_password && *env_password && (!secret || strcmp(env_password, secret) != 0) &&
        strstr(dst, env_password)) {
        char copy[PG_ERRTEXT_MAX + 1];
        dlock__copy_text(copy, sizeof copy, dst);
        clean_text(dst, dstlen, copy, env_password);
    }
}

/* The password as a URL may carry it, each piece raw and percent-decoded:
 * the userinfo after its first ':' (up to the last '@' before the query),
 * and every query parameter whose name, percent-decoded and in any letter
 * case, is "password".  For scrubbing messages about a URL that libpq could
 * not parse.  No length limit. */
#define PG_SECRET_PIECES 16
typedef struct url_secrets {
    char *piece[PG_SECRET_PIECES];
    int count;
} url_secrets;

static void secrets_add(url_secrets *s, const char *raw, size_t len)
{
    if (len == 0 || s->count + 2 > PG_SECRET_PIECES)
        return;
    char *copy = strndup(raw, len), *decoded = NULL;
    if (copy)
        s->piece[s->count++] = copy;
    if (dlock__percent_decode(raw, len, &decoded) == DLOCK_OK && decoded[0])
        s->piece[s->count++] = decoded;
    else
        free(decoded);
}

static void secrets_free(url_secrets *s)
{
    for (int i = 0; i < s->count; i++) {
        memset(s->piece[i], 0, strlen(s->piece[i]));
        free(s->piece[i]);
    }
    s->count = 0;
}

static int is_password_key(const char *key, size_t len)
{
    char *decoded = NULL;
    int yes = dlock__percent_decode(key, len, &decoded) == DLOCK_OK && strcasecmp(decoded, "password") == 0;
    free(decoded);
    return yes;
}

static void url_secrets_find(const char *url, url_secrets *s)
{
    s->count = 0;
    const char *rest = strstr(url, "://");
    rest = rest ? rest + 3 : url;
    size_t end = strcspn(rest, "?#");
    const char *at = NULL;
    for (const char *p = rest; p < rest + end; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    if (colon)
        secrets_add(s, colon + 1, (size_t)(at - colon - 1));
    for (const char *p = rest[end] == '?' ? rest + end : NULL; p && *p && *p != '#'; p = strchr(p + 1, '&')) {
        const char *key = p + 1;
        size_t len = strcspn(key, "&#");
        const char *eq = memchr(key, '=', len);
        if (eq && is_password_key(key, (size_t)(eq - key)))
            secrets_add(s, eq + 1, len - (size_t)(eq - key) - 1);
    }
    dlock__clear_error(); /* a bad escape above is libpq's to report */
}

static int overlaps(const char *piece, const url_secrets *s)
{
    for (int i = 0; piece[0] && i < s->count; i++)
        if (strstr(piece, s->piece[i]) || strstr(s->piece[i], piece))
            return 1;
    return 0;
}

/* A malformed-URL message from libpq quotes pieces of the URL: keep those
 * that show what is wrong (a parameter name, a port), drop any that could
 * be (part of) the password. */
static void scrub_parse_error(char *dst, size_t dstlen, const char *src, const char *url)
{
    url_secrets secrets;
    url_secrets_find(url, &secrets);
    size_t o = 0;
    for (const char *p = src; *p && o + 1 < dstlen;) {
        const char *close = *p == '"' ? strchr(p + 1, '"') : NULL;
        if (close) {
            char piece[256];
            snprintf(piece, sizeof piece, "%.*s", (int)(close - p - 1), p + 1);
            int risky = (size_t)(close - p - 1) >= sizeof piece || strchr(piece, '@') || overlaps(piece, &secrets);
            const char *shown = risky ? "..." : piece;
            int n = snprintf(dst + o, dstlen - o, "\"%s\"", shown);
            o = n < 0 || (size_t)n >= dstlen - o ? dstlen - 1 : o + (size_t)n;
            p = close + 1;
        } else {
            dst[o++] = *p == '\n' ? ' ' : *p;
            p++;
        }
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
    secrets_free(&secrets);
}

static int libpq_error(pg_conn *c, int status, const char *what, const char *libpq_text)
{
    char text[PG_ERRTEXT_MAX];
    clean_text(text, sizeof text, libpq_text, c->password);
    return dlock__error(status, "%s: %s", what, text[0] ? text : "unknown error");
}

static int result_error(pg_conn *c, int status, const char *what, const PGresult *res)
{
    const char *message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!message)
        return libpq_error(c, status, what, c->pg ? PQerrorMessage(c->pg) : "no connection");
    char text[PG_ERRTEXT_MAX];
    clean_text(text, sizeof text, message, c->password);
    return dlock__error(status, "%s: %s (SQLSTATE %s)", what, text,
                        sqlstate ? sqlstate : "?");
}

/* --- round trips with a deadline ----------------------------------------------------- */

/* The deadline of the round trips of one backend call.  Only the wait itself
 * may be unbounded; everything around it gets DLOCK_CALL_TIMEOUT_MS at most. */
static void begin_call(pg_conn *c, int64_t deadline_ms)
{
    int64_t bound = dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS;
    c->deadline_ms = deadline_ms < bound ? deadline_ms : bound;
    c->failure = PG_FAIL_NONE;
}

/* Extend and release: bounded by the lease itself, however long (a
 * heartbeat that cannot finish before the lease ends has failed). */
static void lease_call(pg_conn *c, int64_t deadline_ms)
{
    c->deadline_ms = deadline_ms;
    c->failure = PG_FAIL_NONE;
}

static int round_trip_failed(pg_conn *c, enum pg_failure why)
{
    c->failure = why;
    return -1;
}

/* poll() `fd` for `events` (and wake_fd when >= 0, which is drained) until
 * until_ms (INT64_MAX: no limit).  >0 ready or woken, 0 the time is up, <0
 * an error. */
static int wait_socket(int fd, short events, int64_t until_ms, int wake_fd)
{
    for (;;) {
        int timeout = -1;
        if (until_ms != INT64_MAX) {
            int64_t left = until_ms - dlock__now_ms();
            if (left <= 0)
                return 0;
            timeout = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd p[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
        int r = poll(p, wake_fd >= 0 ? 2 : 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0 && wake_fd >= 0 && (p[1].revents & POLLIN)) {
            uint64_t count;
            (void)!read(wake_fd, &count, sizeof count);
        }
        return r;
    }
}

/* While a cancel is pending: send PQcancel (again every PG_CANCEL_RETRY_MS:
 * one that reaches the server before our statement does is dropped), and
 * give up locally after PG_CANCEL_GIVEUP_MS.  Returns when to look again,
 * or 0 to give up. */
static int64_t pursue_cancel(pg_conn *c, int64_t now, int64_t *first_ms, int64_t *next_ms, int *cancel_sent)
{
    if (!*first_ms)
        *first_ms = now;
    if (now - *first_ms >= PG_CANCEL_GIVEUP_MS)
        return 0;
    if (now >= *next_ms) {
        char errbuf[256];
        (void)PQcancel(c->cancel, errbuf, sizeof errbuf);
        *cancel_sent = 1;
        *next_ms = now + PG_CANCEL_RETRY_MS;
    }
    int64_t giveup = *first_ms + PG_CANCEL_GIVEUP_MS;
    return *next_ms < giveup ? *next_ms : giveup;
}

/* Flush what was sent and read until the result in progress is complete.
 * 0: PQgetResult() will not block.  -1: c->failure says why not (the
 * connection broke, the deadline passed, or, when `cancelable`, a cancel
 * went unanswered). */
static int pg_ready(pg_conn *c, PGconn *pg, int cancelable, int *cancel_sent)
{
    int64_t cancel_first_ms = 0, cancel_next_ms = 0;
    for (;;) {
        int unsent = PQflush(pg);
        if (unsent < 0 || !PQconsumeInput(pg))
            return round_trip_failed(c, PG_FAIL_CONN);
        if (!PQisBusy(pg))
            return 0;
        if (PQstatus(pg) != CONNECTION_OK)
            return round_trip_failed(c, PG_FAIL_CONN);
        int64_t now = dlock__now_ms(), until = c->deadline_ms;
        if (now >= until)
            return round_trip_failed(c, PG_FAIL_TIMEOUT);
        if (cancelable && atomic_load(&c->cancel_requested)) {
            int64_t look = pursue_cancel(c, now, &cancel_first_ms, &cancel_next_ms, cancel_sent);
            if (!look)
                return round_trip_failed(c, PG_FAIL_CANCEL);
            if (look < until)
                until = look;
        }
        short events = (short)(POLLIN | (unsent ? POLLOUT : 0));
        if (wait_socket(PQsocket(pg), events, until, c->wake_fd) < 0)
            return round_trip_failed(c, PG_FAIL_CONN);
    }
}

/* The next result of what is in flight; NULL at the end of a command, or on
 * a failure (then c->failure is set). */
static PGresult *next_result(pg_conn *c, PGconn *pg)
{
    int cancel_sent = 0;
    return pg_ready(c, pg, 0, &cancel_sent) == 0 ? PQgetResult(pg) : NULL;
}

/* --- sessions ------------------------------------------------------------------------ */

static void notice_receiver(void *arg, const PGresult *res)
{
    pg_conn *c = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    /* An error while idle is the server telling why it ends the session
     * (idle_session_timeout, pg_terminate_backend, shutdown).  Warnings such
     * as pg_advisory_unlock's "you don't own a lock" are expected: quiet. */
    if (severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0 ||
                     strcmp(severity, "ERROR") == 0))
        c->fatal_seen = 1;
}

/* The session is gone (or must go): every lock on it is lost. */
static void drop_session(pg_conn *c)
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
    dlock__session_new(&c->session);
}

static int setup_failed(pg_conn *c, PGconn *pg, const PGresult *res)
{
    if (c->failure == PG_FAIL_TIMEOUT)
        return dlock__error(DLOCK_ECONN, "cannot set up the session: the server did not answer in time");
    PGconn *saved = c->pg;
    c->pg = pg; /* for libpq's message */
    int rc = result_error(c, PQstatus(pg) == CONNECTION_OK ? DLOCK_EBACKEND : DLOCK_ECONN,
                          "cannot set up the session", res);
    c->pg = saved;
    return rc;
}

static const char *settings_for(PGconn *pg)
{
    return PQserverVersion(pg) >= PG_TRANSACTION_TIMEOUT_VERSION ? session_settings_17_sql : session_settings_sql;
}

#ifdef LIBPQ_HAS_PIPELINING
/* Settings and every prepared statement in one round trip (a pipeline), so
 * that pg_stat_activity shows each statement's own text. */
static int setup_session(pg_conn *c, PGconn *pg)
{
    static const Oid types[3] = {PG_TYPE_INT8, PG_TYPE_TEXT, PG_TYPE_TEXT};
    int sent = PQenterPipelineMode(pg) && PQsendQueryParams(pg, settings_for(pg), 0, NULL, NULL, NULL, NULL, 0);
    for (size_t i = 0; sent && i < PG_STATEMENT_COUNT; i++)
        sent = PQsendPrepare(pg, pg_statements[i].name, pg_statements[i].sql,
                             pg_statements[i].nparams, types);
    if (!sent || !PQpipelineSync(pg))
        return setup_failed(c, pg, NULL);
    int rc = DLOCK_OK;
    for (size_t i = 0; i < PG_STATEMENT_COUNT + 1; i++) {
        PGresult *res = next_result(c, pg);
        ExecStatusType st = PQresultStatus(res);
        if (rc == DLOCK_OK && (!res || (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)))
            rc = setup_failed(c, pg, res);
        PQclear(res);
        if (!res)
            return rc;
        while ((res = next_result(c, pg)))  /* the NULL that ends each command */
            PQclear(res);
        if (c->failure != PG_FAIL_NONE)
            return rc == DLOCK_OK ? setup_failed(c, pg, NULL) : rc;
    }
    PGresult *sync = next_result(c, pg);
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
    const char *settings = settings_for(pg);
    size_t len = strlen(settings) + 2;
    for (size_t i = 0; i < PG_STATEMENT_COUNT; i++)
        len += strlen(pg_statements[i].name) + strlen(pg_statements[i].sql) + 64;
    char *batch = malloc(len);
    if (!batch)
        return dlock__oom();
    size_t used = (size_t)snprintf(batch, len, "%s;", settings);
    static const char *const type_lists[4] = {"", "(bigint)", "(bigint, text)", "(bigint, text, text)"};
    for (size_t i = 0; i < PG_STATEMENT_COUNT; i++)
        used += (size_t)snprintf(batch + used, len - used, "PREPARE %s%s AS %s;", pg_statements[i].name,
                                 type_lists[pg_statements[i].nparams], pg_statements[i].sql);
    int sent = PQsendQuery(pg, batch);
    free(batch);
    int rc = sent ? DLOCK_OK : setup_failed(c, pg, NULL);
    PGresult *res;
    while (sent && (res = next_result(c, pg))) {
        if (rc == DLOCK_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = setup_failed(c, pg, res);
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
            return libpq_error(c, DLOCK_ECONN, "cannot connect", PQerrorMessage(pg));
        int r = wait_socket(PQsocket(pg), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, until, -1);
        if (r == 0)
            return dlock__error(DLOCK_ECONN, "cannot connect: no answer within %lld ms",
                                (long long)(until - start));
        if (r < 0)
            return dlock__error(DLOCK_ECONN, "cannot connect: poll: %s", strerror(errno));
        st = PQconnectPoll(pg);
    }
}

/* What the server must be: 14 or later, and not a read-only standby. */
static int check_server(PGconn *pg)
{
    int v = PQserverVersion(pg);
    if (v < PG_MIN_SERVER_VERSION)
        return dlock__error(DLOCK_ENOTSUP,
                            "server version %d.%d is too old: libdlock needs PostgreSQL 14 or"
                            " later, whose idle_session_timeout ends the session of a silent lock holder",
                            v / 10000, v >= 100000 ? v % 10000 : v / 100 % 100);
    const char *standby = PQparameterStatus(pg, "in_hot_standby");
    if (standby && strcmp(standby, "on") == 0)
        return dlock__error(DLOCK_EBACKEND,
                            "the server is a read-only standby: its advisory locks are not"
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

static int open_session(pg_conn *c)
{
    PGconn *pg = start_connect(c);
    if (!pg)
        return dlock__oom();
    int rc = connect_by_deadline(c, pg);
    if (rc == DLOCK_OK)
        rc = check_server(pg);
    /* Non-blocking: every send and receive goes through pg_ready(), which
     * keeps the deadline. */
    if (rc == DLOCK_OK && PQsetnonblocking(pg, 1) != 0)
        rc = libpq_error(c, DLOCK_ECONN, "cannot connect", PQerrorMessage(pg));
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

    rc = setup_session(c, pg);
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
static int session_usable(pg_conn *c)
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

/* A usable session: the one we have, or a new one (*fresh set to 1). */
static int ensure_session(pg_conn *c, int *fresh)
{
    *fresh = 0;
    if (session_usable(c))
        return DLOCK_OK;
    *fresh = 1;
    drop_session(c);
    return open_session(c);
}

enum { OUTCOME_OK, OUTCOME_SQL_ERROR, OUTCOME_CONNECTION_LOST };

static int outcome(pg_conn *c, const PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return OUTCOME_OK;
    if (!res || !c->pg || PQstatus(c->pg) != CONNECTION_OK)
        return OUTCOME_CONNECTION_LOST;
    const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* No SQLSTATE: libpq's own failure, i.e. the connection.  Class 08 is a
     * connection exception; 57P01..57P05 end the session (shutdown,
     * pg_terminate_backend, crash, idle timeout). */
    if (!sqlstate || strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "57P", 3) == 0)
        return OUTCOME_CONNECTION_LOST;
    return OUTCOME_SQL_ERROR;
}

static int first_bool(const PGresult *res)
{
    return PQntuples(res) >= 1 && PQnfields(res) >= 1 && PQgetvalue(res, 0, 0)[0] == 't';
}

static int has_sqlstate(const PGresult *res, const char *state)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s && strcmp(s, state) == 0;
}

/* Wait for the result of the statement in flight, no later than the
 * deadline; when `cancelable`, dlock_cancel() sends PQcancel (see
 * pursue_cancel).  NULL: no result, c->failure says why. */
static PGresult *await_result(pg_conn *c, int cancelable, int *cancel_sent)
{
    PGconn *pg = c->pg;
    PGresult *result = NULL;
    for (;;) {
        if (pg_ready(c, pg, cancelable, cancel_sent) != 0) {
            PQclear(result);
            return NULL;
        }
        PGresult *r = PQgetResult(pg);
        if (!r)
            return result;
        /* Keep the first error if several results come. */
        if (result && PQresultStatus(result) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(result);
            result = r;
        }
    }
}

/* One prepared statement, one round trip, bounded by the call's deadline.
 * *sent_ms (when not NULL): when it was sent. */
static PGresult *run_at(pg_conn *c, const char *statement, int nparams, const char *const *values,
                        int64_t *sent_ms)
{
    if (sent_ms)
        *sent_ms = dlock__now_ms();
    if (!PQsendQueryPrepared(c->pg, statement, nparams, values, NULL, NULL, 0)) {
        c->failure = PG_FAIL_CONN;
        return NULL;
    }
    int cancel_sent = 0;
    return await_result(c, 0, &cancel_sent);
}

static PGresult *run(pg_conn *c, const char *statement, int nparams, const char *const *values)
{
    return run_at(c, statement, nparams, values, NULL);
}

/* The connection failed in the middle of `what` (or the server did not
 * answer in time): say so, then drop the session. */
static int connection_lost(pg_conn *c, int status, const char *what)
{
    int rc = c->failure == PG_FAIL_TIMEOUT
                 ? dlock__error(status, "the server did not answer before the deadline: the"
                                        " session was dropped%s", status == DLOCK_ELOST ? ", and the lock with it" : "")
                 : libpq_error(c, status, what, c->pg ? PQerrorMessage(c->pg) : "no connection");
    drop_session(c);
    return rc;
}

/* --- acquire ------------------------------------------------------------------------- */

static void format_key(char buf[24], int64_t key)
{
    snprintf(buf, 24, "%" PRId64, key);
}

static void format_ms(char buf[16], uint32_t ms)
{
    snprintf(buf, 16, "%" PRIu32, ms);
}

static int try_lock(pg_conn *c, pg_lock *l, const char *name, int64_t *lease_start_ms)
{
    char key[24], idle[16];
    format_key(key, l->key);
    /* A session found dead while idle is replaced before we send; a reused
     * one that breaks during the try is replaced once more (no wait is
     * lost; lib/session.c decides). */
    for (int attempt = 0;; attempt++) {
        int fresh;
        int rc = ensure_session(c, &fresh);
        if (rc != DLOCK_OK)
            return rc;
        uint32_t want = dlock__session_idle_ms(&c->session, NULL, l->base.ttl_ms);
        int set = want != c->session_idle_ms;
        format_ms(idle, want);
        const char *values[2] = {key, idle};
        PGresult *res = run_at(c, set ? "dlock_try_set" : "dlock_try", set ? 2 : 1, values, lease_start_ms);
        switch (outcome(c, res)) {
        case OUTCOME_OK: {
            int got = first_bool(res);
            PQclear(res);
            if (!got)
                return dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else", name);
            if (set)
                c->session_idle_ms = want;
            return DLOCK_OK;
        }
        case OUTCOME_CONNECTION_LOST:
            PQclear(res);
            rc = connection_lost(c, DLOCK_ECONN, "the connection broke while taking the lock");
            if (dlock__session_may_retry(attempt, fresh, c->failure == PG_FAIL_TIMEOUT))
                continue;
            return rc;
        default:
            rc = result_error(c, DLOCK_EBACKEND, "cannot take the lock", res);
            PQclear(res);
            return rc;
        }
    }
}

/* Does this session hold the lock (a round trip, sent at *sent_ms)?  A wait
 * that ended in an error may have been granted anyway (a timeout or cancel
 * can strike just after the grant; a session lock survives the error); a
 * wait granted long ago is confirmed.  1 yes, 0 no, <0 a status. */
static int held_now(pg_conn *c, const char *key, const char *idle, int set_lease, int64_t *sent_ms)
{
    const char *values[2] = {key, idle};
    for (int attempt = 0;; attempt++) {
        PGresult *res = run_at(c, set_lease ? "dlock_check_set" : "dlock_check", set_lease ? 2 : 1, values, sent_ms);
        int kind = outcome(c, res);
        if (kind == OUTCOME_OK) {
            int held = first_bool(res);
            PQclear(res);
            return held;
        }
        if (kind == OUTCOME_CONNECTION_LOST) {
            PQclear(res);
            return connection_lost(c, DLOCK_ECONN, "the connection broke while waiting for the lock");
        }
        /* A late cancel request may hit this statement: once more. */
        if (attempt == 0 && has_sqlstate(res, "57014")) {
            PQclear(res);
            continue;
        }
        int rc = result_error(c, DLOCK_EBACKEND, "cannot check the lock", res);
        PQclear(res);
        return rc;
    }
}

/* The lease of a lock granted by a server-side wait starts when the server
 * granted it: an unknown moment inside the wait's round trip.  A grant that
 * came back within TTL / PG_CONFIRM_FRACTION starts it at the wait's send
 * time (losing little of the lease, and no round trip); after a longer wait
 * one more round trip proves that the session holds the lock, and its send
 * time starts the lease. */
static int lease_after_wait(pg_conn *c, const pg_lock *l, const char *name, int64_t wait_sent_ms,
                            int64_t *lease_start_ms)
{
    if (dlock__now_ms() - wait_sent_ms <= (int64_t)(l->base.ttl_ms / PG_CONFIRM_FRACTION)) {
        *lease_start_ms = wait_sent_ms;
        return DLOCK_OK;
    }
    char key[24];
    format_key(key, l->key);
    int held = held_now(c, key, NULL, 0, lease_start_ms);
    if (held == 0)
        return dlock__error(DLOCK_EBACKEND, "lock '%s' was granted, but the session does not hold it", name);
    return held < 0 ? held : DLOCK_OK;
}

/* The wait's statement ended in an error: was it ours (a cancel), a lock
 * timeout, a deadlock, or was the lock granted anyway? */
static int wait_failed(pg_conn *c, const char *name, const char *key, const char *idle, PGresult *res,
                       int cancel_sent, int32_t wait_ms, int64_t *lease_start_ms)
{
    int timed_out = has_sqlstate(res, "55P03"); /* lock_not_available: lock_timeout */
    int canceled = has_sqlstate(res, "57014");  /* query_canceled */
    int deadlock = has_sqlstate(res, "40P01");
    int rc = DLOCK_OK;
    if (!timed_out && !canceled && !deadlock) {
        rc = result_error(c, DLOCK_EBACKEND, "cannot take the lock", res);
        PQclear(res);
        return rc;
    }
    int ours = canceled && (cancel_sent || atomic_load(&c->cancel_requested));
    if (!ours)
        rc = result_error(c, timed_out ? DLOCK_EBUSY : deadlock ? DLOCK_EBUSY : DLOCK_EBACKEND,
                          "lock wait ended", res);
    PQclear(res);

    int granted = held_now(c, key, idle, !ours, lease_start_ms);
    if (granted < 0)
        return granted;
    if (ours) {
        /* The cancel won at the server; if the grant slipped in before it,
         * give the lock back so that the caller's view holds. */
        if (granted) {
            const char *unlock_values[1] = {key};
            PGresult *u = run(c, "dlock_unlock", 1, unlock_values);
            int k = outcome(c, u);
            PQclear(u);
            if (k != OUTCOME_OK)
                drop_session(c); /* lost, or ending the session is the sure way to let go */
        }
        return dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
    }
    if (granted) {
        dlock__clear_error();
        return DLOCK_OK;
    }
    if (timed_out)
        return dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else (waited %ld ms)", name,
                            (long)wait_ms);
    return rc;
}

static int wait_lock(pg_conn *c, pg_lock *l, const char *name, int32_t wait_ms, struct dlock_call *call)
{
    int fresh;
    int rc = ensure_session(c, &fresh);
    if (rc != DLOCK_OK)
        return rc;
    /* A cancel that came before the statement went out. */
    if (atomic_load(&c->cancel_requested))
        return dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
    char key[24], idle[16], timeout[16];
    format_key(key, l->key);
    uint32_t want = dlock__session_idle_ms(&c->session, NULL, l->base.ttl_ms);
    format_ms(idle, want);
    format_ms(timeout, wait_ms < 0 ? 0u : (uint32_t)wait_ms); /* lock_timeout 0: no limit */
    const char *values[3] = {key, timeout, idle};
    int64_t sent_ms = dlock__now_ms();
    if (!PQsendQueryPrepared(c->pg, "dlock_wait", 3, values, NULL, NULL, 0))
        return connection_lost(c, DLOCK_ECONN, "cannot send the lock request");
    int cancel_sent = 0;
    c->deadline_ms = call->deadline_ms; /* the wait itself: as long as the caller allows */
    PGresult *res = await_result(c, 1, &cancel_sent);
    enum pg_failure failure = c->failure;
    begin_call(c, call->deadline_ms); /* the round trips after it */
    int kind = outcome(c, res);
    if (kind == OUTCOME_OK) {
        PQclear(res);
        c->session_idle_ms = want;
        return lease_after_wait(c, l, name, sent_ms, &call->lease_start_ms);
    }
    if (kind == OUTCOME_CONNECTION_LOST) {
        PQclear(res);
        c->failure = failure;
        if (failure != PG_FAIL_CANCEL)
            return connection_lost(c, DLOCK_ECONN, "the connection broke while waiting for the lock");
        drop_session(c);
        return dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled (the server did not act on the"
                                             " cancel: the session was dropped)", name);
    }
    rc = wait_failed(c, name, key, idle, res, cancel_sent, wait_ms, &call->lease_start_ms);
    if (rc == DLOCK_OK)
        c->session_idle_ms = want;
    return rc;
}

static int pg_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms, struct dlock_call *call,
                      struct dlock_held **lock_out)
{
    pg_conn *c = pg_of(conn);
    begin_call(c, call->deadline_ms);
    pg_lock *l = calloc(1, sizeof *l);
    if (!l)
        return dlock__oom();
    l->key = dlock__pg_key(name, strlen(name));
    l->base.ttl_ms = ttl_ms;
    /* A cancel that came too late for this wait is forgotten by
     * pg_cancel_clear(), under the core's cancel mutex. */
    int rc = wait_ms == 0 ? try_lock(c, l, name, &call->lease_start_ms) : wait_lock(c, l, name, wait_ms, call);
    if (rc != DLOCK_OK) {
        free(l);
        return rc;
    }
    dlock__session_add(&c->session, &l->base);
    *lock_out = &l->base;
    return DLOCK_OK;
}

/* --- extend, release ----------------------------------------------------------------- */

static int session_ended(const char *name)
{
    return dlock__error(DLOCK_ELOST,
                        "lock '%s' is lost: the PostgreSQL session that held it has ended"
                        " (connection broken, session terminated, idle timeout or server restart)",
                        name);
}

/* A lock that extend found gone while its session lives on. */
static int no_longer_held(const char *name)
{
    return dlock__error(DLOCK_ELOST, "lock '%s' is lost: this session no longer holds it", name);
}

static int pg_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms, struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    lease_call(c, call->deadline_ms);
    pg_lock *l = pg_lock_of(held);
    if (l->base.generation != c->session.generation)
        return session_ended(name);
    if (!l->base.linked)
        return no_longer_held(name);
    if (!session_usable(c)) {
        drop_session(c);
        return session_ended(name);
    }
    char key[24], idle[16];
    format_key(key, l->key);
    uint32_t want = dlock__session_idle_ms(&c->session, &l->base, ttl_ms);
    int set = want != c->session_idle_ms;
    format_ms(idle, want);
    const char *values[2] = {key, idle};
    PGresult *res = run(c, set ? "dlock_check_set" : "dlock_check", set ? 2 : 1, values);
    int rc;
    switch (outcome(c, res)) {
    case OUTCOME_OK:
        if (first_bool(res)) {
            dlock__session_retime(&c->session, &l->base, ttl_ms);
            if (set)
                c->session_idle_ms = want;
            rc = DLOCK_OK;
        } else {
            dlock__session_remove(&c->session, &l->base);
            rc = no_longer_held(name);
        }
        break;
    case OUTCOME_CONNECTION_LOST:
        rc = connection_lost(c, DLOCK_ELOST, "the connection broke: the lock is lost");
        break;
    default:
        rc = result_error(c, DLOCK_EBACKEND, "cannot extend the lock", res);
        break;
    }
    PQclear(res);
    return rc;
}

static int pg_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    lease_call(c, call->deadline_ms);
    pg_lock *l = pg_lock_of(held);
    int rc;
    if (l->base.generation != c->session.generation) {
        rc = session_ended(name);
    } else if (!l->base.linked) {
        rc = no_longer_held(name);
    } else if (!session_usable(c)) {
        drop_session(c);
        rc = session_ended(name);
    } else {
        dlock__session_remove(&c->session, &l->base);
        char key[24], idle[16];
        format_key(key, l->key);
        uint32_t want = dlock__session_idle_ms(&c->session, NULL, 0);
        int set = want != c->session_idle_ms;
        format_ms(idle, want);
        const char *values[2] = {key, idle};
        PGresult *res = run(c, set ? "dlock_unlock_set" : "dlock_unlock", set ? 2 : 1, values);
        switch (outcome(c, res)) {
        case OUTCOME_OK:
            if (set)
                c->session_idle_ms = want;
            rc = first_bool(res) ? DLOCK_OK
                                 : dlock__error(DLOCK_ELOST, "lock '%s' had already been lost: this"
                                                             " session no longer held it", name);
            break;
        case OUTCOME_CONNECTION_LOST:
            rc = connection_lost(c, DLOCK_ELOST, "the connection broke during release: the lock is lost");
            break;
        default:
            /* The lock may still be held: end the session, which surely
             * releases it (other locks on it are reported lost). */
            rc = result_error(c, DLOCK_EBACKEND, "cannot release the lock (the session was closed to release it)", res);
            drop_session(c);
            break;
        }
        PQclear(res);
    }
    free(l);
    return rc;
}

/* --- holder, cancel ------------------------------------------------------------------ */

static int pg_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    begin_call(c, call->deadline_ms);
    char key[24];
    format_key(key, dlock__pg_key(name, strlen(name)));
    const char *values[1] = {key};
    for (int attempt = 0;; attempt++) {
        int fresh;
        int rc = ensure_session(c, &fresh);
        if (rc != DLOCK_OK)
            return rc;
        PGresult *res = run(c, "dlock_holder", 1, values);
        switch (outcome(c, res)) {
        case OUTCOME_OK:
            break;
        case OUTCOME_CONNECTION_LOST:
            PQclear(res);
            rc = connection_lost(c, DLOCK_ECONN, "the connection broke while asking for the holder");
            if (dlock__session_may_retry(attempt, fresh, c->failure == PG_FAIL_TIMEOUT))
                continue;
            return rc;
        default:
            rc = result_error(c, DLOCK_EBACKEND, "cannot read the holder", res);
            PQclear(res);
            return rc;
        }
        if (PQntuples(res) < 1) {
            PQclear(res);
            return 0;
        }
        const char *app = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
        /* No client_addr: a unix socket, or (no backend_start either) a
         * session of another role that we may not look into. */
        const char *client = !PQgetisnull(res, 0, 1) ? PQgetvalue(res, 0, 1)
                             : PQgetisnull(res, 0, 3) ? "?"
                                                      : "local";
        const char *backend_pid = PQgetvalue(res, 0, 2);
        const char *since = PQgetisnull(res, 0, 3) ? "?" : PQgetvalue(res, 0, 3);
        const char *active = PQgetisnull(res, 0, 4) ? "?" : PQgetvalue(res, 0, 4);
        char text[768];
        /* Our own sessions name themselves "dlock host=... pid=...". */
        if (strncmp(app, "dlock ", 6) == 0)
            snprintf(text, sizeof text, "%s since=%s last_active=%s backend_pid=%s client=%s", app + 6,
                     since, active, backend_pid, client);
        else
            snprintf(text, sizeof text, "application=%s since=%s last_active=%s backend_pid=%s client=%s",
                     app[0] ? app : "?", since, active, backend_pid, client);
        dlock__copy_text(buf, buflen, text);
        PQclear(res);
        return 1;
    }
}

/* From another thread, without the client mutex: only flag and wake.  The
 * waiting thread sends the PQcancel itself.  Async-signal-safe as well. */
static void pg_cancel(struct dlock_conn *conn)
{
    pg_conn *c = pg_of(conn);
    uint64_t one = 1;
    atomic_store(&c->cancel_requested, 1);
    (void)!write(c->wake_fd, &one, sizeof one);
}

/* Under the core's cancel mutex, when a wait has ended: a cancel that came
 * too late for it must not reach the next one.  (A PQcancel already sent
 * cannot: it is sent by the waiting thread, which waits for the postmaster
 * to pass it on, and a server process ignores a cancel while idle.) */
static void pg_cancel_clear(struct dlock_conn *conn)
{
    pg_conn *c = pg_of(conn);
    uint64_t count;
    atomic_store(&c->cancel_requested, 0);
    (void)!read(c->wake_fd, &count, sizeof count);
}

static uint64_t pg_session_generation(struct dlock_conn *conn)
{
    return pg_of(conn)->session.generation;
}

static uint32_t pg_session_ttl_ms(struct dlock_conn *conn)
{
    pg_conn *c = pg_of(conn);
    return c->pg ? c->session_idle_ms : 0;
}

/* --- connect, disconnect ------------------------------------------------------------- */

static void secret_free(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
    free(s);
}

static void conn_free(pg_conn *c)
{
    drop_session(c);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    secret_free(c->url);
    secret_free(c->password);
    free(c);
}

/* Port numbers are checked here so that a typo is DLOCK_EINVAL, not a
 * connection failure. */
static int valid_ports(const char *ports)
{
    for (const char *p = ports; *p;) {
        size_t digits = strspn(p, "0123456789");
        if (digits) {
            long v = strtol(p, NULL, 10);
            if (digits > 5 || v < 1 || v > 65535)
                return 0;
        }
        p += digits;
        if (*p == ',')
            p++;
        else if (*p)
            return 0;
    }
    return 1;
}

/* libpq matches the URI scheme case-sensitively; the core does not.  A copy
 * of the URL with its scheme in lower case, the rest untouched. */
static char *lower_scheme(const char *url)
{
    char *copy = strdup(url);
    if (copy)
        for (char *p = copy; *p && *p != ':'; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return copy;
}

/* An unencoded '@' in the password ("user:p@ss@host") is a common slip.
 * The userinfo ends at the LAST '@' of the authority (as the MySQL backend
 * reads it); libpq ends it at the first and would try to resolve the rest
 * of the password as a host name, and say so.  A copy of the URL with every
 * '@' before the last one of the authority encoded as %40. */
static char *encode_userinfo_at(const char *url)
{
    const char *authority = strstr(url, "://") + 3;
    size_t len = strcspn(authority, "/?#"), extra = 0;
    const char *last = NULL;
    for (const char *p = authority; p < authority + len; p++)
        if (*p == '@')
            extra += last ? 2 : 0, last = p;
    char *copy = malloc(strlen(url) + extra + 1);
    if (!copy)
        return NULL;
    char *o = copy;
    for (const char *p = url; *p; p++) {
        if (*p == '@' && p >= authority && p < last) {
            memcpy(o, "%40", 3);
            o += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return copy;
}

static int pg_connect_url(const char *url, struct dlock_conn **conn_out);

static int pg_connect(const char *url, struct dlock_conn **conn_out)
{
    int loaded = dlock__libpq_load();
    if (loaded != DLOCK_OK)
        return loaded;
    /* libpq would read anything else as a key=value string, whose errors we
     * could not scrub with certainty; no such string is a valid URL anyway. */
    const char *colon = strchr(url, ':');
    if (!colon || strncmp(colon, "://", 3) != 0)
        return dlock__error(DLOCK_EINVAL, "malformed PostgreSQL URL: expected"
                                          " postgresql://[user[:password]@][host][:port][/dbname][?param=value...]");
    char *lowered = lower_scheme(url);
    char *normal = lowered ? encode_userinfo_at(lowered) : NULL;
    secret_free(lowered);
    if (!normal)
        return dlock__oom();
    int rc = pg_connect_url(normal, conn_out);
    secret_free(normal);
    return rc;
}

static int pg_connect_url(const char *url, struct dlock_conn **conn_out)
{
    char *parse_error = NULL;
    PQconninfoOption *options = PQconninfoParse(url, &parse_error);
    if (!options) {
        if (!parse_error)
            return dlock__oom();
        char text[PG_ERRTEXT_MAX];
        scrub_parse_error(text, sizeof text, parse_error, url);
        PQfreemem(parse_error);
        return dlock__error(DLOCK_EINVAL, "malformed PostgreSQL URL: %s", text);
    }
    char *password = NULL;
    int ports_ok = 1;
    const char *env_timeout = getenv("PGCONNECT_TIMEOUT");
    int64_t connect_timeout_ms = env_timeout ? strtol(env_timeout, NULL, 10) * 1000 : PG_CONNECT_TIMEOUT_MS;
    for (PQconninfoOption *o = options; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0 && o->val[0])
            password = strdup(o->val);
        else if (strcmp(o->keyword, "port") == 0)
            ports_ok = valid_ports(o->val);
        else if (strcmp(o->keyword, "connect_timeout") == 0)
            connect_timeout_ms = strtol(o->val, NULL, 10) * 1000;
    }
    PQconninfoFree(options);
    if (!ports_ok) {
        secret_free(password);
        return dlock__error(DLOCK_EINVAL, "malformed PostgreSQL URL: bad port number");
    }

    pg_conn *c = calloc(1, sizeof *c);
    if (!c) {
        secret_free(password);
        return dlock__oom();
    }
    c->password = password;
    /* libpq: 0 or less waits without limit; less than 2 s means 2 s. */
    c->connect_timeout_ms = connect_timeout_ms <= 0 ? 0 : connect_timeout_ms < 2000 ? 2000 : connect_timeout_ms;
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_init(&c->cancel_requested, 0);
    c->url = strdup(url);
    if (!c->url || c->wake_fd < 0) {
        int rc = c->wake_fd < 0 ? dlock__error(DLOCK_ENOMEM, "eventfd: %s", strerror(errno))
                                : dlock__oom();
        conn_free(c);
        return rc;
    }
    /* "dlock host=<host> pid=<pid>", the host cut so that the pid stays. */
    char pid_part[32];
    snprintf(pid_part, sizeof pid_part, " pid=%ld", (long)getpid());
    int host_room = PG_APPNAME_MAX - (int)strlen("dlock host=") - (int)strlen(pid_part);
    snprintf(c->appname, sizeof c->appname, "dlock host=%.*s%s", host_room, dlock__hostname(), pid_part);

    begin_call(c, INT64_MAX);
    int rc = open_session(c);
    if (rc != DLOCK_OK) {
        conn_free(c);
        return rc;
    }
    *conn_out = &c->base;
    return DLOCK_OK;
}

static void pg_disconnect(struct dlock_conn *conn)
{
    /* Ending the session releases every advisory lock still on it. */
    if (conn)
        conn_free(pg_of(conn));
}

static const char *const pg_schemes[] = {"postgresql", "postgres", NULL};

const struct dlock_backend dlock__backend_postgresql = {
    .name = "postgresql",
    .schemes = pg_schemes,
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .acquire = pg_acquire,
    .extend = pg_extend,
    .release = pg_release,
    .holder = pg_holder,
    .cancel = pg_cancel,
    .session_ttl_ms = pg_session_ttl_ms,
    .cancel_clear = pg_cancel_clear,
    .session_generation = pg_session_generation,
};
