/* cmd_doctor.c — `sandpit doctor [--json]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_doctor(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            puts("usage: sandpit doctor [--json]\n\nProbes what this host can "
                 "enforce: namespaces, Landlock, seccomp, cgroups, overlayfs.");
            return 0;
        } else {
            cli_error("doctor: unknown argument '%s'", argv[i]);
            return EXIT_SP_FAILURE;
        }
    }
    char *text = json ? sp_doctor_json() : sp_doctor_text();
    if (!text) {
        cli_error("doctor: probing the host failed");
        return EXIT_SP_FAILURE;
    }
    fputs(text, stdout);
    if (text[0] && text[strlen(text) - 1] != '\n')
        fputc('\n', stdout);
    free(text);
    return 0;
}
