/*
 * PostgreSQL suite, tcase "crash": fencing tokens and leases survive a crash of a durable server.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- issue 23: durability, errors after a grant, serialization failures, break results,
 *     the two modes on one database, side effects, late extends, pooled sessions ---------- */

/* A private server in dir/pg (DLOCK_PG_FSYNC=on: fsync on); its URL. */
static void private_server(const char *dir, const char *action, char *url, size_t len)
{
    const char *script = pg_server_script();
    ck_assert_msg(script != NULL, "tests/pg-server.sh not found ($top_srcdir)");
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "DLOCK_PG_FSYNC=on sh '%s' %s '%s/pg' >/dev/null", script, action, dir);
    ck_assert_msg(dlt_system(cmd) == 0, "pg-server.sh %s failed", action);
    if (!url)
        return;
    char env_path[4200], line[1024];
    snprintf(env_path, sizeof env_path, "%s/pg/env", dir);
    FILE *f = fopen(env_path, "r");
    ck_assert(f != NULL);
    url[0] = '\0';
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "export DLOCK_TEST_PG_URL='%1000[^']'", url) == 1)
            break;
    fclose(f);
    ck_assert(url[0] != '\0');
    (void)len;
}

static void private_server_remove(char *dir)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "sh '%s' stop '%s/pg'; rm -rf '%s'", pg_server_script(), dir, dir);
    dlt_system(cmd);
    free(dir);
}

static uint64_t fence_of(dlock_lock *l)
{
    uint64_t f = 0;
    ck_assert_int_eq(dlock_fence(l, &f), DLOCK_OK);
    return f;
}

/* A checkpoint of the private server at `url`. */
static void checkpoint(const char *url)
{
    const char *keywords[] = {"dbname", NULL};
    const char *values[] = {url, NULL};
    PGconn *pg = PQconnectdbParams(keywords, values, 1);
    ck_assert(PQstatus(pg) == CONNECTION_OK);
    PQclear(PQexec(pg, "CHECKPOINT"));
    PQfinish(pg);
}

/* Lease mode, twice: a take, a crash of the server in `dir`; the holder's
 * row survives: nobody else takes it, the holder extends and releases. */
static void lease_survives_crashes(const char *dir, const char *lease_url, const char *name)
{
    dlock_lock *leased = NULL;
    dlock_client *lc = NULL, *lc2 = NULL;
    char lease_name[256];
    for (int round = 0; round < 2; round++) {
        /* Lease mode: a take, a crash. */
        if (lc2)
            dlock_close(lc2);
        lc = open_client(lease_url);
        snprintf(lease_name, sizeof lease_name, "%s-lease-%d", name, round); /* the modes exclude each other */
        ck_assert_int_eq(dlock_acquire(lc, lease_name, 60000, 0, &leased), DLOCK_OK);
        uint64_t lease_fence = fence_of(leased);
        private_server(dir, "crash", NULL, 0);
        private_server(dir, "start", NULL, 0);
        lc2 = open_client(lease_url);
        dlock_lock *l2 = NULL;
        int rc = dlock_acquire(lc2, lease_name, 60000, 0, &l2);
        fprintf(stderr, "crash: lease-mode take after the crash: %d (the holder's fence %llu)\n", rc,
                (unsigned long long)lease_fence);
        if (rc == DLOCK_OK) {
            uint64_t f2 = fence_of(l2);
            ck_assert_msg(0,
                          "lease mode: the holder's row (fence %llu) was lost in the crash; another took it (fence %llu)",
                          (unsigned long long)lease_fence, (unsigned long long)f2);
        }
        ck_assert_int_eq(rc, DLOCK_EBUSY);
        /* The holder's lease survived the crash: it extends and releases. */
        ck_assert_int_eq(dlock_extend(leased, 60000), DLOCK_OK);
        ck_assert_int_eq(dlock_release(leased), DLOCK_OK);
        dlock_close(lc);
    }
    dlock_close(lc2);
}

/* Item 2: a postmaster crash (kill -QUIT) right after the last take must
 * lose neither a fencing=on token nor a lease-mode row: the server runs with
 * synchronous_commit=off, fsync on, and a WAL writer that flushes every 10 s;
 * every statement that takes, bumps, extends or releases asks for a
 * synchronous commit of its own. */
START_TEST(test_crash_durability)
{
    char *dir = dlt_tmpdir();
    chmod(dir, 0755);
    char url[1024];
    private_server(dir, "start", url, sizeof url);
    char *fence_url = url_with(url, "fencing=on");
    char *lease_url = url_with(url, "mode=lease");
    char *name = dlt_unique_name("pg-crash");
    /* The tables exist and are checkpointed before the takes under test. */
    dlock_client *c = open_client(fence_url), *lc = open_client(lease_url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, "pg-crash-warmup", 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(lc, "pg-crash-warmup", 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    checkpoint(url);
    dlock_close(lc);
    /* Two rounds of each: a round whose WAL crossed a page boundary may
     * have woken the WAL writer, which then flushes the lot. */
    for (int round = 0; round < 2; round++) {
        /* fencing=on: three takes, a crash (nothing else commits in
         * between: a later synchronous commit would flush these too). */
        uint64_t last = 0;
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
            last = fence_of(l);
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        }
        dlock_close(c);
        private_server(dir, "crash", NULL, 0);
        private_server(dir, "start", NULL, 0);
        c = open_client(fence_url);
        ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
        uint64_t after = fence_of(l);
        fprintf(stderr, "crash: fencing=on token %llu before the crash, %llu after\n", (unsigned long long)last,
                (unsigned long long)after);
        ck_assert_msg(after > last, "fencing=on: token %llu handed out again after a crash (last %llu)",
                      (unsigned long long)after, (unsigned long long)last);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    lease_survives_crashes(dir, lease_url, name);
    dlock_close(c);
    free(name);
    free(fence_url);
    free(lease_url);
    private_server_remove(dir);
}
END_TEST

void dlt_pg_add_crash(Suite *s)
{
    TCase *tc = tcase(s, "crash", 120);
    tcase_add_test(tc, test_crash_durability);
}
