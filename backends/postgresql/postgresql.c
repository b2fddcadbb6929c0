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

/* --- acquire ------------------------------------------------------------------------- */

void dlock__pg_key_text(char buf[24], int64_t key)
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

/* How the statements of an acquire fail.  A try that meets a serialization
 * failure or a deadlock is busy. */
static const struct pg_what trying = {DLOCK_ECONN, "the connection broke while taking the lock", "cannot take the lock",
                                      DLOCK_EBUSY};
static const struct pg_what taking = {DLOCK_ECONN, "the connection broke while taking the lock", "cannot take the lock",
                                      0};
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
        return dlock__busy(name, 0);
    if (set)
        c->session_idle_ms = idle;
    return rc;
}

static int try_lock(pg_conn *c, pg_lock *l, const char *name, int64_t *lease_start_ms)
{
    char key[24], idle[16];
    dlock__pg_key_text(key, l->key);
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
        rc = dlock__pg_answer(c, res, &trying, &kind);
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
    dlock__pg_key_text(key, l->key);
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
        return dlock__busy(name, wait_ms);
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
        dlock__pg_key_text(key, l->key);
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
    pg_conn *c = dlock__pg_of(conn);
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
    l->taken_ms = call->lease_start_ms;
    dlock__session_add(&c->session, &l->base);
    *lock_out = &l->base;
    return DLOCK_OK;
}

/* --- extend, release ----------------------------------------------------------------- */

int dlock__pg_session_ended(const char *name)
{
    return dlock__error(DLOCK_ELOST,
                        "lock '%s' is lost: the PostgreSQL session that held it has ended"
                        " (connection broken, session terminated, idle timeout or server restart)",
                        name);
}

int dlock__pg_no_longer_held(const char *name)
{
    return dlock__error(DLOCK_ELOST, "lock '%s' is lost: this session no longer holds it", name);
}

static int pg_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                     struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_lease_call(c, call->deadline_ms);
    pg_lock *l = dlock__pg_lock_of(held);
    if (c->lease)
        return dlock__pg_lease_extend(c, l, name, ttl_ms);
    if (l->base.generation != c->session.generation)
        return dlock__pg_session_ended(name);
    if (!l->base.linked)
        return dlock__pg_no_longer_held(name);
    if (!dlock__pg_session_usable(c)) {
        dlock__pg_drop_session(c);
        return dlock__pg_session_ended(name);
    }
    char key[24], idle[16];
    dlock__pg_key_text(key, l->key);
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
        PQclear(res);
        return dlock__pg_list_register(c, l, name);
    } else if (rc == DLOCK_OK) {
        dlock__session_remove(&c->session, &l->base);
        rc = dlock__pg_no_longer_held(name);
    }
    PQclear(res);
    return rc;
}

static int pg_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_lease_call(c, call->deadline_ms);
    pg_lock *l = dlock__pg_lock_of(held);
    int rc;
    if (c->lease) {
        rc = dlock__pg_lease_release(c, l, name);
    } else if (l->base.generation != c->session.generation) {
        rc = dlock__pg_session_ended(name);
    } else if (!l->base.linked) {
        rc = dlock__pg_no_longer_held(name);
    } else if (!dlock__pg_session_usable(c)) {
        dlock__pg_drop_session(c);
        rc = dlock__pg_session_ended(name);
    } else {
        dlock__session_remove(&c->session, &l->base);
        char key[24], idle[16];
        dlock__pg_key_text(key, l->key);
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
            else
                dlock__pg_list_unregister(c, l);
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

/* The since that the holder's session listed for the key (at the lock's
 * first renewal: ops.c), into `out` as RFC 3339; "" when none. */
static void listed_since(pg_conn *c, const char *key, const char *backend_pid, char *out, size_t size)
{
    static const Oid types[2] = {PG_TYPE_INT8, 23 /* int4 */};
    const char *values[2] = {key, backend_pid};
    PGresult *res = dlock__pg_exec(c,
                                   "SELECT pg_catalog.to_char(since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                                   " FROM " PG_HOLDERS_TABLE " h WHERE key = $1 AND pid = $2 AND backend_start IS NOT DISTINCT FROM"
                                   " COALESCE((SELECT a.backend_start FROM pg_catalog.pg_stat_activity a WHERE a.pid = $2),"
                                   " h.backend_start)",
                                   2, types, values, NULL, NULL);
    int kind;
    (void)dlock__pg_answer(c, res, &dlock__pg_reading_holder, &kind);
    if (kind == OUTCOME_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        dlock__copy_text(out, size, PQgetvalue(res, 0, 0));
    PQclear(res);
    dlock__clear_error(); /* no table, or no row: no since */
}

static int pg_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    if (c->lease)
        return dlock__pg_lease_holder(c, name, buf, buflen);
    char key[24];
    dlock__pg_key_text(key, dlock__pg_key(name, strlen(name)));
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
        const char *session_start = PQgetisnull(res, 0, 3) ? "?" : PQgetvalue(res, 0, 3);
        const char *active = PQgetisnull(res, 0, 4) ? "?" : PQgetvalue(res, 0, 4);
        char since[64] = "";
        listed_since(c, key, backend_pid, since, sizeof since);
        char text[800];
        /* Our own sessions name themselves "dlock host=... pid=...". */
        snprintf(text, sizeof text, "%s%s%s%s session_start=%s last_active=%s backend_pid=%s client=%s",
                 strncmp(app, "dlock ", 6) == 0 ? "" : "application=",
                 strncmp(app, "dlock ", 6) == 0 ? app + 6
                 : app[0]                       ? app
                                                : "?",
                 since[0] ? " since=" : "", since, session_start, active, backend_pid, client);
        dlock__copy_text(buf, buflen, text);
        PQclear(res);
        return 1;
    }
}

/* From another thread, without the client mutex: only flag and wake.  The
 * waiting thread sends the PQcancel itself.  Async-signal-safe as well. */
static void pg_cancel(struct dlock_conn *conn)
{
    pg_conn *c = dlock__pg_of(conn);
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
    pg_conn *c = dlock__pg_of(conn);
    uint64_t count;
    atomic_store(&c->cancel_requested, 0);
    (void)!read(c->wake_fd, &count, sizeof count);
}

static uint64_t pg_session_generation(struct dlock_conn *conn)
{
    pg_conn *c = dlock__pg_of(conn);
    /* Lease mode: a dropped connection loses nothing. */
    return c->lease ? 0 : c->session.generation;
}

static uint32_t pg_session_ttl_ms(struct dlock_conn *conn)
{
    pg_conn *c = dlock__pg_of(conn);
    return c->pg && !c->lease ? c->session_idle_ms : 0;
}

static const char *const pg_schemes[] = {"postgresql", "postgres", NULL};

static int pg_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run, unsigned keep,
                          struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    return dlock__pg_history_add(c, name, run, keep);
}

static int pg_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                           struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    return dlock__pg_history_read(c, name, max, out);
}

static int pg_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out, struct dlock_call *call)
{
    pg_conn *c = dlock__pg_of(conn);
    dlock__pg_begin_call(c, call->deadline_ms);
    char key[24] = "";
    if (name)
        dlock__pg_key_text(key, dlock__pg_key(name, strlen(name)));
    return dlock__pg_check(c, name, key, out);
}

const struct dlock_backend dlock__backend_postgresql = {
    .name = "postgresql",
    .schemes = pg_schemes,
    .connect = dlock__pg_connect,
    .disconnect = dlock__pg_disconnect,
    .acquire = pg_acquire,
    .extend = pg_extend,
    .release = pg_release,
    .holder = pg_holder,
    .cancel = pg_cancel,
    .session_ttl_ms = pg_session_ttl_ms,
    .cancel_clear = pg_cancel_clear,
    .session_generation = pg_session_generation,
    .list = dlock__pg_list,
    .break_lock = dlock__pg_break_lock,
    .store_time = dlock__pg_clock,
    .record_get = dlock__pg_record_get,
    .record_put = dlock__pg_record_put,
    .history_add = pg_history_add,
    .history_read = pg_history_read,
    .check = pg_check,
};
