/*
 * The minimal worked backend (examples/backend/memory.c) keeps the core's
 * rules: it compiles against lib/internal.h as a real one does, and clients
 * opened on it through dlock__open_backend() exclude each other, lose an
 * expired lease, and get a growing fencing token.  If this test breaks, the
 * example in docs/internals.md no longer shows how to add a store.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"
#include "internal.h"

extern const struct dlock_backend dlock_example_backend_memory;

static dlock_client *open_memory(void)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock__open_backend(&dlock_example_backend_memory, "memory:", &c), DLOCK_OK);
    return c;
}

START_TEST(two_clients_exclude_each_other)
{
    dlock_client *a = open_memory(), *b = open_memory();
    dlock_lock *la = NULL, *lb = NULL;
    ck_assert_int_eq(dlock_acquire(a, "job", 5000, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(b, "job", 5000, 0, &lb), DLOCK_EBUSY);
    ck_assert_int_eq(dlock_acquire(b, "other-job", 5000, 0, &lb), DLOCK_OK);
    ck_assert_int_eq(dlock_release(lb), DLOCK_OK);
    ck_assert_int_eq(dlock_extend(la, 5000), DLOCK_OK);
    ck_assert_int_eq(dlock_release(la), DLOCK_OK);
    ck_assert_int_eq(dlock_acquire(b, "job", 5000, 0, &lb), DLOCK_OK);
    ck_assert_int_eq(dlock_release(lb), DLOCK_OK);
    ck_assert_str_eq(dlock_backend(a), "memory");
    dlock_close(a);
    dlock_close(b);
}
END_TEST

START_TEST(an_expired_lease_is_lost_and_taken)
{
    dlock_client *a = open_memory(), *b = open_memory();
    dlock_lock *la = NULL, *lb = NULL;
    uint64_t first = 0, second = 0;
    ck_assert_int_eq(dlock_acquire(a, "short", 100, 0, &la), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(la, &first), DLOCK_OK);
    /* b waits: granted once the lease is over, not before. */
    ck_assert_int_eq(dlock_acquire(b, "short", 5000, 2000, &lb), DLOCK_OK);
    ck_assert_int_eq(dlock_fence(lb, &second), DLOCK_OK);
    ck_assert_uint_gt(second, first);
    ck_assert_int_eq(dlock_extend(la, 5000), DLOCK_ELOST);
    ck_assert_int_eq(dlock_release(la), DLOCK_ELOST);
    ck_assert_int_eq(dlock_extend(lb, 5000), DLOCK_OK); /* the new holder's lease is untouched */
    ck_assert_int_eq(dlock_release(lb), DLOCK_OK);
    dlock_close(a);
    dlock_close(b);
}
END_TEST

START_TEST(a_bad_url_is_einval)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock__open_backend(&dlock_example_backend_memory, "memory://x", &c), DLOCK_EINVAL);
    ck_assert_ptr_null(c);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("example-backend");
    TCase *t = tcase_create("memory");
    tcase_add_test(t, two_clients_exclude_each_other);
    tcase_add_test(t, an_expired_lease_is_lost_and_taken);
    tcase_add_test(t, a_bad_url_is_einval);
    suite_add_tcase(suite, t);
    int failed = dlt_run_suite(suite);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
