/*
 * Process suite, tcase "faults": kill -9 and SIGSTOP of a holder, stubborn and orphaned jobs, a lost
 * final release.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- faults ---------------------------------------------------------------------------- */

/* kill -9 of a holder: the lock comes free after its TTL, and not before. */
START_TEST(killed_holder_frees_after_ttl_not_before)
{
    const uint32_t ttl = 2000;
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    int64_t acquired = dlt_now_ms();
    dlt_child_stop(&holder, SIGKILL);
    ck_assert(!lock_is_free());
    dlt_sleep_ms(ttl - 600 - (dlt_now_ms() - acquired));
    ck_assert_msg(!lock_is_free(), "freed before its TTL");
    int64_t took = dlt_acquire_within(url, name, 5000, 2000);
    ck_assert_msg(took >= 0, "not freed within TTL + 1 s");
    ck_assert_int_ge(dlt_now_ms() - acquired, ttl - 50);
    ck_assert_int_le(dlt_now_ms() - acquired, ttl + 1000);
}
END_TEST

/* SIGSTOP past the TTL: another process takes the lock; after SIGCONT the
 * holder's next extend says DLOCK_ELOST. */
START_TEST(stopped_holder_loses_lock)
{
    const uint32_t ttl = 1000;
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    kill(holder.pid, SIGSTOP);
    dlt_sleep_ms(ttl + 200);
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    kill(holder.pid, SIGCONT);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 10000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_ELOST);
    /* The old holder's release did not free the new holder's lock. */
    ck_assert(!lock_is_free());
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    dlt_child_stop(&holder, 0);
}
END_TEST

/* Under dlock run: dlock is stopped past its TTL, another run takes the
 * lock; on SIGCONT the first job gets SIGTERM and dlock exits 79. */
START_TEST(stopped_dlock_terminates_its_job)
{
    char started[4300], term[4300], second[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(term, sizeof term, "%s/term", dir);
    snprintf(second, sizeof second, "%s/second", dir);
    char job[9000];
    snprintf(job, sizeof job,
             "trap 'echo TERM > %s; exit 0' TERM; touch %s; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
             term, started);
    char *argv[] = {"dlock", "run", "-t", "1s", "-k", "5s", name, "--", "sh", "-c", job, NULL};
    pid_t first = dlock_bg(argv);
    ck_assert(dlt_wait_for_file(started, 5000));
    kill(first, SIGSTOP);
    dlt_sleep_ms(1500);
    ck_assert_int_eq(dlt_sh("'%s' run %s -- touch %s", dlock_bin, name, second), 0);
    ck_assert_int_eq(access(second, F_OK), 0);
    int64_t cont = dlt_now_ms();
    kill(first, SIGCONT);
    ck_assert_int_eq(wait_exit(first), 79);
    ck_assert_int_lt(dlt_now_ms() - cont, 3000);
    ck_assert(file_has(term, "TERM"));
}
END_TEST

/* A job that ignores SIGTERM gets SIGKILL after the grace period. */
START_TEST(lost_lock_kills_stubborn_job)
{
    char started[4300], pidfile[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
    char job[9000];
    snprintf(job, sizeof job,
             "trap '' TERM; echo $$ > %s; touch %s; i=0; while [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done", pidfile,
             started);
    char *argv[] = {"dlock", "run", "-t", "1s", "-k", "1s", name, "--", "sh", "-c", job, NULL};
    pid_t first = dlock_bg(argv);
    ck_assert(dlt_wait_for_file(started, 5000));
    kill(first, SIGSTOP);
    dlt_sleep_ms(1500);
    ck_assert(lock_is_free());
    int64_t cont = dlt_now_ms();
    kill(first, SIGCONT);
    ck_assert_int_eq(wait_exit(first), 79);
    int64_t took = dlt_now_ms() - cont;
    ck_assert_int_ge(took, 900); /* SIGTERM was ignored; SIGKILL came after -k */
    ck_assert_int_lt(took, 4000);
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    int jobpid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &jobpid), 1);
    fclose(f);
    ck_assert_int_eq(kill(jobpid, 0), -1); /* gone */
}
END_TEST

/* If dlock itself dies, its job and the job's children are killed. */
START_TEST(job_dies_with_dlock)
{
    char started[4300], pidfile[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
    char job[9000];
    /* The job's own child must die too, not just the process dlock started. */
    snprintf(job, sizeof job, "sleep 30 & echo $! > %s; touch %s; wait", pidfile, started);
    char *argv[] = {"dlock", "run", "-t", "30s", name, "--", "sh", "-c", job, NULL};
    pid_t first = dlock_bg(argv);
    ck_assert(dlt_wait_for_file(started, 5000));
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    int jobpid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &jobpid), 1);
    fclose(f);
    kill(first, SIGKILL);
    wait_exit(first);
    int64_t start = dlt_now_ms();
    while (kill(jobpid, 0) == 0 && dlt_now_ms() - start < 2000) {
        /* a zombie still answers kill(0): look at its state */
        char path[64], state = '?';
        snprintf(path, sizeof path, "/proc/%d/stat", jobpid);
        FILE *st = fopen(path, "r");
        if (st) {
            if (fscanf(st, "%*d %*s %c", &state) != 1)
                state = '?';
            fclose(st);
        }
        if (state == 'Z')
            break;
        dlt_sleep_ms(20);
    }
    ck_assert_int_lt(dlt_now_ms() - start, 2000);
}
END_TEST

/* The row is taken away behind the holder's back while its lease still looks
 * alive (a new owner token, written through SQLite's own client): the job
 * ends well, and the final release finds the lock lost.  dlock keeps the
 * job's status and says so, even with -q (issue 10: it used to say nothing). */
START_TEST(lost_at_the_final_release_is_said)
{
    char started[4300], err[4300];
    snprintf(started, sizeof started, "%s/started", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    pid_t run = sh_bg("exec '%s' run -q -t 30s %s -- sh -c 'touch \"%s\"; sleep 1.5; exit 3' 2>'%s'", dlock_bin, name,
                      started, err);
    ck_assert(dlt_wait_for_file(started, 10000));
    ck_assert_int_eq(dlt_sh("sqlite3 -cmd '.timeout 5000' '%s/locks.db' "
                            "\"UPDATE dlock_locks SET owner = randomblob(16) WHERE name = '%s'\"",
                            dir, name),
                     0);
    ck_assert_int_eq(wait_exit(run), 3);
    ck_assert_msg(file_has(err, "found lost when it was released"), "dlock said nothing of the lost lock");
}
END_TEST

/* Without a readable boot id (here an empty file bind-mounted over it in a
 * private mount namespace, as a chroot without /proc or ProcSubset=pid
 * would give) the SQLite backend refuses to open rather than guess, so a
 * lock held by another process is never judged expired (issue 10). */
START_TEST(sqlite_without_boot_id_refuses)
{
    if (geteuid() != 0 || dlt_sh("unshare -m true 2>/dev/null") != 0) {
        fprintf(stderr, "sqlite_without_boot_id_refuses: no private mount namespace here (needs root)\n");
        ck_assert_int_ne(geteuid(), 0); /* root must be able to make one */
        return;
    }
    dlock_client *c = NULL;
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &held), DLOCK_OK);
    char ran[4300], err[4300];
    snprintf(ran, sizeof ran, "%s/ran", dir);
    snprintf(err, sizeof err, "%s/err", dir);
    ck_assert_int_eq(dlt_sh("touch '%s/empty'", dir), 0);
    int rc = dlt_sh("unshare -m sh -c \"mount --bind '%s/empty' /proc/sys/kernel/random/boot_id && "
                    "exec '%s' run %s -- touch '%s'\" 2>'%s'",
                    dir, dlock_bin, name, ran, err);
    ck_assert_msg(access(ran, F_OK) != 0, "the job ran while another process held the lock");
    ck_assert_int_ne(rc, 0);
    ck_assert_msg(file_has(err, "boot id"), "no word of the boot id");
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    dlock_close(c);
}
END_TEST

void dlt_process_add_faults(Suite *s)
{
    TCase *t = tcase_create("faults");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, killed_holder_frees_after_ttl_not_before);
    tcase_add_test(t, stopped_holder_loses_lock);
    tcase_add_test(t, stopped_dlock_terminates_its_job);
    tcase_add_test(t, lost_lock_kills_stubborn_job);
    tcase_add_test(t, job_dies_with_dlock);
    tcase_add_test(t, lost_at_the_final_release_is_said);
    tcase_add_test(t, sqlite_without_boot_id_refuses);
    suite_add_tcase(s, t);
}
