/*
 * Process suite, tcases "ops" and "break-one-name": --once-per, the job's environment, list, status,
 * release --force, metrics.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- operations: --once-per, DLOCK_NAME/DLOCK_FENCE, list, status --json, release --force, metrics --- */

/* Runs of the same job started in one slot, each waiting for the lock
 * (without --once-per every one would run it, one after the other): the
 * job runs exactly once, the others find the slot done and exit 75. */
START_TEST(once_per_runs_once_in_a_slot)
{
    enum { N = 5 };
    char log[4300];
    snprintf(log, sizeof log, "%s/ran", dir);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = sh_bg("exec '%s' run -q -w 20s --once-per 24h %s -- sh -c 'echo %d >> %s'", dlock_bin, name, i, log);
    int ran = 0, done = 0;
    for (int i = 0; i < N; i++) {
        int rc = wait_exit(pids[i]);
        if (rc == 0)
            ran++;
        else if (rc == 75)
            done++;
        else
            ck_abort_msg("dlock run exited %d", rc);
    }
    ck_assert_int_eq(ran, 1);
    ck_assert_int_eq(done, N - 1);
    ck_assert_int_eq(count_lines(log), 1);
    /* The control: the same runs without --once-per all run the job. */
    for (int i = 0; i < 3; i++)
        pids[i] = sh_bg("exec '%s' run -q -w 20s %s -- sh -c 'echo %d >> %s'", dlock_bin, name, i, log);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(wait_exit(pids[i]), 0);
    ck_assert_int_eq(count_lines(log), 4);
}
END_TEST

/* Only a success marks the slot: a failed run is retried by the next one in
 * the same slot; a done slot exits 75, or -E. */
START_TEST(once_per_retries_a_failed_run)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' run --once-per 1w %s -- true 2>/dev/null", dlock_bin, name), 64); /* no 'w' unit */
    ck_assert_int_eq(dlt_sh("'%s' run --once-per 500ms %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run --once-per 24h %s -- sh -c 'exit 3'", dlock_bin, name), 3);
    ck_assert_int_eq(dlt_sh("'%s' run --once-per 24h %s -- sh -c 'kill -TERM $$'", dlock_bin, name), 128 + 15);
    ck_assert_int_eq(dlt_sh("'%s' run --once-per 24h %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' run --once-per 24h %s -- touch %s/again 2>%s", dlock_bin, name, dir, out), 75);
    ck_assert(file_has(out, "has run already"));
    ck_assert_int_eq(dlt_sh("'%s' run -q -E 9 --once-per 24h %s -- touch %s/again 2>%s", dlock_bin, name, dir, out), 9);
    ck_assert_int_eq(count_lines(out), 0);
    ck_assert_int_eq(dlt_sh("test -e %s/again", dir), 1); /* the job never ran again */
    ck_assert(lock_is_free());
}
END_TEST

/* The job learns its lock's name and fencing token from its environment;
 * a DLOCK_FENCE in dlock's own environment is not passed on as the job's. */
START_TEST(job_gets_name_and_fence)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/env", dir);
    ck_assert_int_eq(
        dlt_sh("DLOCK_FENCE=999 '%s' run %s -- sh -c 'echo \"$DLOCK_NAME:$DLOCK_FENCE\"' > %s", dlock_bin, name, out),
        0);
    char expect[400];
    snprintf(expect, sizeof expect, "%s:1\n", name);
    ck_assert(file_has(out, expect));
    ck_assert_int_eq(dlt_sh("'%s' run %s -- sh -c 'echo \"$DLOCK_NAME:$DLOCK_FENCE\"' > %s", dlock_bin, name, out), 0);
    snprintf(expect, sizeof expect, "%s:2\n", name);
    ck_assert(file_has(out, expect));
}
END_TEST

/* dlock list: a table with a header, the held lock in it; --json: an array
 * of objects with the documented fields; names escaped as JSON strings. */
START_TEST(list_table_and_json)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char odd[400];
    snprintf(odd, sizeof odd, "%s/q\"b\\s\001\xc3\xa9", name);
    dlock_client *c = NULL;
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c, odd, 30000, 0, &l), DLOCK_OK);
    char out[4300], expect[600];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' list > %s", dlock_bin, out), 0);
    ck_assert(file_has(out, "NAME"));
    ck_assert(file_has(out, "HOLDER"));
    ck_assert(file_has(out, "FENCE"));
    snprintf(expect, sizeof expect, "%s  ", name);
    ck_assert(file_has(out, expect));
    ck_assert(!file_has(out, "\001"));
    ck_assert_int_eq(count_lines(out), 3);
    ck_assert_int_eq(dlt_sh("'%s' list --json %s > %s", dlock_bin, name, out), 0);
    snprintf(expect, sizeof expect, "{\"name\":\"%s\",\"key\":\"%s\",\"holder\":", name, name);
    ck_assert(file_has(out, expect));
    snprintf(expect, sizeof expect, "\"pid\":%ld,", (long)holder.pid);
    ck_assert(file_has(out, expect));
    snprintf(expect, sizeof expect, "\"name\":\"%s/q\\\"b\\\\s\\u0001\xc3\xa9\"", name);
    ck_assert_msg(file_has(out, expect), "escaped name not found");
    ck_assert(file_has(out, "\"fence\":1}"));
    ck_assert(file_has(out, "Z\",\"expires\":\""));
    if (dlt_sh("command -v jq >/dev/null") == 0)
        ck_assert_int_eq(
            dlt_sh("jq -e 'length == 2 and .[0].pid > 0 and (.[1].name | endswith(\"\\u00e9\"))' %s >/dev/null", out),
            0);
    /* A prefix that matches nothing: an empty array, status 0. */
    ck_assert_int_eq(dlt_sh("'%s' list --json nothing-here/ > %s", dlock_bin, out), 0);
    ck_assert(file_has(out, "[]"));
    ck_assert_int_eq(dlt_sh("'%s' list a b 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlt_sh("'%s' list --force 2>/dev/null", dlock_bin), 64);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    dlt_child_stop(&holder, 0);
}
END_TEST

START_TEST(status_json)
{
    char out[4300], expect[400];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' status --json %s > %s", dlock_bin, name, out), 1);
    snprintf(expect, sizeof expect, "{\"name\":\"%s\",\"held\":false}\n", name);
    ck_assert(file_has(out, expect));
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    ck_assert_int_eq(dlt_sh("'%s' status --json %s > %s", dlock_bin, name, out), 0);
    snprintf(expect, sizeof expect, "{\"name\":\"%s\",\"held\":true,", name);
    ck_assert(file_has(out, expect));
    snprintf(expect, sizeof expect, "\"pid\":%ld,", (long)holder.pid);
    ck_assert(file_has(out, expect));
    dlt_child_stop(&holder, 0);
}
END_TEST

/* release --force breaks another's lock (its holder then finds it lost),
 * says what it did; a free name answers 1; without --force it is refused. */
START_TEST(release_force_breaks)
{
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' release %s 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 30000", 5000), DLOCK_OK);
    ck_assert_int_eq(dlt_sh("'%s' release --force %s > %s", dlock_bin, name, out), 0);
    ck_assert(file_has(out, "broken"));
    ck_assert(file_has(out, "pid="));
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 30000", 5000), DLOCK_ELOST);
    ck_assert(lock_is_free());
    ck_assert_int_eq(dlt_sh("'%s' release --force %s > %s", dlock_bin, name, out), 1);
    ck_assert(file_has(out, "free"));
    ck_assert_int_eq(dlt_sh("'%s' release --force '' 2>/dev/null", dlock_bin), 64);
    dlt_child_stop(&holder, 0);
}
END_TEST

/* One metric sample per line: `name{labels} value`; NULL when the line is
 * not one.  Returns the value's text. */
static const char *sample_value(const char *line, char *metric, size_t metric_len)
{
    const char *brace = strchr(line, '{');
    const char *close = strstr(line, "} ");
    if (!brace || !close || close < brace || (size_t)(brace - line) >= metric_len)
        return NULL;
    for (const char *p = line; p < brace; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z')))
            return NULL;
    memcpy(metric, line, (size_t)(brace - line));
    metric[brace - line] = '\0';
    char *end;
    strtod(close + 2, &end);
    return end != close + 2 && (*end == '\n' || *end == '\0') ? close + 2 : NULL;
}

/* Every line of the file is a comment or a sample; `want` (a whole line
 * without its newline) is among them; returns the number of samples. */
static int check_metrics(const char *path, const char *const *want)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024], metric[128];
    int samples = 0, found[16] = {0};
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            ck_assert(strncmp(line, "# HELP dlock_run_", 17) == 0 || strncmp(line, "# TYPE dlock_run_", 17) == 0);
            continue;
        }
        ck_assert_msg(sample_value(line, metric, sizeof metric), "not a sample: %s", line);
        samples++;
        line[strcspn(line, "\n")] = '\0';
        for (int i = 0; want[i]; i++)
            if (strcmp(line, want[i]) == 0)
                found[i] = 1;
    }
    fclose(f);
    for (int i = 0; want[i]; i++)
        ck_assert_msg(found[i], "missing: %s", want[i]);
    return samples;
}

START_TEST(metrics_file_is_prometheus_text)
{
    char prom[4300], lock[300], w[6][400];
    snprintf(prom, sizeof prom, "%s/job.prom", dir);
    snprintf(lock, sizeof lock, "%s\\\"x", name); /* the label value escapes \ and " */
    ck_assert_int_eq(dlt_sh("'%s' run --metrics-file %s '%s/\\\"x' -- true", dlock_bin, prom, name), 0);
    snprintf(w[0], sizeof w[0], "dlock_run_outcome{lock=\"%s/\\\\\\\"x\",outcome=\"ran\"} 1", name);
    snprintf(w[1], sizeof w[1], "dlock_run_outcome{lock=\"%s/\\\\\\\"x\",outcome=\"busy\"} 0", name);
    snprintf(w[2], sizeof w[2], "dlock_run_exit_status{lock=\"%s/\\\\\\\"x\"} 0", name);
    const char *want[] = {w[0], w[1], w[2], NULL};
    ck_assert_int_eq(check_metrics(prom, want), 9); /* 5 outcomes, status, start, duration, last success */
    ck_assert(file_has(prom, "dlock_run_last_success_time_seconds{"));
    ck_assert(file_has(prom, "# TYPE dlock_run_outcome gauge"));

    /* A failed run: its status, and the last success carried over. */
    snprintf(prom, sizeof prom, "%s/plain.prom", dir);
    ck_assert_int_eq(dlt_sh("'%s' run --metrics-file %s %s -- true", dlock_bin, prom, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' run --metrics-file %s %s -- sh -c 'exit 3'", dlock_bin, prom, name), 3);
    snprintf(w[0], sizeof w[0], "dlock_run_exit_status{lock=\"%s\"} 3", name);
    snprintf(w[1], sizeof w[1], "dlock_run_outcome{lock=\"%s\",outcome=\"ran\"} 1", name);
    const char *want2[] = {w[0], w[1], NULL};
    ck_assert_int_eq(check_metrics(prom, want2), 9);

    /* Busy, and a slot already done. */
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    ck_assert_int_eq(dlt_sh("'%s' run -q --metrics-file %s %s -- true", dlock_bin, prom, name), 75);
    snprintf(w[0], sizeof w[0], "dlock_run_outcome{lock=\"%s\",outcome=\"busy\"} 1", name);
    snprintf(w[1], sizeof w[1], "dlock_run_outcome{lock=\"%s\",outcome=\"ran\"} 0", name);
    snprintf(w[2], sizeof w[2], "dlock_run_exit_status{lock=\"%s\"} 75", name);
    const char *want3[] = {w[0], w[1], w[2], NULL};
    ck_assert_int_eq(check_metrics(prom, want3), 9);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_OK);
    dlt_child_stop(&holder, 0);
    ck_assert_int_eq(dlt_sh("'%s' run -q --once-per 24h %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' run -q --once-per 24h --metrics-file %s %s -- true", dlock_bin, prom, name), 75);
    snprintf(w[0], sizeof w[0], "dlock_run_outcome{lock=\"%s\",outcome=\"done\"} 1", name);
    const char *want4[] = {w[0], NULL};
    check_metrics(prom, want4);
    /* Nothing left behind but the file itself. */
    ck_assert_int_eq(dlt_sh("test $(ls %s | grep -c prom) -eq 2", dir), 0);
}
END_TEST

/* A lock table made before run records existed gets its last_slot column
 * on first open, and keeps its rows. */
START_TEST(sqlite_old_table_gets_last_slot)
{
    if (dlt_sh("command -v sqlite3 >/dev/null") != 0)
        return; /* the sqlite3 shell is part of the test dependencies */
    ck_assert_int_eq(dlt_sh("sqlite3 '%s/locks.db' \"CREATE TABLE dlock_locks (name TEXT PRIMARY KEY NOT NULL,"
                            " owner BLOB, fence INTEGER NOT NULL DEFAULT 0, holder_host TEXT, holder_pid INTEGER,"
                            " boot_id TEXT, acquired_at INTEGER, expires_boot_ms INTEGER) WITHOUT ROWID;"
                            " INSERT INTO dlock_locks(name, fence) VALUES ('%s', 41)\"",
                            dir, name),
                     0);
    char out[4300];
    snprintf(out, sizeof out, "%s/env", dir);
    ck_assert_int_eq(dlt_sh("'%s' run --once-per 24h %s -- sh -c 'echo $DLOCK_FENCE' > %s", dlock_bin, name, out), 0);
    ck_assert(file_has(out, "42\n"));
    ck_assert_int_eq(dlt_sh("'%s' run -q --once-per 24h %s -- true", dlock_bin, name), 75);
    /* The record: the start of the run that succeeded, Unix ms on the store's clock. */
    ck_assert_int_eq(
        dlt_sh("test $(( $(date +%%s%%3N) - $(sqlite3 '%s/locks.db' \"SELECT last_slot FROM dlock_locks\") ))"
               " -lt 60000",
               dir),
        0);
}
END_TEST

/* --- issue 23: a break acts on exactly one name ------------------------------------------ */

/* Two holders (real processes) of N and N-2; release --force N: N-2 keeps
 * its holder, whose extend still succeeds. */
START_TEST(release_force_breaks_one_name)
{
    char other[400];
    snprintf(other, sizeof other, "%s-2", name);
    dlt_child a, b;
    ck_assert_int_eq(dlt_child_start(&a, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&a, 10000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_start(&b, url, other, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&b, 10000), DLOCK_OK);
    ck_assert_int_eq(dlt_sh("'%s' release --force %s >/dev/null", dlock_bin, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' status %s >/dev/null", dlock_bin, other), 0);
    ck_assert_int_eq(dlt_child_cmd(&b, "extend 30000", 5000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_cmd(&a, "extend 30000", 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlt_child_cmd(&b, "release", 5000), DLOCK_OK);
    dlt_child_stop(&a, 0);
    dlt_child_stop(&b, 0);
}
END_TEST

void dlt_process_add_ops(Suite *s)
{
    TCase *t = tcase_create("ops");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, once_per_runs_once_in_a_slot);
    tcase_add_test(t, once_per_retries_a_failed_run);
    tcase_add_test(t, job_gets_name_and_fence);
    tcase_add_test(t, list_table_and_json);
    tcase_add_test(t, status_json);
    tcase_add_test(t, release_force_breaks);
    tcase_add_test(t, metrics_file_is_prometheus_text);
    tcase_add_test(t, sqlite_old_table_gets_last_slot);
    suite_add_tcase(s, t);
}

void dlt_process_add_break_one_name(Suite *s)
{
    TCase *t = tcase_create("break-one-name");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, release_force_breaks_one_name);
    suite_add_tcase(s, t);
}
