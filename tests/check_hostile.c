/*
 * Hostile input, on every URL in $DLOCK_TEST_URLS, through the API and
 * through dlock(1) ($DLOCK_BIN):
 *   - lock names made of SQL and shell syntax, quotes, backslashes, %, _,
 *     control characters and unusual Unicode are just names: each is taken,
 *     conflicts with itself only, and never reaches SQL as text (the store
 *     still works after "x'); DROP TABLE dlock_locks; --", a name that would
 *     sleep in SQL does not, and look-alike names never conflict);
 *   - names at and over the 255-byte limit and invalid UTF-8 get DLOCK_EINVAL
 *     (exit 64 from the command), and no job runs;
 *   - a URL with a password and a wrong host, port, database, user or TLS
 *     setting fails with a clear message that does not contain the password,
 *     in dlock_last_error() and in the output of `dlock status` / `dlock run`;
 *   - SQLite: symbolic links planted in the database's folder, or as one of
 *     its folders, never make the backend write through them.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "stores/store.h"

/* A made-up password: it must never show up anywhere. */
#define FAKE_PASSWORD "Zebra-Secret-42"
#define FAKE_PASSWORD_ENCODED "Zebra%2DSecret%2D42"
#define CLI_OUTPUT_MAX 8192

static const char *url;
static const char *backend;
static const char *dlock_bin;
static dlock_client *client;
static dlock_client *other;
static char *tag; /* makes this test's names unique */

static void setup(void)
{
    ck_assert_msg(dlock_open(url, &client) == DLOCK_OK, "open: %s", dlock_last_error());
    ck_assert_msg(dlock_open(url, &other) == DLOCK_OK, "open: %s", dlock_last_error());
    tag = dlt_unique_name("h");
}

static void teardown(void)
{
    dlock_close(client);
    dlock_close(other);
    client = other = NULL;
    free(tag);
}

/* What the store under test can do (tests/stores/store.h). */
static int can(unsigned cap)
{
    return (dlt_store_of(url)->caps(url) & cap) != 0;
}

/* --- running dlock(1) without a shell (names hold quotes) ---------------------------- */

/* Runs $DLOCK_BIN with argv (argv[0] is ignored), DLOCK_URL set to env_url
 * when not NULL; stdout and stderr go to `out`.  Returns the exit status, or
 * 128+N when signal N ended it. */
static int run_cli(const char *env_url, char *out, size_t outlen, const char *const *args)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        if (env_url)
            setenv("DLOCK_URL", env_url, 1);
        else
            unsetenv("DLOCK_URL");
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)dlock_bin;
        for (int i = 1; args[i] && n < 31; i++)
            argv[n++] = (char *)args[i];
        argv[n] = NULL;
        execv(dlock_bin, argv);
        _exit(126);
    }
    close(fds[1]);
    size_t used = 0;
    for (;;) {
        char buf[1024];
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t keep = (size_t)got;
        if (used + keep >= outlen)
            keep = outlen - 1 - used;
        memcpy(out + used, buf, keep);
        used += keep;
    }
    out[used] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

/* The exit status dlock(1) documents for a library status. */
static int cli_exit_for(int status)
{
    switch (status) {
    case DLOCK_EINVAL:
        return 64;
    case DLOCK_ECONN:
    case DLOCK_ENOTSUP:
        return 69;
    case DLOCK_EBACKEND:
        return 70;
    default:
        return -1;
    }
}

/* --- hostile names ---------------------------------------------------------------------- */

static const char *const hostile_payloads[] = {
    /* SQL */
    "x'); DROP TABLE dlock_locks; --", "'; DROP TABLE IF EXISTS dlock_locks; SELECT '", "' OR '1'='1", "\" OR \"\"=\"",
    "a'b", "a''b", "'", "''", "\"", "`id`", ";", "a;b; ;", "-- comment", "--", "/* comment */", "/*", "*/", "#", "$1",
    "$$", ":name", "?", "@var", "GET_LOCK('x', 10)", "RELEASE_ALL_LOCKS()", "pg_advisory_unlock_all()", "NULL",
    /* escapes and patterns */
    "\\", "\\\\", "a\\'b", "\\0", "\\x00", "\\n", "%", "%%", "%s%s%s%n%x", "100%_done", "_", "*", "[a-z]", "{}",
    /* control characters (no NUL: a C string cannot hold one) */
    "\x01\x02\x03", "\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "tab\tnew\nline\rcarriage", "\x7f",
    /* Unicode */
    "\xC3\xA9",  /* é, one code point */
    "e\xCC\x81", /* é, e + combining acute */
    ("\xE2\x80\xAE"
     "gnp.exe"), /* right-to-left override */
    ("\xEF\xBB\xBF"
     "bom"),            /* byte order mark */
    "\xC2\xA0",         /* no-break space */
    "\xF0\x9F\x94\x92", /* 4-byte: padlock */
    "\xF4\x8F\xBF\xBF", /* U+10FFFF, the last code point */
    "\xEF\xBF\xBD",     /* U+FFFD */
    "\xC3\x9F",         /* ß */
};
#define PAYLOAD_COUNT (sizeof hostile_payloads / sizeof hostile_payloads[0])

/* payload + " " + this test's tag: the tag keeps runs apart, and an SQL
 * comment in the payload would swallow it. */
static char *tagged(const char *payload)
{
    size_t len = strlen(payload) + strlen(tag) + 2;
    char *n = malloc(len);
    ck_assert_ptr_nonnull(n);
    snprintf(n, len, "%s %s", payload, tag);
    return n;
}

/* 1 when `c` can take `n` right now (and gives it back). */
static int takes(dlock_client *c, const char *n)
{
    dlock_lock *l = NULL;
    int rc = dlock_acquire(c, n, 10000, 0, &l);
    ck_assert_msg(rc == DLOCK_OK || rc == DLOCK_EBUSY, "acquire: %s (%s)", dlock_strerror(rc), dlock_last_error());
    if (rc == DLOCK_OK)
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    return rc == DLOCK_OK;
}

START_TEST(hostile_names_are_just_names)
{
    for (size_t i = 0; i < PAYLOAD_COUNT; i++) {
        char *n = tagged(hostile_payloads[i]);
        dlock_lock *l = NULL;
        int rc = dlock_acquire(client, n, 30000, 0, &l);
        ck_assert_msg(rc == DLOCK_OK, "payload #%zu: %s (%s)", i, dlock_strerror(rc), dlock_last_error());
        ck_assert_str_eq(dlock_name(l), n);
        ck_assert_msg(!takes(other, n), "payload #%zu: another client took it while held", i);
        char who[512] = "unset";
        ck_assert_int_eq(dlock_holder(other, n, who, sizeof who), 1);
        ck_assert_str_ne(who, "unset");
        ck_assert_int_eq(dlock_extend(l, 30000), DLOCK_OK);
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        ck_assert_int_eq(dlock_holder(other, n, NULL, 0), 0);
        ck_assert_msg(takes(other, n), "payload #%zu: not free after release", i);
        free(n);
    }
}
END_TEST

/* Names that an escaping mistake, a LIKE pattern, a collation or a cut would
 * merge: holding one leaves the other free. */
START_TEST(look_alike_names_never_conflict)
{
    char a64[80], b64[80];
    memset(a64, 'a', 64);
    a64[64] = 'x';
    a64[65] = '\0';
    memcpy(b64, a64, sizeof a64);
    b64[64] = 'y';
    const char *pairs[][2] = {
        {"a'b", "a''b"},
        {"a\\'b", "a'b"},
        {"a\\b", "a\\\\b"},
        {"a%", "ab"},
        {"a_c", "abc"},
        {"%", "x"},
        {"_", "y"},
        {"A", "a"},
        {"Ab", "aB"},
        {"\xC3\xA9", "e"},
        {"e\xCC\x81", "\xC3\xA9"},
        {"\xC3\x9F", "ss"},
        {"a;b", "a"},
        {"a-- x", "a"},
        {"a\tb", "a b"},
        {"x", "x "},
        {"a\x01", "a"},
        {"\xC2\xA0", " "},
        {a64, b64},
        {"x'); DROP TABLE dlock_locks; --", "x"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        /* The tag goes first here: a trailing space must stay trailing. */
        char n0[400], n1[400];
        snprintf(n0, sizeof n0, "%s:%s", tag, pairs[i][0]);
        snprintf(n1, sizeof n1, "%s:%s", tag, pairs[i][1]);
        for (int way = 0; way < 2; way++) {
            const char *held_name = way ? n1 : n0, *free_name = way ? n0 : n1;
            dlock_lock *l = NULL;
            ck_assert_msg(dlock_acquire(client, held_name, 30000, 0, &l) == DLOCK_OK, "pair #%zu: %s", i,
                          dlock_last_error());
            ck_assert_msg(takes(other, free_name), "pair #%zu: holding one name blocked the other", i);
            ck_assert_int_eq(dlock_holder(other, free_name, NULL, 0), 0);
            ck_assert_int_eq(dlock_release(l), DLOCK_OK);
        }
    }
}
END_TEST

/* After SQL-looking names, the store still works, a name that would sleep in
 * SQL does not, and dlock(1) shows the lock held. */
START_TEST(sql_never_runs)
{
    char *drop = tagged("x'); DROP TABLE dlock_locks; --");
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, drop, 30000, 0, &l), DLOCK_OK);

    /* dlock status sees it held (exit 0), through a fresh process. */
    char out[CLI_OUTPUT_MAX];
    const char *status_args[] = {"dlock", "status", "-u", url, drop, NULL};
    int st = run_cli(NULL, out, sizeof out, status_args);
    ck_assert_msg(st == 0, "dlock status: exit %d: %s", st, out);
    ck_assert_ptr_nonnull(strstr(out, "held"));

    /* The table (or the server's lock space) is intact: other names work. */
    char *plain = tagged("plain-after-drop");
    ck_assert(takes(other, plain));
    ck_assert(!takes(other, drop));

    /* Names that would stall the session if they were SQL. */
    const char *sleepers[] = {"'); SELECT pg_sleep(3); --", "' AND SLEEP(3) AND '", "'||(SELECT pg_sleep(3))||'",
                              "' OR SLEEP(3)='", "randomblob(1000000000)"};
    for (size_t i = 0; i < sizeof sleepers / sizeof sleepers[0]; i++) {
        char *n = tagged(sleepers[i]);
        dlock_lock *s = NULL;
        int64_t start = dlt_now_ms();
        ck_assert_int_eq(dlock_acquire(other, n, 30000, 0, &s), DLOCK_OK);
        ck_assert_int_eq(dlock_release(s), DLOCK_OK);
        int64_t took = dlt_now_ms() - start;
        ck_assert_msg(took < 2500, "'%s' took %lld ms: did it run as SQL?", sleepers[i], (long long)took);
        free(n);
    }

    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    st = run_cli(NULL, out, sizeof out, status_args);
    ck_assert_msg(st == 1, "dlock status after release: exit %d: %s", st, out);
    ck_assert_ptr_nonnull(strstr(out, "free"));
    ck_assert(takes(other, drop));
    free(plain);
    free(drop);
}
END_TEST

/* --- the 255-byte limit and invalid UTF-8 --------------------------------------------- */

static void fill(char *buf, const char *unit, size_t units, const char *tail)
{
    buf[0] = '\0';
    for (size_t i = 0; i < units; i++)
        strcat(buf, unit);
    strcat(buf, tail);
}

START_TEST(limit_is_255_bytes_of_utf8)
{
    char n[600];
    /* This test's tag (the suites of one store's modes run at once, and
     * the modes exclude each other), then four-byte characters, then ASCII
     * bytes: exactly 255 bytes. */
    snprintf(n, sizeof n, "%s-", tag);
    while (strlen(n) + 4 <= 255)
        strcat(n, "\xF0\x9F\x94\x92");
    while (strlen(n) < 255)
        strcat(n, "a");
    ck_assert_uint_eq(strlen(n), 255);
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, n, 30000, 0, &l), DLOCK_OK);
    ck_assert(!takes(other, n));
    char out[CLI_OUTPUT_MAX];
    const char *status_args[] = {"dlock", "status", "-u", url, n, NULL};
    ck_assert_int_eq(run_cli(NULL, out, sizeof out, status_args), 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);

    /* 251 ASCII bytes and one 4-byte character: 255, fine. */
    memset(n, 'q', 251);
    strcpy(n + 251, "\xF0\x9F\x94\x92");
    memcpy(n, tag, strlen(tag) < 200 ? strlen(tag) : 200);
    ck_assert_uint_eq(strlen(n), 255);
    ck_assert(takes(client, n));

    /* One byte more: 256 bytes. */
    memset(n, 'q', 252);
    strcpy(n + 252, "\xF0\x9F\x94\x92");
    ck_assert_uint_eq(strlen(n), 256);
    ck_assert_int_eq(dlock_acquire(client, n, 30000, 0, &l), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "255"));
    const char *status_long[] = {"dlock", "status", "-u", url, n, NULL};
    ck_assert_int_eq(run_cli(NULL, out, sizeof out, status_long), 64);

    /* 255 bytes, but the last character is cut after 3 of its 4 bytes. */
    fill(n, "\xF0\x9F\x94\x92", 63, "\xF0\x9F\x94");
    ck_assert_uint_eq(strlen(n), 255);
    ck_assert_int_eq(dlock_acquire(client, n, 30000, 0, &l), DLOCK_EINVAL);
    ck_assert_ptr_nonnull(strstr(dlock_last_error(), "UTF-8"));
}
END_TEST

static const char *const invalid_names[] = {
    "\xC0\xAF",             /* overlong '/' */
    "\xE0\x80\xAF",         /* overlong, 3 bytes */
    "\xF0\x80\x80\xAF",     /* overlong, 4 bytes */
    "\xED\xA0\x80",         /* surrogate U+D800 */
    "\xED\xBF\xBF",         /* surrogate U+DFFF */
    "\xF4\x90\x80\x80",     /* U+110000 */
    "\xF8\x88\x80\x80\x80", /* 5-byte form */
    "\xFC\x84\x80\x80\x80\x80",
    "\xFE",
    "\xFF",
    "\x80",      /* lone continuation */
    "a\xE2\x82", /* truncated at the end */
    ("\xE2\x82"
     "a"), /* truncated in the middle */
    "x'); DROP TABLE dlock_locks; --\xFF",
    "\xC3\xA9\xC3",
};

START_TEST(invalid_utf8_is_einval_everywhere)
{
    char marker[4400];
    char *dir = dlt_tmpdir();
    snprintf(marker, sizeof marker, "%s/job-ran", dir);
    for (size_t i = 0; i < sizeof invalid_names / sizeof invalid_names[0]; i++) {
        dlock_lock *l = (dlock_lock *)&marker;
        ck_assert_msg(dlock_acquire(client, invalid_names[i], 30000, 0, &l) == DLOCK_EINVAL, "name #%zu", i);
        ck_assert_ptr_null(l);
        ck_assert_ptr_nonnull(strstr(dlock_last_error(), "UTF-8"));
        ck_assert_int_eq(dlock_holder(client, invalid_names[i], NULL, 0), DLOCK_EINVAL);

        char out[CLI_OUTPUT_MAX];
        const char *status_args[] = {"dlock", "status", "-u", url, invalid_names[i], NULL};
        int st = run_cli(NULL, out, sizeof out, status_args);
        ck_assert_msg(st == 64, "dlock status, name #%zu: exit %d: %s", i, st, out);
        const char *run_args[] = {"dlock", "run", "-u", url, invalid_names[i], "--", "touch", marker, NULL};
        st = run_cli(NULL, out, sizeof out, run_args);
        ck_assert_msg(st == 64, "dlock run, name #%zu: exit %d: %s", i, st, out);
        ck_assert_msg(access(marker, F_OK) != 0, "dlock run started the job for an invalid name");
    }
    rmdir(dir);
    free(dir);
}
END_TEST

/* --- URLs with a password ------------------------------------------------------------------ */

struct url_parts {
    char scheme[32];
    char user[128];
    char password[256]; /* as written in the URL (percent-encoded) */
    char host[256];
    char port[16];
    char database[128];
};

/* scheme://[user[:password]@]host[:port]/database[?...] -- enough for the
 * test servers' URLs. */
static int split_url(const char *u, struct url_parts *p)
{
    memset(p, 0, sizeof *p);
    const char *sep = strstr(u, "://");
    if (!sep || (size_t)(sep - u) >= sizeof p->scheme)
        return -1;
    memcpy(p->scheme, u, (size_t)(sep - u));
    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *q = auth; q < auth + auth_len; q++)
        if (*q == '@')
            at = q;
    const char *hostport = auth;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        const char *user_end = colon ? colon : at;
        snprintf(p->user, sizeof p->user, "%.*s", (int)(user_end - auth), auth);
        if (colon)
            snprintf(p->password, sizeof p->password, "%.*s", (int)(at - colon - 1), colon + 1);
        hostport = at + 1;
    }
    size_t hp_len = (size_t)(auth + auth_len - hostport);
    const char *colon = memchr(hostport, ':', hp_len);
    size_t host_len = colon ? (size_t)(colon - hostport) : hp_len;
    snprintf(p->host, sizeof p->host, "%.*s", (int)host_len, hostport);
    if (colon)
        snprintf(p->port, sizeof p->port, "%.*s", (int)(hostport + hp_len - colon - 1), colon + 1);
    const char *path = auth + auth_len;
    if (*path == '/')
        snprintf(p->database, sizeof p->database, "%.*s", (int)strcspn(path + 1, "?"), path + 1);
    return p->host[0] ? 0 : -1;
}

static void percent_decode(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < outlen; i++) {
        unsigned int byte;
        if (in[i] == '%' && in[i + 1] && in[i + 2] && sscanf(in + i + 1, "%2x", &byte) == 1) {
            out[o++] = (char)byte;
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
}

static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* No form of any secret in `text`. */
static void assert_no_secret(const char *text, const char *const *secrets, const char *where, const char *what)
{
    for (size_t i = 0; secrets[i]; i++)
        ck_assert_msg(!secrets[i][0] || !strstr(text, secrets[i]), "%s (%s) shows secret #%zu: %s", where, what, i,
                      text);
}

#define EXPECT_MAX 3
struct bad_url {
    const char *what;
    char url[1024];
    int expect[EXPECT_MAX]; /* the statuses that are right; 0 ends the list early... */
    int expect_count;
};

/* Try `b` through the API and through `dlock status` and `dlock run`. */
static void check_bad_url(const struct bad_url *b, const char *const *secrets)
{
    dlock_client *c = NULL;
    int rc = dlock_open(b->url, &c);
    if (rc == DLOCK_OK) { /* a store may connect on first use */
        dlock_lock *l = NULL;
        rc = dlock_acquire(c, tag, 5000, 0, &l);
        if (rc == DLOCK_OK)
            dlock_release(l);
        dlock_close(c);
    }
    char message[600];
    snprintf(message, sizeof message, "%s", dlock_last_error());
    int expected = 0;
    for (int i = 0; i < b->expect_count; i++)
        expected |= rc == b->expect[i];
    ck_assert_msg(expected, "%s: got %s (%s)", b->what, dlock_strerror(rc), message);
    assert_no_secret(message, secrets, "dlock_last_error()", b->what);
    if (rc == DLOCK_OK)
        return; /* e.g. a server that does offer TLS: nothing failed */
    ck_assert_msg(strlen(message) > 10, "%s: no clear message: '%s'", b->what, message);

    char out[CLI_OUTPUT_MAX], marker[4400];
    char *dir = dlt_tmpdir();
    snprintf(marker, sizeof marker, "%s/job-ran", dir);
    const char *status_args[] = {"dlock", "status", "-u", b->url, tag, NULL};
    int st = run_cli(NULL, out, sizeof out, status_args);
    assert_no_secret(out, secrets, "dlock status", b->what);
    ck_assert_msg(st == cli_exit_for(rc), "%s: dlock status exit %d (API said %s): %s", b->what, st, dlock_strerror(rc),
                  out);
    ck_assert_msg(strstr(out, "dlock: ") && strlen(out) > 20, "%s: dlock status said: '%s'", b->what, out);

    /* DLOCK_URL, as a crontab would set it. */
    const char *run_args[] = {"dlock", "run", tag, "--", "touch", marker, NULL};
    st = run_cli(b->url, out, sizeof out, run_args);
    assert_no_secret(out, secrets, "dlock run", b->what);
    ck_assert_msg(st == cli_exit_for(rc), "%s: dlock run exit %d (API said %s): %s", b->what, st, dlock_strerror(rc),
                  out);
    ck_assert_msg(strstr(out, "dlock: ") && strlen(out) > 20, "%s: dlock run said: '%s'", b->what, out);
    ck_assert_msg(access(marker, F_OK) != 0, "%s: dlock run started the job", b->what);
    rmdir(dir);
    free(dir);
}

/* `tmpl` with each {field} replaced by its value. */
static void fill_template(char *out, size_t outlen, const char *tmpl, const char *const (*fields)[2], size_t nfields)
{
    size_t used = 0;
    out[0] = '\0';
    for (const char *c = tmpl; *c && used + 1 < outlen;) {
        size_t i = 0;
        while (i < nfields && strncmp(c, fields[i][0], strlen(fields[i][0])) != 0)
            i++;
        if (i < nfields) {
            used += (size_t)snprintf(out + used, outlen - used, "%s", fields[i][1]);
            c += strlen(fields[i][0]);
        } else {
            out[used++] = *c++;
            out[used] = '\0';
        }
    }
    ck_assert_msg(used + 1 < outlen, "a bad URL does not fit: %s", tmpl);
}

#define BAD(text, ...)                                              \
    do {                                                            \
        struct bad_url *b_ = &bad[count++];                         \
        int codes_[] = {__VA_ARGS__};                               \
        b_->what = (text);                                          \
        b_->expect_count = (int)(sizeof codes_ / sizeof codes_[0]); \
        memcpy(b_->expect, codes_, sizeof codes_);                  \
    } while (0)

START_TEST(no_password_in_any_message)
{
    if (!can(DLT_NETWORK))
        return; /* a file store's URL carries no secret */
    const struct dlt_store *store = dlt_store_of(url);
    struct url_parts p;
    ck_assert_msg(split_url(url, &p) == 0, "cannot split the test URL into its parts");
    const char *s = p.scheme, *u = p.user[0] ? p.user : "dlock", *h = p.host;
    const char *port = p.port[0] ? p.port : store->default_port;
    const char *db = p.database[0] ? p.database : store->url_path;
    char real_password[256];
    percent_decode(p.password, real_password, sizeof real_password);
    /* The fake password in both forms, its distinctive half alone, and the
     * test server's real password (if any) in both forms. */
    const char *secrets[] = {
        FAKE_PASSWORD, FAKE_PASSWORD_ENCODED, "Secret-42", "Secret%2D42", real_password, p.password, NULL};
    int unused_port = free_tcp_port();
    struct bad_url bad[24];
    int count = 0;

    BAD("wrong host", DLOCK_ECONN);
    snprintf(bad[count - 1].url, sizeof bad[0].url, "%s://%s:%s@host.invalid:%s/%s", s, u, FAKE_PASSWORD, port, db);
    BAD("wrong port", DLOCK_ECONN);
    snprintf(bad[count - 1].url, sizeof bad[0].url, "%s://%s:%s@%s:%d/%s", s, u, FAKE_PASSWORD, h, unused_port, db);
    BAD("wrong password or database", DLOCK_ECONN, DLOCK_EBACKEND);
    snprintf(bad[count - 1].url, sizeof bad[0].url, "%s://%s:%s@%s:%s/%s", s, u, FAKE_PASSWORD, h, port,
             store->missing_db ? store->missing_db : db);
    BAD("wrong user", DLOCK_ECONN, DLOCK_EBACKEND);
    snprintf(bad[count - 1].url, sizeof bad[0].url, "%s://nosuchuser_dlock:%s@%s:%s/%s", s, FAKE_PASSWORD, h, port, db);
    BAD("percent-encoded password, wrong port", DLOCK_ECONN);
    snprintf(bad[count - 1].url, sizeof bad[0].url, "%s://%s:%s@%s:%d/%s", s, u, FAKE_PASSWORD_ENCODED, h, unused_port,
             db);
    BAD("bad port number", DLOCK_EINVAL);
    snprintf(bad[count - 1].url, sizeof bad[0].url, "%s://%s:%s@%s:99999/%s", s, u, FAKE_PASSWORD, h, db);
    /* The store's own kinds of bad URL (tests/stores/). */
    char unused[16];
    snprintf(unused, sizeof unused, "%d", unused_port);
    const char *fields[][2] = {{"{scheme}", s}, {"{user}", u},     {"{secret}", FAKE_PASSWORD}, {"{host}", h},
                               {"{port}", port}, {"{db}", db},     {"{unused_port}", unused},   {"{password}", p.password}};
    for (const struct dlt_bad_url *t = store->bad_urls; t && t->what; t++) {
        if (strstr(t->url, "{password}") && !p.password[0])
            continue;
        ck_assert_int_lt(count, (int)(sizeof bad / sizeof bad[0]));
        struct bad_url *b = &bad[count++];
        b->what = t->what;
        ck_assert_int_le(t->expect_count, EXPECT_MAX);
        b->expect_count = t->expect_count;
        memcpy(b->expect, t->expect, sizeof b->expect);
        fill_template(b->url, sizeof b->url, t->url, fields, sizeof fields / sizeof fields[0]);
    }
    for (int i = 0; i < count; i++)
        check_bad_url(&bad[i], secrets);
}
END_TEST

/* --- SQLite: symbolic links ------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static int file_is(const char *path, const char *text)
{
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strcmp(buf, text) == 0;
}

/* A folder of the path is a symbolic link (dir/link -> dir/real).  What
 * happens is documented in docs/security.md: the open is refused, and no
 * lock data is ever written into the real folder. */
/* A folder reached through a symbolic link (a symlinked home, /var on
 * another disk) is followed: the database lives in the real folder.  Only a
 * link as the database file itself is refused (check_process). */
START_TEST(sqlite_symlinked_folder_is_followed)
{
    if (!can(DLT_LOCAL_FILE))
        return;
    char *dir = dlt_tmpdir();
    char real[4400], link_dir[4400], db_url[4500], real_db[4500];
    snprintf(real, sizeof real, "%s/real", dir);
    snprintf(link_dir, sizeof link_dir, "%s/link", dir);
    snprintf(real_db, sizeof real_db, "%s/locks.db", real);
    snprintf(db_url, sizeof db_url, "sqlite://%s/locks.db", link_dir);
    ck_assert_int_eq(mkdir(real, 0700), 0);
    ck_assert_int_eq(symlink(real, link_dir), 0);

    dlock_client *c = NULL;
    ck_assert_msg(dlock_open(db_url, &c) == DLOCK_OK, "%s", dlock_last_error());
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, tag, 5000, 0, &l), DLOCK_OK);
    /* The same lock through the real path. */
    char real_url[4600];
    snprintf(real_url, sizeof real_url, "sqlite://%s", real_db);
    dlock_client *via_real = NULL;
    dlock_lock *l2 = NULL;
    ck_assert_int_eq(dlock_open(real_url, &via_real), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(via_real, tag, 5000, 0, &l2), DLOCK_EBUSY);
    dlock_close(via_real);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
    struct stat st;
    ck_assert_int_eq(lstat(real_db, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    char out[CLI_OUTPUT_MAX];
    const char *status_args[] = {"dlock", "status", "-u", db_url, "n", NULL};
    int exit_status = run_cli(NULL, out, sizeof out, status_args);
    ck_assert_msg(exit_status == 1, "dlock status: exit %d: %s", exit_status, out);

    char cmd[9000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
}
END_TEST

/* Symbolic links planted where SQLite puts its -wal, -shm or -journal file,
 * pointing at a file that must not change. */
START_TEST(sqlite_planted_sidecar_links_are_not_followed)
{
    if (!can(DLT_LOCAL_FILE))
        return;
    const char *suffixes[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char *dir = dlt_tmpdir();
        char target[4400], db[4400], sidecar[4500], db_url[4500];
        snprintf(target, sizeof target, "%s/precious", dir);
        snprintf(db, sizeof db, "%s/locks.db", dir);
        snprintf(sidecar, sizeof sidecar, "%s%s", db, suffixes[i]);
        snprintf(db_url, sizeof db_url, "sqlite://%s", db);
        write_file(target, "precious\n");
        ck_assert_int_eq(symlink(target, sidecar), 0);

        dlock_client *c = NULL;
        int rc = dlock_open(db_url, &c);
        if (rc == DLOCK_OK) {
            dlock_lock *l = NULL;
            rc = dlock_acquire(c, tag, 5000, 0, &l);
            if (rc == DLOCK_OK)
                ck_assert_int_eq(dlock_release(l), DLOCK_OK);
            dlock_close(c);
        }
        ck_assert_msg(rc == DLOCK_OK || rc == DLOCK_ECONN || rc == DLOCK_EINVAL || rc == DLOCK_EBACKEND, "%s: %s (%s)",
                      suffixes[i], dlock_strerror(rc), dlock_last_error());
        ck_assert_msg(file_is(target, "precious\n"), "%s: the file behind the link was written", suffixes[i]);
        char cmd[9000];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        dlt_system(cmd);
        free(dir);
    }
}
END_TEST

/* --- odd sizes and buffers ------------------------------------------------------------ */

START_TEST(odd_urls_and_buffers)
{
    /* A huge URL of this scheme: refused or unreachable, never a crash. */
    size_t big = 100000;
    char *huge = malloc(big + 64);
    ck_assert_ptr_nonnull(huge);
    const char *colon = strchr(url, ':');
    size_t scheme_len = (size_t)(colon - url);
    memcpy(huge, url, scheme_len);
    strcpy(huge + scheme_len, "://");
    memset(huge + scheme_len + 3, 'h', big);
    strcpy(huge + scheme_len + 3 + big, "/x");
    dlock_client *c = NULL;
    int rc = dlock_open(huge, &c);
    if (rc == DLOCK_OK)
        dlock_close(c);
    ck_assert_msg(rc == DLOCK_EINVAL || rc == DLOCK_ECONN, "a 100 kB URL: %s (%s)", dlock_strerror(rc),
                  dlock_last_error());
    free(huge);
    /* An escaped NUL would cut the URL short behind the parser's back. */
    char *dir = dlt_tmpdir();
    char nul_url[4600], cut[4600];
    snprintf(nul_url, sizeof nul_url, "%.*s://x%%00y/db", (int)scheme_len, url);
    if (can(DLT_LOCAL_FILE))
        snprintf(nul_url, sizeof nul_url, "sqlite://%s/x%%00y.db", dir);
    snprintf(cut, sizeof cut, "%s/x", dir);
    rc = dlock_open(nul_url, &c);
    if (rc == DLOCK_OK)
        dlock_close(c);
    ck_assert_msg(rc == DLOCK_EINVAL || rc == DLOCK_ECONN, "%%00: %s (%s)", dlock_strerror(rc), dlock_last_error());
    ck_assert_int_ne(access(cut, F_OK), 0);
    rmdir(dir);
    free(dir);

    /* dlock_holder with tiny buffers: NUL-terminated, never overrun. */
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(client, tag, 30000, 0, &l), DLOCK_OK);
    char buf[8];
    memset(buf, 'Z', sizeof buf);
    ck_assert_int_eq(dlock_holder(other, tag, buf, 1), 1);
    ck_assert_int_eq(buf[0], '\0');
    ck_assert_int_eq(buf[1], 'Z');
    memset(buf, 'Z', sizeof buf);
    ck_assert_int_eq(dlock_holder(other, tag, buf, 4), 1);
    ck_assert_int_eq(buf[3], '\0');
    ck_assert_int_eq(buf[4], 'Z');
    ck_assert_int_eq(dlock_holder(other, tag, NULL, 0), 1);
    ck_assert_int_eq(dlock_holder(other, tag, NULL, 5), DLOCK_EINVAL);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
}
END_TEST

/* A URL longer than any buffer of dlock(1) is used whole, never cut: what a
 * cut would drop -- here a trailing option that must make the open fail --
 * would silently not apply (think sslmode=require). */
START_TEST(long_url_is_not_cut)
{
    /* The cut is dlock(1)'s, whatever the store; an option that takes any
     * padding (PostgreSQL's application_name) and a bad one after it: a cut
     * tail is the only way the open can succeed. */
    const struct dlt_store *store = dlt_store_of(url);
    if (!store->padding_option || !store->padding_bad_tail)
        return;
    const char *bad_tail = store->padding_bad_tail;
    const char *pad_key = store->padding_option;
    size_t pad = 8000;
    char *long_url = malloc(strlen(url) + pad + 128);
    ck_assert_ptr_nonnull(long_url);
    int used = sprintf(long_url, "%s%c%s", url, strchr(url, '?') ? '&' : '?', pad_key);
    memset(long_url + used, 'a', pad);
    sprintf(long_url + used + pad, "&%s", bad_tail);
    char out[CLI_OUTPUT_MAX];
    const char *status_args[] = {"dlock", "status", "-u", long_url, tag, NULL};
    int st = run_cli(NULL, out, sizeof out, status_args);
    ck_assert_msg(st == 64 || st == 69 || st == 70,
                  "dlock status with an 8 kB URL: exit %d (the tail was cut?): %.300s", st, out);
    const char *run_args[] = {"dlock", "run", tag, "--", "true", NULL};
    st = run_cli(long_url, out, sizeof out, run_args);
    ck_assert_msg(st == 64 || st == 69 || st == 70, "dlock run with an 8 kB DLOCK_URL: exit %d: %.300s", st, out);
    free(long_url);
}
END_TEST

static Suite *hostile_suite(void)
{
    static char title[64]; /* Check keeps the pointer */
    snprintf(title, sizeof title, "hostile[%s]", backend);
    Suite *s = suite_create(title);
    TCase *t = tcase_create("names");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, hostile_names_are_just_names);
    tcase_add_test(t, look_alike_names_never_conflict);
    tcase_add_test(t, sql_never_runs);
    tcase_add_test(t, limit_is_255_bytes_of_utf8);
    tcase_add_test(t, invalid_utf8_is_einval_everywhere);
    tcase_add_test(t, odd_urls_and_buffers);
    suite_add_tcase(s, t);
    t = tcase_create("secrets");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 180);
    tcase_add_test(t, no_password_in_any_message);
    tcase_add_test(t, long_url_is_not_cut);
    suite_add_tcase(s, t);
    t = tcase_create("files");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, sqlite_symlinked_folder_is_followed);
    tcase_add_test(t, sqlite_planted_sidecar_links_are_not_followed);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    dlock_bin = getenv("DLOCK_BIN");
    if (!dlock_bin || !*dlock_bin)
        dlock_bin = "./dlock";
    if (access(dlock_bin, X_OK) != 0) {
        fprintf(stderr, "hostile: no dlock command at %s (set DLOCK_BIN)\n", dlock_bin);
        return DLT_HARD_ERROR;
    }
    int failed = dlt_run_per_url("hostile", hostile_suite, &url, &backend);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
