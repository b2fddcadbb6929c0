/*
 * Process suite, tcase "once-per-window": --once-per at every phase and clock skew, long jobs.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* Start `dlock run -q --once-per PERIOD lock -- sh -c 'echo >> log'` at
 * the Unix time at_ms (the child sleeps until then, as cron would start it). */
static pid_t once_per_at(int64_t at_ms, const char *period, const char *lock, const char *log)
{
    char job[4400];
    snprintf(job, sizeof job, "echo ran >> '%s'", log);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec until = {(time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L};
        while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, NULL) == EINTR) {
        }
        execl(dlock_bin, dlock_bin, "run", "-q", "--once-per", period, lock, "--", "sh", "-c", job, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Two servers fire the same schedule, their starts 0.3 PERIOD apart one
 * way or the other, at every eighth of the period (so that some pairs
 * straddle the half-period point, where the nearest-multiple slot of the
 * second wave split them), in two consecutive periods: the job runs once
 * in each period, never twice in one, never zero times. */
START_TEST(once_per_every_phase_and_skew)
{
    enum { PHASES = 8, SKEWS = 2, ROUNDS = 2, SERVERS = 2 };
    const int64_t period = 4000;
    /* 0.3 PERIOD: a margin of 0.8 s for a loaded machine's start-up delays
     * (the unit test in check_run_policy goes to PERIOD/2 - 1 ms). */
    const int64_t skews[SKEWS] = {period * 3 / 10, -period * 3 / 10};
    int64_t base = (wall_ms() / period + 2) * period; /* at least one period ahead */
    pid_t pids[PHASES][SKEWS][ROUNDS][SERVERS];
    char logs[PHASES][SKEWS][4400];
    for (int k = 0; k < PHASES; k++) {
        for (int d = 0; d < SKEWS; d++) {
            char lock[400];
            snprintf(lock, sizeof lock, "%s-p%d-s%d", name, k, d);
            snprintf(logs[k][d], sizeof logs[k][d], "%s/ran-p%d-s%d", dir, k, d);
            for (int round = 0; round < ROUNDS; round++) {
                int64_t fired = base + round * period + k * period / PHASES;
                pids[k][d][round][0] = once_per_at(fired, "4s", lock, logs[k][d]);
                pids[k][d][round][1] = once_per_at(fired + skews[d], "4s", lock, logs[k][d]);
            }
        }
    }
    int bad = 0;
    for (int k = 0; k < PHASES; k++)
        for (int d = 0; d < SKEWS; d++) {
            for (int round = 0; round < ROUNDS; round++)
                for (int i = 0; i < SERVERS; i++) {
                    int rc = wait_exit(pids[k][d][round][i]);
                    ck_assert_msg(rc == 0 || rc == 75, "phase %d/8, skew %lld: dlock run exited %d", k,
                                  (long long)skews[d], rc);
                }
            int ran = count_lines(logs[k][d]);
            if (ran != ROUNDS) {
                fprintf(stderr,
                        "phase %d/8 of the period, second server %+lld ms: the job ran %d times in %d periods\n", k,
                        (long long)skews[d], ran, ROUNDS);
                bad++;
            }
        }
    ck_assert_msg(bad == 0, "%d of %d schedules did not run exactly once a period", bad, PHASES * SKEWS);
}
END_TEST

/* The record is the start of the successful run, not its end: a job that
 * takes longer than PERIOD/2 does not make the next period's run skip. */
START_TEST(once_per_long_job_next_period_runs)
{
    char log[4300];
    snprintf(log, sizeof log, "%s/ran", dir);
    int64_t start = wall_ms();
    ck_assert_int_eq(dlt_sh("'%s' run -q --once-per 4s %s -- sh -c 'sleep 2.6; echo ran >> %s'", dlock_bin, name, log),
                     0);
    int64_t next = start + 4000;
    while (wall_ms() < next)
        dlt_sleep_ms(20);
    ck_assert_int_eq(dlt_sh("'%s' run -q --once-per 4s %s -- sh -c 'echo ran >> %s'", dlock_bin, name, log), 0);
    ck_assert_int_eq(count_lines(log), 2);
}
END_TEST

void dlt_process_add_once_per(Suite *s)
{
    TCase *t = tcase_create("once-per-window");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, once_per_every_phase_and_skew);
    tcase_add_test(t, once_per_long_job_next_period_runs);
    suite_add_tcase(s, t);
}
