/*
 * A TCP relay in front of a real server, for the tests: every connection to
 * the relay's port is forwarded to the server.  Armed with
 * dlt_relay_drop_next(), it swallows the next answer from the server (the
 * server ran the request) and closes that connection, as a network that
 * fails between a request and its reply does; with dlt_relay_trickle(), it
 * passes answers on one byte at a time, slowly.  Not a store: the real server
 * answers everything.
 */
#ifndef DLOCK_TESTS_RELAY_H
#define DLOCK_TESTS_RELAY_H

#include <stddef.h>

struct dlt_relay;

/* A relay to host:port (an IPv4 address); NULL on failure. */
struct dlt_relay *dlt_relay_start(const char *host, int port);
/* The loopback port it listens on. */
int dlt_relay_port(const struct dlt_relay *r);
/* Swallow the next answer of the server, and close its connection. */
void dlt_relay_drop_next(struct dlt_relay *r);
/* How many answers it has swallowed. */
int dlt_relay_dropped(const struct dlt_relay *r);
/* Pass answers on one byte every ms milliseconds (0: at once again). */
void dlt_relay_trickle(struct dlt_relay *r, int ms);
void dlt_relay_stop(struct dlt_relay *r);

/* The host and port of a URL scheme://[userinfo@]host[:port][/...][?...]
 * (default_port when none), and the same URL with host:port replaced by
 * 127.0.0.1:new_port in out.  0, or -1 for a URL without a single IPv4 host
 * (a socket, a list of servers, a name). */
int dlt_url_host_port(const char *url, const char *default_port, char *host, size_t hostlen, int *port);
int dlt_url_with_port(const char *url, int new_port, char *out, size_t outlen);

#endif
