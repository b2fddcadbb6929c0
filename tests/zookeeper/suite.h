/*
 * The parts of the ZooKeeper suite, and the fixtures they share.
 * tests/check_zookeeper.c builds the suite; each file adds its cases.
 */
#ifndef DLOCK_TESTS_ZOOKEEPER_SUITE_H
#define DLOCK_TESTS_ZOOKEEPER_SUITE_H

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../common.h"
#include "zookeeper/backend.h"

extern const char *url;
extern char *name;
extern dlock_client *client;
void setup(void);
void teardown(void);
int member_port(int n);
/* A connection of the backend's own (a raw view: no lock, no recipe) with
 * its session up; *call is due in 10 s, for the requests sent on it. */
zk_conn *raw_session(struct dlock_conn **conn, struct dlock_call *call);

/* The session id in the name of the node that holds `n` ("s<16 hex>-"). */
uint64_t holder_session(const char *n);
char *dir_of(const char *n);

/* ZooKeeper suite, tcase "url": the URL parser and the name encoding (no server needed). */
void dlt_zk_add_url(Suite *s);
/* ZooKeeper suite, tcase "server": the nodes as zkCli.sh sees them, tokens, leases, sessions, waits,
 * ACLs, lost nodes. */
void dlt_zk_add_server(Suite *s);
/* ZooKeeper suite, tcase "faults": the leader killed or stopped, the holder's server stopped, silent
 * and stopped holders, a lost create reply, a record read through another server, an expired waiter,
 * no quorum. */
void dlt_zk_add_faults(Suite *s);

#endif
