/*
 * MySQL / MariaDB URLs and lock names (see mysql_url.h): pure code that
 * needs no client library.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "url.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */
/* URL parsing                                                              */
/* ------------------------------------------------------------------------ */

static int url_error(struct dlock_mysql_url *out, int status, const char *what)
{
    dlock__mysql_url_free(out);
    return dlock__error(status, "malformed mysql URL: %s", what);
}

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int ascii_ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Option names compare case-insensitively, with '_' and '-' alike. */
static int option_is(const char *key, size_t keylen, const char *name)
{
    size_t nlen = strlen(name);
    if (keylen != nlen)
        return 0;
    for (size_t i = 0; i < keylen; i++) {
        int k = ascii_lower((unsigned char)key[i]);
        if (k == '_')
            k = '-';
        if (k != name[i])
            return 0;
    }
    return 1;
}

static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* Decode src[0..len) into *slot (replacing what was there). */
static int decode_into(char **slot, const char *src, size_t len)
{
    char *value = NULL;
    int rc = dlock__percent_decode(src, len, &value);
    if (rc != DLOCK_OK)
        return rc;
    free(*slot);
    *slot = value;
    return DLOCK_OK;
}

static int parse_ssl_mode(const char *v, size_t len, enum dlock_mysql_ssl_mode *out)
{
    static const struct {
        const char *name;
        enum dlock_mysql_ssl_mode mode;
    } modes[] = {
        {"disabled", DLOCK_MYSQL_SSL_DISABLED},
        {"preferred", DLOCK_MYSQL_SSL_PREFERRED},
        {"required", DLOCK_MYSQL_SSL_REQUIRED},
        {"verify_ca", DLOCK_MYSQL_SSL_VERIFY_CA},
        {"verify-ca", DLOCK_MYSQL_SSL_VERIFY_CA},
        {"verify_identity", DLOCK_MYSQL_SSL_VERIFY_IDENTITY},
        {"verify-identity", DLOCK_MYSQL_SSL_VERIFY_IDENTITY},
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        if (ascii_ieq(v, len, modes[i].name)) {
            *out = modes[i].mode;
            return 0;
        }
    }
    return -1;
}

/* A failed decode: out of memory, or a bad escape in `where`. */
static int decode_error(struct dlock_mysql_url *out, int rc, const char *where)
{
    char what[80];
    if (rc == DLOCK_ENOMEM) {
        dlock__mysql_url_free(out);
        return dlock__oom();
    }
    snprintf(what, sizeof what, "bad percent-escape in %s", where);
    return url_error(out, DLOCK_EINVAL, what);
}

/* Whether `shown`, the text at `where` in `url`, could be (part of) the
 * password under any reading of the URL: it overlaps the parsed password,
 * it starts before the last '@' of the URL (a password with an unencoded '/'
 * or '?' in it ends there), it has a quote in it, or any 4 bytes of it
 * occur before that '@'. */
static int could_be_secret(const char *shown, const char *where, const char *url, const struct dlock_mysql_url *out)
{
    if (out->password && out->password[0] && (strstr(shown, out->password) || strstr(out->password, shown)))
        return 1;
    if (strchr(shown, '\''))
        return 1;
    const char *last_at = strrchr(url, '@');
    if (!last_at || !shown[0])
        return 0;
    if (where < last_at)
        return 1;
    size_t n = strlen(shown), w = n < 4 ? n : 4;
    for (size_t i = 0; i + w <= n; i++)
        for (const char *p = url; p + w <= last_at; p++)
            if (memcmp(p, shown + i, w) == 0)
                return 1;
    return 0;
}

static int unknown_option(struct dlock_mysql_url *out, const char *url, const char *q, size_t keylen)
{
    char key[40];
    size_t shown = keylen < sizeof key - 1 ? keylen : sizeof key - 1;
    memcpy(key, q, shown);
    key[shown] = '\0';
    /* Never echo what could be the password typed in the wrong place. */
    if (could_be_secret(key, q, url, out))
        snprintf(key, sizeof key, "(not shown)");
    dlock__mysql_url_free(out);
    return dlock__error(DLOCK_EINVAL,
                        "malformed mysql URL: unknown option '%s' (known: socket, "
                        "ssl-mode, ssl-ca, ssl-capath, ssl-cert, ssl-key, "
                        "connect-timeout, flush-check)",
                        key);
}

/* The option q[0..keylen) = val[0..vlen). */
static int parse_option(const char *url, const char *q, size_t keylen, const char *val, size_t vlen,
                        struct dlock_mysql_url *out)
{
    const struct {
        const char *name;
        char **slot;
    } paths[] = {
        {"ssl-ca", &out->ssl_ca},
        {"ssl-capath", &out->ssl_capath},
        {"ssl-cert", &out->ssl_cert},
        {"ssl-key", &out->ssl_key},
    };
    int rc = DLOCK_OK;
    if (option_is(q, keylen, "socket")) {
        rc = decode_into(&out->socket, val, vlen);
        if (rc == DLOCK_OK && out->socket[0] == '\0')
            return url_error(out, DLOCK_EINVAL, "empty socket path");
    } else if (option_is(q, keylen, "ssl-mode") || option_is(q, keylen, "sslmode")) {
        char *mode = NULL;
        rc = dlock__percent_decode(val, vlen, &mode);
        if (rc == DLOCK_OK) {
            int bad = parse_ssl_mode(mode, strlen(mode), &out->ssl_mode);
            free(mode);
            if (bad)
                return url_error(out, DLOCK_EINVAL,
                                 "ssl-mode must be DISABLED, PREFERRED, REQUIRED, "
                                 "VERIFY_CA or VERIFY_IDENTITY");
        }
    } else if (option_is(q, keylen, "flush-check")) {
        if (ascii_ieq(val, vlen, "off"))
            out->flush_check_off = 1;
        else if (ascii_ieq(val, vlen, "on"))
            out->flush_check_off = 0;
        else
            return url_error(out, DLOCK_EINVAL, "flush-check must be on or off");
    } else if (option_is(q, keylen, "connect-timeout")) {
        unsigned long secs;
        if (parse_uint(val, vlen, 3600, &secs) || secs == 0)
            return url_error(out, DLOCK_EINVAL, "connect-timeout must be whole seconds from 1 to 3600");
        out->connect_timeout_s = (unsigned int)secs;
    } else {
        size_t i = 0;
        while (i < sizeof paths / sizeof paths[0] && !option_is(q, keylen, paths[i].name))
            i++;
        if (i == sizeof paths / sizeof paths[0])
            return unknown_option(out, url, q, keylen);
        rc = decode_into(paths[i].slot, val, vlen);
    }
    return rc == DLOCK_OK ? DLOCK_OK : decode_error(out, rc, "an option");
}

static int parse_query(const char *url, const char *q, struct dlock_mysql_url *out)
{
    while (*q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        if (len > 0) { /* tolerate "a=1&&b=2" and a trailing '&' */
            const char *eq = memchr(q, '=', len);
            if (!eq)
                return url_error(out, DLOCK_EINVAL, "query option without '='");
            size_t keylen = (size_t)(eq - q);
            int rc = parse_option(url, q, keylen, eq + 1, len - keylen - 1, out);
            if (rc != DLOCK_OK)
                return rc; /* out already freed, error text set */
        }
        if (!end)
            break;
        q = end + 1;
    }
    return DLOCK_OK;
}

/* user[:password]@ at the start of `authority`: up to the last '@' before
 * the path (the first '/'), read before the query, so that a '?' or an '@'
 * typed unencoded in the password stays in it (they should be %3F and %40,
 * but a user who forgot must never see a piece of the password quoted back
 * as an "unknown option").  *hostport_at: where the host starts. */
static int parse_userinfo(const char *authority, struct dlock_mysql_url *out, const char **hostport_at)
{
    size_t len = strcspn(authority, "/");
    const char *at = NULL;
    for (const char *p = authority; p < authority + len; p++)
        if (*p == '@')
            at = p;
    *hostport_at = at ? at + 1 : authority;
    if (!at)
        return DLOCK_OK;
    const char *colon = memchr(authority, ':', (size_t)(at - authority));
    size_t user_len = colon ? (size_t)(colon - authority) : (size_t)(at - authority);
    int rc = DLOCK_OK;
    if (user_len > 0)
        rc = decode_into(&out->user, authority, user_len);
    if (rc == DLOCK_OK && colon)
        rc = decode_into(&out->password, colon + 1, (size_t)(at - colon - 1));
    return rc == DLOCK_OK ? DLOCK_OK : decode_error(out, rc, "the user or password");
}

/* What a bad port most often is: a password with a raw '/' in it (the
 * authority ends at the first '/', so "u:pa/ss@host" reads as host "u",
 * port "pa").  `later_at`: an '@' after the authority. */
#define PASSWORD_HINT "; if the password has '/' or '#' in it, percent-encode them (%2F, %23)"

/* host[:port] or [v6]:port, hostport[0..len). */
static int parse_hostport(const char *hostport, size_t len, int later_at, struct dlock_mysql_url *out)
{
    const char *host = hostport, *port_text = NULL;
    size_t host_len, port_len = 0;
    if (len > 0 && hostport[0] == '[') {
        const char *close = memchr(hostport, ']', len);
        if (!close)
            return url_error(out, DLOCK_EINVAL, "unterminated '[' in the host");
        host = hostport + 1;
        host_len = (size_t)(close - host);
        if (host_len == 0)
            return url_error(out, DLOCK_EINVAL, "empty IPv6 address");
        const char *tail = close + 1;
        size_t tail_len = (size_t)(hostport + len - tail);
        if (tail_len > 0 && tail[0] != ':')
            return url_error(out, DLOCK_EINVAL, "junk after ']' in the host");
        if (tail_len > 0) {
            port_text = tail + 1;
            port_len = tail_len - 1;
        }
    } else {
        const char *colon = memchr(hostport, ':', len);
        host_len = colon ? (size_t)(colon - hostport) : len;
        if (colon) {
            port_text = colon + 1;
            port_len = (size_t)(hostport + len - port_text);
        }
    }
    if (port_text) {
        unsigned long port;
        if (parse_uint(port_text, port_len, 65535, &port) || port == 0)
            return url_error(out, DLOCK_EINVAL,
                             later_at ? "the port must be a number from 1 to 65535" PASSWORD_HINT
                                      : "the port must be a number from 1 to 65535");
        out->port = (unsigned int)port;
    }
    int rc = host_len > 0 ? decode_into(&out->host, host, host_len) : DLOCK_OK;
    return rc == DLOCK_OK ? DLOCK_OK : decode_error(out, rc, "the host");
}

/* "/database" at *after, if any; moves *after past it. */
static int parse_database(const char **after, struct dlock_mysql_url *out)
{
    if (**after != '/')
        return DLOCK_OK;
    const char *db = *after + 1;
    size_t db_len = strcspn(db, "?");
    if (memchr(db, '/', db_len))
        return url_error(out, DLOCK_EINVAL, "the path must be a single database name");
    *after = db + db_len;
    int rc = db_len > 0 ? decode_into(&out->database, db, db_len) : DLOCK_OK;
    return rc == DLOCK_OK ? DLOCK_OK : decode_error(out, rc, "the database");
}

/* The scheme, and no fragment, spaces or control characters.  Returns
 * where the authority starts, or NULL (error text set, out freed). */
static const char *check_url(const char *url, struct dlock_mysql_url *out)
{
    const char *sep = strstr(url, "://");
    if (!sep || !(ascii_ieq(url, (size_t)(sep - url), "mysql") || ascii_ieq(url, (size_t)(sep - url), "mariadb"))) {
        url_error(out, DLOCK_EINVAL, "expected mysql:// or mariadb://");
        return NULL;
    }
    const char *rest = sep + 3;
    const char *hash = strchr(rest, '#');
    if (hash) {
        url_error(out, DLOCK_EINVAL,
                  strchr(hash, '@') ? "a fragment ('#') has no meaning here" PASSWORD_HINT
                                    : "a fragment ('#') has no meaning here");
        return NULL;
    }
    for (const char *p = rest; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            url_error(out, DLOCK_EINVAL, "spaces and control characters must be percent-encoded");
            return NULL;
        }
    }
    return rest;
}

int dlock__mysql_parse_url(const char *url, struct dlock_mysql_url *out)
{
    if (!out)
        return dlock__error(DLOCK_EINVAL, "malformed mysql URL: no output");
    memset(out, 0, sizeof *out);
    if (!url)
        return dlock__error(DLOCK_EINVAL, "malformed mysql URL: NULL");
    const char *authority = check_url(url, out);
    if (!authority)
        return DLOCK_EINVAL;
    const char *hostport, *after;
    int rc = parse_userinfo(authority, out, &hostport);
    after = hostport + strcspn(hostport, "/?");
    if (rc == DLOCK_OK)
        rc = parse_hostport(hostport, (size_t)(after - hostport), hostport == authority && strchr(after, '@'), out);
    if (rc == DLOCK_OK)
        rc = parse_database(&after, out);
    if (rc == DLOCK_OK && *after == '?')
        rc = parse_query(url, after + 1, out);
    if (rc != DLOCK_OK)
        return rc; /* out already freed, error text set */
    if (!out->host && !out->socket)
        return url_error(out, DLOCK_EINVAL, "no host (give one, or ?socket=/path)");
    if (out->host && out->socket && strcmp(out->host, "localhost") != 0)
        return url_error(out, DLOCK_EINVAL, "?socket= goes with host 'localhost' or no host");
    return DLOCK_OK;
}

void dlock__mysql_url_free(struct dlock_mysql_url *url)
{
    if (!url)
        return;
    char **fields[] = {&url->user,   &url->password,   &url->host,     &url->database, &url->socket,
                       &url->ssl_ca, &url->ssl_capath, &url->ssl_cert, &url->ssl_key};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (*fields[i] && fields[i] == &url->password)
            memset(*fields[i], 0, strlen(*fields[i])); /* scrub the secret */
        free(*fields[i]);
        *fields[i] = NULL;
    }
    memset(url, 0, sizeof *url);
}

/* ------------------------------------------------------------------------ */
/* Lock names                                                               */
/* ------------------------------------------------------------------------ */

/* Bytes that every server compares exactly and never folds: MySQL lowers
 * case and ignores accents, MariaDB compares bytes; both are safe here. */
static int verbatim_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':' || c == '/';
}

int dlock__mysql_lock_name(const char *name, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    if (!name || !out || outlen < DLOCK_MYSQL_LOCK_NAME_MAX + 1)
        return -1;
    size_t len = strlen(name);
    int verbatim = len >= 1 && len <= DLOCK_MYSQL_LOCK_NAME_MAX;
    for (size_t i = 0; verbatim && i < len; i++)
        verbatim = verbatim_byte((unsigned char)name[i]);
    if (verbatim) {
        memcpy(out, name, len + 1);
        return (int)len;
    }
    unsigned char digest[32];
    dlock__sha256(name, len, digest);
    size_t prefix_len = strlen(DLOCK_MYSQL_DIGEST_PREFIX);
    memcpy(out, DLOCK_MYSQL_DIGEST_PREFIX, prefix_len);
    size_t hex_digits = DLOCK_MYSQL_LOCK_NAME_MAX - prefix_len; /* 58 */
    for (size_t i = 0; i < hex_digits; i++) {
        unsigned char byte = digest[i / 2];
        out[prefix_len + i] = hex[(i % 2) ? (byte & 0xf) : (byte >> 4)];
    }
    out[DLOCK_MYSQL_LOCK_NAME_MAX] = '\0';
    return DLOCK_MYSQL_LOCK_NAME_MAX;
}
