/*
 * Raw etcd baselines for the benchmark, on libcurl and json-c directly
 * (linked, not loaded), through the same JSON gateway: what a hand-written
 * lock costs.  Cycles: grant a lease, put the key if absent and read the
 * contenders (one transaction), delete it, revoke the lease: the work of a
 * libdlock acquire and release, four round trips.  Handoff: the waiter
 * queues its own key and watches the holder's for its deletion; the event
 * is the grant (no second look).
 */
#include "config.h"

#include <curl/curl.h>
#include <json-c/json.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcd/url.h"
#include "raw.h"

#define RAW_PREFIX "bench-raw-etcd/"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct raw_etcd {
    CURL *easy;
    char base[300]; /* http://host:port/v3/ */
    char body[65536];
    size_t len;
    int stop_on_delete; /* a watch: end the transfer at the first DELETE */
    int64_t lease;
    char key[128];
};

static size_t on_data(char *data, size_t size, size_t n, void *userdata)
{
    struct raw_etcd *s = userdata;
    size_t len = size * n;
    if (s->len + len >= sizeof s->body)
        return 0;
    memcpy(s->body + s->len, data, len);
    s->len += len;
    s->body[s->len] = '\0';
    if (s->stop_on_delete && strstr(s->body, "\"DELETE\""))
        return 0; /* the wake: curl_easy_perform ends with CURLE_WRITE_ERROR */
    return len;
}

/* POST body to base + path; the answer parsed (NULL on failure). */
static json_object *post(struct raw_etcd *s, const char *path, const char *body)
{
    char url[400];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    s->len = 0;
    s->body[0] = '\0';
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(s->easy) != CURLE_OK)
        return NULL;
    return json_tokener_parse(s->body);
}

static int64_t i64(json_object *o, const char *field)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, field, &v) ? json_object_get_int64(v) : 0;
}

static void b64(const char *text, char *out)
{
    dlock__etcd_base64(text, strlen(text), out);
}

static struct raw_etcd *raw_open(const char *url)
{
    struct dlock_etcd_url u;
    if (dlock__etcd_parse_url(url, &u) != 0)
        return NULL;
    struct raw_etcd *s = calloc(1, sizeof *s);
    if (s) {
        snprintf(s->base, sizeof s->base, "%s://%s:%d/v3/", u.tls ? "https" : "http", u.endpoints[0].host,
                 u.endpoints[0].port);
        s->easy = curl_easy_init();
        curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, 10000L);
    }
    dlock__etcd_url_free(&u);
    return s;
}

static void raw_close(struct raw_etcd *s)
{
    if (s) {
        curl_easy_cleanup(s->easy);
        free(s);
    }
}

/* Grant a lease and put key under it if absent, reading the contenders of
 * prefix: 1 the lowest (holds), 0 not (*pred: the key before), -1 failure. */
static int enqueue(struct raw_etcd *s, const char *prefix, const char *key, char *pred, int64_t *revision)
{
    char body[2048], k[256], from[256], to[256], end[128];
    json_object *r = post(s, "lease/grant", "{\"TTL\":60}");
    s->lease = i64(r, "ID");
    json_object_put(r);
    if (!s->lease)
        return -1;
    snprintf(s->key, sizeof s->key, "%s", key);
    dlock__etcd_range_end(prefix, strlen(prefix), end);
    b64(key, k);
    b64(prefix, from);
    b64(end, to);
    snprintf(body, sizeof body,
             "{\"compare\":[{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":0}],"
             "\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"\",\"lease\":%" PRId64 "}},"
             "{\"request_range\":{\"key\":\"%s\",\"range_end\":\"%s\",\"sort_order\":\"ASCEND\","
             "\"sort_target\":\"CREATE\",\"keys_only\":true}}]}",
             k, k, s->lease, from, to);
    r = post(s, "kv/txn", body);
    json_object *responses = NULL, *range = NULL, *kvs = NULL, *header = NULL;
    int ok = r && json_object_object_get_ex(r, "responses", &responses) &&
             json_object_object_get_ex(json_object_array_get_idx(responses, 1), "response_range", &range) &&
             json_object_object_get_ex(range, "kvs", &kvs) && json_object_object_get_ex(r, "header", &header);
    int rc = -1;
    if (ok) {
        *revision = i64(header, "revision");
        size_t n = json_object_array_length(kvs);
        rc = 1;
        for (size_t i = 0; i < n; i++) {
            json_object *kb = NULL;
            json_object_object_get_ex(json_object_array_get_idx(kvs, i), "key", &kb);
            if (strcmp(json_object_get_string(kb), k) == 0)
                break;
            rc = 0;
            if (pred)
                snprintf(pred, 256, "%s", json_object_get_string(kb)); /* base64 */
        }
    }
    json_object_put(r);
    return rc;
}

/* Delete the own key and revoke its lease. */
static int dequeue(struct raw_etcd *s)
{
    char body[512], k[256];
    b64(s->key, k);
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", k);
    json_object *r = post(s, "kv/deleterange", body);
    int ok = r && i64(r, "deleted") == 1;
    json_object_put(r);
    snprintf(body, sizeof body, "{\"ID\":%" PRId64 "}", s->lease);
    r = post(s, "lease/revoke", body);
    ok = ok && r;
    json_object_put(r);
    return ok;
}

int bench_raw_etcd(const char *url, long cycles, double *elapsed_s)
{
    struct raw_etcd *s = raw_open(url);
    if (!s)
        return -1;
    int ok = 1;
    double start = now_s();
    for (long i = 0; i < cycles && ok; i++) {
        int64_t rev = 0;
        ok = enqueue(s, RAW_PREFIX "cycle/", RAW_PREFIX "cycle/k", NULL, &rev) == 1 && dequeue(s);
    }
    *elapsed_s = now_s() - start;
    raw_close(s);
    return ok ? 0 : -1;
}

void *bench_raw_etcd_open(const char *url)
{
    return raw_open(url);
}

int bench_raw_etcd_lock(void *session, int wait)
{
    struct raw_etcd *s = session;
    char pred[256] = "", key[128], body[512];
    int64_t rev = 0;
    snprintf(key, sizeof key, RAW_PREFIX "handoff/%s", wait ? "waiter" : "holder");
    int rc = enqueue(s, RAW_PREFIX "handoff/", key, pred, &rev);
    if (rc != 0 || !wait)
        return rc;
    snprintf(body, sizeof body,
             "{\"create_request\":{\"key\":\"%s\",\"start_revision\":%" PRId64 ",\"filters\":[\"NOPUT\"]}}", pred,
             rev + 1);
    s->stop_on_delete = 1;
    json_object *r = post(s, "watch", body);
    s->stop_on_delete = 0;
    json_object_put(r);
    return strstr(s->body, "\"DELETE\"") ? 1 : -1;
}

int bench_raw_etcd_unlock(void *session)
{
    return dequeue(session);
}

void bench_raw_etcd_close(void *session)
{
    raw_close(session);
}
