/* cmd_shell.h — shells and services verbs (cmd_shell.c). */
#ifndef SANDPIT_CMD_SHELL_H
#define SANDPIT_CMD_SHELL_H

int cmd_shell(int argc, char **argv);
int cmd_shells(int argc, char **argv);
int cmd_service(int argc, char **argv);

#endif
