/*
 * etcd suite, tcase "units": the URL parser, the key encoding and base64,
 * with vectors (no server needed).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "../common.h"
#include "etcd/url.h"
#include "internal.h"
#include "suite.h"

/* --- URLs and keys ------------------------------------------------------- */

START_TEST(url_forms)
{
    struct dlock_etcd_url u;
    ck_assert_int_eq(dlock__etcd_parse_url("etcd://a:1,b:2,[::1]:3/?prefix=app%2Flocks", &u), DLOCK_OK);
    ck_assert_uint_eq(u.count, 3);
    ck_assert_str_eq(u.endpoints[0].host, "a");
    ck_assert_int_eq(u.endpoints[1].port, 2);
    ck_assert_str_eq(u.endpoints[2].host, "[::1]");
    ck_assert_str_eq(u.prefix, "app/locks");
    ck_assert_int_eq(u.tls, 0);
    dlock__etcd_url_free(&u);
    ck_assert_int_eq(dlock__etcd_parse_url("etcd://host", &u), DLOCK_OK);
    ck_assert_int_eq(u.endpoints[0].port, 2379);
    ck_assert_str_eq(u.prefix, "dlock");
    ck_assert_ptr_null(u.user);
    dlock__etcd_url_free(&u);
    ck_assert_int_eq(dlock__etcd_parse_url("etcds://us%40er:p%40ss@h:2379?cafile=/etc/ca.pem&mode=lease", &u),
                     DLOCK_OK);
    ck_assert_int_eq(u.tls, 1);
    ck_assert_str_eq(u.user, "us@er");
    ck_assert_str_eq(u.password, "p@ss");
    ck_assert_str_eq(u.cafile, "/etc/ca.pem");
    dlock__etcd_url_free(&u);
    const char *bad[] = {"etcd://",           "etcd://h:0",           "etcd://h:1,",        "etcd://h/db",
                         "etcd://h?cafile=x", "etcd://h?mode=session", "etcd://h?fencing=off", "etcd://h?table=t",
                         "etcd://u@h",        "etcd://h#x",           "etcd:h",             "etcd://[::1",
                         NULL};
    for (int i = 0; bad[i]; i++)
        ck_assert_msg(dlock__etcd_parse_url(bad[i], &u) == DLOCK_EINVAL, "%s was taken", bad[i]);
    /* The password never shows, wherever it was put. */
    const char *secret[] = {"etcd://u:Secret-42@h:99999", "etcd://u:Secret-42@h/?Secret-42=1",
                            "etcd://u:Secret-42@h/Secret-42", "etcd://u:Secret-42@h,Secret-42:x", NULL};
    for (int i = 0; secret[i]; i++) {
        ck_assert_int_eq(dlock__etcd_parse_url(secret[i], &u), DLOCK_EINVAL);
        ck_assert_msg(!strstr(dlock_last_error(), "Secret"), "%s", dlock_last_error());
    }
}
END_TEST

START_TEST(key_vectors)
{
    char out[DLOCK_ETCD_KEY_MAX], back[DLOCK_ETCD_KEY_MAX];
    static const char *const vectors[][2] = {
        {"nightly-backup", "nightly-backup"},
        {"a/b", "a%2Fb"},
        {"100%", "100%25"},
        {"tab\there", "tab%09here"},
        {"del\x7f", "del%7F"},
        {"caf\xc3\xa9 \xe2\x98\x83", "caf\xc3\xa9 \xe2\x98\x83"}, /* UTF-8 as is */
        {"..", ".."},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        size_t n = dlock__etcd_escape_name(vectors[i][0], out);
        ck_assert_str_eq(out, vectors[i][1]);
        ck_assert_uint_eq(n, strlen(vectors[i][1]));
        ck_assert_int_eq(dlock__etcd_unescape_name(out, n, back), DLOCK_OK);
        ck_assert_str_eq(back, vectors[i][0]);
    }
    /* One spelling per name: escapes escape_name never writes are refused. */
    const char *not_names[] = {"a/b", "%41", "%2f", "%2", "%", "", "%00"};
    for (size_t i = 0; i < sizeof not_names / sizeof not_names[0]; i++)
        ck_assert_msg(dlock__etcd_unescape_name(not_names[i], strlen(not_names[i]), back) == DLOCK_EINVAL, "%s",
                      not_names[i]);
    ck_assert_uint_eq(dlock__etcd_name_prefix("dlock", "a/b", out), 12);
    ck_assert_str_eq(out, "dlock/a%2Fb/");
    dlock__etcd_lock_key("dlock", "job", 0x694d7a4b5e1c2a03LL, out);
    ck_assert_str_eq(out, "dlock/job/694d7a4b5e1c2a03");
    dlock__etcd_lock_key("app/locks", "job", 0x1f, out);
    ck_assert_str_eq(out, "app/locks/job/1f");
    dlock__etcd_record_key("dlock", "a/b", out);
    ck_assert_str_eq(out, "dlock!record/a%2Fb");
    ck_assert_uint_eq(dlock__etcd_range_end("dlock/job/", 10, out), 10);
    ck_assert_str_eq(out, "dlock/job0");
    ck_assert_uint_eq(dlock__etcd_range_end("a\xff\xff", 3, out), 1);
    ck_assert_str_eq(out, "b");
    /* No name's range holds another name's key: "a" and "a/b". */
    char a_from[64], a_to[64], ab_key[64];
    size_t flen = dlock__etcd_name_prefix("dlock", "a", a_from);
    dlock__etcd_range_end(a_from, flen, a_to);
    dlock__etcd_lock_key("dlock", "a/b", 1, ab_key);
    ck_assert(!(strcmp(ab_key, a_from) >= 0 && strcmp(ab_key, a_to) < 0));
}
END_TEST

START_TEST(base64_vectors)
{
    static const char *const v[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                                       {"foo", "Zm9v"},  {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                       {"foobar", "Zm9vYmFy"}, {"\xff\xfe", "//4="}};
    char enc[64], dec[64];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        dlock__etcd_base64(v[i][0], strlen(v[i][0]), enc);
        ck_assert_str_eq(enc, v[i][1]);
        size_t n = 0;
        ck_assert_int_eq(dlock__etcd_unbase64(enc, strlen(enc), dec, &n), DLOCK_OK);
        ck_assert_uint_eq(n, strlen(v[i][0]));
        ck_assert_int_eq(memcmp(dec, v[i][0], n), 0);
    }
    const char *bad[] = {"Zg=", "Z===", "Zg=a", "Zm9v!A==", "Zg==Zg==", "BzF=", "Zh=="}; /* the last two: bits set past the end */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n;
        ck_assert_msg(dlock__etcd_unbase64(bad[i], strlen(bad[i]), dec, &n) == DLOCK_EINVAL, "%s", bad[i]);
    }
}
END_TEST

void dlt_etcd_add_units(Suite *s)
{
    TCase *t = tcase_create("units");
    tcase_add_test(t, url_forms);
    tcase_add_test(t, key_vectors);
    tcase_add_test(t, base64_vectors);
    suite_add_tcase(s, t);
}
