/* The job of `dlock run`: its process, its process group and its guard. */
#ifndef DLOCK_TOOLS_JOB_H
#define DLOCK_TOOLS_JOB_H

#include <signal.h>
#include <sys/types.h>

/* Start argv in its own process group, with the signal mask orig_mask and
 * the environment envp (NULL: dlock's own).  Returns its pid (with
 * *exec_errno set when exec failed), or -status. */
pid_t job_start(char **argv, char **envp, const sigset_t *orig_mask, int *exec_errno);

/* A guard process that kills the job's whole group if dlock dies. */
pid_t job_start_guard(pid_t job_pgid);

/* The exit status dlock gives for a wait status: the job's own, 128+N for
 * signal N. */
int job_exit_status(int wait_status);

#endif
