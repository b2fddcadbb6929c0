/*
 * The heartbeat thread of `dlock run`: it acquires the lock, extends it
 * every TTL/3 and releases it when asked, and tells the main thread what
 * happened through a pipe.  A store that hangs therefore never keeps the
 * main thread from stopping the job when the lease runs out.
 */
#ifndef DLOCK_TOOLS_HEARTBEAT_H
#define DLOCK_TOOLS_HEARTBEAT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "dlock.h"

enum heartbeat_event_kind { HB_ACQUIRED = 'A', HB_EXTENDED = 'E', HB_RELEASED = 'R' };

struct heartbeat_event {
    char kind;
    int status;
};

typedef struct heartbeat {
    dlock_client *client;
    const char *name;
    uint32_t ttl_ms;
    int32_t wait_ms;
    dlock_lock *lock; /* set by the thread once acquired */
    int events[2];    /* pipe: [1] thread -> [0] main */
    int stop_fd;      /* eventfd, main -> thread: release now */
    int timer_fd;     /* the thread's own CLOCK_BOOTTIME timer */
    pthread_t thread;
    pthread_mutex_t mutex; /* guards error */
    char error[512];       /* detail of the last failure */
} heartbeat;

/* Set up and start the thread, which begins with dlock_acquire().
 * 0, or -1 with errno. */
int heartbeat_start(heartbeat *hb, dlock_client *client, const char *name, uint32_t ttl_ms, int32_t wait_ms);
/* Ask the thread to release the lock and end (it answers HB_RELEASED). */
void heartbeat_stop(heartbeat *hb);
void heartbeat_join(heartbeat *hb);
/* The descriptor that becomes readable when an event is waiting. */
int heartbeat_fd(const heartbeat *hb);
/* 0 with the next event, -1 when there is none any more. */
int heartbeat_read(heartbeat *hb, struct heartbeat_event *ev);
/* The detail text of the last failure, copied into buf. */
void heartbeat_error(heartbeat *hb, char *buf, size_t len);

#endif
