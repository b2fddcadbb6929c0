/*
 * The MySQL backend's server session: opening connections, the first
 * query, running statements within the call's deadline, telling a broken
 * session from a failed statement, and the session's idle limit
 * (wait_timeout = the smallest TTL held on it).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "backend.h"
#include "ops.h"
#include <mysqld_error.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Server errors that mean the session is gone (not only the statement). */
#ifndef ER_CONNECTION_KILLED
#define ER_CONNECTION_KILLED 1927 /* MariaDB: KILL of this connection */
#endif
#ifndef ER_CLIENT_INTERACTION_TIMEOUT
#define ER_CLIENT_INTERACTION_TIMEOUT 4031 /* MySQL 8.0.24+: wait_timeout hit */
#endif

/* TCP settings that bound how long a call can hang on a vanished server. */
#define TCP_USER_TIMEOUT_MS 20000
#define KEEPALIVE_IDLE_S 10
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 2

#define DEFAULT_CONNECT_TIMEOUT_S 10
/* wait_timeout's upper bound on both servers (one year). */
#define MAX_WAIT_TIMEOUT_S 31536000u

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_ok;

static void library_init(void)
{
    library_ok = mysql_library_init(0, NULL, NULL) == 0;
}

int dlock__mysql_connection_lost(unsigned int err)
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
     * also checked after connecting (see dlock__mysql_open_handle). */
    mysqlbe_flag enforce = url->ssl_mode >= DLOCK_MYSQL_SSL_PREFERRED;
    mysqlbe_flag verify = url->ssl_mode >= DLOCK_MYSQL_SSL_VERIFY_CA;
    mysql_options(db, MYSQL_OPT_SSL_ENFORCE, &enforce);
    mysql_options(db, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
#elif defined(MYSQL_VERSION_ID) && MYSQL_VERSION_ID >= 50711
    unsigned int mode = SSL_MODE_PREFERRED;
    switch (url->ssl_mode) {
    case DLOCK_MYSQL_SSL_DISABLED:
        mode = SSL_MODE_DISABLED;
        break;
    case DLOCK_MYSQL_SSL_REQUIRED:
        mode = SSL_MODE_REQUIRED;
        break;
    case DLOCK_MYSQL_SSL_VERIFY_CA:
        mode = SSL_MODE_VERIFY_CA;
        break;
    case DLOCK_MYSQL_SSL_VERIFY_IDENTITY:
        mode = SSL_MODE_VERIFY_IDENTITY;
        break;
    default:
        break;
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

/* The deadline of one backend call's round trips: only a wait may be
 * unbounded; everything around it gets DLOCK_CALL_TIMEOUT_MS at most. */
void dlock__mysql_begin_call(struct mysqlbe_conn *c, int64_t deadline_ms)
{
    int64_t bound = dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS;
    c->deadline_ms = deadline_ms < bound ? deadline_ms : bound;
}

/* Extend and release: bounded by the lease itself, however long (a
 * heartbeat that cannot finish before the lease ends has failed). */
void dlock__mysql_lease_call(struct mysqlbe_conn *c, int64_t deadline_ms)
{
    c->deadline_ms = deadline_ms;
}

/* After a statement on the session: a round trip that the watchdog cut is
 * a lost connection, whatever the library made of it. */
static int statement_end(struct mysqlbe_conn *c, int failed, struct statement_error *error)
{
    if (!dlock__mysql_unwatch(c))
        return failed;
    error->code = CR_SERVER_LOST;
    dlock__copy_text(error->text, sizeof error->text, NO_ANSWER_TEXT);
    return -1;
}

/* Open one connection as the URL says.  On failure sets the error text.
 * io_timeout_s (0: none) bounds every read and write after connecting. */
int dlock__mysql_open_handle(const struct dlock_mysql_url *url, MYSQL **out, unsigned int connect_timeout,
                        unsigned int io_timeout_s)
{
    char where[300];
    *out = NULL;
    pthread_once(&library_once, library_init);
    if (!library_ok)
        return dlock__error(DLOCK_EBACKEND, "the client library failed to initialize");
    MYSQL *db = mysql_init(NULL);
    if (!db)
        return dlock__oom();

    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    if (io_timeout_s) {
        mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &io_timeout_s);
        mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout_s);
    }
    /* An automatic reconnect would silently drop every lock of the session
     * and carry on: never.  (Off by default; MySQL >= 8.0.34 warns when the
     * option is touched at all.) */
#if defined(HAVE_MARIADB_CONNECTOR) || !defined(MYSQL_VERSION_ID) || MYSQL_VERSION_ID < 80034
    mysqlbe_flag reconnect = 0;
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

    if (!mysql_real_connect(db, url->host ? url->host : "localhost", url->user, url->password, url->database, url->port,
                            url->socket, 0)) {
        /* Any failure to open a session is DLOCK_ECONN, the server's
         * refusal (wrong password, unknown database) included: libpq cannot
         * tell a refused login from an unreachable server, and the same
         * mistake must get the same status on every backend. */
        int status = mysql_errno(db) == CR_OUT_OF_MEMORY ? DLOCK_ENOMEM : DLOCK_ECONN;
        dlock__error(status, "cannot connect to %s: %s", endpoint_text(url, where, sizeof where), mysql_error(db));
        mysql_close(db);
        return status;
    }
    set_socket_options(db);
    if (url->ssl_mode >= DLOCK_MYSQL_SSL_REQUIRED && !mysql_get_ssl_cipher(db)) {
        mysql_close(db);
        return dlock__error(DLOCK_ECONN, "%s did not agree to TLS, which ssl-mode requires",
                            endpoint_text(url, where, sizeof where));
    }
    *out = db;
    return DLOCK_OK;
}

static void close_statements(struct mysqlbe_conn *c)
{
    MYSQL_STMT **stmts[] = {&c->stmt_get_lock, &c->stmt_is_ours, &c->stmt_release, &c->stmt_holder};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        if (*stmts[i])
            mysql_stmt_close(*stmts[i]);
        *stmts[i] = NULL;
    }
    dlock__mysql_ops_close(c);
}

/* The session is gone: every lock on it is lost.  The next call reconnects. */
void dlock__mysql_drop_session(struct mysqlbe_conn *c)
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
static unsigned int connect_timeout_s(struct mysqlbe_conn *c)
{
    unsigned int s = c->url.connect_timeout_s ? c->url.connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
    int64_t left = dlock__mysql_watch_capped(c, c->deadline_ms) - dlock__now_ms();
    if (left < (int64_t)s * 1000)
        s = left < 1000 ? 1u : (unsigned int)((left + 999) / 1000);
    return s;
}

/* Connect a new session if there is none.  *fresh says whether it did. */
int dlock__mysql_ensure_session(struct mysqlbe_conn *c, int *fresh)
{
    if (fresh)
        *fresh = 0;
    if (c->db)
        return DLOCK_OK;
    MYSQL *db;
    int rc = dlock__mysql_open_handle(&c->url, &db, connect_timeout_s(c), 0);
    if (rc != DLOCK_OK)
        return rc;
    /* One round trip: who we are, what we talk to, the idle limit in force. */
    dlock__mysql_watch(c, db, c->deadline_ms);
    int failed = mysql_query(db, "SELECT VERSION(), CONNECTION_ID(), @@session.wait_timeout,"
                                 " @@global.innodb_flush_log_at_trx_commit, @@session.binlog_format") != 0;
    MYSQL_RES *res = failed ? NULL : mysql_store_result(db);
    if (dlock__mysql_unwatch(c) || failed) {
        unsigned int err = mysql_errno(db);
        rc = dlock__error(!failed || dlock__mysql_connection_lost(err) ? DLOCK_ECONN : DLOCK_EBACKEND,
                          "first query failed: %s", failed ? mysql_error(db) : NO_ANSWER_TEXT);
        if (res)
            mysql_free_result(res);
        mysql_close(db);
        return rc;
    }
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (!row || !row[0] || !row[1] || !row[2] || !row[3] || !row[4]) {
        if (res)
            mysql_free_result(res);
        mysql_close(db);
        return dlock__error(DLOCK_EBACKEND, "unexpected answer to the first query");
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
                            "server version %s is not supported: MySQL >= 5.7.5 or "
                            "MariaDB >= 10.3 is needed (older MySQL silently releases a "
                            "held lock on the next GET_LOCK)",
                            shown);
    }
    c->db = db;
    c->is_mariadb = is_mariadb;
    c->connection_id = strtoul(row[1], NULL, 10);
    c->wait_timeout_s = (unsigned int)strtoul(row[2], NULL, 10);
    c->flush_at_commit = (int)strtol(row[3], NULL, 10);
    c->binlog_statement = strcmp(row[4], "STATEMENT") == 0;
    mysql_free_result(res);
    dlock__session_new(&c->session);
    if (fresh)
        *fresh = 1;
    return DLOCK_OK;
}

/* Report a failed call on the session.  A lost session is dropped and
 * reported as `lost_status` (DLOCK_ECONN, or DLOCK_ELOST for a held lock). */
int dlock__mysql_session_error(struct mysqlbe_conn *c, unsigned int err, const char *text, const char *doing,
                          int lost_status)
{
    if (dlock__mysql_connection_lost(err)) {
        int status = err == CR_OUT_OF_MEMORY ? DLOCK_ENOMEM : lost_status;
        dlock__error(status, "connection lost while %s: %s", doing, text);
        dlock__mysql_drop_session(c);
        return status;
    }
    return dlock__error(DLOCK_EBACKEND, "%s failed: %s", doing, text);
}

static int run_int_watched(struct mysqlbe_conn *c, MYSQL_STMT **slot, const char *sql, const char *name,
                           const double *number, long long *value, int *value_null, struct statement_error *error);

int dlock__mysql_run_int(struct mysqlbe_conn *c, MYSQL_STMT **slot, const char *sql, const char *name, const double *number,
                    long long *value, int *value_null, struct statement_error *error)
{
    error->code = 0;
    error->text[0] = '\0';
    dlock__mysql_watch(c, c->db, c->deadline_ms);
    int failed = run_int_watched(c, slot, sql, name, number, value, value_null, error);
    return statement_end(c, failed, error);
}

void dlock__mysql_error_from(struct statement_error *error, MYSQL_STMT *stmt)
{
    error->code = mysql_stmt_errno(stmt);
    dlock__copy_text(error->text, sizeof error->text, mysql_stmt_error(stmt));
    if (error->code == 0) {
        error->code = CR_UNKNOWN_ERROR;
        dlock__copy_text(error->text, sizeof error->text, "unknown client error");
    }
}

int dlock__mysql_prepare(struct mysqlbe_conn *c, MYSQL_STMT **slot, const char *sql, struct statement_error *error)
{
    if (*slot)
        return 0;
    MYSQL_STMT *stmt = mysql_stmt_init(c->db);
    if (!stmt) {
        error->code = CR_OUT_OF_MEMORY;
        dlock__copy_text(error->text, sizeof error->text, dlock_strerror(DLOCK_ENOMEM));
        return -1;
    }
    if (mysql_stmt_prepare(stmt, sql, (unsigned long)strlen(sql)) != 0) {
        dlock__mysql_error_from(error, stmt);
        mysql_stmt_close(stmt);
        return -1;
    }
    *slot = stmt;
    return 0;
}

static int run_int_watched(struct mysqlbe_conn *c, MYSQL_STMT **slot, const char *sql, const char *name,
                           const double *number, long long *value, int *value_null, struct statement_error *error)
{
    if (dlock__mysql_prepare(c, slot, sql, error) != 0)
        return -1;
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
    mysqlbe_flag is_null = 0;
    MYSQL_BIND result;
    memset(&result, 0, sizeof result);
    result.buffer_type = MYSQL_TYPE_LONGLONG;
    result.buffer = value;
    result.is_null = &is_null;
    *value = 0;
    int fetch = 1;
    if (mysql_stmt_bind_param(stmt, params) != 0 || mysql_stmt_execute(stmt) != 0 ||
        mysql_stmt_bind_result(stmt, &result) != 0 || (fetch = mysql_stmt_fetch(stmt)) == 1) {
        dlock__mysql_error_from(error, stmt);
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
unsigned int dlock__mysql_lease_needed(const struct mysqlbe_conn *c, const struct mysqlbe_lock *skip, uint32_t extra_ttl_ms)
{
    return lease_seconds(dlock__session_idle_ms(&c->session, skip ? &skip->base : NULL, extra_ttl_ms));
}

/* Make the session's wait_timeout `seconds` (one round trip, only when it
 * changes).  0 means "no lock needs anything": leave it. */
int dlock__mysql_set_lease(struct mysqlbe_conn *c, unsigned int seconds, int lost_status)
{
    if (seconds == 0 || seconds == c->wait_timeout_s)
        return DLOCK_OK;
    char sql[64];
    snprintf(sql, sizeof sql, "SET SESSION wait_timeout = %u", seconds);
    dlock__mysql_watch(c, c->db, c->deadline_ms);
    int failed = mysql_query(c->db, sql) != 0;
    if (dlock__mysql_unwatch(c))
        return dlock__mysql_session_error(c, CR_SERVER_LOST, NO_ANSWER_TEXT, "setting wait_timeout", lost_status);
    if (failed)
        return dlock__mysql_session_error(c, mysql_errno(c->db), mysql_error(c->db), "setting wait_timeout", lost_status);
    c->wait_timeout_s = seconds;
    return DLOCK_OK;
}

/* Lease rows and fence counters are InnoDB commits that must survive a
 * crash of the server's host before the acquire returns: with
 * innodb_flush_log_at_trx_commit other than 1 the last commits are lost
 * with it (0: with a crash of mysqld alone), and a token or a lease is
 * handed out twice.  The setting cannot be forced per statement, so a take
 * that depends on it is refused (docs/mysql.md, "Requirements"), unless the
 * URL says flush-check=off. */
int dlock__mysql_check_durable(const struct mysqlbe_conn *c)
{
    if (c->flush_at_commit == 1 || c->url.flush_check_off)
        return DLOCK_OK;
    return dlock__error(DLOCK_ENOTSUP,
                        "%s needs innodb_flush_log_at_trx_commit = 1 on the server (it is %d: a crash can lose the "
                        "last takes, and hand a %s out twice); set it to 1, or add flush-check=off to the URL to "
                        "take the risk (docs/mysql.md)",
                        c->lease ? "lease mode" : "fencing=on", c->flush_at_commit,
                        c->lease ? "lease" : "fencing token");
}
