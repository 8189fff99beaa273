/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "resolve: "
#include "source/indoubt.h"

#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "source/connect.h"

static int ask_once(struct migration *m, Phaul__Outcome__State *ret, int *fill)
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
	if (fill)
		*fill = msg->outcome->has_fill ? (int)msg->outcome->fill : -1;
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
		if (ask_once(m, &st, NULL) == 0) {
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

/*
 * The link broke during the memory fill after the commit (live mode, a
 * streamed stop): the fill needs nothing from the source, so it may have
 * gone on. Ask the daemon what its record says until it knows: 0 filled,
 * -ENOENT lost, -EINPROGRESS not known (no answer within
 * --recover-timeout, or a daemon that does not record the fill).
 */
int source_await_fill(struct migration *m)
{
	uint64_t deadline = now_ms() + m->opts->recover_timeout_s * 1000ULL;
	struct timespec pause = { 1, 0 };
	char saved[sizeof(m->error)];
	int saved_err = m->err, r = -EINPROGRESS;

	memcpy(saved, m->error, sizeof(saved));
	pr_warn("connection lost during the memory fill: asking the destination how it went");
	while (r == -EINPROGRESS && now_ms() < deadline) {
		Phaul__Outcome__State st;
		int fill;
		if (ask_once(m, &st, &fill) == 0) {
			if (fill == PHAUL__OUTCOME__FILL__FILLED)
				r = 0;
			else if (fill == PHAUL__OUTCOME__FILL__FILL_LOST)
				r = -ENOENT;
			else if (fill < 0 && st != PHAUL__OUTCOME__STATE__UNKNOWN)
				break; /* an older daemon: it does not record the fill */
		}
		memcpy(m->error, saved, sizeof(saved));
		m->err = saved_err;
		if (r == -EINPROGRESS)
			nanosleep(&pause, NULL);
	}
	if (r == 0) {
		pr_info("the destination filled the workload's memory: it runs there");
		m->error[0] = '\0';
		m->err = 0;
	}
	return r;
}
