/* launch.h — sp_run() (declared in sandpit.h) lives in launch.c; this header
 * holds what tests need from it. */
#ifndef SANDPIT_LAUNCH_H
#define SANDPIT_LAUNCH_H

#include "policy.h"
#include "sandpit.h"

#endif
