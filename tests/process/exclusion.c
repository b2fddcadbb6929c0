/*
 * Process suite, tcase "exclusion": concurrent dlock runs, exactly one at a time.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- exclusion -------------------------------------------------------------------- */

/* Of N concurrent dlock runs of the same job, exactly one runs it. */
START_TEST(concurrent_runs_exactly_one)
{
    enum { N = 8 };
    char log[4300];
    snprintf(log, sizeof log, "%s/ran", dir);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -t 10s %s -- sh -c 'echo %d >> %s; sleep 1'", dlock_bin, name, i, log);
    int ran = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        int rc = wait_exit(pids[i]);
        if (rc == 0)
            ran++;
        else if (rc == 75)
            busy++;
        else
            ck_abort_msg("dlock run exited %d", rc);
    }
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(busy, N - 1);
    ck_assert_int_eq(count_lines(log), 1);
}
END_TEST

/* Waiters run one after another, never two at once. */
START_TEST(concurrent_waiters_serialize)
{
    enum { N = 5 };
    char log[4300];
    snprintf(log, sizeof log, "%s/ran", dir);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -w 30s %s -- sh -c 'echo start >> %s; sleep 0.2; echo end >> %s'", dlock_bin,
                        name, log, log);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(wait_exit(pids[i]), 0);
    /* The log alternates start/end: no two jobs overlapped. */
    FILE *f = fopen(log, "r");
    ck_assert_ptr_nonnull(f);
    char line[32];
    int i = 0;
    while (fgets(line, sizeof line, f)) {
        ck_assert_str_eq(line, i % 2 == 0 ? "start\n" : "end\n");
        i++;
    }
    fclose(f);
    ck_assert_int_eq(i, 2 * N);
}
END_TEST

void dlt_process_add_exclusion(Suite *s)
{
    TCase *t = tcase_create("exclusion");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, concurrent_runs_exactly_one);
    tcase_add_test(t, concurrent_waiters_serialize);
    suite_add_tcase(s, t);
}
