/*
 * Multi-process tests of the SQLite default and of dlock(1): real processes,
 * real signals (kill -9, SIGSTOP/SIGCONT, SIGINT/SIGTERM/SIGHUP).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "process/suite.h"

char *dir;      /* a fresh folder for each test */
char url[4200]; /* an SQLite database in it */
char *name;
const char *dlock_bin;

void setup(void)
{
    dir = dlt_tmpdir();
    chmod(dir, 0755);
    snprintf(url, sizeof url, "sqlite://%s/locks.db", dir);
    setenv("DLOCK_URL", url, 1);
    name = dlt_unique_name("proc");
    dlock_bin = getenv("DLOCK_BIN");
    if (!dlock_bin)
        dlock_bin = "./dlock";
}

void teardown(void)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    dlt_system(cmd);
    free(dir);
    free(name);
}

pid_t sh_bg(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Start dlock itself (no shell in between) so that signals reach it. */
pid_t dlock_bg(char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execv(dlock_bin, argv);
        _exit(127);
    }
    return pid;
}

int wait_exit(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

int file_has(const char *path, const char *text)
{
    char buf[4096] = "";
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, text) != NULL;
}

int lock_is_free(void)
{
    dlock_client *c = NULL;
    ck_assert_int_eq(dlock_open(url, &c), DLOCK_OK);
    dlock_lock *l = NULL;
    int rc = dlock_acquire(c, name, 5000, 0, &l);
    if (rc == DLOCK_OK)
        dlock_release(l);
    dlock_close(c);
    ck_assert(rc == DLOCK_OK || rc == DLOCK_EBUSY);
    return rc == DLOCK_OK;
}

/* --- issue 23: --once-per at every phase of the period ---------------------------------- */

int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void)
{
    Suite *s = suite_create("process");
    dlt_process_add_exclusion(s);
    dlt_process_add_faults(s);
    dlt_process_add_cli(s);
    dlt_process_add_every_store(s);
    dlt_process_add_ops(s);
    dlt_process_add_once_per(s);
    dlt_process_add_metrics(s);
    dlt_process_add_break_one_name(s);
    dlt_process_add_power_loss(s);
    dlt_process_add_messages(s);
    int failed = dlt_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
