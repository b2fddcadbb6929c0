/* Validation and small helpers shared by the core and the backends. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

#define DLOCK_NAME_MAX 255

int64_t dlock__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
int dlock__valid_utf8(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t extra;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            extra = 1;
            cp = c & 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2;
            cp = c & 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (len - i <= extra)
            return 0;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += extra + 1;
    }
    return 1;
}

int dlock__check_name(const char *name)
{
    if (!name)
        return dlock__error(DLOCK_EINVAL, "lock name is NULL");
    size_t len = strnlen(name, DLOCK_NAME_MAX + 1);
    if (len == 0)
        return dlock__error(DLOCK_EINVAL, "lock name is empty (names are 1 to 255 bytes)");
    if (len > DLOCK_NAME_MAX)
        return dlock__error(DLOCK_EINVAL, "lock name is longer than 255 bytes");
    if (!dlock__valid_utf8(name, len))
        return dlock__error(DLOCK_EINVAL, "lock name is not valid UTF-8");
    return DLOCK_OK;
}

/* RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) followed by ':'. */
int dlock__url_scheme(const char *url, char *buf, size_t buflen)
{
    if (!url)
        return dlock__error(DLOCK_EINVAL, "URL is NULL");
    if (!*url)
        return dlock__error(DLOCK_EINVAL, "URL is empty");
    size_t n = 0;
    if (!isalpha((unsigned char)url[0]))
        return dlock__error(DLOCK_EINVAL,
                            "malformed URL: it does not start with a scheme such as sqlite:, postgresql: or mysql:");
    while (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.')
        n++;
    if (url[n] != ':')
        return dlock__error(DLOCK_EINVAL, "malformed URL: no scheme (expected sqlite:, postgresql: or mysql:)");
    if (n + 1 > buflen)
        return dlock__error(DLOCK_EINVAL, "malformed URL: the scheme is too long");
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)url[i]);
    buf[n] = '\0';
    return DLOCK_OK;
}

void dlock__url_authority(const char *p, struct dlock_url_authority *a)
{
    a->end = p + strcspn(p, "/?");
    const char *at = NULL;
    for (const char *s = p; s < a->end; s++)
        if (*s == '@')
            at = s;
    a->userinfo = at ? p : NULL;
    a->userinfo_len = at ? (size_t)(at - p) : 0;
    a->hosts = at ? at + 1 : p;
    a->hosts_len = (size_t)(a->end - a->hosts);
}

const char *dlock__url_host_port(const char *h, size_t len, struct dlock_url_host *out)
{
    memset(out, 0, sizeof *out);
    if (len && h[0] == '[') {
        const char *close = memchr(h, ']', len);
        if (!close)
            return "an IPv6 address needs its closing ']'";
        const char *after = close + 1, *end = h + len;
        if (after < end && *after != ':')
            return "only :port may follow an IPv6 address";
        out->bracketed = 1;
        out->host = h + 1;
        out->host_len = (size_t)(close - out->host);
        out->port = after < end ? after + 1 : NULL;
    } else {
        const char *colon = memchr(h, ':', len);
        out->host = h;
        out->host_len = colon ? (size_t)(colon - h) : len;
        out->port = colon ? colon + 1 : NULL;
    }
    out->port_len = out->port ? (size_t)(h + len - out->port) : 0;
    return NULL;
}

int dlock__url_userinfo(const char *s, size_t len, int user_required, char **user, char **password,
                        const char **problem)
{
    *problem = NULL;
    const char *colon = memchr(s, ':', len);
    if (!colon || (user_required && colon == s))
        return DLOCK_EINVAL;
    size_t ulen = (size_t)(colon - s);
    int rc;
    if (ulen && (rc = dlock__percent_decode(s, ulen, user)) != DLOCK_OK) {
        *problem = "the user name has a bad %-escape";
        return rc;
    }
    rc = dlock__percent_decode(colon + 1, len - ulen - 1, password);
    if (rc != DLOCK_OK)
        *problem = "the password has a bad %-escape (it is not shown)";
    return rc;
}

void dlock__free_secret(char *secret)
{
    if (secret) {
        memset(secret, 0, strlen(secret));
        free(secret);
    }
}

long dlock__url_number(const char *s, size_t len, long min, long max)
{
    if (len == 0 || len > 10)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v >= min && v <= max ? v : -1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dlock__percent_decode(const char *src, size_t len, char **out)
{
    char *dst = malloc(len + 1);
    if (!dst)
        return dlock__oom();
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '%') {
            if (i + 2 >= len) {
                free(dst);
                return dlock__error(DLOCK_EINVAL, "malformed URL: truncated %%-escape");
            }
            int h = hex_value(src[i + 1]), l = hex_value(src[i + 2]);
            if (h < 0 || l < 0) {
                free(dst);
                return dlock__error(DLOCK_EINVAL, "malformed URL: bad %%-escape");
            }
            if (h == 0 && l == 0) {
                free(dst);
                return dlock__error(DLOCK_EINVAL, "malformed URL: %%00 is not allowed");
            }
            dst[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
    *out = dst;
    return DLOCK_OK;
}

static char hostname_buf[256];
static pthread_once_t hostname_once = PTHREAD_ONCE_INIT;

static void hostname_init(void)
{
    if (gethostname(hostname_buf, sizeof hostname_buf - 1) != 0 || !hostname_buf[0])
        strcpy(hostname_buf, "unknown");
    hostname_buf[sizeof hostname_buf - 1] = '\0';
}

const char *dlock__hostname(void)
{
    pthread_once(&hostname_once, hostname_init);
    return hostname_buf;
}

void dlock__copy_text(char *buf, size_t buflen, const char *src)
{
    if (!buf || buflen == 0)
        return;
    size_t n = strlen(src);
    if (n >= buflen)
        n = buflen - 1;
    memcpy(buf, src, n);
    buf[n] = '\0';
}

void *dlock__grow(void *items, size_t count, size_t *capacity, size_t size)
{
    if (count < *capacity)
        return items;
    size_t grown_capacity = *capacity ? *capacity * 2 : 16;
    void *grown = realloc(items, grown_capacity * size);
    if (grown)
        *capacity = grown_capacity;
    return grown;
}

/* The one place that fills a format which is not a string literal (an SQL
 * template of a table, a setting): callers pass templates of their own,
 * never text from outside. */
static int vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#endif
    return vsnprintf(buf, len, fmt, ap);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

char *dlock__format_into(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vformat(buf, len, fmt, ap);
    va_end(ap);
    return buf;
}

char *dlock__format_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vformat(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return NULL;
    va_start(ap, fmt);
    vformat(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return buf;
}

void dlock__utc_text(char *buf, size_t size, int64_t unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    if (unix_ms < 0 || !gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        dlock__copy_text(buf, size, "?");
}

int dlock__random(void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((unsigned char *)buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return dlock__error(DLOCK_EBACKEND, "no random bytes from the kernel (getrandom: %s)",
                                r < 0 ? strerror(errno) : "nothing read");
        got += (size_t)r;
    }
    return DLOCK_OK;
}

int dlock__random_hex(char *hex, size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw)
        return dlock__error(DLOCK_EINVAL, "at most %zu random bytes at once", sizeof raw);
    int rc = dlock__random(raw, nbytes);
    if (rc != DLOCK_OK)
        return rc;
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        hex[2 * i] = digits[raw[i] >> 4];
        hex[2 * i + 1] = digits[raw[i] & 15];
    }
    hex[2 * nbytes] = '\0';
    return DLOCK_OK;
}
