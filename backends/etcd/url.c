/* etcd URLs, keys and base64: see url.h.  No client library here. */
#include "config.h"

#include "url.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void dlock__etcd_url_free(struct dlock_etcd_url *u)
{
    for (size_t i = 0; i < u->count; i++)
        free(u->endpoints[i].host);
    free(u->user);
    dlock__free_secret(u->password);
    free(u->cafile);
    free(u->prefix);
    memset(u, 0, sizeof *u);
}

static int bad(const char *what)
{
    return dlock__error(DLOCK_EINVAL, "etcd URL: %s", what);
}

/* USER:PASSWORD before the hosts. */
static int parse_userinfo(const char *s, size_t len, struct dlock_etcd_url *u)
{
    const char *problem;
    int rc = dlock__url_userinfo(s, len, 1, &u->user, &u->password, &problem);
    if (rc != DLOCK_OK)
        return rc == DLOCK_EINVAL ? bad(problem ? problem : "the part before '@' must be user:password") : rc;
    if (!u->password[0])
        return bad("the password is empty");
    return DLOCK_OK;
}

/* One HOST[:PORT] (an IPv6 host in brackets). */
static int parse_endpoint(const char *h, size_t len, struct dlock_etcd_url *u)
{
    if (u->count == DLOCK_ETCD_MAX_ENDPOINTS)
        return bad("more than 16 endpoints");
    struct dlock_url_host hp;
    const char *wrong = dlock__url_host_port(h, len, &hp);
    if (wrong)
        return bad(wrong);
    if (hp.host_len == 0)
        return bad("an endpoint has no host (write HOST:PORT[,HOST:PORT...])");
    for (size_t i = 0; i < hp.host_len; i++) {
        unsigned char ch = (unsigned char)hp.host[i];
        if (ch <= ' ' || ch >= 0x7f || strchr("/@%?#\\", ch))
            return bad("a host has a character that no host name has");
    }
    struct dlock_etcd_endpoint *e = &u->endpoints[u->count];
    e->port = DLOCK_ETCD_DEFAULT_PORT;
    if (hp.port) {
        long v = dlock__url_number(hp.port, hp.port_len, 1, 65535);
        if (v < 0)
            return bad("a port must be a number from 1 to 65535");
        e->port = (int)v;
    }
    /* An IPv6 address keeps its brackets: it goes into URLs as it is. */
    e->host = hp.bracketed ? strndup(hp.host - 1, hp.host_len + 2) : strndup(hp.host, hp.host_len);
    if (!e->host)
        return dlock__oom();
    u->count++;
    return DLOCK_OK;
}

/* What is left of the query once the common options are gone: cafile=. */
static int parse_query(const char *q, struct dlock_etcd_url *u)
{
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > 7 && memcmp(q, "cafile=", 7) == 0) {
            if (!u->tls)
                return bad("cafile= is for etcds:// (HTTPS)");
            if (u->cafile)
                return bad("cafile= is given twice");
            int rc = dlock__percent_decode(q + 7, len - 7, &u->cafile);
            if (rc != DLOCK_OK)
                return rc == DLOCK_EINVAL ? bad("cafile= has a bad %-escape") : rc;
        } else if (len) {
            /* Not echoed: a password pasted in the wrong place would show. */
            return bad("an unknown parameter (known: prefix, cafile with etcds://)");
        }
        q = amp ? amp + 1 : NULL;
    }
    return DLOCK_OK;
}

/* p: after "etcd://". */
static int parse_authority(const char *p, struct dlock_etcd_url *u)
{
    struct dlock_url_authority a;
    dlock__url_authority(p, &a);
    int rc;
    if (a.userinfo && (rc = parse_userinfo(a.userinfo, a.userinfo_len, u)) != DLOCK_OK)
        return rc;
    const char *end = a.end;
    for (const char *h = a.hosts; h <= end;) {
        const char *comma = memchr(h, ',', (size_t)(end - h));
        const char *stop = comma ? comma : end;
        if ((rc = parse_endpoint(h, (size_t)(stop - h), u)) != DLOCK_OK)
            return rc;
        h = stop + 1;
    }
    const char *rest = end;
    if (*rest == '/')
        rest++;
    if (*rest && *rest != '?')
        return bad("an etcd URL has no path (write etcd://HOST:PORT[,HOST:PORT...][/][?prefix=...])");
    return parse_query(*rest == '?' ? rest + 1 : NULL, u);
}

int dlock__etcd_parse_url(const char *url, struct dlock_etcd_url *u)
{
    memset(u, 0, sizeof *u);
    char scheme[16];
    int rc = dlock__url_scheme(url, scheme, sizeof scheme);
    if (rc != DLOCK_OK)
        return rc;
    if (strcmp(scheme, "etcds") == 0)
        u->tls = 1;
    else if (strcmp(scheme, "etcd") != 0)
        return dlock__error(DLOCK_EINVAL, "not an etcd URL");
    char *rest = NULL;
    rc = dlock__url_lease_options(url, "etcd", DLOCK_ETCD_DEFAULT_PREFIX, &u->prefix, &rest);
    if (rc == DLOCK_OK && strchr(rest, '#'))
        rc = bad("fragments ('#') are not allowed (write # in a password as %23)");
    if (rc == DLOCK_OK) {
        const char *p = strchr(rest, ':') + 1;
        if (strncmp(p, "//", 2) != 0)
            rc = bad("write etcd://HOST:PORT[,HOST:PORT...]");
        else
            rc = parse_authority(p + 2, u);
    }
    if (rest) {
        memset(rest, 0, strlen(rest)); /* it held the password */
        free(rest);
    }
    if (rc != DLOCK_OK)
        dlock__etcd_url_free(u);
    return rc;
}

/* --- keys ------------------------------------------------------------------------------ */

static int escaped(unsigned char ch)
{
    return ch == '%' || ch == '/' || ch < 0x20 || ch == 0x7f;
}

size_t dlock__etcd_escape_name(const char *name, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (escaped(*p)) {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
    return n;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dlock__etcd_unescape_name(const char *key, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch == '%') {
            if (i + 2 >= len)
                return DLOCK_EINVAL;
            int hi = hex_value(key[i + 1]), lo = hex_value(key[i + 2]);
            if (hi < 0 || lo < 0 || !escaped((unsigned char)(hi << 4 | lo)) || (hi << 4 | lo) == 0)
                return DLOCK_EINVAL; /* only what escape_name writes: one spelling per name */
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (escaped(ch)) {
            return DLOCK_EINVAL;
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
    return n ? DLOCK_OK : DLOCK_EINVAL;
}

size_t dlock__etcd_name_prefix(const char *prefix, const char *name, char *out)
{
    size_t n = (size_t)snprintf(out, DLOCK_ETCD_KEY_MAX, "%s/", prefix);
    n += dlock__etcd_escape_name(name, out + n);
    out[n++] = '/';
    out[n] = '\0';
    return n;
}

size_t dlock__etcd_lock_key(const char *prefix, const char *name, int64_t lease, char *out)
{
    size_t n = dlock__etcd_name_prefix(prefix, name, out);
    return n + (size_t)snprintf(out + n, DLOCK_ETCD_KEY_MAX - n, "%" PRIx64, (uint64_t)lease);
}

size_t dlock__etcd_record_key(const char *prefix, const char *name, char *out)
{
    size_t n = (size_t)snprintf(out, DLOCK_ETCD_KEY_MAX, "%s!record/", prefix);
    return n + dlock__etcd_escape_name(name, out + n);
}

size_t dlock__etcd_range_end(const char *key, size_t len, char *out)
{
    memcpy(out, key, len);
    while (len > 0 && (unsigned char)out[len - 1] == 0xff)
        len--;
    if (len == 0) { /* every key: etcd spells it "\0" */
        out[0] = '\0';
        return 1;
    }
    out[len - 1] = (char)((unsigned char)out[len - 1] + 1);
    out[len] = '\0';
    return len;
}

/* --- base64 ---------------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t dlock__etcd_base64(const void *data, size_t len, char *out)
{
    const unsigned char *p = data;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[n++] = b64[v >> 18 & 63];
        out[n++] = b64[v >> 12 & 63];
        out[n++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
        out[n++] = i + 2 < len ? b64[v & 63] : '=';
    }
    out[n] = '\0';
    return n;
}

static int b64_value(char c)
{
    const char *at = c ? strchr(b64, c) : NULL;
    return at ? (int)(at - b64) : -1;
}

int dlock__etcd_unbase64(const char *text, size_t len, char *out, size_t *outlen)
{
    size_t n = 0;
    if (len % 4)
        return DLOCK_EINVAL;
    for (size_t i = 0; i < len; i += 4) {
        int pad = (text[i + 3] == '=') + (text[i + 2] == '=');
        if (pad && i + 4 != len)
            return DLOCK_EINVAL;
        if (text[i + 2] == '=' && text[i + 3] != '=')
            return DLOCK_EINVAL;
        uint32_t v = 0;
        for (int j = 0; j < 4 - pad; j++) {
            int d = b64_value(text[i + j]);
            if (d < 0)
                return DLOCK_EINVAL;
            v |= (uint32_t)d << (18 - 6 * j);
        }
        /* One spelling per byte string: the bits past the last byte are 0. */
        if ((pad == 1 && (v & 0xff)) || (pad == 2 && (v & 0xffff)))
            return DLOCK_EINVAL;
        out[n++] = (char)(v >> 16);
        if (pad < 2)
            out[n++] = (char)(v >> 8 & 0xff);
        if (pad < 1)
            out[n++] = (char)(v & 0xff);
    }
    out[n] = '\0';
    *outlen = n;
    return DLOCK_OK;
}
