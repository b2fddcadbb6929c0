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
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "backend.h"
#include "key.h"

/* A wait whose granting round trip took at most TTL / this starts the
 * lease at its send time; a longer one is confirmed by one more round trip. */
#define PG_CONFIRM_FRACTION 10
/* Connection default; a connect_timeout in the URL (or PGCONNECT_TIMEOUT) wins. */
#define PG_CONNECT_TIMEOUT_MS 10000

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

/* The one place that recovers the backend's own structs from the bases. */
static pg_conn *pg_of(struct dlock_conn *conn)
{
    return (pg_conn *)conn;
}

static pg_lock *pg_lock_of(struct dlock_held *held)
{
    return (pg_lock *)held;
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

/* A statement ran in a server session that this client did not set up:
 * every lock this client holds on "its" session may be anywhere; drop it
 * (the core then reports them all lost) and say why. */
static int pooler_detected(pg_conn *c, int status)
{
    dlock__pg_drop_session(c);
    int rc = dlock__pg_pooler_error();
    if (status == rc)
        return rc;
    char text[512];
    dlock__copy_text(text, sizeof text, dlock_last_error());
    return dlock__error(status, "the lock is lost: %s", text);
}

/* The fence of a lock statement's answer (column 1) with fencing=on. */
static int take_fence(pg_conn *c, pg_lock *l, const PGresult *res, const char *name)
{
    if (!c->fencing)
        return DLOCK_OK;
    if (PQnfields(res) < 2 || PQgetisnull(res, 0, 1))
        return dlock__error(DLOCK_EBACKEND, "lock '%s' was taken but its fence was not bumped", name);
    l->base.fence = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    return DLOCK_OK;
}

/* A lock statement's first column is NULL when it ran in a server session
 * that this client did not set up (and then did nothing). */
static int ran_in_our_session(const PGresult *res)
{
    return PQntuples(res) >= 1 && PQnfields(res) >= 1 && !PQgetisnull(res, 0, 0);
}

/* The lock statement found the name held in lease mode (and gave the
 * advisory lock back). */
static int leased_answer(const PGresult *res)
{
    return PQntuples(res) >= 1 && PQnfields(res) >= 4 && !PQgetisnull(res, 0, 3) && PQgetvalue(res, 0, 3)[0] == 't';
}

static int held_in_lease_mode(const char *name)
{
    return dlock__error(DLOCK_EBUSY, "lock '%s' is held by a lease-mode client (table " PG_LEASE_TABLE ")", name);
}

/* How the statements of an acquire fail. */
static const struct pg_what taking = {DLOCK_ECONN, "the connection broke while taking the lock", "cannot take the lock",
                                      DLOCK_EBUSY};
static const struct pg_what checking = {DLOCK_ECONN, "the connection broke while waiting for the lock",
                                        "cannot check the lock", 0};
static const struct pg_what bumping = {DLOCK_ECONN, "the connection broke while bumping the fence",
                                       "cannot bump the fence", 0};

/* A lock statement failed after it may have been granted (a session lock
 * outlives the failed statement): let go of it, or end the session, which
 * surely does (issue 23: no lock kept by a client told "error"). */
static void give_back(pg_conn *c, const char *key)
{
    const char *values[1] = {key};
    PGresult *u = dlock__pg_run(c, "dlock_unlock", 1, values);
    int k = dlock__pg_outcome(c, u);
    int ours = k == OUTCOME_OK && ran_in_our_session(u);
    PQclear(u);
    if (!ours)
        dlock__pg_drop_session(c);
}

/* The answer of a try that ran (cleared here): the lock, busy, or a lease
 * or pooler in the way.  When `set`, the try set idle_session_timeout to
 * `idle`. */
static int took(pg_conn *c, pg_lock *l, const char *name, PGresult *res, int set, uint32_t idle)
{
    int got = dlock__pg_first_bool(res);
    int ours = ran_in_our_session(res);
    int leased = leased_answer(res);
    int rc = got ? take_fence(c, l, res, name) : DLOCK_OK;
    PQclear(res);
    if (!ours)
        return pooler_detected(c, DLOCK_EBACKEND);
    if (leased)
        return held_in_lease_mode(name);
    if (!got)
        return dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else", name);
    if (set)
        c->session_idle_ms = idle;
    return rc;
}

static int try_lock(pg_conn *c, pg_lock *l, const char *name, int64_t *lease_start_ms)
{
    char key[24], idle[16];
    format_key(key, l->key);
    /* A session found dead while idle is replaced before we send; a reused
     * one that breaks during the try is replaced once more (no wait is
     * lost; lib/session.c decides). */
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        int rc = dlock__pg_ensure_session(c, &fresh);
        if (rc != DLOCK_OK)
            return rc;
        uint32_t want = dlock__session_idle_ms(&c->session, NULL, l->base.ttl_ms);
        int set = want != c->session_idle_ms;
        format_ms(idle, want);
        const char *values[3] = {key, set ? idle : "", name};
        const int lengths[3] = {0, 0, (int)strlen(name)};
        const int formats[3] = {0, 0, 1};
        const char *statement = c->fencing || !set ? "dlock_try" : "dlock_try_set";
        PGresult *res = dlock__pg_run_bin(c, statement, 3, values, lengths, formats, lease_start_ms);
        int kind;
        rc = dlock__pg_answer(c, res, &taking, &kind);
        if (kind == OUTCOME_OK)
            return took(c, l, name, res, set, want);
        PQclear(res);
        if (kind == OUTCOME_CONNECTION_LOST) {
            if (dlock__session_may_retry(attempt, fresh, c->failure == PG_FAIL_TIMEOUT))
                continue;
            return rc;
        }
        give_back(c, key);
        return rc;
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
        PGresult *res =
            dlock__pg_run_at(c, set_lease ? "dlock_check_set" : "dlock_check", set_lease ? 2 : 1, values, sent_ms);
        /* A late cancel request may hit this statement: once more. */
        if (attempt == 0 && dlock__pg_outcome(c, res) == OUTCOME_SQL_ERROR && dlock__pg_has_sqlstate(res, "57014")) {
            PQclear(res);
            continue;
        }
        int rc = dlock__pg_answer(c, res, &checking, NULL);
        if (rc == DLOCK_OK) {
            int held = dlock__pg_first_bool(res);
            rc = ran_in_our_session(res) ? held : pooler_detected(c, DLOCK_EBACKEND);
        }
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

/* A lock granted outside its statement (that failed): is the name held in
 * lease mode?  Then the lock is given back.  1 yes, 0 no, <0 a status. */
static int lease_check(pg_conn *c, const char *key, const char *name)
{
    if (!c->leases_seen)
        return 0;
    const char *values[2] = {key, name};
    const int lengths[2] = {0, (int)strlen(name)};
    const int formats[2] = {0, 1};
    PGresult *res = dlock__pg_run_bin(c, "dlock_leased", 2, values, lengths, formats, NULL);
    int kind;
    int rc = dlock__pg_answer(c, res, &taking, &kind);
    if (kind == OUTCOME_OK)
        rc = !ran_in_our_session(res) ? pooler_detected(c, DLOCK_EBACKEND) : dlock__pg_first_bool(res);
    else if (kind == OUTCOME_SQL_ERROR)
        dlock__pg_drop_session(c); /* the lock is held: let go of it */
    PQclear(res);
    return rc;
}

/* The wait's statement ended in an error: was it ours (a cancel), a lock
 * timeout, a deadlock, or was the lock granted anyway? */
/* A wait granted in a statement that failed: its fence, on its own. */
static int bump_fence(pg_conn *c, pg_lock *l, const char *name, const char *key)
{
    if (!c->fencing)
        return DLOCK_OK;
    const char *values[2] = {key, name};
    const int lengths[2] = {0, (int)strlen(name)};
    const int formats[2] = {0, 1};
    PGresult *res = dlock__pg_run_bin(c, "dlock_bump", 2, values, lengths, formats, NULL);
    int kind;
    int rc = dlock__pg_answer(c, res, &bumping, &kind);
    if (kind == OUTCOME_SQL_ERROR)
        dlock__pg_drop_session(c); /* the lock is held: let go of it */
    else if (kind == OUTCOME_OK && !ran_in_our_session(res))
        rc = pooler_detected(c, DLOCK_EBACKEND);
    else if (kind == OUTCOME_OK && !dlock__pg_first_bool(res))
        rc = dlock__error(DLOCK_EBACKEND, "lock '%s' was granted, but the session does not hold it", name);
    else if (kind == OUTCOME_OK)
        rc = take_fence(c, l, res, name);
    PQclear(res);
    return rc;
}

static int wait_failed(pg_conn *c, pg_lock *l, const char *name, const char *key, const char *idle, PGresult *res,
                       int cancel_sent, int32_t wait_ms, int64_t *lease_start_ms)
{
    int timed_out = dlock__pg_has_sqlstate(res, "55P03"); /* lock_not_available: lock_timeout */
    int canceled = dlock__pg_has_sqlstate(res, "57014");  /* query_canceled */
    /* A deadlock, or a serialization failure of the fence's upsert (a
     * default isolation of repeatable read or serializable): the lock may
     * be held; it is confirmed below, and then the fence bumped alone. */
    int deadlock = dlock__pg_is_conflict(res);
    int rc = DLOCK_OK;
    if (!timed_out && !canceled && !deadlock) {
        rc = dlock__pg_result_error(c, DLOCK_EBACKEND, "cannot take the lock", res);
        PQclear(res);
        give_back(c, key);
        return rc;
    }
    int ours = canceled && (cancel_sent || atomic_load(&c->cancel_requested));
    if (!ours)
        rc = dlock__pg_result_error(c,
                                    timed_out  ? DLOCK_EBUSY
                                    : deadlock ? DLOCK_EBUSY
                                               : DLOCK_EBACKEND,
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
            PGresult *u = dlock__pg_run(c, "dlock_unlock", 1, unlock_values);
            int k = dlock__pg_outcome(c, u);
            PQclear(u);
            if (k != OUTCOME_OK)
                dlock__pg_drop_session(c); /* lost, or ending the session is the sure way to let go */
        }
        return dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
    }
    if (granted) {
        dlock__clear_error();
        int leased = lease_check(c, key, name);
        if (leased != 0)
            return leased < 0 ? leased : held_in_lease_mode(name);
        return bump_fence(c, l, name, key);
    }
    if (timed_out)
        return dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else (waited %ld ms)", name, (long)wait_ms);
    return rc;
}

/* Session mode's wait while a lease-mode client holds the name: the
 * server-side wait is granted at once and gives the lock back; poll,
 * every PG_LEASED_POLL_MS, until the caller's wait is up. */
#define PG_LEASED_POLL_MS 20

/* The wait found the name leased: nap until the next look (dlock_cancel()
 * wakes the nap).  DLOCK_OK: look again; DLOCK_EBUSY: the wait is up. */
static int leased_nap(pg_conn *c, const char *name, int64_t until)
{
    int64_t now = dlock__now_ms();
    if (now >= until)
        return held_in_lease_mode(name);
    int64_t wake = until - now < PG_LEASED_POLL_MS ? until : now + PG_LEASED_POLL_MS;
    (void)dlock__pg_wait_socket(-1, 0, wake, c->wake_fd);
    return DLOCK_OK;
}

/* The wait's statement got no result: the connection broke, or a cancel
 * that the server did not act on in time. */
static int wait_broke(pg_conn *c, enum pg_failure failure, const char *name)
{
    c->failure = failure;
    if (failure != PG_FAIL_CANCEL)
        return dlock__pg_connection_lost(c, DLOCK_ECONN, "the connection broke while waiting for the lock");
    dlock__pg_drop_session(c);
    return dlock__error(DLOCK_ECANCELED,
                        "wait for lock '%s' canceled (the server did not act on the"
                        " cancel: the session was dropped)",
                        name);
}

static int wait_lock(pg_conn *c, pg_lock *l, const char *name, int32_t wait_ms, struct dlock_call *call)
{
    int64_t until = wait_ms < 0 ? INT64_MAX : dlock__now_ms() + wait_ms;
    for (;;) {
        int rc = dlock__pg_ensure_session(c, NULL);
        if (rc != DLOCK_OK)
            return rc;
        /* A cancel that came before the statement went out. */
        if (atomic_load(&c->cancel_requested))
            return dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
        char key[24], idle[16], timeout[16];
        format_key(key, l->key);
        uint32_t want = dlock__session_idle_ms(&c->session, NULL, l->base.ttl_ms);
        format_ms(idle, want);
        int64_t left = until == INT64_MAX ? 0 : until - dlock__now_ms();
        if (until != INT64_MAX && left < 1)
            left = 1;
        format_ms(timeout, (uint32_t)(left > UINT32_MAX ? UINT32_MAX : left)); /* lock_timeout 0: no limit */
        const char *values[4] = {key, timeout, idle, name};
        const int lengths[4] = {0, 0, 0, (int)strlen(name)};
        const int formats[4] = {0, 0, 0, 1};
        char statement[PG_STMT_NAME_MAX];
        dlock__pg_stmt_name(c, "dlock_wait", statement);
        int64_t sent_ms = dlock__now_ms();
        if (!PQsendQueryPrepared(c->pg, statement, 4, values, lengths, formats, 0))
            return dlock__pg_connection_lost(c, DLOCK_ECONN, "cannot send the lock request");
        int cancel_sent = 0;
        c->deadline_ms = call->deadline_ms; /* the wait itself: as long as the caller allows */
        PGresult *res = dlock__pg_await_result(c, 1, &cancel_sent);
        enum pg_failure failure = c->failure;
        dlock__pg_begin_call(c, call->deadline_ms); /* the round trips after it */
        int kind = dlock__pg_outcome(c, res);
        if (kind == OUTCOME_OK) {
            int got = dlock__pg_first_bool(res);
            int ours = ran_in_our_session(res);
            int leased = leased_answer(res);
            rc = got ? take_fence(c, l, res, name) : DLOCK_OK;
            PQclear(res);
            if (!ours)
                return pooler_detected(c, DLOCK_EBACKEND);
            if (leased) {
                rc = leased_nap(c, name, until);
                if (rc != DLOCK_OK)
                    return rc;
                continue;
            }
            if (!got)
                return dlock__error(DLOCK_EBACKEND, "lock '%s': the wait ended without the lock", name);
            if (rc != DLOCK_OK)
                return rc;
            c->session_idle_ms = want;
            return lease_after_wait(c, l, name, sent_ms, &call->lease_start_ms);
        }
        if (kind == OUTCOME_CONNECTION_LOST) {
            PQclear(res);
            return wait_broke(c, failure, name);
        }
        rc = wait_failed(c, l, name, key, idle, res, cancel_sent, wait_ms, &call->lease_start_ms);
        if (rc == DLOCK_OK)
            c->session_idle_ms = want;
        return rc;
    }
}

static int pg_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                      struct dlock_call *call, struct dlock_held **lock_out)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    pg_lock *l = calloc(1, sizeof *l);
    if (!l)
        return dlock__oom();
    l->key = dlock__pg_key(name, strlen(name));
    l->base.ttl_ms = ttl_ms;
    if (c->lease) {
        int rc = dlock__pg_lease_acquire(c, name, ttl_ms, wait_ms, call, l);
        if (rc != DLOCK_OK) {
            free(l);
            return rc;
        }
        *lock_out = &l->base;
        return DLOCK_OK;
    }
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

static int pg_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                     struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_lease_call(c, call->deadline_ms);
    pg_lock *l = pg_lock_of(held);
    if (c->lease)
        return dlock__pg_lease_extend(c, l, name, ttl_ms);
    if (l->base.generation != c->session.generation)
        return session_ended(name);
    if (!l->base.linked)
        return no_longer_held(name);
    if (!dlock__pg_session_usable(c)) {
        dlock__pg_drop_session(c);
        return session_ended(name);
    }
    char key[24], idle[16];
    format_key(key, l->key);
    uint32_t want = dlock__session_idle_ms(&c->session, &l->base, ttl_ms);
    int set = want != c->session_idle_ms;
    format_ms(idle, want);
    const char *values[2] = {key, idle};
    PGresult *res = dlock__pg_run(c, set ? "dlock_check_set" : "dlock_check", set ? 2 : 1, values);
    static const struct pg_what extending = {DLOCK_ELOST, "the connection broke: the lock is lost",
                                             "cannot extend the lock", 0};
    int rc = dlock__pg_answer(c, res, &extending, NULL);
    if (rc == DLOCK_OK && !ran_in_our_session(res)) {
        rc = pooler_detected(c, DLOCK_ELOST);
    } else if (rc == DLOCK_OK && dlock__pg_first_bool(res)) {
        dlock__session_retime(&c->session, &l->base, ttl_ms);
        if (set)
            c->session_idle_ms = want;
    } else if (rc == DLOCK_OK) {
        dlock__session_remove(&c->session, &l->base);
        rc = no_longer_held(name);
    }
    PQclear(res);
    return rc;
}

static int pg_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_lease_call(c, call->deadline_ms);
    pg_lock *l = pg_lock_of(held);
    int rc;
    if (c->lease) {
        rc = dlock__pg_lease_release(c, l, name);
    } else if (l->base.generation != c->session.generation) {
        rc = session_ended(name);
    } else if (!l->base.linked) {
        rc = no_longer_held(name);
    } else if (!dlock__pg_session_usable(c)) {
        dlock__pg_drop_session(c);
        rc = session_ended(name);
    } else {
        dlock__session_remove(&c->session, &l->base);
        char key[24], idle[16];
        format_key(key, l->key);
        uint32_t want = dlock__session_idle_ms(&c->session, NULL, 0);
        int set = want != c->session_idle_ms;
        format_ms(idle, want);
        const char *values[2] = {key, idle};
        PGresult *res = dlock__pg_run(c, set ? "dlock_unlock_set" : "dlock_unlock", set ? 2 : 1, values);
        static const struct pg_what releasing = {DLOCK_ELOST, "the connection broke during release: the lock is lost",
                                                 "cannot release the lock (the session was closed to release it)", 0};
        int kind;
        rc = dlock__pg_answer(c, res, &releasing, &kind);
        if (kind == OUTCOME_OK && !ran_in_our_session(res)) {
            rc = pooler_detected(c, DLOCK_ELOST);
        } else if (kind == OUTCOME_OK) {
            if (set)
                c->session_idle_ms = want;
            if (!dlock__pg_first_bool(res))
                rc = dlock__error(DLOCK_ELOST, "lock '%s' had already been lost: this session no longer held it", name);
        } else if (kind == OUTCOME_SQL_ERROR) {
            /* The lock may still be held: end the session, which surely
             * releases it (other locks on it are reported lost). */
            dlock__pg_drop_session(c);
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
    dlock__pg_begin_call(c, call->deadline_ms);
    if (c->lease)
        return dlock__pg_lease_holder(c, name, buf, buflen);
    char key[24];
    format_key(key, dlock__pg_key(name, strlen(name)));
    const char *values[1] = {key};
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        int rc = dlock__pg_ensure_session(c, &fresh);
        if (rc != DLOCK_OK)
            return rc;
        PGresult *res = dlock__pg_run(c, "dlock_holder", 1, values);
        int kind;
        rc = dlock__pg_answer(c, res, &dlock__pg_reading_holder, &kind);
        if (rc != DLOCK_OK) {
            PQclear(res);
            if (kind == OUTCOME_CONNECTION_LOST && dlock__session_may_retry(attempt, fresh, c->failure == PG_FAIL_TIMEOUT))
                continue;
            return rc;
        }
        if (PQntuples(res) < 1) {
            PQclear(res);
            return dlock__pg_leased_holder(c, name, buf, buflen);
        }
        const char *app = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
        /* No client_addr: a unix socket, or (no backend_start either) a
         * session of another role that we may not look into. */
        const char *client = !PQgetisnull(res, 0, 1) ? PQgetvalue(res, 0, 1) : PQgetisnull(res, 0, 3) ? "?" : "local";
        const char *backend_pid = PQgetvalue(res, 0, 2);
        const char *since = PQgetisnull(res, 0, 3) ? "?" : PQgetvalue(res, 0, 3);
        const char *active = PQgetisnull(res, 0, 4) ? "?" : PQgetvalue(res, 0, 4);
        char text[768];
        /* Our own sessions name themselves "dlock host=... pid=...". */
        if (strncmp(app, "dlock ", 6) == 0)
            snprintf(text, sizeof text, "%s since=%s last_active=%s backend_pid=%s client=%s", app + 6, since, active,
                     backend_pid, client);
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
    pg_conn *c = pg_of(conn);
    /* Lease mode: a dropped connection loses nothing. */
    return c->lease ? 0 : c->session.generation;
}

static uint32_t pg_session_ttl_ms(struct dlock_conn *conn)
{
    pg_conn *c = pg_of(conn);
    return c->pg && !c->lease ? c->session_idle_ms : 0;
}

/* --- list, break, store time, run records ---------------------------------------------- */


/* Session mode: the advisory locks on bigint keys in this database, with
 * the holder's session, and the name where the fence table knows it. */
#define PG_LIST_LOCKS                                                                                                \
    "SELECT k.key, a.application_name, k.pid, %s FROM (SELECT ((l.classid::bigint << 32) | l.objid::bigint) AS key," \
    " l.pid FROM pg_catalog.pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted"               \
    " AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()))"      \
    " AS k LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = k.pid %s"
#define PG_NAME_KEY "('x' || pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(f.name), 'hex'), 16))::bit(64)::bigint"

/* Session mode: is the fence table there (c->table_ready)?  A status. */
static int table_exists(pg_conn *c)
{
    const char *values[1] = {c->table};
    static const Oid types[1] = {PG_TYPE_TEXT};
    PGresult *res = dlock__pg_exec(c, "SELECT pg_catalog.to_regclass($1) IS NOT NULL", 1, types, values, NULL, NULL);
    static const struct pg_what looking = {DLOCK_ECONN, "the connection broke while looking for the table",
                                           "cannot look for the table", 0};
    int rc = dlock__pg_answer(c, res, &looking, NULL);
    if (rc == DLOCK_OK)
        c->table_ready = dlock__pg_first_bool(res);
    PQclear(res);
    return rc;
}

/* A name from encode(name, 'hex'), malloc'ed (NULL: out of memory). */
static char *from_hex(const char *hex)
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

static int session_list(pg_conn *c, const char *prefix, struct dlock_list *list)
{
    int rc = DLOCK_OK;
    /* The fence table gives the names; a list never creates it (issue 23). */
    if (!c->table_ready) {
        rc = dlock__pg_ensure_session(c, NULL);
        if (rc == DLOCK_OK)
            rc = table_exists(c);
        if (rc != DLOCK_OK)
            dlock__clear_error(); /* no names then */
        rc = DLOCK_OK;
    }
    char sql[2048];
    if (c->table_ready) {
        char join[256];
        snprintf(join, sizeof join, "LEFT JOIN %s f ON " PG_NAME_KEY " = k.key", c->table);
        snprintf(sql, sizeof sql, PG_LIST_LOCKS, "pg_catalog.encode(f.name, 'hex'), f.fence", join);
    } else {
        snprintf(sql, sizeof sql, PG_LIST_LOCKS, "NULL::text, NULL::bigint", "");
    }
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
        if (!decoded && !PQgetisnull(res, i, 3) && !(decoded = from_hex(PQgetvalue(res, i, 3)))) {
            rc = dlock__oom();
            break;
        }
        if (plen && (!decoded || strncmp(decoded, prefix, plen) != 0)) {
            free(decoded);
            continue;
        }
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
            .name = decoded,
            .key = PQgetvalue(res, i, 0),
            .holder = holder,
            .host = host[0] ? host : NULL,
            .pid = pid,
            .since_ms = -1,
            .expires_ms = -1,
            .fence = PQgetisnull(res, i, 4) ? 0 : strtoull(PQgetvalue(res, i, 4), NULL, 10),
        };
        rc = dlock__list_add(list, &e);
        free(decoded);
    }
    PQclear(res);
    return rc;
}

static int pg_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    return c->lease ? dlock__pg_lease_list(c, prefix, list) : session_list(c, prefix, list);
}

/* Session mode: end the holder's server session (its locks go with it),
 * waiting up to PG_BREAK_WAIT_MS for it to be gone (PostgreSQL 14's timeout
 * argument), so that the lock is free when this returns 1.  A session that
 * did not end in time (a stopped server process) is not broken yet: an
 * error that says so, never "it was free" (issue 23). */
#define PG_BREAK_WAIT_MS "5000"

static int pg_break_lock(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    if (c->lease)
        return dlock__pg_lease_break(c, name);
    char key[24];
    format_key(key, dlock__pg_key(name, strlen(name)));
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

static int pg_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    return dlock__pg_store_time(c, unix_ms);
}

/* Session mode: the run record lives in the fence table, read and written
 * only while this session holds the lock (checked in the same statement,
 * with the session's token). */
static int session_record(pg_conn *c, pg_lock *l, const char *name, int64_t *slot, int put)
{
    if (l->base.generation != c->session.generation || !l->base.linked)
        return session_ended(name);
    if (!dlock__pg_session_usable(c)) {
        dlock__pg_drop_session(c);
        return session_ended(name);
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
    format_key(key, l->key);
    snprintf(value, sizeof value, "%" PRId64, *slot);
    const char *values[4] = {key, name, c->token, value};
    const int lengths[4] = {0, (int)strlen(name), 0, 0};
    int rc;
    PGresult *res = dlock__pg_session_exec(c, put ? put_sql : get_sql, put ? 4 : 3, types, values, lengths,
                                           put ? "write the run record" : "read the run record", &rc);
    if (!res)
        return l->base.generation != c->session.generation ? session_ended(name) : rc;
    if (!dlock__pg_first_bool(res))
        rc = no_longer_held(name);
    else if (!put)
        *slot = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    return rc;
}

static int pg_record(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                     struct dlock_call *call, int put)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    pg_lock *l = pg_lock_of(held);
    return c->lease ? dlock__pg_lease_record(c, l, name, slot, put) : session_record(c, l, name, slot, put);
}

static int pg_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                         struct dlock_call *call)
{
    return pg_record(conn, held, name, slot, call, 0);
}

static int pg_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                         struct dlock_call *call)
{
    return pg_record(conn, held, name, &slot, call, 1);
}

/* --- connect, disconnect ------------------------------------------------------------- */

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
 * password (to scrub it out of messages), the ports (checked here so that a
 * typo is DLOCK_EINVAL, not a connection failure), connect_timeout. */
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
    const char *env_timeout = getenv("PGCONNECT_TIMEOUT");
    *connect_timeout_ms = env_timeout ? strtol(env_timeout, NULL, 10) * 1000 : PG_CONNECT_TIMEOUT_MS;
    *password = NULL;
    for (PQconninfoOption *o = options; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0 && o->val[0])
            *password = strdup(o->val);
        else if (strcmp(o->keyword, "port") == 0)
            ports_ok = dlock__pg_valid_ports(o->val);
        else if (strcmp(o->keyword, "connect_timeout") == 0)
            *connect_timeout_ms = strtol(o->val, NULL, 10) * 1000;
    }
    PQconninfoFree(options);
    if (ports_ok)
        return DLOCK_OK;
    dlock__pg_secret_free(*password);
    *password = NULL;
    return dlock__error(DLOCK_EINVAL, "malformed PostgreSQL URL: bad port number");
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

static int pg_connect(const char *url, struct dlock_conn **conn_out)
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

static void pg_disconnect(struct dlock_conn *conn)
{
    /* Ending the session releases every advisory lock still on it. */
    if (conn)
        conn_free(pg_of(conn));
}

static const char *const pg_schemes[] = {"postgresql", "postgres", NULL};

static int pg_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run, unsigned keep,
                          struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    return dlock__pg_history_add(c, name, run, keep);
}

static int pg_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                           struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    return dlock__pg_history_read(c, name, max, out);
}

static int pg_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out, struct dlock_call *call)
{
    pg_conn *c = pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    char key[24] = "";
    if (name)
        format_key(key, dlock__pg_key(name, strlen(name)));
    return dlock__pg_check(c, name, key, out);
}

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
    .list = pg_list,
    .break_lock = pg_break_lock,
    .store_time = pg_store_time,
    .record_get = pg_record_get,
    .record_put = pg_record_put,
    .history_add = pg_history_add,
    .history_read = pg_history_read,
    .check = pg_check,
};
