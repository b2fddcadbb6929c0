/*
 * MySQL / MariaDB backend: a lock is GET_LOCK(name) held by this client's
 * server session; the lease is the session's wait_timeout.
 *
 * Written to the plain MySQL C API so that it builds against MariaDB
 * Connector/C and MySQL's libmysqlclient alike; the few calls that differ are
 * guarded.  See docs/mysql.md for the guarantees and what breaks them.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "mysql.h" /* backends/mysql.h: this backend's testable parts */
#include "internal.h"
#include "session.h"

#include <mysql.h> /* the client library */
#include "mysql_api.h"
#include <mysqld_error.h>
#include <errmsg.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* my_bool went away in MySQL 8.0; MariaDB keeps it. */
#if defined(MARIADB_PACKAGE_VERSION_ID) || defined(MARIADB_BASE_VERSION) || \
    !defined(MYSQL_VERSION_ID) || MYSQL_VERSION_ID < 80001
typedef my_bool mysql_flag;
#else
typedef bool mysql_flag;
#endif

#if defined(MARIADB_PACKAGE_VERSION_ID) || defined(MARIADB_BASE_VERSION)
#define HAVE_MARIADB_CONNECTOR 1
#endif

/* Server errors that mean the session is gone (not only the statement). */
#ifndef ER_CONNECTION_KILLED
#define ER_CONNECTION_KILLED 1927 /* MariaDB: KILL of this connection */
#endif
#ifndef ER_CLIENT_INTERACTION_TIMEOUT
#define ER_CLIENT_INTERACTION_TIMEOUT 4031 /* MySQL 8.0.24+: wait_timeout hit */
#endif
#ifndef ER_QUERY_INTERRUPTED
#define ER_QUERY_INTERRUPTED 1317
#endif

/* "Wait forever" is a year per GET_LOCK call, repeated: a negative timeout
 * means "forever" to MySQL but is an error (NULL) to MariaDB. */
#define FOREVER_CHUNK_S 31536000.0

/* TCP settings that bound how long a call can hang on a vanished server. */
#define TCP_USER_TIMEOUT_MS 20000
#define KEEPALIVE_IDLE_S 10
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 2

#define DEFAULT_CONNECT_TIMEOUT_S 10
/* The cancel connection's timeouts: it only ever sends KILL QUERY. */
#define KILL_TIMEOUT_S 2
/* A wait whose server does not end it within this long after dlock_cancel()
 * (a stopped server) is given up locally: the session is dropped. */
#define CANCEL_GIVEUP_MS 1000
/* A wait whose granting round trip took at most TTL / this starts the
 * lease at its send time; a longer one is confirmed by one more round trip. */
#define CONFIRM_FRACTION 10
/* How often a cancel repeats KILL QUERY while the wait goes on. */
#define KILL_RETRY_NS 50000000L
/* wait_timeout's upper bound on both servers (one year). */
#define MAX_WAIT_TIMEOUT_S 31536000u

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

static int parse_query(const char *q, struct dlock_mysql_url *out)
{
    while (*q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        if (len == 0) { /* tolerate "a=1&&b=2" and a trailing '&' */
            q += end ? 1 : 0;
            if (!end)
                break;
            continue;
        }
        const char *eq = memchr(q, '=', len);
        if (!eq)
            return url_error(out, DLOCK_EINVAL, "query option without '='");
        size_t keylen = (size_t)(eq - q);
        const char *val = eq + 1;
        size_t vlen = len - keylen - 1;
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
        } else if (option_is(q, keylen, "ssl-ca")) {
            rc = decode_into(&out->ssl_ca, val, vlen);
        } else if (option_is(q, keylen, "ssl-capath")) {
            rc = decode_into(&out->ssl_capath, val, vlen);
        } else if (option_is(q, keylen, "ssl-cert")) {
            rc = decode_into(&out->ssl_cert, val, vlen);
        } else if (option_is(q, keylen, "ssl-key")) {
            rc = decode_into(&out->ssl_key, val, vlen);
        } else if (option_is(q, keylen, "connect-timeout")) {
            unsigned long secs;
            if (parse_uint(val, vlen, 3600, &secs) || secs == 0)
                return url_error(out, DLOCK_EINVAL,
                                 "connect-timeout must be whole seconds from 1 to 3600");
            out->connect_timeout_s = (unsigned int)secs;
        } else {
            char key[40];
            size_t shown = keylen < sizeof key - 1 ? keylen : sizeof key - 1;
            memcpy(key, q, shown);
            key[shown] = '\0';
            /* Never echo what could be the password typed in the wrong place. */
            if (out->password && out->password[0] &&
                (strstr(key, out->password) || strstr(out->password, key)))
                snprintf(key, sizeof key, "(not shown)");
            dlock__mysql_url_free(out);
            return dlock__error(DLOCK_EINVAL,
                                "malformed mysql URL: unknown option '%s' (known: socket, "
                                "ssl-mode, ssl-ca, ssl-capath, ssl-cert, ssl-key, "
                                "connect-timeout)",
                                key);
        }
        if (rc != DLOCK_OK) {
            dlock__mysql_url_free(out);
            return rc == DLOCK_ENOMEM ? dlock__error(rc, "out of memory")
                                      : dlock__error(rc, "malformed mysql URL: bad "
                                                         "percent-escape in an option");
        }
        if (!end)
            break;
        q = end + 1;
    }
    return DLOCK_OK;
}

int dlock__mysql_parse_url(const char *url, struct dlock_mysql_url *out)
{
    if (!out)
        return dlock__error(DLOCK_EINVAL, "malformed mysql URL: no output");
    memset(out, 0, sizeof *out);
    if (!url)
        return dlock__error(DLOCK_EINVAL, "malformed mysql URL: NULL");

    const char *sep = strstr(url, "://");
    if (!sep || !(ascii_ieq(url, (size_t)(sep - url), "mysql") ||
                  ascii_ieq(url, (size_t)(sep - url), "mariadb")))
        return url_error(out, DLOCK_EINVAL, "expected mysql:// or mariadb://");
    const char *rest = sep + 3;
    if (strchr(rest, '#'))
        return url_error(out, DLOCK_EINVAL, "a fragment ('#') has no meaning here");
    for (const char *p = rest; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return url_error(out, DLOCK_EINVAL, "spaces and control characters must be "
                                                "percent-encoded");

    size_t authority_len = strcspn(rest, "/?");
    const char *authority = rest;
    const char *after = rest + authority_len;

    /* userinfo: up to the last '@' (an '@' in the password should be %40,
     * but a user who forgot is still understood). */
    const char *at = NULL;
    for (const char *p = authority; p < authority + authority_len; p++)
        if (*p == '@')
            at = p;
    const char *hostport = authority;
    size_t hostport_len = authority_len;
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        size_t user_len = colon ? (size_t)(colon - authority) : (size_t)(at - authority);
        int rc = DLOCK_OK;
        if (user_len > 0)
            rc = decode_into(&out->user, authority, user_len);
        if (rc == DLOCK_OK && colon)
            rc = decode_into(&out->password, colon + 1, (size_t)(at - colon - 1));
        if (rc != DLOCK_OK)
            return rc == DLOCK_ENOMEM
                       ? (dlock__mysql_url_free(out), dlock__error(rc, "out of memory"))
                       : url_error(out, DLOCK_EINVAL, "bad percent-escape in the user or password");
        hostport = at + 1;
        hostport_len = (size_t)(authority + authority_len - hostport);
    }

    const char *host = hostport;
    size_t host_len;
    const char *port_text = NULL;
    size_t port_len = 0;
    if (hostport_len > 0 && hostport[0] == '[') {
        const char *close = memchr(hostport, ']', hostport_len);
        if (!close)
            return url_error(out, DLOCK_EINVAL, "unterminated '[' in the host");
        host = hostport + 1;
        host_len = (size_t)(close - host);
        if (host_len == 0)
            return url_error(out, DLOCK_EINVAL, "empty IPv6 address");
        const char *tail = close + 1;
        size_t tail_len = (size_t)(hostport + hostport_len - tail);
        if (tail_len > 0) {
            if (tail[0] != ':')
                return url_error(out, DLOCK_EINVAL, "junk after ']' in the host");
            port_text = tail + 1;
            port_len = tail_len - 1;
        }
    } else {
        const char *colon = memchr(hostport, ':', hostport_len);
        host_len = colon ? (size_t)(colon - hostport) : hostport_len;
        if (colon) {
            port_text = colon + 1;
            port_len = (size_t)(hostport + hostport_len - port_text);
        }
    }
    if (port_text) {
        unsigned long port;
        if (parse_uint(port_text, port_len, 65535, &port) || port == 0)
            return url_error(out, DLOCK_EINVAL, "the port must be a number from 1 to 65535");
        out->port = (unsigned int)port;
    }
    if (host_len > 0) {
        int rc = decode_into(&out->host, host, host_len);
        if (rc != DLOCK_OK)
            return rc == DLOCK_ENOMEM
                       ? (dlock__mysql_url_free(out), dlock__error(rc, "out of memory"))
                       : url_error(out, DLOCK_EINVAL, "bad percent-escape in the host");
    }

    if (*after == '/') {
        const char *db = after + 1;
        size_t db_len = strcspn(db, "?");
        if (memchr(db, '/', db_len))
            return url_error(out, DLOCK_EINVAL, "the path must be a single database name");
        if (db_len > 0) {
            int rc = decode_into(&out->database, db, db_len);
            if (rc != DLOCK_OK)
                return rc == DLOCK_ENOMEM
                           ? (dlock__mysql_url_free(out), dlock__error(rc, "out of memory"))
                           : url_error(out, DLOCK_EINVAL, "bad percent-escape in the database");
        }
        after = db + db_len;
    }
    if (*after == '?') {
        int rc = parse_query(after + 1, out);
        if (rc != DLOCK_OK)
            return rc; /* out already freed, error text set */
    }
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
    char **fields[] = {&url->user, &url->password, &url->host, &url->database,
                       &url->socket, &url->ssl_ca, &url->ssl_capath, &url->ssl_cert,
                       &url->ssl_key};
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
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == ':' || c == '/';
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

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

struct mysql_lock {
    struct dlock_held base; /* first: the core passes this; its links, generation and
                             * ttl_ms are kept by lib/session.c */
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
};

/* See "Deadlines" below. */
struct mysql_watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* on CLOCK_MONOTONIC */
    pthread_t thread;
    int started, quit;
    int fd;              /* armed: the socket to shut down, else -1 */
    int64_t deadline_ms; /* dlock__now_ms() time, INT64_MAX: none */
    int fired;
};

struct mysql_conn {
    struct dlock_conn base; /* first */
    struct dlock_mysql_url url;
    struct mysql_watchdog dog;
    int64_t deadline_ms;        /* of the round trips of the call in progress */
    MYSQL *db;                  /* NULL while disconnected */
    struct dlock_session session; /* its locks, smallest TTL, generation */
    unsigned long connection_id;
    int is_mariadb;
    unsigned int wait_timeout_s; /* the session's wait_timeout now */
    MYSQL_STMT *stmt_get_lock;
    MYSQL_STMT *stmt_is_ours;
    MYSQL_STMT *stmt_release;
    MYSQL_STMT *stmt_holder;

    /* Cancellation.  cancel_db is a second connection that sends
     * KILL QUERY; only one thread uses it at a time: the acquiring thread
     * while no wait is in progress, a kill thread while kill_in_flight. */
    pthread_mutex_t cancel_mu;
    pthread_cond_t cancel_cv;
    MYSQL *cancel_db;
    unsigned long waiting_id; /* connection id of a GET_LOCK now waiting, or 0 */
    int acquiring;            /* an acquire call is in progress */
    int cancel_requested;     /* dlock_cancel() was called during it */
    int kill_in_flight;
};

/* The one place that recovers the backend's own structs from the bases. */
static struct mysql_conn *mysql_of(struct dlock_conn *conn)
{
    return (struct mysql_conn *)conn;
}

static struct mysql_lock *mysql_lock_of(struct dlock_held *held)
{
    return (struct mysql_lock *)held;
}

/* Run a prepared statement with one string parameter (and an optional
 * double), fetching one nullable integer.  *value_null is set when NULL. */
struct statement_error {
    unsigned int code; /* mysql errno, 0 for "no row" */
    char text[256];
};

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_ok;

static void library_init(void)
{
    library_ok = mysql_library_init(0, NULL, NULL) == 0;
}

static int connection_lost_errno(unsigned int err)
{
    switch (err) {
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_CLIENT_INTERACTION_TIMEOUT:
    case ER_NET_READ_ERROR:
    case ER_NET_READ_INTERRUPTED:
    case ER_NET_ERROR_ON_WRITE:
    case ER_NET_WRITE_INTERRUPTED:
    case ER_ABORTING_CONNECTION:
    case ER_NEW_ABORTING_CONNECTION:
        return 1;
    default:
        /* Client-side errors (2000..2999) leave the connection in a state we
         * cannot trust: treat all of them as a lost session. */
        return err >= CR_MIN_ERROR && err <= CR_MAX_ERROR;
    }
}

static void set_socket_options(MYSQL *db)
{
    int fd = (int)mysql_get_socket(db);
    if (fd < 0)
        return;
    /* A child that execs must not keep the session (and its locks) alive. */
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0)
        shutdown(fd, SHUT_RDWR); /* better no session than one a child keeps */
    struct sockaddr_storage addr;
    socklen_t addrlen = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &addrlen) != 0 ||
        (addr.ss_family != AF_INET && addr.ss_family != AF_INET6))
        return;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
#ifdef TCP_KEEPIDLE
    int idle = KEEPALIVE_IDLE_S, interval = KEEPALIVE_INTERVAL_S, count = KEEPALIVE_COUNT;
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
#endif
#ifdef TCP_USER_TIMEOUT
    unsigned int user_timeout = TCP_USER_TIMEOUT_MS;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
#endif
}

static void apply_ssl_options(MYSQL *db, const struct dlock_mysql_url *url)
{
    if (url->ssl_ca)
        mysql_options(db, MYSQL_OPT_SSL_CA, url->ssl_ca);
    if (url->ssl_capath)
        mysql_options(db, MYSQL_OPT_SSL_CAPATH, url->ssl_capath);
    if (url->ssl_cert)
        mysql_options(db, MYSQL_OPT_SSL_CERT, url->ssl_cert);
    if (url->ssl_key)
        mysql_options(db, MYSQL_OPT_SSL_KEY, url->ssl_key);
    if (url->ssl_mode == DLOCK_MYSQL_SSL_DEFAULT)
        return;
#ifdef HAVE_MARIADB_CONNECTOR
    /* Connector/C has no ssl-mode: ENFORCE asks for TLS, VERIFY_SERVER_CERT
     * checks the chain and the host name together.  REQUIRED and stronger are
     * also checked after connecting (see open_handle). */
    mysql_flag enforce = url->ssl_mode >= DLOCK_MYSQL_SSL_PREFERRED;
    mysql_flag verify = url->ssl_mode >= DLOCK_MYSQL_SSL_VERIFY_CA;
    mysql_options(db, MYSQL_OPT_SSL_ENFORCE, &enforce);
    mysql_options(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
#elif defined(MYSQL_VERSION_ID) && MYSQL_VERSION_ID >= 50711
    unsigned int mode = SSL_MODE_PREFERRED;
    switch (url->ssl_mode) {
    case DLOCK_MYSQL_SSL_DISABLED: mode = SSL_MODE_DISABLED; break;
    case DLOCK_MYSQL_SSL_REQUIRED: mode = SSL_MODE_REQUIRED; break;
    case DLOCK_MYSQL_SSL_VERIFY_CA: mode = SSL_MODE_VERIFY_CA; break;
    case DLOCK_MYSQL_SSL_VERIFY_IDENTITY: mode = SSL_MODE_VERIFY_IDENTITY; break;
    default: break;
    }
    mysql_options(db, MYSQL_OPT_SSL_MODE, &mode);
#endif
}

static const char *endpoint_text(const struct dlock_mysql_url *url, char *buf, size_t len)
{
    if (url->socket)
        snprintf(buf, len, "socket %s", url->socket);
    else if (url->port)
        snprintf(buf, len, "%s:%u", url->host, url->port);
    else
        snprintf(buf, len, "%s", url->host);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Deadlines: a watchdog thread shuts the socket down for reading when a     */
/* round trip outlives its deadline; the blocked client call then fails at   */
/* once (end of file), and the session is dropped.  Works the same with      */
/* MariaDB Connector/C and libmysqlclient, blocking calls and all.           */
/* ------------------------------------------------------------------------ */

static void *watchdog_main(void *arg)
{
    struct mysql_watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        if (w->fd < 0 || w->deadline_ms == INT64_MAX) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        int64_t left = w->deadline_ms - dlock__now_ms();
        if (left <= 0) {
            shutdown(w->fd, SHUT_RD); /* not SHUT_WR: a later write must not raise SIGPIPE */
            w->fired = 1;
            w->fd = -1;
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(left / 1000);
        until.tv_nsec += (long)(left % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int watchdog_start(struct mysql_watchdog *w)
{
    pthread_condattr_t attr;
    w->fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    w->started = pthread_create(&w->thread, NULL, watchdog_main, w) == 0;
    return w->started ? DLOCK_OK : dlock__error(DLOCK_ENOMEM, "mysql: cannot start the deadline thread");
}

static void watchdog_stop(struct mysql_watchdog *w)
{
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* Round trips on `db` from now on end by deadline_ms (INT64_MAX: none, yet
 * a cancel may still set one with watch_shorten). */
static void watch(struct mysql_conn *c, MYSQL *db, int64_t deadline_ms)
{
    struct mysql_watchdog *w = &c->dog;
    pthread_mutex_lock(&w->mu);
    w->fd = db ? (int)mysql_get_socket(db) : -1;
    w->deadline_ms = deadline_ms;
    w->fired = 0;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void watch_shorten(struct mysql_conn *c, int64_t deadline_ms)
{
    struct mysql_watchdog *w = &c->dog;
    pthread_mutex_lock(&w->mu);
    if (w->fd >= 0 && deadline_ms < w->deadline_ms) {
        w->deadline_ms = deadline_ms;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* The round trips are over: 1 when the watchdog cut them short (then the
 * session must be dropped, whatever the call said). */
static int unwatch(struct mysql_conn *c)
{
    struct mysql_watchdog *w = &c->dog;
    pthread_mutex_lock(&w->mu);
    int fired = w->fired;
    w->fd = -1;
    w->fired = 0;
    pthread_mutex_unlock(&w->mu);
    return fired;
}

/* The deadline of one backend call's round trips: only a wait may be
 * unbounded; everything around it gets DLOCK_CALL_TIMEOUT_MS at most. */
static void begin_call(struct mysql_conn *c, int64_t deadline_ms)
{
    int64_t bound = dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS;
    c->deadline_ms = deadline_ms < bound ? deadline_ms : bound;
}

/* Extend and release: bounded by the lease itself, however long (a
 * heartbeat that cannot finish before the lease ends has failed). */
static void lease_call(struct mysql_conn *c, int64_t deadline_ms)
{
    c->deadline_ms = deadline_ms;
}

#define NO_ANSWER_TEXT "the server did not answer before the deadline (the session was dropped)"

/* After a statement on the session: a round trip that the watchdog cut is
 * a lost connection, whatever the library made of it. */
static int statement_end(struct mysql_conn *c, int failed, struct statement_error *error)
{
    if (!unwatch(c))
        return failed;
    error->code = CR_SERVER_LOST;
    dlock__copy_text(error->text, sizeof error->text, NO_ANSWER_TEXT);
    return -1;
}

/* Open one connection as the URL says.  On failure sets the error text.
 * io_timeout_s (0: none) bounds every read and write after connecting. */
static int open_handle(const struct dlock_mysql_url *url, MYSQL **out, unsigned int connect_timeout,
                       unsigned int io_timeout_s)
{
    char where[300];
    *out = NULL;
    pthread_once(&library_once, library_init);
    if (!library_ok)
        return dlock__error(DLOCK_EBACKEND, "mysql: the client library failed to initialize");
    MYSQL *db = mysql_init(NULL);
    if (!db)
        return dlock__error(DLOCK_ENOMEM, "mysql: out of memory");

    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    if (io_timeout_s) {
        mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &io_timeout_s);
        mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout_s);
    }
    /* An automatic reconnect would silently drop every lock of the session
     * and carry on: never.  (Off by default; MySQL >= 8.0.34 warns when the
     * option is touched at all.) */
#if defined(HAVE_MARIADB_CONNECTOR) || !defined(MYSQL_VERSION_ID) || MYSQL_VERSION_ID < 80034
    mysql_flag reconnect = 0;
    mysql_options(db, MYSQL_OPT_RECONNECT, &reconnect);
#endif
    mysql_options(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (url->socket) {
        unsigned int protocol = MYSQL_PROTOCOL_SOCKET;
        mysql_options(db, MYSQL_OPT_PROTOCOL, &protocol);
    } else if (strcmp(url->host, "localhost") != 0) {
        unsigned int protocol = MYSQL_PROTOCOL_TCP;
        mysql_options(db, MYSQL_OPT_PROTOCOL, &protocol);
    }
    apply_ssl_options(db, url);

    if (!mysql_real_connect(db, url->host ? url->host : "localhost", url->user, url->password,
                            url->database, url->port, url->socket, 0)) {
        /* Any failure to open a session is DLOCK_ECONN, the server's
         * refusal (wrong password, unknown database) included: libpq cannot
         * tell a refused login from an unreachable server, and the same
         * mistake must get the same status on every backend. */
        int status = mysql_errno(db) == CR_OUT_OF_MEMORY ? DLOCK_ENOMEM : DLOCK_ECONN;
        dlock__error(status, "mysql: cannot connect to %s: %s",
                     endpoint_text(url, where, sizeof where), mysql_error(db));
        mysql_close(db);
        return status;
    }
    set_socket_options(db);
    if (url->ssl_mode >= DLOCK_MYSQL_SSL_REQUIRED && !mysql_get_ssl_cipher(db)) {
        mysql_close(db);
        return dlock__error(DLOCK_ECONN,
                            "mysql: %s did not agree to TLS, which ssl-mode requires",
                            endpoint_text(url, where, sizeof where));
    }
    *out = db;
    return DLOCK_OK;
}

static void close_statements(struct mysql_conn *c)
{
    MYSQL_STMT **stmts[] = {&c->stmt_get_lock, &c->stmt_is_ours, &c->stmt_release,
                            &c->stmt_holder};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        if (*stmts[i])
            mysql_stmt_close(*stmts[i]);
        *stmts[i] = NULL;
    }
}

/* The session is gone: every lock on it is lost.  The next call reconnects. */
static void drop_session(struct mysql_conn *c)
{
    close_statements(c);
    if (c->db) {
        mysql_close(c->db);
        c->db = NULL;
        /* The locks keep their generation, which will never match again:
         * the core marks them lost at once. */
        dlock__session_new(&c->session);
    }
}

static int parse_version(const char *text, int *major, int *minor, int *patch)
{
    /* strtol, not sscanf: the server's text must not overflow an int (UB). */
    int *parts[3] = {major, minor, patch};
    *major = *minor = *patch = 0;
    const char *p = text;
    for (int i = 0; i < 3; i++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 9999)
            return i >= 2 ? 0 : -1;
        *parts[i] = (int)v;
        if (*end != '.')
            return i >= 1 ? 0 : -1;
        p = end + 1;
    }
    return 0;
}

/* The connect timeout: the URL's (or the default), and never past the
 * call's deadline (whole seconds, at least 1). */
static unsigned int connect_timeout_s(const struct mysql_conn *c)
{
    unsigned int s = c->url.connect_timeout_s ? c->url.connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
    int64_t left = c->deadline_ms - dlock__now_ms();
    if (left < (int64_t)s * 1000)
        s = left < 1000 ? 1u : (unsigned int)((left + 999) / 1000);
    return s;
}

/* Connect a new session if there is none.  *fresh says whether it did. */
static int ensure_session(struct mysql_conn *c, int *fresh)
{
    if (fresh)
        *fresh = 0;
    if (c->db)
        return DLOCK_OK;
    MYSQL *db;
    int rc = open_handle(&c->url, &db, connect_timeout_s(c), 0);
    if (rc != DLOCK_OK)
        return rc;
    /* One round trip: who we are, what we talk to, the idle limit in force. */
    watch(c, db, c->deadline_ms);
    int failed = mysql_query(db, "SELECT VERSION(), CONNECTION_ID(), @@session.wait_timeout") != 0;
    MYSQL_RES *res = failed ? NULL : mysql_store_result(db);
    if (unwatch(c) || failed) {
        unsigned int err = mysql_errno(db);
        rc = dlock__error(!failed || connection_lost_errno(err) ? DLOCK_ECONN : DLOCK_EBACKEND,
                          "mysql: first query failed: %s", failed ? mysql_error(db) : NO_ANSWER_TEXT);
        if (res)
            mysql_free_result(res);
        mysql_close(db);
        return rc;
    }
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (!row || !row[0] || !row[1] || !row[2]) {
        if (res)
            mysql_free_result(res);
        mysql_close(db);
        return dlock__error(DLOCK_EBACKEND, "mysql: unexpected answer to the first query");
    }
    int major, minor, patch;
    int is_mariadb = strstr(row[0], "MariaDB") != NULL;
    int known = parse_version(row[0], &major, &minor, &patch) == 0;
    long version = (long)major * 10000 + minor * 100 + patch;
    if (!known || (is_mariadb && version < 100300) || (!is_mariadb && version < 50705)) {
        char shown[64];
        dlock__copy_text(shown, sizeof shown, row[0]);
        mysql_free_result(res);
        mysql_close(db);
        return dlock__error(DLOCK_ENOTSUP,
                            "mysql: server version %s is not supported: MySQL >= 5.7.5 or "
                            "MariaDB >= 10.3 is needed (older MySQL silently releases a "
                            "held lock on the next GET_LOCK)",
                            shown);
    }
    c->db = db;
    c->is_mariadb = is_mariadb;
    c->connection_id = strtoul(row[1], NULL, 10);
    c->wait_timeout_s = (unsigned int)strtoul(row[2], NULL, 10);
    mysql_free_result(res);
    dlock__session_new(&c->session);
    if (fresh)
        *fresh = 1;
    return DLOCK_OK;
}

/* Report a failed call on the session.  A lost session is dropped and
 * reported as `lost_status` (DLOCK_ECONN, or DLOCK_ELOST for a held lock). */
static int session_error(struct mysql_conn *c, unsigned int err, const char *text,
                         const char *doing, int lost_status)
{
    if (connection_lost_errno(err)) {
        int status = err == CR_OUT_OF_MEMORY ? DLOCK_ENOMEM : lost_status;
        dlock__error(status, "mysql: connection lost while %s: %s", doing, text);
        drop_session(c);
        return status;
    }
    return dlock__error(DLOCK_EBACKEND, "mysql: %s failed: %s", doing, text);
}

static int run_int_watched(struct mysql_conn *c, MYSQL_STMT **slot, const char *sql,
                           const char *name, const double *number, long long *value,
                           int *value_null, struct statement_error *error);

static int run_int_statement(struct mysql_conn *c, MYSQL_STMT **slot, const char *sql,
                             const char *name, const double *number, long long *value,
                             int *value_null, struct statement_error *error)
{
    error->code = 0;
    error->text[0] = '\0';
    watch(c, c->db, c->deadline_ms);
    int failed = run_int_watched(c, slot, sql, name, number, value, value_null, error);
    return statement_end(c, failed, error);
}

static int run_int_watched(struct mysql_conn *c, MYSQL_STMT **slot, const char *sql,
                           const char *name, const double *number, long long *value,
                           int *value_null, struct statement_error *error)
{
    if (!*slot) {
        MYSQL_STMT *stmt = mysql_stmt_init(c->db);
        if (!stmt) {
            error->code = CR_OUT_OF_MEMORY;
            dlock__copy_text(error->text, sizeof error->text, "out of memory");
            return -1;
        }
        if (mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) != 0) {
            error->code = mysql_stmt_errno(stmt);
            dlock__copy_text(error->text, sizeof error->text, mysql_stmt_error(stmt));
            mysql_stmt_close(stmt);
            return -1;
        }
        *slot = stmt;
    }
    MYSQL_STMT *stmt = *slot;
    MYSQL_BIND params[2];
    memset(params, 0, sizeof params);
    unsigned long name_len = (unsigned long)strlen(name);
    params[0].buffer_type = MYSQL_TYPE_STRING;
    params[0].buffer = (void *)name;
    params[0].buffer_length = name_len;
    params[0].length = &name_len;
    double number_copy = number ? *number : 0.0;
    if (number) {
        params[1].buffer_type = MYSQL_TYPE_DOUBLE;
        params[1].buffer = &number_copy;
    }
    mysql_flag is_null = 0;
    MYSQL_BIND result;
    memset(&result, 0, sizeof result);
    result.buffer_type = MYSQL_TYPE_LONGLONG;
    result.buffer = value;
    result.is_null = &is_null;
    *value = 0;
    int fetch = 1;
    if (mysql_stmt_bind_param(stmt, params) != 0 || mysql_stmt_execute(stmt) != 0 ||
        mysql_stmt_bind_result(stmt, &result) != 0 ||
        (fetch = mysql_stmt_fetch(stmt)) == 1) {
        error->code = mysql_stmt_errno(stmt);
        dlock__copy_text(error->text, sizeof error->text, mysql_stmt_error(stmt));
        if (error->code == 0) {
            error->code = CR_UNKNOWN_ERROR;
            dlock__copy_text(error->text, sizeof error->text, "unknown client error");
        }
        mysql_stmt_free_result(stmt);
        return -1;
    }
    mysql_stmt_free_result(stmt);
    if (fetch == MYSQL_NO_DATA) {
        dlock__copy_text(error->text, sizeof error->text, "no row returned");
        return -1;
    }
    *value_null = is_null != 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The session lease: wait_timeout = the smallest TTL held on the session    */
/* ------------------------------------------------------------------------ */

/* wait_timeout is whole seconds: a TTL in ms, rounded up (0: none). */
static unsigned int lease_seconds(uint32_t ttl_ms)
{
    uint32_t s = ttl_ms / 1000 + (ttl_ms % 1000 ? 1 : 0);
    return s > MAX_WAIT_TIMEOUT_S ? MAX_WAIT_TIMEOUT_S : s;
}

/* The idle limit the session needs, in seconds: the smallest TTL of its
 * locks, `skip` left out and `extra_ttl_ms` (0: none) taken in. */
static unsigned int lease_needed(const struct mysql_conn *c, const struct mysql_lock *skip,
                                 uint32_t extra_ttl_ms)
{
    return lease_seconds(dlock__session_idle_ms(&c->session, skip ? &skip->base : NULL, extra_ttl_ms));
}

/* Make the session's wait_timeout `seconds` (one round trip, only when it
 * changes).  0 means "no lock needs anything": leave it. */
static int set_lease(struct mysql_conn *c, unsigned int seconds, int lost_status)
{
    if (seconds == 0 || seconds == c->wait_timeout_s)
        return DLOCK_OK;
    char sql[64];
    snprintf(sql, sizeof sql, "SET SESSION wait_timeout = %u", seconds);
    watch(c, c->db, c->deadline_ms);
    int failed = mysql_query(c->db, sql) != 0;
    if (unwatch(c))
        return session_error(c, CR_SERVER_LOST, NO_ANSWER_TEXT, "setting wait_timeout", lost_status);
    if (failed)
        return session_error(c, mysql_errno(c->db), mysql_error(c->db),
                             "setting wait_timeout", lost_status);
    c->wait_timeout_s = seconds;
    return DLOCK_OK;
}

/* ------------------------------------------------------------------------ */
/* Cancellation: KILL QUERY from a second connection, in a detached thread   */
/* ------------------------------------------------------------------------ */

static void *kill_thread_main(void *arg)
{
    struct mysql_conn *c = arg;
    mysql_thread_init();
    pthread_mutex_lock(&c->cancel_mu);
    unsigned long target = c->waiting_id;
    MYSQL *db = c->cancel_db;
    c->cancel_db = NULL; /* ours until kill_in_flight is cleared */
    /* KILL QUERY may overtake the GET_LOCK it is meant for (then it finds an
     * idle session and does nothing): repeat it until the wait is over. */
    while (target && c->waiting_id == target) {
        pthread_mutex_unlock(&c->cancel_mu);
        char sql[64];
        snprintf(sql, sizeof sql, "KILL QUERY %lu", target);
        for (int attempt = 0; attempt < 2; attempt++) {
            if (!db && open_handle(&c->url, &db, KILL_TIMEOUT_S, KILL_TIMEOUT_S) != DLOCK_OK) {
                db = NULL;
                break;
            }
            if (mysql_query(db, sql) == 0)
                break;
            /* A stale cancel connection (server restarted): reopen once. */
            mysql_close(db);
            db = NULL;
        }
        pthread_mutex_lock(&c->cancel_mu);
        if (c->waiting_id != target)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += KILL_RETRY_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cancel_cv, &c->cancel_mu, &until);
    }
    if (c->cancel_db) /* cannot happen, but never leak */
        mysql_close(c->cancel_db);
    c->cancel_db = db;
    c->kill_in_flight = 0;
    pthread_cond_broadcast(&c->cancel_cv);
    pthread_mutex_unlock(&c->cancel_mu);
    mysql_thread_end();
    return NULL;
}

static void mysql_cancel(struct dlock_conn *conn)
{
    struct mysql_conn *c = mysql_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&c->cancel_mu);
    /* Before the wait has started, the request is only noted: begin_wait()
     * sees it and the GET_LOCK is never sent. */
    if (c->acquiring)
        c->cancel_requested = 1;
    if (c->waiting_id) {
        /* A server that does not end the wait soon (stopped, say): give up. */
        watch_shorten(c, dlock__now_ms() + CANCEL_GIVEUP_MS);
        if (!c->kill_in_flight) {
            pthread_attr_t attr;
            pthread_t thread;
            c->kill_in_flight = 1;
            if (pthread_attr_init(&attr) == 0) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&thread, &attr, kill_thread_main, c) != 0)
                    c->kill_in_flight = 0;
                pthread_attr_destroy(&attr);
            } else {
                c->kill_in_flight = 0;
            }
        }
    }
    pthread_mutex_unlock(&c->cancel_mu);
}

static void acquiring(struct mysql_conn *c, int active)
{
    pthread_mutex_lock(&c->cancel_mu);
    c->acquiring = active;
    c->cancel_requested = 0;
    pthread_mutex_unlock(&c->cancel_mu);
}

/* Before a wait: make sure a cancel connection is ready (best effort; the
 * kill thread opens one itself when this failed), and publish the wait.
 * Returns 1 when a cancel came first: then there must be no wait. */
static int begin_wait(struct mysql_conn *c)
{
    pthread_mutex_lock(&c->cancel_mu);
    while (c->kill_in_flight)
        pthread_cond_wait(&c->cancel_cv, &c->cancel_mu);
    MYSQL *cancel_db = c->cancel_db;
    pthread_mutex_unlock(&c->cancel_mu);
    if (!cancel_db && open_handle(&c->url, &cancel_db, KILL_TIMEOUT_S, KILL_TIMEOUT_S) != DLOCK_OK) {
        cancel_db = NULL; /* the kill thread will try again if it must */
        dlock__clear_error();
    }
    pthread_mutex_lock(&c->cancel_mu);
    if (!c->cancel_db)
        c->cancel_db = cancel_db;
    else if (cancel_db && cancel_db != c->cancel_db)
        mysql_close(cancel_db);
    int canceled = c->cancel_requested;
    if (!canceled)
        c->waiting_id = c->connection_id;
    pthread_mutex_unlock(&c->cancel_mu);
    return canceled;
}

/* After a wait: no KILL may still be on its way to a session we go on
 * using (a dropped one takes no more statements: no need to wait for a
 * KILL to a stopped server).  Returns whether a cancel was asked for
 * during the wait. */
static int end_wait(struct mysql_conn *c)
{
    pthread_mutex_lock(&c->cancel_mu);
    c->waiting_id = 0;
    pthread_cond_broadcast(&c->cancel_cv); /* a kill thread may be pausing */
    while (c->kill_in_flight && c->db)
        pthread_cond_wait(&c->cancel_cv, &c->cancel_mu);
    int canceled = c->cancel_requested;
    pthread_mutex_unlock(&c->cancel_mu);
    return canceled;
}

/* ------------------------------------------------------------------------ */
/* The vtable                                                               */
/* ------------------------------------------------------------------------ */

static void mysql_disconnect(struct dlock_conn *conn);

static int mysql_connect(const char *url, struct dlock_conn **conn_out)
{
    struct mysql_conn *c = calloc(1, sizeof *c);
    if (!c)
        return dlock__error(DLOCK_ENOMEM, "out of memory");
    int rc = dlock__mysql_parse_url(url, &c->url);
    if (rc == DLOCK_OK) {
        rc = dlock__mysql_load();
        if (rc != DLOCK_OK)
            dlock__mysql_url_free(&c->url);
    }
    if (rc != DLOCK_OK) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->cancel_mu, NULL);
    pthread_cond_init(&c->cancel_cv, NULL);
    rc = watchdog_start(&c->dog);
    begin_call(c, INT64_MAX);
    if (rc == DLOCK_OK)
        rc = ensure_session(c, NULL);
    if (rc != DLOCK_OK) {
        mysql_disconnect(&c->base);
        return rc;
    }
    *conn_out = &c->base;
    return DLOCK_OK;
}

static void mysql_disconnect(struct dlock_conn *conn)
{
    struct mysql_conn *c = mysql_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&c->cancel_mu);
    c->waiting_id = 0;
    pthread_cond_broadcast(&c->cancel_cv);
    while (c->kill_in_flight)
        pthread_cond_wait(&c->cancel_cv, &c->cancel_mu);
    if (c->cancel_db)
        mysql_close(c->cancel_db);
    c->cancel_db = NULL;
    pthread_mutex_unlock(&c->cancel_mu);
    /* Closing the session releases whatever it still holds. */
    drop_session(c);
    watchdog_stop(&c->dog);
    pthread_cond_destroy(&c->cancel_cv);
    pthread_mutex_destroy(&c->cancel_mu);
    dlock__mysql_url_free(&c->url);
    free(c);
}

static int lock_alive(const struct mysql_conn *c, const struct mysql_lock *l)
{
    return c->db && dlock__session_holds(&c->session, &l->base);
}

static int acquire_on_session(struct mysql_conn *c, const char *name, uint32_t ttl_ms,
                              int32_t wait_ms, struct dlock_call *call, struct dlock_held **lock_out);

static int mysql_acquire(struct dlock_conn *conn, const char *name, uint32_t ttl_ms, int32_t wait_ms,
                         struct dlock_call *call, struct dlock_held **lock_out)
{
    struct mysql_conn *c = mysql_of(conn);
    begin_call(c, call->deadline_ms);
    acquiring(c, 1);
    int status = acquire_on_session(c, name, ttl_ms, wait_ms, call, lock_out);
    acquiring(c, 0);
    return status;
}

/* Does this session hold the lock (one round trip, sent at *sent_ms)?
 * 1 yes, 0 no, <0 a status (the session is dropped when it broke). */
static int held_by_session(struct mysql_conn *c, const struct mysql_lock *l, int64_t *sent_ms)
{
    long long ours = 0;
    int ours_null = 0;
    struct statement_error error;
    *sent_ms = dlock__now_ms();
    if (run_int_statement(c, &c->stmt_is_ours, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()",
                          l->server_name, NULL, &ours, &ours_null, &error) != 0)
        return session_error(c, error.code, error.text, "confirming the lock", DLOCK_ECONN);
    return !ours_null && ours == 1;
}

/* The lock is ours: register it (on failure the caller frees it).  A wait was granted at an unknown moment
 * inside its round trip (sent at sent_ms): when that took longer than
 * TTL / CONFIRM_FRACTION, one more round trip confirms the lock and its send
 * time starts the lease; a quick grant starts it at the wait's send time. */
static int lock_taken(struct mysql_conn *c, struct mysql_lock *l, const char *name, int confirm,
                      int64_t sent_ms, uint32_t ttl_ms, struct dlock_call *call, struct dlock_held **lock_out)
{
    if (confirm && dlock__now_ms() - sent_ms > (int64_t)(ttl_ms / CONFIRM_FRACTION)) {
        int held = held_by_session(c, l, &sent_ms);
        if (held <= 0)
            return held < 0 ? held
                            : dlock__error(DLOCK_EBACKEND, "mysql: lock '%s' was granted, but the "
                                                           "session does not hold it", name);
    }
    call->lease_start_ms = sent_ms;
    dlock__session_add(&c->session, &l->base);
    *lock_out = &l->base;
    return DLOCK_OK;
}

/* GET_LOCK's timeout for what is left of the wait. */
static double get_lock_timeout(const struct mysql_conn *c, int32_t wait_ms, int64_t wait_end_ms)
{
    if (wait_ms == DLOCK_WAIT_FOREVER)
        return FOREVER_CHUNK_S;
    if (wait_ms == 0)
        return 0;
    int64_t left = wait_end_ms - dlock__now_ms();
    if (left < 0)
        left = 0;
    /* MariaDB honours fractions of a second; MySQL takes whole seconds, so
     * round up there rather than give up early. */
    return c->is_mariadb ? (double)left / 1000.0 : (double)((left + 999) / 1000);
}

/* One GET_LOCK round trip, bounded by the call's deadline (a cancel may cut
 * it shorter).  Returns what run_int_statement does; *canceled: whether a
 * cancel came during it.  A broken session is dropped here, before the wait
 * ends, so that end_wait() need not wait for a KILL to a dead session. */
static int get_lock_round(struct mysql_conn *c, struct mysql_lock *l, double timeout_s,
                          struct dlock_call *call, long long *granted, int *granted_null,
                          struct statement_error *error, int *canceled, int waiting)
{
    c->deadline_ms = call->deadline_ms; /* the wait itself: as long as the caller allows */
    int failed = run_int_statement(c, &c->stmt_get_lock, "SELECT GET_LOCK(?, ?)", l->server_name,
                                   &timeout_s, granted, granted_null, error);
    begin_call(c, call->deadline_ms);
    if (failed && connection_lost_errno(error->code))
        session_error(c, error->code, error->text, "waiting in GET_LOCK", DLOCK_ECONN);
    *canceled = waiting ? end_wait(c) : 0;
    return failed;
}

/* GET_LOCK ended in an error or NULL (a KILL QUERY, ours or not, may land
 * just after the grant): was the lock granted anyway?  Then it is released
 * (our cancel) or kept (someone else's KILL QUERY), never held unknowingly.
 * DLOCK_OK: kept; 1: not held; <0 a status. */
static int granted_anyway(struct mysql_conn *c, struct mysql_lock *l, const char *name,
                          int canceled, uint32_t ttl_ms, struct dlock_call *call, struct dlock_held **lock_out)
{
    int64_t sent_ms;
    int held = held_by_session(c, l, &sent_ms);
    if (held <= 0)
        return held < 0 ? held : 1;
    if (!canceled)
        return lock_taken(c, l, name, 0, sent_ms, ttl_ms, call, lock_out);
    long long released = 0;
    int released_null = 0;
    struct statement_error error;
    if (run_int_statement(c, &c->stmt_release, "SELECT RELEASE_LOCK(?)", l->server_name, NULL,
                          &released, &released_null, &error) != 0 ||
        released_null || released != 1)
        drop_session(c); /* ending the session surely lets go */
    return 1;
}

/* A session with the idle limit this lock needs, set before GET_LOCK: once
 * granted, the lock must never sit on a session that outlives its TTL.
 * *previous: the limit before.  DLOCK_OK; 1: try again on a new session;
 * else a status. */
static int session_for(struct mysql_conn *c, const struct mysql_lock *l, int attempt, int *fresh,
                       unsigned int *previous)
{
    int status = ensure_session(c, fresh);
    if (status != DLOCK_OK)
        return status;
    *previous = c->wait_timeout_s;
    status = set_lease(c, lease_needed(c, NULL, l->base.ttl_ms), DLOCK_ECONN);
    if (status == DLOCK_ECONN && dlock__session_may_retry(attempt, *fresh, 0))
        return 1;
    return status;
}

/* GET_LOCK's connection broke (the session is already dropped).  1: try
 * once more on a new session, for the time that is left (the session died
 * under us: idle timeout, restart, KILL); else the status. */
static int get_lock_broke(const char *name, const struct statement_error *error, int canceled,
                          int attempt, int fresh, int time_left)
{
    int no_answer = strcmp(error->text, NO_ANSWER_TEXT) == 0;
    if (canceled)
        return dlock__error(DLOCK_ECANCELED, "mysql: the wait for '%s' was cancelled%s", name,
                            no_answer ? " (the server did not act on it: the session was dropped)" : "");
    if (time_left && dlock__session_may_retry(attempt, fresh, no_answer))
        return 1;
    return dlock__error(DLOCK_ECONN, "mysql: connection lost while waiting in GET_LOCK: %s", error->text);
}

/* GET_LOCK did not give us the lock and the session lives on.  1: wait
 * again (a year went by); else the status. */
static int after_refusal(struct mysql_conn *c, const char *name, int32_t wait_ms,
                         unsigned int previous, int failed, int granted_null, int canceled,
                         const struct statement_error *error)
{
    /* The idle limit must suit the locks still held there, not the one we
     * did not get. */
    if (c->db && c->wait_timeout_s != previous && c->session.locks) {
        int lease_status = set_lease(c, lease_needed(c, NULL, 0), DLOCK_ECONN);
        if (lease_status != DLOCK_OK)
            return lease_status;
    }
    if (canceled)
        return dlock__error(DLOCK_ECANCELED, "mysql: the wait for '%s' was cancelled", name);
    if (failed)
        return dlock__error(DLOCK_EBACKEND, "mysql: GET_LOCK for '%s' failed: %s", name, error->text);
    if (granted_null)
        return dlock__error(DLOCK_EBACKEND,
                            "mysql: GET_LOCK for '%s' returned NULL (an error on the server)", name);
    if (wait_ms == DLOCK_WAIT_FOREVER)
        return 1;
    return dlock__error(DLOCK_EBUSY, "mysql: lock '%s' is held by another session", name);
}

static int acquire_on_session(struct mysql_conn *c, const char *name, uint32_t ttl_ms,
                              int32_t wait_ms, struct dlock_call *call, struct dlock_held **lock_out)
{
    struct mysql_lock *l = calloc(1, sizeof *l);
    if (!l)
        return dlock__error(DLOCK_ENOMEM, "out of memory");
    dlock__mysql_lock_name(name, l->server_name, sizeof l->server_name);
    l->base.ttl_ms = ttl_ms;

    int64_t wait_end_ms = wait_ms > 0 ? dlock__now_ms() + wait_ms : 0;
    int status;
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        unsigned int previous = 0;
        status = session_for(c, l, attempt, &fresh, &previous);
        if (status == 1)
            continue;
        if (status != DLOCK_OK)
            break;
        int waiting = wait_ms != 0;
        if (waiting && begin_wait(c)) {
            if (c->wait_timeout_s != previous && c->session.locks)
                (void)set_lease(c, lease_needed(c, NULL, 0), DLOCK_ECONN);
            status = dlock__error(DLOCK_ECANCELED, "mysql: the wait for '%s' was cancelled",
                                  name);
            break;
        }
        long long granted = 0;
        int granted_null = 0, canceled = 0;
        struct statement_error error;
        int64_t sent_ms = dlock__now_ms();
        int failed = get_lock_round(c, l, get_lock_timeout(c, wait_ms, wait_end_ms), call, &granted,
                                    &granted_null, &error, &canceled, waiting);
        if (!failed && !granted_null && granted == 1) {
            status = lock_taken(c, l, name, waiting, sent_ms, ttl_ms, call, lock_out);
            if (status == DLOCK_OK)
                return DLOCK_OK;
            break;
        }
        if (failed && connection_lost_errno(error.code)) {
            status = get_lock_broke(name, &error, canceled, attempt, fresh,
                                    wait_ms <= 0 || dlock__now_ms() < wait_end_ms);
            if (status == 1)
                continue;
            break;
        }
        if (failed || granted_null) {
            status = granted_anyway(c, l, name, canceled, ttl_ms, call, lock_out);
            if (status == DLOCK_OK)
                return DLOCK_OK;
            if (status < 0)
                break;
        }
        status = after_refusal(c, name, wait_ms, previous, failed, granted_null, canceled, &error);
        if (status != 1)
            break;
    }
    free(l);
    return status;
}

static int mysql_extend(struct dlock_conn *conn, struct dlock_held *held, const char *name, uint32_t ttl_ms, struct dlock_call *call)
{
    struct mysql_conn *c = mysql_of(conn);
    lease_call(c, call->deadline_ms);
    struct mysql_lock *l = mysql_lock_of(held);
    if (!l || !lock_alive(c, l))
        return dlock__error(DLOCK_ELOST,
                            "mysql: lock '%s' was lost with the session that held it", name);
    int status = set_lease(c, lease_needed(c, l, ttl_ms), DLOCK_ELOST);
    if (status != DLOCK_OK)
        return status;
    long long ours = 0;
    int ours_null = 0;
    struct statement_error error;
    /* Any statement also resets the session's idle timer: that is the renewal. */
    if (run_int_statement(c, &c->stmt_is_ours, "SELECT IS_USED_LOCK(?) = CONNECTION_ID()",
                          l->server_name, NULL, &ours, &ours_null, &error) != 0)
        return session_error(c, error.code, error.text, "confirming the lock", DLOCK_ELOST);
    if (ours_null || ours != 1)
        return dlock__error(DLOCK_ELOST, "mysql: lock '%s' is no longer held by this session",
                            name);
    if (ttl_ms != l->base.ttl_ms) /* rare: a heartbeat keeps its TTL */
        dlock__session_retime(&c->session, &l->base, ttl_ms);
    return DLOCK_OK;
}

static int mysql_release(struct dlock_conn *conn, struct dlock_held *held, const char *name, struct dlock_call *call)
{
    struct mysql_conn *c = mysql_of(conn);
    lease_call(c, call->deadline_ms);
    struct mysql_lock *l = mysql_lock_of(held);
    if (!l)
        return DLOCK_OK;
    int alive = lock_alive(c, l);
    dlock__session_remove(&c->session, &l->base);
    int status = DLOCK_OK;
    if (!alive) {
        status = dlock__error(DLOCK_ELOST,
                              "mysql: lock '%s' was lost with the session that held it", name);
    } else {
        long long released = 0;
        int released_null = 0;
        struct statement_error error;
        if (run_int_statement(c, &c->stmt_release, "SELECT RELEASE_LOCK(?)", l->server_name,
                              NULL, &released, &released_null, &error) != 0) {
            status = session_error(c, error.code, error.text, "releasing the lock",
                                   DLOCK_ELOST);
        } else if (released_null) {
            status = dlock__error(DLOCK_ELOST, "mysql: lock '%s' was not held any more", name);
        } else if (released != 1) {
            status = dlock__error(DLOCK_ELOST,
                                  "mysql: lock '%s' is held by another session now", name);
        } else if (c->session.locks) {
            /* The locks left may allow a longer idle limit than this one did. */
            int lease_status = set_lease(c, lease_needed(c, NULL, 0), DLOCK_ECONN);
            if (lease_status != DLOCK_OK)
                dlock__clear_error(); /* released all the same; the others will know */
        }
    }
    free(l);
    return status;
}

static int mysql_holder(struct dlock_conn *conn, const char *name, char *buf, size_t buflen, struct dlock_call *call)
{
    struct mysql_conn *c = mysql_of(conn);
    begin_call(c, call->deadline_ms);
    char server_name[DLOCK_MYSQL_LOCK_NAME_MAX + 1];
    dlock__mysql_lock_name(name, server_name, sizeof server_name);
    static const char sql[] =
        "SELECT h.id, p.USER, p.HOST, p.TIME, p.ID = CONNECTION_ID()"
        " FROM (SELECT IS_USED_LOCK(?) AS id) AS h"
        " LEFT JOIN information_schema.PROCESSLIST AS p ON p.ID = h.id";
    for (int attempt = 0;; attempt++) {
        int fresh = 0;
        int status = ensure_session(c, &fresh);
        if (status != DLOCK_OK)
            return status;
        if (!c->stmt_holder) {
            watch(c, c->db, c->deadline_ms);
            MYSQL_STMT *stmt = mysql_stmt_init(c->db);
            if (!stmt)
                return dlock__error(DLOCK_ENOMEM, "out of memory");
            int failed = mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) != 0;
            if (unwatch(c) || failed) {
                unsigned int err = failed ? mysql_stmt_errno(stmt) : CR_SERVER_LOST;
                char text[256];
                dlock__copy_text(text, sizeof text, failed ? mysql_stmt_error(stmt) : NO_ANSWER_TEXT);
                mysql_stmt_close(stmt);
                status = session_error(c, err, text, "asking for the holder", DLOCK_ECONN);
                if (status == DLOCK_ECONN && dlock__session_may_retry(attempt, fresh, 0))
                    continue;
                return status;
            }
            c->stmt_holder = stmt;
        }
        MYSQL_STMT *stmt = c->stmt_holder;
        MYSQL_BIND param;
        memset(&param, 0, sizeof param);
        unsigned long name_len = (unsigned long)strlen(server_name);
        param.buffer_type = MYSQL_TYPE_STRING;
        param.buffer = server_name;
        param.buffer_length = name_len;
        param.length = &name_len;

        long long id = 0, seconds = 0, is_self = 0;
        char user[129], host[262];
        unsigned long user_len = 0, host_len = 0;
        mysql_flag nulls[5] = {0, 0, 0, 0, 0};
        MYSQL_BIND cols[5];
        memset(cols, 0, sizeof cols);
        cols[0].buffer_type = MYSQL_TYPE_LONGLONG;
        cols[0].buffer = &id;
        cols[1].buffer_type = MYSQL_TYPE_STRING;
        cols[1].buffer = user;
        cols[1].buffer_length = sizeof user - 1;
        cols[1].length = &user_len;
        cols[2].buffer_type = MYSQL_TYPE_STRING;
        cols[2].buffer = host;
        cols[2].buffer_length = sizeof host - 1;
        cols[2].length = &host_len;
        cols[3].buffer_type = MYSQL_TYPE_LONGLONG;
        cols[3].buffer = &seconds;
        cols[4].buffer_type = MYSQL_TYPE_LONGLONG;
        cols[4].buffer = &is_self;
        for (int i = 0; i < 5; i++)
            cols[i].is_null = &nulls[i];

        int fetch = 1;
        watch(c, c->db, c->deadline_ms);
        int failed = mysql_stmt_bind_param(stmt, &param) != 0 || mysql_stmt_execute(stmt) != 0 ||
                     mysql_stmt_bind_result(stmt, cols) != 0 || ((fetch = mysql_stmt_fetch(stmt)) == 1);
        int cut = unwatch(c);
        if (failed || cut) {
            unsigned int err = cut ? CR_SERVER_LOST : mysql_stmt_errno(stmt);
            char text[256];
            dlock__copy_text(text, sizeof text, cut ? NO_ANSWER_TEXT : mysql_stmt_error(stmt));
            mysql_stmt_free_result(stmt);
            status = session_error(c, err ? err : CR_UNKNOWN_ERROR, text,
                                   "asking for the holder", DLOCK_ECONN);
            if (status == DLOCK_ECONN && dlock__session_may_retry(attempt, fresh, cut))
                continue;
            return status;
        }
        mysql_stmt_free_result(stmt);
        if (fetch == MYSQL_NO_DATA || nulls[0])
            return 0; /* nobody holds it */
        user[user_len < sizeof user ? user_len : sizeof user - 1] = '\0';
        host[host_len < sizeof host ? host_len : sizeof host - 1] = '\0';
        char text[512];
        if (nulls[1]) {
            snprintf(text, sizeof text,
                     "mysql connection %lld (not in the visible process list: the PROCESS "
                     "privilege shows other users' connections)",
                     id);
        } else {
            snprintf(text, sizeof text,
                     "mysql connection %lld, user %s from %s, last active %llds ago%s", id,
                     user, nulls[2] ? "?" : host, nulls[3] ? 0LL : seconds,
                     (!nulls[4] && is_self) ? " (this client)" : "");
        }
        if (buf && buflen)
            dlock__copy_text(buf, buflen, text);
        return 1;
    }
}

/* Under the core's cancel mutex, when a wait has ended: forget a cancel that
 * came too late (end_wait() has already made sure that no KILL QUERY is
 * still on its way to a session we go on using). */
static void mysql_cancel_clear(struct dlock_conn *conn)
{
    struct mysql_conn *c = mysql_of(conn);
    pthread_mutex_lock(&c->cancel_mu);
    c->cancel_requested = 0;
    pthread_mutex_unlock(&c->cancel_mu);
}

/* Changed by every connect and every drop. */
static uint64_t mysql_session_generation(struct dlock_conn *conn)
{
    return mysql_of(conn)->session.generation;
}

static uint32_t mysql_session_ttl_ms(struct dlock_conn *conn)
{
    struct mysql_conn *c = mysql_of(conn);
    if (!c || !c->db || c->wait_timeout_s == 0)
        return 0;
    uint64_t ms = (uint64_t)c->wait_timeout_s * 1000u;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static const char *const mysql_schemes[] = {"mysql", "mariadb", NULL};

const struct dlock_backend dlock__backend_mysql = {
    .name = "mysql",
    .schemes = mysql_schemes,
    .connect = mysql_connect,
    .disconnect = mysql_disconnect,
    .acquire = mysql_acquire,
    .extend = mysql_extend,
    .release = mysql_release,
    .holder = mysql_holder,
    .cancel = mysql_cancel,
    .session_ttl_ms = mysql_session_ttl_ms,
    .cancel_clear = mysql_cancel_clear,
    .session_generation = mysql_session_generation,
};
