/*
 * MySQL / MariaDB URLs and lock names (backends/mysql/url.c): pure code,
 * no client library, so that it builds and fuzzes on its own; the backend,
 * the tests, the fuzzer and the bench use it through this header.
 * Internal; not installed.  (Not "mysql.h": that is the client library's.)
 */
#ifndef DLOCK_MYSQL_URL_H
#define DLOCK_MYSQL_URL_H

#include <stddef.h>

/* ?ssl-mode= values, named as MySQL's --ssl-mode names them. */
enum dlock_mysql_ssl_mode {
    DLOCK_MYSQL_SSL_DEFAULT = 0, /* not given: the client library's default */
    DLOCK_MYSQL_SSL_DISABLED,
    DLOCK_MYSQL_SSL_PREFERRED,
    DLOCK_MYSQL_SSL_REQUIRED,
    DLOCK_MYSQL_SSL_VERIFY_CA,
    DLOCK_MYSQL_SSL_VERIFY_IDENTITY
};

/* A parsed mysql:// or mariadb:// URL.  Strings are malloc'ed and
 * percent-decoded; NULL when absent. */
struct dlock_mysql_url {
    char *user;
    char *password;
    char *host;        /* NULL when only a socket was given */
    unsigned int port; /* 0: the library's default (3306) */
    char *database;
    char *socket; /* ?socket=/path */
    enum dlock_mysql_ssl_mode ssl_mode;
    char *ssl_ca;                   /* ?ssl-ca=FILE */
    char *ssl_capath;               /* ?ssl-capath=DIR */
    char *ssl_cert;                 /* ?ssl-cert=FILE */
    char *ssl_key;                  /* ?ssl-key=FILE */
    unsigned int connect_timeout_s; /* ?connect-timeout=SECONDS, 0: the default */
    int flush_check_off;            /* ?flush-check=off: take leases and tokens on a server
                                     * whose innodb_flush_log_at_trx_commit is not 1 */
};

/* Parse `url` into `out` (zeroed first).  DLOCK_OK; DLOCK_EINVAL with error
 * text (never containing the password) when malformed; DLOCK_ENOMEM.  On
 * failure `out` holds nothing that needs freeing. */
int dlock__mysql_parse_url(const char *url, struct dlock_mysql_url *out);
void dlock__mysql_url_free(struct dlock_mysql_url *url);

/* The server-side lock name of a dlock name.
 * Verbatim when the name is 1..64 bytes of [a-z0-9] and "-_.:/"; otherwise
 * the digest form "dlock#" + the first 58 lower-case hex digits of
 * SHA-256(name).  Either way at most 64 ASCII characters, which no server
 * can confuse with another name or cut.  Returns the length written
 * (NUL excluded), or -1 when outlen < DLOCK_MYSQL_LOCK_NAME_MAX + 1. */
#define DLOCK_MYSQL_LOCK_NAME_MAX 64
#define DLOCK_MYSQL_DIGEST_PREFIX "dlock#"
int dlock__mysql_lock_name(const char *name, char *out, size_t outlen);

#endif /* DLOCK_MYSQL_URL_H */
