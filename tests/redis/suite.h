/*
 * The parts of the Redis suite, and the fixtures they share.
 * tests/check_redis.c builds the suite; each file adds its cases.
 */
#ifndef DLOCK_TESTS_REDIS_SUITE_H
#define DLOCK_TESTS_REDIS_SUITE_H

#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../common.h"
#include "internal.h"
#include "redis/scripts.h"
#include "redis/url.h"

extern const char *url;
extern char *name;
extern dlock_client *client;
void setup(void);
void teardown(void);

/* A plain hiredis connection to the test server, as an operator's redis-cli. */
redisContext *raw(void);

/* One command's reply as a string ("" nil, the integer in decimal). */
char *raw_cmd(const char *fmt, const char *a);
char *key_of(const char *n, const char *suffix);
int server_script(const char *action);
int have_dir(void);

/* Redis suite, tcase "url": the URL parser (no server needed). */
void dlt_redis_add_url(Suite *s);
/* Redis suite, tcase "lock": the keys and scripts as redis-cli sees them, waits, cancels, leases. */
void dlt_redis_add_lock(Suite *s);
/* Redis suite, tcase "faults": a holder killed or stopped, its connection killed, the server restarted
 * or stopped, the script cache flushed. */
void dlt_redis_add_faults(Suite *s);
/* Redis suite, tcase "fences-and-foreign-keys": fencing tokens, and keys of the wrong type in the
 * lock's place. */
void dlt_redis_add_fences(Suite *s);
/* Redis suite, tcase "lost-replies": replies lost on the way back, through a relay that cuts them. */
void dlt_redis_add_lost_replies(Suite *s);

#endif
