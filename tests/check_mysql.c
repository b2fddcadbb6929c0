/*
 * The MySQL / MariaDB backend: URL parser and lock-name mapping (no server
 * needed), then integration and fault tests against the server named by
 * $DLOCK_TEST_MYSQL_URL (started by tests/mysql-server.sh).
 *
 * Timings of the fault tests are printed as "FIGURE: ..." lines on stderr.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mysql/suite.h"

/* ------------------------------------------------------------------------ */
/* Integration fixtures                                                     */
/* ------------------------------------------------------------------------ */

const char *url;      /* the test user's URL */
const char *root_url; /* root over the socket: may be NULL */
const char *server_dir;

MYSQL *raw_open(const char *which_url)
{
    struct dlock_mysql_url u;
    ck_assert_int_eq(dlock__mysql_parse_url(which_url, &u), DLOCK_OK);
    MYSQL *db = mysql_init(NULL);
    ck_assert_ptr_nonnull(db);
    if (u.socket) {
        unsigned int protocol = MYSQL_PROTOCOL_SOCKET;
        mysql_options(db, MYSQL_OPT_PROTOCOL, &protocol);
    }
    MYSQL *ok =
        mysql_real_connect(db, u.host ? u.host : "localhost", u.user, u.password, u.database, u.port, u.socket, 0);
    ck_assert_msg(ok != NULL, "raw connect failed: %s", mysql_error(db));
    dlock__mysql_url_free(&u);
    return db;
}

/* Run `sql` with one bound string parameter; returns the first column as an
 * integer, or -1 for NULL. */
long long raw_int(MYSQL *db, const char *sql, const char *param)
{
    MYSQL_STMT *stmt = mysql_stmt_init(db);
    ck_assert_ptr_nonnull(stmt);
    ck_assert_msg(mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) == 0, "%s: %s", sql,
                  mysql_stmt_error(stmt));
    MYSQL_BIND bind;
    memset(&bind, 0, sizeof bind);
    unsigned long len = param ? (unsigned long)strlen(param) : 0;
    if (param) {
        bind.buffer_type = MYSQL_TYPE_STRING;
        bind.buffer = (void *)param;
        bind.buffer_length = len;
        bind.length = &len;
        ck_assert_int_eq(mysql_stmt_bind_param(stmt, &bind), 0);
    }
    ck_assert_msg(mysql_stmt_execute(stmt) == 0, "%s: %s", sql, mysql_stmt_error(stmt));
    long long value = 0;
#if defined(MARIADB_PACKAGE_VERSION_ID) || !defined(MYSQL_VERSION_ID) || MYSQL_VERSION_ID < 80001
    my_bool is_null = 0;
#else
    bool is_null = 0;
#endif
    MYSQL_BIND result;
    memset(&result, 0, sizeof result);
    result.buffer_type = MYSQL_TYPE_LONGLONG;
    result.buffer = &value;
    result.is_null = &is_null;
    ck_assert_int_eq(mysql_stmt_bind_result(stmt, &result), 0);
    ck_assert_int_eq(mysql_stmt_fetch(stmt), 0);
    mysql_stmt_close(stmt);
    return is_null ? -1 : value;
}

/* The connection id holding `name` (dlock name), or -1. */
long long holder_id(const char *name)
{
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    dlock__mysql_lock_name(name, server_name, sizeof server_name);
    MYSQL *db = raw_open(url);
    long long id = raw_int(db, "SELECT IS_USED_LOCK(?)", server_name);
    mysql_close(db);
    return id;
}

void kill_connection(long long id, int query_only)
{
    MYSQL *db = raw_open(root_url ? root_url : url);
    char sql[64];
    snprintf(sql, sizeof sql, "KILL %s%lld", query_only ? "QUERY " : "", id);
    ck_assert_msg(mysql_query(db, sql) == 0, "%s: %s", sql, mysql_error(db));
    mysql_close(db);
}

void integration_setup(void)
{
    url = getenv("DLOCK_TEST_MYSQL_URL");
    root_url = getenv("DLOCK_TEST_MYSQL_ROOT_URL");
    if (root_url && !*root_url)
        root_url = NULL;
    server_dir = getenv("DLOCK_TEST_MYSQL_DIR");
}

dlock_client *open_client(void)
{
    dlock_client *c = open_url(url);
    ck_assert_str_eq(dlock_backend(c), "mysql");
    return c;
}

/* 1 when client `other` cannot take `name` now; `other` is closed. */
static int busy_for(dlock_client *other, const char *name)
{
    dlock_lock *l = NULL;
    int rc = dlock_acquire(other, name, 5000, 0, &l);
    if (rc == DLOCK_OK)
        dlock_release(l);
    dlock_close(other);
    ck_assert_msg(rc == DLOCK_OK || rc == DLOCK_EBUSY, "%s", dlock_last_error());
    return rc == DLOCK_EBUSY;
}

/* 1 when another client cannot take `name` now. */
int busy_for_others(const char *name)
{
    return busy_for(open_client(), name);
}

char *unique(const char *prefix)
{
    return dlt_unique_name(prefix);
}

/* `url` with `options` appended to its query. */
char *url_with(const char *base, const char *options)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s%s%s", base, strchr(base, '?') ? "&" : "?", options);
    return buf;
}

/* Server restart while holding: a private server, so that the other test
 * programs running at the same time keep theirs. */
char private_dir[4200];
char private_url[4200];

void read_env_value(const char *file, const char *key, char *out, size_t outlen)
{
    FILE *f = fopen(file, "r");
    ck_assert_ptr_nonnull(f);
    char line[8192];
    out[0] = '\0';
    size_t keylen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        const char *p = line;
        if (strncmp(p, "export ", 7) == 0)
            p += 7;
        if (strncmp(p, key, keylen) == 0 && p[keylen] == '=') {
            p += keylen + 1;
            if (*p == '\'')
                p++;
            snprintf(out, outlen, "%s", p);
            out[strcspn(out, "'\n")] = '\0';
        }
    }
    fclose(f);
}

const char *server_script(void)
{
    static char path[4200];
    const char *top = getenv("top_srcdir");
    if (top && *top) {
        snprintf(path, sizeof path, "%s/tests/mysql-server.sh", top);
    } else {
        /* Run by hand: the script sits next to this source file. */
        snprintf(path, sizeof path, "%s", __FILE__);
        char *slash = strrchr(path, '/');
        snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0), "mysql-server.sh");
    }
    return path;
}

/* Stop the private server and delete its data (~35 MB a run). */
void private_server_remove(void)
{
    private_server("stop");
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", private_dir);
    dlt_system(cmd);
}

int private_server(const char *action)
{
    char cmd[16384];
    /* Without TLS: a server that cannot do it must be refused by ssl-mode. */
    snprintf(cmd, sizeof cmd, "DLOCK_TEST_MYSQL_TLS=off sh '%s' %s '%s' >/dev/null 2>>'%s.err'", server_script(),
             action, private_dir, private_dir);
    return dlt_system(cmd);
}

/* ------------------------------------------------------------------------ */
/* Second wave: lease mode, fencing=on, list, break, run records            */
/* ------------------------------------------------------------------------ */

char lease_url[8192], fence_url[8192];

void wave_setup(void)
{
    integration_setup();
    snprintf(lease_url, sizeof lease_url, "%s", url_with(url, "mode=lease"));
    snprintf(fence_url, sizeof fence_url, "%s", url_with(url, "fencing=on"));
}

dlock_client *open_url(const char *u)
{
    dlock_client *c = NULL;
    int rc = dlock_open(u, &c);
    ck_assert_msg(rc == DLOCK_OK, "dlock_open: %s", dlock_last_error());
    return c;
}

/* 1 when another client of `u` cannot take `name` now. */
int busy_at(const char *u, const char *name)
{
    return busy_for(open_url(u), name);
}

static Suite *mysql_suite(int with_server)
{
    Suite *s = suite_create("mysql");
    dlt_mysql_add_url(s);
    dlt_mysql_add_names(s);
    if (!with_server)
        return s;

    dlt_mysql_add_server(s);
    dlt_mysql_add_faults(s);
    dlt_mysql_add_lease(s);
    dlt_mysql_add_waits(s);
    dlt_mysql_add_modes(s);
    dlt_mysql_add_wall_clock(s);
    dlt_mysql_add_private_servers(s);
    return s;
}

int main(void)
{
    const char *env = getenv("DLOCK_TEST_MYSQL_URL");
    int with_server = env && *env;
    if (!with_server) {
        if (dlt_required("mysql")) {
            fprintf(stderr, "DLOCK_TEST_MYSQL_URL is not set but DLOCK_TEST_REQUIRE requires "
                            "the mysql backend\n");
            return DLT_HARD_ERROR;
        }
        fprintf(stderr, "DLOCK_TEST_MYSQL_URL is not set: only the unit tests run\n");
    }
    int failed = dlt_run_suite(mysql_suite(with_server));
    return failed ? 1 : 0;
}
