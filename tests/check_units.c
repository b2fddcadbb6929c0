/* Unit tests: URL scheme parsing, duration parsing, name validation, errors. */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "duration.h"
#include "format.h"
#include "internal.h"

/* --- names ---------------------------------------------------------------- */

START_TEST(name_lengths)
{
    char name[300];
    memset(name, 'a', sizeof name);
    name[255] = '\0';
    ck_assert_int_eq(dlock__check_name(name), DLOCK_OK);
    name[255] = 'a';
    name[256] = '\0';
    ck_assert_int_eq(dlock__check_name(name), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "255"));
    ck_assert_int_eq(dlock__check_name(""), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "empty"));
    ck_assert_int_eq(dlock__check_name(NULL), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__check_name("a"), DLOCK_OK);
}
END_TEST

/* 4-byte characters up to exactly 255 bytes: the limit counts bytes. */
START_TEST(name_multibyte_limit)
{
    char name[300] = "";
    size_t len = 0;
    while (len + 4 <= 252) {
        memcpy(name + len, "\xF0\x9F\x94\x92", 4); /* U+1F512 */
        len += 4;
    }
    memcpy(name + len, "abc", 3); /* 255 bytes */
    name[len + 3] = '\0';
    ck_assert_uint_eq(strlen(name), 255);
    ck_assert_int_eq(dlock__check_name(name), DLOCK_OK);
    memcpy(name + len, "\xF0\x9F\x94\x92", 4); /* 256 bytes */
    name[len + 4] = '\0';
    ck_assert_int_eq(dlock__check_name(name), DLOCK_EINVAL);
}
END_TEST

static const struct {
    const char *bytes;
    int valid;
} utf8_cases[] = {
    {"plain ascii", 1},
    {"caf\xC3\xA9", 1},      /* é */
    {"\xE2\x82\xAC", 1},     /* € */
    {"\xF0\x9F\x98\x80", 1}, /* U+1F600 */
    {"\xF4\x8F\xBF\xBF", 1}, /* U+10FFFF, the last code point */
    {"\xED\x9F\xBF", 1},     /* U+D7FF, just below the surrogates */
    {"\xEE\x80\x80", 1},     /* U+E000, just above them */
    {"\xC0\xAF", 0},         /* overlong '/' */
    {"\xC1\xBF", 0},         /* overlong */
    {"\xE0\x80\xAF", 0},     /* overlong 3-byte */
    {"\xF0\x80\x80\xAF", 0}, /* overlong 4-byte */
    {"\xED\xA0\x80", 0},     /* U+D800 surrogate */
    {"\xED\xBF\xBF", 0},     /* U+DFFF surrogate */
    {"\xF4\x90\x80\x80", 0}, /* U+110000 */
    {"\xF5\x80\x80\x80", 0}, /* lead byte F5 */
    {"\xFF", 0},
    {"\x80", 0},     /* lone continuation */
    {"abc\xC3", 0},  /* truncated at the end */
    {"\xE2\x82", 0}, /* truncated 3-byte */
    {"\xC3\x28", 0}, /* bad continuation */
};

START_TEST(name_utf8)
{
    const char *bytes = utf8_cases[_i].bytes;
    ck_assert_msg(dlock__valid_utf8(bytes, strlen(bytes)) == utf8_cases[_i].valid, "case %d", _i);
    int rc = dlock__check_name(bytes);
    ck_assert_int_eq(rc, utf8_cases[_i].valid ? DLOCK_OK : DLOCK_EINVAL);
    if (!utf8_cases[_i].valid)
        ck_assert_ptr_nonnull(strstr(dlock_last_error(), "UTF-8"));
}
END_TEST

/* --- URLs ------------------------------------------------------------------- */

START_TEST(url_schemes)
{
    char scheme[32];
    ck_assert_int_eq(dlock__url_scheme("abc:///tmp/x.db", scheme, sizeof scheme), DLOCK_OK);
    ck_assert_str_eq(scheme, "abc");
    ck_assert_int_eq(dlock__url_scheme("MiXeD://h/db", scheme, sizeof scheme), DLOCK_OK);
    ck_assert_str_eq(scheme, "mixed");
    ck_assert_int_eq(dlock__url_scheme("my.sql+x-y://h", scheme, sizeof scheme), DLOCK_OK);
    ck_assert_str_eq(scheme, "my.sql+x-y");
    ck_assert_int_eq(dlock__url_scheme("", scheme, sizeof scheme), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__url_scheme(NULL, scheme, sizeof scheme), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__url_scheme("no-scheme-here", scheme, sizeof scheme), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "scheme"));
    ck_assert_int_eq(dlock__url_scheme("://nohost/x", scheme, sizeof scheme), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__url_scheme("1abc://x", scheme, sizeof scheme), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__url_scheme("a b://x", scheme, sizeof scheme), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__url_scheme("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa://x", scheme, sizeof scheme),
                     DLOCK_EINVAL);
}
END_TEST

START_TEST(url_open_errors)
{
    dlock_client *c = (dlock_client *)1;
    ck_assert_int_eq(dlock_open("", &c), DLOCK_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(dlock_open("no-scheme-here", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("://nohost/x", &c), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_open("sqlite:///tmp/x.db", NULL), DLOCK_EINVAL);
#ifdef HAVE_REDIS
    ck_assert_int_eq(dlock_open("rediss://localhost/0", &c), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "TLS"));
#else
    ck_assert_int_eq(dlock_open("redis://localhost/0", &c), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "'redis' is not built into this libdlock"));
#endif
}
END_TEST


START_TEST(percent_decoding)
{
    char *out = NULL;
    ck_assert_int_eq(dlock__percent_decode("a%40b%2Fc", 9, &out), DLOCK_OK);
    ck_assert_str_eq(out, "a@b/c");
    free(out);
    ck_assert_int_eq(dlock__percent_decode("%4", 2, &out), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__percent_decode("%g0", 3, &out), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__percent_decode("x%00", 4, &out), DLOCK_EINVAL);
    ck_assert_int_eq(dlock__percent_decode("", 0, &out), DLOCK_OK);
    ck_assert_str_eq(out, "");
    free(out);
}
END_TEST

/* The URL pieces the network stores share: the authority (userinfo up to
 * the last '@'), HOST[:PORT] with IPv6 brackets, and bounded numbers. */
START_TEST(url_authority_and_hosts)
{
    struct dlock_url_authority a;
    dlock__url_authority("us:p@ss@h1:1,h2/x?y", &a);
    ck_assert_ptr_nonnull(a.userinfo);
    ck_assert_int_eq((int)a.userinfo_len, 7); /* "us:p@ss": the last '@' ends it */
    ck_assert_int_eq((int)a.hosts_len, 7);
    ck_assert_int_eq(strncmp(a.hosts, "h1:1,h2", 7), 0);
    ck_assert_int_eq(*a.end, '/');
    dlock__url_authority("h?user@x", &a); /* an '@' in the query is no userinfo */
    ck_assert_ptr_null(a.userinfo);
    ck_assert_int_eq((int)a.hosts_len, 1);
    ck_assert_int_eq(*a.end, '?');

    struct dlock_url_host h;
    ck_assert_ptr_null(dlock__url_host_port("[::1]:2379", 10, &h));
    ck_assert(h.bracketed);
    ck_assert_int_eq((int)h.host_len, 3);
    ck_assert_int_eq(strncmp(h.host, "::1", 3), 0);
    ck_assert_int_eq((int)h.port_len, 4);
    ck_assert_ptr_null(dlock__url_host_port("host", 4, &h));
    ck_assert(!h.bracketed);
    ck_assert_ptr_null(h.port);
    ck_assert_ptr_null(dlock__url_host_port("host:", 5, &h));
    ck_assert_ptr_nonnull(h.port);
    ck_assert_int_eq((int)h.port_len, 0);
    ck_assert_ptr_nonnull(dlock__url_host_port("[::1", 4, &h));
    ck_assert_ptr_nonnull(dlock__url_host_port("[::1]x", 6, &h));

    ck_assert_int_eq(dlock__url_number("65535", 5, 1, 65535), 65535);
    ck_assert_int_eq(dlock__url_number("65536", 5, 1, 65535), -1);
    ck_assert_int_eq(dlock__url_number("0", 1, 1, 65535), -1);
    ck_assert_int_eq(dlock__url_number("", 0, 0, 9), -1);
    ck_assert_int_eq(dlock__url_number("1a", 2, 0, 99), -1);
    ck_assert_int_eq(dlock__url_number("12345678901", 11, 0, 2147483647), -1);
}
END_TEST

/* A typo of a built-in scheme is DLOCK_EINVAL with a suggestion; a scheme
 * far from all of them (a backend not built in) stays DLOCK_ENOTSUP. */
START_TEST(url_scheme_typos)
{
    dlock_client *c = NULL;
#ifdef HAVE_SQLITE
    ck_assert_int_eq(dlock_open("sqlitee:///tmp/x.db", &c), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "did you mean 'sqlite'?"));
    ck_assert_int_eq(dlock_open("sqlte:///tmp/x.db", &c), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "did you mean 'sqlite'?"));
#endif
#ifdef HAVE_POSTGRESQL
    ck_assert_int_eq(dlock_open("postgress://h/db", &c), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "did you mean 'postgres'?"));
    ck_assert_int_eq(dlock_open("postgresq://h/db", &c), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "did you mean 'postgresql'?"));
#endif
    ck_assert_int_eq(dlock_open("ftp://h/x", &c), DLOCK_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "not built into"));
    ck_assert_int_eq(dlock_open("consul://h/x", &c), DLOCK_ENOTSUP); /* zookeeper:// is built in now */
    ck_assert_ptr_null(c);
}
END_TEST

/* --- durations ----------------------------------------------------------------- */

static const struct {
    const char *text;
    int ok;
    int64_t ms;
} duration_cases[] = {
    {"250ms", 1, 250},
    {"30s", 1, 30000},
    {"5m", 1, 300000},
    {"2h", 1, 7200000},
    {"45", 1, 45000},
    {"0", 1, 0},
    {"1.5s", 1, 1500},
    {"0.25", 1, 250},
    {"1.5m", 1, 90000},
    {"forever", 1, -1},
    {"", 0, 0},
    {"s", 0, 0},
    {"-5s", 0, 0},
    {"5x", 0, 0},
    {"5 s", 0, 0},
    {"1.s", 0, 0},
    {".5", 0, 0},
    {"5sec", 0, 0},
    {"5ms5", 0, 0},
    {"99999999999999999999", 0, 0},
    {"596524h", 0, 0},
    {"2147483647ms", 1, 2147483647},
    {"2147483648ms", 0, 0},
    {"2d", 1, 172800000},
    {"1.5d", 1, 129600000},
    {"24d", 1, 2073600000},
    {"24.855d", 1, 2147472000},
    {"25d", 0, 0},
    {"99999d", 0, 0},
    {"999999999999d", 0, 0}, /* would overflow int64 if multiplied first */
    {"1D", 0, 0},
};

START_TEST(durations)
{
    int64_t ms = 12345;
    int rc = dlock_parse_duration(duration_cases[_i].text, INT32_MAX, 1, &ms);
    ck_assert_msg((rc == 0) == duration_cases[_i].ok, "'%s'", duration_cases[_i].text);
    if (duration_cases[_i].ok)
        ck_assert_int_eq(ms, duration_cases[_i].ms);
}
END_TEST

START_TEST(duration_forever_only_where_allowed)
{
    int64_t ms;
    ck_assert_int_eq(dlock_parse_duration("forever", INT32_MAX, 0, &ms), -1);
    ck_assert_int_eq(dlock_parse_duration(NULL, INT32_MAX, 1, &ms), -1);
}
END_TEST

/* Limits are shown in the largest unit, cut (not rounded) to 3 decimals so
 * that a maximum shown can be pasted back and is still accepted. */
START_TEST(durations_shown_in_human_units)
{
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "0ms"},           {1, "1ms"},       {100, "100ms"},      {999, "999ms"},     {1000, "1s"},
        {1500, "1.5s"},       {60000, "1m"},    {90000, "1.5m"},     {3600000, "1h"},    {86400000, "1d"},
        {2147483647, "24.855d"}, {172800000, "2d"}, {86400001, "1d"}, {3723000, "1.034h"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        dlock_format_duration(cases[i].ms, buf, sizeof buf);
        ck_assert_str_eq(buf, cases[i].text);
        int64_t back = -1;
        ck_assert_int_eq(dlock_parse_duration(buf, INT32_MAX, 0, &back), 0);
        ck_assert_int_le(back, cases[i].ms);
    }
}
END_TEST

/* --- names in messages ------------------------------------------------------------ */

START_TEST(names_shown_escaped)
{
    char buf[FMT_NAME_SHOWN_SIZE];
    ck_assert_str_eq(fmt_shown_name("nightly-report", buf, sizeof buf), "nightly-report");
    /* A newline cannot start a line of its own, nor a tab or ESC hide one. */
    ck_assert_str_eq(fmt_shown_name("a\ndlock: forged", buf, sizeof buf), "a\\ndlock: forged");
    ck_assert_str_eq(fmt_shown_name("a\nb\tc\033d\177", buf, sizeof buf), "a\\nb\\tc\\x1bd\\x7f");
    ck_assert_str_eq(fmt_shown_name("\xc3\xa9t\xc3\xa9", buf, sizeof buf), "\xc3\xa9t\xc3\xa9");
}
END_TEST

START_TEST(long_names_shown_short)
{
    char name[10001], buf[FMT_NAME_SHOWN_SIZE];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    const char *shown = fmt_shown_name(name, buf, sizeof buf);
    ck_assert_uint_lt(strlen(shown), 120);
    ck_assert_ptr_nonnull(strstr(shown, "(10000 bytes)"));
    ck_assert(strncmp(shown, "aaaaaaaa", 8) == 0);
    /* Cut at a character boundary: 100 two-byte characters. */
    char wide[201];
    for (int i = 0; i < 100; i++)
        memcpy(wide + 2 * i, "\xc3\xa9", 2);
    wide[200] = '\0';
    shown = fmt_shown_name(wide, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(shown, "\xc3\xa9...(200 bytes)"));
    /* Even with every byte escaped, it fits. */
    char ctl[301];
    memset(ctl, '\001', sizeof ctl - 1);
    ctl[sizeof ctl - 1] = '\0';
    shown = fmt_shown_name(ctl, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(shown, "(300 bytes)"));
    ck_assert_ptr_null(strchr(shown, '\001'));
}
END_TEST

/* --- errors --------------------------------------------------------------------- */

START_TEST(strerror_texts)
{
    for (int code = DLOCK_ECANCELED; code <= DLOCK_OK; code++) {
        const char *text = dlock_strerror(code);
        ck_assert_ptr_nonnull(text);
        ck_assert_uint_gt(strlen(text), 3);
    }
    ck_assert_str_eq(dlock_strerror(-99), "unknown status code");
    ck_assert_str_eq(dlock_strerror(42), "unknown status code");
    ck_assert_str_ne(dlock_strerror(DLOCK_EBUSY), dlock_strerror(DLOCK_ELOST));
    /* The names come from the same list as the enum. */
    ck_assert_str_eq(dlock_status_name(DLOCK_OK), "DLOCK_OK");
    ck_assert_str_eq(dlock_status_name(DLOCK_EBUSY), "DLOCK_EBUSY");
    ck_assert_str_eq(dlock_status_name(DLOCK_ECANCELED), "DLOCK_ECANCELED");
    ck_assert_str_eq(dlock_status_name(-9), "");
    ck_assert_str_eq(dlock_status_name(1), "");
    for (int code = DLOCK_ECANCELED; code <= DLOCK_OK; code++)
        ck_assert_str_ne(dlock_status_name(code), "");
}
END_TEST

START_TEST(version_matches_macros)
{
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", DLOCK_VERSION_MAJOR, DLOCK_VERSION_MINOR, DLOCK_VERSION_PATCH);
    ck_assert_str_eq(dlock_version(), expect);
    ck_assert_str_eq(DLOCK_VERSION_STRING, expect);
}
END_TEST

/* --- the lease clock ---------------------------------------------------------- */

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* `check_units --print-clocks`: the library's clock, CLOCK_BOOTTIME and
 * CLOCK_MONOTONIC, in ms, on one line. */
static int print_clocks(void)
{
    printf("%lld %lld %lld\n", (long long)dlock__now_ms(), (long long)clock_ms(CLOCK_BOOTTIME),
           (long long)clock_ms(CLOCK_MONOTONIC));
    return 0;
}

/* The lease clock is CLOCK_BOOTTIME, which counts while the host is
 * suspended, as the stores' own timers do; CLOCK_MONOTONIC does not, and a
 * holder would see seconds left after a resume while another process took
 * the lock (issue 10).  On a host that never slept the two are equal, so
 * this runs the library in a time namespace whose boot clock is an hour
 * ahead (as if the host had been suspended for an hour). */
START_TEST(lease_clock_counts_suspend)
{
    int64_t now = dlock__now_ms(), boot = clock_ms(CLOCK_BOOTTIME);
    ck_assert_int_lt(llabs(now - boot), 100);
    if (geteuid() != 0 || dlt_system("unshare -T --boottime 3600 true 2>/dev/null") != 0) {
        fprintf(stderr, "lease_clock_counts_suspend: no time namespace here (needs root)\n");
        ck_assert_int_ne(geteuid(), 0); /* root must be able to make one */
        return;
    }
    char self[4096], cmd[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    snprintf(cmd, sizeof cmd, "unshare -T --boottime 3600 '%s' --print-clocks", self);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    long long lib = 0, boottime = 0, monotonic = 0;
    ck_assert_int_eq(fscanf(p, "%lld %lld %lld", &lib, &boottime, &monotonic), 3);
    pclose(p);
    ck_assert_int_gt(boottime - monotonic, 3500000); /* the namespace took */
    ck_assert_msg(llabs(lib - boottime) < 1000, "the lease clock is %lld ms off CLOCK_BOOTTIME", lib - boottime);
}
END_TEST

/* The options libdlock reads on every URL come out; the rest stays as it was. */
static const struct {
    const char *url, *rest;
    int rc, mode, fencing;
    const char *table, *prefix;
} urlopt_cases[] = {
    {"postgresql://h/db", "postgresql://h/db", DLOCK_OK, DLOCK_MODE_DEFAULT, DLOCK_FENCING_DEFAULT, NULL, NULL},
    {"postgresql://h/db?mode=lease", "postgresql://h/db", DLOCK_OK, DLOCK_MODE_LEASE, 0, NULL, NULL},
    {"postgresql://h/db?sslmode=require&mode=session&connect_timeout=3",
     "postgresql://h/db?sslmode=require&connect_timeout=3", DLOCK_OK, DLOCK_MODE_SESSION, 0, NULL, NULL},
    {"mysql://h/db?table=my_locks&fencing=on#frag", "mysql://h/db#frag", DLOCK_OK, 0, DLOCK_FENCING_ON, "my_locks",
     NULL},
    {"redis://h/0?prefix=app%3A1%2F", "redis://h/0", DLOCK_OK, 0, 0, NULL, "app:1/"},
    {"redis://h/0?prefix=", "redis://h/0", DLOCK_OK, 0, 0, NULL, ""},
    {"postgresql://h/db?fencing=off&&x=1&", "postgresql://h/db?x=1", DLOCK_OK, 0, DLOCK_FENCING_OFF, NULL, NULL},
    {"postgresql://h/db?modes=lease", "postgresql://h/db?modes=lease", DLOCK_OK, 0, 0, NULL, NULL},
    {"postgresql://h/db?mode=LEASE", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
    {"postgresql://h/db?mode=", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
    {"postgresql://h/db?mode=lease&mode=lease", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
    {"postgresql://h/db?fencing=yes", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
    {"postgresql://h/db?table=1abc", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
    {"postgresql://h/db?table=a;drop", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
    {"postgresql://h/db?table=", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
    {"postgresql://h/db?table=abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234", NULL, DLOCK_EINVAL, 0,
     0, NULL, NULL},
    {"redis://h?prefix=%zz", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
    {"redis://h?prefix=%00", NULL, DLOCK_EINVAL, 0, 0, NULL, NULL},
};

START_TEST(url_common_options)
{
    struct dlock_url_options o;
    char *rest = (char *)"untouched";
    int rc = dlock__url_options(urlopt_cases[_i].url, &o, &rest);
    ck_assert_msg(rc == urlopt_cases[_i].rc, "%s: %d %s", urlopt_cases[_i].url, rc, dlock_last_error());
    if (rc != DLOCK_OK) {
        ck_assert_ptr_null(rest);
        ck_assert_str_ne(dlock_last_error(), "");
        return;
    }
    ck_assert_str_eq(rest, urlopt_cases[_i].rest);
    ck_assert_int_eq(o.mode, urlopt_cases[_i].mode);
    ck_assert_int_eq(o.fencing, urlopt_cases[_i].fencing);
    if (urlopt_cases[_i].table)
        ck_assert_str_eq(o.table, urlopt_cases[_i].table);
    else
        ck_assert_ptr_null(o.table);
    if (urlopt_cases[_i].prefix)
        ck_assert_str_eq(o.prefix, urlopt_cases[_i].prefix);
    else
        ck_assert_ptr_null(o.prefix);
    free(rest);
    dlock__url_options_free(&o);
}
END_TEST

START_TEST(url_options_only)
{
    struct dlock_url_options o;
    char *rest;
    ck_assert_int_eq(dlock__url_options("x://h?mode=lease&prefix=p", &o, &rest), DLOCK_OK);
    ck_assert_int_eq(dlock__url_options_only(&o, DLOCK_OPT_MODE | DLOCK_OPT_PREFIX, "x"), DLOCK_OK);
    ck_assert_int_eq(dlock__url_options_only(&o, DLOCK_OPT_MODE, "x"), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "prefix"));
    ck_assert_int_eq(dlock__url_options_only(&o, DLOCK_OPT_PREFIX | DLOCK_OPT_TABLE, "x"), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "mode"));
    free(rest);
    dlock__url_options_free(&o);
}
END_TEST

/* --- output formats of dlock(1) ----------------------------------------------------- */

static char *json_of(const char *in)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    ck_assert_ptr_nonnull(f);
    fmt_json_string(f, in);
    fclose(f);
    return out;
}

START_TEST(json_strings_are_escaped)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "\"plain\""},
        {"q\"b\\s", "\"q\\\"b\\\\s\""},
        {"a\nb\tc\001d\037e\177", "\"a\\nb\\tc\\u0001d\\u001fe\\u007f\""},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x92", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x92\""}, /* passed through */
        {"x\xffy", "\"x\\ufffdy\""},                                                          /* invalid byte */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                                                   /* overlong */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},                                        /* surrogate */
        {"\xe2\x82", "\"\\ufffd\\ufffd\""},                                                   /* cut short */
        {"", "\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = json_of(cases[i].in);
        ck_assert_str_eq(got, cases[i].out);
        free(got);
    }
}
END_TEST

START_TEST(times_are_rfc3339_utc)
{
    char buf[64];
    fmt_rfc3339(buf, sizeof buf, 1795984064377, 1);
    ck_assert_str_eq(buf, "2026-11-29T20:27:44.377Z");
    fmt_rfc3339(buf, sizeof buf, 1795984064007, 0);
    ck_assert_str_eq(buf, "2026-11-29T20:27:44Z");
    fmt_rfc3339(buf, sizeof buf, 0, 1);
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    fmt_rfc3339(buf, sizeof buf, -1, 1);
    ck_assert_str_eq(buf, "-");
}
END_TEST

START_TEST(prometheus_labels_are_escaped)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    ck_assert_ptr_nonnull(f);
    fmt_prom_label(f, "a\\b\"c\nd\xc3\xa9");
    fclose(f);
    ck_assert_str_eq(out, "\"a\\\\b\\\"c\\nd\xc3\xa9\"");
    free(out);
}
END_TEST

/* --- SHA-256 (lib/sha256.c): the PostgreSQL key and the MySQL lock names rest on it --- */

static void hex32(const unsigned char digest[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

/* FIPS 180-2's vectors, and lengths around the padding boundaries. */
START_TEST(sha256_vectors)
{
    static const struct {
        const char *text;
        const char *hex;
    } vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
         "klmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    unsigned char digest[32];
    char hex[65];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        dlock__sha256(vectors[i].text, strlen(vectors[i].text), digest);
        hex32(digest, hex);
        ck_assert_str_eq(hex, vectors[i].hex);
    }
    /* Lengths around the padding boundaries, and a long input. */
    static const struct {
        size_t len;
        const char *hex;
    } runs[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
        {1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char *a = malloc(runs[i].len);
        ck_assert_ptr_nonnull(a);
        memset(a, 'a', runs[i].len);
        dlock__sha256(a, runs[i].len, digest);
        free(a);
        hex32(digest, hex);
        ck_assert_msg(strcmp(hex, runs[i].hex) == 0, "%zu x 'a': %s", runs[i].len, hex);
    }
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-clocks") == 0)
        return print_clocks();
    Suite *s = suite_create("units");
    TCase *t = tcase_create("names");
    tcase_add_test(t, name_lengths);
    tcase_add_test(t, name_multibyte_limit);
    tcase_add_loop_test(t, name_utf8, 0, (int)(sizeof utf8_cases / sizeof utf8_cases[0]));
    suite_add_tcase(s, t);
    t = tcase_create("urls");
    tcase_add_test(t, url_schemes);
    tcase_add_test(t, url_open_errors);
    tcase_add_test(t, url_scheme_typos);
    tcase_add_test(t, percent_decoding);
    tcase_add_test(t, url_authority_and_hosts);
    tcase_add_loop_test(t, url_common_options, 0, (int)(sizeof urlopt_cases / sizeof urlopt_cases[0]));
    tcase_add_test(t, url_options_only);
    suite_add_tcase(s, t);
    t = tcase_create("durations");
    tcase_add_loop_test(t, durations, 0, (int)(sizeof duration_cases / sizeof duration_cases[0]));
    tcase_add_test(t, duration_forever_only_where_allowed);
    tcase_add_test(t, durations_shown_in_human_units);
    suite_add_tcase(s, t);
    t = tcase_create("names in messages");
    tcase_add_test(t, names_shown_escaped);
    tcase_add_test(t, long_names_shown_short);
    suite_add_tcase(s, t);
    t = tcase_create("errors");
    tcase_add_test(t, strerror_texts);
    tcase_add_test(t, version_matches_macros);
    suite_add_tcase(s, t);
    t = tcase_create("formats");
    tcase_add_test(t, json_strings_are_escaped);
    tcase_add_test(t, times_are_rfc3339_utc);
    tcase_add_test(t, prometheus_labels_are_escaped);
    suite_add_tcase(s, t);
    t = tcase_create("sha256");
    tcase_add_test(t, sha256_vectors);
    suite_add_tcase(s, t);
    t = tcase_create("clock");
    tcase_add_test(t, lease_clock_counts_suspend);
    suite_add_tcase(s, t);
    int failed = dlt_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
