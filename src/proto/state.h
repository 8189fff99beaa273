/* SPDX-License-Identifier: MIT */
/*
 * state: the destination session's states and, in one table, the
 * messages the source may send in each. Anything else ends the session
 * with an error (OpenSSH's dispatch-table rule).
 *
 *   HELLO -> PREFLIGHT -> TRANSFER -> RESTORED -> DONE
 *
 * (FRAME_DATA frames are only read inside a file transfer or a page run.)
 */
#ifndef PHAUL_STATE_H
#define PHAUL_STATE_H

#include <stdbool.h>

enum sess_state {
	ST_HELLO,
	ST_PREFLIGHT,
	ST_TRANSFER,
	ST_RESTORED,
	ST_DONE,
	ST__MAX,
};

bool state_allows(enum sess_state st, int body_case);
const char *state_name(enum sess_state st);

#endif
