/*
 * Redis suite, tcase "lock": the keys and scripts as redis-cli sees them, waits, cancels, leases.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- the keys, as an operator sees them ------------------------------------------------- */

/* The test server's socket, with the password in the URL. */
START_TEST(unix_socket_url)
{
    const char *dir = getenv("DLOCK_TEST_REDIS_DIR");
    if (!dir || !*dir)
        return;
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    char sock[4400];
    snprintf(sock, sizeof sock, "redis+unix://:%s@%s/redis.sock?db=1", u.password ? u.password : "", dir);
    dlock__redis_url_free(&u);
    dlock_client *c = NULL;
    ck_assert_msg(dlock_open(sock, &c) == DLOCK_OK, "%s", dlock_last_error());
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK); /* db 0: another lock */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
}
END_TEST

START_TEST(keys_and_values)
{
    char weird[64];
    snprintf(weird, sizeof weird, "%s {x} *?[]\\ é", name);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, weird, 5000, 0, &l), DLOCK_OK);
    char *key = key_of(weird, ""), *fence = key_of(weird, ":fence");
    char *value = raw_cmd("GET %s", key);
    ck_assert_uint_gt(strlen(value), 40);
    char host[300];
    snprintf(host, sizeof host, " %ld %s", (long)getpid(), dlock__hostname());
    ck_assert_msg(strstr(value, host), "value: %s", value);
    char *pttl = raw_cmd("PTTL %s", key);
    ck_assert_int_gt(atol(pttl), 3000);
    char *counter = raw_cmd("GET %s", fence);
    uint64_t token = 0;
    ck_assert_int_eq(dlock_fence(l, &token), DLOCK_OK);
    ck_assert_uint_eq(strtoull(counter, NULL, 10), token);
    /* A second client sees it held, by us. */
    char buf[512];
    ck_assert_int_eq(dlock_holder(client, weird, buf, sizeof buf), 1);
    ck_assert_ptr_nonnull(strstr(buf, "fence="));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(value);
    value = raw_cmd("EXISTS %s", key);
    ck_assert_str_eq(value, "0");
    ck_assert_int_eq(dlock_holder(client, weird, buf, sizeof buf), 0);
    free(value);
    free(pttl);
    free(counter);
    free(key);
    free(fence);
}
END_TEST

/* redis-cli SET ... NX takes the same lock: dlock sees it busy. */
START_TEST(redis_cli_takes_the_same_lock)
{
    char *key = key_of(name, "");
    redisContext *rc = raw();
    redisReply *ok =
        redisCommand(rc, "SET %s %s PX 1500 NX", key, "0123456789abcdef0123456789abcdef 1700000000000 1 ops");
    ck_assert_ptr_nonnull(ok);
    ck_assert_str_eq(ok->str, "OK");
    freeReplyObject(ok);
    redisFree(rc);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    char buf[256];
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 1);
    ck_assert_ptr_nonnull(strstr(buf, "host=ops"));
    int64_t t0 = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 5000, &l), DLOCK_OK);
    ck_assert_int_ge(dlt_now_ms() - t0, 1000);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(key);
}
END_TEST

START_TEST(fence_strictly_increasing)
{
    uint64_t last = 0;
    for (int i = 0; i < 5; i++) {
        dlock_lock *l = NULL;
        ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
        uint64_t f = 0;
        ck_assert_int_eq(dlock_fence(l, &f), DLOCK_OK);
        ck_assert_uint_gt(f, last);
        ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
        uint64_t g = 0;
        ck_assert_int_eq(dlock_fence(l, &g), DLOCK_OK);
        ck_assert_uint_eq(f, g);
        last = f;
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    }
    /* The counter lost (a server restarted without persistence): the next
     * token still comes from the server's clock in microseconds, above it. */
    char *fence = key_of(name, ":fence");
    free(raw_cmd("DEL %s", fence));
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    uint64_t f = 0;
    ck_assert_int_eq(dlock_fence(l, &f), DLOCK_OK);
    ck_assert_uint_gt(f, last);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    free(fence);
}
END_TEST

/* --- list, break, records ------------------------------------------------------------ */

START_TEST(list_break_records)
{
    char other[300];
    snprintf(other, sizeof other, "%s-b", name);
    dlock_lock *a = NULL, *b = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 8000, 0, &a), DLOCK_OK);
    dlock_client *c2 = NULL;
    ck_assert_int_eq(dlock_open(url, &c2), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c2, other, 8000, 0, &b), DLOCK_OK);
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 2);
    int64_t now = 0;
    ck_assert_int_eq(dlock_store_time(client, &now), DLOCK_OK);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_ptr_nonnull(dlock_list_name(list, i));
        ck_assert(strncmp(dlock_list_name(list, i), name, strlen(name)) == 0);
        ck_assert_str_eq(dlock_list_host(list, i), dlock__hostname());
        ck_assert_int_eq(dlock_list_pid(list, i), getpid());
        ck_assert_int_le(dlock_list_since(list, i), now);
        ck_assert_int_gt(dlock_list_since(list, i), now - 10000);
        ck_assert_int_gt(dlock_list_expires(list, i), now + 5000);
        ck_assert_uint_gt(dlock_list_fence(list, i), 0);
    }
    dlock_list_free(list);
    /* Records: only while held. */
    int64_t slot = -1;
    ck_assert_int_eq(dlock_record_get(a, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 0);
    ck_assert_int_eq(dlock_record_put(a, 1234567), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(a, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1234567);
    /* Break the other one: its holder loses it, its records refuse. */
    ck_assert_int_eq(dlock_break(client, other), 1);
    ck_assert_int_eq(dlock_break(client, other), 0);
    ck_assert_int_eq(dlock_record_put(b, 99), DLOCK_ELOST);
    ck_assert_int_eq(dlock_extend(b, 8000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(b), DLOCK_ELOST);
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    dlock_list_free(list);
    /* Another holder's token cannot write the first lock's record. */
    ck_assert_int_eq(dlock_break(c2, name), 1);
    ck_assert_int_eq(dlock_acquire(c2, name, 8000, 0, &b), DLOCK_OK);
    ck_assert_int_eq(dlock_record_put(a, 7), DLOCK_ELOST); /* the script's check: an ELOST is sticky in the core */
    ck_assert_int_eq(dlock_record_get(b, &slot), DLOCK_OK);
    ck_assert_int_eq(slot, 1234567);
    ck_assert_int_eq(dlock_release(b), DLOCK_OK);
    ck_assert_int_eq(dlock_release(a), DLOCK_ELOST);
    /* And another holder's token cannot read it. */
    ck_assert_int_eq(dlock_acquire(client, name, 8000, 0, &a), DLOCK_OK);
    ck_assert_int_eq(dlock_break(c2, name), 1);
    ck_assert_int_eq(dlock_acquire(c2, name, 8000, 0, &b), DLOCK_OK);
    ck_assert_int_eq(dlock_record_get(a, &slot), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(b), DLOCK_OK);
    ck_assert_int_eq(dlock_release(a), DLOCK_ELOST);
    dlock_close(c2);
}
END_TEST

/* --- waiting ----------------------------------------------------------------------------- */

/* The release wakes a waiter at once (publish), long before the holder's
 * TTL would; dlock_cancel ends a wait. */
START_TEST(release_wakes_waiter_cancel_ends_wait)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    dlt_waiter w = {NULL, name, DLOCK_WAIT_FOREVER, 1, 0};
    ck_assert_int_eq(dlock_open(url, &w.client), DLOCK_OK);
    pthread_t t;
    pthread_create(&t, NULL, dlt_waiter_main, &w);
    dlt_sleep_ms(600);
    int64_t released = dlt_now_ms();
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, DLOCK_OK);
    ck_assert_int_lt(w.done_ms - released, 150);

    ck_assert_int_eq(dlock_acquire(client, name, 30000, 0, &l), DLOCK_OK);
    w.rc = 1;
    pthread_create(&t, NULL, dlt_waiter_main, &w);
    dlt_sleep_ms(300);
    int64_t canceled = dlt_now_ms();
    ck_assert_int_eq(dlock_cancel(w.client), DLOCK_OK);
    pthread_join(t, NULL);
    ck_assert_int_eq(w.rc, DLOCK_ECANCELED);
    ck_assert_int_lt(w.done_ms - canceled, 150);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(w.client);
}
END_TEST

/* Redis ACL users: one without channel rights (check warns on channels,
 * runs still work), one without list commands (a run keeps its status and
 * says once that history is not kept). */
static void redis_acl_users_in(const char *work_dir, const char *lock_name, const char *dlock_bin)
{
    const char *redis = getenv("DLOCK_TEST_REDIS_URL");
    const char *port = getenv("DLOCK_TEST_REDIS_PORT");
    const char *pass = getenv("DLOCK_TEST_REDIS_PASSWORD");
    if (!redis || !*redis || !port || !pass) {
        ck_assert_msg(!dlt_required("redis"), "DLOCK_TEST_REDIS_URL is required");
        return;
    }
    ck_assert_int_eq(dlt_sh("REDISCLI_AUTH='%s' redis-cli -p %s ACL SETUSER ops2_nochan reset on '>ops2-pw' '~*'"
                        " resetchannels +@all -@dangerous >/dev/null && "
                        "REDISCLI_AUTH='%s' redis-cli -p %s ACL SETUSER ops2_nolist reset on '>ops2-pw' '~*'"
                        " allchannels +@all -@dangerous -@list >/dev/null",
                        pass, port, pass, port),
                     0);
    char u[512], out[4400];
    snprintf(out, sizeof out, "%s/out", work_dir);
    snprintf(u, sizeof u, "redis://ops2_nochan:ops2-pw@127.0.0.1:%s/0", port);
    int rc = dlt_sh("'%s' check -u '%s' >'%s'", dlock_bin, u, out);
    const char *text = dlt_slurp(out);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, text);
    ck_assert_msg(strstr(text, "warn  acl-channels") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "ok    history") != NULL, "%s", text);
    /* The release publishes to the lock's channel: refused to this user,
     * and no warning for it (the lock was released). */
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- true 2>'%s'", dlock_bin, u, lock_name, out), 0);
    ck_assert_msg(dlt_slurp(out)[0] == '\0', "a run without channel rights said: %s", dlt_slurp(out));
    dlock_history *h = dlt_read_history(redis, lock_name, 0);
    ck_assert_uint_eq(dlock_history_count(h), 1);
    dlock_history_free(h);
    /* Its waiter cannot subscribe either: it polls, and gets the lock
     * within a poll of the release. */
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- sleep 1 & sleep 0.3; "
                        "'%s' run -u '%s' -w 10s '%s' -- true 2>'%s'; rc=$?; wait; exit $rc",
                        dlock_bin, u, lock_name, dlock_bin, u, lock_name, out),
                     0);
    ck_assert_msg(dlt_slurp(out)[0] == '\0', "the polling waiter said: %s", dlt_slurp(out));

    /* No password to a server that needs one: NOAUTH is a refused login
     * (69, as on every store), not a store error (70). */
    snprintf(u, sizeof u, "redis://127.0.0.1:%s/0", port);
    rc = dlt_sh("'%s' run -u '%s' '%s' -- true 2>'%s'", dlock_bin, u, lock_name, out);
    ck_assert_msg(rc == 69 && strstr(dlt_slurp(out), "needs a password"), "exit %d: %s", rc, dlt_slurp(out));

    snprintf(u, sizeof u, "redis://ops2_nolist:ops2-pw@127.0.0.1:%s/0", port);
    rc = dlt_sh("'%s' check -u '%s' >'%s'", dlock_bin, u, out);
    ck_assert_msg(rc == 1 && strstr(dlt_slurp(out), "warn  history"), "exit %d: %s", rc, dlt_slurp(out));
    ck_assert_int_eq(dlt_sh("'%s' run -u '%s' '%s' -- sh -c 'exit 9' 2>'%s'", dlock_bin, u, lock_name, out), 9);
    text = dlt_slurp(out);
    ck_assert_msg(strstr(text, "is not in the run history") && strstr(text, "ACL"), "%s", text);
    ck_assert_msg(strchr(text, '\n') == text + strlen(text) - 1, "one line: %s", text);
    dlt_sh("REDISCLI_AUTH='%s' redis-cli -p %s ACL DELUSER ops2_nochan ops2_nolist >/dev/null", pass, port);
}
START_TEST(redis_acl_users)
{
    char *work_dir = dlt_tmpdir(), *lock_name = dlt_unique_name("hist");
    redis_acl_users_in(work_dir, lock_name, dlt_dlock_bin());
    dlt_sh("rm -rf '%s'", work_dir);
    free(work_dir);
    free(lock_name);
}
END_TEST

void dlt_redis_add_lock(Suite *s)
{
    TCase *t = tcase_create("lock");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, unix_socket_url);
    tcase_add_test(t, keys_and_values);
    tcase_add_test(t, redis_cli_takes_the_same_lock);
    tcase_add_test(t, fence_strictly_increasing);
    tcase_add_test(t, list_break_records);
    tcase_add_test(t, release_wakes_waiter_cancel_ends_wait);
    suite_add_tcase(s, t);
    tcase_add_test(t, redis_acl_users);
}
