/* Raw baselines for the benchmark: the minimal SQL that takes and releases a
 * lock through the same driver as the backend, on one connection.  Each runs
 * `cycles` take+release cycles and stores the wall time; returns 0 on success. */
#ifndef DLOCK_BENCH_RAW_H
#define DLOCK_BENCH_RAW_H

int bench_raw_sqlite(const char *url, long cycles, double *elapsed_s);
int bench_raw_postgresql(const char *url, long cycles, double *elapsed_s);
int bench_raw_mysql(const char *url, long cycles, double *elapsed_s);

#endif
