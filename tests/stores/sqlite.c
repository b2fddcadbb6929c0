/* The SQLite store, as the shared suites see it (tests/stores/store.h). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "store.h"

/* The database file of an sqlite: URL (sqlite:///abs, sqlite:/abs, sqlite:rel). */
static sqlite3 *open_raw(const char *url)
{
    const char *p = strchr(url, ':') + 1;
    if (strncmp(p, "//", 2) == 0)
        p += 2;
    char *path = NULL;
    ck_assert_int_eq(dlock__percent_decode(p, strcspn(p, "?"), &path), DLOCK_OK);
    sqlite3 *db = NULL;
    ck_assert_msg(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK, "open %s", path);
    sqlite3_busy_timeout(db, 10000);
    free(path);
    return db;
}

int dlt_sqlite_run(const char *url, const char *sql, const char *name, char *out, size_t outlen)
{
    sqlite3 *db = open_raw(url);
    sqlite3_stmt *s = NULL;
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    if (out && outlen)
        out[0] = '\0';
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && out && outlen) {
        const unsigned char *text = sqlite3_column_text(s, 0);
        snprintf(out, outlen, "%s", text ? (const char *)text : "");
        rc = sqlite3_step(s);
    }
    ck_assert_msg(rc == SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    int changed = sqlite3_changes(db);
    sqlite3_close(db);
    return changed;
}

static unsigned caps(const char *url)
{
    (void)url;
    return DLT_FENCES | DLT_OUTLIVES_CONNECTION | DLT_LISTS_NAMES | DLT_LOCAL_FILE | DLT_HISTORY;
}

static void view(const char *url, const char *name, char *out, size_t outlen)
{
    dlt_sqlite_run(url,
                   "SELECT hex(owner) || ' expires=' || expires_boot_ms || ' fence=' || fence"
                   " FROM dlock_locks WHERE name = ?1 AND owner IS NOT NULL",
                   name, out, outlen);
}

static void take_away(const char *url, const char *name)
{
    ck_assert_int_eq(dlt_sqlite_run(url, "DELETE FROM dlock_locks WHERE name = ?1", name, NULL, 0), 1);
}

const struct dlt_store dlt_store_sqlite = {
    .backend = "sqlite",
    .url_env = NULL,
    .caps = caps,
    .expiry_slack_ms = 1500,
    .default_port = NULL,
    .url_path = NULL,
    .view = view,
    .take_away = take_away,
};
