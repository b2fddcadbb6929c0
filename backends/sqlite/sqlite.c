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

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "backend.h"

#define BUSY_TIMEOUT_MS 10000
#define POLL_FIRST_MS 1
#define POLL_MAX_MS 8           /* without inotify: poll this often at most */
#define POLL_MAX_WATCHED_MS 250 /* with inotify: a change wakes the waiter anyway */
#define OWNER_TOKEN_SIZE 16
#define WAL_AUTOCHECKPOINT_FRAMES 1000
#define WAL_TRUNCATE_ON_CLOSE_FRAMES 256

enum {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_TAKE,
    STMT_EXTEND,
    STMT_RELEASE,
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
    /* Returns 1 when the lease was still running, 0 when it had expired. */
    [STMT_RELEASE] = "UPDATE dlock_locks SET owner = NULL,"
                     " expires_boot_ms = (boot_id = ?3 AND expires_boot_ms > ?4)"
                     " WHERE name = ?1 AND owner = ?2 RETURNING expires_boot_ms",
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

static const char epoch_schema_sql[] = "CREATE TABLE IF NOT EXISTS dlock_epoch ("
                                       " one INTEGER PRIMARY KEY CHECK (one = 1)," /* a single row */
                                       " boot_id TEXT NOT NULL,"                   /* the boot whose floor this is */
                                       " floor INTEGER NOT NULL" /* every fence of this boot is above it */
                                       ")";

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS dlock_locks ("
    " name TEXT PRIMARY KEY NOT NULL,"   /* the lock name, compared byte for byte */
    " owner BLOB,"                       /* random token of the holder; NULL: free */
    " fence INTEGER NOT NULL DEFAULT 0," /* grows with every acquisition */
    " holder_host TEXT,"
    " holder_pid INTEGER,"
    " boot_id TEXT,"            /* the boot that expires_boot_ms belongs to */
    " acquired_at INTEGER,"     /* wall clock, ms since the epoch (display only) */
    " expires_boot_ms INTEGER," /* CLOCK_BOOTTIME ms when the lease ends */
    " last_slot INTEGER"        /* dlock_record_put(): dlock run --once-per, the start of the last success */
    ") WITHOUT ROWID";

/* Files made before run records existed lack the last_slot column. */
static const char has_last_slot_sql[] = "SELECT 1 FROM pragma_table_info('dlock_locks') WHERE name = 'last_slot'";
static const char add_last_slot_sql[] = "ALTER TABLE dlock_locks ADD COLUMN last_slot INTEGER";

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
static sqlite_conn *sqlite_of(struct dlock_conn *conn)
{
    return (sqlite_conn *)conn;
}

static sqlite_lock *sqlite_lock_of(struct dlock_held *held)
{
    return (sqlite_lock *)held;
}

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

/* The kernel's boot id, or "" when it cannot be read.  There is no safe
 * guess: a made-up id would make every row written by other processes look
 * like one from an earlier boot, i.e. expired, and a live lock would be
 * taken twice.  So without it the backend refuses to open. */
static char boot_id[64];
static pthread_once_t boot_id_once = PTHREAD_ONCE_INIT;

/* The kernel writes a UUID: 36 characters of hex digits and dashes. */
static int looks_like_boot_id(const char *s)
{
    size_t len = strlen(s);
    if (len != 36)
        return 0;
    for (size_t i = 0; i < len; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

static void read_boot_id(void)
{
    char buf[64] = "";
    int fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
    }
    if (!looks_like_boot_id(buf))
        buf[0] = '\0';
    memcpy(boot_id, buf, sizeof boot_id);
}

static void load_boot_id(void)
{
    pthread_once(&boot_id_once, read_boot_id);
}

static int64_t boot_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int db_error(sqlite_conn *c, int rc, const char *what)
{
    int status = DLOCK_EBACKEND;
    if (rc == SQLITE_CANTOPEN || rc == SQLITE_NOTADB || (rc & 0xff) == SQLITE_IOERR)
        status = DLOCK_ECONN;
    if (rc == SQLITE_NOMEM)
        status = DLOCK_ENOMEM;
    return dlock__error(status, "%s: %s", what, c && c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

/* --- URL ---------------------------------------------------------------------- */

/* sqlite:///absolute/path.db, sqlite:/absolute/path.db or sqlite:relative/path.db */
static int parse_url(const char *url, char **path_out)
{
    const char *p = strchr(url, ':') + 1;
    if (strncmp(p, "//", 2) == 0) {
        p += 2;
        if (*p != '/')
            return dlock__error(
                DLOCK_EINVAL,
                "sqlite URL: a host is not allowed (use sqlite:///absolute/path or sqlite:relative/path)");
    }
    size_t len = strcspn(p, "?#");
    if (p[len])
        return dlock__error(
            DLOCK_EINVAL,
            "sqlite URL: query strings and fragments are not supported (write ? and # in a path as %%3F and %%23)");
    if (len == 0)
        return dlock__error(DLOCK_EINVAL, "sqlite URL: the database path is empty");
    int rc = dlock__percent_decode(p, len, path_out);
    if (rc != DLOCK_OK)
        return rc;
    size_t plen = strlen(*path_out);
    if ((*path_out)[plen - 1] == '/') {
        free(*path_out);
        return dlock__error(DLOCK_EINVAL, "sqlite URL: the database path names a folder");
    }
    return DLOCK_OK;
}

/* Create the missing folders of `path` owner-only (0700), like mkdir -p. */
static int make_parent_dirs(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return dlock__oom();
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        free(dir);
        return DLOCK_OK;
    }
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
                int err = errno;
                int rc = dlock__error(DLOCK_ECONN, "cannot create folder %s: %s", dir, strerror(err));
                free(dir);
                return rc;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(dir);
    return DLOCK_OK;
}

/* A new database file is created owner-only (0600) before SQLite opens it;
 * SQLite gives its -wal and -shm files the same permissions. */
static int create_db_file(const char *path)
{
    int rc = make_parent_dirs(path);
    if (rc != DLOCK_OK)
        return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return DLOCK_OK;
    }
    if (errno == EEXIST)
        return DLOCK_OK;
    return dlock__error(DLOCK_ECONN, "cannot create database file %s: %s", path, strerror(errno));
}

static void sqlite_disconnect(struct dlock_conn *conn);

/* The path with its folder resolved by realpath(3) and the file name kept;
 * NULL with errno on failure. */
static char *resolve_folders(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *folder = slash ? (slash == path ? strdup("/") : strndup(path, (size_t)(slash - path))) : strdup(".");
    if (!folder)
        return NULL;
    char *real = realpath(folder, NULL);
    free(folder);
    if (!real)
        return NULL;
    const char *base = slash ? slash + 1 : path;
    size_t len = strlen(real) + 1 + strlen(base) + 1;
    char *out = malloc(len);
    if (out)
        snprintf(out, len, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", base);
    free(real);
    return out;
}

/* Whether the database file is in WAL mode already (header bytes 18 and 19,
 * the file format versions, are 2): then the journal_mode pragma, which
 * costs about a tenth of a millisecond on every open, is skipped. */
static int already_wal(const char *path)
{
    unsigned char version[2] = {0, 0};
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = pread(fd, version, sizeof version, 18);
    close(fd);
    return n == 2 && version[0] == 2 && version[1] == 2;
}

/* After every commit.  Replaces SQLite's own auto-checkpoint (same 1000-page
 * threshold) and remembers the WAL's size for the checkpoint on close. */
static int wal_committed(void *arg, sqlite3 *db, const char *schema, int frames)
{
    sqlite_conn *c = arg;
    c->wal_frames = frames;
    if (frames >= WAL_AUTOCHECKPOINT_FRAMES)
        sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* The database file, checked and with its folders resolved: a new
 * malloc'ed path in *path (the old one freed), or an error. */
static int checked_path(char **path)
{
    struct stat st;
    if (lstat(*path, &st) == 0 && S_ISLNK(st.st_mode))
        return dlock__error(DLOCK_EINVAL, "%s is a symbolic link; give the real path of the database", *path);
    int rc = create_db_file(*path);
    if (rc != DLOCK_OK)
        return rc;
    /* Folders reached through a symbolic link (a symlinked home, /var on
     * another disk) are fine: resolve them, and let SQLite refuse any link
     * that appears in the resolved path from now on (the database file
     * itself above all, which was checked just before). */
    char *resolved = resolve_folders(*path);
    if (!resolved)
        return dlock__error(DLOCK_ECONN, "cannot resolve the folder of %s: %s", *path, strerror(errno));
    free(*path);
    *path = resolved;
    return DLOCK_OK;
}

static int open_db(sqlite_conn *c, const char *path)
{
    int src = sqlite3_open_v2(
        path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
    if (src != SQLITE_OK)
        return dlock__error(DLOCK_ECONN, "cannot open %s: %s", path,
                            c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(src));
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    /* Short-lived processes (dlock run) open and close the database every
     * time: keep the WAL file and skip the checkpoint on close, which would
     * otherwise cost a file creation and several fsyncs per run.  Any commit
     * checkpoints once the WAL passes SQLite's usual 1000 pages. */
    int persist_wal = 1;
    sqlite3_file_control(c->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
    sqlite3_wal_hook(c->db, wal_committed, c);
    return DLOCK_OK;
}

/* WAL: readers (waiters peeking) never block the writer.  synchronous=NORMAL
 * is durable across process crashes; a power loss that loses the last lock
 * rows also ended every holder.  Several processes opening a brand-new file
 * at once race to switch it to WAL and create the table; SQLite answers
 * some of those races with SQLITE_BUSY without calling the busy handler.
 * Retry them within the busy timeout. */
static int count_rows(void *arg, int ncols, char **values, char **names)
{
    (void)ncols;
    (void)values;
    (void)names;
    ++*(int *)arg;
    return 0;
}

/* Migrate a lock table of an earlier version: add last_slot when missing.
 * Two processes may race to add it; the loser sees "duplicate column". */
static int add_missing_columns(sqlite_conn *c)
{
    int found = 0;
    int src = sqlite3_exec(c->db, has_last_slot_sql, count_rows, &found, NULL);
    if (src != SQLITE_OK || found)
        return src;
    src = sqlite3_exec(c->db, add_last_slot_sql, NULL, NULL, NULL);
    if (src == SQLITE_ERROR && strstr(sqlite3_errmsg(c->db), "duplicate column"))
        return SQLITE_OK;
    return src;
}

static int set_up_table(sqlite_conn *c, const char *path)
{
    int64_t setup_deadline = dlock__now_ms() + BUSY_TIMEOUT_MS;
    int src;
    for (int attempt = 0;; attempt++) {
        src = sqlite3_exec(c->db,
                           already_wal(path) ? "PRAGMA synchronous=NORMAL;"
                                             : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                           NULL, NULL, NULL);
        if (src == SQLITE_OK)
            src = sqlite3_exec(c->db, schema_sql, NULL, NULL, NULL);
        if (src == SQLITE_OK)
            src = sqlite3_exec(c->db, epoch_schema_sql, NULL, NULL, NULL);
        if (src == SQLITE_OK)
            src = add_missing_columns(c);
        if (((src & 0xff) != SQLITE_BUSY && (src & 0xff) != SQLITE_LOCKED) || dlock__now_ms() >= setup_deadline)
            break;
        struct timespec pause = {0, (long)(1 + (attempt % 10)) * 1000000L};
        nanosleep(&pause, NULL);
    }
    return src == SQLITE_OK ? DLOCK_OK : db_error(c, src, "cannot set up the lock table");
}

/* The folder of the database, which waiters watch. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static int sqlite_connect(const char *url, struct dlock_conn **conn_out)
{
    char *path = NULL;
    int rc = parse_url(url, &path);
    if (rc != DLOCK_OK)
        return rc;
    load_boot_id();
    if (!boot_id[0]) {
        free(path);
        return dlock__error(DLOCK_EBACKEND, "cannot read the kernel's boot id from " BOOT_ID_PATH
                                            "; the SQLite backend needs it to tell a live lease from one of an earlier"
                                            " boot (is /proc mounted, and not restricted by ProcSubset=pid?)");
    }
    sqlite_conn *c = calloc(1, sizeof *c);
    if (!c) {
        free(path);
        return dlock__oom();
    }
    c->cancel_fd = -1;
    c->watch_fd = -1;
    if ((rc = checked_path(&path)) != DLOCK_OK || (rc = open_db(c, path)) != DLOCK_OK ||
        (rc = set_up_table(c, path)) != DLOCK_OK)
        goto fail;
    c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->cancel_fd < 0) {
        rc = dlock__error(DLOCK_ENOMEM, "eventfd: %s", strerror(errno));
        goto fail;
    }
    c->dir = folder_of(path);
    if (!c->dir) {
        rc = dlock__oom();
        goto fail;
    }
    free(path);
    *conn_out = &c->base;
    return DLOCK_OK;
fail:
    free(path);
    sqlite_disconnect(&c->base);
    return rc;
}

static void sqlite_disconnect(struct dlock_conn *conn)
{
    sqlite_conn *c = sqlite_of(conn);
    if (!c)
        return;
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    /* The next process to open the database alone rebuilds the WAL index by
     * reading the whole WAL: keep it short.  Once it passes a few hundred
     * frames (a dlock run adds two or three), empty it, paying the fsyncs
     * once every hundred runs or so instead of on every close. */
    if (c->db && c->wal_frames >= WAL_TRUNCATE_ON_CLOSE_FRAMES)
        sqlite3_wal_checkpoint_v2(c->db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_close_v2(c->db);
    if (c->cancel_fd >= 0)
        close(c->cancel_fd);
    if (c->watch_fd >= 0)
        close(c->watch_fd);
    free(c->dir);
    free(c);
}

/* A prepared statement, prepared at its first use (a short-lived dlock run
 * needs half of them); NULL with the error left in the connection. */
static sqlite3_stmt *stmt(sqlite_conn *c, int which)
{
    if (!c->stmt[which] && sqlite3_prepare_v3(c->db, statement_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                                              &c->stmt[which], NULL) != SQLITE_OK)
        return NULL;
    return c->stmt[which];
}

/* Run a statement without results; returns the sqlite result code. */
static int run_simple(sqlite_conn *c, int which)
{
    sqlite3_stmt *s = stmt(c, which);
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
    sqlite3_stmt *s = stmt(c, STMT_EPOCH_GET);
    if (!s)
        return sqlite3_errcode(c->db);
    int rc = sqlite3_step(s);
    int same_boot = 0, had_epoch = rc == SQLITE_ROW;
    int64_t floor = 0;
    if (had_epoch) {
        const unsigned char *row_boot = sqlite3_column_text(s, 0);
        same_boot = row_boot && strcmp((const char *)row_boot, boot_id) == 0;
        floor = sqlite3_column_int64(s, 1);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return rc;
    if (!same_boot && had_epoch) {
        /* A new boot: above the highest fence the file kept, by far more
         * than the commits the earlier boot may have lost. */
        if (!(s = stmt(c, STMT_EPOCH_HIGHEST)))
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
        if (!(s = stmt(c, STMT_EPOCH_PUT)))
            return sqlite3_errcode(c->db);
        sqlite3_bind_text(s, 1, boot_id, -1, SQLITE_STATIC);
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
        return db_error(c, rc, "cannot set synchronous=FULL");
    status = try_take_once(c, name, ttl_ms, lock, 1, &needs_sync);
    (void)run_simple(c, STMT_SYNC_NORMAL);
    return status;
}

static int try_take_once(sqlite_conn *c, const char *name, uint32_t ttl_ms, sqlite_lock *lock, int synced,
                         int *needs_sync)
{
    *needs_sync = 0;
    int rc = run_simple(c, STMT_BEGIN);
    if (rc != SQLITE_OK)
        return db_error(c, rc, "cannot begin a transaction");
    int must_sync = 0;
    rc = epoch_floor(c, &must_sync);
    if (rc != SQLITE_OK || (must_sync && !synced)) {
        int status = rc != SQLITE_OK ? db_error(c, rc, "cannot read or write this boot's fence floor") : DLOCK_OK;
        run_simple(c, STMT_ROLLBACK);
        *needs_sync = rc == SQLITE_OK;
        return status;
    }
    int64_t now = boot_ms();
    sqlite3_stmt *s = stmt(c, STMT_TAKE);
    if (!s) {
        int status = db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
        run_simple(c, STMT_ROLLBACK);
        return status;
    }
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, lock->owner, OWNER_TOKEN_SIZE, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, dlock__hostname(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)getpid());
    sqlite3_bind_text(s, 5, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, wall_ms());
    sqlite3_bind_int64(s, 7, now + (int64_t)ttl_ms);
    sqlite3_bind_int64(s, 8, now);
    sqlite3_bind_int64(s, 9, c->floor);
    rc = sqlite3_step(s);
    int taken = rc == SQLITE_ROW;
    if (taken)
        lock->base.fence = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        int status = db_error(c, rc, "cannot take the lock row");
        run_simple(c, STMT_ROLLBACK);
        return status;
    }
    rc = run_simple(c, STMT_COMMIT);
    if (rc != SQLITE_OK) {
        int status = db_error(c, rc, "cannot commit");
        run_simple(c, STMT_ROLLBACK);
        return status;
    }
    /* Committed: this boot's floor is on disk (or was already). */
    c->epoch_known = 1;
    return taken ? DLOCK_OK : DLOCK_EBUSY;
}

/* How long the current holder's lease still runs, in ms (0: free now). */
static int64_t peek_remaining(sqlite_conn *c, const char *name)
{
    sqlite3_stmt *s = stmt(c, STMT_PEEK);
    if (!s)
        return 0; /* looks free: the next try reports the error */
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, boot_ms());
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
        seed = (uint32_t)getpid() ^ (uint32_t)boot_ms();
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
    sqlite_conn *c = sqlite_of(conn);
    uint64_t value;
    while (read(c->cancel_fd, &value, sizeof value) == (ssize_t)sizeof value) {
    }
}

static int sqlite_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                          struct dlock_call *call, struct dlock_held **lock_out)
{
    sqlite_conn *c = sqlite_of(conn);
    sqlite_lock *lock = calloc(1, sizeof *lock);
    if (!lock)
        return dlock__oom();
    if (getrandom(lock->owner, sizeof lock->owner, 0) != (ssize_t)sizeof lock->owner) {
        free(lock);
        return dlock__error(DLOCK_EBACKEND, "getrandom failed: %s", strerror(errno));
    }
    int64_t start = dlock__now_ms();
    int64_t backoff = POLL_FIRST_MS;
    uint32_t rng = jitter_state();
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
    if (rc == DLOCK_EBUSY && wait_ms == 0)
        dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else", name);
    else if (rc == DLOCK_EBUSY)
        dlock__error(DLOCK_EBUSY, "lock '%s' is held by someone else (waited %ld ms)", name, (long)wait_ms);
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
    sqlite_conn *c = sqlite_of(conn);
    sqlite_lock *lock = sqlite_lock_of(held);
    int64_t now = boot_ms();
    sqlite3_stmt *s = stmt(c, STMT_EXTEND);
    if (!s)
        return db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, lock->owner, OWNER_TOKEN_SIZE, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now + (int64_t)ttl_ms);
    sqlite3_bind_text(s, 4, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, now);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return db_error(c, rc, "cannot extend the lease");
    if (sqlite3_changes(c->db) != 1)
        return dlock__error(DLOCK_ELOST, "lock '%s' is no longer ours: its lease expired or another holder took it",
                            name);
    return DLOCK_OK;
}

static int sqlite_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = sqlite_of(conn);
    sqlite_lock *lock = sqlite_lock_of(held);
    sqlite3_stmt *s = stmt(c, STMT_RELEASE);
    if (!s) {
        free(lock);
        return db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    }
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 2, lock->owner, OWNER_TOKEN_SIZE, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, boot_ms());
    int rc = sqlite3_step(s);
    int still_running = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) == 1;
    if (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    free(lock);
    if (rc != SQLITE_DONE)
        return db_error(c, rc, "cannot release the lock row");
    if (!still_running)
        return dlock__error(DLOCK_ELOST, "lock '%s' had already been lost: its lease expired or another holder took it",
                            name);
    return DLOCK_OK;
}

static int sqlite_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = sqlite_of(conn);
    sqlite3_stmt *s = stmt(c, STMT_HOLDER);
    if (!s)
        return db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, boot_ms());
    int rc = sqlite3_step(s);
    int result = 0;
    if (rc == SQLITE_ROW) {
        char since[32] = "?";
        time_t acquired = (time_t)(sqlite3_column_int64(s, 2) / 1000);
        struct tm tm;
        if (gmtime_r(&acquired, &tm))
            strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
        const unsigned char *host = sqlite3_column_text(s, 0);
        char text[512];
        snprintf(text, sizeof text, "host=%s pid=%lld since=%s expires_in=%lldms fence=%lld",
                 host ? (const char *)host : "?", (long long)sqlite3_column_int64(s, 1), since,
                 (long long)sqlite3_column_int64(s, 3), (long long)sqlite3_column_int64(s, 4));
        dlock__copy_text(buf, buflen, text);
        result = 1;
    } else if (rc != SQLITE_DONE) {
        result = db_error(c, rc, "cannot read the lock row");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return result;
}

static void sqlite_cancel(struct dlock_conn *conn)
{
    sqlite_conn *c = sqlite_of(conn);
    uint64_t one = 1;
    /* Non-blocking eventfd: never blocks; a full counter is already a cancel. */
    if (write(c->cancel_fd, &one, sizeof one) < 0) {
    }
}

/* --- operations: list, break, clock, run records ------------------------------------- */

static int sqlite_list(struct dlock_conn *conn, const char *prefix, struct dlock_list *list, struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = sqlite_of(conn);
    sqlite3_stmt *s = stmt(c, STMT_LIST);
    if (!s)
        return db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    int64_t now_boot = boot_ms(), now_wall = wall_ms();
    sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, now_boot);
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
        status = db_error(c, rc, "cannot list the lock rows");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return status;
}

static int sqlite_break(struct dlock_conn *conn, const char *name, struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = sqlite_of(conn);
    sqlite3_stmt *s = stmt(c, STMT_BREAK);
    if (!s)
        return db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, boot_ms());
    /* One statement in autocommit: its own transaction. */
    int rc = sqlite3_step(s);
    int broken = sqlite3_changes(c->db) == 1;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return db_error(c, rc, "cannot break the lock row");
    return broken ? 1 : 0;
}

/* SQLite has no server: the store's clock is this host's wall clock. */
static int sqlite_store_time(struct dlock_conn *conn, int64_t *unix_ms, struct dlock_call *call)
{
    (void)conn;
    (void)call;
    *unix_ms = wall_ms();
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
    sqlite3_bind_text(s, 3, boot_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, boot_ms());
}

static int sqlite_record_get(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t *slot,
                             struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = sqlite_of(conn);
    sqlite3_stmt *s = stmt(c, STMT_RECORD_GET);
    if (!s)
        return db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    bind_owner(s, name, sqlite_lock_of(held));
    int rc = sqlite3_step(s);
    int status = DLOCK_OK;
    if (rc == SQLITE_ROW)
        *slot = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        status = record_not_held(name);
    else
        status = db_error(c, rc, "cannot read the run record");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return status;
}

static int sqlite_record_put(struct dlock_conn *conn, struct dlock_held *held, const char *name, int64_t slot,
                             struct dlock_call *call)
{
    (void)call;
    sqlite_conn *c = sqlite_of(conn);
    sqlite3_stmt *s = stmt(c, STMT_RECORD_PUT);
    if (!s)
        return db_error(c, sqlite3_errcode(c->db), "cannot prepare a statement");
    bind_owner(s, name, sqlite_lock_of(held));
    sqlite3_bind_int64(s, 5, slot);
    int rc = sqlite3_step(s);
    int written = sqlite3_changes(c->db) == 1;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return db_error(c, rc, "cannot write the run record");
    return written ? DLOCK_OK : record_not_held(name);
}

/* --- run history and the preflight (history.c) ----------------------------------------- */

static int sqlite_history_add(struct dlock_conn *conn, const char *name, const struct dlock_history_entry *run,
                              unsigned keep, struct dlock_call *call)
{
    (void)call;
    return dlock__sqlite_history_add(sqlite_of(conn)->db, name, run, keep);
}

static int sqlite_history_read(struct dlock_conn *conn, const char *name, size_t max, struct dlock_history *out,
                               struct dlock_call *call)
{
    (void)call;
    return dlock__sqlite_history_read(sqlite_of(conn)->db, name, max, out);
}

static int sqlite_check(struct dlock_conn *conn, const char *name, struct dlock_check_list *out,
                        struct dlock_call *call)
{
    (void)call;
    (void)name;
    return dlock__sqlite_check(sqlite_of(conn)->db, out);
}

static const char *const sqlite_schemes[] = {"sqlite", NULL};

const struct dlock_backend dlock__backend_sqlite = {
    .name = "sqlite",
    .schemes = sqlite_schemes,
    .connect = sqlite_connect,
    .disconnect = sqlite_disconnect,
    .acquire = sqlite_acquire,
    .extend = sqlite_extend,
    .release = sqlite_release,
    .holder = sqlite_holder,
    .cancel = sqlite_cancel,
    .cancel_clear = sqlite_cancel_clear,
    .session_ttl_ms = NULL,
    .list = sqlite_list,
    .break_lock = sqlite_break,
    .store_time = sqlite_store_time,
    .record_get = sqlite_record_get,
    .record_put = sqlite_record_put,
    .history_add = sqlite_history_add,
    .history_read = sqlite_history_read,
    .check = sqlite_check,
};
