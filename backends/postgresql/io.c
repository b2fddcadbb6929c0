/*
 * PostgreSQL round trips: each one non-blocking and bounded by the call's
 * deadline; a wait can be cancelled from another thread (dlock_cancel()).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "backend.h"

/* While a cancel is pending, ask again this often: a cancel request that
 * reaches the server before it starts executing our statement is dropped. */
#define PG_CANCEL_RETRY_MS 250
/* A cancel that the server does not act on within this long (its process
 * is stopped, say) is given up locally: the session is dropped. */
#define PG_CANCEL_GIVEUP_MS 1000

int dlock__pg_libpq_error(pg_conn *c, int status, const char *what, const char *libpq_text)
{
    char text[PG_ERRTEXT_MAX];
    dlock__pg_clean_text(text, sizeof text, libpq_text, c->password);
    return dlock__error(status, "%s: %s", what, text[0] ? text : "unknown error");
}

int dlock__pg_result_error(pg_conn *c, int status, const char *what, const PGresult *res)
{
    const char *message = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!message)
        return dlock__pg_libpq_error(c, status, what, c->pg ? PQerrorMessage(c->pg) : "no connection");
    /* Our prepared statement is missing: the statement ran in a server
     * session that this client did not set up.  The session is not to be
     * trusted any more (dropped at the next call: its locks are lost). */
    if (sqlstate && strcmp(sqlstate, "26000") == 0 && !c->lease) {
        c->fatal_seen = 1;
        int rc = dlock__pg_pooler_error();
        if (status == rc)
            return rc;
        char copy[PG_ERRTEXT_MAX];
        dlock__copy_text(copy, sizeof copy, dlock_last_error());
        return dlock__error(status, "%s", copy);
    }
    char text[PG_ERRTEXT_MAX];
    dlock__pg_clean_text(text, sizeof text, message, c->password);
    return dlock__error(status, "%s: %s (SQLSTATE %s)", what, text, sqlstate ? sqlstate : "?");
}

/* --- round trips with a deadline ----------------------------------------------------- */

/* The deadline of the round trips of one backend call.  Only the wait itself
 * may be unbounded; everything around it gets DLOCK_CALL_TIMEOUT_MS at most. */
void dlock__pg_begin_call(pg_conn *c, int64_t deadline_ms)
{
    int64_t bound = dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS;
    c->deadline_ms = deadline_ms < bound ? deadline_ms : bound;
    c->failure = PG_FAIL_NONE;
}

/* Extend and release: bounded by the lease itself, however long (a
 * heartbeat that cannot finish before the lease ends has failed). */
void dlock__pg_lease_call(pg_conn *c, int64_t deadline_ms)
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
int dlock__pg_wait_socket(int fd, short events, int64_t until_ms, int wake_fd)
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
        if (dlock__pg_wait_socket(PQsocket(pg), events, until, c->wake_fd) < 0)
            return round_trip_failed(c, PG_FAIL_CONN);
    }
}

/* The next result of what is in flight; NULL at the end of a command, or on
 * a failure (then c->failure is set). */
PGresult *dlock__pg_next_result(pg_conn *c, PGconn *pg)
{
    int cancel_sent = 0;
    return pg_ready(c, pg, 0, &cancel_sent) == 0 ? PQgetResult(pg) : NULL;
}

int dlock__pg_outcome(pg_conn *c, const PGresult *res)
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

const struct pg_what dlock__pg_reading_holder = {DLOCK_ECONN, "the connection broke while asking for the holder",
                                                  "cannot read the holder", 0};
const struct pg_what dlock__pg_breaking = {DLOCK_ECONN, "the connection broke while breaking the lock",
                                           "cannot break the lock", 0};

int dlock__pg_is_conflict(const PGresult *res)
{
    return dlock__pg_has_sqlstate(res, "40001") || dlock__pg_has_sqlstate(res, "40P01");
}

int dlock__pg_answer(pg_conn *c, const PGresult *res, const struct pg_what *w, int *kind)
{
    int outcome = dlock__pg_outcome(c, res);
    if (kind)
        *kind = outcome;
    if (outcome == OUTCOME_OK)
        return DLOCK_OK;
    if (outcome == OUTCOME_CONNECTION_LOST)
        return dlock__pg_connection_lost(c, w->lost_status, w->broke);
    int status = w->conflict_status && dlock__pg_is_conflict(res) ? w->conflict_status : DLOCK_EBACKEND;
    return dlock__pg_result_error(c, status, w->failed, res);
}

int dlock__pg_first_bool(const PGresult *res)
{
    return PQntuples(res) >= 1 && PQnfields(res) >= 1 && PQgetvalue(res, 0, 0)[0] == 't';
}

int dlock__pg_has_sqlstate(const PGresult *res, const char *state)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s && strcmp(s, state) == 0;
}

/* Wait for the result of the statement in flight, no later than the
 * deadline; when `cancelable`, dlock_cancel() sends PQcancel (see
 * pursue_cancel).  NULL: no result, c->failure says why. */
PGresult *dlock__pg_await_result(pg_conn *c, int cancelable, int *cancel_sent)
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

void dlock__pg_stmt_name(const pg_conn *c, const char *base, char out[PG_STMT_NAME_MAX])
{
    snprintf(out, PG_STMT_NAME_MAX, "%s_%s", base, c->token);
}


int dlock__pg_pooler_error(void)
{
    return dlock__error(DLOCK_EBACKEND,
                        "statements are not running in one server session: a transaction pooler (PgBouncer "
                        "pool_mode=transaction?) is between client and server; session mode needs a session of its "
                        "own (use mode=lease in the URL, or a session pooler)");
}

/* One prepared statement of this session (its name made unique per
 * session: see conn.c), one round trip, bounded by the call's
 * deadline.  *sent_ms (when not NULL): when it was sent. */
PGresult *dlock__pg_run_bin(pg_conn *c, const char *statement, int nparams, const char *const *values,
                            const int *lengths, const int *formats, int64_t *sent_ms)
{
    char full[PG_STMT_NAME_MAX];
    dlock__pg_stmt_name(c, statement, full);
    if (sent_ms)
        *sent_ms = dlock__now_ms();
    if (!PQsendQueryPrepared(c->pg, full, nparams, values, lengths, formats, 0)) {
        c->failure = PG_FAIL_CONN;
        return NULL;
    }
    int cancel_sent = 0;
    return dlock__pg_await_result(c, 0, &cancel_sent);
}

PGresult *dlock__pg_run_at(pg_conn *c, const char *statement, int nparams, const char *const *values, int64_t *sent_ms)
{
    return dlock__pg_run_bin(c, statement, nparams, values, NULL, NULL, sent_ms);
}

PGresult *dlock__pg_run(pg_conn *c, const char *statement, int nparams, const char *const *values)
{
    return dlock__pg_run_at(c, statement, nparams, values, NULL);
}

PGresult *dlock__pg_exec(pg_conn *c, const char *sql, int nparams, const Oid *types, const char *const *values,
                         const int *lengths, int64_t *sent_ms)
{
    int formats[8] = {0};
    for (int i = 0; i < nparams && i < 8; i++)
        formats[i] = types && types[i] == PG_TYPE_BYTEA;
    if (sent_ms)
        *sent_ms = dlock__now_ms();
    if (!PQsendQueryParams(c->pg, sql, nparams, types, values, lengths, formats, 0)) {
        c->failure = PG_FAIL_CONN;
        return NULL;
    }
    int cancel_sent = 0;
    return dlock__pg_await_result(c, 0, &cancel_sent);
}
