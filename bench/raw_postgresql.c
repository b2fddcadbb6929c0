/* Raw PostgreSQL baseline: a prepared pg_try_advisory_lock($1) and a
 * prepared pg_advisory_unlock($1) on one libpq connection, the URL handed to
 * libpq as is.  Connecting and preparing are not timed. */
#include "config.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raw.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run a prepared statement with the key; 1 when it returned true. */
static int run_true(PGconn *pg, const char *statement, const char *key)
{
    const char *values[1] = {key};
    PGresult *res = PQexecPrepared(pg, statement, 1, values, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
    if (!ok)
        fprintf(stderr, "raw postgresql: %s: %s", statement, PQerrorMessage(pg));
    PQclear(res);
    return ok;
}

char *bench_pg_plain_url(const char *url, const char *drop_only);

/* A direct connection for a raw loop, named `app` in pg_stat_activity;
 * NULL (said on stderr) when it cannot be made. */
static PGconn *raw_connect(const char *url, const char *app)
{
    char *plain = bench_pg_plain_url(url, NULL);
    const char *keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {plain, app, NULL};
    PGconn *pg = PQconnectdbParams(keywords, values, 1);
    free(plain);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "raw postgresql: cannot connect: %s", pg ? PQerrorMessage(pg) : "out of memory\n");
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

int bench_raw_postgresql(const char *url, long cycles, double *elapsed_s)
{
    PGconn *pg = raw_connect(url, "dlock-bench raw");
    if (!pg)
        return -1;
    static const Oid int8_type[1] = {20};
    PGresult *p1 = PQprepare(pg, "raw_lock", "SELECT pg_try_advisory_lock($1)", 1, int8_type);
    PGresult *p2 = PQprepare(pg, "raw_unlock", "SELECT pg_advisory_unlock($1)", 1, int8_type);
    int prepared = PQresultStatus(p1) == PGRES_COMMAND_OK && PQresultStatus(p2) == PGRES_COMMAND_OK;
    PQclear(p1);
    PQclear(p2);
    if (!prepared) {
        fprintf(stderr, "raw postgresql: prepare: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return -1;
    }
    /* A fixed key of its own, away from the names the library uses. */
    const char *key = "7310582364069921234";
    double start = now_s();
    for (long i = 0; i < cycles; i++) {
        if (!run_true(pg, "raw_lock", key) || !run_true(pg, "raw_unlock", key)) {
            PQfinish(pg);
            return -1;
        }
    }
    *elapsed_s = now_s() - start;
    PQfinish(pg);
    return 0;
}

/* --- handoff baseline ------------------------------------------------------ */

static const char handoff_key[] = "7310582364069925678";

void *bench_raw_postgresql_open(const char *url)
{
    PGconn *pg = raw_connect(url, "dlock-bench raw handoff");
    if (!pg)
        return NULL;
    static const Oid int8_type[1] = {20};
    PGresult *r0 = PQexec(pg, "SET lock_timeout = '30s'");
    PGresult *r1 = PQprepare(pg, "raw_try", "SELECT pg_try_advisory_lock($1)", 1, int8_type);
    PGresult *r2 = PQprepare(pg, "raw_wait", "SELECT pg_advisory_lock($1)::text", 1, int8_type);
    PGresult *r3 = PQprepare(pg, "raw_unlock", "SELECT pg_advisory_unlock($1)", 1, int8_type);
    int ok = PQresultStatus(r0) == PGRES_COMMAND_OK && PQresultStatus(r1) == PGRES_COMMAND_OK &&
             PQresultStatus(r2) == PGRES_COMMAND_OK && PQresultStatus(r3) == PGRES_COMMAND_OK;
    PQclear(r0);
    PQclear(r1);
    PQclear(r2);
    PQclear(r3);
    if (!ok) {
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

int bench_raw_postgresql_lock(void *session, int wait)
{
    PGconn *pg = session;
    if (!wait)
        return run_true(pg, "raw_try", handoff_key);
    const char *values[1] = {handoff_key};
    PGresult *res = PQexecPrepared(pg, "raw_wait", 1, values, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    return ok;
}

int bench_raw_postgresql_unlock(void *session)
{
    return run_true(session, "raw_unlock", handoff_key);
}

void bench_raw_postgresql_close(void *session)
{
    PQfinish(session);
}

/* --- lease mode baseline ------------------------------------------------------ */

/* The URL without libdlock's own options (mode, table, fencing), for libpq. */
char *bench_pg_plain_url(const char *url, const char *drop_only)
{
    size_t len = strlen(url);
    char *out = malloc(len + 1);
    const char *q = strchr(url, '?');
    if (!out)
        return NULL;
    if (!q) {
        memcpy(out, url, len + 1);
        return out;
    }
    size_t n = (size_t)(q - url);
    memcpy(out, url, n);
    char sep = '?';
    for (const char *p = q + 1; *p;) {
        size_t plen = strcspn(p, "&");
        int ours =
            drop_only ? (strncmp(p, drop_only, strlen(drop_only)) == 0)
                      : (strncmp(p, "mode=", 5) == 0 || strncmp(p, "table=", 6) == 0 || strncmp(p, "fencing=", 8) == 0);
        if (!ours) {
            out[n++] = sep;
            memcpy(out + n, p, plen);
            n += plen;
            sep = '&';
        }
        p += plen;
        if (*p == '&')
            p++;
    }
    out[n] = '\0';
    return out;
}

static int exec_ok(PGconn *pg, const char *sql, int nparams, const char *const *values, int want_rows)
{
    PGresult *res = PQexecParams(pg, sql, nparams, NULL, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    int ok = (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && (!want_rows || PQntuples(res) == 1);
    if (!ok)
        fprintf(stderr, "raw postgresql lease: %s", PQerrorMessage(pg));
    PQclear(res);
    return ok;
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Run a lease statement, prepared (name) or unnamed (name NULL). */
static int lease_exec(PGconn *pg, const char *name, const char *sql, int nparams, const char *const *values,
                      int want_rows, int *missing)
{
    if (!name)
        return exec_ok(pg, sql, nparams, values, want_rows);
    PGresult *res = PQexecPrepared(pg, name, nparams, values, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    int ok = (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && (!want_rows || PQntuples(res) == 1);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    *missing = !ok && state && strcmp(state, "26000") == 0;
    if (!ok && !*missing)
        fprintf(stderr, "raw postgresql lease: %s", PQerrorMessage(pg));
    PQclear(res);
    return ok;
}

/* A transaction pooler lost a prepared statement once: unnamed from then on. */
static int lease_unnamed;

/* What a hand-written lease loop does: an upsert that takes a free or
 * expired row (expiry on the server's clock), and a delete by owner; each
 * prepared where the connection keeps prepared statements (a direct one),
 * else unnamed, as through a transaction pooler; every commit synchronous. */
int bench_raw_postgresql_lease(const char *url, long cycles, double *elapsed_s)
{
    PGconn *pg = raw_connect(url, "dlock-bench raw lease");
    if (!pg)
        return -1;
    PQsetNoticeProcessor(pg, quiet, NULL); /* "already exists, skipping" */
    /* As durable as libdlock's lease statements (issue 23): a loop that may
     * lose a take in a crash is no baseline for one that may not. */
    if (!exec_ok(pg, "SET synchronous_commit = on", 0, NULL, 0) ||
        !exec_ok(pg,
                 "CREATE TABLE IF NOT EXISTS dlock_bench_raw (name bytea PRIMARY KEY, owner uuid,"
                 " fence bigint NOT NULL DEFAULT 0, expires_at timestamptz, holder text, taken_at timestamptz)",
                 0, NULL, 0)) {
        PQfinish(pg);
        return -1;
    }
    const char *params[3] = {"bench-raw-lease", "6f0b2c4e-1a3d-4b5c-8d7e-9f0a1b2c3d4e", "60000"};
    static const char take[] =
        "INSERT INTO dlock_bench_raw AS l (name, owner, fence, expires_at, holder, taken_at)"
        " VALUES (convert_to($1, 'UTF8'), $2::uuid, 1, clock_timestamp() + $3::bigint * interval '1 millisecond',"
        " 'raw', clock_timestamp())"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, fence = l.fence + 1,"
        " expires_at = excluded.expires_at, holder = excluded.holder, taken_at = excluded.taken_at"
        " WHERE l.owner IS NULL OR l.expires_at <= clock_timestamp() RETURNING l.fence";
    static const char drop[] = "DELETE FROM dlock_bench_raw WHERE name = convert_to($1, 'UTF8') AND owner = $2::uuid";
    const char *take_name = NULL, *drop_name = NULL;
    if (!lease_unnamed) {
        PGresult *p1 = PQprepare(pg, "raw_take", take, 3, NULL);
        PGresult *p2 = PQprepare(pg, "raw_drop", drop, 2, NULL);
        if (PQresultStatus(p1) == PGRES_COMMAND_OK && PQresultStatus(p2) == PGRES_COMMAND_OK)
            take_name = "raw_take", drop_name = "raw_drop";
        else
            lease_unnamed = 1;
        PQclear(p1);
        PQclear(p2);
    }
    double start = now_s();
    for (long i = 0; i < cycles; i++) {
        int missing = 0;
        if (!lease_exec(pg, take_name, take, 3, params, 1, &missing) ||
            !lease_exec(pg, drop_name, drop, 2, params, 0, &missing)) {
            if (missing) { /* a transaction pooler: unnamed from here on */
                lease_unnamed = 1;
                take_name = drop_name = NULL;
                (void)exec_ok(pg, drop, 2, params, 0);
                start = now_s();
                i = -1;
                continue;
            }
            PQfinish(pg);
            return -1;
        }
    }
    *elapsed_s = now_s() - start;
    PQfinish(pg);
    return 0;
}

/* Issue 23's targets, printed beside each PostgreSQL cycles ratio. */
const char *bench_raw_postgresql_note(const char *url)
{
    if (strstr(url, "fencing=on"))
        return "(raw: plain session mode; target >= 0.70)";
    if (strstr(url, "mode=lease"))
        return lease_unnamed ? "(raw: a lease loop, unnamed: a transaction pooler)"
                             : "(raw: a lease loop, prepared; target >= 0.80 on a direct connection)";
    return "(raw: prepared try/unlock; target >= 0.90)";
}
