/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "postcopy: "
#include "source/postcopy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/page.h"
#include "common/proc.h"
#include "common/procmem.h"
#include "common/rangeset.h"
#include "common/reaper.h"
#include "common/util.h"
#include "criu/pagemap.h"
#include "engine/events.h"
#include "engine/session.h"
#include "source/connect.h"
#include "source/indoubt.h"
#include "proto/pageframe.h"
#include "proto/wire.h"

struct postcopy {
	uint8_t *buf;	     /* one request's pages */
	int32_t *host;	     /* the frozen tree's processes */
	int32_t *img;	     /* the same as CRIU's images number them */
	struct procmem *mem; /* each one's memory */
	size_t nr;
	struct reaper reaper;
	uint64_t pages;
	uint64_t lazy; /* pages the images leave to post-copy: an upper bound */
	uint64_t requests;
};

/* The memory of the process CRIU's images call @ipid; NULL if it is not
 * one of the frozen tree's. */
static struct procmem *proc_mem(const struct postcopy *pc, int32_t ipid)
{
	for (size_t i = 0; i < pc->nr; i++)
		if (pc->img[i] == ipid)
			return &pc->mem[i];
	return NULL;
}

/*
 * The frozen tree as it is now (processes forked since the preflight
 * included), and each one's number in CRIU's images: inside its PID
 * namespace for a container (m->img_pids set), else the same.
 */
static int list_tree(struct migration *m, struct postcopy *pc)
{
	size_t nr_tasks;
	int r = proctree_tasks(m->root_pid, &pc->host, &nr_tasks, &pc->nr);

	if (r == 0 && (!(pc->img = calloc(pc->nr + 1, sizeof(*pc->img))) ||
		       !(pc->mem = calloc(pc->nr + 1, sizeof(*pc->mem)))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < pc->nr; i++) {
		pid_t v = pc->host[i];
		if (m->img_pids && proc_nspid(pc->host[i], &v) < 0)
			r = -ESRCH;
		pc->img[i] = v;
		procmem_init(&pc->mem[i], pc->host[i]);
	}
	return r;
}

/*
 * Every lazy run of @ipid's pagemap image must lie in a mapping of the
 * frozen process @host: post-copy reads it there, after the commit, when
 * a page it cannot give loses the workload. Found now, before the
 * restore, the migration rolls back instead and the tree runs on here.
 */
static int check_lazy_mapped(struct migration *m, pid_t host, int32_t ipid, uint64_t *lazy)
{
	_cleanup_free_ char *maps = NULL;
	struct rangeset vmas = { 0 }, hole = { 0 };
	struct pagemap pm = { 0 };
	char name[48], path[48], why[640];
	int r;

	snprintf(name, sizeof(name), "pagemap-%d.img", (int)ipid);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)host);
	r = pagemap_read(m->imgfd, name, &pm);
	if (r == -ENOENT)
		return 0; /* no memory dumped (CRIU saw it go) */
	if (r == 0)
		r = read_file(path, 1 << 24, &maps, NULL);
	/* plays a lazy run the frozen process has no mapping for */
	if (r == 0 && fault_point("src.lazymapped") < 0)
		maps[0] = '\0';
	if (r == 0)
		r = procmem_maps_ranges(maps, &vmas);
	for (size_t i = 0; r == 0 && i < pm.nr; i++) {
		const struct pm_entry *e = &pm.e[i];
		uint64_t end = e->vaddr + (uint64_t)e->nr_pages * PAGE;
		if (!(e->flags & PE_LAZY) || (e->flags & PE_PRESENT))
			continue;
		*lazy += e->nr_pages;
		if (rangeset_covers(&vmas, e->vaddr, end))
			continue;
		r = rangeset_missing(&vmas, e->vaddr, end, &hole);
		if (r < 0)
			break;
		procmem_explain(host, hole.r[0].start, why, sizeof(why));
		r = mig_fail(m, -EFAULT,
			     "PID %d's lazy pages at 0x%llx-0x%llx are in no mapping of "
			     "the frozen process (%s): post-copy could not complete it",
			     (int)ipid, (unsigned long long)hole.r[0].start,
			     (unsigned long long)hole.r[0].end, why);
	}
	pagemap_free(&pm);
	rangeset_free(&vmas);
	rangeset_free(&hole);
	if (r < 0 && !m->error[0])
		mig_fail(m, r, "checking PID %d's lazy pages: %s", (int)ipid, strerror(-r));
	return r;
}

static int send_data(struct migration *m, const Phaul__PageReq *rq, uint32_t nr)
{
	Phaul__PageData pd = PHAUL__PAGE_DATA__INIT;
	int r;

	pd.pid = rq->pid;
	pd.vaddr = rq->vaddr;
	pd.nr_pages = nr;
	r = msg_send_page_data(m->conn, &pd);
	return r == 0 ? pages_send(m->conn, m->post->buf, (size_t)nr * PAGE) : r;
}

/*
 * The fill over time, for --json's postcopy.fill: a sample at most every
 * fill_step_ms; when the table is full every other one goes and the step
 * doubles, so any length fits in MIG_FILL_MAX evenly spaced samples.
 */
static void fill_note(struct migration *m, bool last)
{
	struct mig_stats *s = &m->st;
	uint64_t now = now_ms(), at = s->commit_ms && now > s->commit_ms ? now - s->commit_ms : 0;

	if (!s->fill_step_ms)
		s->fill_step_ms = 50;
	if (!last && s->nr_fill && at < s->fill[s->nr_fill - 1].ms + s->fill_step_ms)
		return;
	if (s->nr_fill == MIG_FILL_MAX) {
		for (size_t i = 1; i < MIG_FILL_MAX / 2; i++)
			s->fill[i] = s->fill[2 * i];
		s->nr_fill = MIG_FILL_MAX / 2;
		s->fill_step_ms *= 2;
	}
	s->fill[s->nr_fill++] = (struct fill_sample){ at, m->post->pages };
}

/*
 * A PageReq: the pages, read from the frozen tree (unreadable ones
 * included: procmem.h), as far as they are mapped; none if unmapped.
 */
static int answer(struct migration *m, const Phaul__PageReq *rq)
{
	struct procmem *pm = proc_mem(m->post, rq->pid);
	ssize_t got;

	if (!m->post->buf && !(m->post->buf = malloc((size_t)MSG_REQ_PAGES_MAX * PAGE)))
		return mig_fail(m, -ENOMEM, "no memory for a page request");
	if (!pm)
		return mig_fail(m, -EPROTO, "the destination asked pages of PID %d, not ours",
				rq->pid);
	got = procmem_read(pm, rq->vaddr, m->post->buf, (size_t)rq->nr_pages * PAGE);
	/* plays a page the frozen tree cannot give once the workload runs there */
	if (m->outcome == OUTCOME_COMMITTED && fault_point("src.pageread") < 0)
		got = 0;
	if (got <= 0) {
		/* the destination then loses the workload: say all we know */
		char why[640];
		procmem_explain(pm->pid, rq->vaddr, why, sizeof(why));
		pr_err("cannot read %u pages of PID %d at 0x%llx: %s (%s)", rq->nr_pages, rq->pid,
		       (unsigned long long)rq->vaddr, got < 0 ? strerror((int)-got) : "not mapped",
		       why);
	}
	m->post->pages += got > 0 ? (uint64_t)got / PAGE : 0;
	fill_note(m, false);
	events_postcopy(m->ev, m->post->pages,
			m->post->lazy > m->post->pages ? m->post->lazy - m->post->pages : 0, false);
	return send_data(m, rq, got > 0 ? (uint32_t)(got / PAGE) : 0);
}

int postcopy_begin(struct migration *m)
{
	struct postcopy *pc = calloc(1, sizeof(*pc));
	int r;

	if (!pc)
		return mig_fail(m, -ENOMEM, "no memory for post-copy");
	r = list_tree(m, pc);
	if (r < 0)
		mig_fail(m, r, "cannot list the frozen tree: %s", strerror(-r));
	for (size_t i = 0; r == 0 && i < pc->nr; i++)
		r = check_lazy_mapped(m, pc->host[i], pc->img[i], &pc->lazy);
	if (r < 0) {
		free(pc->host);
		free(pc->img);
		free(pc->mem);
		free(pc);
		return r;
	}
	pc->reaper = (struct reaper)REAPER_INIT;
	m->post = pc;
	m->on_page_req = answer;
	return 0;
}

static void set_timeouts(struct migration *m)
{
	int ms = (int)m->opts->recover_timeout_s * 1000;

	/* a silent link may come back: TCP carries on if we let it */
	conn_set_timeout(m->conn, ms);
	conn_set_link_timeout(m->conn, ms);
}

/* Answer page requests until PagesDone. *broken: the link failed. */
static int serve_until_done(struct migration *m, Msg **done, bool *broken)
{
	for (;;) {
		Msg *msg = NULL;
		int r = msg_recv(m->conn, &msg);
		*broken = r < 0 && r != -EPROTO;
		if (r < 0)
			return r;
		switch (msg->body_case) {
		case PHAUL__MSG__BODY_PAGE_REQ:
			r = answer(m, msg->page_req);
			*broken = r < 0 && r != -EPROTO;
			break;
		case PHAUL__MSG__BODY_PAGES_DONE: *done = msg; return 0;
		case PHAUL__MSG__BODY_ERROR:
			r = -(int)msg->error->code;
			mig_fail(m, r, "the destination failed: %s", msg->error->message);
			break;
		default:
			r = mig_fail(m, -EPROTO, "protocol error: %s during post-copy",
				     msg_name(msg->body_case));
		}
		msg_free(msg);
		if (r < 0)
			return r;
		if (++m->post->requests == 64 && fault_point("src.postcopy") < 0)
			conn_abort(m->conn); /* a broken link, for the recovery tests */
	}
}

static int resume_once(struct migration *m)
{
	_cleanup_msg_ Msg *msg = NULL;
	int r = source_connect(m, m->session_id, PHAUL_FEAT_PAGES_RESUME);

	if (r == 0)
		r = msg_recv(m->conn, &msg);
	if (r < 0)
		return r;
	if (msg->body_case == PHAUL__MSG__BODY_ERROR)
		return -(int)msg->error->code;
	return msg->body_case == PHAUL__MSG__BODY_HELLO_REPLY ? 0 : -EPROTO;
}

/* The link broke after the commit: dial again while the deadline allows. */
static int reattach(struct migration *m)
{
	uint64_t deadline = now_ms() + m->opts->recover_timeout_s * 1000ULL;
	char saved[sizeof(m->error)];
	int saved_err = m->err, r = -ETIMEDOUT;

	memcpy(saved, m->error, sizeof(saved));
	pr_warn("connection lost during post-copy: reconnecting for up to %u s",
		m->opts->recover_timeout_s);
	while (now_ms() < deadline) {
		r = resume_once(m);
		/* a failed attempt is not the migration's failure */
		memcpy(m->error, saved, sizeof(saved));
		m->err = saved_err;
		if (r == 0 || r == -ENOENT)
			break;
		usleep(500 * 1000);
	}
	if (r == 0) {
		pr_info("reconnected: post-copy goes on");
		set_timeouts(m);
		return 0;
	}
	return mig_fail(m, r, "the destination's session %s: %s",
			r == -ENOENT ? "is gone" : "could not be reached again", strerror(-r));
}

/*
 * The link broke during live mode's fill (@r): the destination needs
 * nothing more from here, so ask it how the fill went rather than call
 * the workload lost. -EINPROGRESS: nobody can tell (source_await_fill).
 */
static int fill_asked(struct migration *m, int r)
{
	if (!m->error[0])
		mig_fail(m, r, "the connection broke during the memory fill: %s", strerror(-r));
	r = source_await_fill(m);
	if (r == 0) {
		m->st.fill_asked = true;
		fill_note(m, true);
		events_postcopy(m->ev, m->post->pages, 0, true);
	} else if (r == -ENOENT) {
		mig_fail(m, r, "the destination lost the workload during the memory fill");
	} else {
		mig_fail(m, r,
			 "the connection broke during the memory fill and the destination "
			 "could not tell how it went");
	}
	return r;
}

int postcopy_serve(struct migration *m)
{
	_cleanup_msg_ Msg *done = NULL;
	Phaul__PagesDone *pd;
	bool broken;
	int r;

	mig_step(m, mode_postcopy(m->mode) ? "post-copy" : "memory fill");
	r = reaper_arm(&m->post->reaper, m->post->host, m->post->nr);
	if (r < 0)
		return mig_fail(m, r, "cannot guard the frozen tree: %s", strerror(-r));
	set_timeouts(m);
	while ((r = serve_until_done(m, &done, &broken)) < 0) {
		if (broken && !mode_postcopy(m->mode))
			return fill_asked(m, r);
		if (!broken)
			return m->error[0] ? r : mig_fail(m, r, "%s", strerror(-r));
		r = reattach(m);
		if (r < 0)
			return r;
	}
	pd = done->pages_done;
	m->st.pages_remote = pd->pages_remote;
	m->st.pages_local = pd->pages_local;
	m->st.pages_fault = pd->pages_fault;
	m->st.postcopy_ms = pd->last_page_ms;
	fill_note(m, true);
	events_postcopy(m->ev, m->post->pages, 0, true);
	pr_info("every page is in place %llu ms after the commit: %llu fetched (%llu on a fault), "
		"%llu from pre-copy",
		(unsigned long long)pd->last_page_ms, (unsigned long long)pd->pages_remote,
		(unsigned long long)pd->pages_fault, (unsigned long long)pd->pages_local);
	return 0;
}

void postcopy_end(struct migration *m)
{
	struct postcopy *pc = m->post;

	if (!pc)
		return;
	reaper_disarm(&pc->reaper);
	for (size_t i = 0; pc->mem && i < pc->nr; i++)
		procmem_close(&pc->mem[i]);
	free(pc->mem);
	free(pc->buf);
	free(pc->host);
	free(pc->img);
	free(pc);
	m->post = NULL;
	m->on_page_req = NULL;
}
