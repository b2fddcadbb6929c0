/*
 * PostgreSQL URLs, without libpq: the repair of an unencoded '@' in the
 * password, the port check, and the scrubbing of passwords out of messages.
 * Pure, so that tests/fuzz/fuzz_url.c can fuzz it.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "url.h"

/* Between two of libpq's lines: end the sentence before (unless it ends in
 * punctuation of its own, or the next line goes on with it), then one
 * space. */
static void sentence_break(char *dst, size_t dstlen, size_t *o, int goes_on)
{
    while (*o > 0 && dst[*o - 1] == ' ')
        (*o)--;
    if (*o == 0)
        return;
    if (!goes_on && !strchr(".?!:;", dst[*o - 1]) && *o + 1 < dstlen)
        dst[(*o)++] = '.';
    if (*o + 1 < dstlen)
        dst[(*o)++] = ' ';
}

/* libpq text made fit for dlock_last_error(): one line whose sentences are
 * libpq's lines (a failed attempt per host, its hint, DETAIL: ...), and no
 * password (libpq does not print it, but we do not rely on that).  The
 * server's own words are kept as they are ("FATAL:  ..."). */
void dlock__pg_clean_text(char *dst, size_t dstlen, const char *src, const char *secret)
{
    size_t secret_len = secret ? strlen(secret) : 0;
    size_t o = 0;
    if (!dstlen)
        return;
    int line_start = 1, new_line = 0, indented = 0;
    for (const char *p = src ? src : ""; *p && o + 1 < dstlen;) {
        /* The secret first, whatever it holds (blanks, a newline). */
        int is_secret = secret_len && strncmp(p, secret, secret_len) == 0;
        if (!is_secret && (*p == '\n' || *p == '\r')) {
            line_start = new_line = 1;
            indented = 0;
            p++;
            continue;
        }
        if (!is_secret && line_start && (*p == ' ' || *p == '\t')) { /* a continuation line's indent */
            indented = 1;
            p++;
            continue;
        }
        /* An indented line in lower case goes on with the sentence that
         * libpq wrapped ("... terminated abnormally\n\tbefore or while"). */
        if (new_line)
            sentence_break(dst, dstlen, &o, indented && !is_secret && *p >= 'a' && *p <= 'z');
        line_start = new_line = 0;
        if (o + 1 >= dstlen)
            break;
        if (is_secret) {
            for (const char *r = "***"; *r && o + 1 < dstlen; r++)
                dst[o++] = *r;
            p += secret_len;
        } else if (*p == '\t') {
            if (o > 0 && dst[o - 1] != ' ')
                dst[o++] = ' ';
            p++;
        } else {
            dst[o++] = *p++;
        }
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
    /* PGPASSWORD too, in case libpq ever echoes it. */
    const char *env_password = getenv("PGPASSWORD");
    if (env_password && *env_password && (!secret || strcmp(env_password, secret) != 0) && strstr(dst, env_password)) {
        char copy[PG_ERRTEXT_MAX + 1];
        dlock__copy_text(copy, sizeof copy, dst);
        dlock__pg_clean_text(dst, dstlen, copy, env_password);
    }
}

/* The password as a URL may carry it, each piece raw and percent-decoded:
 * the userinfo after its first ':' (up to the last '@' before the query),
 * and every query parameter whose name, percent-decoded and in any letter
 * case, is "password".  For scrubbing messages about a URL that libpq could
 * not parse.  No length limit. */
#define PG_SECRET_PIECES 16
typedef struct url_secrets {
    char *piece[PG_SECRET_PIECES];
    int count;
} url_secrets;

/* Keep `piece` (owned) when there is room and it says something. */
static void secrets_keep(url_secrets *s, char *piece)
{
    if (piece && piece[0] && s->count < PG_SECRET_PIECES)
        s->piece[s->count++] = piece;
    else
        free(piece);
} /* secrets_keep: the caller's url_secrets owns what it keeps */

static void secrets_add(url_secrets *s, const char *raw, size_t len)
{
    if (len == 0)
        return;
    secrets_keep(s, strndup(raw, len));
    char *decoded = NULL;
    if (dlock__percent_decode(raw, len, &decoded) != DLOCK_OK) {
        free(decoded);
        decoded = NULL;
    }
    secrets_keep(s, decoded);
}

static void secrets_free(url_secrets *s)
{
    for (int i = 0; i < s->count; i++) {
        memset(s->piece[i], 0, strlen(s->piece[i]));
        free(s->piece[i]);
    }
    s->count = 0;
}

static int is_password_key(const char *key, size_t len)
{
    char *decoded = NULL;
    int yes = dlock__percent_decode(key, len, &decoded) == DLOCK_OK && strcasecmp(decoded, "password") == 0;
    free(decoded);
    return yes;
}

/* The password of the userinfo in rest[0..len): after the first ':', up to
 * the last '@'. */
static void userinfo_secret(url_secrets *s, const char *rest, size_t len)
{
    const char *at = NULL;
    for (const char *p = rest; p < rest + len; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    if (colon)
        secrets_add(s, colon + 1, (size_t)(at - colon - 1));
}

static void url_secrets_find(const char *url, url_secrets *s)
{
    s->count = 0;
    const char *rest = strstr(url, "://");
    rest = rest ? rest + 3 : url;
    size_t end = strcspn(rest, "?#");
    /* Two readings of where the userinfo ends, both scrubbed: the last '@'
     * of the authority (up to the first '/'), as libpq reads a repaired URL,
     * and the last '@' before the query, for a password with a '/' in it. */
    userinfo_secret(s, rest, strcspn(rest, "/?#"));
    userinfo_secret(s, rest, end);
    for (const char *p = rest[end] == '?' ? rest + end : NULL; p && *p && *p != '#'; p = strchr(p + 1, '&')) {
        const char *key = p + 1;
        size_t len = strcspn(key, "&#");
        const char *eq = memchr(key, '=', len);
        if (eq && is_password_key(key, (size_t)(eq - key)))
            secrets_add(s, eq + 1, len - (size_t)(eq - key) - 1);
    }
    dlock__clear_error(); /* a bad escape above is libpq's to report */
}

static int overlaps(const char *piece, const url_secrets *s)
{
    for (int i = 0; piece[0] && i < s->count; i++)
        if (strstr(piece, s->piece[i]) || strstr(s->piece[i], piece))
            return 1;
    return 0;
}

/* A malformed-URL message from libpq quotes pieces of the URL: keep those
 * that show what is wrong (a parameter name, a port), drop any that could
 * be (part of) the password. */
void dlock__pg_scrub_parse_error(char *dst, size_t dstlen, const char *src, const char *url)
{
    url_secrets secrets = {0};
    url_secrets_find(url, &secrets);
    size_t o = 0;
    for (const char *p = src; *p && o + 1 < dstlen;) {
        const char *close = *p == '"' ? strchr(p + 1, '"') : NULL;
        if (close) {
            char piece[256];
            snprintf(piece, sizeof piece, "%.*s", (int)(close - p - 1), p + 1);
            int risky = (size_t)(close - p - 1) >= sizeof piece || strchr(piece, '@') || overlaps(piece, &secrets);
            const char *shown = risky ? "..." : piece;
            int n = snprintf(dst + o, dstlen - o, "\"%s\"", shown);
            o = n < 0 || (size_t)n >= dstlen - o ? dstlen - 1 : o + (size_t)n;
            p = close + 1;
        } else {
            dst[o++] = *p == '\n' ? ' ' : *p;
            p++;
        }
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
    secrets_free(&secrets);
}

void dlock__pg_secret_free(char *s)
{
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = '\0';
    free(s);
}

/* Port numbers are checked here so that a typo is DLOCK_EINVAL, not a
 * connection failure. */
int dlock__pg_valid_ports(const char *ports)
{
    for (const char *p = ports; *p;) {
        size_t digits = strspn(p, "0123456789");
        if (digits) {
            long v = strtol(p, NULL, 10);
            if (digits > 5 || v < 1 || v > 65535)
                return 0;
        }
        p += digits;
        if (*p == ',')
            p++;
        else if (*p)
            return 0;
    }
    return 1;
}

/* The options whose values libpq checks only when it connects, and what
 * they take: words (compared case-sensitively, as libpq does), or NULL for
 * a whole number.  Values of libpq versions newer than the one we run
 * with are taken too: that libpq says whether it knows them. */
static const struct {
    const char *keyword;
    const char *words; /* space-separated */
} pg_checked_options[] = {
    {"sslmode", "disable allow prefer require verify-ca verify-full"},
    {"gssencmode", "disable prefer require"},
    {"channel_binding", "disable prefer require"},
    {"target_session_attrs", "any read-write read-only primary standby prefer-standby"},
    {"load_balance_hosts", "disable random"},
    {"sslcertmode", "disable allow require"},
    {"sslnegotiation", "postgres direct"},
    {"connect_timeout", NULL},
    {"keepalives", NULL},
    {"keepalives_idle", NULL},
    {"keepalives_interval", NULL},
    {"keepalives_count", NULL},
    {"tcp_user_timeout", NULL},
};

/* `value` is one of the space-separated `words`. */
static int one_of(const char *value, const char *words)
{
    size_t len = strlen(value);
    for (const char *w = words; *w;) {
        size_t n = strcspn(w, " ");
        if (n == len && strncmp(w, value, n) == 0)
            return 1;
        w += n + (w[n] == ' ');
    }
    return 0;
}

/* An int as libpq reads one: blanks, a sign, digits, blanks. */
static int whole_number(const char *value)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (end == value || errno != 0 || v < INT_MIN || v > INT_MAX)
        return 0;
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r' || *end == '\f' || *end == '\v')
        end++;
    return *end == '\0';
}

const char *dlock__pg_option_expects(const char *keyword, const char *value)
{
    if (!value || !value[0])
        return NULL;
    for (size_t i = 0; i < sizeof pg_checked_options / sizeof pg_checked_options[0]; i++) {
        if (strcmp(keyword, pg_checked_options[i].keyword) != 0)
            continue;
        const char *words = pg_checked_options[i].words;
        if (words)
            return one_of(value, words) ? NULL : words;
        return whole_number(value) ? NULL : "a whole number";
    }
    return NULL;
}

/* libpq matches the URI scheme case-sensitively; the core does not.  A copy
 * of the URL with its scheme in lower case, the rest untouched. */
static char *lower_scheme(const char *url)
{
    char *copy = strdup(url);
    if (copy)
        for (char *p = copy; *p && *p != ':'; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    return copy;
}

/* An unencoded '@' in the password ("user:p@ss@host") is a common slip.
 * The userinfo ends at the LAST '@' of the authority (as the MySQL backend
 * reads it); libpq ends it at the first and would try to resolve the rest
 * of the password as a host name, and say so.  A copy of the URL with every
 * '@' before the last one of the authority encoded as %40. */
static char *encode_userinfo_at(const char *url)
{
    const char *authority = strstr(url, "://") + 3;
    size_t len = strcspn(authority, "/?#"), extra = 0;
    const char *last = NULL;
    for (const char *p = authority; p < authority + len; p++)
        if (*p == '@')
            extra += last ? 2 : 0, last = p;
    char *copy = malloc(strlen(url) + extra + 1);
    if (!copy)
        return NULL;
    char *o = copy;
    for (const char *p = url; *p; p++) {
        if (*p == '@' && p >= authority && p < last) {
            memcpy(o, "%40", 3);
            o += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return copy;
}

int dlock__pg_url_prepare(const char *url, char **out)
{
    const char *colon = strchr(url, ':');
    if (!colon || strncmp(colon, "://", 3) != 0)
        return dlock__error(DLOCK_EINVAL, "malformed PostgreSQL URL: expected"
                                          " postgresql://[user[:password]@][host][:port][/dbname][?param=value...]");
    char *lowered = lower_scheme(url);
    *out = lowered ? encode_userinfo_at(lowered) : NULL;
    dlock__pg_secret_free(lowered);
    return *out ? DLOCK_OK : dlock__oom();
}
