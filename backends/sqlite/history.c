/*
 * SQLite run history: a table of runs in the lock database, created on
 * first use.  A run and the trimming of its name's oldest runs are one
 * transaction, so the table never holds more than `keep` runs of a name.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "backend.h"

static const char history_ddl[] =
    "CREATE TABLE IF NOT EXISTS " DLOCK_SQLITE_HISTORY_TABLE " ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT," /* grows with every run: the order of the runs */
    " name TEXT NOT NULL,"
    " start_ms INTEGER NOT NULL," /* Unix ms; SQLite's clock is this host's */
    " end_ms INTEGER NOT NULL,"
    " host TEXT,"
    " pid INTEGER,"
    " outcome TEXT NOT NULL," /* ran, busy, done, lost, error */
    " exit_status INTEGER,"   /* NULL: no job ran */
    " fence INTEGER"          /* NULL: none */
    ");"
    "CREATE INDEX IF NOT EXISTS " DLOCK_SQLITE_HISTORY_TABLE "_by_name ON " DLOCK_SQLITE_HISTORY_TABLE " (name, id)";

static const char insert_sql[] = "INSERT INTO " DLOCK_SQLITE_HISTORY_TABLE
                                 " (name, start_ms, end_ms, host, pid, outcome, exit_status, fence)"
                                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
/* Every run of the name older than the newest `keep` (?2). */
static const char trim_sql[] = "DELETE FROM " DLOCK_SQLITE_HISTORY_TABLE " WHERE name = ?1 AND id <= "
                               "(SELECT id FROM " DLOCK_SQLITE_HISTORY_TABLE
                               " WHERE name = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)";
static const char read_sql[] = "SELECT start_ms, end_ms, host, pid, outcome, exit_status, fence FROM " DLOCK_SQLITE_HISTORY_TABLE
                               " WHERE name = ?1 ORDER BY id DESC LIMIT ?2";

static int history_error(sqlite3 *db, int rc, const char *what)
{
    int status = rc == SQLITE_NOMEM ? DLOCK_ENOMEM : DLOCK_EBACKEND;
    if (rc == SQLITE_CANTOPEN || (rc & 0xff) == SQLITE_IOERR)
        status = DLOCK_ECONN;
    return dlock__error(status, "%s (table " DLOCK_SQLITE_HISTORY_TABLE "): %s", what, sqlite3_errmsg(db));
}

/* Run one prepared statement to its end. */
static int step_done(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int add_in_transaction(sqlite3 *db, const char *name, const struct dlock_history_entry *run, unsigned keep)
{
    sqlite3_stmt *ins = NULL, *trim = NULL;
    int rc = sqlite3_prepare_v2(db, insert_sql, -1, &ins, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, trim_sql, -1, &trim, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, run->start_ms);
        sqlite3_bind_int64(ins, 3, run->end_ms);
        sqlite3_bind_text(ins, 4, run->host, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 5, run->pid);
        sqlite3_bind_text(ins, 6, run->outcome, -1, SQLITE_STATIC);
        if (run->exit_status >= 0)
            sqlite3_bind_int(ins, 7, run->exit_status);
        if (run->fence)
            sqlite3_bind_int64(ins, 8, (sqlite3_int64)run->fence);
        rc = step_done(ins);
    }
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(trim, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(trim, 2, (sqlite3_int64)keep);
        rc = step_done(trim);
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(trim);
    return rc;
}

int dlock__sqlite_history_add(sqlite3 *db, const char *name, const struct dlock_history_entry *run, unsigned keep)
{
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return history_error(db, rc, "cannot record the run");
    rc = sqlite3_exec(db, history_ddl, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = add_in_transaction(db, name, run, keep);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int status = history_error(db, rc, "cannot record the run");
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return status;
    }
    return DLOCK_OK;
}

static int table_exists(sqlite3 *db)
{
    sqlite3_stmt *s = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", -1, &s, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(s, 1, DLOCK_SQLITE_HISTORY_TABLE, -1, SQLITE_STATIC);
        found = sqlite3_step(s) == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    return found;
}

int dlock__sqlite_history_read(sqlite3 *db, const char *name, size_t max, struct dlock_history *out)
{
    if (!table_exists(db))
        return DLOCK_OK; /* no run recorded yet */
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, read_sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return history_error(db, rc, "cannot read the run history");
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    int status = DLOCK_OK;
    while (status == DLOCK_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct dlock_history_entry e = {
            .start_ms = sqlite3_column_int64(s, 0),
            .end_ms = sqlite3_column_int64(s, 1),
            .host = (const char *)sqlite3_column_text(s, 2),
            .pid = sqlite3_column_int64(s, 3),
            .outcome = (const char *)sqlite3_column_text(s, 4),
            .exit_status = sqlite3_column_type(s, 5) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 5),
            .fence = (uint64_t)sqlite3_column_int64(s, 6),
        };
        status = dlock__history_add(out, &e);
    }
    if (status == DLOCK_OK && rc != SQLITE_DONE)
        status = history_error(db, rc, "cannot read the run history");
    sqlite3_finalize(s);
    return status;
}

/* The file system the database is on, when it is one that several hosts
 * share (where SQLite's locking is not safe): its name, else NULL. */
static const char *network_file_system(const char *path)
{
    struct statfs fs;
    if (!path || statfs(path, &fs) != 0)
        return NULL;
    switch ((unsigned long)fs.f_type) {
    case 0x6969UL: /* NFS_SUPER_MAGIC */
        return "NFS";
    case 0x517BUL: /* SMB_SUPER_MAGIC */
    case 0xFF534D42UL: /* CIFS_MAGIC_NUMBER */
    case 0xFE534D42UL: /* SMB2_MAGIC_NUMBER */
        return "SMB/CIFS";
    case 0x65735546UL: /* FUSE_SUPER_MAGIC */
        return "FUSE (maybe sshfs or a network mount)";
    case 0x00C36400UL: /* CEPH_SUPER_MAGIC */
        return "CephFS";
    default:
        return NULL;
    }
}

int dlock__sqlite_check(sqlite3 *db, struct dlock_check_list *out)
{
    const char *path = sqlite3_db_filename(db, "main");
    int rc = dlock__check_add(out, "server", DLOCK_CHECK_INFO, "SQLite %s (one host only)", sqlite3_libversion());
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "database", DLOCK_CHECK_INFO, "%s", path && *path ? path : "?");
    if (rc != DLOCK_OK)
        return rc;
    /* The lock table is made at connect, so what is left to ask is
     * whether this user may write the file (history, every lock). */
    int writable = path && *path && access(path, W_OK) == 0;
    rc = dlock__check_add(out, "rights", writable ? DLOCK_CHECK_OK : DLOCK_CHECK_FAIL,
                          writable ? "this user may write the database file (locks, fences, run records)"
                                   : "this user may not write the database file: no lock can be taken");
    const char *shared = network_file_system(path);
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "file system", shared ? DLOCK_CHECK_FAIL : DLOCK_CHECK_OK,
                              shared ? "%s: SQLite locks are for one host and are not safe on a network file system"
                                       " (use PostgreSQL, MySQL or Redis to share locks between hosts)"
                                     : "a local file system%s",
                              shared ? shared : "");
    if (rc == DLOCK_OK)
        rc = dlock__check_add(out, "history", table_exists(db) ? DLOCK_CHECK_OK : DLOCK_CHECK_INFO,
                              table_exists(db) ? "table " DLOCK_SQLITE_HISTORY_TABLE " exists"
                                               : "table " DLOCK_SQLITE_HISTORY_TABLE " is created by the first run");
    return rc;
}
