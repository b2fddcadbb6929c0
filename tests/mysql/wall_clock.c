/*
 * MySQL suite, tcase "wall-clock": a lease wait ignores a step of the wall clock.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* ------------------------------------------------------------------------ */
/* Issue 23: durability, clocks, one name per break, modes that see each    */
/* other                                                                    */
/* ------------------------------------------------------------------------ */

/* This program's CLOCK_REALTIME, shifted by realtime_offset_s (the library
 * is linked in statically, so its calls land here).  Reading the clock
 * `offset` ahead and then waiting on it is what a step of the wall clock
 * backwards by `offset` does to a bounded wait. */
static volatile int realtime_offset_s;

int clock_gettime(clockid_t id, struct timespec *ts)
{
    long rc = syscall(SYS_clock_gettime, id, ts);
    if (rc == 0 && id == CLOCK_REALTIME)
        ts->tv_sec += realtime_offset_s;
    return (int)rc;
}

/* Suspected: the lease-mode wait sleeps on the wall clock, so a step back
 * overruns a bounded wait by the step. */
START_TEST(lease_wait_ignores_a_wall_clock_step)
{
    char *name = unique("wallclock");
    dlock_client *holder = open_url(lease_url), *waiter = open_url(lease_url);
    dlock_lock *l = NULL, *w = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 30000, 0, &l), DLOCK_OK);
    realtime_offset_s = 10;
    int64_t t0 = dlt_now_ms();
    int rc = dlock_acquire(waiter, name, 5000, 600, &w);
    int64_t took = dlt_now_ms() - t0;
    realtime_offset_s = 0;
    fprintf(stderr, "FIGURE: a 600 ms lease-mode wait with the wall clock 10 s back took %lld ms\n", (long long)took);
    ck_assert_int_eq(rc, DLOCK_EBUSY);
    ck_assert_int_lt(took, 2500);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(holder);
    dlock_close(waiter);
    free(name);
}
END_TEST

void dlt_mysql_add_wall_clock(Suite *s)
{
    /* The wall clock, alone: a wait that sleeps on the wrong clock never
     * ends, and this short timeout says so. */
    TCase *tc = tcase_create("wall-clock");
    tcase_add_checked_fixture(tc, wave_setup, NULL);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, lease_wait_ignores_a_wall_clock_step);
    suite_add_tcase(s, tc);
}
