/*
 * The MySQL backend's lease mode (mode=lease): a row per name in the lease
 * table, taken, extended and released by one autocommit statement each
 * (ops.c prepares and runs them).  Lease mode relies on no session state:
 * no GET_LOCK, no user variables; LAST_INSERT_ID(expr) is only read back
 * from the OK packet of the statement that set it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "backend.h"
#include <mysqld_error.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"

/* The longest a lease-mode wait sleeps between two polls. */
#define POLL_MAX_MS 250
/* The first pause, and how it grows (x 3/2 a poll, to POLL_MAX_MS): a lock
 * that is released soon reaches a waiter soon, one held for long costs the
 * server a poll every 125..250 ms. */
#define POLL_MIN_MS 5


/* ------------------------------------------------------------------------ */
/* Lease mode                                                               */
/* ------------------------------------------------------------------------ */

static int random_owner(unsigned char owner[16])
{
    return dlock__random(owner, 16);
}

/* The row is ours, committed: does a session-mode client hold the name
 * (GET_LOCK)?  Then the row is let go again and the lock is busy (0).  A
 * session-mode take reads the row after its GET_LOCK, and this reads the
 * GET_LOCK after the row's commit, so at most one of the two goes on.
 * 1: ours; 0: busy; <0 a status. */
static int session_mode_holds(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, int64_t *left_ms)
{
    long long id = 0;
    int held = dlock__mysql_session_lock_holder(c, l->server_name, &id);
    if (held <= 0)
        return held < 0 ? held : 1;
    unsigned long name_len = (unsigned long)strlen(name), owner_len = 16;
    MYSQL_BIND p[2];
    bind_bytes(&p[0], name, &name_len);
    bind_bytes(&p[1], l->owner, &owner_len);
    struct mysqlbe_result r;
    int status = dlock__mysql_exec(c, OP_LEASE_RELEASE, p, NULL, NULL, NULL, &r, "letting go of the lease", DLOCK_ECONN);
    if (status != DLOCK_OK)
        return status;
    if (left_ms)
        *left_ms = 0;
    return 0;
}

/* One try.  1 taken (l->base.fence set), 0 held by someone else (*left_ms:
 * how long its lease still runs, when asked), <0 a status. */
static int lease_try(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, uint32_t ttl_ms,
                     int64_t *sent_ms, int64_t *left_ms)
{
    unsigned long name_len = (unsigned long)strlen(name), owner_len = 16;
    const char *host = dlock__hostname();
    unsigned long host_len = (unsigned long)strlen(host);
    if (host_len > 255)
        host_len = 255;
    long long ttl = ttl_ms, pid = (long long)getpid();
    MYSQL_BIND p[5];
    bind_bytes(&p[0], name, &name_len);
    bind_bytes(&p[1], l->owner, &owner_len);
    bind_i64(&p[2], &ttl);
    bind_bytes(&p[3], host, &host_len);
    bind_i64(&p[4], &pid);
    struct mysqlbe_result r;
    *sent_ms = dlock__now_ms();
    int status = dlock__mysql_exec(c, OP_LEASE_TAKE, p, NULL, NULL, NULL, &r, "taking the lease", DLOCK_ECONN);
    if (status == DLOCK_EBACKEND && (c->last_errno == ER_LOCK_DEADLOCK || c->last_errno == ER_LOCK_WAIT_TIMEOUT)) {
        /* Another client's take won the row (a deadlock, or on Galera a
         * certification conflict): it is busy, for now. */
        dlock__clear_error();
        if (left_ms)
            *left_ms = 0;
        return 0;
    }
    if (status != DLOCK_OK)
        return status;
    if (r.affected == 1 || r.affected == 2) {
        l->base.fence = r.insert_id;
        if (l->base.fence == 0)
            return dlock__error(DLOCK_EBACKEND, "the server gave no fence for '%s'", name);
        return session_mode_holds(c, l, name, left_ms);
    }
    if (!left_ms)
        return 0;
    long long left = 0;
    int found = 0;
    status = dlock__mysql_exec_i64(c, OP_LEASE_LEFT, p, "reading the lease", &left, &found);
    if (status != DLOCK_OK)
        return status;
    *left_ms = left;
    return 0;
}

/* Sleep up to ms, or until a cancel.  1 when canceled. */
int dlock__mysql_pause(struct mysqlbe_conn *c, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until); /* cancel_cv's clock (mysql_cancel.c) */
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->cancel_mu);
    while (!c->cancel_requested) {
        if (pthread_cond_timedwait(&c->cancel_cv, &c->cancel_mu, &until) != 0)
            break;
    }
    int canceled = c->cancel_requested;
    pthread_mutex_unlock(&c->cancel_mu);
    return canceled;
}

/* A random number of ms in [0, n). */
static int64_t jitter(int64_t n)
{
    unsigned int r = 0;
    if (n <= 1 || getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (unsigned int)dlock__now_ms() * 2654435761u;
    return n > 1 ? (int64_t)(r % (unsigned int)n) : 0;
}

int dlock__mysql_lease_acquire(struct mysqlbe_conn *c, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                          struct dlock_call *call, struct dlock_held **lock_out)
{
    struct mysqlbe_lock *l = calloc(1, sizeof *l);
    if (!l)
        return dlock__oom();
    l->base.ttl_ms = ttl_ms;
    dlock__mysql_lock_name(name, l->server_name, sizeof l->server_name);
    int status = random_owner(l->owner);
    dlock__mysql_begin_call(c, call->deadline_ms);
    if (status == DLOCK_OK)
        status = dlock__mysql_ensure_session(c, NULL);
    if (status == DLOCK_OK)
        status = dlock__mysql_check_durable(c);
    int64_t wait_end_ms = wait_ms > 0 ? dlock__now_ms() + wait_ms : INT64_MAX;
    int64_t backoff = POLL_MIN_MS;
    while (status == DLOCK_OK) {
        int64_t sent_ms, left_ms = 0;
        dlock__mysql_begin_call(c, call->deadline_ms);
        int got = lease_try(c, l, name, ttl_ms, &sent_ms, wait_ms != 0 ? &left_ms : NULL);
        if (got == 1) {
            call->lease_start_ms = sent_ms;
            *lock_out = &l->base;
            return DLOCK_OK;
        }
        if (got < 0) {
            status = got;
            if (dlock__mysql_cancel_asked(c)) /* the cancel cut a poll short */
                status = dlock__error(DLOCK_ECANCELED, "the wait for '%s' was cancelled", name);
            break;
        }
        if (wait_ms == 0) {
            status = dlock__error(DLOCK_EBUSY, "lock '%s' is held by another client", name);
            break;
        }
        int64_t now = dlock__now_ms();
        if (wait_ms != DLOCK_WAIT_FOREVER && now >= wait_end_ms) {
            status =
                dlock__error(DLOCK_EBUSY, "lock '%s' is still held by another client after %d ms", name, (int)wait_ms);
            break;
        }
        /* Backoff with jitter, never more than POLL_MAX_MS apart, and
         * early when the holder's lease runs out. */
        int64_t pause = backoff / 2 + jitter(backoff / 2 + 1);
        if (left_ms > 0 && left_ms + 1 < pause)
            pause = left_ms + 1;
        if (wait_ms != DLOCK_WAIT_FOREVER && now + pause > wait_end_ms)
            pause = wait_end_ms - now;
        if (pause < 1)
            pause = 1;
        backoff = backoff * 3 / 2 > POLL_MAX_MS ? POLL_MAX_MS : backoff * 3 / 2;
        if (dlock__mysql_cancel_asked(c) || dlock__mysql_pause(c, pause)) {
            status = dlock__error(DLOCK_ECANCELED, "the wait for '%s' was cancelled", name);
            break;
        }
    }
    free(l);
    return status;
}

static int lease_check(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name)
{
    unsigned long name_len = (unsigned long)strlen(name), owner_len = 16;
    MYSQL_BIND p[2];
    bind_bytes(&p[0], name, &name_len);
    bind_bytes(&p[1], l->owner, &owner_len);
    long long n = 0;
    int found = 0;
    int status = dlock__mysql_exec_i64(c, OP_LEASE_CHECK, p, "checking the lease", &n, &found);
    return status != DLOCK_OK ? status : found && n == 1;
}

int dlock__mysql_lease_extend(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, uint32_t ttl_ms,
                         struct dlock_call *call)
{
    dlock__mysql_lease_call(c, call->deadline_ms);
    unsigned long name_len = (unsigned long)strlen(name), owner_len = 16;
    long long ttl = ttl_ms;
    MYSQL_BIND p[3];
    bind_i64(&p[0], &ttl);
    bind_bytes(&p[1], name, &name_len);
    bind_bytes(&p[2], l->owner, &owner_len);
    struct mysqlbe_result r;
    int status = dlock__mysql_exec(c, OP_LEASE_EXTEND, p, NULL, NULL, NULL, &r, "extending the lease", DLOCK_ECONN);
    if (status != DLOCK_OK)
        return status;
    if (r.affected == 0 && r.matched != 1) {
        /* 0 also when the new expiry equals the old one (the same ms): the
         * server's info says the row matched; without it, one more look. */
        int ours = r.matched == 0 ? 0 : lease_check(c, l, name);
        if (ours < 0)
            return ours;
        if (!ours)
            return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its lease ran out or it was broken", name);
    }
    l->base.ttl_ms = ttl_ms;
    return DLOCK_OK;
}

int dlock__mysql_lease_release(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, struct dlock_call *call)
{
    dlock__mysql_lease_call(c, call->deadline_ms);
    unsigned long name_len = (unsigned long)strlen(name), owner_len = 16;
    MYSQL_BIND p[2];
    bind_bytes(&p[0], name, &name_len);
    bind_bytes(&p[1], l->owner, &owner_len);
    struct mysqlbe_result r;
    int status = dlock__mysql_exec(c, OP_LEASE_RELEASE, p, NULL, NULL, NULL, &r, "releasing the lease", DLOCK_ECONN);
    free(l);
    if (status != DLOCK_OK)
        return status;
    if (r.affected != 1)
        return dlock__error(DLOCK_ELOST, "lock '%s' was no longer ours: its lease ran out or it was broken", name);
    return DLOCK_OK;
}

int dlock__mysql_lease_holder(struct mysqlbe_conn *c, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    unsigned long name_len = (unsigned long)strlen(name);
    MYSQL_BIND p[1];
    bind_bytes(&p[0], name, &name_len);
    char host[256];
    unsigned long host_len = 0;
    long long pid = 0, taken = 0, left = 0, fence = 0;
    mysqlbe_flag nulls[5] = {0};
    MYSQL_BIND out[5];
    bind_out_text(&out[0], host, sizeof host, &host_len, &nulls[0]);
    bind_out_i64(&out[1], &pid, &nulls[1]);
    bind_out_i64(&out[2], &taken, &nulls[2]);
    bind_out_i64(&out[3], &left, &nulls[3]);
    bind_out_i64(&out[4], &fence, &nulls[4]);
    struct mysqlbe_result r;
    int status = dlock__mysql_exec(c, OP_LEASE_HOLDER, p, out, NULL, NULL, &r, "asking for the holder", DLOCK_ECONN);
    if (status != DLOCK_OK)
        return status;
    if (r.rows == 0) {
        /* A session-mode holder of the name holds it too. */
        char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
        dlock__mysql_lock_name(name, server_name, sizeof server_name);
        long long id = 0;
        int held = dlock__mysql_session_lock_holder(c, server_name, &id);
        if (held == 1 && buf && buflen) {
            char text[128];
            snprintf(text, sizeof text, "mysql connection %lld (session mode)", id);
            dlock__copy_text(buf, buflen, text);
        }
        return held;
    }
    terminate(host, sizeof host, host_len, nulls[0]);
    char text[512], since[32];
    dlock__utc_text(since, sizeof since, taken);
    snprintf(text, sizeof text, "host=%s pid=%lld since=%s expires_in=%lldms fence=%lld", host[0] ? host : "?",
             nulls[1] ? 0LL : pid, since, left, fence);
    if (buf && buflen)
        dlock__copy_text(buf, buflen, text);
    return 1;
}

static int lease_row(void *arg)
{
    struct list_rows *rows = arg;
    terminate(rows->name, sizeof rows->name, rows->name_len, rows->nulls[0]);
    terminate(rows->host, sizeof rows->host, rows->host_len, rows->nulls[1]);
    char holder[320];
    snprintf(holder, sizeof holder, "host=%s pid=%lld", rows->host[0] ? rows->host : "?", rows->pid);
    struct dlock_list_entry e = {rows->name, NULL,        holder,        rows->host,
                                 rows->pid,  rows->since, rows->expires, (uint64_t)rows->fence};
    rows->status = dlock__list_add(rows->list, &e);
    return rows->status != DLOCK_OK;
}

int dlock__mysql_lease_list(struct mysqlbe_conn *c, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    unsigned long prefix_len = (unsigned long)strlen(prefix);
    long long prefix_n = (long long)prefix_len;
    MYSQL_BIND p[2];
    bind_i64(&p[0], &prefix_n);
    bind_bytes(&p[1], prefix, &prefix_len);
    struct list_rows *rows = calloc(1, sizeof *rows);
    if (!rows)
        return dlock__oom();
    rows->list = list;
    MYSQL_BIND out[6];
    bind_out_text(&out[0], rows->name, sizeof rows->name, &rows->name_len, &rows->nulls[0]);
    bind_out_text(&out[1], rows->host, sizeof rows->host, &rows->host_len, &rows->nulls[1]);
    bind_out_i64(&out[2], &rows->pid, &rows->nulls[2]);
    bind_out_i64(&out[3], &rows->since, &rows->nulls[3]);
    bind_out_i64(&out[4], &rows->expires, &rows->nulls[4]);
    bind_out_i64(&out[5], &rows->fence, &rows->nulls[5]);
    struct mysqlbe_result r;
    int status = dlock__mysql_exec(c, OP_LEASE_LIST, p, out, lease_row, rows, &r, "listing the leases", DLOCK_ECONN);
    if (status == DLOCK_OK && rows->status != DLOCK_OK)
        status = rows->status;
    free(rows);
    return status;
}

int dlock__mysql_lease_break(struct mysqlbe_conn *c, const char *name, struct dlock_call *call)
{
    dlock__mysql_begin_call(c, call->deadline_ms);
    unsigned long name_len = (unsigned long)strlen(name);
    MYSQL_BIND p[1];
    bind_bytes(&p[0], name, &name_len);
    struct mysqlbe_result r;
    int status = dlock__mysql_exec(c, OP_LEASE_BREAK, p, NULL, NULL, NULL, &r, "breaking the lease", DLOCK_ECONN);
    if (status != DLOCK_OK)
        return status;
    return r.affected == 1;
}

int dlock__mysql_lease_record(struct mysqlbe_conn *c, struct mysqlbe_lock *l, const char *name, int put, int64_t *slot,
                         struct dlock_call *call)
{
    dlock__mysql_lease_call(c, call->deadline_ms);
    unsigned long name_len = (unsigned long)strlen(name), owner_len = 16;
    long long value = put ? *slot : 0;
    mysqlbe_flag value_null = 0;
    MYSQL_BIND p[3], out;
    struct mysqlbe_result r;
    int status;
    if (put) {
        bind_i64(&p[0], &value);
        bind_bytes(&p[1], name, &name_len);
        bind_bytes(&p[2], l->owner, &owner_len);
        status = dlock__mysql_exec(c, OP_LEASE_RECORD_PUT, p, NULL, NULL, NULL, &r, "writing the run record", DLOCK_ECONN);
        if (status != DLOCK_OK || r.affected != 0 || r.matched == 1)
            return status;
        /* 0 changed: not ours, or the slot was already there (the info says
         * which; without it, one more look). */
        int ours = r.matched == 0 ? 0 : lease_check(c, l, name);
        if (ours < 0)
            return ours;
        if (!ours)
            return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: the run record was not written", name);
        return status;
    }
    bind_bytes(&p[0], name, &name_len);
    bind_bytes(&p[1], l->owner, &owner_len);
    bind_out_i64(&out, &value, &value_null);
    status = dlock__mysql_exec(c, OP_LEASE_RECORD_GET, p, &out, NULL, NULL, &r, "reading the run record", DLOCK_ECONN);
    if (status != DLOCK_OK)
        return status;
    if (r.rows == 0)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours", name);
    *slot = value_null ? 0 : value;
    return DLOCK_OK;
}

int dlock__mysql_lease_row_holder(struct mysqlbe_conn *c, const char *name, char *buf, size_t buflen)
{
    unsigned long name_len = (unsigned long)strlen(name);
    MYSQL_BIND p[1];
    bind_bytes(&p[0], name, &name_len);
    char host[256];
    unsigned long host_len = 0;
    long long pid = 0, left = 0;
    mysqlbe_flag nulls[3] = {0};
    MYSQL_BIND out[3];
    bind_out_text(&out[0], host, sizeof host, &host_len, &nulls[0]);
    bind_out_i64(&out[1], &pid, &nulls[1]);
    bind_out_i64(&out[2], &left, &nulls[2]);
    struct mysqlbe_result r;
    int no_create = c->no_create;
    c->no_create = 1; /* no lease table: nobody holds a lease */
    int status =
        dlock__mysql_exec(c, OP_MODES_LEASE_ROW, p, out, NULL, NULL, &r, "looking for a lease-mode holder", DLOCK_ECONN);
    c->no_create = no_create;
    if (status != DLOCK_OK) {
        /* No lease table here, or none this account can see (session mode
         * needs no rights, nor a database in the URL): no lease holder it
         * could know of (docs/mysql.md, "Modes side by side"). */
        if (c->last_errno != ER_NO_SUCH_TABLE && c->last_errno != ER_NO_DB_ERROR &&
            c->last_errno != ER_TABLEACCESS_DENIED_ERROR && c->last_errno != ER_DBACCESS_DENIED_ERROR)
            return status;
        dlock__clear_error();
        return 0;
    }
    if (r.rows == 0)
        return 0;
    if (buf && buflen) {
        terminate(host, sizeof host, host_len, nulls[0]);
        char text[512];
        snprintf(text, sizeof text, "host=%s pid=%lld expires_in=%lldms (lease mode)", host[0] ? host : "?",
                 nulls[1] ? 0LL : pid, left);
        dlock__copy_text(buf, buflen, text);
    }
    return 1;
}
