/*
 * dlock-bench: what a lock costs, against the raw driver in the same run.
 *
 *   dlock-bench [--json] [--short] [--only=PART[,PART...]] [URL...]
 *
 * URLs default to $DLOCK_BENCH_URLS, else $DLOCK_TEST_URLS, else an SQLite
 * file in a temporary folder.  For each: acquire+release cycles of libdlock
 * and of the raw driver, interleaved round by round; handoff latency between
 * two processes; 10,000 locks held on one client and the library's memory per
 * lock; 32 processes contending for one name.  On SQLite also `dlock run`
 * against `flock -n`.  --json prints one object per line.  --only runs some
 * of the parts: cycles, handoff, scale, contention, cli (e.g. --only=handoff
 * while working on one of them).
 * PostgreSQL URLs with mode=lease are compared with a raw upsert and delete
 * loop (unnamed statements); URLs with fencing=on with plain session mode.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dlock.h"
#include "raw.h"

static int json, short_mode;
static const char *only; /* --only=PART,...: the parts to run; NULL all */

/* Whether --only lets `part` run. */
static int runs(const char *part)
{
    if (!only)
        return 1;
    size_t n = strlen(part);
    for (const char *p = only; (p = strstr(p, part)); p += n)
        if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}
static int bench_failed; /* something did not work (never a speed figure) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void report(const char *backend, const char *metric, double value, const char *unit, double raw_value,
                   const char *note)
{
    if (json) {
        printf("{\"backend\":\"%s\",\"metric\":\"%s\",\"value\":%.3f,\"unit\":\"%s\"", backend, metric, value, unit);
        if (raw_value > 0)
            printf(",\"raw_value\":%.3f,\"ratio\":%.3f", raw_value, value / raw_value);
        printf("}\n");
    } else {
        printf("%-11s %-24s %12.1f %-10s", backend, metric, value, unit);
        if (raw_value > 0)
            printf(" raw %10.1f  ratio %.2f", raw_value, value / raw_value);
        if (note)
            printf("  %s", note);
        printf("\n");
    }
    fflush(stdout);
}

static int run_lib(dlock_client *c, long cycles, double *elapsed);

/* The raw server-side handoff of a store (open NULL: it has none). */
struct raw_ops {
    void *(*open)(const char *url);
    int (*lock)(void *session, int wait);
    int (*unlock)(void *session);
    void (*close)(void *session);
};

/* What a store's libdlock figures are compared with: one row per store (a
 * new store adds its row). */
struct raw_scheme {
    const char *backend; /* dlock_backend()'s name */
    /* acquire+release cycles through the raw driver; lease_cycles for a
     * URL with mode=lease (NULL: the same loop) */
    int (*cycles)(const char *url, long cycles, double *elapsed_s);
    int (*lease_cycles)(const char *url, long cycles, double *elapsed_s);
    struct raw_ops handoff;
    const char *note;                       /* the cycles line's note in the default mode, or NULL */
    const char *(*note_for)(const char *url); /* ... or from the URL, or NULL */
};

#ifdef BENCH_RAW_MYSQL
/* MySQL: fencing=on is compared with plain session mode, through libdlock
 * both. */
static int mysql_cycles(const char *url, long cycles, double *elapsed)
{
    if (!strstr(url, "fencing=on"))
        return bench_raw_mysql(url, cycles, elapsed);
    char *plain = bench_raw_mysql_plain_url(url);
    dlock_client *c = NULL;
    int rc = plain && dlock_open(plain, &c) == DLOCK_OK ? run_lib(c, cycles, elapsed) : -1;
    dlock_close(c);
    free(plain);
    return rc;
}
#endif

static const struct raw_scheme raw_schemes[] = {
#ifdef HAVE_SQLITE
    {"sqlite", bench_raw_sqlite, NULL, {NULL, NULL, NULL, NULL}, "(raw: WAL, synchronous=NORMAL; target >= 0.80)",
     NULL},
#endif
#ifdef BENCH_RAW_POSTGRESQL
    {"postgresql", bench_raw_postgresql, bench_raw_postgresql_lease,
     {bench_raw_postgresql_open, bench_raw_postgresql_lock, bench_raw_postgresql_unlock, bench_raw_postgresql_close},
     NULL, bench_raw_postgresql_note},
#endif
#ifdef BENCH_RAW_MYSQL
    {"mysql", mysql_cycles, bench_raw_mysql_lease,
     {bench_raw_mysql_open, bench_raw_mysql_lock, bench_raw_mysql_unlock, bench_raw_mysql_close}, NULL, NULL},
#endif
#ifdef BENCH_RAW_REDIS
    {"redis", bench_raw_redis, NULL,
     {bench_raw_redis_open, bench_raw_redis_lock, bench_raw_redis_unlock, bench_raw_redis_close},
     "(raw: SET NX PX + compare-and-delete EVALSHA; target >= 0.90)", NULL},
#endif
#ifdef BENCH_RAW_ETCD
    {"etcd", bench_raw_etcd, NULL,
     {bench_raw_etcd_open, bench_raw_etcd_lock, bench_raw_etcd_unlock, bench_raw_etcd_close}, NULL, NULL},
#endif
#ifdef BENCH_RAW_ZOOKEEPER
    {"zookeeper", bench_raw_zookeeper, NULL,
     {bench_raw_zookeeper_open, bench_raw_zookeeper_lock, bench_raw_zookeeper_unlock, bench_raw_zookeeper_close},
     NULL, NULL},
#endif
    {NULL, NULL, NULL, {NULL, NULL, NULL, NULL}, NULL, NULL},
};

/* The row of `backend`, or NULL when the bench has no raw loop for it. */
static const struct raw_scheme *raw_scheme_for(const char *backend)
{
    for (const struct raw_scheme *r = raw_schemes; r->backend; r++)
        if (strcmp(r->backend, backend) == 0)
            return r;
    return NULL;
}

static int run_raw(const char *backend, const char *url, long cycles, double *elapsed)
{
    const struct raw_scheme *r = raw_scheme_for(backend);
    if (!r)
        return -1;
    if (r->lease_cycles && strstr(url, "mode=lease"))
        return r->lease_cycles(url, cycles, elapsed);
    return r->cycles(url, cycles, elapsed);
}

static int run_lib(dlock_client *c, long cycles, double *elapsed)
{
    double start = now_s();
    for (long i = 0; i < cycles; i++) {
        dlock_lock *l = NULL;
        if (dlock_acquire(c, "bench-lib", 60000, 0, &l) != DLOCK_OK || dlock_release(l) != DLOCK_OK) {
            fprintf(stderr, "dlock-bench: cycle failed: %s\n", dlock_last_error());
            return -1;
        }
    }
    *elapsed = now_s() - start;
    return 0;
}

/* PostgreSQL session mode with fencing=on: its cycles against plain
 * session mode's (the same URL without fencing=on), interleaved. */
static void bench_fencing(const char *backend, const char *url, dlock_client *c)
{
#ifdef BENCH_RAW_POSTGRESQL
    char *plain_url = bench_pg_plain_url(url, "fencing=");
    dlock_client *plain = NULL;
    if (!plain_url || dlock_open(plain_url, &plain) != DLOCK_OK) {
        fprintf(stderr, "dlock-bench: plain session: %s\n", dlock_last_error());
        free(plain_url);
        bench_failed = 1;
        return;
    }
    free(plain_url);
    int rounds = short_mode ? 3 : 10;
    long cycles = short_mode ? 300 : 2000;
    double plain_total = 0, fence_total = 0;
    for (int r = 0; r < rounds; r++) {
        double e;
        if (run_lib(plain, cycles, &e) != 0) {
            bench_failed = 1;
            break;
        }
        plain_total += e;
        if (run_lib(c, cycles, &e) != 0) {
            bench_failed = 1;
            break;
        }
        fence_total += e;
    }
    dlock_close(plain);
    if (bench_failed)
        return;
    double plain_rate = cycles * rounds / plain_total, fence_rate = cycles * rounds / fence_total;
    report(backend, "fencing_cycles", fence_rate, "cycles/s", plain_rate,
           "(raw: plain session mode; target ratio >= 0.70)");
#else
    (void)backend;
    (void)url;
    (void)c;
#endif
}

/* Cycles per second, libdlock against the raw driver, interleaved. */
/* ZooKeeper keeps a client's session from one lock to the next with the
 * same TTL (opening and closing a session are quorum writes): cycles on the
 * kept session against cycles whose TTL alternates, so that each acquire
 * replaces the session; interleaved. */
static void bench_session_reuse(const char *label, dlock_client *c)
{
    int rounds = short_mode ? 2 : 5;
    long cycles = short_mode ? 20 : 100;
    double kept = 0, fresh = 0;
    for (int r = 0; r < rounds; r++) {
        double start = now_s();
        for (long i = 0; i < cycles; i++) {
            dlock_lock *l = NULL;
            if (dlock_acquire(c, "bench-session", 60000, 0, &l) != DLOCK_OK || dlock_release(l) != DLOCK_OK)
                goto failed;
        }
        kept += now_s() - start;
        start = now_s();
        for (long i = 0; i < cycles; i++) {
            dlock_lock *l = NULL;
            if (dlock_acquire(c, "bench-session", 60000 + (uint32_t)(i & 1), 0, &l) != DLOCK_OK ||
                dlock_release(l) != DLOCK_OK)
                goto failed;
        }
        fresh += now_s() - start;
    }
    report(label, "cycles_kept_session", cycles * rounds / kept, "cycles/s", 0, NULL);
    report(label, "cycles_new_session", cycles * rounds / fresh, "cycles/s", 0, "a session opened and closed per cycle");
    return;
failed:
    fprintf(stderr, "dlock-bench: session cycle failed: %s\n", dlock_last_error());
    bench_failed = 1;
}

static void bench_cycles(const char *backend, const char *label, const char *url, dlock_client *c)
{
    if (strstr(url, "fencing=on")) {
        bench_fencing(backend, url, c);
        return;
    }
    int rounds = short_mode ? 3 : 10;
    long cycles = 200;
    double probe;
    /* One cycle through libdlock first: it creates the tables (lease mode)
     * that the raw loop then uses. */
    if (run_lib(c, 1, &probe) != 0) {
        bench_failed = 1;
        return;
    }
    /* Size a round to about 0.1 s (short) or 0.5 s of raw work. */
    if (run_raw(backend, url, cycles, &probe) == 0 && probe > 0) {
        double target = short_mode ? 0.1 : 0.5;
        cycles = (long)(cycles * target / probe);
        if (cycles < 100)
            cycles = 100;
    }
    double raw_total = 0, lib_total = 0;
    for (int r = 0; r < rounds; r++) {
        double e;
        if (run_raw(backend, url, cycles, &e) != 0) {
            fprintf(stderr, "dlock-bench: raw %s baseline failed\n", backend);
            bench_failed = 1;
            return;
        }
        raw_total += e;
        if (run_lib(c, cycles, &e) != 0) {
            bench_failed = 1;
            return;
        }
        lib_total += e;
    }
    double raw_rate = cycles * rounds / raw_total, lib_rate = cycles * rounds / lib_total;
    const char *vs = strstr(url, "fencing=on") ? "(raw: plain session mode)" : NULL;
    /* The targets of issue 23, printed beside the ratios they judge. */
    const struct raw_scheme *scheme = raw_scheme_for(backend);
    if (scheme && scheme->note && strcmp(label, backend) == 0)
        vs = scheme->note;
    if (scheme && scheme->note_for)
        vs = scheme->note_for(url);
    report(label, "cycles", lib_rate, "cycles/s", raw_rate, vs);
    report(label, "cycle_latency", 1e6 / lib_rate, "us", 1e6 / raw_rate, vs);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const struct raw_ops *raw_ops_for(const char *backend, const char *url)
{
    if (strstr(url, "mode=lease"))
        return NULL; /* no server-side wait to compare with: a poll */
    const struct raw_scheme *r = raw_scheme_for(backend);
    return r && r->handoff.open ? &r->handoff : NULL;
}

/*
 * One handoff: this process holds the lock, a child blocks waiting for it;
 * the release-to-grant latency in ms (-1 on failure).  With ops, through the
 * raw driver (a server-side wait); without, through libdlock.
 */
static double handoff_once(const char *url, dlock_client *c, const struct raw_ops *ops, int first)
{
    dlock_lock *held = NULL;
    void *raw_holder = NULL;
    if (ops) {
        raw_holder = ops->open(url);
        if (!raw_holder || ops->lock(raw_holder, 0) != 1) {
            if (raw_holder)
                ops->close(raw_holder);
            return -1;
        }
    } else if (dlock_acquire(c, "bench-handoff", 60000, 0, &held) != DLOCK_OK) {
        return -1;
    }
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        double t = -1;
        if (ops) {
            void *w = ops->open(url);
            if (w && ops->lock(w, 1) == 1) {
                t = now_s();
                ops->unlock(w);
            }
            if (w)
                ops->close(w);
        } else {
            dlock_client *w = NULL;
            dlock_lock *l = NULL;
            if (dlock_open(url, &w) == DLOCK_OK &&
                dlock_acquire(w, "bench-handoff", 60000, DLOCK_WAIT_FOREVER, &l) == DLOCK_OK) {
                t = now_s();
                dlock_release(l);
            }
            dlock_close(w);
        }
        if (write(fds[1], &t, sizeof t) < 0)
            _exit(1);
        _exit(0);
    }
    /* Let the waiter connect and block (longer for the first one). */
    struct timespec pause = {0, (first ? 300 : 60) * 1000000L};
    nanosleep(&pause, NULL);
    /* The store frees the lock inside the release round trip: count from its
     * middle, the same way for both. */
    double released = now_s();
    if (ops)
        ops->unlock(raw_holder);
    else
        dlock_release(held);
    released = (released + now_s()) / 2;
    double granted = -1;
    if (read(fds[0], &granted, sizeof granted) != (ssize_t)sizeof granted)
        granted = -1;
    close(fds[0]);
    close(fds[1]);
    waitpid(pid, NULL, 0);
    if (ops)
        ops->close(raw_holder);
    return granted > 0 ? (granted - released) * 1000.0 : -1;
}

static double percentile(double *v, int n, int pct)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (n * pct) / 100;
    return v[i >= n ? n - 1 : i];
}

/* Release-to-grant latency, libdlock and (where the store can block) the raw
 * server-side wait, interleaved. */
static void bench_handoff(const char *backend, const char *label, const char *url, dlock_client *c)
{
    int n = short_mode ? 15 : 200;
    /* Lease mode has no server-side wait to compare with. */
    const struct raw_ops *ops = strstr(url, "mode=lease") ? NULL : raw_ops_for(backend, url);
    double *lib = calloc((size_t)n, sizeof *lib), *raw = calloc((size_t)n, sizeof *raw);
    int got_lib = 0, got_raw = 0;
    for (int i = 0; i < n; i++) {
        double ms = handoff_once(url, c, NULL, i == 0);
        if (ms >= 0)
            lib[got_lib++] = ms;
        if (ops && (ms = handoff_once(url, c, ops, i == 0)) >= 0)
            raw[got_raw++] = ms;
    }
    if (got_lib) {
        double p50 = percentile(lib, got_lib, 50), p99 = percentile(lib, got_lib, 99);
        double raw50 = got_raw ? percentile(raw, got_raw, 50) : 0, raw99 = got_raw ? percentile(raw, got_raw, 99) : 0;
        report(label, "handoff_p50", p50, "ms", raw50, NULL);
        report(label, "handoff_p99", p99, "ms", raw99, NULL);
    }
    free(lib);
    free(raw);
}

/* 10,000 distinct locks on one client; the library's heap per held lock. */
static void bench_scale(const char *backend, dlock_client *c)
{
    /* --short (CI: that it still works) holds 1,000. */
    const int N = short_mode ? 1000 : 10000;
    dlock_lock **locks = calloc((size_t)N, sizeof *locks);
    char name[64];
    /* Warm up: the first acquire allocates prepared statements and buffers. */
    dlock_lock *warm = NULL;
    if (dlock_acquire(c, "bench-scale-warm", 60000, 0, &warm) == DLOCK_OK)
        dlock_release(warm);
    struct mallinfo2 before = mallinfo2();
    double start = now_s();
    int held = 0;
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "bench-scale-%d-%d", (int)getpid(), i);
        int rc = dlock_acquire(c, name, 600000, 0, &locks[i]);
        if (rc != DLOCK_OK) {
            fprintf(stderr, "dlock-bench: %s: lock %d of %d: %s\n", backend, i, N, dlock_last_error());
            break;
        }
        held++;
    }
    double took = now_s() - start;
    struct mallinfo2 after = mallinfo2();
    double per_lock = held ? ((double)after.uordblks - (double)before.uordblks) / held : 0;
    start = now_s();
    for (int i = 0; i < held; i++)
        dlock_release(locks[i]);
    double release_took = now_s() - start;
    report(backend, "scale_locks_held", held, "locks", 0, held == N ? NULL : "FEWER THAN ASKED FOR");
    if (held != N)
        bench_failed = 1;
    report(backend, "scale_acquire_all", took * 1000, "ms", 0, NULL);
    report(backend, "scale_release_all", release_took * 1000, "ms", 0, NULL);
    report(backend, "memory_per_lock", per_lock, "bytes", 0, NULL);
    free(locks);
}

/* 32 processes loop on one name with waits: cycles per second, errors. */
static void bench_contention(const char *backend, const char *url)
{
    enum { PROCS = 32 };
    double seconds = short_mode ? 1.0 : 5.0;
    long *counts = mmap(NULL, sizeof(long) * PROCS * 2, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED)
        return;
    memset(counts, 0, sizeof(long) * PROCS * 2);
    double start = now_s();
    pid_t pids[PROCS];
    fflush(NULL);
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        if (pids[p] == 0) {
            dlock_client *c = NULL;
            if (dlock_open(url, &c) != DLOCK_OK) {
                counts[PROCS + p]++;
                _exit(1);
            }
            while (now_s() - start < seconds) {
                dlock_lock *l = NULL;
                int rc = dlock_acquire(c, "bench-contention", 60000, 5000, &l);
                if (rc == DLOCK_OK)
                    rc = dlock_release(l);
                if (rc == DLOCK_OK)
                    counts[p]++;
                else if (rc != DLOCK_EBUSY)
                    counts[PROCS + p]++;
            }
            dlock_close(c);
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++)
        waitpid(pids[p], NULL, 0);
    double took = now_s() - start;
    long total = 0, errors = 0;
    for (int p = 0; p < PROCS; p++) {
        total += counts[p];
        errors += counts[PROCS + p];
    }
    report(backend, "contention_cycles", total / took, "cycles/s", 0, NULL);
    report(backend, "contention_errors", (double)errors, "errors", 0, errors ? "MUST BE 0" : NULL);
    if (errors)
        bench_failed = 1;
    munmap(counts, sizeof(long) * PROCS * 2);
}

/* Run argv (no shell in between); 1 when it exited 0. */
static int run_argv(char *const argv[])
{
    pid_t pid;
    extern char **environ;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return 0;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* `dlock run NAME -- true` against `flock -n FILE true`, in wall time,
 * interleaved.  The dlock binary: $DLOCK_BIN, else the build tree's
 * .libs/dlock (not the libtool wrapper script), else dlock on PATH. */
static int bench_cli(const char *url)
{
    char bin[4096];
    const char *env = getenv("DLOCK_BIN");
    if (env && *env) {
        snprintf(bin, sizeof bin, "%s", env);
    } else if (access(".libs/dlock", X_OK) == 0) {
        snprintf(bin, sizeof bin, ".libs/dlock");
        const char *old = getenv("LD_LIBRARY_PATH");
        char path[4200];
        snprintf(path, sizeof path, ".libs%s%s", old && *old ? ":" : "", old ? old : "");
        setenv("LD_LIBRARY_PATH", path, 1);
    } else {
        snprintf(bin, sizeof bin, "dlock");
    }
    char flock_file[64];
    snprintf(flock_file, sizeof flock_file, "/tmp/dlock-bench-%d.flock", (int)getpid());
    char *dlock_argv[] = {bin, "run", "-u", (char *)url, "bench-cli", "--", "true", NULL};
    char *flock_argv[] = {"flock", "-n", flock_file, "true", NULL};
    if (!run_argv(dlock_argv) || !run_argv(flock_argv)) {
        fprintf(stderr, "dlock-bench: cannot run %s or flock: skipping the command-line comparison\n", bin);
        unlink(flock_file);
        return 0;
    }
    int n = short_mode ? 20 : 200;
    double t_dlock = 0, t_flock = 0;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        double s = now_s();
        ok = run_argv(dlock_argv);
        t_dlock += now_s() - s;
        s = now_s();
        ok = ok && run_argv(flock_argv);
        t_flock += now_s() - s;
    }
    unlink(flock_file);
    if (!ok) {
        fprintf(stderr, "dlock-bench: dlock run failed\n");
        return -1;
    }
    /* Lower is better here: the ratio is dlock's time over flock's. */
    report("sqlite", "cli_run_true", t_dlock / n * 1000, "ms", t_flock / n * 1000,
           "(vs flock -n FILE true; target <= 1.5)");
    return 0;
}

int main(int argc, char **argv)
{
    char *urls[32];
    int nurls = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--short") == 0)
            short_mode = 1;
        else if (strncmp(argv[i], "--only=", 7) == 0)
            only = argv[i] + 7;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: dlock-bench [--json] [--short] [--only=cycles,handoff,scale,contention,cli] [URL...]\n");
            return 0;
        } else if (nurls < 31)
            urls[nurls++] = argv[i];
    }
    char tmpdir[] = "/tmp/dlock-bench-XXXXXX";
    char default_url[128];
    if (!nurls) {
        const char *env = getenv("DLOCK_BENCH_URLS");
        if (!env || !*env)
            env = getenv("DLOCK_TEST_URLS");
        if (env && *env) {
            char *copy = strdup(env), *save = NULL;
            for (char *t = strtok_r(copy, " \t\n", &save); t && nurls < 31; t = strtok_r(NULL, " \t\n", &save))
                urls[nurls++] = t;
        } else {
            if (!mkdtemp(tmpdir))
                return 1;
            snprintf(default_url, sizeof default_url, "sqlite://%s/bench.db", tmpdir);
            urls[nurls++] = default_url;
        }
    }
    if (!json)
        printf("%-11s %-24s %12s %-10s\n", "backend", "metric", "value", "unit");
    int failed = 0;
    for (int i = 0; i < nurls; i++) {
        dlock_client *c = NULL;
        if (dlock_open(urls[i], &c) != DLOCK_OK) {
            fprintf(stderr, "dlock-bench: URL #%d: %s\n", i + 1, dlock_last_error());
            failed = 1;
            continue;
        }
        /* mysql, mysql/lease, mysql/fencing: the mode in the label */
        char label[32];
        snprintf(label, sizeof label, "%s%s", dlock_backend(c),
                 strstr(urls[i], "mode=lease")   ? "/lease"
                 : strstr(urls[i], "fencing=on") ? "/fencing"
                                                 : "");
        const char *backend = dlock_backend(c);
        if (runs("cycles"))
            bench_cycles(backend, label, urls[i], c);
        if (runs("cycles") && strcmp(backend, "zookeeper") == 0)
            bench_session_reuse(label, c);
        if (runs("handoff"))
            bench_handoff(backend, label, urls[i], c);
        if (runs("scale"))
            bench_scale(label, c);
        if (runs("contention"))
            bench_contention(label, urls[i]);
        if (runs("cli") && strcmp(backend, "sqlite") == 0 && bench_cli(urls[i]) != 0)
            failed = 1;
        dlock_close(c);
    }
    return failed || bench_failed;
}
