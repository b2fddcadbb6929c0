/*
 * libFuzzer harness: the MySQL backend's URL parser and lock-name mapping
 * (backends/mysql/url.c), built without the client library.
 *
 * The first input byte picks what the rest is:
 *   even: a whole URL, parsed as is;
 *   odd:  what follows "mysql://u:Zebra-Secret-42@" -- the password (that,
 *         plus whatever an unencoded '@' in the rest adds to it) then must
 *         never appear in the error text;
 *   3:    what follows "mysql://u:Zebra" -- the head of a password that the
 *         rest may go on with ('?', '/', '=', '&' typed unencoded); no
 *         reading of where it ends may leak: an unknown option's name
 *         quoted in the error text, if 4 or more characters, occurs
 *         nowhere between "u:" and the last '@' of the URL.
 * Every input is also mapped as a lock name.  Properties:
 *   - parse: DLOCK_OK or DLOCK_EINVAL with a message; on failure nothing is
 *     left to free; on success a host or a socket, a port <= 65535, a socket
 *     only with "localhost"; the same input parses the same way twice;
 *   - name: at most 64 characters of [a-z0-9-_.:/#], the returned length;
 *     the name itself when it is 1..64 bytes of [a-z0-9-_.:/], otherwise
 *     "dlock#" + the first 58 hex digits of SHA-256(name), checked against
 *     OpenSSL; deterministic; distinct names never share a server name (checked
 *     against the names seen before, 8192 slots).
 */
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"
#include "mysql/url.h" /* backends/: pure, no client library */

#define fail(what, text) fuzz_fail("fuzz_mysql", what, text)

static int same_url(const struct dlock_mysql_url *a, const struct dlock_mysql_url *b)
{
    return fuzz_same_text(a->user, b->user) && fuzz_same_text(a->password, b->password) && fuzz_same_text(a->host, b->host) &&
           a->port == b->port && fuzz_same_text(a->database, b->database) && fuzz_same_text(a->socket, b->socket) &&
           a->ssl_mode == b->ssl_mode && fuzz_same_text(a->ssl_ca, b->ssl_ca) && fuzz_same_text(a->ssl_capath, b->ssl_capath) &&
           fuzz_same_text(a->ssl_cert, b->ssl_cert) && fuzz_same_text(a->ssl_key, b->ssl_key) &&
           a->connect_timeout_s == b->connect_timeout_s && a->flush_check_off == b->flush_check_off;
}

static int all_empty(const struct dlock_mysql_url *u)
{
    static const struct dlock_mysql_url zero;
    return memcmp(u, &zero, sizeof zero) == 0;
}

/* The password as written in "mysql://u:<password>@host...": up to the last
 * '@' before the first '/' (an unencoded '@' or '?' belongs to it). */
static char *written_password(const char *url)
{
    const char *start = url + strlen("mysql://u:");
    size_t authority = strcspn(start, "/");
    const char *at = NULL;
    for (const char *p = start; p < start + authority; p++)
        if (*p == '@')
            at = p;
    size_t len = at ? (size_t)(at - start) : strlen(FUZZ_SECRET);
    char *password = malloc(len + 1);
    if (password) {
        memcpy(password, start, len);
        password[len] = '\0';
    }
    return password;
}

/* Mode 3: the only text of the URL that an error quotes (an unknown
 * option's name) is no piece of the password, however far it goes (up to
 * the last '@'). */
static void check_no_piece_quoted(const char *url)
{
    const char *quoted = strstr(dlock_last_error(), "unknown option '");
    const char *start = url + strlen("mysql://u:");
    const char *last_at = strrchr(start, '@');
    if (!quoted || !last_at)
        return;
    quoted += strlen("unknown option '");
    const char *close = strchr(quoted, '\'');
    size_t n = close ? (size_t)(close - quoted) : strlen(quoted);
    size_t secret_len = (size_t)(last_at - start);
    for (size_t i = 0; n >= 4 && i + n <= secret_len; i++)
        if (memcmp(start + i, quoted, n) == 0)
            fail("parse: a piece of the password is quoted in the error text", url);
}

static void check_parse(const char *url, int with_secret)
{
    struct dlock_mysql_url parsed, again;
    dlock__clear_error();
    int rc = dlock__mysql_parse_url(url, &parsed);
    if (rc != DLOCK_OK && rc != DLOCK_EINVAL)
        fail("parse: a status other than OK or EINVAL", url);
    if (with_secret == 3) {
        check_no_piece_quoted(url);
        if (rc == DLOCK_OK)
            dlock__mysql_url_free(&parsed);
        return;
    }
    if (with_secret) {
        char *password = written_password(url);
        if (password && strstr(dlock_last_error(), password))
            fail("parse: the password is in the error text", url);
        free(password);
    }
    if (rc != DLOCK_OK) {
        if (!all_empty(&parsed))
            fail("parse: failed but left something in the result", url);
        if (strlen(dlock_last_error()) < 10)
            fail("parse: failed without a message", url);
        return;
    }
    if (!parsed.host && !parsed.socket)
        fail("parse: neither host nor socket", url);
    if (parsed.host && parsed.socket && strcmp(parsed.host, "localhost") != 0)
        fail("parse: a socket with a host other than localhost", url);
    if (parsed.port > 65535 || parsed.connect_timeout_s > 3600 || parsed.ssl_mode > DLOCK_MYSQL_SSL_VERIFY_IDENTITY)
        fail("parse: a number out of range", url);
    if (with_secret && (!parsed.user || strcmp(parsed.user, "u") != 0 || !parsed.password ||
                        strncmp(parsed.password, FUZZ_SECRET, strlen(FUZZ_SECRET)) != 0))
        fail("parse: the user or password is not the one in front", url);
    if (dlock__mysql_parse_url(url, &again) != DLOCK_OK || !same_url(&parsed, &again))
        fail("parse: not deterministic", url);
    dlock__mysql_url_free(&again);
    dlock__mysql_url_free(&parsed);
    if (!all_empty(&parsed))
        fail("parse: free left something behind", url);
}

/* Names seen, by a hash of their server name: the same server name always
 * lands in the same slot, so a clash with a remembered name is found. */
#define REMEMBERED 8192
static struct {
    char name[256];
    char server[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
} seen[REMEMBERED];

static size_t slot_of(const char *server)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)server; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % REMEMBERED;
}

static int verbatim_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("-_.:/", c) != NULL);
}

static void check_lock_name(const char *name)
{
    char out[DLOCK_MYSQL_LOCK_NAME_MAX + 1 + 16], again[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    memset(out, 'Z', sizeof out);
    size_t len = strlen(name);
    int n = dlock__mysql_lock_name(name, out, DLOCK_MYSQL_LOCK_NAME_MAX + 1);
    if (n < 0 || n > DLOCK_MYSQL_LOCK_NAME_MAX || strlen(out) != (size_t)n)
        fail("name: bad length", name);
    if (out[DLOCK_MYSQL_LOCK_NAME_MAX + 1] != 'Z')
        fail("name: wrote past the buffer", name);
    for (int i = 0; i < n; i++)
        if (!verbatim_byte((unsigned char)out[i]) && out[i] != '#')
            fail("name: a character the server could fold", name);
    int verbatim = len >= 1 && len <= DLOCK_MYSQL_LOCK_NAME_MAX;
    for (size_t i = 0; verbatim && i < len; i++)
        verbatim = verbatim_byte((unsigned char)name[i]);
    if (verbatim) {
        if (strcmp(out, name) != 0)
            fail("name: a plain name was not kept as it is", name);
    } else {
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)name, len, digest);
        char expected[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
        int used = snprintf(expected, sizeof expected, "%s", DLOCK_MYSQL_DIGEST_PREFIX);
        for (int i = 0; used < DLOCK_MYSQL_LOCK_NAME_MAX; i++)
            used += snprintf(expected + used, sizeof expected - (size_t)used, "%02x", digest[i]);
        expected[DLOCK_MYSQL_LOCK_NAME_MAX] = '\0';
        if (strcmp(out, expected) != 0)
            fail("name: the digest form differs from SHA-256 (OpenSSL)", name);
    }
    if (dlock__mysql_lock_name(name, again, sizeof again) != n || strcmp(again, out) != 0)
        fail("name: not deterministic", name);
    if (dlock__mysql_lock_name(name, again, DLOCK_MYSQL_LOCK_NAME_MAX) != -1)
        fail("name: a too small buffer was not refused", name);
    if (len >= sizeof seen[0].name)
        return;
    size_t slot = slot_of(out);
    if (strcmp(seen[slot].server, out) == 0 && strcmp(seen[slot].name, name) != 0)
        fail("name: two different names share a server name", name);
    memcpy(seen[slot].name, name, len + 1);
    memcpy(seen[slot].server, out, (size_t)n + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int with_secret = data[0] == 3 ? 3 : data[0] & 1;
    const char *prefix = with_secret == 3 ? "mysql://u:Zebra" : with_secret ? "mysql://u:" FUZZ_SECRET "@" : "";
    size_t prefix_len = strlen(prefix);
    char *text = malloc(prefix_len + size);
    if (!text)
        return 0;
    memcpy(text, prefix, prefix_len);
    memcpy(text + prefix_len, data + 1, size - 1);
    text[prefix_len + size - 1] = '\0';
    check_parse(text, with_secret);
    check_lock_name(text + prefix_len);
    free(text);
    return 0;
}
