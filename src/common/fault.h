/* SPDX-License-Identifier: MIT */
/*
 * fault: named fault points inside phaul, for tests (after CRIU's
 * fault_injected()). Compiled in only with -DPHAUL_FAULT_INJECTION (the
 * default test build); release builds (make FAULTS=0, which `make
 * install` always uses) compile them out and ignore PHAUL_FAULT: `phaul
 * faults` lists nothing there.
 *
 * PHAUL_FAULT="point[:action][,point[:action]...]" arms points, where
 * action is one of
 *   fail        the step fails with -EIO (default)
 *   delay=MS    the step sleeps MS milliseconds, then goes on
 *   kill        the process kills itself with SIGKILL
 * and point is a name from the table in fault.c (src.dump, dst.restore,
 * ...). `phaul faults` lists them.
 */
#ifndef PHAUL_FAULT_H
#define PHAUL_FAULT_H

/* 0 to go on, -EIO when the point is armed with "fail". */
int fault_point(const char *name);
/* Print the known points, one a line. */
void fault_list(void);
/* Parse PHAUL_FAULT; -EINVAL on an unknown point or action. */
int fault_init(void);

#endif
