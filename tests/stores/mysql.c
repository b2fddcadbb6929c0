/* The MySQL/MariaDB store, as the shared suites see it
 * (tests/stores/store.h): session mode (GET_LOCK) and mode=lease (rows of
 * dlock_leases). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mysql/url.h"
#include "store.h"

static MYSQL *connect_raw(const char *url)
{
    struct dlock_mysql_url u;
    struct dlock_url_options opts; /* mode=, fencing=: libdlock's, not the client library's */
    char *rest = NULL;
    ck_assert_int_eq(dlock__url_options(url, &opts, &rest), DLOCK_OK);
    dlock__url_options_free(&opts);
    ck_assert_int_eq(dlock__mysql_parse_url(rest, &u), DLOCK_OK);
    free(rest);
    MYSQL *db = mysql_init(NULL);
    ck_assert_ptr_nonnull(db);
    ck_assert_msg(mysql_real_connect(db, u.host ? u.host : "localhost", u.user, u.password, u.database, u.port,
                                     u.socket, 0) != NULL,
                  "raw connect: %s", mysql_error(db));
    dlock__mysql_url_free(&u);
    return db;
}

static int lease_mode(const char *url)
{
    return dlt_url_has(url, "mode=lease");
}

/* The first column of the first row of `query` ("" none). */
static void first_value(MYSQL *db, const char *query, char *out, size_t outlen)
{
    ck_assert_msg(mysql_query(db, query) == 0, "%s: %s", query, mysql_error(db));
    MYSQL_RES *res = mysql_store_result(db);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    snprintf(out, outlen, "%s", row && row[0] ? row[0] : "");
    if (res)
        mysql_free_result(res);
}

/* Lease mode: the row, named by the dlock name itself; session mode: the
 * connection id that holds the lock. */
static void view(const char *url, const char *name, char *out, size_t outlen)
{
    MYSQL *db = connect_raw(url);
    char query[1024];
    if (lease_mode(url)) {
        char qname[600];
        mysql_real_escape_string(db, qname, name, (unsigned long)strlen(name));
        snprintf(query, sizeof query,
                 "SELECT CONCAT(HEX(owner), ' expires=', expires_at, ' fence=', fence) FROM dlock_leases"
                 " WHERE name = '%s' AND owner IS NOT NULL",
                 qname);
    } else {
        char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1], quoted[2 * DLOCK_MYSQL_LOCK_NAME_MAX + 1];
        ck_assert_int_gt(dlock__mysql_lock_name(name, server_name, sizeof server_name), 0);
        mysql_real_escape_string(db, quoted, server_name, (unsigned long)strlen(server_name));
        snprintf(query, sizeof query, "SELECT IS_USED_LOCK('%s')", quoted);
    }
    first_value(db, query, out, outlen);
    mysql_close(db);
}

static void take_away(const char *url, const char *name)
{
    char sql[1024];
    if (lease_mode(url)) {
        MYSQL *db = connect_raw(url);
        char qname[600];
        mysql_real_escape_string(db, qname, name, (unsigned long)strlen(name));
        snprintf(sql, sizeof sql, "UPDATE dlock_leases SET owner = NULL, expires_at = 0 WHERE name = '%s'", qname);
        ck_assert_msg(mysql_query(db, sql) == 0, "%s: %s", sql, mysql_error(db));
        ck_assert_int_eq(mysql_affected_rows(db), 1);
        mysql_close(db);
        return;
    }
    char id[32];
    view(url, name, id, sizeof id);
    ck_assert_msg(id[0], "nobody holds '%s'", name);
    MYSQL *db = connect_raw(url);
    snprintf(sql, sizeof sql, "KILL %s", id);
    ck_assert_msg(mysql_query(db, sql) == 0, "%s: %s", sql, mysql_error(db));
    mysql_close(db);
}


static const struct dlt_bad_url bad_urls[] = {
    {"TLS required", "{scheme}://{user}:{secret}@{host}:{port}/{db}?ssl-mode=REQUIRED",
     {DLOCK_ECONN, DLOCK_EBACKEND, DLOCK_OK}, 3},
    {"TLS verified against a missing CA",
     "{scheme}://{user}:{secret}@{host}:{port}/{db}?ssl-mode=VERIFY_IDENTITY&ssl-ca=/nonexistent/ca.pem",
     {DLOCK_ECONN, DLOCK_EBACKEND}, 2},
    {"the password as an option value", "{scheme}://{user}:{secret}@{host}:{port}/{db}?ssl-mode={secret}",
     {DLOCK_EINVAL}, 1},
    {"the password as an option name", "{scheme}://{user}:{secret}@{host}:{port}/{db}?{secret}=1", {DLOCK_EINVAL}, 1},
    {"a missing socket", "{scheme}://{user}:{secret}@localhost/{db}?socket=/nonexistent/mysqld.sock", {DLOCK_ECONN}, 1},
    {"the real password, wrong database", "{scheme}://{user}:{password}@{host}:{port}/nosuchdb_dlock",
     {DLOCK_EBACKEND, DLOCK_ECONN}, 2},
    {"the real password, TLS required", "{scheme}://{user}:{password}@{host}:{port}/{db}?ssl-mode=REQUIRED",
     {DLOCK_ECONN, DLOCK_EBACKEND, DLOCK_OK}, 3},
    {NULL, NULL, {0}, 0},
};

const struct dlt_store dlt_store_mysql = {
    .backend = "mysql",
    .url_env = "DLOCK_TEST_MYSQL_URL",
    .caps = dlt_sql_store_caps,
    .expiry_slack_ms = 2500, /* wait_timeout counts whole seconds, rounded up */
    .default_port = "3306",
    .url_path = "db",
    .missing_db = "nosuchdb_dlock",
    .bad_urls = bad_urls,
    .bad_login_userinfo = "dlock:Wr0ngPassw0rd",
    .bad_login_word = "Access denied",
    .view = view,
    .take_away = take_away,
    .pid_file_dir_env = "DLOCK_TEST_MYSQL_DIR", /* one process serves every connection */
    .pid_file = "mysqld.pid",
};
