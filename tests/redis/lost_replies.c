/*
 * Redis suite, tcase "lost-replies": replies lost on the way back, through a relay that cuts them.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "../relay.h"
#include "suite.h"

/* --- the shared TCP relay (tests/relay.h) in front of the real server -------------------- */

/* A relay to the test server, and the URL of the server through it. */
static struct dlt_relay *relay_start(char *relay_url, size_t len)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    struct dlt_relay *r = dlt_relay_start(u.host, u.port);
    ck_assert_ptr_nonnull(r);
    snprintf(relay_url, len, "redis://:%s@127.0.0.1:%d/%d", u.password ? u.password : "", dlt_relay_port(r), u.db);
    dlock__redis_url_free(&u);
    return r;
}

/* A release that went through, whose answer was lost: the retry on a new
 * connection finds the lock free, and no one took it since our token: the
 * release is a success, not "it had already been lost" (which dlock run
 * reports as a possible overlap). */
START_TEST(release_after_a_lost_reply_is_not_lost)
{
    char relay_url[512];
    struct dlt_relay *r = relay_start(relay_url, sizeof relay_url);
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(relay_url, &c), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    dlt_relay_drop_next(r);
    int rc = dlock_release(l);
    ck_assert_int_eq(dlt_relay_dropped(r), 1);
    ck_assert_msg(rc == DLOCK_OK, "release after a lost reply: %d (%s)", rc, dlock_last_error());
    char buf[64];
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 0);
    /* The same retry when the lock really was lost, and taken by another
     * holder since: still "lost". */
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 1);
    dlock_lock *other = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &other), DLOCK_OK);
    ck_assert_int_eq(dlock_release(other), DLOCK_OK);
    dlt_relay_drop_next(r);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlt_relay_dropped(r), 2);
    /* And when another tool's key stands in the lock's place (no fence
     * bumped): not ours, still "lost". */
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_break(client, name), 1);
    char *key = key_of(name, "");
    redisContext *ops = raw();
    redisReply *set = redisCommand(ops, "SET %s %s PX 10000", key, "maintenance by ops");
    freeReplyObject(set);
    redisFree(ops);
    dlt_relay_drop_next(r);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlt_relay_dropped(r), 3);
    free(raw_cmd("DEL %s", key));
    free(key);
    dlock_close(c);
    dlt_relay_stop(r);
}
END_TEST

/* A break that went through, whose answer was lost: the retry must not say
 * "it was free". */
START_TEST(break_after_a_lost_reply_is_broken)
{
    char relay_url[512];
    struct dlt_relay *r = relay_start(relay_url, sizeof relay_url);
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(relay_url, &c), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    dlt_relay_drop_next(r);
    int rc = dlock_break(c, name);
    ck_assert_int_eq(dlt_relay_dropped(r), 1);
    ck_assert_msg(rc == 1, "break after a lost reply: %d (%s)", rc, dlock_last_error());
    ck_assert_int_eq(dlock_break(c, name), 0); /* and a new break finds it free */
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    dlock_close(c);
    dlt_relay_stop(r);
}
END_TEST

/* The deadline bounds the whole reply, not each read(): a reply that comes
 * one byte at a time, each within the socket timeout, still ends the call
 * at its deadline. */
START_TEST(deadline_bounds_the_whole_reply)
{
    char relay_url[512];
    struct dlt_relay *r = relay_start(relay_url, sizeof relay_url);
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(relay_url, &c), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 600, 0, &l), DLOCK_OK);
    dlt_relay_trickle(r, 250);
    int64_t t0 = dlt_now_ms();
    int rc = dlock_extend(l, 600); /* bounded by the lease: < 600 ms */
    int64_t took = dlt_now_ms() - t0;
    dlt_relay_trickle(r, 0);
    ck_assert_msg(took <= 600 + 100, "extend took %lld ms with a 600 ms lease (%d)", (long long)took, rc);
    ck_assert_int_ne(rc, DLOCK_OK);
    dlock_release(l);
    dlock_close(c);
    dlt_relay_stop(r);
}
END_TEST

void dlt_redis_add_lost_replies(Suite *s)
{
    TCase *t = tcase_create("lost-replies");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, release_after_a_lost_reply_is_not_lost);
    tcase_add_test(t, break_after_a_lost_reply_is_broken);
    tcase_add_test(t, deadline_bounds_the_whole_reply);
    suite_add_tcase(s, t);
}
