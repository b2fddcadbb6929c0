/*
 * The conformance suite: the rules every backend keeps (docs/contract.md),
 * written once against the public API and run against every URL in
 * $DLOCK_TEST_URLS (default: an SQLite file in a temporary folder).  The
 * cases are in tests/conformance/, one file per group (conformance.h).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "conformance/conformance.h"

const char *url;      /* the store under test */
const char *backend;  /* its backend name */
dlock_client *client; /* a fresh client for every test */
char *name;           /* a fresh lock name for every test */

/* How late a silent holder's lock may be freed after its TTL: the backend's
 * stated granularity plus scheduling slack. */
int64_t expiry_slack_ms(void)
{
    return dlt_store_of(url)->expiry_slack_ms;
}

/* What the store under test can do (tests/stores/store.h). */
int can(unsigned cap)
{
    return (dlt_store_of(url)->caps(url) & cap) != 0;
}

void conformance_setup(void)
{
    dlt_fixture_open(url, "conf", &client, &name);
}

void conformance_teardown(void)
{
    dlt_fixture_close(&client, &name);
}

dlock_client *open_other(void)
{
    dlock_client *c = NULL;
    ck_assert_msg(dlock_open(url, &c) == DLOCK_OK, "open: %s", dlock_last_error());
    return c;
}

/* 1 when another client can take `n` right now (and gives it back). */
int free_for_others(const char *n)
{
    dlock_client *other = open_other();
    dlock_lock *l = NULL;
    int rc = dlock_acquire(other, n, 5000, 0, &l);
    ck_assert_msg(rc == DLOCK_OK || rc == DLOCK_EBUSY, "acquire: %d %s", rc, dlock_last_error());
    if (rc == DLOCK_OK)
        ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(other);
    return rc == DLOCK_OK;
}

static Suite *conformance_suite(void)
{
    /* Check keeps the pointer, not a copy: one title per backend, for good. */
    static char titles[3][64];
    static int used;
    char *title = titles[used++ % 3];
    snprintf(title, sizeof titles[0], "conformance[%s]", backend);
    Suite *s = suite_create(title);
    conformance_add_basics(s);
    conformance_add_lease(s);
    conformance_add_wait(s);
    conformance_add_operations(s);
    conformance_add_lost_reply(s);
    conformance_add_clients(s);
    return s;
}

int main(void)
{
    int failed = dlt_run_per_url("conformance", conformance_suite, &url, &backend);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
