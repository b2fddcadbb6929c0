/*
 * MySQL / MariaDB backend: a lock is GET_LOCK(name) held by this client's
 * server session; the lease is the session's wait_timeout.
 *
 * Written to the plain MySQL C API so that it builds against MariaDB
 * Connector/C and MySQL's libmysqlclient alike; the few calls that differ are
 * guarded.  See docs/mysql.md for the guarantees and what breaks them, and
 * mysql_conn.h for the files of this backend.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "backend.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "Wait forever" is a year per GET_LOCK call, repeated: a negative timeout
 * means "forever" to MySQL but is an error (NULL) to MariaDB. */
#define FOREVER_CHUNK_S 31536000.0
/* A wait whose granting round trip took at most TTL / this starts the
 * lease at its send time; a longer one is confirmed by one more round trip. */
#define CONFIRM_FRACTION 10

static void mysqlbe_disconnect(struct dlock_conn *conn);

/* The options libdlock reads itself: mode, table, fencing (not prefix). */
static int take_options(struct mysqlbe_conn *c, const char *url, char **rest)
{
    struct dlock_url_options opts;
    int rc = dlock__url_options(url, &opts, rest);
    if (rc != DLOCK_OK)
        return rc;
    rc = dlock__url_options_only(&opts, DLOCK_OPT_MODE | DLOCK_OPT_TABLE | DLOCK_OPT_FENCING, "mysql");
    if (rc == DLOCK_OK) {
        c->lease = opts.mode == DLOCK_MODE_LEASE;
        c->fencing = !c->lease && opts.fencing == DLOCK_FENCING_ON;
        dlock__copy_text(c->table, sizeof c->table,
                         opts.table ? opts.table
                         : c->lease ? "dlock_leases"
                                    : "dlock_fences");
    } else {
        free(*rest);
        *rest = NULL;
    }
    dlock__url_options_free(&opts);
    return rc;
}

static int mysqlbe_connect(const char *url, struct dlock_conn **conn_out)
{
    struct mysqlbe_conn *c = calloc(1, sizeof *c);
    if (!c)
        return dlock__oom();
    char *rest = NULL;
    int rc = take_options(c, url, &rest);
    if (rc == DLOCK_OK)
        rc = dlock__mysql_parse_url(rest, &c->url);
    if (rest) {
        memset(rest, 0, strlen(rest)); /* it holds the password */
        free(rest);
    }
    if (rc == DLOCK_OK) {
        rc = dlock__mysql_load();
        if (rc != DLOCK_OK)
            dlock__mysql_url_free(&c->url);
    }
    if (rc != DLOCK_OK) {
        free(c);
        return rc;
    }
    dlock__mysql_cancel_init(c);
    rc = dlock__mysql_watchdog_start(&c->dog);
    dlock__mysql_begin_call(c, INT64_MAX);
    if (rc == DLOCK_OK)
        rc = dlock__mysql_ensure_session(c, NULL);
    if (rc != DLOCK_OK) {
        mysqlbe_disconnect(&c->base);
        return rc;
    }
    *conn_out = &c->base;
    return DLOCK_OK;
}

static void mysqlbe_disconnect(struct dlock_conn *conn)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    if (!c)
        return;
    dlock__mysql_cancel_destroy(c);
    /* Closing the session releases whatever it still holds. */
    dlock__mysql_drop_session(c);
    dlock__mysql_watchdog_stop(&c->dog);
    dlock__mysql_url_free(&c->url);
    free(c);
}

static int lock_alive(const struct mysqlbe_conn *c, const struct mysqlbe_lock *l)
{
    return c->db && dlock__session_holds(&c->session, &l->base);
}

static int acquire_on_session(struct mysqlbe_conn *c, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                              struct dlock_call *call, struct dlock_held **lock_out);

static int mysqlbe_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                           struct dlock_call *call, struct dlock_held **lock_out)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    dlock__mysql_begin_call(c, call->deadline_ms);
    dlock__mysql_acquiring(c, 1);
    int status = c->lease ? dlock__mysql_lease_acquire(c, name, ttl_ms, wait_ms, call, lock_out)
                          : acquire_on_session(c, name, ttl_ms, wait_ms, call, lock_out);
    /* A round trip that a cancel cut short (a stopped server) is the
     * cancel's doing, not a lost store. */
    if (status == DLOCK_ECONN && dlock__mysql_cancel_asked(c))
        status = dlock__error(DLOCK_ECANCELED,
                              "the wait for '%s' was cancelled (the server did not answer: the session was dropped)",
                              name);
    dlock__mysql_acquiring(c, 0);
    return status;
}

/* Does this session hold the lock (one round trip, sent at *sent_ms)?
 * 1 yes, 0 no, <0 a status: `broken` when the session broke (it is then
 * dropped). */
static int held_by_session(struct mysqlbe_conn *c, const struct mysqlbe_lock *l, int64_t *sent_ms, int broken)
{
    long long ours = 0;
    int ours_null = 0;
    struct statement_error error;
    *sent_ms = dlock__now_ms();
    if (dlock__mysql_run_int(c, &c->stmt_is_ours, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()", l->server_name, NULL, &ours,
                        &ours_null, &error) != 0)
        return dlock__mysql_session_error(c, error.code, error.text, "confirming the lock", broken);
    return !ours_null && ours == 1;
}

/* RELEASE_LOCK on this session: 0 (*released: 1 let go, 0 held by another
 * session, NULL when nobody held it) or -1 with *error filled. */
static int release_lock(struct mysqlbe_conn *c, const struct mysqlbe_lock *l, long long *released, int *released_null,
                        struct statement_error *error)
{
    return dlock__mysql_run_int(c, &c->stmt_release, "SELECT RELEASE_LOCK(?)", l->server_name, NULL, released,
                                released_null, error);
}

/* Let go of a lock that this session was granted but will not keep; when
 * that is not surely done, end the session (which surely lets go). */
static void give_back(struct mysqlbe_conn *c, const struct mysqlbe_lock *l)
{
    long long released = 0;
    int released_null = 0;
    struct statement_error error;
    if (c->db && (release_lock(c, l, &released, &released_null, &error) != 0 || released_null || released != 1))
        dlock__mysql_drop_session(c);
}

/* lock_taken: the name is held by a lease-mode client (the GET_LOCK was let go). */
#define HELD_IN_LEASE_MODE 2
/* How long a session-mode wait sleeps before it looks again at a name held
 * in lease mode. */
#define LEASE_HOLDER_POLL_MS 100

/* The lock is ours: register it (on failure the caller frees it).  A wait was granted at an unknown moment
 * inside its round trip (sent at sent_ms): when that took longer than
 * TTL / CONFIRM_FRACTION, one more round trip confirms the lock and its send
 * time starts the lease; a quick grant starts it at the wait's send time. */
static int lock_taken(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, int confirm, int64_t sent_ms,
                      uint32_t ttl_ms, struct dlock_call *call, struct dlock_held **lock_out)
{
    if (confirm && dlock__now_ms() - sent_ms > (int64_t)(ttl_ms / CONFIRM_FRACTION)) {
        int held = held_by_session(c, l, &sent_ms, DLOCK_ECONN);
        if (held <= 0)
            return held < 0 ? held
                            : dlock__error(DLOCK_EBACKEND,
                                           "lock '%s' was granted, but the "
                                           "session does not hold it",
                                           name);
    }
    /* A lease-mode client of the default table may hold the name: then
     * the lock is not ours after all (see session_mode_holds in
     * mysql_ops.c for why one of the two always backs off). */
    int lease_held = dlock__mysql_lease_row_holder(c, name, NULL, 0);
    if (lease_held != 0) {
        give_back(c, l);
        return lease_held < 0 ? lease_held : HELD_IN_LEASE_MODE;
    }
    if (c->fencing && !l->base.fence) {
        /* Granted outside the fenced statement (found held after an error):
         * the counter now, durable (autocommit, InnoDB) before the acquire
         * returns.  A failure lets go of the lock: no token, no lock. */
        int status = dlock__mysql_fence_bump(c, l, name);
        if (status != DLOCK_OK) {
            give_back(c, l);
            return status;
        }
    }
    call->lease_start_ms = sent_ms;
    l->taken_ms = sent_ms;
    dlock__session_add(&c->session, &l->base);
    *lock_out = &l->base;
    return DLOCK_OK;
}

/* GET_LOCK's timeout for what is left of the wait. */
static double get_lock_timeout(const struct mysqlbe_conn *c, int32_t wait_ms, int64_t wait_end_ms)
{
    if (wait_ms == DLOCK_WAIT_FOREVER)
        return FOREVER_CHUNK_S;
    if (wait_ms == 0)
        return 0;
    int64_t left = wait_end_ms - dlock__now_ms();
    if (left < 0)
        left = 0;
    /* MariaDB honours fractions of a second; MySQL takes whole seconds, so
     * round up there rather than give up early. */
    return c->is_mariadb ? (double)left / 1000.0 : (double)((left + 999) / 1000);
}

/* One GET_LOCK round trip, bounded by the call's deadline (a cancel may cut
 * it shorter).  Returns what run_int_statement does; *canceled: whether a
 * cancel came during it.  A broken session is dropped here, before the wait
 * ends, so that dlock__mysql_end_wait() need not wait for a KILL to a dead session. */
static int get_lock_round(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, double timeout_s,
                          struct dlock_call *call, long long *granted, int *granted_null, struct statement_error *error,
                          int *canceled, int waiting)
{
    c->deadline_ms = call->deadline_ms; /* the wait itself: as long as the caller allows */
    int failed;
    /* fencing=on: the counter is bumped in the same round trip -- except
     * where the statement would be written to the binary log as a
     * statement, GET_LOCK and all, and replayed on replicas (where the lock
     * may be held, so that their counter falls behind): then GET_LOCK
     * alone, and the bump after the grant (lock_taken). */
    if (c->fencing && !c->binlog_statement) {
        *granted_null = 0;
        failed = dlock__mysql_fenced_get_lock(c, l, name, timeout_s, granted, error);
    } else {
        failed = dlock__mysql_run_int(c, &c->stmt_get_lock, "SELECT GET_LOCK(?, ?)", l->server_name, &timeout_s, granted,
                                 granted_null, error);
    }
    dlock__mysql_begin_call(c, call->deadline_ms);
    if (failed && dlock__mysql_connection_lost(error->code))
        dlock__mysql_session_error(c, error->code, error->text, "waiting in GET_LOCK", DLOCK_ECONN);
    *canceled = waiting ? dlock__mysql_end_wait(c) : 0;
    if (!failed && !c->db) { /* end_wait dropped the session: whatever GET_LOCK said is gone with it */
        error->code = CR_SERVER_LOST;
        dlock__copy_text(error->text, sizeof error->text, NO_ANSWER_TEXT);
        failed = -1;
    }
    return failed;
}

/* GET_LOCK ended in an error or NULL (a KILL QUERY, ours or not, may land
 * just after the grant): was the lock granted anyway?  Then it is released
 * (our cancel) or kept (someone else's KILL QUERY), never held unknowingly.
 * DLOCK_OK: kept; 1: not held; <0 a status. */
static int granted_anyway(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, int canceled,
                          uint32_t ttl_ms, struct dlock_call *call, struct dlock_held **lock_out)
{
    int64_t sent_ms;
    int held = held_by_session(c, l, &sent_ms, DLOCK_ECONN);
    if (held <= 0)
        return held < 0 ? held : 1;
    if (!canceled)
        return lock_taken(c, l, name, 0, sent_ms, ttl_ms, call, lock_out);
    give_back(c, l);
    return 1;
}

/* A session with the idle limit this lock needs, set before GET_LOCK: once
 * granted, the lock must never sit on a session that outlives its TTL.
 * *previous: the limit before.  DLOCK_OK; 1: try again on a new session;
 * else a status. */
static int session_for(struct mysqlbe_conn *c, const struct mysqlbe_lock *l, int attempt, int *fresh,
                       unsigned int *previous)
{
    int status = dlock__mysql_ensure_session(c, fresh);
    if (status != DLOCK_OK)
        return status;
    *previous = c->wait_timeout_s;
    status = dlock__mysql_set_lease(c, dlock__mysql_lease_needed(c, NULL, l->base.ttl_ms), DLOCK_ECONN);
    if (status == DLOCK_ECONN && dlock__session_may_retry(attempt, *fresh, 0))
        return 1;
    return status;
}

/* GET_LOCK's connection broke (the session is already dropped).  1: try
 * once more on a new session, for the time that is left (the session died
 * under us: idle timeout, restart, KILL); else the status. */
static int get_lock_broke(const char *name, const struct statement_error *error, int canceled, int attempt, int fresh,
                          int time_left)
{
    int no_answer = strcmp(error->text, NO_ANSWER_TEXT) == 0;
    if (canceled)
        return dlock__error(DLOCK_ECANCELED, "the wait for '%s' was cancelled%s", name,
                            no_answer ? " (the server did not act on it: the session was dropped)" : "");
    if (time_left && dlock__session_may_retry(attempt, fresh, no_answer))
        return 1;
    return dlock__error(DLOCK_ECONN, "connection lost while waiting in GET_LOCK: %s", error->text);
}

/* GET_LOCK did not give us the lock and the session lives on.  1: wait
 * again (a year went by); else the status. */
static int after_refusal(struct mysqlbe_conn *c, const char *name, int32_t wait_ms, unsigned int previous, int failed,
                         int granted_null, int canceled, const struct statement_error *error)
{
    /* The idle limit must suit the locks still held there, not the one we
     * did not get. */
    if (c->db && c->wait_timeout_s != previous && c->session.locks) {
        int lease_status = dlock__mysql_set_lease(c, dlock__mysql_lease_needed(c, NULL, 0), DLOCK_ECONN);
        if (lease_status != DLOCK_OK)
            return lease_status;
    }
    if (canceled)
        return dlock__error(DLOCK_ECANCELED, "the wait for '%s' was cancelled", name);
    if (failed)
        return dlock__error(DLOCK_EBACKEND, "GET_LOCK for '%s' failed: %s", name, error->text);
    if (granted_null)
        return dlock__error(DLOCK_EBACKEND, "GET_LOCK for '%s' returned NULL (an error on the server)", name);
    if (wait_ms == DLOCK_WAIT_FOREVER)
        return 1;
    return dlock__error(DLOCK_EBUSY, "lock '%s' is held by another session", name);
}

/* GET_LOCK was granted, but a lease-mode client holds the name.  1: look
 * again after a pause (a wait with time left); else the status. */
static int held_in_lease_mode(struct mysqlbe_conn *c, const char *name, int32_t wait_ms, int64_t wait_end_ms,
                              unsigned int previous)
{
    if (c->db && c->wait_timeout_s != previous && c->session.locks) {
        int lease_status = dlock__mysql_set_lease(c, dlock__mysql_lease_needed(c, NULL, 0), DLOCK_ECONN);
        if (lease_status != DLOCK_OK)
            return lease_status;
    }
    int64_t pause = LEASE_HOLDER_POLL_MS;
    if (wait_ms != DLOCK_WAIT_FOREVER) {
        int64_t left = wait_end_ms - dlock__now_ms();
        if (wait_ms == 0 || left <= 0)
            return dlock__error(DLOCK_EBUSY, "lock '%s' is held by a lease-mode client (mode=lease)", name);
        if (pause > left)
            pause = left;
    }
    if (dlock__mysql_pause(c, pause))
        return dlock__error(DLOCK_ECANCELED, "the wait for '%s' was cancelled", name);
    return 1;
}

static int acquire_on_session(struct mysqlbe_conn *c, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                              struct dlock_call *call, struct dlock_held **lock_out)
{
    struct mysqlbe_lock *l = calloc(1, sizeof *l);
    if (!l)
        return dlock__oom();
    dlock__mysql_lock_name(name, l->server_name, sizeof l->server_name);
    l->base.ttl_ms = ttl_ms;

    int64_t wait_end_ms = wait_ms > 0 ? dlock__now_ms() + wait_ms : 0;
    int status;
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        unsigned int previous = 0;
        if (attempt > 0 && dlock__mysql_cancel_asked(c)) { /* no new session for a cancelled wait */
            status = dlock__error(DLOCK_ECANCELED, "the wait for '%s' was cancelled", name);
            break;
        }
        status = session_for(c, l, attempt, &fresh, &previous);
        if (status == 1)
            continue;
        if (status == DLOCK_OK && c->fencing)
            status = dlock__mysql_check_durable(c);
        if (status != DLOCK_OK)
            break;
        int waiting = wait_ms != 0;
        if (waiting && dlock__mysql_begin_wait(c)) {
            if (c->wait_timeout_s != previous && c->session.locks)
                (void)dlock__mysql_set_lease(c, dlock__mysql_lease_needed(c, NULL, 0), DLOCK_ECONN);
            status = dlock__error(DLOCK_ECANCELED, "the wait for '%s' was cancelled", name);
            break;
        }
        long long granted = 0;
        int granted_null = 0, canceled = 0;
        struct statement_error error;
        int64_t sent_ms = dlock__now_ms();
        l->base.fence = 0; /* a token of an earlier round (let go for a lease-mode holder) is stale */
        int failed = get_lock_round(c, l, name, get_lock_timeout(c, wait_ms, wait_end_ms), call, &granted,
                                    &granted_null, &error, &canceled, waiting);
        if (!failed && !granted_null && granted == 1) {
            status = lock_taken(c, l, name, waiting, sent_ms, ttl_ms, call, lock_out);
            if (status == DLOCK_OK)
                return DLOCK_OK;
            if (status == HELD_IN_LEASE_MODE) {
                status = held_in_lease_mode(c, name, wait_ms, wait_end_ms, previous);
                if (status == 1)
                    continue;
            }
            break;
        }
        if (failed && dlock__mysql_connection_lost(error.code)) {
            status =
                get_lock_broke(name, &error, canceled, attempt, fresh, wait_ms <= 0 || dlock__now_ms() < wait_end_ms);
            if (status == 1)
                continue;
            break;
        }
        if (failed || granted_null) {
            status = granted_anyway(c, l, name, canceled, ttl_ms, call, lock_out);
            if (status == DLOCK_OK)
                return DLOCK_OK;
            if (status == HELD_IN_LEASE_MODE) {
                status = canceled ? dlock__error(DLOCK_ECANCELED, "the wait for '%s' was cancelled", name)
                                  : held_in_lease_mode(c, name, wait_ms, wait_end_ms, previous);
                if (status == 1)
                    continue;
                break;
            }
            if (status < 0)
                break;
        }
        status = after_refusal(c, name, wait_ms, previous, failed, granted_null, canceled, &error);
        if (status != 1)
            break;
    }
    free(l);
    return status;
}

static int mysqlbe_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                          struct dlock_call *call)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    dlock__mysql_lease_call(c, call->deadline_ms);
    struct mysqlbe_lock *l = dlock__mysql_lock_of(held);
    if (l && c->lease)
        return dlock__mysql_lease_extend(c, l, name, ttl_ms, call);
    if (!l || !lock_alive(c, l))
        return dlock__error(DLOCK_ELOST, "lock '%s' was lost with the session that held it", name);
    int status = dlock__mysql_set_lease(c, dlock__mysql_lease_needed(c, l, ttl_ms), DLOCK_ELOST);
    if (status != DLOCK_OK)
        return status;
    /* Any statement also resets the session's idle timer: that is the renewal. */
    int64_t sent_ms;
    int ours = held_by_session(c, l, &sent_ms, DLOCK_ELOST);
    if (ours < 0)
        return ours;
    if (!ours)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer held by this session", name);
    if (ttl_ms != l->base.ttl_ms) /* rare: a heartbeat keeps its TTL */
        dlock__session_retime(&c->session, &l->base, ttl_ms);
    return dlock__mysql_list_register(c, l, name);
}

static int mysqlbe_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    dlock__mysql_lease_call(c, call->deadline_ms);
    struct mysqlbe_lock *l = dlock__mysql_lock_of(held);
    if (!l)
        return DLOCK_OK;
    if (c->lease)
        return dlock__mysql_lease_release(c, l, name, call);
    int alive = lock_alive(c, l);
    dlock__session_remove(&c->session, &l->base);
    int status = DLOCK_OK;
    if (!alive) {
        status = dlock__error(DLOCK_ELOST, "lock '%s' was lost with the session that held it", name);
    } else {
        long long released = 0;
        int released_null = 0;
        struct statement_error error;
        if (release_lock(c, l, &released, &released_null, &error) != 0) {
            status = dlock__mysql_session_error(c, error.code, error.text, "releasing the lock", DLOCK_ELOST);
        } else if (released_null) {
            status = dlock__error(DLOCK_ELOST, "lock '%s' was not held any more", name);
        } else if (released != 1) {
            status = dlock__error(DLOCK_ELOST, "lock '%s' is held by another session now", name);
        } else {
            dlock__mysql_list_unregister(c, l);
        }
        if (status == DLOCK_OK && c->session.locks) {
            /* The locks left may allow a longer idle limit than this one did. */
            int lease_status = dlock__mysql_set_lease(c, dlock__mysql_lease_needed(c, NULL, 0), DLOCK_ECONN);
            if (lease_status != DLOCK_OK)
                dlock__clear_error(); /* released all the same; the others will know */
        }
    }
    free(l);
    return status;
}

/* The holder query: who holds a lock, as the process list shows them. */
static const char holder_sql[] = "SELECT h.id, p.USER, p.HOST, p.TIME, p.ID = CONNECTION_ID()"
                                 " FROM (SELECT IS_USED_LOCK(?) AS id) AS h"
                                 " LEFT JOIN information_schema.PROCESSLIST AS p ON p.ID = h.id";

/* One row of holder_sql, and where the client library puts it. */
struct holder_row {
    long long id, seconds, is_self;
    char user[129], host[262];
    unsigned long user_len, host_len;
    mysqlbe_flag nulls[5];
    MYSQL_BIND cols[5];
};

static void holder_bind(struct holder_row *r)
{
    memset(r, 0, sizeof *r);
    r->cols[0].buffer_type = MYSQL_TYPE_LONGLONG;
    r->cols[0].buffer = &r->id;
    r->cols[1].buffer_type = MYSQL_TYPE_STRING;
    r->cols[1].buffer = r->user;
    r->cols[1].buffer_length = sizeof r->user - 1;
    r->cols[1].length = &r->user_len;
    r->cols[2].buffer_type = MYSQL_TYPE_STRING;
    r->cols[2].buffer = r->host;
    r->cols[2].buffer_length = sizeof r->host - 1;
    r->cols[2].length = &r->host_len;
    r->cols[3].buffer_type = MYSQL_TYPE_LONGLONG;
    r->cols[3].buffer = &r->seconds;
    r->cols[4].buffer_type = MYSQL_TYPE_LONGLONG;
    r->cols[4].buffer = &r->is_self;
    for (int i = 0; i < 5; i++)
        r->cols[i].is_null = &r->nulls[i];
}

/* The holder text of a row that names a holder. */
static void holder_text(struct holder_row *r, char *buf, size_t buflen)
{
    char text[512];
    r->user[r->user_len < sizeof r->user ? r->user_len : sizeof r->user - 1] = '\0';
    r->host[r->host_len < sizeof r->host ? r->host_len : sizeof r->host - 1] = '\0';
    if (r->nulls[1]) {
        snprintf(text, sizeof text,
                 "mysql connection %lld (not in the visible process list: the PROCESS "
                 "privilege shows other users' connections)",
                 r->id);
    } else {
        snprintf(text, sizeof text, "mysql connection %lld, user %s from %s, last active %llds ago%s", r->id, r->user,
                 r->nulls[2] ? "?" : r->host, r->nulls[3] ? 0LL : r->seconds,
                 (!r->nulls[4] && r->is_self) ? " (this client)" : "");
    }
    if (buf && buflen)
        dlock__copy_text(buf, buflen, text);
}

/* A failed holder round trip (cut: the watchdog ended it).  The statement
 * is closed (not prepared yet) or its result freed (prepared) before the
 * session may be dropped.  1: try again on a new session; else the status. */
static int holder_failed(struct mysqlbe_conn *c, MYSQL_STMT *stmt, int prepared, int cut, int may_retry)
{
    unsigned int err = cut ? CR_SERVER_LOST : mysql_stmt_errno(stmt);
    char text[256];
    dlock__copy_text(text, sizeof text, cut ? NO_ANSWER_TEXT : mysql_stmt_error(stmt));
    if (prepared)
        mysql_stmt_free_result(stmt);
    else
        mysql_stmt_close(stmt);
    int status = dlock__mysql_session_error(c, err ? err : CR_UNKNOWN_ERROR, text, "asking for the holder", DLOCK_ECONN);
    return status == DLOCK_ECONN && may_retry ? 1 : status;
}

/* Prepare holder_sql once per session.  DLOCK_OK, 1: try again, or a status. */
static int holder_prepare(struct mysqlbe_conn *c, int attempt, int fresh)
{
    if (c->stmt_holder)
        return DLOCK_OK;
    MYSQL_STMT *stmt = mysql_stmt_init(c->db);
    if (!stmt)
        return dlock__oom();
    dlock__mysql_watch(c, c->db, c->deadline_ms);
    int failed = mysql_stmt_prepare(stmt, holder_sql, (unsigned long)strlen(holder_sql)) != 0;
    int cut = dlock__mysql_unwatch(c);
    if (cut || failed) {
        /* A prepare that was cut is retried too (as it always was). */
        return holder_failed(c, stmt, 0, !failed, dlock__session_may_retry(attempt, fresh, 0));
    }
    c->stmt_holder = stmt;
    return DLOCK_OK;
}

static int mysqlbe_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    if (c->lease)
        return dlock__mysql_lease_holder(c, name, buf, buflen, call);
    dlock__mysql_begin_call(c, call->deadline_ms);
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    dlock__mysql_lock_name(name, server_name, sizeof server_name);
    unsigned long name_len = (unsigned long)strlen(server_name);
    MYSQL_BIND param;
    memset(&param, 0, sizeof param);
    param.buffer_type = MYSQL_TYPE_STRING;
    param.buffer = server_name;
    param.buffer_length = name_len;
    param.length = &name_len;
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        int status = dlock__mysql_ensure_session(c, &fresh);
        if (status == DLOCK_OK)
            status = holder_prepare(c, attempt, fresh);
        if (status == 1)
            continue;
        if (status != DLOCK_OK)
            return status;
        MYSQL_STMT *stmt = c->stmt_holder;
        struct holder_row row;
        holder_bind(&row);
        int fetch = 1;
        dlock__mysql_watch(c, c->db, c->deadline_ms);
        int failed = mysql_stmt_bind_param(stmt, &param) != 0 || mysql_stmt_execute(stmt) != 0 ||
                     mysql_stmt_bind_result(stmt, row.cols) != 0 || ((fetch = mysql_stmt_fetch(stmt)) == 1);
        int cut = dlock__mysql_unwatch(c);
        if (failed || cut) {
            status = holder_failed(c, stmt, 1, cut, dlock__session_may_retry(attempt, fresh, cut));
            if (status == 1)
                continue;
            return status;
        }
        mysql_stmt_free_result(stmt);
        if (fetch == MYSQL_NO_DATA || row.nulls[0])
            return dlock__mysql_lease_row_holder(c, name, buf, buflen); /* a lease-mode holder, or nobody */
        holder_text(&row, buf, buflen);
        if (buf && buflen)
            dlock__mysql_listed_holder(c, server_name, row.id, buf, buflen);
        return 1;
    }
}

/* Changed by every connect and every drop.  Lease mode keeps nothing in
 * the session: a new connection loses no lock. */
static uint64_t mysqlbe_session_generation(struct dlock_conn *conn)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    return c->lease ? 0 : c->session.generation;
}

static uint32_t mysqlbe_session_ttl_ms(struct dlock_conn *conn)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    if (!c || c->lease || !c->db || c->wait_timeout_s == 0)
        return 0;
    uint64_t ms = (uint64_t)c->wait_timeout_s * 1000u;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static int mysqlbe_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    return c->lease ? dlock__mysql_lease_list(c, prefix, list, call) : dlock__mysql_session_list(c, prefix, list, call);
}

static int mysqlbe_break(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    return c->lease ? dlock__mysql_lease_break(c, name, call) : dlock__mysql_session_break(c, name, call);
}

static int mysqlbe_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    return dlock__mysql_store_time(dlock__mysql_of(conn), unix_ms, call);
}

static int mysqlbe_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                              struct dlock_call *call)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    struct mysqlbe_lock *l = dlock__mysql_lock_of(held);
    if (c->lease)
        return dlock__mysql_lease_record(c, l, name, 0, slot, call);
    if (!lock_alive(c, l))
        return dlock__error(DLOCK_ELOST, "lock '%s' was lost with the session that held it", name);
    return dlock__mysql_session_record(c, l, name, 0, slot, call);
}

static int mysqlbe_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                              struct dlock_call *call)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    struct mysqlbe_lock *l = dlock__mysql_lock_of(held);
    if (c->lease)
        return dlock__mysql_lease_record(c, l, name, 1, &slot, call);
    if (!lock_alive(c, l))
        return dlock__error(DLOCK_ELOST, "lock '%s' was lost with the session that held it", name);
    return dlock__mysql_session_record(c, l, name, 1, &slot, call);
}

static const char *const mysqlbe_schemes[] = {"mysql", "mariadb", NULL};

static int mysqlbe_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                               unsigned keep, struct dlock_call *call)
{
    return dlock__mysql_history_add(dlock__mysql_of(conn), name, run, keep, call);
}

static int mysqlbe_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                                struct dlock_call *call)
{
    return dlock__mysql_history_read(dlock__mysql_of(conn), name, max, out, call);
}

static int mysqlbe_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out,
                         struct dlock_call *call)
{
    return dlock__mysql_check(dlock__mysql_of(conn), name, out, call);
}

const struct dlock_backend dlock__backend_mysql = {
    .name = "mysql",
    .schemes = mysqlbe_schemes,
    .connect = mysqlbe_connect,
    .disconnect = mysqlbe_disconnect,
    .acquire = mysqlbe_acquire,
    .extend = mysqlbe_extend,
    .release = mysqlbe_release,
    .holder = mysqlbe_holder,
    .cancel = dlock__mysql_cancel,
    .session_ttl_ms = mysqlbe_session_ttl_ms,
    .cancel_clear = dlock__mysql_cancel_clear,
    .session_generation = mysqlbe_session_generation,
    .list = mysqlbe_list,
    .break_lock = mysqlbe_break,
    .store_time = mysqlbe_time,
    .record_get = mysqlbe_record_get,
    .record_put = mysqlbe_record_put,
    .history_add = mysqlbe_history_add,
    .history_read = mysqlbe_history_read,
    .check = mysqlbe_check,
};
