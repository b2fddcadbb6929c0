/*
 * PostgreSQL suite, tcase "lease": lease mode, its row and faults, fencing=on and the
 * list/break/records operations.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* Lease mode: every statement checks the owner token and the expiry on the
 * server: a row taken over by another owner is lost for extend, release and
 * the run record; an unexpired row of another owner is busy, an expired
 * one is free; the fence and the record outlive a release. */
START_TEST(test_lease_row)
{
    char *table;
    char *url = url_with_table(pg_url, "mode=lease", "lease_row", &table);
    char *name = dlt_unique_name("pg-lease-row");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *a = open_client(url), *b = open_client(url);
    ck_assert_ptr_eq(dlock_last_error(), dlock_last_error());
    dlock_lock *l = NULL, *l2 = NULL;
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    uint64_t f1 = 0, f = 0;
    ck_assert_int_eq(dlock_fence(l, &f1), DLOCK_OK);
    ck_assert_uint_ge(f1, 1);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT holder FROM %s WHERE name = convert_to($1, 'UTF8') AND owner IS NOT NULL", table);
    char *holder = raw_value(pg, sql, name);
    ck_assert_ptr_nonnull(holder);
    ck_assert_ptr_nonnull(strstr(holder, "pid="));
    free(holder);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 0, &l2), DLOCK_EBUSY);
    /* The run record: written while ours, kept across holders. */
    ck_assert_int_eq(dlock_record_put(l, 42), DLOCK_OK);
    int64_t slot = 0;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 42);

    /* Taken over by another owner (its lease runs): record_put is lost. */
    raw_row(pg, table, "owner = gen_random_uuid()", name);
    ck_assert_int_eq(dlock_record_put(l, 43), DLOCK_ELOST);
    (void)dlock_release(l);
    /* ... and so are extend and release. */
    raw_row(pg, table, "owner = NULL", name);
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    raw_row(pg, table, "owner = gen_random_uuid()", name);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    (void)dlock_release(l);
    raw_row(pg, table, "owner = NULL", name);
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    raw_row(pg, table, "owner = '00000000-0000-0000-0000-000000000001'", name);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    snprintf(sql, sizeof sql,
             "SELECT owner = '00000000-0000-0000-0000-000000000001' FROM %s"
             " WHERE name = convert_to($1, 'UTF8')",
             table);
    ck_assert_msg(raw_bool(pg, sql, name), "a release that was not ours let go of the other owner's row");

    /* Another owner's row that has not expired is busy; an expired one is free. */
    raw_row(pg, table, "expires_at = clock_timestamp() + interval '3 seconds'", name);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 0, &l2), DLOCK_EBUSY);
    raw_row(pg, table, "expires_at = clock_timestamp() - interval '1 millisecond'", name);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 0, &l2), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l2, &f), DLOCK_OK);
    ck_assert_uint_gt(f, f1);
    ck_assert_int_eq(dlock_record_get(l2, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 42);
    ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
    /* Released: the row stays (fence and record), without an owner. */
    snprintf(sql, sizeof sql, "SELECT owner IS NULL AND fence = %llu FROM %s WHERE name = convert_to($1, 'UTF8')",
             (unsigned long long)f, table);
    ck_assert(raw_bool(pg, sql, name));
    dlock_close(a);
    dlock_close(b);
    table_test_done(pg, table, url, name);
}
END_TEST

/* Lease mode: a holder whose connection is ended keeps its lock (no server
 * session holds it); killed or stopped, it keeps it until the TTL, not
 * longer. */
START_TEST(test_lease_faults)
{
    char *url = url_with(pg_url, "mode=lease");
    char *name = dlt_unique_name("pg-lease-term");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
    char pattern[64];
    snprintf(pattern, sizeof pattern, "%% pid=%d", (int)holder.pid);
    char *pid = raw_value(pg, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1", pattern);
    ck_assert_ptr_nonnull(pid);
    terminate_backend(pg, atoi(pid));
    free(pid);
    dlt_sleep_ms(100);
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlt_child_cmd(&holder, "extend 30000", 5000), DLOCK_OK);
    ck_assert_int_eq(dlt_child_cmd(&holder, "release", 5000), DLOCK_OK);
    dlt_child_stop(&holder, 0);

    /* kill -9 and SIGSTOP: still held well before the TTL, free after it. */
    const uint32_t ttl = 1500;
    for (int stop = 0; stop < 2; stop++) {
        ck_assert_int_eq(dlt_child_start(&holder, url, name, ttl, 0), 0);
        ck_assert_int_eq(dlt_child_read(&holder, 5000), DLOCK_OK);
        int64_t held_at = dlt_now_ms();
        if (stop)
            kill(holder.pid, SIGSTOP);
        else
            dlt_child_stop(&holder, SIGKILL);
        dlt_sleep_ms(ttl - 500 - (dlt_now_ms() - held_at));
        ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_EBUSY);
        ck_assert_int_eq(dlock_acquire(c, name, 5000, 2500, &l), DLOCK_OK);
        int64_t took = dlt_now_ms() - held_at;
        ck_assert_int_ge(took, ttl - 100);
        ck_assert_int_lt(took, ttl + 1000);
        if (stop) {
            kill(holder.pid, SIGCONT);
            ck_assert_int_eq(dlt_child_cmd(&holder, "extend 5000", 5000), DLOCK_ELOST);
            dlt_child_stop(&holder, 0);
        }
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    dlock_close(c);
    PQfinish(pg);
    free(name);
    free(url);
}
END_TEST

/* A role that may not create the table is pointed to the DDL. */
START_TEST(test_lease_table_denied)
{
    const char *pw_url = getenv("DLOCK_TEST_PG_PASSWORD_URL");
    if (!pw_url || !*pw_url)
        return;
    char *table;
    char *url = url_with_table(pw_url, "mode=lease", "denied", &table);
    dlock_client *c = open_client(url);
    dlock_lock *l = NULL;
    int rc = dlock_acquire(c, "pg-denied", 5000, 0, &l);
    ck_assert_msg(rc == DLOCK_EBACKEND, "%d %s", rc, dlock_last_error());
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "docs/postgresql.md"));
    ck_assert_ptr_null(strstr(dlock_last_error(), "Right-Passw0rd"));
    dlock_close(c);
    free(url);
    free(table);
}
END_TEST

START_TEST(test_url_options)
{
    const char *bad[] = {"mode=lock", "fencing=maybe", "table=1abc", "prefix=x", "mode=lease&mode=session"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *url = url_with(pg_url, bad[i]);
        dlock_client *c = NULL;
        int rc = dlock_open(url, &c);
        ck_assert_msg(rc == DLOCK_EINVAL, "%s: %d", bad[i], rc);
        char param[16];
        snprintf(param, sizeof param, "%.*s", (int)strcspn(bad[i], "="), bad[i]);
        ck_assert_msg(strstr(dlock_last_error(), param), "%s: %s", bad[i], dlock_last_error());
        free(url);
    }
    /* Without fencing=on, session mode gives no fence. */
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    uint64_t f = 7;
    ck_assert_int_eq(dlock_acquire(c, "pg-no-fence", 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &f), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "fencing=on"));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
}
END_TEST

/* Session mode, fencing=on: the counter is bumped by a try and by a wait,
 * in the same statement, and kept in the table under the name's bytes. */
START_TEST(test_fencing_session)
{
    char *table;
    char *url = url_with_table(pg_url, "fencing=on", "fences", &table);
    char *name = dlt_unique_name("pg-fence");
    dlock_client *a = open_client(url), *b = open_client(url);
    dlock_lock *l = NULL;
    uint64_t f1 = 0, f2 = 0, f3 = 0;
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &f1), DLOCK_OK);
    ck_assert_uint_eq(f1, 1);
    /* a fwaiter gets the next one when the holder lets go */
    dlt_child fwaiter;
    ck_assert_int_eq(dlt_child_start(&fwaiter, url, name, 30000, 10000), 0);
    dlt_sleep_ms(300);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlt_child_read(&fwaiter, 10000), DLOCK_OK);
    dlt_child_stop(&fwaiter, 0);
    ck_assert_int_eq(dlock_acquire(b, name, 30000, 2000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &f3), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    PGconn *pg = raw_connect("dlock-test-admin");
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT fence FROM %s WHERE name = convert_to($1, 'UTF8')", table);
    char *v = raw_value(pg, sql, name);
    ck_assert_ptr_nonnull(v);
    f2 = strtoull(v, NULL, 10);
    free(v);
    ck_assert_uint_eq(f2, f3);
    ck_assert_uint_eq(f3, 3); /* the fwaiter took 2 */
    /* the run record of session mode: only while held */
    ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(l, 7), DLOCK_OK);
    int64_t slot = 0;
    ck_assert_int_eq(dlock_record_get(l, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 7);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(a);
    dlock_close(b);
    table_test_done(pg, table, url, name);
}
END_TEST

/* list, break and the store's clock in both modes. */
START_TEST(test_operations)
{
    char *lease_url = url_with(pg_url, "mode=lease");
    const char *urls[2] = {pg_url, lease_url};
    for (int mode = 0; mode < 2; mode++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "pg-ops-%d-%d-", mode, (int)getpid());
        char name[96];
        snprintf(name, sizeof name, "%sone", prefix);
        dlock_client *a = open_client(urls[mode]), *b = open_client(urls[mode]);
        int64_t t = 0;
        ck_assert_int_eq(dlock_store_time(a, &t), DLOCK_OK);
        ck_assert_int_lt(llabs(t - (int64_t)time(NULL) * 1000), 5000);
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(a, name, 30000, 0, &l), DLOCK_OK);
        dlock_list *list = NULL;
        ck_assert_int_eq(dlock_list_locks(b, mode ? prefix : "", &list), DLOCK_OK);
        int found = 0;
        char key[24];
        snprintf(key, sizeof key, "%lld", (long long)dlock__pg_key(name, strlen(name)));
        for (size_t i = 0; i < dlock_list_count(list); i++) {
            const char *n = dlock_list_name(list, i);
            if ((n && strcmp(n, name) == 0) || (!mode && strcmp(dlock_list_key(list, i), key) == 0)) {
                found++;
                ck_assert_int_eq(dlock_list_pid(list, i), (int64_t)getpid());
            }
        }
        dlock_list_free(list);
        ck_assert_int_eq(found, 1);
        ck_assert_int_eq(dlock_break(b, name), 1);
        ck_assert_int_eq(dlock_break(b, name), 0);
        dlock_lock *l2 = NULL;
        ck_assert_int_eq(dlock_acquire(b, name, 30000, 2000, &l2), DLOCK_OK);
        ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
        (void)dlock_release(l);
        ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
        dlock_close(a);
        dlock_close(b);
    }
    free(lease_url);
}
END_TEST

void dlt_pg_add_lease(Suite *s)
{
    TCase *tc = tcase(s, "lease", 60);
    tcase_add_test(tc, test_url_options);
    tcase_add_test(tc, test_lease_row);
    tcase_add_test(tc, test_lease_faults);
    tcase_add_test(tc, test_lease_table_denied);
    tcase_add_test(tc, test_fencing_session);
    tcase_add_test(tc, test_operations);
}
