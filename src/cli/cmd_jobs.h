/* cmd_jobs.h — background execs (cmd_jobs.c). */
#ifndef SANDPIT_CMD_JOBS_H
#define SANDPIT_CMD_JOBS_H

/* exec --detach: start, print the job's number; the exit code. */
int cli_exec_detach(const char *ws, char **argv, char **env, char **senv,
                    const char *cwd, double timeout);
int cmd_wait(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_jobs(int argc, char **argv);

#endif
