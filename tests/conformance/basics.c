/*
 * The conformance suite, in part: the basics every store keeps: the backend,
 * one cycle, names, fences, handles and holders, errors.
 * (tests/check_conformance.c runs every part once per URL.)
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

/* Tokens grow with every acquisition of a name, across clients, and stay the
 * same for the life of a handle.  Stores that give none say ENOTSUP. */
START_TEST(fence_grows_with_every_acquisition)
{
    dlock_lock *l = NULL;
    uint64_t first = 0, again = 0, last = 0;
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    int rc = dlock_fence(l, &first);
    if (rc == DLOCK_ENOTSUP) {
        ck_assert_int_eq(first, 0);
        ck_assert_ptr_nonnull(strstr(dlock_last_error(), "fencing=on"));
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        return;
    }
    ck_assert_msg(rc == DLOCK_OK, "fence: %s", dlock_last_error());
    ck_assert_uint_ge(first, 1);
    ck_assert_int_eq(dlock_extend(l, 5000), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, &again), DLOCK_OK);
    ck_assert_uint_eq(again, first);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    last = first;
    for (int i = 0; i < 4; i++) {
        dlock_client *other = open_other();
        ck_assert_int_eq(dlock_acquire(i % 2 ? other : client, name, 5000, 0, &l), DLOCK_OK);
        uint64_t t = 0;
        ck_assert_int_eq(dlock_fence(l, &t), DLOCK_OK);
        ck_assert_msg(t > last, "token %llu after %llu", (unsigned long long)t, (unsigned long long)last);
        last = t;
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        dlock_close(other);
    }
    /* A holder that vanished without releasing: the next token is higher too. */
    ck_assert_int_eq(dlock_acquire(client, name, 300, 0, &l), DLOCK_OK);
    uint64_t stale = 0;
    ck_assert_int_eq(dlock_fence(l, &stale), DLOCK_OK);
    dlock_client *other = open_other();
    dlock_lock *l2 = NULL;
    ck_assert_int_eq(dlock_acquire(other, name, 5000, (int32_t)(3000 + expiry_slack_ms()), &l2), DLOCK_OK);
    uint64_t next = 0;
    ck_assert_int_eq(dlock_fence(l2, &next), DLOCK_OK);
    ck_assert_uint_gt(next, stale);
    ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
    dlock_close(other);
    (void)dlock_release(l);
    /* other names have their own counters; every token is >= 1 */
    ck_assert_int_eq(dlock_fence(NULL, &next), DLOCK_EINVAL);
}
END_TEST

START_TEST(fence_bad_arguments)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_fence(NULL, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_acquire(client, name, 5000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(l, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

START_TEST(backend_name)
{
    /* The name its adapter knows it by (tests/stores/). */
    ck_assert_str_eq(dlock_backend(client), dlt_store_of(url)->backend);
    ck_assert_str_eq(dlock_backend(NULL), "");
}
END_TEST

START_TEST(acquire_release_cycle)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_ptr_nonnull(l);
    ck_assert_str_eq(dlock_name(l), name);
    ck_assert_str_eq(dlock_last_error(), "");
    ck_assert(!free_for_others(name));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert(free_for_others(name));
    /* The same client can take it again after release. */
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

START_TEST(names_invalid)
{
    dlock_lock *l = (dlock_lock *)1;
    char long_name[300];
    memset(long_name, 'x', 256);
    long_name[256] = '\0';
    const char *bad[] = {"", long_name, "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "ab\xFF", "\xE2\x82"};
    ck_assert_int_eq(dlock_acquire(client, NULL, 1000, 0, &l), DLOCK_EINVAL);
    ck_assert_ptr_null(l);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        l = (dlock_lock *)1;
        ck_assert_int_eq(dlock_acquire(client, bad[i], 1000, 0, &l), DLOCK_EINVAL);
        ck_assert_ptr_null(l);
        ck_assert_uint_gt(strlen(dlock_last_error()), 5);
        ck_assert_int_eq(dlock_holder(client, bad[i], NULL, 0), DLOCK_EINVAL);
    }
    ck_assert_ptr_nonnull(strstr((dlock_acquire(client, long_name, 1000, 0, &l), dlock_last_error()), "255"));
}
END_TEST

START_TEST(names_at_the_limit)
{
    char n[256];
    /* This test's own name (URLs of one server run at once, and modes
     * exclude each other), then four-byte characters and ASCII to exactly
     * 255 bytes. */
    size_t len = strlen(name);
    ck_assert_uint_lt(len, 64);
    memcpy(n, name, len);
    for (; len + 4 <= 255; len += 4)
        memcpy(n + len, "\xF0\x9F\x94\x92", 4);
    while (len < 255)
        n[len++] = 'e';
    n[len] = '\0';
    ck_assert_uint_eq(strlen(n), 255);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, n, 10000, 0, &l), DLOCK_OK);
    ck_assert(!free_for_others(n));
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    memset(n + strlen(name), 'a', 255 - strlen(name));
    n[255] = '\0';
    ck_assert_int_eq(dlock_acquire(client, n, 10000, 0, &l), DLOCK_OK);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* Names a store could confuse: case, accents, long shared prefixes, SQL. */
START_TEST(names_distinct)
{
    static char a[256], b[256], c[256];
    memset(a, 'n', 255);
    a[255] = '\0';
    memcpy(b, a, 256);
    b[254] = 'm';
    memcpy(c, a, 256);
    c[100] = 'q';
    const char *pairs[][2] = {
        {"Job", "job"},
        {"e", "\xC3\xA9"},  /* e / é */
        {"a", "\xC3\xA4"},  /* a / ä */
        {"ss", "\xC3\x9F"}, /* ss / ß */
        {"job ", "job"},    /* trailing space */
        {a, b},             /* differ in the last byte */
        {a, c},
        {"'; DROP TABLE dlock_locks; --", "\\' OR '1'='1"},
        {"100%", "100_"},
        {"x\ty", "x y"},
    };
    /* Every name starts with this test's unique name, so that stores tested
     * side by side on one server (DLOCK_TEST_PARALLEL) never share one. */
    size_t tag = strlen(name);
    ck_assert_uint_lt(tag, 100);
    memcpy(a, name, tag);
    memcpy(b, name, tag);
    memcpy(c, name, tag);
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        dlock_lock *l1 = NULL, *l2 = NULL;
        dlock_client *other = open_other();
        char n1[256], n2[256];
        if (strlen(pairs[i][0]) == 255) {
            memcpy(n1, pairs[i][0], 256);
            memcpy(n2, pairs[i][1], 256);
        } else {
            snprintf(n1, sizeof n1, "%s/%s", name, pairs[i][0]);
            snprintf(n2, sizeof n2, "%s/%s", name, pairs[i][1]);
        }
        ck_assert_msg(dlock_acquire(client, n1, 10000, 0, &l1) == DLOCK_OK, "pair %zu: %s", i, dlock_last_error());
        ck_assert_msg(dlock_acquire(other, n2, 10000, 0, &l2) == DLOCK_OK,
                      "pair %zu: the second name conflicts with the first: %s", i, dlock_last_error());
        /* ... and each still conflicts with itself. */
        ck_assert(!free_for_others(n1));
        ck_assert(!free_for_others(n2));
        ck_assert_int_eq(dlock_release(l1), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l2), DLOCK_OK);
        dlock_close(other);
    }
}
END_TEST

START_TEST(same_name_conflicts_across_clients_and_processes)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    dlock_client *other = open_other();
    dlock_lock *l2 = NULL;
    ck_assert_int_eq(dlock_acquire(other, name, 10000, 0, &l2), DLOCK_EBUSY);
    ck_assert_ptr_null(l2);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), name));
    dlock_close(other);
    dlt_child child;
    ck_assert_int_eq(dlt_child_start(&child, url, name, 10000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&child, 10000), DLOCK_EBUSY);
    dlt_child_stop(&child, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert_int_eq(dlt_child_start(&child, url, name, 10000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&child, 10000), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_EBUSY);
    ck_assert_int_eq(dlt_child_cmd(&child, "release", 10000), DLOCK_OK);
    dlt_child_stop(&child, 0);
}
END_TEST

START_TEST(not_reentrant)
{
    dlock_lock *l = NULL, *again = (dlock_lock *)1;
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 0, &l), DLOCK_OK);
    int64_t start = dlt_now_ms();
    ck_assert_int_eq(dlock_acquire(client, name, 10000, 5000, &again), DLOCK_EBUSY);
    ck_assert_int_lt(dlt_now_ms() - start, 500); /* at once, even with a wait */
    ck_assert_ptr_null(again);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "re-entrant"));
    ck_assert_int_eq(dlock_acquire(client, name, 10000, DLOCK_WAIT_FOREVER, &again), DLOCK_EBUSY);
    /* One release frees it: it was not counted twice. */
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    ck_assert(free_for_others(name));
}
END_TEST

START_TEST(null_handles)
{
    char buf[16];
    dlock_lock *l = (dlock_lock *)1;
    ck_assert_int_eq(dlock_acquire(NULL, name, 1000, 0, &l), DLOCK_EINVAL);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(dlock_acquire(client, name, 1000, 0, NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_extend(NULL, 1000), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "NULL"));
    ck_assert_int_eq(dlock_release(NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_holder(NULL, name, buf, sizeof buf), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_holder(client, NULL, buf, sizeof buf), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_holder(client, name, NULL, 10), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_cancel(NULL), DLOCK_EINVAL);
    ck_assert_str_eq(dlock_name(NULL), "");
    dlock_close(NULL);
}
END_TEST

START_TEST(holder_reports)
{
    char buf[512];
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "");
    dlt_child holder;
    ck_assert_int_eq(dlt_child_start(&holder, url, name, 30000, 0), 0);
    ck_assert_int_eq(dlt_child_read(&holder, 10000), DLOCK_OK);
    ck_assert_int_eq(dlock_holder(client, name, buf, sizeof buf), 1);
    ck_assert_uint_gt(strlen(buf), 0);
    /* Small buffers are truncated and terminated; none at all is fine. */
    char tiny[6];
    memset(tiny, 'Z', sizeof tiny);
    ck_assert_int_eq(dlock_holder(client, name, tiny, sizeof tiny), 1);
    ck_assert_uint_le(strlen(tiny), 5);
    ck_assert_int_eq(dlock_holder(client, name, NULL, 0), 1);
    dlt_child_stop(&holder, 0);
    /* A holder that exits releases (dlock_close on exit is not called by the
     * child; SQLite, Redis and lease mode keep the lock until its TTL, so only
     * check session stores). */
    if (!can(DLT_RELEASES_ON_EXIT))
        return;
    dlt_sleep_ms(100);
    int64_t start = dlt_now_ms();
    int rc;
    while ((rc = dlock_holder(client, name, buf, sizeof buf)) == 1 && dlt_now_ms() - start < 3000)
        dlt_sleep_ms(50);
    ck_assert_int_eq(rc, 0);
}
END_TEST

static void *thread_last_error(void *p)
{
    (void)p;
    return (void *)(strcmp(dlock_last_error(), "") == 0 ? (void *)1 : NULL);
}

START_TEST(last_error_is_thread_local)
{
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, "", 1000, 0, &l), DLOCK_EINVAL);
    ck_assert_str_ne(dlock_last_error(), "");
    pthread_t t;
    void *res = NULL;
    pthread_create(&t, NULL, thread_last_error, NULL);
    pthread_join(t, &res);
    ck_assert_ptr_nonnull(res);
    ck_assert_str_ne(dlock_last_error(), "");
}
END_TEST

START_TEST(no_password_in_errors)
{
    /* Take the user:password@ part of a server URL and point it at a closed port. */
    const char *at = strchr(url, '@');
    const char *sep = strstr(url, "://");
    if (!at || !sep || !can(DLT_NETWORK))
        return; /* no password to leak in this URL */
    char scheme[32];
    snprintf(scheme, sizeof scheme, "%.*s", (int)(sep - url), url);
    char bad[512];
    snprintf(bad, sizeof bad, "%s://dlockuser:S3cr3t-Pa55w0rd@127.0.0.1:1/%s", scheme,
             dlt_store_of(url)->url_path);
    dlock_client *c = NULL;
    int rc = dlock_open(bad, &c);
    if (rc == DLOCK_OK) {
        dlock_lock *l = NULL;
        rc = dlock_acquire(c, name, 1000, 0, &l);
        ck_assert_ptr_null(strstr(dlock_last_error(), "S3cr3t"));
        dlock_close(c);
    }
    ck_assert_int_eq(rc, DLOCK_ECONN);
    ck_assert_ptr_null(strstr(dlock_last_error(), "S3cr3t"));
    ck_assert_uint_gt(strlen(dlock_last_error()), 5);
}
END_TEST

void conformance_add_basics(Suite *s)
{
    TCase *t;
    t = tcase_create("basics");
    tcase_add_checked_fixture(t, conformance_setup, conformance_teardown);
    tcase_add_test(t, backend_name);
    tcase_add_test(t, acquire_release_cycle);
    tcase_add_test(t, null_handles);
    tcase_add_test(t, holder_reports);
    tcase_add_test(t, last_error_is_thread_local);
    tcase_add_test(t, no_password_in_errors);
    suite_add_tcase(s, t);
    t = tcase_create("names");
    tcase_add_checked_fixture(t, conformance_setup, conformance_teardown);
    tcase_add_test(t, names_invalid);
    tcase_add_test(t, names_at_the_limit);
    tcase_add_test(t, names_distinct);
    tcase_add_test(t, same_name_conflicts_across_clients_and_processes);
    tcase_add_test(t, not_reentrant);
    suite_add_tcase(s, t);
    t = tcase_create("fencing");
    tcase_add_checked_fixture(t, conformance_setup, conformance_teardown);
    tcase_add_test(t, fence_grows_with_every_acquisition);
    tcase_add_test(t, fence_bad_arguments);
    suite_add_tcase(s, t);
}
