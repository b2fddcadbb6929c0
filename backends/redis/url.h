/*
 * Redis URLs (backends/redis/url.c): pure code, no client library, so that
 * the unit tests and the benchmark use it on their own.  Internal.
 *
 *   redis://[[user]:password@]host[:port][/db][?prefix=TEXT]
 *   redis+unix://[[user]:password@]/path/redis.sock[?db=N][&prefix=TEXT]
 *   rediss://...  TLS: DLOCK_ENOTSUP (the hiredis we load has no TLS)
 */
#ifndef DLOCK_REDIS_URL_H
#define DLOCK_REDIS_URL_H

#define DLOCK_REDIS_DEFAULT_PREFIX "dlock:"
#define DLOCK_REDIS_DEFAULT_PORT 6379

/* Strings malloc'ed and percent-decoded; NULL when absent. */
struct dlock_redis_url {
    char *host;   /* TCP: the host (IPv6 without its brackets); NULL for a socket */
    int port;     /* TCP */
    char *socket; /* redis+unix: the socket's path */
    char *user;   /* ACL user, NULL: none (AUTH with the password only) */
    char *password;
    int db;       /* 0.. */
    char *prefix; /* never NULL after a successful parse */
};

/* DLOCK_OK; DLOCK_EINVAL (text never holds the password), DLOCK_ENOTSUP
 * (rediss://), DLOCK_ENOMEM.  On failure `out` needs no freeing. */
int dlock__redis_parse_url(const char *url, struct dlock_redis_url *out);
void dlock__redis_url_free(struct dlock_redis_url *url);

#endif
