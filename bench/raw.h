/* Raw baselines for the benchmark: the minimal SQL that takes and releases a
 * lock through the same driver as the backend, on one connection.  Each runs
 * `cycles` take+release cycles and stores the wall time; returns 0 on success. */
#ifndef DLOCK_BENCH_RAW_H
#define DLOCK_BENCH_RAW_H

int bench_raw_sqlite(const char *url, long cycles, double *elapsed_s);
int bench_raw_postgresql(const char *url, long cycles, double *elapsed_s);
int bench_raw_mysql(const char *url, long cycles, double *elapsed_s);
/* MySQL lease mode: the backend's conditional upsert and owner-checked
 * release, through the same driver (the table must exist). */
int bench_raw_mysql_lease(const char *url, long cycles, double *elapsed_s);
/* `url` without mode=, fencing= and table= (malloc'ed). */
char *bench_raw_mysql_plain_url(const char *url);
int bench_raw_redis(const char *url, long cycles, double *elapsed_s);
/* PostgreSQL lease mode's baseline: an upsert and a delete, unnamed
 * statements, on one connection (libdlock's own URL options removed). */
int bench_raw_postgresql_lease(const char *url, long cycles, double *elapsed_s);
/* A malloc'ed copy of a postgresql URL without libdlock's options (NULL), or
 * without the one parameter that starts with drop_only ("fencing="). */
char *bench_pg_plain_url(const char *url, const char *drop_only);

/* Raw server-side handoff: one session holds the lock, another blocks in
 * the server (pg_advisory_lock under lock_timeout, GET_LOCK with a timeout)
 * until it is released.  open returns NULL on failure; lock(wait) returns 1
 * when granted; unlock returns 1 when it released. */
void *bench_raw_postgresql_open(const char *url);
int bench_raw_postgresql_lock(void *session, int wait);
int bench_raw_postgresql_unlock(void *session);
void bench_raw_postgresql_close(void *session);
/* The note of a PostgreSQL cycles line: its baseline and issue 23's target. */
const char *bench_raw_postgresql_note(const char *url);
void *bench_raw_mysql_open(const char *url);
int bench_raw_mysql_lock(void *session, int wait);
int bench_raw_mysql_unlock(void *session);
void bench_raw_mysql_close(void *session);
/* Redis: the waiter subscribes to the release channel on a second connection
 * and retries SET NX at each message (a publish/subscribe wake). */
void *bench_raw_redis_open(const char *url);
int bench_raw_redis_lock(void *session, int wait);
int bench_raw_redis_unlock(void *session);
void bench_raw_redis_close(void *session);
/* etcd: grant, guarded put + range, delete, revoke (the work of a libdlock
 * cycle); the waiter watches the holder's key for its deletion. */
int bench_raw_etcd(const char *url, long cycles, double *elapsed_s);
void *bench_raw_etcd_open(const char *url);
int bench_raw_etcd_lock(void *session, int wait);
int bench_raw_etcd_unlock(void *session);
void bench_raw_etcd_close(void *session);
/* ZooKeeper: the recipe's round trips on one session (create an ephemeral
 * sequential node, list the folder, delete it); the waiter watches the
 * holder's node and is woken by its deletion. */
int bench_raw_zookeeper(const char *url, long cycles, double *elapsed_s);
void *bench_raw_zookeeper_open(const char *url);
int bench_raw_zookeeper_lock(void *session, int wait);
int bench_raw_zookeeper_unlock(void *session);
void bench_raw_zookeeper_close(void *session);

#endif
