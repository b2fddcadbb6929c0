/*
 * Process suite, tcase "messages": one-line messages, short names, TTL limits, scheme typos.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "suite.h"

/* --- names and limits in messages ---------------------------------------------------- */

/* The bytes of a file (at most 64 KiB), NUL-terminated; "" when absent. */
static char *slurp(const char *path)
{
    char *buf = calloc(1, 65536);
    ck_assert_ptr_nonnull(buf);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, 65535, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

/* Whether some line of `text` starts with `start`. */
static int has_line_starting(const char *text, const char *start)
{
    for (const char *p = text; p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, start, strlen(start)) == 0)
            return 1;
    }
    return 0;
}

/* A name with a newline is printed escaped by the busy message, status and
 * list: it never makes a line of its own that looks like dlock's. */
START_TEST(name_with_newline_cannot_forge_a_line)
{
    char forged[300], out[4300];
    snprintf(forged, sizeof forged, "%s\ndlock: lock 'x' was lost", name);
    snprintf(out, sizeof out, "%s/out", dir);
    setenv("DLOCK_FORGED_NAME", forged, 1);
    pid_t holder = sh_bg("'%s' run \"$DLOCK_FORGED_NAME\" -- sleep 4", dlock_bin);
    int64_t start = dlt_now_ms();
    while (dlt_sh("'%s' status \"$DLOCK_FORGED_NAME\" >/dev/null 2>&1", dlock_bin) != 0 && dlt_now_ms() - start < 3000)
        dlt_sleep_ms(20);
    ck_assert_int_eq(dlt_sh("'%s' run \"$DLOCK_FORGED_NAME\" -- true 2> %s", dlock_bin, out), 75);
    char *text = slurp(out);
    ck_assert_int_eq(count_lines(out), 1);
    ck_assert_ptr_nonnull(strstr(text, "\\ndlock: lock 'x' was lost"));
    ck_assert(!has_line_starting(text, "dlock: lock 'x'"));
    free(text);
    ck_assert_int_eq(dlt_sh("'%s' status \"$DLOCK_FORGED_NAME\" > %s 2>&1", dlock_bin, out), 0);
    ck_assert_int_eq(count_lines(out), 1);
    text = slurp(out);
    ck_assert_ptr_nonnull(strstr(text, "\\ndlock: lock 'x' was lost: held by"));
    free(text);
    ck_assert_int_eq(dlt_sh("'%s' list > %s 2>&1", dlock_bin, out), 0);
    ck_assert_int_eq(count_lines(out), 2); /* the heading and one lock */
    text = slurp(out);
    ck_assert(!has_line_starting(text, "dlock: lock 'x'"));
    free(text);
    /* JSON escapes it as JSON does. */
    ck_assert_int_eq(dlt_sh("'%s' status --json \"$DLOCK_FORGED_NAME\" > %s 2>&1", dlock_bin, out), 0);
    ck_assert_int_eq(count_lines(out), 1);
    ck_assert_int_eq(wait_exit(holder), 0);
    unsetenv("DLOCK_FORGED_NAME");
}
END_TEST

/* A 10,000-byte name is refused (64) with a message that shows it short. */
START_TEST(long_name_gives_a_short_message)
{
    char *huge = malloc(10001), out[4300];
    ck_assert_ptr_nonnull(huge);
    memset(huge, 'n', 10000);
    huge[10000] = '\0';
    setenv("DLOCK_HUGE_NAME", huge, 1);
    free(huge);
    snprintf(out, sizeof out, "%s/out", dir);
    static const char *const commands[] = {"run \"$DLOCK_HUGE_NAME\" -- true", "status \"$DLOCK_HUGE_NAME\"",
                                           "status --json \"$DLOCK_HUGE_NAME\"",
                                           "release --force \"$DLOCK_HUGE_NAME\""};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        ck_assert_int_eq(dlt_sh("'%s' %s > %s 2>&1", dlock_bin, commands[i], out), 64);
        char *text = slurp(out);
        ck_assert_msg(strlen(text) < 400, "%s: %zu bytes", commands[i], strlen(text));
        ck_assert_ptr_nonnull(strstr(text, "(10000 bytes)"));
        free(text);
    }
    unsetenv("DLOCK_HUGE_NAME");
    /* The longest name there is: standard output names it whole. */
    char longest[256];
    memset(longest, 'n', 255);
    longest[255] = '\0';
    ck_assert_int_eq(dlt_sh("'%s' status %s > %s 2>&1", dlock_bin, longest, out), 1);
    char *text = slurp(out);
    ck_assert_uint_eq(strlen(text), 255 + strlen(": free\n"));
    ck_assert(strncmp(text, longest, 255) == 0);
    free(text);
    /* dlock run's own lines show it cut, as the other messages do: busy. */
    memcpy(longest, name, strlen(name));
    ck_assert_int_eq(dlt_sh("'%s' run %s -- sleep 3 & sleep 0.5; '%s' run %s -- true > %s 2>&1; rc=$?; wait; exit $rc",
                            dlock_bin, longest, dlock_bin, longest, out),
                     75);
    text = slurp(out);
    ck_assert_msg(strstr(text, "busy") && strstr(text, "(255 bytes)") && strlen(text) < 400, "%s", text);
    free(text);
}
END_TEST

/* -t: under 100ms is refused as too short to be renewed, with the reason;
 * limits are said in the units a user writes; d is a unit. */
START_TEST(ttl_limits_in_human_units)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' run -t 1ms %s -- true 2> %s", dlock_bin, name, out), 64);
    ck_assert(file_has(out, "too short to be renewed: at least 100ms"));
    ck_assert(file_has(out, "TTL/3"));
    ck_assert_int_eq(dlt_sh("'%s' run -t 99ms %s -- true 2>/dev/null", dlock_bin, name), 64);
    ck_assert_int_eq(dlt_sh("'%s' run -t 99999d %s -- true 2> %s", dlock_bin, name, out), 64);
    ck_assert(file_has(out, "from 100ms to 24.855d"));
    ck_assert(!file_has(out, "2147483647"));
    ck_assert_int_eq(dlt_sh("'%s' run -w 99999d %s -- true 2> %s", dlock_bin, name, out), 64);
    ck_assert(file_has(out, "at most 24.855d"));
    ck_assert_int_eq(dlt_sh("'%s' run -t 100ms %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' run -t 24.855d %s -- true", dlock_bin, name), 0);
    ck_assert_int_eq(dlt_sh("'%s' run -t 2d -m 0.5s %s -- true", dlock_bin, name), 0);
}
END_TEST

/* A scheme that is a typo of a built-in one is a usage error (64) with a
 * suggestion; a scheme of a backend not built in stays 69. */
START_TEST(scheme_typo_is_a_usage_error)
{
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_int_eq(dlt_sh("'%s' run -u 'sqlitee://%s/x.db' %s -- true 2> %s", dlock_bin, dir, name, out), 64);
    ck_assert(file_has(out, "did you mean 'sqlite'"));
    ck_assert_int_eq(dlt_sh("'%s' status -u 'sqlte://%s/x.db' %s 2> %s", dlock_bin, dir, name, out), 64);
    ck_assert(file_has(out, "did you mean 'sqlite'"));
    ck_assert_int_eq(dlt_sh("'%s' list -u 'zookeeper://x/0' 2>/dev/null", dlock_bin), 69);
}
END_TEST

/* A control character in a store's own text (libpq quotes a URL option it
 * does not know) is escaped too: every message of dlock is one line. */
START_TEST(store_text_cannot_forge_a_line)
{
#ifdef HAVE_POSTGRESQL
    char out[4300];
    snprintf(out, sizeof out, "%s/out", dir);
    setenv("DLOCK_FORGED_URL", "postgresql://127.0.0.1:1/db?app\ndlock: lock 'x' was lost=1", 1);
    ck_assert_int_eq(dlt_sh("'%s' status -u \"$DLOCK_FORGED_URL\" %s 2> %s", dlock_bin, name, out), 64);
    unsetenv("DLOCK_FORGED_URL");
    char *text = slurp(out);
    ck_assert_msg(count_lines(out) == 1 && !has_line_starting(text, "dlock: lock 'x'"), "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "\\ndlock: lock 'x' was lost"));
    free(text);
#endif
}
END_TEST

void dlt_process_add_messages(Suite *s)
{
    TCase *t = tcase_create("messages");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 30);
    tcase_add_test(t, name_with_newline_cannot_forge_a_line);
    tcase_add_test(t, long_name_gives_a_short_message);
    tcase_add_test(t, ttl_limits_in_human_units);
    tcase_add_test(t, scheme_typo_is_a_usage_error);
    tcase_add_test(t, store_text_cannot_forge_a_line);
    suite_add_tcase(s, t);
}
