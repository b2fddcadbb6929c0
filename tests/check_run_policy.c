/*
 * The timing decisions of `dlock run` (tools/run_policy.c), driven with
 * made-up states and times: when the lease has run out, when the job gets
 * SIGTERM and SIGKILL, when --min-hold ends, when a wait is cancelled again,
 * when dlock stops waiting for a store that does not answer.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>

#include "common.h"
#include "run_policy.h"

#define MIN_HOLD 30000
#define GRACE 10000
#define LET_GO 1500
#define CANCEL_EVERY 50

static struct run_state st;
static int64_t wake;

static void setup(void)
{
    run_state_init(&st, MIN_HOLD, GRACE, LET_GO, CANCEL_EVERY);
    wake = -7;
}

static enum run_action next(int64_t now)
{
    wake = -7;
    return run_next(&st, now, &wake);
}

/* The lock came at t=1000 with a 60 s lease; the job runs. */
static void running_job(void)
{
    st.acquired = 1;
    st.acquired_at = 1000;
    st.lease_ends_at = 61000;
    st.job_running = 1;
}

START_TEST(nothing_happens_before_the_lock)
{
    ck_assert_int_eq(next(0), RUN_WAIT);
    ck_assert_int_eq(wake, INT64_MAX);
}
END_TEST

START_TEST(a_running_job_wakes_at_the_end_of_its_lease)
{
    running_job();
    ck_assert_int_eq(next(2000), RUN_WAIT);
    ck_assert_int_eq(wake, 61000);
}
END_TEST

/* The lease runs out unconfirmed: lost, then SIGTERM at once, then SIGKILL
 * after the grace period, and not before. */
START_TEST(lease_runs_out_term_then_kill)
{
    running_job();
    ck_assert_int_eq(next(61000), RUN_LEASE_RAN_OUT);
    ck_assert(st.lost);
    ck_assert_int_eq(next(61000), RUN_TERM_JOB);
    ck_assert_int_eq(next(61000), RUN_WAIT);
    ck_assert_int_eq(wake, 61000 + GRACE);
    ck_assert_int_eq(next(61000 + GRACE - 1), RUN_WAIT);
    ck_assert_int_eq(next(61000 + GRACE), RUN_KILL_JOB);
    ck_assert_int_eq(next(61000 + GRACE), RUN_WAIT);
    ck_assert_int_eq(wake, INT64_MAX); /* nothing more until the job's end */
}
END_TEST

/* The store says lost (the handler sets lost): SIGTERM once, never twice. */
START_TEST(store_says_lost_term_once)
{
    running_job();
    st.lost = 1;
    ck_assert_int_eq(next(5000), RUN_TERM_JOB);
    ck_assert_int_eq(next(5001), RUN_WAIT);
    ck_assert_int_eq(next(6000), RUN_WAIT);
    ck_assert_int_eq(wake, 5000 + GRACE);
}
END_TEST

/* A job that ends at once keeps the lock until --min-hold has passed. */
START_TEST(min_hold_keeps_the_lock)
{
    running_job();
    st.job_running = 0;
    st.job_done = 1;
    ck_assert_int_eq(next(2000), RUN_WAIT);
    ck_assert_int_eq(wake, 1000 + MIN_HOLD);
    ck_assert_int_eq(next(1000 + MIN_HOLD - 1), RUN_WAIT);
    ck_assert_int_eq(next(1000 + MIN_HOLD), RUN_RELEASE);
    ck_assert_int_eq(next(1000 + MIN_HOLD), RUN_WAIT);
    ck_assert_int_eq(wake, INT64_MAX); /* a healthy release: no let-go timer */
}
END_TEST

/* A signal during the hold ends it at once. */
START_TEST(signal_ends_the_hold)
{
    running_job();
    st.job_running = 0;
    st.job_done = 1;
    st.got_signal = 15;
    st.told_to_stop = 1;
    ck_assert_int_eq(next(2000), RUN_RELEASE);
}
END_TEST

/* A signal forwarded to the job does not cut the hold short, and does not
 * start the let-go timer while the hold lasts. */
START_TEST(forwarded_signal_keeps_the_hold)
{
    running_job();
    st.told_to_stop = 1;
    st.job_running = 0;
    st.job_done = 1;
    ck_assert_int_eq(next(2000), RUN_WAIT);
    ck_assert_int_eq(wake, 1000 + MIN_HOLD);
    ck_assert_int_eq(next(1000 + MIN_HOLD), RUN_RELEASE);
    /* Once the release is asked, the library gets LET_GO to finish. */
    ck_assert_int_eq(next(1000 + MIN_HOLD), RUN_WAIT);
    ck_assert_int_eq(wake, 1000 + MIN_HOLD + LET_GO);
    ck_assert_int_eq(next(1000 + MIN_HOLD + LET_GO), RUN_ABANDON);
}
END_TEST

/* The lock is lost and the job over: release at once, and leave after
 * LET_GO even if the store never answers. */
START_TEST(lost_and_over_lets_go)
{
    running_job();
    st.lost = 1;
    st.term_sent = 1;
    st.job_running = 0;
    st.job_done = 1;
    ck_assert_int_eq(next(70000), RUN_RELEASE);
    ck_assert_int_eq(next(70000), RUN_WAIT);
    ck_assert_int_eq(wake, 70000 + LET_GO);
    ck_assert_int_eq(next(70000 + LET_GO - 1), RUN_WAIT);
    ck_assert_int_eq(next(70000 + LET_GO), RUN_ABANDON);
}
END_TEST

/* After the job, the lease running out during --min-hold still loses the
 * lock, which is then released without waiting for the hold. */
START_TEST(lease_runs_out_during_the_hold)
{
    running_job();
    st.job_running = 0;
    st.job_done = 1;
    st.lease_ends_at = 5000;
    ck_assert_int_eq(next(5000), RUN_LEASE_RAN_OUT);
    ck_assert_int_eq(next(5000), RUN_RELEASE); /* no SIGTERM: no job runs */
}
END_TEST

/* Once the release is asked, the lease is not watched any more. */
START_TEST(release_asked_stops_watching_the_lease)
{
    running_job();
    st.job_running = 0;
    st.job_done = 1;
    st.release_asked = 1;
    st.lease_ends_at = 100;
    ck_assert_int_eq(next(200000), RUN_WAIT);
    ck_assert_int_eq(wake, INT64_MAX);
}
END_TEST

/* A signal while waiting: cancel now and every CANCEL_EVERY until the wait
 * ends; leave after LET_GO whatever the store does. */
START_TEST(signal_while_waiting_cancels_again_and_again)
{
    st.got_signal = 15;
    st.told_to_stop = 1;
    st.next_cancel_at = 100;
    ck_assert_int_eq(next(100), RUN_CANCEL_WAIT);
    ck_assert_int_eq(next(100), RUN_WAIT);
    ck_assert_int_eq(wake, 100 + CANCEL_EVERY);
    ck_assert_int_eq(next(100 + CANCEL_EVERY), RUN_CANCEL_WAIT);
    ck_assert_int_eq(next(100 + LET_GO), RUN_ABANDON);
}
END_TEST

/* The grace period is counted from the SIGTERM, not from the loss. */
START_TEST(kill_waits_for_the_grace_from_term)
{
    running_job();
    st.lost = 1;
    ck_assert_int_eq(next(9000), RUN_TERM_JOB);
    ck_assert_int_eq(next(9000 + GRACE - 1), RUN_WAIT);
    ck_assert_int_eq(next(9000 + GRACE), RUN_KILL_JOB);
}
END_TEST

/* --- --once-per: the last success's start, PERIOD/2 ----------------------------------- */

#define HOUR 3600000LL
#define T0 1795982400000LL /* 2026-11-29T20:00:00Z, a multiple of an hour */

/* Done exactly when the last success started less than PERIOD/2 ago; a
 * record in the store clock's future is done; none recorded is not. */
START_TEST(once_done_within_half_a_period)
{
    ck_assert(!run_once_done(0, T0, HOUR));
    ck_assert(run_once_done(T0, T0, HOUR));
    ck_assert(run_once_done(T0, T0 + HOUR / 2 - 1, HOUR));
    ck_assert(!run_once_done(T0, T0 + HOUR / 2, HOUR));
    ck_assert(!run_once_done(T0, T0 + HOUR, HOUR));
    ck_assert(!run_once_done(T0 - 7 * HOUR, T0, HOUR));
    ck_assert(run_once_done(T0 + 1, T0, HOUR));
    ck_assert(run_once_done(T0 + 5 * HOUR, T0, HOUR)); /* the clock was stepped back: never a second run */
    ck_assert(run_once_done(1000, 1001, 3));           /* odd periods: 1 ms < 1.5 ms */
    ck_assert(!run_once_done(1000, 1002, 3));          /* 2 ms >= 1.5 ms */
    /* A record of an earlier dlock: the slot (the multiple of PERIOD nearest
     * to its run's start).  The next period's run is never skipped. */
    for (int64_t started = T0 - HOUR / 2; started < T0 + HOUR / 2; started += HOUR / 64)
        ck_assert(!run_once_done(T0, started + HOUR, HOUR));
}
END_TEST

/* Two servers fire one schedule at every phase of the period (every
 * sixteenth, both sides of the half-period point), the second up to
 * PERIOD/2 - 1 ms after or before the first, for three periods running:
 * in each period exactly one of them runs the job (and records its start).
 * The rule never looks at where in the period the schedule falls. */
START_TEST(once_per_every_phase_and_skew_runs_once_a_period)
{
    static const int64_t periods[] = {1000, 60000, HOUR, 24 * HOUR, 7 * 24 * HOUR};
    for (size_t p = 0; p < sizeof periods / sizeof periods[0]; p++) {
        int64_t period = periods[p];
        int64_t skews[] = {-(period / 2) + 1, -(period / 4), -1, 0, 1, period / 4, period / 2 - 1};
        for (int phase = 0; phase < 16; phase++) {
            for (size_t k = 0; k < sizeof skews / sizeof skews[0]; k++) {
                int64_t last = 0;
                for (int round = 0; round < 3; round++) {
                    int64_t fired = T0 / period * period + phase * period / 16 + round * period;
                    int64_t starts[2] = {fired, fired + skews[k]};
                    if (starts[1] < starts[0]) {
                        starts[1] = fired;
                        starts[0] = fired + skews[k];
                    }
                    int ran = 0;
                    for (int i = 0; i < 2; i++) {
                        if (run_once_done(last, starts[i], period))
                            continue;
                        ran++;
                        last = starts[i];
                    }
                    ck_assert_msg(ran == 1, "period %lld, phase %d/16, skew %lld, round %d: ran %d times",
                                  (long long)period, phase, (long long)skews[k], round, ran);
                }
            }
        }
    }
}
END_TEST

START_TEST(only_success_marks_a_slot)
{
    ck_assert(run_slot_marks_done(0));
    ck_assert(!run_slot_marks_done(1));
    ck_assert(!run_slot_marks_done(75));
    ck_assert(!run_slot_marks_done(79));
    ck_assert(!run_slot_marks_done(128 + 15));
    ck_assert(!run_slot_marks_done(-1));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("run policy");
    TCase *t = tcase_create("decisions");
    tcase_add_checked_fixture(t, setup, NULL);
    tcase_add_test(t, nothing_happens_before_the_lock);
    tcase_add_test(t, a_running_job_wakes_at_the_end_of_its_lease);
    tcase_add_test(t, lease_runs_out_term_then_kill);
    tcase_add_test(t, store_says_lost_term_once);
    tcase_add_test(t, min_hold_keeps_the_lock);
    tcase_add_test(t, signal_ends_the_hold);
    tcase_add_test(t, forwarded_signal_keeps_the_hold);
    tcase_add_test(t, lost_and_over_lets_go);
    tcase_add_test(t, lease_runs_out_during_the_hold);
    tcase_add_test(t, release_asked_stops_watching_the_lease);
    tcase_add_test(t, signal_while_waiting_cancels_again_and_again);
    tcase_add_test(t, kill_waits_for_the_grace_from_term);
    tcase_add_test(t, once_done_within_half_a_period);
    tcase_add_test(t, once_per_every_phase_and_skew_runs_once_a_period);
    tcase_add_test(t, only_success_marks_a_slot);
    suite_add_tcase(s, t);
    int failed = dlt_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
