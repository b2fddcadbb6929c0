/*
 * dlock_cancel() for the MySQL backend: KILL QUERY from a second
 * connection, sent by a detached thread, so that a GET_LOCK waiting in the
 * server returns at once.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "backend.h"

#include <stdio.h>
#include <time.h>

/* The cancel connection's timeouts: it only ever sends KILL QUERY. */
#define KILL_TIMEOUT_S 2
/* A wait whose server does not end it within this long after dlock_cancel()
 * (a stopped server) is given up locally: the session is dropped. */
#define CANCEL_GIVEUP_MS 1000
/* How often a cancel repeats KILL QUERY while the wait goes on. */
#define KILL_RETRY_NS 50000000L

/* cancel_cv times its waits on CLOCK_MONOTONIC (the kill thread's pause, a
 * lease-mode poll's sleep): a step of the wall clock must neither stretch
 * nor cut a bounded wait. */
void dlock__mysql_cancel_init(struct mysqlbe_conn *c)
{
    pthread_condattr_t attr;
    pthread_mutex_init(&c->cancel_mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cancel_cv, &attr);
    pthread_condattr_destroy(&attr);
}

void dlock__mysql_cancel_destroy(struct mysqlbe_conn *c)
{
    pthread_mutex_lock(&c->cancel_mu);
    c->waiting_id = 0;
    pthread_cond_broadcast(&c->cancel_cv);
    while (c->kill_in_flight)
        pthread_cond_wait(&c->cancel_cv, &c->cancel_mu);
    if (c->cancel_db)
        mysql_close(c->cancel_db);
    c->cancel_db = NULL;
    pthread_mutex_unlock(&c->cancel_mu);
    pthread_cond_destroy(&c->cancel_cv);
    pthread_mutex_destroy(&c->cancel_mu);
}

static void *kill_thread_main(void *arg)
{
    struct mysqlbe_conn *c = arg;
    mysql_thread_init();
    pthread_mutex_lock(&c->cancel_mu);
    unsigned long target = c->waiting_id;
    MYSQL *db = c->cancel_db;
    c->cancel_db = NULL; /* ours until kill_in_flight is cleared */
    /* KILL QUERY may overtake the GET_LOCK it is meant for (then it finds an
     * idle session and does nothing): repeat it until the wait is over. */
    while (target && c->waiting_id == target) {
        pthread_mutex_unlock(&c->cancel_mu);
        char sql[64];
        snprintf(sql, sizeof sql, "KILL QUERY %lu", target);
        for (int attempt = 0; attempt < 2; attempt++) {
            if (!db && dlock__mysql_open_handle(&c->url, &db, KILL_TIMEOUT_S, KILL_TIMEOUT_S) != DLOCK_OK) {
                db = NULL;
                break;
            }
            if (mysql_query(db, sql) == 0)
                break;
            /* A stale cancel connection (server restarted): reopen once. */
            mysql_close(db);
            db = NULL;
        }
        pthread_mutex_lock(&c->cancel_mu);
        if (c->waiting_id != target)
            break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until); /* cancel_cv's clock */
        until.tv_nsec += KILL_RETRY_NS;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cancel_cv, &c->cancel_mu, &until);
    }
    if (c->cancel_db) /* cannot happen, but never leak */
        mysql_close(c->cancel_db);
    c->cancel_db = db;
    c->kill_in_flight = 0;
    pthread_cond_broadcast(&c->cancel_cv);
    pthread_mutex_unlock(&c->cancel_mu);
    mysql_thread_end();
    return NULL;
}

void dlock__mysql_cancel(struct dlock_conn *conn)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    if (!c)
        return;
    pthread_mutex_lock(&c->cancel_mu);
    /* Before the wait has started, the request is only noted: dlock__mysql_begin_wait()
     * sees it and the GET_LOCK is never sent. */
    if (c->acquiring) {
        c->cancel_requested = 1;
        pthread_cond_broadcast(&c->cancel_cv); /* a lease-mode wait sleeps on it */
        /* A round trip of this acquire that the server does not answer soon
         * (a lease-mode poll; the session's idle limit or the first query
         * before a GET_LOCK) is given up, the one in flight and any later
         * one: the session is dropped, and with it the locks it held, as
         * when the wait itself is given up below. */
        dlock__mysql_watch_shorten(c, dlock__now_ms() + CANCEL_GIVEUP_MS);
    }
    if (c->waiting_id) {
        /* A server that does not end the wait soon (stopped, say): give up. */
        dlock__mysql_watch_shorten(c, dlock__now_ms() + CANCEL_GIVEUP_MS);
        if (!c->kill_in_flight) {
            pthread_attr_t attr;
            pthread_t thread;
            c->kill_in_flight = 1;
            if (pthread_attr_init(&attr) == 0) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&thread, &attr, kill_thread_main, c) != 0)
                    c->kill_in_flight = 0;
                pthread_attr_destroy(&attr);
            } else {
                c->kill_in_flight = 0;
            }
        }
    }
    pthread_mutex_unlock(&c->cancel_mu);
}

void dlock__mysql_acquiring(struct mysqlbe_conn *c, int active)
{
    pthread_mutex_lock(&c->cancel_mu);
    c->acquiring = active;
    c->cancel_requested = 0;
    dlock__mysql_watch_uncap(c); /* a cancel bounds only its own acquire */
    pthread_mutex_unlock(&c->cancel_mu);
}

int dlock__mysql_cancel_asked(struct mysqlbe_conn *c)
{
    pthread_mutex_lock(&c->cancel_mu);
    int canceled = c->cancel_requested;
    pthread_mutex_unlock(&c->cancel_mu);
    return canceled;
}

/* Before a wait: make sure a cancel connection is ready (best effort; the
 * kill thread opens one itself when this failed), and publish the wait.
 * Returns 1 when a cancel came first: then there must be no wait. */
int dlock__mysql_begin_wait(struct mysqlbe_conn *c)
{
    pthread_mutex_lock(&c->cancel_mu);
    while (c->kill_in_flight)
        pthread_cond_wait(&c->cancel_cv, &c->cancel_mu);
    MYSQL *cancel_db = c->cancel_db;
    pthread_mutex_unlock(&c->cancel_mu);
    if (!cancel_db && dlock__mysql_open_handle(&c->url, &cancel_db, KILL_TIMEOUT_S, KILL_TIMEOUT_S) != DLOCK_OK) {
        cancel_db = NULL; /* the kill thread will try again if it must */
        dlock__clear_error();
    }
    pthread_mutex_lock(&c->cancel_mu);
    if (!c->cancel_db)
        c->cancel_db = cancel_db;
    else if (cancel_db && cancel_db != c->cancel_db)
        mysql_close(cancel_db);
    int canceled = c->cancel_requested;
    if (!canceled)
        c->waiting_id = c->connection_id;
    else /* putting the session's idle limit back gets a second of its own */
        dlock__mysql_watch_recap(c, dlock__now_ms() + CANCEL_GIVEUP_MS);
    pthread_mutex_unlock(&c->cancel_mu);
    return canceled;
}

/* After a wait: no KILL may still be on its way to a session we go on
 * using (a dropped one takes no more statements: no need to wait for a
 * KILL to a stopped server).  A KILL that the server does not answer
 * within CANCEL_GIVEUP_MS (it went on with the first KILL, then stopped)
 * is not waited for: the session is dropped instead.  After a cancelled
 * wait, each round trip that follows (is the lock ours after all? give it
 * back; the idle limit) ends by CANCEL_GIVEUP_MS from the wait's end.
 * Returns whether a cancel was asked for during the wait. */
int dlock__mysql_end_wait(struct mysqlbe_conn *c)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until); /* cancel_cv's clock */
    until.tv_sec += CANCEL_GIVEUP_MS / 1000;
    until.tv_nsec += (long)(CANCEL_GIVEUP_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->cancel_mu);
    c->waiting_id = 0;
    pthread_cond_broadcast(&c->cancel_cv); /* a kill thread may be pausing */
    int stuck = 0;
    while (c->kill_in_flight && c->db && !stuck)
        stuck = pthread_cond_timedwait(&c->cancel_cv, &c->cancel_mu, &until) != 0 && c->kill_in_flight;
    int canceled = c->cancel_requested;
    if (canceled)
        dlock__mysql_watch_recap(c, dlock__now_ms() + CANCEL_GIVEUP_MS);
    pthread_mutex_unlock(&c->cancel_mu);
    if (stuck && c->db)
        dlock__mysql_drop_session(c); /* the late KILL finds no statement of ours */
    return canceled;
}

/* Under the core's cancel mutex, when a wait has ended: forget a cancel that
 * came too late (dlock__mysql_end_wait() has already made sure that no KILL QUERY is
 * still on its way to a session we go on using). */
void dlock__mysql_cancel_clear(struct dlock_conn *conn)
{
    struct mysqlbe_conn *c = dlock__mysql_of(conn);
    pthread_mutex_lock(&c->cancel_mu);
    c->cancel_requested = 0;
    pthread_mutex_unlock(&c->cancel_mu);
}
