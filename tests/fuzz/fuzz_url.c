/*
 * libFuzzer harness: URL handling of the core and of the SQLite backend.
 *
 *  - dlock__url_scheme() against a reference of RFC 3986's
 *    scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), followed by ':';
 *  - dlock__percent_decode() against a reference decoder (every '%' takes two
 *    hex digits, %00 is refused);
 *  - dlock_open() on sqlite: URLs, but only those whose path is one plain
 *    file name, so that everything it creates stays in the harness's own
 *    temporary folder (the working directory), which is emptied after each
 *    input.  It must answer DLOCK_OK, DLOCK_EINVAL or DLOCK_ECONN, create
 *    exactly the decoded file name on success, and refuse query strings;
 *  - the PostgreSQL backend's URL handling (backends/postgresql/url.c, no libpq):
 *    dlock__pg_url_prepare() must refuse what is not "scheme://...", and
 *    otherwise lower-case the scheme and leave at most one '@' in the
 *    authority (each other one becomes %40, nothing else changes); the
 *    password libpq would read from the result, raw or decoded, must never
 *    come out of dlock__pg_scrub_parse_error() or dlock__pg_clean_text().
 */
#include <ctype.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"
#include "internal.h"
#ifdef HAVE_POSTGRESQL
#include "../../backends/postgresql/url.h"
#endif

#define fail(what, text) fuzz_fail("fuzz_url", what, text)

/* Length of the scheme (without ':'), or 0 when the URL has none. */
static size_t reference_scheme_length(const char *url)
{
    static const char alpha[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    static const char rest[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.";
    if (!url[0] || !strchr(alpha, url[0]))
        return 0;
    size_t n = 1 + strspn(url + 1, rest);
    return url[n] == ':' ? n : 0;
}

/* -1: malformed; else the decoded length, written to out (len + 1 bytes). */
static long reference_decode(const char *src, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] != '%') {
            out[o++] = src[i];
            continue;
        }
        if (len - i < 3)
            return -1;
        const char *h = src[i + 1] ? strchr(hex, tolower((unsigned char)src[i + 1])) : NULL;
        const char *l = src[i + 2] ? strchr(hex, tolower((unsigned char)src[i + 2])) : NULL;
        if (!h || !l)
            return -1;
        int value = (int)(h - hex) * 16 + (int)(l - hex);
        if (value == 0)
            return -1;
        out[o++] = (char)value;
        i += 2;
    }
    out[o] = '\0';
    return (long)o;
}

static char sandbox[4096];

static void remove_sandbox(void)
{
    rmdir(sandbox);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = getenv("TMPDIR");
    snprintf(sandbox, sizeof sandbox, "%s/dlock-fuzz-url-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(sandbox) || chdir(sandbox) != 0) {
        perror("fuzz_url: sandbox");
        exit(1);
    }
    atexit(remove_sandbox);
    return 0;
}

static void empty_sandbox(void)
{
    DIR *d = opendir(".");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(e->d_name);
    closedir(d);
}

static void check_sqlite_open(const char *url, size_t scheme_len)
{
    const char *rest = url + scheme_len + 1;
    if (strncmp(rest, "//", 2) == 0)
        return; /* sqlite:///absolute/path: could be anywhere; not fuzzed */
    size_t path_len = strcspn(rest, "?#");
    char *decoded = malloc(path_len + 1);
    if (!decoded)
        return;
    long n = reference_decode(rest, path_len, decoded);
    /* Only one plain file name, in the sandbox. */
    int plain = n > 0 && !strchr(decoded, '/') && strcmp(decoded, ".") != 0 && strcmp(decoded, "..") != 0;
    if (plain) {
        dlock_client *c = NULL;
        int rc = dlock_open(url, &c);
        if (rc != DLOCK_OK && rc != DLOCK_EINVAL && rc != DLOCK_ECONN)
            fail("dlock_open answered an unexpected status", url);
        if (rest[path_len] && rc != DLOCK_EINVAL)
            fail("a query string or fragment was not refused", url);
        if (rc != DLOCK_OK && !dlock_last_error()[0])
            fail("dlock_open failed without a message", url);
        if (rc == DLOCK_OK) {
            struct stat st;
            if (lstat(decoded, &st) != 0 || !S_ISREG(st.st_mode))
                fail("dlock_open succeeded but the decoded file is not there", url);
            if ((st.st_mode & 0077) != 0)
                fail("the new database file is readable by others", url);
            if (strcmp(dlock_backend(c), "sqlite") != 0)
                fail("not the sqlite backend", url);
            dlock_close(c);
        }
        empty_sandbox();
    }
    free(decoded);
}

#ifdef HAVE_POSTGRESQL
/* A message quoting `secret` must not show it, whether libpq quoted it in a
 * malformed-URL message or put it in any other text.  Secrets that the
 * replacements themselves could spell ("...", "***", a collapsed space)
 * are not checked. */
static void check_pg_secret_hidden(const char *url, const char *secret)
{
    if (!secret[0] || strpbrk(secret, "\".* \t\r\n"))
        return;
    size_t len = strlen(secret);
    char *text = malloc(len + 3), out[PG_ERRTEXT_MAX];
    if (!text)
        return;
    snprintf(text, len + 3, "\"%s\"", secret);
    dlock__pg_scrub_parse_error(out, sizeof out, text, url);
    if (strstr(out, secret))
        fail("scrub_parse_error showed the password", url);
    dlock__pg_clean_text(out, sizeof out, text, secret);
    if (strstr(out, secret))
        fail("clean_text showed the password", url);
    free(text);
}

static void check_pg_url(const char *url)
{
    char *prepared = NULL;
    dlock__clear_error();
    int rc = dlock__pg_url_prepare(url, &prepared);
    const char *colon = strchr(url, ':');
    int shaped = colon && strncmp(colon, "://", 3) == 0;
    if (!shaped) {
        if (rc != DLOCK_EINVAL || !dlock_last_error()[0])
            fail("a PostgreSQL URL without :// was not refused", url);
        return;
    }
    if (rc != DLOCK_OK)
        fail("a PostgreSQL URL with :// was refused", url);
    size_t scheme_len = (size_t)(colon - url), ats = 0;
    for (size_t i = 0; i < scheme_len; i++)
        if (prepared[i] != (char)tolower((unsigned char)url[i]))
            fail("the scheme was not lower-cased", url);
    const char *authority = prepared + scheme_len + 3;
    size_t authority_len = strcspn(authority, "/?#");
    const char *at = NULL;
    for (const char *p = authority; p < authority + authority_len; p++)
        if (*p == '@')
            ats++, at = p;
    if (ats > 1)
        fail("more than one '@' left in the authority", url);
    if (strcmp(prepared + scheme_len, url + scheme_len) != 0 && !strstr(prepared, "%40"))
        fail("the URL changed beyond its scheme without an encoded '@'", url);
    /* The password libpq reads: the userinfo after its first ':'. */
    const char *pw = at ? memchr(authority, ':', (size_t)(at - authority)) : NULL;
    if (pw) {
        char *raw = strndup(pw + 1, (size_t)(at - pw - 1)), *decoded = NULL;
        if (raw) {
            check_pg_secret_hidden(prepared, raw);
            if (dlock__percent_decode(raw, strlen(raw), &decoded) == DLOCK_OK)
                check_pg_secret_hidden(prepared, decoded);
        }
        free(decoded);
        free(raw);
    }
    free(prepared);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = malloc(size + 1);
    if (!url)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    size_t len = strlen(url);

    /* The scheme, with a roomy buffer and with a tight one. */
    char scheme[32], tight[5];
    dlock__clear_error();
    int rc = dlock__url_scheme(url, scheme, sizeof scheme);
    size_t want = reference_scheme_length(url);
    if (want == 0 && rc == DLOCK_OK)
        fail("a scheme was found where there is none", url);
    if (want > 0 && want < sizeof scheme && rc != DLOCK_OK)
        fail("a valid scheme was refused", url);
    if (rc == DLOCK_OK) {
        if (strlen(scheme) != want)
            fail("the scheme has the wrong length", url);
        for (size_t i = 0; i < want; i++)
            if (scheme[i] != (char)tolower((unsigned char)url[i]))
                fail("the scheme is not the lower-cased prefix", url);
    } else if (rc != DLOCK_EINVAL || !dlock_last_error()[0]) {
        fail("a bad scheme is not EINVAL with a message", url);
    }
    rc = dlock__url_scheme(url, tight, sizeof tight);
    if ((rc == DLOCK_OK) != (want > 0 && want < sizeof tight))
        fail("the tight buffer was handled wrongly", url);

    /* Percent-decoding of the whole text. */
    char *expected = malloc(len + 1);
    char *decoded = NULL;
    if (expected) {
        long n = reference_decode(url, len, expected);
        rc = dlock__percent_decode(url, len, &decoded);
        if (n < 0 && rc != DLOCK_EINVAL)
            fail("a malformed escape was accepted", url);
        if (n >= 0 && rc != DLOCK_OK)
            fail("a good text was refused by percent-decoding", url);
        if (rc == DLOCK_OK && (strlen(decoded) != (size_t)n || memcmp(decoded, expected, (size_t)n) != 0))
            fail("percent-decoding differs from the reference", url);
        free(decoded);
        free(expected);
    }

    if (dlock__url_scheme(url, scheme, sizeof scheme) == DLOCK_OK && strcmp(scheme, "sqlite") == 0)
        check_sqlite_open(url, want);
#ifdef HAVE_POSTGRESQL
    if (dlock__url_scheme(url, scheme, sizeof scheme) == DLOCK_OK &&
        (strcmp(scheme, "postgresql") == 0 || strcmp(scheme, "postgres") == 0))
        check_pg_url(url);
#endif
    free(url);
    return 0;
}
