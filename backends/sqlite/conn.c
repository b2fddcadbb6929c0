/*
 * The SQLite backend's connection: the URL, the database file (created
 * owner-only, no symbolic links), open with its pragmas and the lock
 * table, the kernel's boot id and the clocks, disconnect.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "backend.h"

#define BUSY_TIMEOUT_MS 10000
#define WAL_AUTOCHECKPOINT_FRAMES 1000
#define WAL_TRUNCATE_ON_CLOSE_FRAMES 256

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

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

/* The kernel's boot id, or "" when it cannot be read.  There is no safe
 * guess: a made-up id would make every row written by other processes look
 * like one from an earlier boot, i.e. expired, and a live lock would be
 * taken twice.  So without it the backend refuses to open. */
char dlock__sqlite_boot_id[64];
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
    memcpy(dlock__sqlite_boot_id, buf, sizeof dlock__sqlite_boot_id);
}

static void load_boot_id(void)
{
    pthread_once(&boot_id_once, read_boot_id);
}

int64_t dlock__sqlite_boot_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dlock__sqlite_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int dlock__sqlite_db_error(sqlite_conn *c, int rc, const char *what)
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
    return src == SQLITE_OK ? DLOCK_OK : dlock__sqlite_db_error(c, src, "cannot set up the lock table");
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

int dlock__sqlite_connect(const char *url, struct dlock_conn **conn_out)
{
    char *path = NULL;
    int rc = parse_url(url, &path);
    if (rc != DLOCK_OK)
        return rc;
    load_boot_id();
    if (!dlock__sqlite_boot_id[0]) {
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
    dlock__sqlite_disconnect(&c->base);
    return rc;
}

void dlock__sqlite_disconnect(struct dlock_conn *conn)
{
    sqlite_conn *c = dlock__sqlite_of(conn);
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
