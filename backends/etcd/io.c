/*
 * Requests through etcd's JSON gateway: every request runs on the
 * connection's multi handle, so that it is bounded by the call's deadline
 * and a wait also polls the cancel descriptor.  An endpoint that does not
 * answer within its share of the deadline (or refuses the connection, or
 * has no leader) is left for the next one, and the next call starts there.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"

#define ATTEMPT_MIN_MS 1000 /* an endpoint's share of a deadline, unless less is left */
#define ROUND_PAUSE_MS 50   /* between two rounds of endpoints that all failed at once */

int64_t dlock__etcd_deadline(const struct dlock_call *call)
{
    int64_t cap = dlock__now_ms() + DLOCK_CALL_TIMEOUT_MS;
    return call->deadline_ms < cap ? call->deadline_ms : cap;
}

void dlock__etcd_buf_free(struct etcd_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

enum pump_end { PUMP_DONE = 1, PUMP_TIME_UP = 0, PUMP_CANCELED = -1 };

/* One transfer on the multi handle: a request, or the watch stream. */
struct transfer {
    CURL *easy;
    struct etcd_buf *body;   /* where its answer goes (the easy handle's WRITEDATA) */
    struct curl_slist *headers;
    int64_t sent_ms;
    CURLcode result;         /* CURLE_OK: an HTTP answer came */
    long http;               /* its status */
    int done;
    char error[CURL_ERROR_SIZE];
};

/* Wait up to ms for the multi handle's sockets or the cancel descriptor. */
static enum pump_end multi_wait(etcd_conn *c, int64_t ms, int cancellable)
{
    struct curl_waitfd extra = {c->cancel_fd, CURL_WAIT_POLLIN, 0};
    int numfds = 0;
    if (ms > 1000)
        ms = 1000;
    curl_multi_wait(c->multi, cancellable ? &extra : NULL, cancellable ? 1 : 0, (int)ms, &numfds);
    if (cancellable && (extra.revents & CURL_WAIT_POLLIN))
        return PUMP_CANCELED;
    return PUMP_TIME_UP;
}

/* One turn of the multi handle: wait until its sockets have news (or its
 * timers are due), until_ms, or a cancel; then let it work, and mark the
 * transfers of t[0..n) that are done. */
static enum pump_end pump_step(etcd_conn *c, struct transfer *t, size_t n, int64_t until_ms, int cancellable)
{
    int64_t left = until_ms - dlock__now_ms();
    if (multi_wait(c, left > 0 ? left : 0, cancellable) == PUMP_CANCELED)
        return PUMP_CANCELED;
    int running = 0, queued = 0;
    curl_multi_perform(c->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(c->multi, &queued)))
        for (size_t i = 0; i < n; i++)
            if (m->msg == CURLMSG_DONE && m->easy_handle == t[i].easy) {
                t[i].result = m->data.result;
                t[i].done = 1;
            }
    size_t done = 0;
    for (size_t i = 0; i < n; i++)
        done += (size_t)t[i].done;
    return done == n ? PUMP_DONE : PUMP_TIME_UP;
}

/* Run the multi handle until every transfer of t[0..n) is done, until_ms,
 * or a cancel. */
static enum pump_end pump(etcd_conn *c, struct transfer *t, size_t n, int64_t until_ms, int cancellable)
{
    for (;;) {
        enum pump_end end = pump_step(c, t, n, until_ms, cancellable);
        if (end != PUMP_TIME_UP || dlock__now_ms() >= until_ms)
            return end;
    }
}

static struct curl_slist *headers(const etcd_conn *c, int with_token)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h && with_token && c->token) {
        size_t n = strlen(c->token) + 32;
        char *line = malloc(n);
        if (line) {
            snprintf(line, n, "Authorization: %s", c->token);
            struct curl_slist *more = curl_slist_append(h, line);
            memset(line, 0, n);
            free(line);
            h = more ? more : h;
        }
    }
    return h;
}

static void endpoint_url(const etcd_conn *c, const char *path, char *out, size_t outlen)
{
    const struct dlock_etcd_endpoint *e = &c->url.endpoints[c->current];
    snprintf(out, outlen, "%s://%s:%d/v3/%s", c->url.tls ? "https" : "http", e->host, e->port, path);
}

/* Start a request on t (its easy handle and buffer set) to the current
 * endpoint, to be done by until_ms. */
static void attempt_start(etcd_conn *c, struct transfer *t, const char *path, const char *text, int with_token,
                          int64_t until_ms)
{
    char url[400];
    endpoint_url(c, path, url, sizeof url);
    t->headers = headers(c, with_token);
    t->body->len = 0;
    t->body->overflow = 0;
    c->date[0] = '\0';
    t->error[0] = '\0';
    t->done = 0;
    int64_t ms = until_ms - dlock__now_ms();
    curl_easy_setopt(t->easy, CURLOPT_URL, url);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)(ms > 0 ? ms : 1));
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(ms > 0 ? ms : 1));
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
    t->sent_ms = dlock__now_ms();
    t->result = CURLE_OPERATION_TIMEDOUT;
    t->http = 0;
    curl_multi_add_handle(c->multi, t->easy);
}

/* Take t off the multi handle and read what came. */
static void attempt_end(etcd_conn *c, struct transfer *t)
{
    curl_multi_remove_handle(c->multi, t->easy);
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    if (!t->done)
        t->result = CURLE_OPERATION_TIMEDOUT;
    if (t->result == CURLE_OK)
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->http);
    if (t->result == CURLE_OK && t->body->overflow)
        t->result = CURLE_FILESIZE_EXCEEDED;
    if (!t->error[0])
        snprintf(t->error, sizeof t->error, "%s", curl_easy_strerror(t->result));
}

/* One request to the current endpoint on the request handle, until
 * until_ms: DLOCK_OK (see t), DLOCK_ECANCELED. */
static int attempt(etcd_conn *c, const char *path, const char *text, int with_token, int64_t until_ms,
                   int cancellable, struct transfer *t)
{
    t->easy = c->easy;
    t->body = &c->body;
    attempt_start(c, t, path, text, with_token, until_ms);
    enum pump_end end = pump(c, t, 1, until_ms, cancellable);
    attempt_end(c, t);
    return end == PUMP_CANCELED ? DLOCK_ECANCELED : DLOCK_OK;
}

/* An answer that another member may give differently: no leader, a leader
 * change, a timeout inside the cluster, an overloaded member. */
static int transient(int code, const char *msg)
{
    static const char *const words[] = {"no leader", "leader changed", "timed out", "not capable", "too many requests",
                                        "stopped", "unhealthy"};
    if (code == 14 || code == 4) /* UNAVAILABLE, DEADLINE_EXCEEDED */
        return 1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (msg && strstr(msg, words[i]))
            return 1;
    return 0;
}

struct post_state {
    int reauthed;
    size_t failed; /* attempts that failed in this round of endpoints */
    int answered;  /* one of them came with an answer (a member that is there) */
    char last[CURL_ERROR_SIZE + 64];
};

/* Sleep up to ms (not past until_ms); 1 when cancelled meanwhile. */
static int pause_ms(etcd_conn *c, int64_t ms, int64_t until_ms, int cancellable)
{
    int64_t left = until_ms - dlock__now_ms();
    if (ms > left)
        ms = left;
    if (ms <= 0)
        return 0;
    struct pollfd p = {c->cancel_fd, POLLIN, 0};
    return poll(&p, cancellable ? 1 : 0, (int)ms) > 0;
}

enum next { NEXT_GO, NEXT_CANCELED, NEXT_GIVE_UP };

/* Leave the current endpoint for the next; after a whole round, pause.
 * While connecting, a round in which no member answered at all (refused,
 * unknown host, TLS failure) ends the call: the URL is wrong, not the
 * cluster busy. */
static enum next next_endpoint(etcd_conn *c, struct post_state *st, int64_t until_ms, int cancellable)
{
    c->current = (c->current + 1) % c->url.count;
    if (++st->failed < c->url.count)
        return NEXT_GO;
    if (c->connecting && !st->answered)
        return NEXT_GIVE_UP;
    st->failed = 0;
    st->answered = 0;
    return pause_ms(c, ROUND_PAUSE_MS, until_ms, cancellable) ? NEXT_CANCELED : NEXT_GO;
}

/* The error answer in the body: its code (0 unknown) and text into msg. */
static int error_answer(json_object *obj, char *msg, size_t msglen)
{
    json_object *e = dlock__etcd_get(obj, "error");
    if (!e)
        e = dlock__etcd_get(obj, "message");
    snprintf(msg, msglen, "%s", e && json_object_get_type(e) == json_type_string ? json_object_get_string(e) : "");
    return (int)dlock__etcd_get_i64(obj, "code", 0);
}

enum answer { ANSWER_OK, ANSWER_NEXT, ANSWER_REAUTH, ANSWER_ERROR };

/* What to make of an HTTP answer: *reply on ANSWER_OK; the text in st->last. */
static enum answer judge(etcd_conn *c, const struct transfer *a, struct post_state *st, json_object **reply)
{
    enum json_tokener_error jerr;
    const struct etcd_buf *b = a->body;
    json_object *obj = b->data && b->len ? json_tokener_parse_verbose(b->data, &jerr) : NULL;
    int has_error = obj && (dlock__etcd_get(obj, "error") || dlock__etcd_get(obj, "code"));
    if (a->http == 200 && obj && !has_error) {
        *reply = obj;
        return ANSWER_OK;
    }
    char msg[256];
    int code = obj ? error_answer(obj, msg, sizeof msg) : 0;
    if (obj)
        json_object_put(obj);
    else
        snprintf(msg, sizeof msg, "HTTP status %ld without a JSON answer", a->http);
    if (!msg[0])
        snprintf(msg, sizeof msg, "HTTP status %ld", a->http);
    c->grpc_code = code;
    snprintf(st->last, sizeof st->last, "%s", msg);
    if (code == GRPC_UNAUTHENTICATED && c->url.user && !st->reauthed)
        return ANSWER_REAUTH;
    /* An HTTP 404 without a gRPC code is not etcd's gateway (try the next
     * member); with one (NOT_FOUND: a lease that is gone) it is the
     * cluster's answer, which another member would only repeat. */
    if (transient(code, msg) || (a->http == 404 && !code) || (a->http >= 500 && !code))
        return ANSWER_NEXT;
    return ANSWER_ERROR;
}

/* The body of post(), with or without the token. */
static int post(etcd_conn *c, const char *path, const char *text, int64_t deadline_ms, int cancellable,
                int with_token, json_object **reply, int64_t *sent_ms)
{
    struct post_state st = {0, 0, 0, "no answer"};
    c->grpc_code = 0;
    c->ambiguous = 0;
    size_t rounds_left = c->url.count;
    for (;;) {
        int64_t left = deadline_ms - dlock__now_ms();
        if (left <= 0)
            break;
        int64_t share = left / (int64_t)(rounds_left ? rounds_left : 1);
        if (share < ATTEMPT_MIN_MS)
            share = left < ATTEMPT_MIN_MS ? left : ATTEMPT_MIN_MS;
        rounds_left = rounds_left > 1 ? rounds_left - 1 : c->url.count;
        struct transfer a;
        if (attempt(c, path, text, with_token, dlock__now_ms() + share, cancellable, &a) == DLOCK_ECANCELED)
            return DLOCK_ECANCELED;
        enum answer ans = ANSWER_NEXT;
        if (a.result != CURLE_OK)
            snprintf(st.last, sizeof st.last, "%s", a.error);
        else
            ans = judge(c, &a, &st, reply);
        /* A request that may have reached the cluster and been applied,
         * although no answer says so: the next attempt may find its effect. */
        if ((a.result != CURLE_OK && a.result != CURLE_COULDNT_CONNECT && a.result != CURLE_COULDNT_RESOLVE_HOST) ||
            ans == ANSWER_NEXT)
            c->ambiguous = 1;
        st.answered |= a.result == CURLE_OK;
        if (ans == ANSWER_OK) {
            if (sent_ms)
                *sent_ms = a.sent_ms;
            return DLOCK_OK;
        }
        if (ans == ANSWER_ERROR)
            return dlock__error(DLOCK_EBACKEND, "etcd answered: %s", st.last);
        if (ans == ANSWER_REAUTH) {
            st.reauthed = 1;
            int rc = dlock__etcd_authenticate(c, deadline_ms);
            if (rc != DLOCK_OK)
                return rc;
            continue;
        }
        enum next next = next_endpoint(c, &st, deadline_ms, cancellable);
        if (next == NEXT_CANCELED)
            return DLOCK_ECANCELED;
        if (next == NEXT_GIVE_UP)
            break;
    }
    return dlock__error(DLOCK_ECONN, "no etcd member answered (%zu endpoint%s; last: %s)", c->url.count,
                        c->url.count == 1 ? "" : "s", st.last);
}

int dlock__etcd_post(etcd_conn *c, const char *path, json_object *body, int64_t deadline_ms, int cancellable,
                     json_object **reply, int64_t *sent_ms)
{
    int rc = DLOCK_OK;
    if (c->url.user && !c->token)
        rc = dlock__etcd_authenticate(c, deadline_ms);
    if (rc == DLOCK_OK)
        rc = post(c, path, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), deadline_ms, cancellable, 1,
                  reply, sent_ms);
    json_object_put(body);
    return rc;
}

/* The first attempt of both requests at once, each on its own handle and
 * connection to the current endpoint: DLOCK_OK (see t[0..1]), or
 * DLOCK_ECANCELED. */
static int attempt_both(etcd_conn *c, struct transfer t[2], const char *const path[2], const char *const text[2],
                        int64_t deadline_ms, int cancellable)
{
    int64_t left = deadline_ms - dlock__now_ms();
    int64_t share = left / (int64_t)c->url.count;
    if (share < ATTEMPT_MIN_MS)
        share = left < ATTEMPT_MIN_MS ? left : ATTEMPT_MIN_MS;
    int64_t until = dlock__now_ms() + share;
    t[0].easy = c->easy;
    t[0].body = &c->body;
    t[1].easy = c->easy2;
    t[1].body = &c->body2;
    for (size_t i = 0; i < 2; i++)
        attempt_start(c, &t[i], path[i], text[i], 1, until);
    enum pump_end end = pump(c, t, 2, until, cancellable);
    for (size_t i = 0; i < 2; i++)
        attempt_end(c, &t[i]);
    return end == PUMP_CANCELED ? DLOCK_ECANCELED : DLOCK_OK;
}

int dlock__etcd_post_both(etcd_conn *c, const char *path0, json_object *body0, const char *path1, json_object *body1,
                          int64_t deadline_ms, int cancellable, json_object *reply[2], int64_t *sent0_ms)
{
    const char *const path[2] = {path0, path1};
    const char *const text[2] = {json_object_to_json_string_ext(body0, JSON_C_TO_STRING_PLAIN),
                                 json_object_to_json_string_ext(body1, JSON_C_TO_STRING_PLAIN)};
    reply[0] = reply[1] = NULL;
    c->grpc_code = 0;
    c->ambiguous = 0;
    int rc = DLOCK_OK;
    if (c->url.user && !c->token)
        rc = dlock__etcd_authenticate(c, deadline_ms);
    struct transfer t[2];
    if (rc == DLOCK_OK && deadline_ms > dlock__now_ms())
        rc = attempt_both(c, t, path, text, deadline_ms, cancellable);
    else if (rc == DLOCK_OK) /* no time left: post() says so */
        t[0].result = t[1].result = CURLE_OPERATION_TIMEDOUT;
    /* What the first attempt did not settle goes through post(): another
     * member, a new token, the error's text.  Both requests may be sent
     * again (a renewal and a read). */
    int moved = 0;
    for (size_t i = 0; rc == DLOCK_OK && i < 2; i++) {
        struct post_state st = {0, 0, 0, "no answer"};
        enum answer ans = t[i].result == CURLE_OK ? judge(c, &t[i], &st, &reply[i]) : ANSWER_NEXT;
        if (ans == ANSWER_OK) {
            if (i == 0 && sent0_ms)
                *sent0_ms = t[i].sent_ms;
            continue;
        }
        if (ans == ANSWER_NEXT && !moved && c->url.count > 1) { /* that member did not answer: the next */
            c->current = (c->current + 1) % c->url.count;
            moved = 1;
        }
        rc = post(c, path[i], text[i], deadline_ms, cancellable, 1, &reply[i], i == 0 ? sent0_ms : NULL);
    }
    if (rc != DLOCK_OK)
        for (size_t i = 0; i < 2; i++)
            if (reply[i]) {
                json_object_put(reply[i]);
                reply[i] = NULL;
            }
    json_object_put(body0);
    json_object_put(body1);
    return rc;
}

int dlock__etcd_authenticate(etcd_conn *c, int64_t deadline_ms)
{
    json_object *body = dlock__etcd_obj();
    dlock__etcd_add_str(body, "name", c->url.user);
    dlock__etcd_add_str(body, "password", c->url.password);
    json_object *reply = NULL;
    /* The body holds the password: its text is wiped before it is freed. */
    const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
    int rc = post(c, "auth/authenticate", text, deadline_ms, 0, 0, &reply, NULL);
    memset((char *)text, 0, strlen(text));
    json_object_put(body);
    /* A refused login is a store that cannot be used from here, as on
     * every backend (dlock exits 69). */
    if (rc == DLOCK_EBACKEND)
        return dlock__error(DLOCK_ECONN, "etcd refused the login of user '%s': %s", c->url.user,
                            c->grpc_code == GRPC_INVALID_ARGUMENT ? "authentication failed (wrong user or password)"
                                                                  : dlock_last_error());
    if (rc != DLOCK_OK)
        return rc;
    json_object *token = dlock__etcd_get(reply, "token");
    if (c->token) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    c->token = token && json_object_get_type(token) == json_type_string ? strdup(json_object_get_string(token)) : NULL;
    json_object_put(reply);
    if (!c->token)
        return dlock__error(DLOCK_EBACKEND, "etcd gave no token to user '%s' (is authentication enabled?)",
                            c->url.user);
    return DLOCK_OK;
}

/* --- the watch stream ------------------------------------------------------------------ */

enum watch_news { WATCH_NOTHING, WATCH_LOOK };

/* The complete lines of the stream so far: WATCH_LOOK when one says the
 * key was deleted or the watch was cancelled (compaction, an error). */
static enum watch_news read_watch(etcd_conn *c)
{
    enum watch_news news = WATCH_NOTHING;
    struct etcd_buf *b = &c->watch_body;
    size_t start = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] != '\n')
            continue;
        b->data[i] = '\0';
        enum json_tokener_error jerr;
        json_object *msg = json_tokener_parse_verbose(b->data + start, &jerr);
        start = i + 1;
        if (!msg)
            continue;
        json_object *result = dlock__etcd_get(msg, "result");
        json_object *events = dlock__etcd_get(result, "events");
        if (!result || dlock__etcd_get(msg, "error") || json_object_get_boolean(dlock__etcd_get(result, "canceled")))
            news = WATCH_LOOK;
        for (size_t e = 0; events && json_object_get_type(events) == json_type_array &&
                           e < json_object_array_length(events);
             e++) {
            json_object *type = dlock__etcd_get(json_object_array_get_idx(events, e), "type");
            if (type && json_object_get_type(type) == json_type_string &&
                strcmp(json_object_get_string(type), "DELETE") == 0)
                news = WATCH_LOOK;
        }
        json_object_put(msg);
    }
    if (start) { /* keep the unfinished line (nothing has come: no buffer yet) */
        memmove(b->data, b->data + start, b->len - start);
        b->len -= start;
    }
    return news;
}

static void watch_request(etcd_conn *c, const char *key, int64_t revision, struct curl_slist *h, char *text_out,
                          size_t text_len)
{
    json_object *req = dlock__etcd_obj(), *create = dlock__etcd_obj();
    dlock__etcd_add_bytes(create, "key", key, strlen(key));
    dlock__etcd_add_i64(create, "start_revision", revision);
    json_object_object_add(create, "filters", dlock__etcd_array(json_object_new_string("NOPUT")));
    json_object_object_add(req, "create_request", create);
    snprintf(text_out, text_len, "%s", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
    json_object_put(req);
    char url[400];
    endpoint_url(c, "watch", url, sizeof url);
    curl_easy_setopt(c->watch, CURLOPT_URL, url);
    curl_easy_setopt(c->watch, CURLOPT_POSTFIELDS, text_out);
    curl_easy_setopt(c->watch, CURLOPT_POSTFIELDSIZE, (long)strlen(text_out));
    curl_easy_setopt(c->watch, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->watch, CURLOPT_TIMEOUT_MS, 0L);
    /* A connection of its own, closed when the wait ends (a stream cut
     * short cannot be reused): the pooled ones stay for the requests that
     * follow a wake, which then need no new connection. */
    curl_easy_setopt(c->watch, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c->watch, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c->watch, CURLOPT_CONNECTTIMEOUT_MS, (long)ATTEMPT_MIN_MS);
}

int dlock__etcd_watch_delete(etcd_conn *c, const char *key, int64_t revision, int64_t until_ms)
{
    char text[2 * DLOCK_ETCD_KEY_MAX + 200];
    struct curl_slist *h = headers(c, 1);
    c->watch_body.len = 0;
    c->watch_body.overflow = 0;
    watch_request(c, key, revision, h, text, sizeof text);
    int64_t started = dlock__now_ms();
    curl_multi_add_handle(c->multi, c->watch);
    struct transfer t = {.easy = c->watch, .body = &c->watch_body};
    int rc = 0;
    for (;;) {
        enum pump_end end = pump_step(c, &t, 1, until_ms, 1);
        if (end == PUMP_CANCELED) {
            rc = DLOCK_ECANCELED;
            break;
        }
        if (read_watch(c) == WATCH_LOOK) {
            rc = 1;
            break;
        }
        if (end == PUMP_DONE) { /* the stream ended: this member is gone or refused it */
            c->current = (c->current + 1) % c->url.count;
            rc = pause_ms(c, 100 - (dlock__now_ms() - started), until_ms, 1) ? DLOCK_ECANCELED : 1;
            break;
        }
        if (dlock__now_ms() >= until_ms)
            break;
    }
    curl_multi_remove_handle(c->multi, c->watch);
    curl_easy_setopt(c->watch, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return rc;
}
