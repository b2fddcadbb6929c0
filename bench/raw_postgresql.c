/* Raw PostgreSQL baseline: a prepared pg_try_advisory_lock($1) and a
 * prepared pg_advisory_unlock($1) on one libpq connection, the URL handed to
 * libpq as is.  Connecting and preparing are not timed. */
#include "config.h"

#include <libpq-fe.h>
#include <stdio.h>
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

int bench_raw_postgresql(const char *url, long cycles, double *elapsed_s)
{
    const char *keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {url, "dlock-bench raw", NULL};
    PGconn *pg = PQconnectdbParams(keywords, values, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "raw postgresql: cannot connect: %s", pg ? PQerrorMessage(pg) : "out of memory\n");
        PQfinish(pg);
        return -1;
    }
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
    const char *keywords[] = {"dbname", "fallback_application_name", NULL};
    const char *values[] = {url, "dlock-bench raw handoff", NULL};
    PGconn *pg = PQconnectdbParams(keywords, values, 1);
    if (!pg || PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        return NULL;
    }
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
