/*
 * Deadlines for the MySQL backend: a watchdog thread shuts the socket down
 * for reading when a round trip outlives its deadline; the blocked client
 * call then fails at once (end of file), and the session is dropped.  Works
 * the same with MariaDB Connector/C and libmysqlclient, blocking calls and
 * all.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "backend.h"

#include <sys/socket.h>
#include <time.h>

static void *watchdog_main(void *arg)
{
    struct mysqlbe_watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->quit) {
        if (w->fd < 0 || w->deadline_ms == INT64_MAX) {
            w->wake_ms = INT64_MAX;
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        int64_t left = w->deadline_ms - dlock__now_ms();
        if (left <= 0) {
            shutdown(w->fd, SHUT_RD); /* not SHUT_WR: a later write must not raise SIGPIPE */
            w->fired = 1;
            w->fd = -1;
            continue;
        }
        w->wake_ms = w->deadline_ms;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(left / 1000);
        until.tv_nsec += (long)(left % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int dlock__mysql_watchdog_start(struct mysqlbe_watchdog *w)
{
    pthread_condattr_t attr;
    w->fd = -1;
    w->wake_ms = INT64_MAX;
    w->cap_ms = INT64_MAX;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
    w->started = pthread_create(&w->thread, NULL, watchdog_main, w) == 0;
    return w->started ? DLOCK_OK : dlock__error(DLOCK_ENOMEM, "cannot start the deadline thread");
}

void dlock__mysql_watchdog_stop(struct mysqlbe_watchdog *w)
{
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* Round trips on `db` from now on end by deadline_ms (INT64_MAX: none, yet
 * a cancel may still set one with watch_shorten). */
void dlock__mysql_watch(struct mysqlbe_conn *c, MYSQL *db, int64_t deadline_ms)
{
    struct mysqlbe_watchdog *w = &c->dog;
    pthread_mutex_lock(&w->mu);
    w->fd = db ? (int)mysql_get_socket(db) : -1;
    /* A cancel that came between two round trips still bounds the next. */
    w->deadline_ms = deadline_ms < w->cap_ms ? deadline_ms : w->cap_ms;
    w->fired = 0;
    /* Wake the thread only when it would otherwise sleep past the new
     * deadline: a thread already due to wake before it looks again then
     * (round trips back to back cost no thread switch). */
    if (w->deadline_ms < w->wake_ms)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void dlock__mysql_watch_shorten(struct mysqlbe_conn *c, int64_t deadline_ms)
{
    struct mysqlbe_watchdog *w = &c->dog;
    pthread_mutex_lock(&w->mu);
    if (deadline_ms < w->cap_ms)
        w->cap_ms = deadline_ms;
    if (w->fd >= 0 && deadline_ms < w->deadline_ms) {
        w->deadline_ms = deadline_ms;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

void dlock__mysql_watch_uncap(struct mysqlbe_conn *c)
{
    dlock__mysql_watch_recap(c, INT64_MAX);
}

void dlock__mysql_watch_recap(struct mysqlbe_conn *c, int64_t deadline_ms)
{
    struct mysqlbe_watchdog *w = &c->dog;
    pthread_mutex_lock(&w->mu);
    w->cap_ms = deadline_ms;
    pthread_mutex_unlock(&w->mu);
}

int64_t dlock__mysql_watch_capped(struct mysqlbe_conn *c, int64_t deadline_ms)
{
    struct mysqlbe_watchdog *w = &c->dog;
    pthread_mutex_lock(&w->mu);
    if (w->cap_ms < deadline_ms)
        deadline_ms = w->cap_ms;
    pthread_mutex_unlock(&w->mu);
    return deadline_ms;
}

/* The round trips are over: 1 when the watchdog cut them short (then the
 * session must be dropped, whatever the call said). */
int dlock__mysql_unwatch(struct mysqlbe_conn *c)
{
    struct mysqlbe_watchdog *w = &c->dog;
    pthread_mutex_lock(&w->mu);
    int fired = w->fired;
    w->fd = -1;
    w->fired = 0;
    pthread_mutex_unlock(&w->mu);
    return fired;
}
