/*
 * Process suite, tcase "metrics-file": overlapping runs, the file lock and escaped names in the
 * metrics file.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- issue 23: the metrics file ----------------------------------------------------------- */

/* The last success time of the file, -1 when it has none. */
static double last_success_in(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[2048];
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "dlock_run_last_success_time_seconds{", 36) == 0)
            v = atof(strrchr(line, ' ') + 1);
    fclose(f);
    return v;
}

/* Runs that overlap at their end share one metrics file: one succeeds, the
 * others fail or find the lock busy, all write the file at about the same
 * moment.  Every round, the file keeps the success (a read-modify-rename
 * without a lock loses it now and then). */
START_TEST(metrics_overlapping_runs_keep_the_success)
{
    enum { ROUNDS = 80, RUNS = 8 };
    char prom[4300];
    snprintf(prom, sizeof prom, "%s/job.prom", dir);
    int lost = 0;
    for (int round = 0; round < ROUNDS; round++) {
        double before = (double)wall_ms() / 1000.0;
        pid_t pids[RUNS];
        for (int i = 0; i < RUNS; i++)
            pids[i] = sh_bg("exec '%s' run -q -w 5s --metrics-file %s %s -- sh -c 'exit %d'", dlock_bin, prom, name,
                            i == 0 ? 0 : 3);
        for (int i = 0; i < RUNS; i++)
            wait_exit(pids[i]);
        double last = last_success_in(prom);
        if (last < before - 0.002) {
            fprintf(stderr, "round %d: last success %.3f, this round's success after %.3f\n", round, last, before);
            lost++;
        }
    }
    ck_assert_msg(lost == 0, "the success was lost in %d of %d rounds", lost, ROUNDS);
}
END_TEST

/* A writer holds the file's lock (the hidden .NAME.lock beside it): dlock
 * run waits for it before reading the file it replaces. */
START_TEST(metrics_writer_waits_for_the_file_lock)
{
    char prom[4300];
    snprintf(prom, sizeof prom, "%s/job.prom", dir);
    ck_assert_int_eq(dlt_sh("'%s' run -q --metrics-file %s %s -- true", dlock_bin, prom, name), 0);
    double first = last_success_in(prom);
    ck_assert(first > 0);
    pid_t holder = sh_bg("exec flock %s/.job.prom.lock sleep 1.5", dir);
    dlt_sleep_ms(300);
    int64_t t0 = wall_ms();
    ck_assert_int_eq(dlt_sh("'%s' run -q --metrics-file %s %s -- sh -c 'exit 3'", dlock_bin, prom, name), 3);
    int64_t took = wall_ms() - t0;
    ck_assert_int_eq(wait_exit(holder), 0);
    ck_assert_msg(took >= 1000, "dlock run wrote the file after %lld ms, while another writer held its lock",
                  (long long)took);
    ck_assert(last_success_in(prom) == first);
    /* No file the textfile collector would read is left beside it. */
    ck_assert_int_eq(dlt_sh("test $(ls %s | grep -c prom) -eq 1", dir), 0);
}
END_TEST

/* A lock name that the label escapes (spaces, quotes, a backslash) keeps
 * its last success time across a failed run. */
START_TEST(metrics_escaped_name_keeps_the_success)
{
    char prom[4300];
    snprintf(prom, sizeof prom, "%s/job.prom", dir);
    ck_assert_int_eq(dlt_sh("'%s' run --metrics-file %s '%s a \"b\" c\\d e' -- true", dlock_bin, prom, name), 0);
    double first = last_success_in(prom);
    ck_assert(first > 0);
    ck_assert_int_eq(dlt_sh("'%s' run --metrics-file %s '%s a \"b\" c\\d e' -- sh -c 'exit 4'", dlock_bin, prom, name),
                     4);
    ck_assert_msg(last_success_in(prom) == first, "last success %.3f, was %.3f", last_success_in(prom), first);
}
END_TEST

void dlt_process_add_metrics(Suite *s)
{
    TCase *t = tcase_create("metrics-file");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, metrics_overlapping_runs_keep_the_success);
    tcase_add_test(t, metrics_writer_waits_for_the_file_lock);
    tcase_add_test(t, metrics_escaped_name_keeps_the_success);
    suite_add_tcase(s, t);
}
