/* The parts of the PostgreSQL suite (tests/check_postgresql.c runs them):
 * each file adds its cases to the suite. */
#ifndef DLOCK_TESTS_PG_SUITE_H
#define DLOCK_TESTS_PG_SUITE_H

#include <check.h>

/* A wait granted and cancelled in the same instant (late_grant.c). */
void dlt_pg_add_late_grant(Suite *s);

#endif
