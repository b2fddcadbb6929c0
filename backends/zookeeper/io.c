/*
 * The single-threaded ZooKeeper client does no I/O of its own: this loop
 * drives it (zookeeper_interest says which socket, what to wait for and by
 * when the client must run again for its pings and reconnects; poll waits on
 * it, the cancel descriptor and the call's deadline; zookeeper_process reads
 * and writes and runs the completions).  Nothing runs between calls, so a
 * holder that stops calling stops renewing its session: a hung holder loses
 * its lock within its TTL.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "backend.h"

struct zk_op *dlock__zk_op_new(zk_conn *c)
{
    struct zk_op *op = calloc(1, sizeof *op);
    if (op)
        op->conn = c;
    return op;
}

static void op_release(struct zk_op *op)
{
    free(op->text);
    for (int i = 0; i < op->count; i++)
        free(op->children[i]);
    free(op->children);
    free(op);
}

void dlock__zk_op_free(struct zk_op *op)
{
    if (!op)
        return;
    if (op->done)
        op_release(op);
    else
        op->abandoned = 1;
}

int dlock__zk_uncertain(int rc)
{
    return rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZCLOSING || rc == ZSESSIONMOVED;
}

/* Common end of every completion: 1 when the caller still waits for it. */
static int finish(struct zk_op *op, int rc)
{
    if (op->abandoned) {
        op->done = 1;
        op_release(op);
        return 0;
    }
    op->done = 1;
    op->rc = rc;
    if (!dlock__zk_uncertain(rc) && rc != ZSESSIONEXPIRED && op->conn)
        op->conn->last_answer_ms = dlock__now_ms();
    return 1;
}

void dlock__zk_void_done(int rc, const void *data)
{
    finish((struct zk_op *)data, rc);
}

/* finish(), and on success keep the node's stat: 1 when the answer is
 * ours to read further (finished and ZOK). */
static int finish_with_stat(struct zk_op *op, int rc, const struct Stat *stat)
{
    if (!finish(op, rc) || rc != ZOK)
        return 0;
    if (stat) {
        op->stat = *stat;
        op->have_stat = 1;
    }
    return 1;
}

void dlock__zk_stat_done(int rc, const struct Stat *stat, const void *data)
{
    finish_with_stat((struct zk_op *)data, rc, stat);
}

void dlock__zk_string_done(int rc, const char *value, const void *data)
{
    (void)value;
    finish((struct zk_op *)data, rc);
}

void dlock__zk_create_done(int rc, const char *value, const struct Stat *stat, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!finish_with_stat(op, rc, stat))
        return;
    op->text = value ? strdup(value) : NULL;
    if (!op->text)
        op->rc = ZSYSTEMERROR;
}

void dlock__zk_data_done(int rc, const char *value, int value_len, const struct Stat *stat, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!finish_with_stat(op, rc, stat))
        return;
    int len = value && value_len > 0 ? value_len : 0;
    op->text = malloc((size_t)len + 1);
    if (!op->text) {
        op->rc = ZSYSTEMERROR;
        return;
    }
    if (len)
        memcpy(op->text, value, (size_t)len);
    op->text[len] = '\0';
    op->text_len = len;
}

void dlock__zk_strings_done(int rc, const struct String_vector *strings, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    if (!finish(op, rc) || rc != ZOK || !strings || strings->count <= 0)
        return;
    op->children = calloc((size_t)strings->count, sizeof *op->children);
    if (!op->children) {
        op->rc = ZSYSTEMERROR;
        return;
    }
    for (int i = 0; i < strings->count; i++) {
        op->children[i] = strdup(strings->data[i]);
        if (!op->children[i]) {
            op->rc = ZSYSTEMERROR;
            return;
        }
        op->count = i + 1;
    }
}

void dlock__zk_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    (void)path;
    zk_conn *c = ctx;
    if (c && type != ZK_SESSION_EVENT)
        c->watch_fired = 1;
}

int64_t dlock__zk_deadline(const struct dlock_call *call)
{
    int64_t cap = dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS;
    return call->deadline_ms < cap ? call->deadline_ms : cap;
}

int dlock__zk_error(int rc, const char *what)
{
    if (rc == ZNOAUTH)
        return dlock__error(DLOCK_EBACKEND, "%s: not allowed (the node's ACL keeps this user out)", what);
    if (rc == ZAUTHFAILED || rc == ZSESSIONEXPIRED || dlock__zk_uncertain(rc) || rc == ZINVALIDSTATE)
        return dlock__error(DLOCK_ECONN, "%s: %s", what, zerror(rc));
    return dlock__error(DLOCK_EBACKEND, "%s: %s", what, zerror(rc));
}

static int all_done(struct zk_op *const *ops, int n)
{
    for (int i = 0; i < n; i++)
        if (!ops[i]->done)
            return 0;
    return 1;
}

/* The client's socket changes on every reconnect: mark each new one
 * close-on-exec (Debian's build does not), so that `dlock run`'s job does
 * not inherit the session's connection. */
static void mark_cloexec(zk_conn *c, int fd)
{
    if (fd < 0 || fd == c->cloexec_fd)
        return;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0)
        c->cloexec_fd = fd;
}

/* Wait for the socket, the cancel descriptor, or wait_ms; the events to
 * hand to zookeeper_process, or -1 when dlock_cancel() was called. */
static int wait_io(zk_conn *c, int fd, int interest, int64_t wait_ms, int flags)
{
    struct pollfd p[2];
    int n = 0, sock = -1, cancel = -1;
    if (fd >= 0) {
        p[n] = (struct pollfd){fd, (short)((interest & ZK_READ ? POLLIN : 0) | (interest & ZK_WRITE ? POLLOUT : 0)), 0};
        sock = n++;
    }
    if (flags & ZK_WAKE_ON_CANCEL) {
        p[n] = (struct pollfd){c->cancel_fd, POLLIN, 0};
        cancel = n++;
    }
    if (wait_ms > 1000)
        wait_ms = 1000;
    int r = poll(p, (nfds_t)n, (int)wait_ms);
    if (r <= 0)
        return 0;
    if (cancel >= 0 && (p[cancel].revents & POLLIN))
        return -1;
    int events = 0;
    if (sock >= 0) {
        if (p[sock].revents & (POLLIN | POLLERR | POLLHUP))
            events |= ZK_READ;
        if (p[sock].revents & (POLLOUT | POLLERR | POLLHUP))
            events |= ZK_WRITE;
    }
    return events;
}

/* How long a member may leave a request of ours unanswered before the
 * connection is dropped and the client moves to the next member: a quarter
 * of the session timeout, at least ZK_SILENT_MIN_MS; 0 where the C client's
 * own rule (2/3 of the session timeout without a byte) comes first anyway.
 * The C client alone would spend 2/3 of a TTL on a stopped member, and as
 * much again on the next one if that is silent too (a follower whose
 * leader stopped): more than the lease.  Moving costs a reconnect; the
 * session and its locks stay. */
static int64_t silent_limit(const zk_conn *c)
{
    int64_t timeout = c->negotiated_ms ? c->negotiated_ms : c->asked_ms ? c->asked_ms : ZK_DEFAULT_SESSION_MS;
    int64_t limit = timeout / 4 > ZK_SILENT_MIN_MS ? timeout / 4 : ZK_SILENT_MIN_MS;
    return limit * 3 < timeout * 2 ? limit : 0;
}

static int session_over(zk_conn *c)
{
    int state = zoo_state(c->zh);
    return state == ZK_EXPIRED_SESSION_STATE || state == ZK_AUTH_FAILED_STATE;
}

int dlock__zk_pump(zk_conn *c, struct zk_op *const *ops, int n, int64_t deadline_ms, int flags)
{
    /* The member's last sign of life in this call: a byte from it, or a
     * new connection (another socket or another state). */
    int64_t heard = dlock__now_ms();
    int heard_fd = -1, heard_state = 0;
    int waiting = n > 0 || (flags & ZK_UNTIL_CONNECTED);
    for (;;) {
        if (!c->zh)
            return ZK_PUMP_ENDED;
        if (n > 0 && all_done(ops, n))
            return ZK_PUMP_DONE;
        if ((flags & ZK_UNTIL_CONNECTED) && zoo_state(c->zh) == ZK_CONNECTED_STATE)
            return ZK_PUMP_DONE;
        if (session_over(c)) {
            dlock__zk_session_end(c);
            return ZK_PUMP_ENDED;
        }
        if ((flags & ZK_WAKE_ON_WATCH) && c->watch_fired)
            return ZK_PUMP_WOKEN;
        int64_t now = dlock__now_ms();
        if (now >= deadline_ms)
            return ZK_PUMP_TIMEOUT;
        int fd = -1, interest = 0;
        struct timeval tv = {0, 0};
        int rc = zookeeper_interest(c->zh, &fd, &interest, &tv);
        if (rc == ZINVALIDSTATE) {
            dlock__zk_session_end(c);
            return ZK_PUMP_ENDED;
        }
        mark_cloexec(c, fd);
        int state = zoo_state(c->zh);
        if (fd != heard_fd || state != heard_state) {
            heard_fd = fd;
            heard_state = state;
            heard = now;
        }
        int64_t silent = waiting && fd >= 0 ? silent_limit(c) : 0;
        if (silent && now - heard >= silent) {
            /* The client reads the end of the connection, fails what was
             * in flight with a connection loss (the callers ask again)
             * and connects to the next member. */
            (void)shutdown(fd, SHUT_RDWR);
            heard_fd = -1;
            continue;
        }
        int64_t wait_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
        if (deadline_ms - now < wait_ms)
            wait_ms = deadline_ms - now;
        if (silent && heard + silent - now < wait_ms)
            wait_ms = heard + silent - now;
        if (wait_ms <= 0)
            wait_ms = fd < 0 ? 1 : 0; /* between reconnects: never spin */
        int events = wait_io(c, fd, interest, wait_ms, flags);
        if (events < 0)
            return ZK_PUMP_CANCELED;
        if (events & ZK_READ)
            heard = dlock__now_ms();
        if (fd >= 0)
            (void)zookeeper_process(c->zh, events);
    }
}
