/* The PostgreSQL store, as the shared suites see it (tests/stores/store.h):
 * session mode (advisory locks) and mode=lease (rows of dlock_leases). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <check.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backends/postgresql/key.h"
#include "internal.h"
#include "store.h"

PGconn *dlt_pg_connect(const char *url)
{
    char plain[1024];
    dlt_url_without_options(url, plain, sizeof plain);
    PGconn *pg = PQconnectdb(plain);
    ck_assert_msg(pg && PQstatus(pg) == CONNECTION_OK, "raw connect: %s", pg ? PQerrorMessage(pg) : "");
    return pg;
}

int dlt_pg_key_query(PGconn *pg, const char *sql, const char *name, char *out, size_t outlen)
{
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)dlock__pg_key(name, strlen(name)));
    const char *values[1] = {key};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, values, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (out && outlen)
        snprintf(out, outlen, "%s", ok && PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return ok ? 0 : -1;
}

void dlt_pg_holder_pid(const char *url, const char *name, char *out, size_t outlen)
{
    PGconn *pg = dlt_pg_connect(url);
    ck_assert_msg(dlt_pg_key_query(pg, DLT_PG_LOCKS_OF_KEY " AND granted", name, out, outlen) == 0, "pg_locks: %s",
                  PQerrorMessage(pg));
    PQfinish(pg);
}

static int lease_mode(const char *url)
{
    return dlt_url_has(url, "mode=lease");
}

/* One statement with $1 the name; the first column of the first row into
 * out, and the rows it changed. */
static int lease_row(const char *url, const char *sql, const char *name, char *out, size_t outlen)
{
    PGconn *pg = dlt_pg_connect(url);
    const char *values[1] = {name};
    PGresult *res = PQexecParams(pg, sql, 1, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    ck_assert_msg(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(pg));
    if (out && outlen)
        snprintf(out, outlen, "%s", st == PGRES_TUPLES_OK && PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
    int changed = atoi(PQcmdTuples(res));
    PQclear(res);
    PQfinish(pg);
    return changed;
}

static void view(const char *url, const char *name, char *out, size_t outlen)
{
    if (lease_mode(url))
        lease_row(url,
                  "SELECT owner || ' expires=' || expires_at || ' fence=' || fence FROM dlock_leases"
                  " WHERE name = convert_to($1, 'UTF8') AND owner IS NOT NULL",
                  name, out, outlen);
    else
        dlt_pg_holder_pid(url, name, out, outlen);
}

static void take_away(const char *url, const char *name)
{
    if (lease_mode(url)) {
        ck_assert_int_eq(lease_row(url, "DELETE FROM dlock_leases WHERE name = convert_to($1, 'UTF8')", name, NULL, 0),
                         1);
        return;
    }
    char pid[32];
    dlt_pg_holder_pid(url, name, pid, sizeof pid);
    ck_assert_msg(pid[0], "nobody holds '%s'", name);
    PGconn *pg = dlt_pg_connect(url);
    const char *values[1] = {pid};
    PGresult *res = PQexecParams(pg, "SELECT pg_catalog.pg_terminate_backend($1::int)", 1, NULL, values, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK && PQgetvalue(res, 0, 0)[0] == 't',
                  "pg_terminate_backend: %s", PQerrorMessage(pg));
    PQclear(res);
    PQfinish(pg);
}

/* The backend of the session whose application_name names the client's pid. */
static pid_t server_pid(const char *url, pid_t client_pid)
{
    PGconn *pg = dlt_pg_connect(url);
    char pattern[64];
    snprintf(pattern, sizeof pattern, "%% pid=%ld", (long)client_pid);
    const char *values[1] = {pattern};
    pid_t pid = -1;
    PGresult *res = PQexecParams(pg, "SELECT pid FROM pg_catalog.pg_stat_activity WHERE application_name LIKE $1 LIMIT 1",
                                 1, NULL, values, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        pid = (pid_t)atol(PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
    return pid;
}

static const struct dlt_bad_url bad_urls[] = {
    {"TLS required", "{scheme}://{user}:{secret}@{host}:{port}/{db}?sslmode=require",
     {DLOCK_ECONN, DLOCK_EBACKEND, DLOCK_OK}, 3},
    {"TLS verified against a missing CA",
     "{scheme}://{user}:{secret}@{host}:{port}/{db}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
     {DLOCK_ECONN, DLOCK_EBACKEND}, 2},
    {"the password as an option value", "{scheme}://{user}:{secret}@{host}:{port}/{db}?sslmode={secret}",
     {DLOCK_EINVAL, DLOCK_ECONN}, 2},
    {"the password as an option name", "{scheme}://{user}:{secret}@{host}:{port}/{db}?{secret}=1", {DLOCK_EINVAL}, 1},
    {"the password as a query option", "{scheme}://{user}@{host}:{unused_port}/{db}?password={secret}", {DLOCK_ECONN}, 1},
    {"an unterminated IPv6 host", "{scheme}://{user}:{secret}@[::1/{db}", {DLOCK_EINVAL}, 1},
    {NULL, NULL, {0}, 0},
};

const struct dlt_store dlt_store_postgresql = {
    .backend = "postgresql",
    .url_env = "DLOCK_TEST_PG_URL",
    .caps = dlt_sql_store_caps,
    .expiry_slack_ms = 1500,
    .default_port = "5432",
    .url_path = "postgres",
    .missing_db = "nosuchdb_dlock",
    .bad_urls = bad_urls,
    .bad_login_userinfo = "dlock_password:Wr0ngPassw0rd",
    .bad_login_word = "password authentication failed",
    .login_url_env = "DLOCK_TEST_PG_PASSWORD_URL",
    .padding_option = "application_name=",
    .padding_bad_tail = "sslmode=no-such-mode",
    .view = view,
    .take_away = take_away,
    .server_pid = server_pid,
};
