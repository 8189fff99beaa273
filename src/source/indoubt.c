/* SPDX-License-Identifier: MIT */
/*
 * source/indoubt: the link broke after the source sent Commit, so the source
 * does not know whether the destination resumed the workload. It keeps
 * the tree frozen and asks the destination's daemon, on new connections,
 * for the session's recorded outcome until --recover-timeout runs out.
 */
#define LOG_PREFIX "resolve: "
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "source/connect.h"
#include "source/source.h"

static int ask_once(struct migration *m, Phaul__Outcome__State *ret)
{
	_cleanup_msg_ Msg *msg = NULL;
	int r;

	r = source_connect(m, m->session_id, 0);
	if (r < 0)
		return r;
	conn_set_timeout(m->conn, 10000);
	r = msg_recv(m->conn, &msg);
	if (r < 0)
		return r;
	if (msg->body_case != PHAUL__MSG__BODY_OUTCOME)
		return -EPROTO;
	*ret = msg->outcome->state;
	return 0;
}

enum mig_outcome source_resolve(struct migration *m)
{
	uint64_t deadline = now_ms() + m->opts->recover_timeout_s * 1000ULL;
	struct timespec pause = { 1, 0 };
	char saved[sizeof(m->error)];
	int saved_err = m->err;

	memcpy(saved, m->error, sizeof(saved));
	pr_warn("connection lost after the commit was sent: asking the destination");
	while (now_ms() < deadline) {
		Phaul__Outcome__State st;
		if (ask_once(m, &st) == 0) {
			if (st == PHAUL__OUTCOME__STATE__COMMITTED) {
				pr_info("the destination committed");
				m->error[0] = '\0';
				m->st.commit_ms = now_ms();
				return OUTCOME_COMMITTED;
			}
			if (st != PHAUL__OUTCOME__STATE__PENDING) {
				pr_info("the destination rolled back");
				return OUTCOME_ABORTED;
			}
		}
		memcpy(m->error, saved, sizeof(saved));
		m->err = saved_err;
		nanosleep(&pause, NULL);
	}
	mig_fail(m, -ETIMEDOUT,
		 "outcome unknown after %u s: the workload is left stopped on the source; "
		 "if it does not run on the destination, resume it with kill -CONT",
		 m->opts->recover_timeout_s);
	return OUTCOME_IN_DOUBT;
}
