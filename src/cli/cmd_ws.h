/* cmd_ws.h — the workspace verbs (cmd_ws.c). */
#ifndef SANDPIT_CMD_WS_H
#define SANDPIT_CMD_WS_H

int cmd_create(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_ps(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_diff(int argc, char **argv);  /* cmd_wsfs.c */
int cmd_reset(int argc, char **argv); /* cmd_wsfs.c */

#endif
