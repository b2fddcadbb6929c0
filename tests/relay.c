/* A TCP relay for the tests (relay.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define RELAY_PAIRS 8

struct dlt_relay {
    int listen_fd, port;
    struct sockaddr_in server;
    atomic_int drop, stop, dropped, trickle_ms;
    int client[RELAY_PAIRS], upstream[RELAY_PAIRS];
    pthread_t thread;
};

static void pair_close(struct dlt_relay *r, int i)
{
    close(r->client[i]);
    close(r->upstream[i]);
    r->client[i] = r->upstream[i] = -1;
}

static void pair_open(struct dlt_relay *r)
{
    int c = accept(r->listen_fd, NULL, NULL);
    if (c < 0)
        return;
    int u = socket(AF_INET, SOCK_STREAM, 0);
    if (u < 0 || connect(u, (struct sockaddr *)&r->server, sizeof r->server) != 0) {
        close(c);
        if (u >= 0)
            close(u);
        return;
    }
    for (int i = 0; i < RELAY_PAIRS; i++)
        if (r->client[i] < 0) {
            r->client[i] = c;
            r->upstream[i] = u;
            return;
        }
    close(c);
    close(u);
}

/* Bytes from `from` to `to` of pair i; an answer from the server is
 * swallowed when armed. */
static void pass(struct dlt_relay *r, int i, int from, int to, int answer)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof buf);
    if (n <= 0) {
        pair_close(r, i);
        return;
    }
    if (answer && atomic_exchange(&r->drop, 0)) {
        atomic_fetch_add(&r->dropped, 1);
        pair_close(r, i);
        return;
    }
    int trickle = answer ? atomic_load(&r->trickle_ms) : 0;
    for (ssize_t at = 0; at < n;) {
        if (trickle > 0) {
            struct timespec pause = {trickle / 1000, (long)(trickle % 1000) * 1000000L};
            nanosleep(&pause, NULL);
        }
        ssize_t w = send(to, buf + at, trickle > 0 ? 1 : (size_t)(n - at), MSG_NOSIGNAL);
        if (w <= 0) {
            pair_close(r, i);
            return;
        }
        at += w;
    }
}

static void *relay_main(void *arg)
{
    struct dlt_relay *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd p[1 + 2 * RELAY_PAIRS];
        int n = 0;
        p[n++] = (struct pollfd){r->listen_fd, POLLIN, 0};
        for (int i = 0; i < RELAY_PAIRS; i++) {
            p[n++] = (struct pollfd){r->client[i], POLLIN, 0};
            p[n++] = (struct pollfd){r->upstream[i], POLLIN, 0};
        }
        if (poll(p, (nfds_t)n, 50) <= 0)
            continue;
        if (p[0].revents & POLLIN)
            pair_open(r);
        for (int i = 0; i < RELAY_PAIRS; i++) {
            if (r->client[i] >= 0 && (p[1 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)))
                pass(r, i, r->client[i], r->upstream[i], 0);
            if (r->upstream[i] >= 0 && (p[2 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)))
                pass(r, i, r->upstream[i], r->client[i], 1);
        }
    }
    for (int i = 0; i < RELAY_PAIRS; i++)
        if (r->client[i] >= 0)
            pair_close(r, i);
    close(r->listen_fd);
    return NULL;
}

struct dlt_relay *dlt_relay_start(const char *host, int port)
{
    struct dlt_relay *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    for (int i = 0; i < RELAY_PAIRS; i++)
        r->client[i] = r->upstream[i] = -1;
    r->server.sin_family = AF_INET;
    r->server.sin_port = htons((uint16_t)port);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (inet_pton(AF_INET, host, &r->server.sin_addr) != 1 || (r->listen_fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
        free(r);
        return NULL;
    }
    if (bind(r->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(r->listen_fd, 8) != 0 ||
        getsockname(r->listen_fd, (struct sockaddr *)&a, &alen) != 0 ||
        pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        close(r->listen_fd);
        free(r);
        return NULL;
    }
    r->port = ntohs(a.sin_port);
    return r;
}

int dlt_relay_port(const struct dlt_relay *r)
{
    return r->port;
}

void dlt_relay_drop_next(struct dlt_relay *r)
{
    atomic_store(&r->drop, 1);
}

int dlt_relay_dropped(const struct dlt_relay *r)
{
    return atomic_load(&r->dropped);
}

void dlt_relay_trickle(struct dlt_relay *r, int ms)
{
    atomic_store(&r->trickle_ms, ms);
}

void dlt_relay_stop(struct dlt_relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    free(r);
}

/* Where host:port starts and ends in url; -1 if it has none. */
static int authority(const char *url, const char **start, const char **end)
{
    const char *p = strstr(url, "://");
    if (!p)
        return -1;
    p += 3;
    size_t len = strcspn(p, "/?");
    const char *at = NULL;
    for (const char *q = p; q < p + len; q++)
        if (*q == '@')
            at = q;
    *start = at ? at + 1 : p;
    *end = p + len;
    return *start < *end && !memchr(*start, ',', (size_t)(*end - *start)) && **start != '[' ? 0 : -1;
}

int dlt_url_host_port(const char *url, const char *default_port, char *host, size_t hostlen, int *port)
{
    const char *s, *e;
    if (authority(url, &s, &e) != 0 || strstr(url, "socket=") || strstr(url, "+unix:"))
        return -1;
    const char *colon = memchr(s, ':', (size_t)(e - s));
    size_t hlen = colon ? (size_t)(colon - s) : (size_t)(e - s);
    if (hlen + 1 > hostlen)
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return -1;
    *port = atoi(colon ? colon + 1 : default_port ? default_port : "0");
    return *port > 0 ? 0 : -1;
}

int dlt_url_with_port(const char *url, int new_port, char *out, size_t outlen)
{
    const char *s, *e;
    if (authority(url, &s, &e) != 0)
        return -1;
    int n = snprintf(out, outlen, "%.*s127.0.0.1:%d%s", (int)(s - url), url, new_port, e);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}
