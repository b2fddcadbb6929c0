/* The heartbeat thread of `dlock run` (see heartbeat.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "heartbeat.h"

static void post(heartbeat *hb, char kind, int status)
{
    struct heartbeat_event ev;
    memset(&ev, 0, sizeof ev); /* no uninitialized padding through the pipe (valgrind) */
    ev.kind = kind;
    ev.status = status;
    if (status != DLOCK_OK) {
        pthread_mutex_lock(&hb->mutex);
        snprintf(hb->error, sizeof hb->error, "%s", dlock_last_error());
        pthread_mutex_unlock(&hb->mutex);
    }
    while (write(hb->events[1], &ev, sizeof ev) < 0 && errno == EINTR) {
    }
}

/* Wait until `deadline` or a stop request; returns 1 when asked to stop
 * (the request stays readable, so every later call returns 1 at once). */
static int nap_until(heartbeat *hb, int64_t deadline)
{
    cli_arm_timer(hb->timer_fd, deadline);
    for (;;) {
        struct pollfd fds[2] = {{hb->stop_fd, POLLIN, 0}, {hb->timer_fd, POLLIN, 0}};
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            return 1;
        if (fds[0].revents & POLLIN)
            return 1;
        if (cli_now_ms() >= deadline)
            return 0;
    }
}

static void *heartbeat_main(void *arg)
{
    heartbeat *hb = arg;
    int rc = dlock_acquire(hb->client, hb->name, hb->ttl_ms, hb->wait_ms, &hb->lock);
    post(hb, HB_ACQUIRED, rc);
    if (rc != DLOCK_OK)
        return NULL;
    /* A third of the lease the store granted, which may be shorter than
     * the TTL asked (SPEC "The granted lease"). */
    int64_t lease = dlock_remaining_ms(hb->lock);
    if (lease <= 0 || lease > (int64_t)hb->ttl_ms)
        lease = hb->ttl_ms;
    int64_t interval = lease / 3 ? lease / 3 : 1;
    int64_t retry = interval / 3 ? interval / 3 : 1;
    int64_t next = cli_now_ms() + interval;
    int lost = 0;
    for (;;) {
        if (nap_until(hb, lost ? INT64_MAX : next))
            break;
        int64_t sent = cli_now_ms();
        rc = dlock_extend(hb->lock, hb->ttl_ms);
        post(hb, HB_EXTENDED, rc);
        if (rc == DLOCK_ELOST)
            lost = 1;
        next = (rc == DLOCK_OK ? sent + interval : cli_now_ms() + retry);
    }
    rc = dlock_release(hb->lock);
    hb->lock = NULL;
    post(hb, HB_RELEASED, rc);
    return NULL;
}

int heartbeat_start(heartbeat *hb, dlock_client *client, const char *name, uint32_t ttl_ms, int32_t wait_ms)
{
    *hb = (heartbeat){.client = client, .name = name, .ttl_ms = ttl_ms, .wait_ms = wait_ms};
    pthread_mutex_init(&hb->mutex, NULL);
    if (pipe2(hb->events, O_CLOEXEC) != 0)
        return -1;
    hb->stop_fd = eventfd(0, EFD_CLOEXEC);
    hb->timer_fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC);
    if (hb->stop_fd < 0 || hb->timer_fd < 0)
        return -1;
    int err = pthread_create(&hb->thread, NULL, heartbeat_main, hb);
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

void heartbeat_stop(heartbeat *hb)
{
    uint64_t one = 1;
    (void)!write(hb->stop_fd, &one, sizeof one);
}

void heartbeat_join(heartbeat *hb)
{
    pthread_join(hb->thread, NULL);
}

int heartbeat_fd(const heartbeat *hb)
{
    return hb->events[0];
}

int heartbeat_read(heartbeat *hb, struct heartbeat_event *ev)
{
    ssize_t n;
    while ((n = read(hb->events[0], ev, sizeof *ev)) < 0 && errno == EINTR) {
    }
    return n == (ssize_t)sizeof *ev ? 0 : -1;
}

void heartbeat_error(heartbeat *hb, char *buf, size_t len)
{
    pthread_mutex_lock(&hb->mutex);
    snprintf(buf, len, "%s", hb->error);
    pthread_mutex_unlock(&hb->mutex);
}
