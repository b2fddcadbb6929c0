/*
 * Process suite, tcase "power-loss": SQLite fencing tokens survive lost WAL frames.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- issue 23: SQLite tokens across a power loss ------------------------------------------ */

/* A power loss loses the last commits of the WAL that were not synced, and
 * reboots the host.  Simulated with real processes: tokens are taken, the
 * WAL's size is noted, more tokens are taken, then a copy of the database
 * gets the WAL cut back to that size (the lost frames) and the previous
 * boot's id in place of this one (the reboot).  The next token from the
 * copy is above every token handed out before the "power loss". */
START_TEST(sqlite_tokens_survive_lost_wal_frames)
{
    if (dlt_sh("command -v sqlite3 >/dev/null") != 0) {
        ck_assert_msg(!dlt_required("sqlite"), "the sqlite3 shell is needed");
        return;
    }
    char out[4300];
    snprintf(out, sizeof out, "%s/fence", dir);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(dlt_sh("'%s' run %s -- sh -c 'echo $DLOCK_FENCE' > %s", dlock_bin, name, out), 0);
    struct stat st;
    char wal[4300];
    snprintf(wal, sizeof wal, "%s/locks.db-wal", dir);
    ck_assert_int_eq(stat(wal, &st), 0);
    long long synced = (long long)st.st_size;
    unsigned long long last = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(dlt_sh("'%s' run %s -- sh -c 'echo $DLOCK_FENCE' > %s", dlock_bin, name, out), 0);
        FILE *f = fopen(out, "r");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fscanf(f, "%llu", &last), 1);
        fclose(f);
    }
    ck_assert_int_gt(stat(wal, &st), -1);
    ck_assert_int_gt((long long)st.st_size, synced); /* the later takes are in frames after it */
    /* The power loss: the database file as it is (no checkpoint ran), the
     * WAL without its last frames, no -shm (rebuilt from the WAL). */
    ck_assert_int_eq(
        dlt_sh("mkdir %s/after && cp %s/locks.db %s/after/locks.db && head -c %lld %s > %s/after/locks.db-wal", dir,
               dir, dir, synced, wal, dir),
        0);
    char fence_text[64] = "";
    ck_assert_int_eq(
        dlt_sh("sqlite3 %s/after/locks.db \"SELECT fence FROM dlock_locks WHERE name = '%s'\" > %s", dir, name, out),
        0);
    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(fence_text, sizeof fence_text, f));
    fclose(f);
    ck_assert_msg(strtoull(fence_text, NULL, 10) < last, "the cut WAL kept fence %s (last token %llu): nothing lost",
                  fence_text, last);
    /* The reboot: every boot id the copy records is an earlier boot's. */
    ck_assert_int_eq(dlt_sh("sqlite3 %s/after/locks.db \"UPDATE dlock_locks SET boot_id = "
                            "'00000000-0000-4000-8000-000000000000';"
                            " UPDATE dlock_epoch SET boot_id = '00000000-0000-4000-8000-000000000000'\" 2>/dev/null ||"
                            " sqlite3 %s/after/locks.db \"UPDATE dlock_locks SET boot_id = "
                            "'00000000-0000-4000-8000-000000000000'\"",
                            dir, dir),
                     0);
    ck_assert_int_eq(dlt_sh("'%s' run -u sqlite://%s/after/locks.db %s -- sh -c 'echo $DLOCK_FENCE' > %s", dlock_bin,
                            dir, name, out),
                     0);
    unsigned long long after = 0;
    f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%llu", &after), 1);
    fclose(f);
    ck_assert_msg(after > last, "token %llu after the power loss, %llu before it", after, last);
}
END_TEST

void dlt_process_add_power_loss(Suite *s)
{
    TCase *t = tcase_create("power-loss");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, sqlite_tokens_survive_lost_wal_frames);
    suite_add_tcase(s, t);
}
