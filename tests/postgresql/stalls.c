/*
 * PostgreSQL suite, tcase "stalls-and-waits": the lease after a wait, a stopped server, stale cancels,
 * dropped sessions, passwords never shown.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"
#include "../stale_cancel.h"

/* Another process holds the lock for 3 s with a TTL of 2 s (extending it);
 * a waiter with TTL 2 s granted after ~3 s gets its whole lease. */
START_TEST(test_wait_longer_than_ttl)
{
    enum { TTL = 2000 };
    char *name = dlt_unique_name("pg-long-wait");
    dlt_child holder;
    pid_t keeper = dlt_hold_then_release(&holder, pg_url, name, TTL, 3000);
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    int64_t start = dlt_now_ms();
    int rc = dlock_acquire(c, name, TTL, 10000, &l);
    int64_t waited = dlt_now_ms() - start;
    int64_t remaining = rc == DLOCK_OK ? dlock_remaining_ms(l) : -1;
    int status;
    waitpid(keeper, &status, 0);
    fprintf(stderr, "wait longer than the TTL: granted after %lld ms, remaining %lld ms of %d\n", (long long)waited,
            (long long)remaining, TTL);
    ck_assert_msg(rc == DLOCK_OK, "%d %s", rc, dlock_last_error());
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_ge(waited, 2500);
    ck_assert_int_gt(remaining, 1500);
    ck_assert_int_eq(dlock_extend(l, TTL), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlt_child_stop(&holder, 0);
    dlock_close(c);
    free(name);
}
END_TEST

/* The server process of our session stopped (SIGSTOP: the kernel still
 * ACKs, keepalives never fire): extend gives up by the end of the lease,
 * never says OK, and the client works again afterwards. */
START_TEST(test_extend_server_stopped)
{
    enum { TTL = 2000 };
    char *name = dlt_unique_name("pg-srv-stop");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, TTL, 0, &l), DLOCK_OK);
    int pid = wait_for_holder_pid(pg, name, 2000);
    ck_assert(pid > 0);
    pid_t guard = sigcont_guard(pid, 15000);
    kill(pid, SIGSTOP);
    int64_t remaining = dlock_remaining_ms(l);
    int64_t start = dlt_now_ms();
    int rc = dlock_extend(l, TTL);
    int64_t took = dlt_now_ms() - start;
    char why[512];
    dlock__copy_text(why, sizeof why, dlock_last_error());
    int64_t after = dlock_remaining_ms(l);
    sigcont_now(pid, guard);
    fprintf(stderr, "extend on a stopped server: %d after %lld ms (lease had %lld ms left, TTL %d): %s\n", rc,
            (long long)took, (long long)remaining, TTL, why);
    ck_assert_msg(rc == DLOCK_ELOST || rc == DLOCK_ECONN, "%d %s", rc, why);
    ck_assert_int_le(took, remaining + 1000);
    ck_assert_int_eq(after, 0);
    ck_assert(strstr(why, "answer") != NULL);
    /* The session was dropped: the server lets the lock go. */
    ck_assert_int_ge(dlt_acquire_within(pg_url, name, 5000, 3000), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    ck_assert_int_eq(dlock_acquire(c, name, TTL, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    PQfinish(pg);
    free(name);
}
END_TEST

/* dlock_cancel of a wait whose server process is stopped: the wait gives
 * up locally within a short while. */
START_TEST(test_cancel_server_stopped)
{
    char *name = dlt_unique_name("pg-cancel-stop");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *holder = open_client(pg_url), *c = open_client(pg_url);
    dlock_lock *held = NULL;
    ck_assert_int_eq(dlock_acquire(holder, name, 30000, 0, &held), DLOCK_OK);
    waiter w = {c, name, DLOCK_WAIT_FOREVER, 99, 0, NULL};
    pthread_t t;
    ck_assert(pthread_create(&t, NULL, waiter_main, &w) == 0);
    int pid = 0;
    for (int i = 0; i < 100 && !pid; i++) {
        dlt_sleep_ms(20);
        pid = advisory_pid(pg, name, 0);
    }
    ck_assert(pid > 0);
    pid_t guard = sigcont_guard(pid, 15000);
    kill(pid, SIGSTOP);
    dlt_sleep_ms(100);
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_cancel(c), DLOCK_OK);
    pthread_join(t, NULL);
    int64_t took = dlt_now_ms() - start;
    sigcont_now(pid, guard);
    fprintf(stderr, "cancel with a stopped server: %d after %lld ms\n", w.rc, (long long)took);
    ck_assert_int_eq(w.rc, DLOCK_ECANCELED);
    ck_assert_int_lt(took, 2500);
    ck_assert_int_eq(dlock_release(held), DLOCK_OK);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 1000, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(holder);
    dlock_close(c);
    PQfinish(pg);
    free(name);
}
END_TEST

/* dlock_cancel in a tight loop around the moment a wait is granted must
 * never reach the next wait (the case is tests/stale_cancel.c). */
START_TEST(test_stale_cancel)
{
    dlt_check_stale_cancel(pg_url, "pg-stale");
}
END_TEST

/* After the server ended our session, the next call on the client (here
 * dlock_holder) reconnects: the old session's locks are lost at once. */
START_TEST(test_dropped_session_marks_locks_lost)
{
    char *name = dlt_unique_name("pg-dropped");
    PGconn *pg = raw_connect("dlock-test-admin");
    dlock_client *c = open_client(pg_url);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 30000, 0, &l), DLOCK_OK);
    int pid = wait_for_holder_pid(pg, name, 2000);
    ck_assert(pid > 0);
    terminate_backend(pg, pid);
    dlt_sleep_ms(200);
    ck_assert_int_eq(dlock_holder(c, name, NULL, 0), 0);
    ck_assert_int_eq(dlock_remaining_ms(l), 0);
    ck_assert_int_ge(dlt_acquire_within(pg_url, name, 5000, 1000), 0);
    ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(l), DLOCK_ELOST);
    dlock_close(c);
    PQfinish(pg);
    free(name);
}
END_TEST

/* `format` with {H} replaced by host and {P} by password. */
static void expand(char *out, size_t len, const char *format, const char *host, const char *password)
{
    size_t o = 0;
    for (const char *p = format; *p && o + 1 < len;) {
        const char *with = strncmp(p, "{H}", 3) == 0 ? host : strncmp(p, "{P}", 3) == 0 ? password : NULL;
        if (with) {
            o += (size_t)snprintf(out + o, len - o, "%s", with);
            p += 3;
        } else {
            out[o++] = *p++;
        }
    }
    out[o < len ? o : len - 1] = '\0';
}

/* No piece of a password in any form libpq accepts shows in an error. */
static void assert_hidden(const char *url, const char *const *secrets, const char *what)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    const char *text = dlock_last_error();
    for (size_t i = 0; secrets[i]; i++)
        ck_assert_msg(strstr(text, secrets[i]) == NULL, "%s (%d): a secret shows: %s", what, rc, text);
    ck_assert_msg(strstr(text, "translate host name") == NULL, "%s: %s", what, text);
    if (rc == DLOCK_OK)
        dlock_close(c);
}

START_TEST(test_passwords_never_shown)
{
    /* host:port of the test server, and an unreachable one. */
    const char *authority = strstr(pg_url, "://");
    ck_assert(authority != NULL);
    authority += 3;
    const char *at = strrchr(authority, '@');
    if (at && at < authority + strcspn(authority, "/?"))
        authority = at + 1;
    char live[256];
    snprintf(live, sizeof live, "%.*s", (int)strcspn(authority, "/?"), authority);
    const char *hosts[2] = {live, "127.0.0.1:1"};
    char long_pw[301];
    for (int i = 0; i < 300; i++)
        long_pw[i] = "S3cr3tXyzLongPw"[i % 15];
    long_pw[300] = '\0';
    const char *at_secrets[] = {"Tr0ub", "dor3Secret", NULL};
    const char *plain_secrets[] = {"S3cr3t", "Xyz", NULL};
    const char *long_secrets[] = {"S3cr3tXyzL", "tXyzLongPw", "ongPwS3cr3", NULL};
    const struct {
        const char *format; /* {H}: host:port, {P}: the long password */
        const char *const *secrets;
    } forms[] = {
        {"postgresql://jobs:Tr0ub@dor3Secret@{H}/app?connect_timeout=3", at_secrets},
        {"postgresql://jobs:Tr0ub@dor3Secret@{H}/app?connect_timeout=3&bogus=1", at_secrets},
        {"postgresql://jobs:S3cr3t@Xyz@{H}/app?connect_timeout=3", plain_secrets},
        {"postgresql://jobs@{H}/app?password=S3cr3tXyz%zz", plain_secrets},
        {"postgresql://jobs@{H}/app?PassWord=S3cr3tXyz%zz", plain_secrets},
        {"postgresql://jobs@{H}/app?pass%77ord=S3cr3tXyz%zz", plain_secrets},
        {"postgresql://jobs@{H}/app?pass%77ord=S3cr3tXyz&connect_timeout=3", plain_secrets},
        {"postgresql://jobs@{H}/app?connect_timeout=3&PASSWORD=S3cr3tXyz", plain_secrets},
        {"postgresql://jobs:S3cr3tXyz@{H}/app?connect_timeout=3&bogus=1", plain_secrets},
        {"postgresql://jobs:{P}@{H}/app?x%zz=1", long_secrets},
        {"postgresql://jobs@{H}/app?password={P}%zz", long_secrets},
        {"postgresql:password='S3cr3t Xyz' host={H}", plain_secrets},
        {"postgresql:host={H} password=S3cr3tXyz", plain_secrets},
    };
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        for (int h = 0; h < 2; h++) {
            char url[1024], what[64];
            expand(url, sizeof url, forms[f].format, hosts[h], long_pw);
            snprintf(what, sizeof what, "form %zu, %s host", f, h ? "unreachable" : "live");
            assert_hidden(url, forms[f].secrets, what);
        }
    }
}
END_TEST

void dlt_pg_add_stalls(Suite *s)
{
    TCase *tc = tcase(s, "stalls-and-waits", 90);
    tcase_add_test(tc, test_wait_longer_than_ttl);
    tcase_add_test(tc, test_extend_server_stopped);
    tcase_add_test(tc, test_cancel_server_stopped);
    tcase_add_test(tc, test_stale_cancel);
    tcase_add_test(tc, test_dropped_session_marks_locks_lost);
    tcase_add_test(tc, test_passwords_never_shown);
}
