/*
 * The SQLite backend's declarations shared by its files (backends/sqlite/):
 *   sqlite.c   the backend table and the lock operations: the statements,
 *              take (with this boot's fence floor), wait, extend, release,
 *              holder, cancel
 *   conn.c     the connection: the URL, the database file, open, pragmas and
 *              the lock table, the boot id and the clocks, disconnect
 *   ops.c      list, break, the store's clock, run records
 *   history.c  run history (the dlock_runs table) and the preflight
 * Cross-file names are dlock__sqlite_*.  Include after config.h.  Internal;
 * not installed.
 */
#ifndef DLOCK_SQLITE_BACKEND_H
#define DLOCK_SQLITE_BACKEND_H

#include <sqlite3.h>
#include <stdint.h>

#include "internal.h"

#define OWNER_TOKEN_SIZE 16

/* The prepared statements (sqlite.c's statement_sql), each prepared at its
 * first use. */
enum {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_TAKE,
    STMT_EXTEND,
    STMT_RELEASE,
    STMT_RELEASE_LATE,
    STMT_HOLDER,
    STMT_PEEK,
    STMT_SYNC_FULL,
    STMT_SYNC_NORMAL,
    STMT_EPOCH_GET,
    STMT_EPOCH_HIGHEST,
    STMT_EPOCH_PUT,
    STMT_LIST,
    STMT_BREAK,
    STMT_RECORD_GET,
    STMT_RECORD_PUT,
    STMT_COUNT
};

typedef struct sqlite_conn {
    struct dlock_conn base; /* first: the core passes this (lib/internal.h) */
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
    int cancel_fd; /* eventfd: dlock_cancel() writes, a waiter polls */
    int watch_fd;  /* inotify on the database's folder, made at the first wait; -1: none */
    int watch_failed;
    char *dir;       /* the database's folder */
    int wal_frames;  /* frames in the WAL after our last commit */
    int epoch_known; /* floor is this boot's (read, or written and synced, once a connection) */
    int64_t floor;   /* every fence handed out in this boot is above it */
} sqlite_conn;

typedef struct sqlite_lock {
    struct dlock_held base; /* first */
    unsigned char owner[OWNER_TOKEN_SIZE];
} sqlite_lock;

/* The one place that recovers the backend's own structs from the bases. */
static inline sqlite_conn *dlock__sqlite_of(struct dlock_conn *conn)
{
    return (sqlite_conn *)conn;
}

static inline sqlite_lock *dlock__sqlite_lock_of(struct dlock_held *held)
{
    return (sqlite_lock *)held;
}

/* --- sqlite.c ---------------------------------------------------------------------- */

/* Statement `which` of this connection, prepared at its first use; NULL
 * with the error left in the connection. */
sqlite3_stmt *dlock__sqlite_stmt(sqlite_conn *c, int which);
/* The same for the statements that look at live rows, bound: ?1 `text` (a
 * name, or list's prefix), ?2 this boot's id, ?3 now on CLOCK_BOOTTIME. */
sqlite3_stmt *dlock__sqlite_live(sqlite_conn *c, int which, const char *text, int64_t now_boot_ms);

/* --- conn.c ------------------------------------------------------------------------ */

/* The kernel's boot id (set by the first connect; never "" once connected). */
extern char dlock__sqlite_boot_id[64];
/* CLOCK_BOOTTIME and the wall clock, in ms. */
int64_t dlock__sqlite_boot_ms(void);
int64_t dlock__sqlite_wall_ms(void);
/* Set the error text "what: SQLite's message" and return its status. */
int dlock__sqlite_db_error(sqlite_conn *c, int rc, const char *what);
int dlock__sqlite_connect(const char *url, struct dlock_conn **conn_out);
void dlock__sqlite_disconnect(struct dlock_conn *conn);

/* --- ops.c: the backend table's slots ---------------------------------------------- */

int dlock__sqlite_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call);
int dlock__sqlite_break(struct dlock_conn *conn, const char *name, struct dlock_call *call);
int dlock__sqlite_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call);
int dlock__sqlite_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                             struct dlock_call *call);
int dlock__sqlite_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                             struct dlock_call *call);

/* --- history.c --------------------------------------------------------------------- */

/* The history table: one row per run, the newest `keep` of each name kept. */
#define DLOCK_SQLITE_HISTORY_TABLE "dlock_runs"

/* The backend table's history_add, history_read and check, on the
 * connection's database handle. */
int dlock__sqlite_history_add(sqlite3 *db, const char *name, const struct dlock_history_entry *run, unsigned keep);
int dlock__sqlite_history_read(sqlite3 *db, const char *name, size_t max, struct dlock_history *out);
int dlock__sqlite_check(sqlite3 *db, struct dlock_check_list *out);

#endif
