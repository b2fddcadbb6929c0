/*
 * What the PostgreSQL backend says when a URL or a connection is wrong
 * (issue 24, "URLs"): a bad value of an option libpq knows is a usage error
 * (DLOCK_EINVAL, dlock exits 64) that names the option and never the
 * password, as an unknown option already is; and libpq's multi-line text
 * becomes one message line whose lines are sentences, not words run
 * together.  Against a live server ($DLOCK_TEST_PG_URL) where it connects.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../backends/postgresql/url.h"
#include "common.h"

static const char *pg_url;

#define FAKE_PASSWORD "s3cret-Pw"
/* Nothing listens on port 1: a refused connection, twice (two hosts). */
#define CLOSED_URL "postgresql://dlock_user:" FAKE_PASSWORD "@127.0.0.1:1,127.0.0.1:1/db"

/* `url` with `param` added to its query (malloc'ed). */
static char *with_param(const char *url, const char *param)
{
    size_t len = strlen(url) + strlen(param) + 2;
    char *out = malloc(len);
    ck_assert_ptr_nonnull(out);
    snprintf(out, len, "%s%c%s", url, strchr(url, '?') ? '&' : '?', param);
    return out;
}

/* Open `url`: the status, and the message in `text`. */
static int open_status(const char *url, char *text, size_t len)
{
    dlock_client *c = NULL;
    int rc = dlock_open(url, &c);
    snprintf(text, len, "%s", dlock_last_error());
    dlock_close(c);
    return rc;
}

/* Bad values of options whose values libpq checks only when it connects. */
static const struct {
    const char *param;
    const char *keyword;
} bad_values[] = {
    {"sslmode=bogus", "sslmode"},
    {"sslmode=REQUIRE", "sslmode"}, /* libpq compares case-sensitively */
    {"gssencmode=always", "gssencmode"},
    {"channel_binding=maybe", "channel_binding"},
    {"target_session_attrs=writable", "target_session_attrs"},
    {"load_balance_hosts=roundrobin", "load_balance_hosts"},
    {"connect_timeout=ten", "connect_timeout"},
    {"keepalives_idle=5s", "keepalives_idle"},
    {"keepalives_count=three", "keepalives_count"},
    {"tcp_user_timeout=1e4", "tcp_user_timeout"},
};

START_TEST(test_bad_option_value_is_a_usage_error)
{
    const char *bases[2] = {CLOSED_URL, pg_url};
    for (size_t b = 0; b < 2; b++) {
        for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
            char *url = with_param(bases[b], bad_values[i].param);
            char text[1024];
            int rc = open_status(url, text, sizeof text);
            fprintf(stderr, "%s: %s\n", bad_values[i].param, text);
            ck_assert_msg(rc == DLOCK_EINVAL, "%s: status %d (%s), not DLOCK_EINVAL", bad_values[i].param, rc, text);
            ck_assert_msg(strstr(text, bad_values[i].keyword), "%s: the message does not name the option: %s",
                          bad_values[i].param, text);
            ck_assert_msg(!strstr(text, FAKE_PASSWORD), "the password is in the message: %s", text);
            free(url);
        }
    }
}
END_TEST

/* The unknown option, for comparison: the same status. */
START_TEST(test_unknown_option_is_a_usage_error)
{
    char *url = with_param(CLOSED_URL, "nosuchparam=1");
    char text[1024];
    ck_assert_int_eq(open_status(url, text, sizeof text), DLOCK_EINVAL);
    ck_assert_msg(!strstr(text, FAKE_PASSWORD), "the password is in the message: %s", text);
    free(url);
}
END_TEST

/* Every value libpq documents for them is taken, and the server answers. */
START_TEST(test_good_option_values_connect)
{
    static const char *const good[] = {
        "sslmode=disable", "sslmode=prefer", "sslmode=allow", "gssencmode=disable", "channel_binding=prefer",
        "target_session_attrs=any", "target_session_attrs=read-write", "connect_timeout=5", "connect_timeout= 7 ",
        "keepalives_idle=9", "tcp_user_timeout=20000", "keepalives=1",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *url = with_param(pg_url, good[i]);
        char text[1024];
        int rc = open_status(url, text, sizeof text);
        ck_assert_msg(rc == DLOCK_OK, "%s: status %d: %s", good[i], rc, text);
        free(url);
    }
}
END_TEST

/* dlock itself: 64 (usage), as for an unknown option, not 69 (unusable). */
START_TEST(test_dlock_exits_64)
{
    const char *bin = getenv("DLOCK_BIN");
    if (!bin || !*bin) {
        fprintf(stderr, "no dlock binary ($DLOCK_BIN): skipping\n");
        return;
    }
    static const char *const params[] = {"sslmode=bogus", "nosuchparam=1"};
    for (size_t i = 0; i < 2; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "'%s' status -u '" CLOSED_URL "?%s' pg-messages >/dev/null 2>&1", bin, params[i]);
        ck_assert_int_eq(dlt_system(cmd), 64);
    }
}
END_TEST

/* libpq's lines (a failed attempt per host, each with its hint) become
 * sentences of one line; the server's own words are kept as they are. */
START_TEST(test_libpq_lines_become_sentences)
{
    static const struct {
        const char *libpq;
        const char *clean;
    } cases[] = {
        {"connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n"
         "connection to server at \"::1\", port 1 failed: Cannot assign requested address\n"
         "\tIs the server running on that host and accepting TCP/IP connections?\n",
         "connection to server at \"127.0.0.1\", port 1 failed: Connection refused. Is the server running on that"
         " host and accepting TCP/IP connections? connection to server at \"::1\", port 1 failed: Cannot assign"
         " requested address. Is the server running on that host and accepting TCP/IP connections?"},
        {"connection to server at \"h\", port 5432 failed: FATAL:  password authentication failed for user \"jobs\"\n",
         "connection to server at \"h\", port 5432 failed: FATAL:  password authentication failed for user \"jobs\""},
        {"ERROR:  relation \"x\" does not exist\nLINE 1: SELECT * FROM x\n                      ^\n",
         "ERROR:  relation \"x\" does not exist. LINE 1: SELECT * FROM x. ^"},
        {"server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n"
         "\tbefore or while processing the request.\n",
         "server closed the connection unexpectedly. This probably means the server terminated abnormally before"
         " or while processing the request."},
        {"failed: " FAKE_PASSWORD "\n" FAKE_PASSWORD " again\n", "failed: ***. *** again"},
        {"one line ends:\nthe next\n\n\n", "one line ends: the next"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[PG_ERRTEXT_MAX];
        dlock__pg_clean_text(out, sizeof out, cases[i].libpq, FAKE_PASSWORD);
        ck_assert_str_eq(out, cases[i].clean);
    }
}
END_TEST

/* The same through a real refused connection: one line, sentences. */
START_TEST(test_refused_connection_message)
{
    char *url = with_param(CLOSED_URL, "connect_timeout=3");
    char text[1024];
    int rc = open_status(url, text, sizeof text);
    fprintf(stderr, "refused: %s\n", text);
    ck_assert_int_eq(rc, DLOCK_ECONN);
    ck_assert_msg(!strpbrk(text, "\n\t"), "more than one line: %s", text);
    ck_assert_msg(strstr(text, "Connection refused. Is the server running"), "run together: %s", text);
    ck_assert_msg(!strstr(text, "refused Is"), "run together: %s", text);
    ck_assert_msg(!strstr(text, FAKE_PASSWORD), "the password is in the message: %s", text);
    free(url);
}
END_TEST

/* A refused login keeps the server's words (the Python binding's
 * LoginRefused reads them) on one line. */
START_TEST(test_refused_login_message)
{
    char *url = with_param(pg_url, "dbname=dlock_no_such_database");
    char text[1024];
    int rc = open_status(url, text, sizeof text);
    fprintf(stderr, "no database: %s\n", text);
    ck_assert_int_eq(rc, DLOCK_ECONN);
    ck_assert_msg(!strpbrk(text, "\n\t"), "more than one line: %s", text);
    ck_assert_msg(strstr(text, "FATAL:  database \"dlock_no_such_database\" does not exist"), "%s", text);
    free(url);
}
END_TEST

int main(void)
{
    pg_url = dlt_require_url("DLOCK_TEST_PG_URL", "postgresql");
    Suite *s = suite_create("pg_messages");
    TCase *tc = tcase_create("option-values");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bad_option_value_is_a_usage_error);
    tcase_add_test(tc, test_unknown_option_is_a_usage_error);
    tcase_add_test(tc, test_good_option_values_connect);
    tcase_add_test(tc, test_dlock_exits_64);
    suite_add_tcase(s, tc);
    tc = tcase_create("libpq-text");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_libpq_lines_become_sentences);
    tcase_add_test(tc, test_refused_connection_message);
    tcase_add_test(tc, test_refused_login_message);
    suite_add_tcase(s, tc);
    int failed = dlt_run_suite(s);
    return failed == 0 ? 0 : 1;
}
