/*
 * The SQLite backend's declarations shared by its files (backends/sqlite/):
 *   sqlite.c   the backend table: the lock table, list, break, run records
 *   history.c  run history (the dlock_runs table) and the preflight
 * Cross-file names are dlock__sqlite_*.  Include after config.h.  Internal;
 * not installed.
 */
#ifndef DLOCK_SQLITE_BACKEND_H
#define DLOCK_SQLITE_BACKEND_H

#include <sqlite3.h>

#include "internal.h"

/* The history table: one row per run, the newest `keep` of each name kept. */
#define DLOCK_SQLITE_HISTORY_TABLE "dlock_runs"

/* The backend table's history_add, history_read and check, on the
 * connection's database handle. */
int dlock__sqlite_history_add(sqlite3 *db, const char *name, const struct dlock_history_entry *run, unsigned keep);
int dlock__sqlite_history_read(sqlite3 *db, const char *name, size_t max, struct dlock_history *out);
int dlock__sqlite_check(sqlite3 *db, struct dlock_check_list *out);

#endif
