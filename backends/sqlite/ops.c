/*
 * The SQLite backend's operations beside the lock itself: list the live
 * rows, break one, the store's clock (this host's), and the run record of
 * --once-per, read and written only while the caller's row is live.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>

#include "internal.h"
#include "backend.h"

int dlock__sqlite_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = dlock__sqlite_of(conn);
    int64_t now_boot = dlock__sqlite_boot_ms(), now_wall = dlock__sqlite_wall_ms();
    sqlite3_stmt *s = dlock__sqlite_live(c, STMT_LIST, prefix, now_boot);
    if (!s)
        return dlock__sqlite_db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    int rc, status = DLOCK_OK;
    while (status == DLOCK_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        const char *host = (const char *)sqlite3_column_text(s, 1);
        char holder[400];
        snprintf(holder, sizeof holder, "host=%s pid=%lld", host ? host : "?", (long long)sqlite3_column_int64(s, 2));
        struct dlock_list_entry e = {
            .name = name,
            .key = name,
            .holder = holder,
            .host = host,
            .pid = sqlite3_column_int64(s, 2),
            .since_ms = sqlite3_column_type(s, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 3),
            /* The lease runs on CLOCK_BOOTTIME; shown on the wall clock as now + what is left. */
            .expires_ms = now_wall + sqlite3_column_int64(s, 4),
            .fence = (uint64_t)sqlite3_column_int64(s, 5),
        };
        status = dlock__list_add(list, &e);
    }
    if (status == DLOCK_OK && rc != SQLITE_DONE)
        status = dlock__sqlite_db_error(c, rc, "cannot list the lock rows");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return status;
}

int dlock__sqlite_break(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = dlock__sqlite_of(conn);
    sqlite3_stmt *s = dlock__sqlite_live(c, STMT_BREAK, name, dlock__sqlite_boot_ms());
    if (!s)
        return dlock__sqlite_db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    /* One statement in autocommit: its own transaction. */
    int rc = sqlite3_step(s);
    int broken = sqlite3_changes(c->db) == 1;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return dlock__sqlite_db_error(c, rc, "cannot break the lock row");
    return broken ? 1 : 0;
}

/* SQLite has no server: the store's clock is this host's wall clock. */
int dlock__sqlite_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    (void)conn;
    (void)call;
    *unix_ms = dlock__sqlite_wall_ms();
    return DLOCK_OK;
}

static int record_not_held(const char *name)
{
    return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its lease expired or it was broken", name);
}

static void bind_owner(sqlite3_stmt *s, const char *name, const sqlite_lock *lock)
{
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, lock->owner, OWNER_TOKEN_SIZE, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, dlock__sqlite_boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, dlock__sqlite_boot_ms());
}

int dlock__sqlite_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                             struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = dlock__sqlite_of(conn);
    sqlite3_stmt *s = dlock__sqlite_stmt(c, STMT_RECORD_GET);
    if (!s)
        return dlock__sqlite_db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    bind_owner(s, name, dlock__sqlite_lock_of(held));
    int rc = sqlite3_step(s);
    int status = DLOCK_OK;
    if (rc == SQLITE_ROW)
        *slot = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        status = record_not_held(name);
    else
        status = dlock__sqlite_db_error(c, rc, "cannot read the run record");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return status;
}

int dlock__sqlite_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                             struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = dlock__sqlite_of(conn);
    sqlite3_stmt *s = dlock__sqlite_stmt(c, STMT_RECORD_PUT);
    if (!s)
        return dlock__sqlite_db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    bind_owner(s, name, dlock__sqlite_lock_of(held));
    sqlite3_bind_int64(s, 5, slot);
    int rc = sqlite3_step(s);
    int written = sqlite3_changes(c->db) == 1;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return dlock__sqlite_db_error(c, rc, "cannot write the run record");
    return written ? DLOCK_OK : record_not_held(name);
}
