/*
 * The etcd backend's connection: the parsed URL, a multi handle with three
 * easy handles (requests, a second request sent beside the first, and the
 * watch stream of a wait), the cancel
 * descriptor and the authentication token.  No lock lives in a connection:
 * a lock is a key on a lease, and a new TCP connection loses nothing.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"

static size_t buf_append(struct etcd_buf *b, const char *data, size_t len)
{
    if (b->len + len + 1 > ETCD_BODY_MAX) {
        b->overflow = 1;
        return 0; /* libcurl ends the transfer */
    }
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    return buf_append(userdata, data, size * n);
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
    etcd_conn *c = userdata;
    size_t len = size * n;
    if (len > 5 && strncasecmp(data, "date:", 5) == 0) {
        size_t skip = 5;
        while (skip < len && data[skip] == ' ')
            skip++;
        size_t keep = len - skip;
        while (keep && (data[skip + keep - 1] == '\r' || data[skip + keep - 1] == '\n'))
            keep--;
        if (keep >= sizeof c->date)
            keep = sizeof c->date - 1;
        memcpy(c->date, data + skip, keep);
        c->date[keep] = '\0';
    }
    return len;
}

/* Every socket libcurl opens is close-on-exec: a job that dlock run starts
 * never inherits a connection to the store. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    (void)clientp;
    (void)purpose;
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

int dlock__etcd_easy_setup(etcd_conn *c, CURL *easy)
{
    int ok = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, open_socket) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_PROXY, "") == CURLE_OK && /* never a proxy from the environment */
             curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_HEADERDATA, c) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_WRITEDATA,
                              easy == c->watch   ? &c->watch_body
                              : easy == c->easy2 ? &c->body2
                                                 : &c->body) == CURLE_OK;
    if (ok && c->url.tls) {
        ok = curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
             curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
             (!c->url.cafile || curl_easy_setopt(easy, CURLOPT_CAINFO, c->url.cafile) == CURLE_OK);
    }
    return ok ? DLOCK_OK : dlock__error(DLOCK_ENOTSUP, "the libcurl loaded lacks an option the etcd backend needs");
}

/* The descriptors open now, as a bitmap of the first FD_SNAPSHOT. */
#define FD_SNAPSHOT 4096
static void open_fds(unsigned char *bits)
{
    memset(bits, 0, FD_SNAPSHOT / 8);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        long fd = strtol(e->d_name, NULL, 10);
        if (fd > 2 && fd < FD_SNAPSHOT && fd != dirfd(d))
            bits[fd / 8] |= (unsigned char)(1u << (fd % 8));
    }
    closedir(d);
}

/* libcurl 7.x opens its multi handle's wakeup socketpair without
 * close-on-exec (fixed in 8.x): the descriptors that curl_multi_init()
 * added are marked here.  A descriptor that another thread opened at the
 * same moment may be marked too: close-on-exec is what libdlock asks of
 * every descriptor it has a hand in, and a program that hands one to a
 * child sets its flags at the fork. */
static CURLM *multi_init_cloexec(void)
{
    unsigned char before[FD_SNAPSHOT / 8], after[FD_SNAPSHOT / 8];
    open_fds(before);
    CURLM *multi = curl_multi_init();
    open_fds(after);
    for (int fd = 3; fd < FD_SNAPSHOT; fd++) {
        unsigned char bit = (unsigned char)(1u << (fd % 8));
        if ((after[fd / 8] & bit) && !(before[fd / 8] & bit)) {
            int flags = fcntl(fd, F_GETFD);
            if (flags >= 0 && !(flags & FD_CLOEXEC))
                (void)fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }
    return multi;
}

static void etcd_disconnect_conn(etcd_conn *c)
{
    if (c->easy)
        curl_easy_cleanup(c->easy);
    if (c->easy2)
        curl_easy_cleanup(c->easy2);
    if (c->watch)
        curl_easy_cleanup(c->watch);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    dlock__etcd_buf_free(&c->body);
    dlock__etcd_buf_free(&c->body2);
    dlock__etcd_buf_free(&c->watch_body);
    if (c->token) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    if (c->cancel_fd >= 0)
        close(c->cancel_fd);
    dlock__etcd_url_free(&c->url);
    free(c);
}

void dlock__etcd_disconnect(struct dlock_conn *conn)
{
    if (conn)
        etcd_disconnect_conn(etcd_of(conn));
}

static int check_store(etcd_conn *c)
{
    /* One read, to learn now of a wrong password or a cluster that is not
     * there (the URL's first answering member). */
    json_object *body = dlock__etcd_obj(), *reply = NULL;
    dlock__etcd_add_bytes(body, "key", c->url.prefix, strlen(c->url.prefix));
    json_object_object_add(body, "count_only", json_object_new_boolean(1));
    int rc = dlock__etcd_post(c, "kv/range", body, dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS, 0, &reply, NULL);
    if (rc == DLOCK_OK)
        json_object_put(reply);
    return rc;
}

int dlock__etcd_connect(const char *url, struct dlock_conn **conn_out)
{
    struct dlock_etcd_url parsed;
    int rc = dlock__etcd_parse_url(url, &parsed);
    if (rc != DLOCK_OK)
        return rc;
    if ((rc = dlock__etcd_load()) != DLOCK_OK) {
        dlock__etcd_url_free(&parsed);
        return rc;
    }
    etcd_conn *c = calloc(1, sizeof *c);
    if (!c) {
        dlock__etcd_url_free(&parsed);
        return dlock__oom();
    }
    c->url = parsed;
    c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->multi = multi_init_cloexec();
    c->easy = curl_easy_init();
    c->easy2 = curl_easy_init();
    c->watch = curl_easy_init();
    if (c->cancel_fd < 0 || !c->multi || !c->easy || !c->easy2 || !c->watch)
        rc = c->cancel_fd < 0 ? dlock__error(DLOCK_ENOMEM, "eventfd: %s", strerror(errno)) : dlock__oom();
    if (rc == DLOCK_OK && (rc = dlock__etcd_easy_setup(c, c->easy)) == DLOCK_OK &&
        (rc = dlock__etcd_easy_setup(c, c->easy2)) == DLOCK_OK)
        rc = dlock__etcd_easy_setup(c, c->watch);
    if (rc == DLOCK_OK) {
        c->connecting = 1;
        rc = check_store(c);
        c->connecting = 0;
    }
    if (rc != DLOCK_OK) {
        etcd_disconnect_conn(c);
        return rc;
    }
    *conn_out = &c->base;
    return DLOCK_OK;
}
