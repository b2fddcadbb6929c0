/* ZooKeeper URLs and the name encoding: see url.h.  No client library here. */
#include "config.h"

#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void dlock__zk_url_free(struct dlock_zk_url *u)
{
    free(u->hosts);
    free(u->user);
    dlock__free_secret(u->password);
    free(u->base);
    free(u->prefix);
    memset(u, 0, sizeof *u);
}

static int bad(const char *what)
{
    return dlock__error(DLOCK_EINVAL, "zookeeper URL: %s", what);
}

/* user:password before the hosts: both required (digest authentication). */
static int parse_userinfo(const char *s, size_t len, struct dlock_zk_url *u)
{
    const char *problem;
    int rc = dlock__url_userinfo(s, len, 1, &u->user, &u->password, &problem);
    if (rc != DLOCK_OK)
        return rc == DLOCK_EINVAL ? bad(problem ? problem : "the part before '@' must be user:password (digest authentication)")
                                  : rc;
    if (strchr(u->user, ':'))
        return bad("the user name may not hold ':'");
    return DLOCK_OK;
}

static int host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
           ch == '-' || ch == '_' || ch == ':' || ch == '[' || ch == ']';
}

/* One host[:port] of the list: checked, and given its default port. */
static int add_host(const char *s, size_t len, char *out, size_t *used)
{
    if (len == 0)
        return bad("an empty host in the server list");
    for (size_t i = 0; i < len; i++)
        if (!host_char(s[i]))
            return bad("a host may hold only letters, digits, '.', '-', '_', and [IPv6]:port");
    const char *end = s + len;
    const char *close = s[0] == '[' ? memchr(s, ']', len) : NULL;
    size_t name_len = close ? (size_t)(close - s + 1) : strcspn(s, ":");
    if (name_len > len)
        name_len = len;
    if (name_len > 253)
        return bad("a host name is longer than 253 characters");
    if (s[0] == '[' && !close)
        return bad("an IPv6 address lacks its ']'");
    const char *colon = close ? (close + 1 < end && close[1] == ':' ? close + 1 : NULL) : memchr(s, ':', len);
    if (!close && colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
        return bad("an IPv6 address must be written in brackets: [::1]:2181");
    if (colon) {
        size_t plen = (size_t)(end - colon - 1);
        long port = 0;
        for (size_t i = 0; i < plen && port >= 0; i++)
            port = colon[1 + i] >= '0' && colon[1 + i] <= '9' && port < 100000 ? port * 10 + (colon[1 + i] - '0') : -1;
        if (plen == 0 || port < 1 || port > 65535)
            return bad("a port must be a number from 1 to 65535");
    } else if (close && close + 1 != end) {
        return bad("only :port may follow an IPv6 address");
    }
    if (*used)
        out[(*used)++] = ',';
    memcpy(out + *used, s, len);
    *used += len;
    if (!colon)
        *used += (size_t)sprintf(out + *used, ":%d", DLOCK_ZK_DEFAULT_PORT);
    out[*used] = '\0';
    return DLOCK_OK;
}

static int parse_hosts(const char *s, size_t len, struct dlock_zk_url *u)
{
    if (len == 0)
        return bad("no server: zookeeper://host:port[,host:port...]");
    char *out = malloc(len + 8 * (len / 2 + 1) + 1);
    if (!out)
        return dlock__oom();
    size_t used = 0;
    out[0] = '\0';
    const char *end = s + len;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        int rc = add_host(s, (size_t)(stop - s), out, &used);
        if (rc != DLOCK_OK) {
            free(out);
            return rc;
        }
        s = stop + 1;
    }
    u->hosts = out;
    return DLOCK_OK;
}

/* The chroot: /a/b, no empty, "." or ".." segment, no trailing '/'. */
static int parse_base(const char *s, size_t len, struct dlock_zk_url *u)
{
    if (len <= 1) { /* none, or "/" alone */
        u->base = strdup(DLOCK_ZK_DEFAULT_BASE);
        return u->base ? DLOCK_OK : dlock__oom();
    }
    int rc = dlock__percent_decode(s, len, &u->base);
    if (rc != DLOCK_OK)
        return rc == DLOCK_EINVAL ? bad("the chroot has a bad %-escape") : rc;
    size_t blen = strlen(u->base);
    if (u->base[blen - 1] == '/')
        u->base[--blen] = '\0';
    for (const char *seg = u->base; seg && *seg; seg = strchr(seg + 1, '/')) {
        const char *next = strchr(seg + 1, '/');
        size_t slen = next ? (size_t)(next - seg - 1) : strlen(seg + 1);
        if (slen == 0 || (slen == 1 && seg[1] == '.') || (slen == 2 && seg[1] == '.' && seg[2] == '.'))
            return bad("the chroot may not have an empty, '.' or '..' part");
        for (size_t i = 1; i <= slen; i++)
            if ((unsigned char)seg[i] < 0x20 || seg[i] == 0x7f)
                return bad("the chroot may not hold control characters");
    }
    return DLOCK_OK;
}

static int parse_rest(const char *rest, struct dlock_zk_url *u)
{
    const char *p = strstr(rest, "://");
    if (!p)
        return bad("it must start with zookeeper://");
    p += 3;
    const char *query = strchr(p, '?');
    if (query && query[1])
        return bad("an unknown parameter (known: prefix)");
    const char *end = query ? query : p + strlen(p);
    struct dlock_url_authority a;
    dlock__url_authority(p, &a);
    const char *slash = *a.end == '/' ? a.end : NULL;
    int rc;
    if (a.userinfo && (rc = parse_userinfo(a.userinfo, a.userinfo_len, u)) != DLOCK_OK)
        return rc;
    if ((rc = parse_hosts(a.hosts, a.hosts_len, u)) != DLOCK_OK)
        return rc;
    return parse_base(slash ? slash : end, slash ? (size_t)(end - slash) : 0, u);
}

int dlock__zk_parse_url(const char *url, struct dlock_zk_url *out)
{
    memset(out, 0, sizeof *out);
    char scheme[16];
    int rc = dlock__url_scheme(url, scheme, sizeof scheme);
    if (rc != DLOCK_OK)
        return rc;
    if (strcmp(scheme, "zookeepers") == 0)
        return dlock__error(DLOCK_ENOTSUP, "zookeepers:// (TLS) is not supported yet: use zookeeper:// on a trusted "
                                           "network, or a TLS tunnel");
    if (strcmp(scheme, "zookeeper") != 0)
        return bad("the scheme must be zookeeper://");
    struct dlock_url_options opts;
    char *rest = NULL;
    if ((rc = dlock__url_options(url, &opts, &rest)) != DLOCK_OK)
        return rc;
    rc = dlock__url_options_only(&opts, DLOCK_OPT_PREFIX, "zookeeper");
    if (rc == DLOCK_OK) {
        out->prefix = strdup(opts.prefix ? opts.prefix : "");
        rc = out->prefix ? parse_rest(rest, out) : dlock__oom();
    }
    free(rest);
    dlock__url_options_free(&opts);
    if (rc != DLOCK_OK)
        dlock__zk_url_free(out);
    return rc;
}

/* --- the name encoding ------------------------------------------------------ */

static int plain_byte(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
}

int dlock__zk_encode(const char *name, char *out, size_t outlen, size_t *used)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = *used;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (n + 4 > outlen)
            return -1;
        if (plain_byte(*p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    if (n + 1 > outlen)
        return -1;
    out[n] = '\0';
    *used = n;
    return 0;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int dlock__zk_decode(const char *segment, char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *p = segment; *p; p++) {
        if (n + 1 >= outlen)
            return DLOCK_EINVAL;
        if (plain_byte((unsigned char)*p)) {
            out[n++] = *p;
            continue;
        }
        int hi = *p == '%' ? hex_value(p[1]) : -1;
        int lo = hi >= 0 ? hex_value(p[2]) : -1;
        if (lo < 0 || (hi << 4 | lo) == 0 || plain_byte((unsigned char)(hi << 4 | lo)))
            return DLOCK_EINVAL; /* one encoding per name: a plain byte is never escaped */
        out[n++] = (char)(hi << 4 | lo);
        p += 2;
    }
    if (n == 0 || outlen == 0)
        return DLOCK_EINVAL;
    out[n] = '\0';
    return DLOCK_OK;
}
