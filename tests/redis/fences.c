/*
 * Redis suite, tcase "fences-and-foreign-keys": fencing tokens, and keys of the wrong type in the
 * lock's place.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- issue 23: tokens after a restore, keys of other tools, one name per break ------------- */

static uint64_t take_fence(dlock_client *c, const char *n)
{
    dlock_lock *l = NULL;
    ck_assert_msg(dlock_acquire(c, n, 5000, 0, &l) == DLOCK_OK, "%s", dlock_last_error());
    uint64_t f = 0;
    ck_assert_int_eq(dlock_fence(l, &f), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    return f;
}

/* A snapshot (SAVE), more tokens, then kill -9 of redis-server and a
 * restart that loads the snapshot: the counter comes back older than the
 * last token, and the next token must still be above every token before
 * the crash. */
START_TEST(fence_survives_a_crash_and_an_old_snapshot)
{
    if (!have_dir())
        return;
    uint64_t last = 0;
    for (int i = 0; i < 3; i++)
        last = take_fence(client, name);
    char *saved = raw_cmd("SAVE", "");
    ck_assert_str_eq(saved, "OK");
    free(saved);
    for (int i = 0; i < 5; i++) {
        uint64_t f = take_fence(client, name);
        ck_assert_uint_gt(f, last);
        last = f;
    }
    ck_assert_int_eq(server_script("crash"), 0);
    /* The snapshot was loaded: the counter is back at an older value. */
    char *fence_key = key_of(name, ":fence");
    char *restored = raw_cmd("GET %s", fence_key);
    ck_assert_msg(*restored && strtoull(restored, NULL, 10) < last, "restored counter '%s', last token %llu", restored,
                  (unsigned long long)last);
    free(restored);
    uint64_t after = take_fence(client, name);
    ck_assert_msg(after > last, "token %llu after the crash, %llu before it", (unsigned long long)after,
                  (unsigned long long)last);
    free(fence_key);
}
END_TEST

/* The acquire script's retry branch (the answer to the first send was lost,
 * the lock key holds our own value) with the counter gone: the token still
 * comes from the clock floor, not a plain INCR that answers 1. */
START_TEST(fence_retry_branch_keeps_the_floor)
{
    char *key = key_of(name, ""), *fence_key = key_of(name, ":fence");
    const char *value = "0123456789abcdef0123456789abcdef 1700000000000 1 retry";
    redisContext *rc = raw();
    redisReply *r = redisCommand(rc, "SET %s %s PX 5000", key, value);
    freeReplyObject(r);
    r = redisCommand(rc, "DEL %s", fence_key);
    freeReplyObject(r);
    r = redisCommand(rc, "EVAL %s 2 %s %s %s %s", DLOCK_REDIS_ACQUIRE, key, fence_key, value, "5000");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long retried = r->integer;
    freeReplyObject(r);
    r = redisCommand(rc, "TIME");
    long long now_us = atoll(r->element[0]->str) * 1000000LL + atoll(r->element[1]->str);
    freeReplyObject(r);
    ck_assert_msg(retried > now_us - 60LL * 1000000 && retried <= now_us, "retry answered %lld at %lld", retried,
                  now_us);
    r = redisCommand(rc, "DEL %s %s", key, fence_key);
    freeReplyObject(r);
    redisFree(rc);
    free(key);
    free(fence_key);
}
END_TEST

/* A counter ahead of the server's clock (the clock was stepped back, or
 * tokens were taken faster than one a microsecond): tokens go on from the
 * counter, strictly increasing. */
START_TEST(fence_counter_ahead_of_the_clock)
{
    char *fence_key = key_of(name, ":fence");
    char ahead[32];
    snprintf(ahead, sizeof ahead, "%llu", (unsigned long long)(take_fence(client, name) + 1000000000000ULL));
    redisContext *rc = raw();
    redisReply *r = redisCommand(rc, "SET %s %s", fence_key, ahead);
    freeReplyObject(r);
    redisFree(rc);
    uint64_t f = take_fence(client, name);
    ck_assert_uint_eq(f, strtoull(ahead, NULL, 10) + 1);
    ck_assert_uint_eq(take_fence(client, name), f + 1);
    free(fence_key);
}
END_TEST

/* A key in the lock's place that libdlock did not write (an operator's
 * SET ... NX): held by an unknown holder, in holder, list and the CLI. */
START_TEST(foreign_key_is_held_by_unknown)
{
    char *key = key_of(name, "");
    redisContext *rc = raw();
    redisReply *r = redisCommand(rc, "SET %s %s NX PX 600000", key, "maintenance by ops");
    ck_assert_str_eq(r->str, "OK");
    freeReplyObject(r);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_EBUSY);
    char buf[256] = "";
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 1);
    ck_assert_msg(strstr(buf, "unknown"), "holder text '%s'", buf);
    dlock_list *list = NULL;
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    ck_assert_str_eq(dlock_list_name(list, 0), name);
    ck_assert_str_eq(dlock_list_holder(list, 0), "unknown");
    ck_assert_int_gt(dlock_list_expires(list, 0), 0);
    dlock_list_free(list);
    /* dlock status --json says so too (make check sets DLOCK_BIN). */
    const char *bin = getenv("DLOCK_BIN");
    if (bin && *bin) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' status --json -u '%s' '%s' | grep -q '\"held\":true,.*\"holder\":\"unknown\"'",
                 bin, url, name);
        ck_assert_int_eq(dlt_system(cmd), 0);
    }
    /* A key of another type too. */
    r = redisCommand(rc, "DEL %s", key);
    freeReplyObject(r);
    r = redisCommand(rc, "HSET %s a b", key);
    freeReplyObject(r);
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 1);
    ck_assert_int_eq(dlock_list_locks(client, name, &list), DLOCK_OK);
    ck_assert_uint_eq(dlock_list_count(list), 1);
    ck_assert_int_eq(dlock_list_expires(list, 0), -1);
    dlock_list_free(list);
    ck_assert_int_eq(dlock_break(client, name), 1);
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 0);
    redisFree(rc);
    free(key);
}
END_TEST

/* A break acts on exactly one name: hold N and N-2, break N. */
START_TEST(break_acts_on_one_name)
{
    char other[300];
    snprintf(other, sizeof other, "%s-2", name);
    dlock_client *c2 = NULL;
    ck_assert_int_eq(dlock_open(url, &c2), DLOCK_OK);
    dlock_lock *a = NULL, *b = NULL;
    ck_assert_int_eq(dlock_acquire(c2, name, 8000, 0, &a), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(c2, other, 8000, 0, &b), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 1);
    char buf[256];
    ck_assert_int_eq(dlock_holder(client, other, buf, sizeof buf), 1);
    ck_assert_int_eq(dlock_extend(b, 8000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(b), DLOCK_OK);
    ck_assert_int_eq(dlock_release(a), DLOCK_ELOST);
    dlock_close(c2);
}
END_TEST

/* A stale holder that extends, with a TTL of its own, a lock someone else
 * now holds leaves the new holder's expiry alone. */
START_TEST(stale_extend_leaves_the_new_expiry)
{
    dlock_client *c2 = NULL;
    ck_assert_int_eq(dlock_open(url, &c2), DLOCK_OK);
    dlock_lock *stale = NULL, *fresh = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 20000, 0, &stale), DLOCK_OK);
    ck_assert_int_eq(dlock_break(c2, name), 1);
    ck_assert_int_eq(dlock_acquire(c2, name, 20000, 0, &fresh), DLOCK_OK);
    ck_assert_int_eq(dlock_extend(stale, 300), DLOCK_ELOST);
    char *key = key_of(name, "");
    char *pttl = raw_cmd("PTTL %s", key);
    ck_assert_msg(atoll(pttl) > 15000, "the new holder's key expires in %s ms", pttl);
    free(pttl);
    dlt_sleep_ms(500);
    dlock_lock *third = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &third), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_release(fresh), DLOCK_OK);
    dlock_release(stale);
    free(key);
    dlock_close(c2);
}
END_TEST

void dlt_redis_add_fences(Suite *s)
{
    TCase *t = tcase_create("fences-and-foreign-keys");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 40);
    tcase_add_test(t, fence_survives_a_crash_and_an_old_snapshot);
    tcase_add_test(t, fence_retry_branch_keeps_the_floor);
    tcase_add_test(t, fence_counter_ahead_of_the_clock);
    tcase_add_test(t, foreign_key_is_held_by_unknown);
    tcase_add_test(t, break_acts_on_one_name);
    tcase_add_test(t, stale_extend_leaves_the_new_expiry);
    suite_add_tcase(s, t);
}
