/*
 * PostgreSQL backend: the advisory key of a name, which the tests and the
 * fuzzers reach directly (defined in postgresql.c).  Internal; not installed.
 */
#ifndef DLOCK_BACKEND_POSTGRESQL_H
#define DLOCK_BACKEND_POSTGRESQL_H

#include <stddef.h>
#include <stdint.h>

/* The advisory-lock key of a lock name: the first 8 bytes of
 * SHA-256(name[0..len)) read as a big-endian two's-complement integer, so
 * that plain SQL takes the same lock (docs/postgresql.md):
 *   ('x' || left(encode(sha256(convert_to(name, 'UTF8')), 'hex'), 16))::bit(64)::bigint */
int64_t dlock__pg_key(const char *name, size_t len);

#endif /* DLOCK_BACKEND_POSTGRESQL_H */
