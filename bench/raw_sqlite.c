/* Raw SQLite baseline: upsert + delete on one connection, WAL journal and
 * synchronous=NORMAL, exactly the settings the backend uses. */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "raw.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int bench_raw_sqlite(const char *url, long cycles, double *elapsed_s)
{
    char path[4096];
    const char *p = strchr(url, ':');
    if (!p)
        return -1;
    p++;
    if (strncmp(p, "//", 2) == 0)
        p += 2;
    snprintf(path, sizeof path, "%s.raw", p);
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                 "CREATE TABLE IF NOT EXISTS raw_locks(name TEXT PRIMARY KEY, owner BLOB, expires INTEGER)"
                 " WITHOUT ROWID",
                 NULL, NULL, NULL);
    sqlite3_stmt *take = NULL, *drop = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO raw_locks(name, owner, expires) VALUES (?1, ?2, ?3)"
                           " ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires"
                           " WHERE raw_locks.expires <= ?4",
                           -1, &take, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "DELETE FROM raw_locks WHERE name = ?1 AND owner = ?2", -1, &drop, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    static const unsigned char owner[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    int rc = 0;
    double start = now_s();
    for (long i = 0; i < cycles && rc == 0; i++) {
        sqlite3_bind_text(take, 1, "bench-raw", -1, SQLITE_STATIC);
        sqlite3_bind_blob(take, 2, owner, sizeof owner, SQLITE_STATIC);
        sqlite3_bind_int64(take, 3, 1000000 + i);
        sqlite3_bind_int64(take, 4, i);
        if (sqlite3_step(take) != SQLITE_DONE || sqlite3_changes(db) != 1)
            rc = -1;
        sqlite3_reset(take);
        sqlite3_bind_text(drop, 1, "bench-raw", -1, SQLITE_STATIC);
        sqlite3_bind_blob(drop, 2, owner, sizeof owner, SQLITE_STATIC);
        if (sqlite3_step(drop) != SQLITE_DONE)
            rc = -1;
        sqlite3_reset(drop);
    }
    *elapsed_s = now_s() - start;
    sqlite3_finalize(take);
    sqlite3_finalize(drop);
    sqlite3_close(db);
    return rc;
}
