/* cmd_shell.h — shells and services verbs (cmd_shell.c). */
#ifndef SANDPIT_CMD_SHELL_H
#define SANDPIT_CMD_SHELL_H

int cmd_shell(int argc, char **argv);
int cmd_shells(int argc, char **argv);
int cmd_service(int argc, char **argv);
/* exec -t: cmd in a new PTY shell of ws sized as our terminal, attached
 * (no detach key), closed when it ends; its exit code. */
int cli_exec_tty(const char *ws, char **cmd, char **env, const char *cwd);

#endif
