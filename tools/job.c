/* The job of `dlock run` (see job.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "job.h"

/* Start COMMAND in its own process group; returns its pid, or -status. */
pid_t job_start(char **argv, char **envp, const sigset_t *orig_mask, int *exec_errno)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0)
        return -EXIT_OSERR;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(report[0]);
        close(report[1]);
        return -EXIT_OSERR;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here on. */
        setpgid(0, 0);
        /* If dlock dies, the job must not run on without its lock. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(EXIT_LOST);
        sigprocmask(SIG_SETMASK, orig_mask, NULL);
        if (envp)
            execvpe(argv[0], argv, envp);
        else
            execvp(argv[0], argv);
        int err = errno;
        if (write(report[1], &err, sizeof err) < 0) {
        }
        _exit(err == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC);
    }
    setpgid(pid, pid); /* also from here, so that no signal races the child's own call */
    close(report[1]);
    int err = 0;
    ssize_t n;
    while ((n = read(report[0], &err, sizeof err)) < 0 && errno == EINTR) {
    }
    close(report[0]);
    *exec_errno = n == (ssize_t)sizeof err ? err : 0;
    return pid;
}

/*
 * The job's leader gets SIGKILL when dlock dies (parent-death signal), but
 * its own children would not.  A guard process waits for dlock's death too
 * and then kills the job's whole process group.  It only makes
 * async-signal-safe calls: it is forked from a threaded process.
 */
pid_t job_start_guard(pid_t job_pgid)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, SIGTERM); /* blocked, as inherited from dlock */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        _exit(EXIT_OSERR);
    for (;;) {
        if (getppid() != parent) {
            kill(-job_pgid, SIGKILL);
            _exit(0);
        }
        siginfo_t info;
        sigwaitinfo(&wake, &info); /* a SIGTERM from anyone else changes nothing */
    }
}

int job_exit_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return EXIT_SOFTWARE;
}
