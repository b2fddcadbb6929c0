/*
 * The parts of the MySQL / MariaDB suite, and the fixtures they share.
 * tests/check_mysql.c builds the suite; each file adds its cases.
 */
#ifndef DLOCK_TESTS_MYSQL_SUITE_H
#define DLOCK_TESTS_MYSQL_SUITE_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <mysql.h>
#include "mysql/url.h"
#include "internal.h"
#include "../common.h"
#include "dlock.h"
#include <pthread.h>

extern const char *url;      /* the test user's URL */
extern const char *root_url; /* root over the socket: may be NULL */
extern const char *server_dir;
MYSQL *raw_open(const char *which_url);

/* Run `sql` with one bound string parameter; returns the first column as an
 * integer, or -1 for NULL. */
long long raw_int(MYSQL *db, const char *sql, const char *param);

/* The connection id holding `name` (dlock name), or -1. */
long long holder_id(const char *name);
void kill_connection(long long id, int query_only);
void integration_setup(void);
dlock_client *open_client(void);

/* 1 when another client cannot take `name` now. */
int busy_for_others(const char *name);
char *unique(const char *prefix);

/* `url` with `options` appended to its query. */
char *url_with(const char *base, const char *options);

/* Server restart while holding: a private server, so that the other test
 * programs running at the same time keep theirs. */
extern char private_dir[4200];
extern char private_url[4200];
void read_env_value(const char *file, const char *key, char *out, size_t outlen);
const char *server_script(void);

/* Stop the private server and delete its data (~35 MB a run). */
void private_server_remove(void);
int private_server(const char *action);
extern char lease_url[8192], fence_url[8192];
void wave_setup(void);
dlock_client *open_url(const char *u);

/* 1 when another client of `u` cannot take `name` now. */
int busy_at(const char *u, const char *name);

/* MySQL suite, tcase "url": the URL parser (no server needed). */
void dlt_mysql_add_url(Suite *s);
/* MySQL suite, tcase "names": the lock-name mapping (no server needed). */
void dlt_mysql_add_names(Suite *s);
/* MySQL suite, tcase "server": names, holders, round trips, cancel, TLS on a live server. */
void dlt_mysql_add_server(Suite *s);
/* MySQL suite, tcase "faults": KILL, kill -9, SIGSTOP and a server restart while a lock is held. */
void dlt_mysql_add_faults(Suite *s);
/* MySQL suite, tcase "lease": lease mode, fencing=on, list, break and run records. */
void dlt_mysql_add_lease(Suite *s);
/* MySQL suite, tcase "stalls-and-waits": the lease after a wait, stale cancels, dropped sessions, KILL
 * QUERY at the grant, a stopped server. */
void dlt_mysql_add_waits(Suite *s);
/* MySQL suite, tcase "modes-and-durability": durable commits, late extends, breaks of one name,
 * session and lease modes seeing each other. */
void dlt_mysql_add_modes(Suite *s);
/* MySQL suite, tcase "wall-clock": a lease wait ignores a step of the wall clock. */
void dlt_mysql_add_wall_clock(Suite *s);
/* MySQL suite, tcase "private-servers": a statement binary log and kill -9 of mysqld, on private
 * servers. */
void dlt_mysql_add_private_servers(Suite *s);

#endif
