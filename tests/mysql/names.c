/*
 * MySQL suite, tcase "names": the lock-name mapping (no server needed).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* ------------------------------------------------------------------------ */
/* The lock-name mapping                                                     */
/* ------------------------------------------------------------------------ */

/* The published vectors (docs/mysql.md). */
static const struct {
    const char *name;
    const char *server_name;
} name_vectors[] = {
    {"nightly", "nightly"},
    {"job", "job"},
    {"Job", "dlock#ad617a0fdd57e3f4b8ebb27f6f60470bc4468aadec290db57e612f7517"},
    {"e", "e"},
    {"\xc3\xa9", "dlock#4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2b"},
    {"Nightly Backup", "dlock#0af317e99d7d8759e7d45b196c518b31695f6807b7bdab7cee25e3c862"},
    {"db/backup:daily-01.tar_gz", "db/backup:daily-01.tar_gz"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "dlock#635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17"},
    {"'; DROP TABLE x; --", "dlock#a924c3ff621e15f5b605a94e7127f7496805e2005f9d1c2a56c94a11d7"},
    {"dlock#job", "dlock#16e700ed84b6c9fbf3b2df820e7e5e466cca3e0ec613f8eab116841380"},
};

START_TEST(name_mapping_vectors)
{
    char out[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    for (size_t i = 0; i < sizeof name_vectors / sizeof name_vectors[0]; i++) {
        int len = dlock__mysql_lock_name(name_vectors[i].name, out, sizeof out);
        ck_assert_int_eq(len, (int)strlen(name_vectors[i].server_name));
        ck_assert_str_eq(out, name_vectors[i].server_name);
    }
    /* Too small an output buffer is refused, not truncated. */
    ck_assert_int_eq(dlock__mysql_lock_name("job", out, DLOCK_MYSQL_LOCK_NAME_MAX), -1);
}
END_TEST

START_TEST(name_mapping_properties)
{
    /* Every mapped name is at most 64 characters of [a-z0-9-_.:/#]; '#'
     * appears in digest names only, so no plain name can equal a digest. */
    char name[256], out[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t len = 1 + (size_t)(round % 255);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            /* Mostly plain ASCII, so that both forms occur. */
            static const char alphabet[] = "abcxyz019-_.:/AZ #%'\\\"";
            name[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        name[len] = '\0';
        int n = dlock__mysql_lock_name(name, out, sizeof out);
        ck_assert_int_ge(n, 1);
        ck_assert_int_le(n, DLOCK_MYSQL_LOCK_NAME_MAX);
        ck_assert_uint_eq(strlen(out), (size_t)n);
        int digest = strncmp(out, DLOCK_MYSQL_DIGEST_PREFIX, strlen(DLOCK_MYSQL_DIGEST_PREFIX)) == 0;
        for (const char *p = out; *p; p++)
            ck_assert_msg((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-_.:/#", *p),
                          "bad byte in '%s'", out);
        if (digest)
            ck_assert_int_eq(n, DLOCK_MYSQL_LOCK_NAME_MAX);
        else
            ck_assert_msg(strcmp(out, name) == 0 && !strchr(out, '#'), "'%s' -> '%s'", name, out);
    }
}
END_TEST

void dlt_mysql_add_names(Suite *s)
{
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, name_mapping_vectors);
    tcase_add_test(tc, name_mapping_properties);
    suite_add_tcase(s, tc);
}
