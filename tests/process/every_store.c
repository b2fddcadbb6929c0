/*
 * Process suite, tcase "every-server-store": dlock run against every configured server store.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* dlock run against one server store: one of several runs, waiters one
 * after another, status, and (where the lock outlives its connection) a
 * killed dlock run's lock free after its TTL, not before. */
static void dlock_run_against(const struct dlt_store *store, const char *redis)
{
    enum { N = 4 };
    char log[4300], out[4300];
    snprintf(log, sizeof log, "%s/ran-%s", dir, store->backend);
    snprintf(out, sizeof out, "%s/out", dir);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -u '%s' -t 10s %s -- sh -c 'echo start >> %s; sleep 0.5; echo end >> %s'",
                        dlock_bin, redis, name, log, log);
    int ran = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        int rc = wait_exit(pids[i]);
        ran += rc == 0;
        busy += rc == 75;
    }
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(busy, N - 1);
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -u '%s' -w 20s %s -- sh -c 'echo start >> %s; sleep 0.2; echo end >> %s'",
                        dlock_bin, redis, name, log, log);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(wait_exit(pids[i]), 0);
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[32];
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        ck_assert_str_eq(line, lines % 2 == 0 ? "start\n" : "end\n");
        lines++;
    }
    fclose(f);
    ck_assert_int_eq(lines, 2 * (N + 1));
    ck_assert_int_eq(dlt_sh("'%s' status -u '%s' %s > %s", dlock_bin, redis, name, out), 1);
    /* A dlock run killed with -9 (its job too): free after its TTL, not before. */
    pid_t holder = sh_bg("exec '%s' run -u '%s' -t 1500ms %s -- sleep 30", dlock_bin, redis, name);
    int64_t start = dlt_now_ms();
    while (dlt_sh("'%s' status -u '%s' %s > %s", dlock_bin, redis, name, out) != 0 && dlt_now_ms() - start < 5000)
        dlt_sleep_ms(20);
    ck_assert(file_has(out, "held by"));
    if (!(store->caps(redis) & DLT_OUTLIVES_CONNECTION)) {
        kill(holder, SIGKILL);
        wait_exit(holder);
        return; /* freed with its connection: conformance checks that */
    }
    int64_t taken = dlt_now_ms();
    kill(holder, SIGKILL); /* its job dies with it (job_dies_with_dlock) */
    wait_exit(holder);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' %s -- true 2>/dev/null", dlock_bin, redis, name), 75);
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' -w 5s %s -- true", dlock_bin, redis, name), 0);
    ck_assert_int_ge(dlt_now_ms() - taken, 1000);
}

/* dlock run against every server store this build has (tests/stores/). */
START_TEST(dlock_run_against_every_server_store)
{
    int tried = 0;
    for (const struct dlt_store *const *st = dlt_stores(); *st; st++) {
        const struct dlt_store *store = *st;
        if (!store->url_env)
            continue;
        const char *server = getenv(store->url_env);
        if (!server || !*server) {
            ck_assert_msg(!dlt_required(store->backend), "%s is not set", store->url_env);
            continue;
        }
        char *own = dlt_unique_name("process-run");
        free(name);
        name = own;
        dlock_run_against(store, server);
        tried++;
    }
    if (tried == 0)
        fprintf(stderr, "dlock_run_against_every_server_store: no server configured\n");
}
END_TEST

void dlt_process_add_every_store(Suite *s)
{
    TCase *t = tcase_create("every-server-store");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, dlock_run_against_every_server_store);
    suite_add_tcase(s, t);
}
