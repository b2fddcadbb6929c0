/*
 * SQLite backend: a row per lock name in a table of the database file.
 *
 * The row records a random owner token, a fencing counter that grows with
 * every acquisition, who holds it, and when the lease ends.  Expiry is
 * measured on CLOCK_BOOTTIME together with the kernel's boot id: that clock is
 * shared by every process on the host, never steps when the wall clock is
 * set, and a row written during an earlier boot counts as expired.  This is
 * why the backend is for one host only.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "backend.h"

#define POLL_FIRST_MS 1
#define POLL_MAX_MS 8           /* without inotify: poll this often at most */
#define POLL_MAX_WATCHED_MS 250 /* with inotify: a change wakes the waiter anyway */

static const char *const statement_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    /* Take the row when it is free, expired, or from an earlier boot.  The
     * fence: one more than the row's, and more than this boot's floor ?9. */
    [STMT_TAKE] = "INSERT INTO dlock_locks(name, owner, fence, holder_host, holder_pid, boot_id,"
                  " acquired_at, expires_boot_ms) VALUES (?1, ?2, ?9 + 1, ?3, ?4, ?5, ?6, ?7)"
                  " ON CONFLICT(name) DO UPDATE SET owner = excluded.owner,"
                  " fence = max(dlock_locks.fence + 1, ?9 + 1), holder_host = excluded.holder_host,"
                  " holder_pid = excluded.holder_pid, boot_id = excluded.boot_id,"
                  " acquired_at = excluded.acquired_at, expires_boot_ms = excluded.expires_boot_ms"
                  " WHERE dlock_locks.owner IS NULL OR dlock_locks.boot_id IS NOT excluded.boot_id"
                  " OR dlock_locks.expires_boot_ms <= ?8 RETURNING fence",
    [STMT_EXTEND] = "UPDATE dlock_locks SET expires_boot_ms = ?3"
                    " WHERE name = ?1 AND owner = ?2 AND boot_id = ?4 AND expires_boot_ms > ?5",
    /* The release of a live row (one row changed: released); when none
     * changes, STMT_RELEASE_LATE lets go of the own row whose lease ran out
     * (the lock was lost either way).  No RETURNING: it costs an UPDATE on
     * this table about 10 us (SQLite 3.40), a fifth of a cycle. */
    [STMT_RELEASE] = "UPDATE dlock_locks SET owner = NULL, expires_boot_ms = 0"
                     " WHERE name = ?1 AND owner = ?2 AND boot_id = ?3 AND expires_boot_ms > ?4",
    [STMT_RELEASE_LATE] = "UPDATE dlock_locks SET owner = NULL, expires_boot_ms = 0 WHERE name = ?1 AND owner = ?2",
    [STMT_HOLDER] = "SELECT holder_host, holder_pid, acquired_at, expires_boot_ms - ?3, fence"
                    " FROM dlock_locks WHERE name = ?1 AND owner IS NOT NULL AND boot_id = ?2"
                    " AND expires_boot_ms > ?3",
    /* While waiting: how long the current lease still runs (no row: free). */
    [STMT_PEEK] = "SELECT expires_boot_ms - ?3 FROM dlock_locks WHERE name = ?1 AND owner IS NOT NULL"
                  " AND boot_id = ?2 AND expires_boot_ms > ?3",
    /* The epoch (docs/fencing.md): the first take of a boot commits with an
     * fsync of the WAL (synchronous=FULL) the boot's floor, above every
     * token of the earlier boots, lost commits included; every other commit
     * is synchronous=NORMAL. */
    [STMT_SYNC_FULL] = "PRAGMA synchronous=FULL",
    [STMT_SYNC_NORMAL] = "PRAGMA synchronous=NORMAL",
    [STMT_EPOCH_GET] = "SELECT boot_id, floor FROM dlock_epoch",
    [STMT_EPOCH_HIGHEST] = "SELECT coalesce(max(fence), 0) FROM dlock_locks",
    [STMT_EPOCH_PUT] = "INSERT INTO dlock_epoch(one, boot_id, floor) VALUES (1, ?1, ?2)"
                       " ON CONFLICT(one) DO UPDATE SET boot_id = excluded.boot_id, floor = excluded.floor",
    /* The live rows (this boot, lease running) whose name starts with ?1:
     * compared on the bytes (substr on a BLOB), not with LIKE, whose _ and %
     * and case folding would widen the prefix. */
    [STMT_LIST] = "SELECT name, holder_host, holder_pid, acquired_at, expires_boot_ms - ?3, fence FROM dlock_locks"
                  " WHERE owner IS NOT NULL AND boot_id = ?2 AND expires_boot_ms > ?3"
                  " AND substr(CAST(name AS BLOB), 1, length(CAST(?1 AS BLOB))) = CAST(?1 AS BLOB)",
    /* Break a live row: only one whose lease still runs counts (1 row), a
     * free or expired one is left as it is (0 rows). */
    [STMT_BREAK] = "UPDATE dlock_locks SET owner = NULL, expires_boot_ms = 0"
                   " WHERE name = ?1 AND owner IS NOT NULL AND boot_id = ?2 AND expires_boot_ms > ?3",
    /* The run record, read and written only while the caller's owner token
     * still holds a live row. */
    [STMT_RECORD_GET] = "SELECT coalesce(last_slot, 0) FROM dlock_locks"
                        " WHERE name = ?1 AND owner = ?2 AND boot_id = ?3 AND expires_boot_ms > ?4",
    [STMT_RECORD_PUT] = "UPDATE dlock_locks SET last_slot = ?5"
                        " WHERE name = ?1 AND owner = ?2 AND boot_id = ?3 AND expires_boot_ms > ?4",
};

/* How far a new boot's floor is above the highest fence the file kept:
 * more than the commits a power loss can take away (the WAL frames written
 * since its last sync: about a thousand with SQLite's auto-checkpoint, far
 * fewer than 2^32 in any case).  2^31 boots fit in a fence. */
#define EPOCH_GAP (INT64_C(1) << 32)

/* A prepared statement, prepared at its first use (a short-lived dlock run
 * needs half of them); NULL with the error left in the connection. */
sqlite3_stmt *dlock__sqlite_stmt(sqlite_conn *c, int which)
{
    if (!c->stmt[which] && sqlite3_prepare_v3(c->db, statement_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                              &c->stmt[which], NULL) != SQLITE_OK)
        return NULL;
    return c->stmt[which];
}

sqlite3_stmt *dlock__sqlite_live(sqlite_conn *c, int which, const char *text, int64_t now_boot_ms)
{
    sqlite3_stmt *s = dlock__sqlite_stmt(c, which);
    if (s) {
        sqlite3_bind_text(s, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, dlock__sqlite_boot_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, now_boot_ms);
    }
    return s;
}

/* Run a statement without results; returns the sqlite result code. */
static int run_simple(sqlite_conn *c, int which)
{
    sqlite3_stmt *s = dlock__sqlite_stmt(c, which);
    if (!s)
        return sqlite3_errcode(c->db) != SQLITE_OK ? sqlite3_errcode(c->db) : SQLITE_ERROR;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * This boot's floor, inside the take's transaction (BEGIN IMMEDIATE: one
 * writer at a time).  The epoch row names the boot it belongs to; when it
 * is an earlier boot's (or missing), the floor moves to the highest fence
 * the file kept plus EPOCH_GAP (0 for a file that never had an epoch: its
 * takes were all committed with synchronous=FULL by earlier versions), and
 * *must_sync says that this transaction commits with synchronous=FULL.
 */
static int epoch_floor(sqlite_conn *c, int *must_sync)
{
    *must_sync = 0;
    if (c->epoch_known)
        return SQLITE_OK;
    sqlite3_stmt *s = dlock__sqlite_stmt(c, STMT_EPOCH_GET);
    if (!s)
        return sqlite3_errcode(c->db);
    int rc = sqlite3_step(s);
    int same_boot = 0, had_epoch = rc == SQLITE_ROW;
    int64_t floor = 0;
    if (had_epoch) {
        const unsigned char *row_boot = sqlite3_column_text(s, 0);
        same_boot = row_boot && strcmp((const char *)row_boot, dlock__sqlite_boot_id) == 0;
        floor = sqlite3_column_int64(s, 1);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return rc;
    if (!same_boot && had_epoch) {
        /* A new boot: above the highest fence the file kept, by far more
         * than the commits the earlier boot may have lost. */
        if (!(s = dlock__sqlite_stmt(c, STMT_EPOCH_HIGHEST)))
            return sqlite3_errcode(c->db);
        int64_t highest = 0;
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            highest = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc != SQLITE_ROW)
            return rc;
        floor = (highest > floor ? highest : floor) + EPOCH_GAP;
    }
    if (!same_boot) {
        if (!(s = dlock__sqlite_stmt(c, STMT_EPOCH_PUT)))
            return sqlite3_errcode(c->db);
        sqlite3_bind_text(s, 1, dlock__sqlite_boot_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, floor);
        rc = sqlite3_step(s);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        if (rc != SQLITE_DONE)
            return rc;
        *must_sync = 1;
    }
    c->floor = floor;
    return SQLITE_OK;
}

/* One attempt, committed with synchronous=FULL when `synced`: DLOCK_OK,
 * DLOCK_EBUSY or an error; *needs_sync (nothing done) when this boot's
 * floor must be written and `synced` is not set. */
static int try_take_once(sqlite_conn *c, const char *name, uint32_t ttl_ms, sqlite_lock *lock, int synced,
                         int *needs_sync);

/* One attempt: DLOCK_OK, DLOCK_EBUSY or an error.  synchronous=NORMAL
 * (WAL): a process crash loses nothing; a power loss may lose the last
 * commits, but it reboots the host, and the next boot's floor is above
 * every token they handed out (docs/fencing.md).  The first take of a boot
 * writes that floor with synchronous=FULL, which SQLite only changes
 * between transactions: that attempt runs again with it. */
static int try_take(sqlite_conn *c, const char *name, uint32_t ttl_ms, sqlite_lock *lock)
{
    int needs_sync = 0;
    int status = try_take_once(c, name, ttl_ms, lock, 0, &needs_sync);
    if (!needs_sync)
        return status;
    int rc = run_simple(c, STMT_SYNC_FULL);
    if (rc != SQLITE_OK)
        return dlock__sqlite_db_error(c, rc, "cannot set synchronous=FULL");
    status = try_take_once(c, name, ttl_ms, lock, 1, &needs_sync);
    (void)run_simple(c, STMT_SYNC_NORMAL);
    return status;
}

static int try_take_once(sqlite_conn *c, const char *name, uint32_t ttl_ms, sqlite_lock *lock, int synced,
                         int *needs_sync)
{
    *needs_sync = 0;
    /* The floor is read (and at a boot's first take written) in the take's
     * own transaction.  Once it is known it stays this boot's: the take is
     * then one statement in its own implicit transaction, which spares a
     * BEGIN IMMEDIATE and a COMMIT (two statements, a fifth of a cycle). */
    int in_tx = !c->epoch_known, rc;
    if (in_tx) {
        rc = run_simple(c, STMT_BEGIN);
        if (rc != SQLITE_OK)
            return dlock__sqlite_db_error(c, rc, "cannot begin a transaction");
        int must_sync = 0;
        rc = epoch_floor(c, &must_sync);
        if (rc != SQLITE_OK || (must_sync && !synced)) {
            int status =
                rc != SQLITE_OK ? dlock__sqlite_db_error(c, rc, "cannot read or write this boot's fence floor") : DLOCK_OK;
            run_simple(c, STMT_ROLLBACK);
            *needs_sync = rc == SQLITE_OK;
            return status;
        }
    }
    int64_t now = dlock__sqlite_boot_ms();
    sqlite3_stmt *s = dlock__sqlite_stmt(c, STMT_TAKE);
    if (!s) {
        int status = dlock__sqlite_db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
        if (in_tx)
            run_simple(c, STMT_ROLLBACK);
        return status;
    }
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, lock->owner, OWNER_TOKEN_SIZE, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, dlock__hostname(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)getpid());
    sqlite3_bind_text(s, 5, dlock__sqlite_boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, dlock__sqlite_wall_ms());
    sqlite3_bind_int64(s, 7, now + (int64_t)ttl_ms);
    sqlite3_bind_int64(s, 8, now);
    sqlite3_bind_int64(s, 9, c->floor);
    rc = sqlite3_step(s);
    int taken = rc == SQLITE_ROW;
    if (taken) {
        lock->base.fence = (uint64_t)sqlite3_column_int64(s, 0);
        rc = sqlite3_step(s); /* SQLITE_DONE: the statement (and an implicit transaction) is over */
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) {
        int status = dlock__sqlite_db_error(c, rc, "cannot take the lock row");
        if (in_tx)
            run_simple(c, STMT_ROLLBACK);
        return status;
    }
    if (in_tx) {
        rc = run_simple(c, STMT_COMMIT);
        if (rc != SQLITE_OK) {
            int status = dlock__sqlite_db_error(c, rc, "cannot commit");
            run_simple(c, STMT_ROLLBACK);
            return status;
        }
        /* Committed: this boot's floor is on disk (or was already). */
        c->epoch_known = 1;
    }
    return taken ? DLOCK_OK : DLOCK_EBUSY;
}

/* How long the current holder's lease still runs, in ms (0: free now). */
static int64_t peek_remaining(sqlite_conn *c, const char *name)
{
    sqlite3_stmt *s = dlock__sqlite_live(c, STMT_PEEK, name, dlock__sqlite_boot_ms());
    if (!s)
        return 0; /* looks free: the next try reports the error */
    int64_t left = 0;
    if (sqlite3_step(s) == SQLITE_ROW)
        left = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return left;
}

static uint32_t jitter_state(void)
{
    uint32_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
        seed = (uint32_t)getpid() ^ (uint32_t)dlock__sqlite_boot_ms();
    return seed | 1u;
}

/*
 * A release writes to the WAL file, so an inotify watch on the database's
 * folder wakes a waiter at once instead of at its next poll.  The watch is
 * made at the first wait (a try never pays for it); without it, waiting
 * falls back to polling every few milliseconds.
 */
static void start_watch(sqlite_conn *c)
{
    if (c->watch_fd >= 0 || c->watch_failed)
        return;
    c->watch_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (c->watch_fd >= 0 &&
        inotify_add_watch(c->watch_fd, c->dir, IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) < 0) {
        close(c->watch_fd);
        c->watch_fd = -1;
    }
    c->watch_failed = c->watch_fd < 0;
}

enum nap_end { NAP_TIMEOUT, NAP_CHANGED, NAP_CANCELED };

/* Sleep up to ms, until a file in the database's folder changes, or until
 * dlock_cancel(). */
static enum nap_end nap(sqlite_conn *c, int64_t ms)
{
    struct pollfd p[2] = {{c->cancel_fd, POLLIN, 0}, {c->watch_fd, POLLIN, 0}};
    int r = poll(p, c->watch_fd >= 0 ? 2 : 1, (int)ms);
    if (r <= 0)
        return NAP_TIMEOUT;
    if (p[0].revents & POLLIN)
        return NAP_CANCELED;
    char events[4096];
    while (read(c->watch_fd, events, sizeof events) > 0) {
    }
    return NAP_CHANGED;
}

/* The end of a wait, under the core's cancel mutex: a cancel that came too
 * late for this wait must not reach the next one. */
static void sqlite_cancel_clear(struct dlock_conn *conn)
{
    sqlite_conn *c = dlock__sqlite_of(conn);
    uint64_t value;
    while (read(c->cancel_fd, &value, sizeof value) == (ssize_t)sizeof value) {
    }
}

static int sqlite_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                          struct dlock_call *call, struct dlock_held **lock_out)
{
    sqlite_conn *c = dlock__sqlite_of(conn);
    sqlite_lock *lock = calloc(1, sizeof *lock);
    if (!lock)
        return dlock__oom();
    if (getrandom(lock->owner, sizeof lock->owner, 0) != (ssize_t)sizeof lock->owner) {
        free(lock);
        return dlock__error(DLOCK_EBACKEND, "getrandom failed: %s", strerror(errno));
    }
    int64_t start = dlock__now_ms();
    int64_t backoff = POLL_FIRST_MS;
    uint32_t rng = 0; /* seeded at the first wait: a try pays no syscall for it */
    int rc;
    for (;;) {
        /* The lease starts with the attempt that takes the row. */
        call->lease_start_ms = dlock__now_ms();
        rc = try_take(c, name, ttl_ms, lock);
        if (rc != DLOCK_EBUSY || wait_ms == 0)
            break;
        int64_t left = wait_ms == DLOCK_WAIT_FOREVER ? INT64_MAX : start + wait_ms - dlock__now_ms();
        if (left <= 0)
            break;
        /* Read the row (cheap in WAL mode, blocks nobody) whenever a file
         * changes, when the holder's lease ends, or at the next poll, until it
         * looks free; then try again for real.  A commit writes the WAL just
         * before it becomes visible, so after a change look again soon. */
        start_watch(c);
        int64_t max_backoff = c->watch_fd >= 0 ? POLL_MAX_WATCHED_MS : POLL_MAX_MS;
        for (;;) {
            if (!rng)
                rng = jitter_state();
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            int64_t ms = backoff * 3 / 4 + (int64_t)(rng % (uint32_t)(backoff / 2 + 1));
            int64_t expiry = peek_remaining(c, name);
            if (expiry == 0)
                break;
            if (expiry < ms)
                ms = expiry;
            if (left < ms)
                ms = left;
            if (ms < 1)
                ms = 1;
            enum nap_end end = nap(c, ms);
            if (end == NAP_CANCELED) {
                rc = dlock__error(DLOCK_ECANCELED, "wait for lock '%s' canceled", name);
                goto done;
            }
            if (end == NAP_CHANGED)
                backoff = POLL_FIRST_MS;
            else
                backoff = backoff * 2 > max_backoff ? max_backoff : backoff * 2;
            left = wait_ms == DLOCK_WAIT_FOREVER ? INT64_MAX : start + wait_ms - dlock__now_ms();
            if (left <= 0)
                break;
        }
    }
    if (rc == DLOCK_EBUSY)
        dlock__busy(name, wait_ms);
done:
    if (rc == DLOCK_OK)
        *lock_out = &lock->base;
    else
        free(lock);
    return rc;
}

static int sqlite_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms,
                         struct dlock_call *call)
{
    (void)call; /* a local file: SQLite's busy timeout bounds the call */
    sqlite_conn *c = dlock__sqlite_of(conn);
    sqlite_lock *lock = dlock__sqlite_lock_of(held);
    int64_t now = dlock__sqlite_boot_ms();
    sqlite3_stmt *s = dlock__sqlite_stmt(c, STMT_EXTEND);
    if (!s)
        return dlock__sqlite_db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, lock->owner, OWNER_TOKEN_SIZE, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now + (int64_t)ttl_ms);
    sqlite3_bind_text(s, 4, dlock__sqlite_boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, now);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return dlock__sqlite_db_error(c, rc, "cannot extend the lease");
    if (sqlite3_changes(c->db) != 1)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its lease expired or another holder took it",
                            name);
    return DLOCK_OK;
}

static int sqlite_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = dlock__sqlite_of(conn);
    sqlite_lock *lock = dlock__sqlite_lock_of(held);
    int rc = SQLITE_OK, released = 0;
    for (int which = STMT_RELEASE; rc == SQLITE_OK && !released && which <= STMT_RELEASE_LATE; which++) {
        sqlite3_stmt *s = dlock__sqlite_stmt(c, which);
        if (!s) {
            rc = sqlite3_errcode(c->db) != SQLITE_OK ? sqlite3_errcode(c->db) : SQLITE_ERROR;
            break;
        }
        sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(s, 2, lock->owner, OWNER_TOKEN_SIZE, SQLITE_STATIC);
        if (which == STMT_RELEASE) {
            sqlite3_bind_text(s, 3, dlock__sqlite_boot_id, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 4, dlock__sqlite_boot_ms());
        }
        rc = sqlite3_step(s);
        released = which == STMT_RELEASE && rc == SQLITE_DONE && sqlite3_changes(c->db) == 1;
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    free(lock);
    if (rc != SQLITE_OK)
        return dlock__sqlite_db_error(c, rc, "cannot release the lock row");
    if (!released)
        return dlock__error(DLOCK_ELOST, "lock '%s' had already been lost: its lease expired or another holder took it",
                            name);
    return DLOCK_OK;
}

static int sqlite_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = dlock__sqlite_of(conn);
    sqlite3_stmt *s = dlock__sqlite_live(c, STMT_HOLDER, name, dlock__sqlite_boot_ms());
    if (!s)
        return dlock__sqlite_db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    int rc = sqlite3_step(s);
    int result = 0;
    if (rc == SQLITE_ROW) {
        char since[32];
        dlock__utc_text(since, sizeof since, sqlite3_column_int64(s, 2));
        const unsigned char *host = sqlite3_column_text(s, 0);
        char text[512];
        snprintf(text, sizeof text, "host=%s pid=%lld since=%s expires_in=%lldms fence=%lld",
                 host ? (const char *)host : "?", (long long)sqlite3_column_int64(s, 1), since,
                 (long long)sqlite3_column_int64(s, 3), (long long)sqlite3_column_int64(s, 4));
        dlock__copy_text(buf, buflen, text);
        result = 1;
    } else if (rc != SQLITE_DONE) {
        result = dlock__sqlite_db_error(c, rc, "cannot read the lock row");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return result;
}

static void sqlite_cancel(struct dlock_conn *conn)
{
    sqlite_conn *c = dlock__sqlite_of(conn);
    uint64_t one = 1;
    /* Non-blocking eventfd: never blocks; a full counter is already a cancel. */
    if (write(c->cancel_fd, &one, sizeof one) < 0) {
    }
}

/* --- run history and the preflight (history.c) ----------------------------------------- */

static int sqlite_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                              unsigned keep, struct dlock_call *call)
{
    (void)call;
    return dlock__sqlite_history_add(dlock__sqlite_of(conn)->db, name, run, keep);
}

static int sqlite_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                               struct dlock_call *call)
{
    (void)call;
    return dlock__sqlite_history_read(dlock__sqlite_of(conn)->db, name, max, out);
}

static int sqlite_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out,
                        struct dlock_call *call)
{
    (void)call;
    (void)name;
    return dlock__sqlite_check(dlock__sqlite_of(conn)->db, out);
}

static const char *const sqlite_schemes[] = {"sqlite", NULL};

const struct dlock_backend dlock__backend_sqlite = {
    .name = "sqlite",
    .schemes = sqlite_schemes,
    .connect = dlock__sqlite_connect,
    .disconnect = dlock__sqlite_disconnect,
    .acquire = sqlite_acquire,
    .extend = sqlite_extend,
    .release = sqlite_release,
    .holder = sqlite_holder,
    .cancel = sqlite_cancel,
    .cancel_clear = sqlite_cancel_clear,
    .session_ttl_ms = NULL,
    .list = dlock__sqlite_list,
    .break_lock = dlock__sqlite_break,
    .store_time = dlock__sqlite_store_time,
    .record_get = dlock__sqlite_record_get,
    .record_put = dlock__sqlite_record_put,
    .history_add = sqlite_history_add,
    .history_read = sqlite_history_read,
    .check = sqlite_check,
};
