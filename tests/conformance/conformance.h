/*
 * The conformance suite's shared state and helpers (tests/check_conformance.c)
 * for its parts, one file per group of test cases:
 *   basics.c      the backend, one cycle, names, fences, handles, holders, errors
 *   lease.c       TTLs, extend, release, remaining
 *   wait.c        waits, hand-off, cancel, a wait longer than the TTL
 *   clients.c     close, descriptors, threads
 *   operations.c  list, break, store time, run records; the same through dlock(1)
 *   lost_reply.c  requests the server ran whose answers were lost (a relay)
 */
#ifndef DLOCK_TESTS_CONFORMANCE_H
#define DLOCK_TESTS_CONFORMANCE_H

#include <check.h>
#include <stdint.h>

#include "../common.h"
#include "../stores/store.h"

extern const char *url;      /* the store under test */
extern const char *backend;  /* its backend name */
extern dlock_client *client; /* a fresh client for every test */
extern char *name;           /* a fresh lock name for every test */

/* The fixture of every case: a fresh client and name. */
void conformance_setup(void);
void conformance_teardown(void);

/* How late a silent holder's lock may be freed after its TTL: the store's
 * stated granularity plus scheduling slack (its adapter says). */
int64_t expiry_slack_ms(void);
/* What the store under test can do (tests/stores/store.h). */
int can(unsigned cap);
/* Another client of the same store. */
dlock_client *open_other(void);
/* 1 when another client can take `n` right now (and gives it back). */
int free_for_others(const char *n);

void conformance_add_basics(Suite *s);
void conformance_add_lease(Suite *s);
void conformance_add_wait(Suite *s);
void conformance_add_clients(Suite *s);
void conformance_add_operations(Suite *s);
void conformance_add_lost_reply(Suite *s);

#endif
