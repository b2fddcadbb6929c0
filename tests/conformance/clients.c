/*
 * The conformance suite, in part: clients, processes and threads: close
 * releases, descriptors close on exec, one client shared.
 * (tests/check_conformance.c runs every part once per URL.)
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"

START_TEST(close_releases_everything)
{
    dlock_client *c = open_other();
    dlock_lock *l[3];
    char *names[3];
    for (int i = 0; i < 3; i++) {
        names[i] = dlt_unique_name("conf-close");
        ck_assert_int_eq(dlock_acquire(c, names[i], 60000, 0, &l[i]), DLOCK_OK);
    }
    ck_assert_int_eq(dlock_release(l[1]), DLOCK_OK); /* released handles are gone */
    dlock_close(c);
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(free_for_others(names[i]), "lock %d still held after dlock_close", i);
        free(names[i]);
    }
}
END_TEST

/* Every descriptor the library opened is close-on-exec, so that a child
 * process never keeps a lock alive. */
static void fd_snapshot(char *open_fds, int max)
{
    memset(open_fds, 0, (size_t)max);
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 0 && fd < max && fd != dirfd(d))
            open_fds[fd] = 1;
    }
    closedir(d);
}

START_TEST(descriptors_close_on_exec)
{
    enum { MAX_FD = 4096 };
    static char before[MAX_FD], after[MAX_FD];
    fd_snapshot(before, MAX_FD);
    dlock_client *c = open_other();
    dlock_lock *l = NULL;
    ck_assert_int_eq(dlock_acquire(c, name, 10000, 0, &l), DLOCK_OK);
    char buf[512];
    ck_assert_int_ge(dlock_holder(c, name, buf, sizeof buf), 0);
    fd_snapshot(after, MAX_FD);
    int checked = 0;
    for (int fd = 0; fd < MAX_FD; fd++) {
        if (!after[fd] || before[fd])
            continue;
        int flags = fcntl(fd, F_GETFD);
        ck_assert_msg(flags >= 0 && (flags & FD_CLOEXEC), "fd %d is not close-on-exec", fd);
        checked++;
    }
    ck_assert_int_gt(checked, 0);
    ck_assert_int_eq(dlock_release(l), DLOCK_OK);
    dlock_close(c);
}
END_TEST

struct thread_args {
    dlock_client *c;
    const char *name;
    int id;
    int ok;
    int *holding;
    pthread_mutex_t *mu;
    int overlap;
};

static void *thread_cycles(void *p)
{
    struct thread_args *a = p;
    for (int i = 0; i < 20; i++) {
        dlock_lock *l = NULL;
        int rc = dlock_acquire(a->c, a->name, 10000, 0, &l);
        if (rc == DLOCK_EBUSY)
            continue;
        if (rc != DLOCK_OK)
            return NULL;
        pthread_mutex_lock(a->mu);
        if (*a->holding)
            a->overlap = 1;
        *a->holding = 1;
        pthread_mutex_unlock(a->mu);
        dlt_sleep_ms(1);
        pthread_mutex_lock(a->mu);
        *a->holding = 0;
        pthread_mutex_unlock(a->mu);
        if (dlock_extend(l, 10000) != DLOCK_OK || dlock_release(l) != DLOCK_OK)
            return NULL;
        a->ok++;
    }
    return NULL;
}

START_TEST(threads_share_one_client)
{
    pthread_t t[4];
    struct thread_args a[4];
    int holding = 0;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thread_args){client, name, i, 0, &holding, &mu, 0};
        pthread_create(&t[i], NULL, thread_cycles, &a[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(a[i].overlap, 0);
        total += a[i].ok;
    }
    ck_assert_int_gt(total, 0);
    ck_assert(free_for_others(name));
}
END_TEST

void conformance_add_clients(Suite *s)
{
    TCase *t;
    t = tcase_create("clients");
    tcase_add_checked_fixture(t, conformance_setup, conformance_teardown);
    tcase_add_test(t, close_releases_everything);
    tcase_add_test(t, descriptors_close_on_exec);
    tcase_add_test(t, threads_share_one_client);
    suite_add_tcase(s, t);
}
