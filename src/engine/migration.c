/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "engine: "
#include "engine/migration.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/control.h"
#include "engine/events.h"

int mig_fail(struct migration *m, int err, const char *fmt, ...)
{
	char text[400];
	va_list ap;

	if (err >= 0)
		err = -EIO;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (control_cancelled())
		snprintf(text, sizeof(text), "%s", CONTROL_CANCELLED);
	pr_err("%s: %s", m->step ? m->step : "migration", text);
	if (!m->error[0]) {
		snprintf(m->error, sizeof(m->error), "%s failed: %s",
			 m->step ? m->step : "migration", text);
		snprintf(m->reason, sizeof(m->reason), "%s", text);
		m->err = err;
	}
	return err;
}

int mig_note(struct migration *m, int r, char *buf, size_t len)
{
	size_t n;

	if (r >= 0 || !buf)
		return r;
	n = strlen(buf);
	snprintf(buf + n, len - n, "%s%s", n ? "; " : "", m->reason[0] ? m->reason : strerror(-r));
	m->error[0] = m->reason[0] = '\0';
	m->err = 0;
	return 0;
}

void mig_step(struct migration *m, const char *step)
{
	static const uint8_t none[PHAUL_SESSION_ID_LEN];

	m->step = step;
	pr_info("step: %s", step);
	if (memcmp(m->session_id, none, sizeof(none)))
		events_set_id(m->ev, m->session_id, sizeof(m->session_id));
	/* --mode auto: "auto" until the rounds chose */
	events_set_workload(m->ev, m->root_pid,
			    m->auto_mode && !m->st.auto_why[0] ? "auto" : mode_name(m->mode));
	events_step(m->ev, step);
}

bool mig_lazy_dump(const struct migration *m)
{
	return mode_lazy_dump(m->mode) || (m->mode == MODE_STOP && m->stream);
}

int mig_add_in_place(struct migration *m, const char *path)
{
	if (m->nr_in_place == MSG_IN_PLACE_MAX)
		return -ENOSPC;
	m->in_place[m->nr_in_place] = strdup(path);
	if (!m->in_place[m->nr_in_place])
		return -ENOMEM;
	m->nr_in_place++;
	return 0;
}

bool mig_in_place(const struct migration *m, const char *path)
{
	for (size_t i = 0; i < m->nr_in_place; i++)
		if (!strcmp(m->in_place[i], path))
			return true;
	return false;
}

void mig_free(struct migration *m)
{
	for (size_t i = 0; i < m->nr_in_place; i++)
		free(m->in_place[i]);
	m->nr_in_place = 0;
	free(m->st.rounds);
	m->st.rounds = NULL;
	if (m->ps_sk >= 0)
		close(m->ps_sk);
	m->ps_sk = -1;
	for (size_t i = 0; i < m->nr_drv; i++)
		driver_free(m->drv[i]);
	m->nr_drv = 0;
	conn_free(m->conn);
	m->conn = NULL;
	free(m->pids);
	m->pids = NULL;
	free(m->img_pids);
	m->img_pids = NULL;
	for (size_t i = 0; i < m->nr_criu_fds; i++)
		close(m->criu_fds[i]);
	m->nr_criu_fds = 0;
	free(m->dir);
	m->dir = NULL;
	if (m->imgfd >= 0)
		close(m->imgfd);
	m->imgfd = -1;
}
