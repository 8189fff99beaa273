/* SPDX-License-Identifier: MIT */
/*
 * target/outcome: the answer to an outcome query, from the record a
 * session keeps in the daemon's work directory (engine/session.h).
 */
#define LOG_PREFIX "serve: "
#include "target/outcome.h"

#include <string.h>

#include "common/log.h"
#include "engine/session.h"

/* After the commit, how the memory fill went: "committed" is written when
 * the tree resumes (with its root), "filled" or "lost" when the fill ends. */
static Phaul__Outcome__Fill decide_fill(const char *state, int pid, uint64_t start)
{
	if (!strcmp(state, "filled"))
		return PHAUL__OUTCOME__FILL__FILLED;
	if (!strcmp(state, "lost"))
		return PHAUL__OUTCOME__FILL__FILL_LOST;
	if (!strcmp(state, "committed"))
		return outcome_pid_alive(pid, start) ? PHAUL__OUTCOME__FILL__FILLING :
						       PHAUL__OUTCOME__FILL__FILL_LOST;
	return PHAUL__OUTCOME__FILL__FILL_UNKNOWN;
}

static Phaul__Outcome__State decide(const char *state, int pid, uint64_t start)
{
	if (!strcmp(state, "committed") || !strcmp(state, "filled"))
		return PHAUL__OUTCOME__STATE__COMMITTED;
	if (!strcmp(state, "aborted"))
		return PHAUL__OUTCOME__STATE__ABORTED;
	/* committing: CRIU was told to resume; the tree's life tells */
	if (!strcmp(state, "committing"))
		return outcome_pid_alive(pid, start) ? PHAUL__OUTCOME__STATE__COMMITTED :
						       PHAUL__OUTCOME__STATE__ABORTED;
	/* pending: the session still runs, or died and CRIU rolled back */
	if (!strcmp(state, "pending"))
		return outcome_pid_alive(pid, start) ? PHAUL__OUTCOME__STATE__PENDING :
						       PHAUL__OUTCOME__STATE__ABORTED;
	return PHAUL__OUTCOME__STATE__UNKNOWN;
}

int outcome_answer(struct conn *c, const char *workdir, const uint8_t *id)
{
	Phaul__Outcome o = PHAUL__OUTCOME__INIT;
	char hex[2 * PHAUL_SESSION_ID_LEN + 1], state[32];
	uint64_t start = 0;
	int pid = 0;

	session_hex(id, hex);
	o.state = PHAUL__OUTCOME__STATE__UNKNOWN;
	if (outcome_read(workdir, hex, state, sizeof(state), &pid, &start) == 0) {
		o.state = decide(state, pid, start);
		o.fill = decide_fill(state, pid, start);
		o.has_fill = o.fill != PHAUL__OUTCOME__FILL__FILL_UNKNOWN;
	}
	pr_info("outcome query for session %s: %s%s", hex,
		o.state == PHAUL__OUTCOME__STATE__COMMITTED ? "committed" :
		o.state == PHAUL__OUTCOME__STATE__ABORTED   ? "aborted" :
		o.state == PHAUL__OUTCOME__STATE__PENDING   ? "pending" :
							      "unknown",
		!o.has_fill				? "" :
		o.fill == PHAUL__OUTCOME__FILL__FILLED	? ", memory filled" :
		o.fill == PHAUL__OUTCOME__FILL__FILLING ? ", memory filling" :
							  ", memory lost");
	return msg_send_outcome(c, &o);
}
