/*
 * Redis suite, tcase "url": the URL parser (no server needed).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- the URL parser ------------------------------------------------------------------- */

START_TEST(url_forms)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url("redis://h", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "h");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);
    ck_assert_str_eq(u.prefix, "dlock:");
    ck_assert_ptr_null(u.password);
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis://app:p%40ss@[::1]:7000/3?prefix=x%7B", &u), DLOCK_OK);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 3);
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "p@ss");
    ck_assert_str_eq(u.prefix, "x{");
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis://:a@b@h:1/", &u), DLOCK_OK);
    ck_assert_ptr_null(u.user);
    ck_assert_str_eq(u.password, "a@b");
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis+unix:///run/r%20s.sock?db=2&prefix=p", &u), DLOCK_OK);
    ck_assert_str_eq(u.socket, "/run/r s.sock");
    ck_assert_int_eq(u.db, 2);
    ck_assert_str_eq(u.prefix, "p");
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis+unix://u:pw@/r.sock", &u), DLOCK_OK);
    ck_assert_str_eq(u.socket, "/r.sock");
    ck_assert_str_eq(u.user, "u");
    ck_assert_str_eq(u.password, "pw");
    dlock__redis_url_free(&u);
    ck_assert_int_eq(dlock__redis_parse_url("redis://h?mode=lease&fencing=on", &u), DLOCK_OK);
    dlock__redis_url_free(&u);
}
END_TEST

START_TEST(url_hostile)
{
    static const struct {
        const char *url;
        int rc;
    } cases[] = {
        {"redis://", DLOCK_EINVAL},
        {"redis:h", DLOCK_EINVAL},
        {"redis://h:0", DLOCK_EINVAL},
        {"redis://h:65536", DLOCK_EINVAL},
        {"redis://h:12x", DLOCK_EINVAL},
        {"redis://h/x", DLOCK_EINVAL},
        {"redis://h/-1", DLOCK_EINVAL},
        {"redis://h/99999999999", DLOCK_EINVAL},
        {"redis://[::1", DLOCK_EINVAL},
        {"redis://[::1]x", DLOCK_EINVAL},
        {"redis://user@h", DLOCK_EINVAL},
        {"redis://:@h", DLOCK_EINVAL},
        {"redis://:S3cr3t%zz@h", DLOCK_EINVAL},
        {"redis://:S3cr3t@h%00", DLOCK_EINVAL},
        {"redis://:S3cr3t@h/0#frag", DLOCK_EINVAL},
        {"redis://:S3cr3t@h/0?what=1", DLOCK_EINVAL},
        {"redis://h?db=1", DLOCK_EINVAL},
        {"redis://h?table=t", DLOCK_EINVAL},
        {"redis://h?mode=session", DLOCK_EINVAL},
        {"redis://h?fencing=off", DLOCK_EINVAL},
        {"redis+unix://host/x.sock", DLOCK_EINVAL},
        {"redis+unix://", DLOCK_EINVAL},
        {"redis+unix:relative.sock", DLOCK_EINVAL},
        {"redis+unix:///x.sock?db=a", DLOCK_EINVAL},
        {"redis+unix:///x.sock?db=1&db=2", DLOCK_EINVAL},
        {"rediss://:S3cr3t@h/0", DLOCK_ENOTSUP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dlock_redis_url u;
        int rc = dlock__redis_parse_url(cases[i].url, &u);
        ck_assert_msg(rc == cases[i].rc, "%s: %d", cases[i].url, rc);
        ck_assert_msg(!strstr(dlock_last_error(), "S3cr3t"), "%s: %s", cases[i].url, dlock_last_error());
        ck_assert_uint_gt(strlen(dlock_last_error()), 5);
        dlock_client *c = NULL;
        ck_assert_int_eq(dlock_open(cases[i].url, &c), cases[i].rc);
        ck_assert(!strstr(dlock_last_error(), "S3cr3t"));
    }
}
END_TEST

START_TEST(wrong_password_not_shown)
{
    struct dlock_redis_url u;
    ck_assert_int_eq(dlock__redis_parse_url(url, &u), DLOCK_OK);
    char bad[512];
    snprintf(bad, sizeof bad, "redis://:Wr0ng-S3cret@%s:%d/0", u.host, u.port);
    dlock__redis_url_free(&u);
    dlock_client *c = NULL;
    int rc = dlock_open(bad, &c);
    ck_assert(rc == DLOCK_ECONN || rc == DLOCK_EBACKEND);
    ck_assert_ptr_null(strstr(dlock_last_error(), "Wr0ng-S3cret"));
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "WRONGPASS"));
    snprintf(bad, sizeof bad, "redis://:Wr0ng-S3cret@127.0.0.1:1/0");
    ck_assert_int_eq(dlock_open(bad, &c), DLOCK_ECONN);
    ck_assert_ptr_null(strstr(dlock_last_error(), "Wr0ng-S3cret"));
}
END_TEST

void dlt_redis_add_url(Suite *s)
{
    TCase *t = tcase_create("url");
    tcase_add_test(t, url_forms);
    tcase_add_test(t, url_hostile);
    tcase_add_test(t, wrong_password_not_shown);
    suite_add_tcase(s, t);
}
