/* cmd_files.h — files in a workspace (cmd_files.c, docs/files.md). */
#ifndef SANDPIT_CMD_FILES_H
#define SANDPIT_CMD_FILES_H

int cmd_files(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_write(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_patch(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_cp(int argc, char **argv);

#endif
