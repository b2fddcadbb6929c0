/*
 * ZooKeeper suite, tcase "url": the URL parser and the name encoding (no server needed).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- the URL parser ------------------------------------------------------------------- */

START_TEST(url_forms)
{
    struct dlock_zk_url u;
    ck_assert_int_eq(dlock__zk_parse_url("zookeeper://h", &u), DLOCK_OK);
    ck_assert_str_eq(u.hosts, "h:2181");
    ck_assert_str_eq(u.base, "/dlock");
    ck_assert_str_eq(u.prefix, "");
    ck_assert_ptr_null(u.user);
    dlock__zk_url_free(&u);
    ck_assert_int_eq(dlock__zk_parse_url("zookeeper://app:p%40ss@a:1,b,[::1]:3/my/locks/?prefix=x%2F", &u), DLOCK_OK);
    ck_assert_str_eq(u.hosts, "a:1,b:2181,[::1]:3");
    ck_assert_str_eq(u.base, "/my/locks");
    ck_assert_str_eq(u.user, "app");
    ck_assert_str_eq(u.password, "p@ss");
    ck_assert_str_eq(u.prefix, "x/");
    dlock__zk_url_free(&u);
    ck_assert_int_eq(dlock__zk_parse_url("ZooKeeper://h:2/", &u), DLOCK_OK);
    ck_assert_str_eq(u.base, "/dlock");
    dlock__zk_url_free(&u);
}
END_TEST

START_TEST(url_hostile)
{
    static const char *const bad[] = {
        "zookeeper://",          "zookeeper://h:0",      "zookeeper://h:65536",   "zookeeper://h:x",
        "zookeeper://h,,g",      "zookeeper://::1",      "zookeeper://[::1",      "zookeeper://h/a//b",
        "zookeeper://h/a/../b",  "zookeeper://h/./b",    "zookeeper://h?db=1",    "zookeeper://h?mode=lease",
        "zookeeper://h?table=t", "zookeeper://:pw@h",    "zookeeper://user@h",    "zookeeper://h/a%00b",
        "zookeeper://h/%zz",     "zookeeper://h o",      "zookeeper://h/a%01",    "zookeeper://[::1]x",
        "zookeeper://h:66666666666666666666666", /* found by fuzz_zookeeper: the port's digits overflowed */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct dlock_zk_url u;
        int rc = dlock__zk_parse_url(bad[i], &u);
        if (rc != DLOCK_EINVAL)
            ck_abort_msg("'%s' parsed (%d)", bad[i], rc);
    }
    struct dlock_zk_url u;
    ck_assert_int_eq(dlock__zk_parse_url("zookeepers://h:2281", &u), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "TLS"));
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open("zookeeper://u:Secret-Pw@h:1/%zz", &c), DLOCK_EINVAL);
    ck_assert_ptr_null(strstr(dlock_last_error(), "Secret-Pw"));
    ck_assert_int_eq(dlock_open("zookeeper://u:Secret-Pw@h:1?bogus=Secret-Pw", &c), DLOCK_EINVAL);
    ck_assert_ptr_null(strstr(dlock_last_error(), "Secret-Pw"));
}
END_TEST

/* --- the name encoding ----------------------------------------------------------------- */

static void encodes(const char *in, const char *want)
{
    char out[DLOCK_ZK_SEGMENT_MAX], back[DLOCK_ZK_SEGMENT_MAX];
    size_t used = 0;
    ck_assert_int_eq(dlock__zk_encode(in, out, sizeof out, &used), 0);
    ck_assert_str_eq(out, want);
    ck_assert_uint_eq(used, strlen(want));
    ck_assert_int_eq(dlock__zk_decode(out, back, sizeof back), DLOCK_OK);
    ck_assert_str_eq(back, in);
}

START_TEST(name_encoding_vectors)
{
    encodes("nightly-backup_1", "nightly-backup_1");
    encodes("a/b", "a%2Fb");
    encodes(".", "%2E");
    encodes("..", "%2E%2E");
    encodes("zookeeper", "zookeeper");
    encodes("~records", "%7Erecords");
    encodes("a b%c", "a%20b%25c");
    encodes("caf\xc3\xa9", "caf%C3%A9");
    encodes("\x7f\x01", "%7F%01");
    /* Prefixes stay prefixes (dlock list PREFIX). */
    char whole[DLOCK_ZK_SEGMENT_MAX], part[DLOCK_ZK_SEGMENT_MAX];
    size_t wl = 0, pl = 0;
    ck_assert_int_eq(dlock__zk_encode("team/\xc3\xa9t\xc3\xa9/job", whole, sizeof whole, &wl), 0);
    ck_assert_int_eq(dlock__zk_encode("team/\xc3", part, sizeof part, &pl), 0);
    ck_assert_int_eq(strncmp(whole, part, pl), 0);
    /* Every encoding is one path segment, never "." or "..". */
    char every[256];
    for (int i = 1; i < 256; i++)
        every[i - 1] = (char)i;
    every[255] = '\0';
    size_t el = 0;
    ck_assert_int_eq(dlock__zk_encode(every, whole, sizeof whole, &el), 0);
    ck_assert_ptr_null(strchr(whole, '/'));
    ck_assert_ptr_null(strchr(whole, '.'));
    ck_assert_ptr_null(strchr(whole, '~'));
    for (const char *p = whole; *p; p++)
        ck_assert(isalnum((unsigned char)*p) || *p == '%' || *p == '-' || *p == '_');
    /* A 255-byte name of the worst kind, after a 255-byte prefix, fits. */
    char longest[256];
    memset(longest, '/', 255);
    longest[255] = '\0';
    size_t ll = 0;
    ck_assert_int_eq(dlock__zk_encode(longest, whole, sizeof whole, &ll), 0);
    ck_assert_int_eq(dlock__zk_encode(longest, whole, sizeof whole, &ll), 0);
    ck_assert_uint_eq(ll, 3 * 510);
    /* Decoding refuses what libdlock never makes: one encoding per name. */
    static const char *const not_ours[] = {"a/b", "%2f", "%41", "%4", "%", "a.b", "%00", "~clock", ""};
    char back[64];
    for (size_t i = 0; i < sizeof not_ours / sizeof not_ours[0]; i++)
        ck_assert_int_eq(dlock__zk_decode(not_ours[i], back, sizeof back), DLOCK_EINVAL);
}
END_TEST

void dlt_zk_add_url(Suite *s)
{
    TCase *t = tcase_create("url");
    tcase_add_test(t, url_forms);
    tcase_add_test(t, url_hostile);
    tcase_add_test(t, name_encoding_vectors);
    suite_add_tcase(s, t);
}
