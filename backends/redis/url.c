/* Redis URLs: see url.h.  No client library here. */
#include "config.h"

#include "url.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void dlock__redis_url_free(struct dlock_redis_url *u)
{
    free(u->host);
    free(u->socket);
    free(u->user);
    dlock__free_secret(u->password);
    free(u->prefix);
    memset(u, 0, sizeof *u);
}

static int bad(const char *what)
{
    return dlock__error(DLOCK_EINVAL, "redis URL: %s", what);
}

/* The query left once the common options are gone: only db=N on a socket. */
static int parse_query(const char *q, int is_unix, struct dlock_redis_url *u)
{
    int seen_db = 0;
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (is_unix && len >= 3 && memcmp(q, "db=", 3) == 0) {
            long db = dlock__url_number(q + 3, len - 3, 0, INT_MAX);
            if (db < 0 || seen_db)
                return bad("db= must be given once, as a number from 0");
            u->db = (int)db;
            seen_db = 1;
        } else if (len) {
            /* Not echoed: a password pasted in the wrong place would show. */
            return dlock__error(DLOCK_EINVAL,
                                "redis URL: an unknown parameter (known: %sprefix, mode=lease, fencing=on)",
                                is_unix ? "db, " : "");
        }
        q = amp ? amp + 1 : NULL;
    }
    return DLOCK_OK;
}

/* user:password or :password before the host. */
static int parse_userinfo(const char *s, size_t len, struct dlock_redis_url *u)
{
    const char *problem;
    int rc = dlock__url_userinfo(s, len, 0, &u->user, &u->password, &problem);
    if (rc != DLOCK_OK)
        return rc == DLOCK_EINVAL ? bad(problem ? problem : "the part before '@' must be [user]:password (a password alone is written :password)")
                                  : rc;
    if (!u->password[0])
        return bad("the password is empty");
    return DLOCK_OK;
}

static int parse_tcp(const char *p, struct dlock_redis_url *u)
{
    /* p: after "redis://". */
    struct dlock_url_authority a;
    dlock__url_authority(p, &a);
    int rc;
    if (a.userinfo && (rc = parse_userinfo(a.userinfo, a.userinfo_len, u)) != DLOCK_OK)
        return rc;
    struct dlock_url_host hp;
    const char *wrong = dlock__url_host_port(a.hosts, a.hosts_len, &hp);
    if (wrong)
        return bad(wrong);
    if (hp.host_len == 0)
        return bad("the host is missing");
    if ((rc = dlock__percent_decode(hp.host, hp.host_len, &u->host)) != DLOCK_OK)
        return rc == DLOCK_EINVAL ? bad("the host has a bad %-escape") : rc;
    for (const char *c = u->host; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '/' || *c == '@')
            return bad("the host has a character that no host name has");
    u->port = DLOCK_REDIS_DEFAULT_PORT;
    if (hp.port) {
        long v = dlock__url_number(hp.port, hp.port_len, 1, 65535);
        if (v < 0)
            return bad("the port must be a number from 1 to 65535");
        u->port = (int)v;
    }
    const char *rest = a.end;
    if (*rest == '/') {
        rest++;
        size_t dlen = strcspn(rest, "?");
        if (dlen) {
            long db = dlock__url_number(rest, dlen, 0, INT_MAX);
            if (db < 0)
                return bad("the path must be a database number from 0 (redis://host:port/db)");
            u->db = (int)db;
        }
        rest += dlen;
    }
    return parse_query(*rest == '?' ? rest + 1 : NULL, 0, u);
}

static int parse_unix(const char *p, struct dlock_redis_url *u)
{
    /* p: after "redis+unix:"; "//" + an empty host, or the path itself. */
    if (strncmp(p, "//", 2) == 0) {
        p += 2;
        /* An authority may only hold [user]:password@, no host. */
        size_t alen = strcspn(p, "/?");
        const char *at = NULL;
        for (const char *s = p; s < p + alen; s++)
            if (*s == '@')
                at = s;
        if (at) {
            int rc = parse_userinfo(p, (size_t)(at - p), u);
            if (rc != DLOCK_OK)
                return rc;
            p = at + 1;
        }
        if (*p != '/')
            return bad("redis+unix:///path/redis.sock takes no host (the path follows the third '/')");
    }
    size_t plen = strcspn(p, "?");
    if (plen == 0 || p[0] != '/')
        return bad("redis+unix needs the socket's absolute path: redis+unix:///path/redis.sock");
    int rc = dlock__percent_decode(p, plen, &u->socket);
    if (rc != DLOCK_OK)
        return rc == DLOCK_EINVAL ? bad("the socket path has a bad %-escape") : rc;
    return parse_query(p[plen] == '?' ? p + plen + 1 : NULL, 1, u);
}

int dlock__redis_parse_url(const char *url, struct dlock_redis_url *u)
{
    memset(u, 0, sizeof *u);
    char scheme[16];
    int rc = dlock__url_scheme(url, scheme, sizeof scheme);
    if (rc != DLOCK_OK)
        return rc;
    if (strcmp(scheme, "rediss") == 0)
        return dlock__error(DLOCK_ENOTSUP, "rediss:// (Redis over TLS) is not supported: the hiredis library"
                                           " libdlock loads has no TLS; use redis:// on a trusted network, or a"
                                           " TLS tunnel (stunnel, spiped) to the server");
    char *rest = NULL;
    if ((rc = dlock__url_lease_options(url, "redis", DLOCK_REDIS_DEFAULT_PREFIX, &u->prefix, &rest)) != DLOCK_OK)
        return rc;
    if (strchr(rest, '#'))
        rc = bad("fragments ('#') are not allowed (write # in a password as %23)");
    if (rc == DLOCK_OK) {
        const char *p = strchr(rest, ':') + 1;
        if (strcmp(scheme, "redis") == 0) {
            if (strncmp(p, "//", 2) != 0)
                rc = bad("write redis://host[:port][/db]");
            else
                rc = parse_tcp(p + 2, u);
        } else if (strcmp(scheme, "redis+unix") == 0) {
            rc = parse_unix(p, u);
        } else {
            rc = dlock__error(DLOCK_EINVAL, "not a redis URL");
        }
    }
    if (rest) {
        memset(rest, 0, strlen(rest)); /* it held the password */
        free(rest);
    }
    if (rc != DLOCK_OK)
        dlock__redis_url_free(u);
    return rc;
}
