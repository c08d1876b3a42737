/* cmd_snapshot.h — snapshot, restore, fork, pause verbs (cmd_snapshot.c). */
#ifndef SANDPIT_CMD_SNAPSHOT_H
#define SANDPIT_CMD_SNAPSHOT_H

int cmd_snapshot(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_fork(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);

#endif
