/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "precopy: "
#include "source/precopy.h"

#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/page.h"
#include "common/proc.h"
#include "common/procmem.h"
#include "common/rangeset.h"
#include "common/util.h"
#include "criu/pagemap.h"
#include "source/cow.h"
#include "source/shmem.h"
#include "engine/control.h"
#include "engine/events.h"
#include "engine/progress.h"
#include "proto/pageframe.h"
#include "proto/pfpipe.h"
#include "proto/wire.h"
#include "track/track.h"

#define RUN_PAGES MSG_RUN_PAGES_MAX
#define DEFAULT_FIXED_MS 150

struct pc_proc {
	pid_t pid;
	pid_t ipid;		 /* its PID in CRIU's images and on the wire */
	struct tracker *t;	 /* NULL: not tracked (appeared later) */
	struct procmem mem;	 /* its memory, unreadable pages included */
	struct rangeset sent;	 /* pages the destination holds */
	struct rangeset pending; /* collected, not sent yet */
	bool announced;		 /* in NewPids already */
};

struct precopy {
	struct pc_proc *p;
	size_t nr;
	struct policy pol;
	uint8_t *buf;
	struct pf_pipe *pipe; /* compresses beside the sending, or NULL */
	bool nopipe;	      /* none could be had: not tried again */
	uint64_t start_ms;
	unsigned int round;
	enum track_method method;
	/* the final pages sent while CRIU dumps (precopy_send_frozen) */
	uint64_t early_pages;
	bool early_round;    /* sent, as a round of its own */
	struct progress bar; /* a round's, on a terminal */
	char label[24];
	/* shared memory objects, pre-copied when the destination takes them */
	struct shm_set shm;
	bool shm_on;
	bool shm_collected; /* while frozen: what is pending is final */
	bool shm_frozen;    /* and it is sent: nothing changes now */
};

static struct pc_proc *pc_find(struct precopy *pc, pid_t pid, bool create)
{
	struct pc_proc *p;

	for (size_t i = 0; i < pc->nr; i++)
		if (pc->p[i].pid == pid)
			return &pc->p[i];
	if (!create)
		return NULL;
	p = realloc(pc->p, (pc->nr + 1) * sizeof(*p));
	if (!p)
		return NULL;
	pc->p = p;
	p = &pc->p[pc->nr++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->ipid = pid;
	procmem_init(&p->mem, pid);
	return p;
}

/* The process CRIU's images call @ipid (its PID inside the workload's PID
 * namespace when the workload driver set m->img_pids). */
static struct pc_proc *pc_find_img(struct migration *m, pid_t ipid)
{
	struct precopy *pc = m->pc;
	struct pc_proc *p;
	pid_t host = ipid;

	for (size_t i = 0; i < pc->nr; i++)
		if (pc->p[i].ipid == ipid)
			return &pc->p[i];
	if (m->img_pids && (host = proc_ns_to_host(m->root_pid, ipid)) < 0)
		return NULL;
	p = pc_find(pc, host, true);
	if (p)
		p->ipid = ipid;
	return p;
}

static int attach(struct migration *m)
{
	struct precopy *pc;

	if (m->pc)
		return 0;
	pc = calloc(1, sizeof(*pc));
	if (!pc || !(pc->buf = malloc(FRAME_DATA_MAX))) {
		free(pc);
		return -ENOMEM;
	}
	m->pc = pc;
	return 0;
}

/* PHAUL_SHMEM_PRECOPY=0 leaves shared memory to CRIU, to measure against */
static bool shm_wanted(const struct migration *m)
{
	const char *env = getenv("PHAUL_SHMEM_PRECOPY");

	return m->peer_shmem && !(env && !strcmp(env, "0"));
}

int precopy_start(struct migration *m, const struct policy *pol)
{
	struct precopy *pc;
	int r = attach(m);

	if (r < 0)
		return r;
	pc = m->pc;
	pc->pol = *pol;
	if (!pc->pol.fixed_ms)
		pc->pol.fixed_ms = DEFAULT_FIXED_MS;
	pc->start_ms = now_ms();
	for (size_t i = 0; r == 0 && i < m->nr_procs; i++) {
		struct pc_proc *p = pc_find(pc, m->pids[i], true);
		if (!p)
			return -ENOMEM;
		if (m->img_pids)
			p->ipid = m->img_pids[i];
		r = tracker_open(p->pid, TRACK_UFFD_WP | TRACK_SOFT_DIRTY | TRACK_HASH, &p->t);
		if (r < 0 && !proc_alive(p->pid)) {
			pr_info("PID %d exited: nothing to track", p->pid);
			r = 0;
			continue;
		}
		if (r < 0)
			return mig_fail(m, r, "cannot track the writes of PID %d: %s", p->pid,
					strerror(-r));
		pc->method = tracker_method(p->t);
	}
	m->st.tracking = track_method_name(pc->method);
	pr_info("tracking writes of %zu processes with %s", pc->nr, m->st.tracking);
	pc->shm_on = shm_wanted(m);
	return 0;
}

/*
 * Read [vaddr, vaddr + n pages) up to the first page that is not mapped
 * (PROT_NONE and other unreadable pages included); bytes read.
 */
static size_t read_remote(struct pc_proc *p, uint64_t vaddr, size_t n, uint8_t *buf)
{
	ssize_t got = procmem_read(&p->mem, vaddr, buf, n * PAGE);

	return got > 0 ? (size_t)got & ~(size_t)(PAGE - 1) : 0;
}

static int send_run(struct migration *m, struct pc_proc *p, uint64_t vaddr, size_t bytes,
		    const uint8_t *buf)
{
	Phaul__PageRun pr = PHAUL__PAGE_RUN__INIT;
	int r;

	pr.pid = p->ipid;
	pr.vaddr = vaddr;
	pr.nr_pages = bytes / PAGE;
	r = msg_send_page_run(m->conn, &pr);
	if (r == 0)
		r = pages_send(m->conn, buf, bytes);
	if (r == 0)
		r = rangeset_add(&p->sent, vaddr, vaddr + bytes);
	return r;
}

/* The oldest chunk in the pipe: its PageRun, then its frame. */
static int pipe_send_one(struct migration *m, struct pc_proc *p)
{
	Phaul__PageRun pr = PHAUL__PAGE_RUN__INIT;
	uint64_t vaddr;
	size_t bytes;
	int r;

	pf_pipe_wait(m->pc->pipe, &vaddr, &bytes);
	pr.pid = p->ipid;
	pr.vaddr = vaddr;
	pr.nr_pages = bytes / PAGE;
	r = msg_send_page_run(m->conn, &pr);
	if (r == 0)
		r = pf_pipe_send(m->pc->pipe, m->conn);
	if (r == 0)
		r = rangeset_add(&p->sent, vaddr, vaddr + bytes);
	return r;
}

/*
 * Whether the next chunk goes through the pipe: while the codec would
 * compress it, and while chunks before it are in the pipe (the order on
 * the wire). A chunk sent raw costs the pipe's hand-offs and gains
 * nothing (measured: 30-40 ms more per 160 MiB on the unshaped link).
 */
static bool piped(struct migration *m)
{
	struct pf_pipe *pp = m->pc->pipe;

	return pp && (pf_pipe_queued(pp) || pf_want_zstd(m->conn->pf));
}

/* The buffer the next chunk is read into: the pipe's, once it has room. */
static uint8_t *read_buf(struct migration *m, struct pc_proc *p, bool pipe, int *r)
{
	uint8_t *b = NULL;

	if (!pipe)
		return m->pc->buf;
	while (*r == 0 && !(b = pf_pipe_slot(m->pc->pipe)))
		*r = pipe_send_one(m, p);
	return *r == 0 ? b : NULL;
}

/* Chunk @got bytes at @pos in @buf is read: into the pipe, or sent. */
static int chunk_read(struct migration *m, struct pc_proc *p, bool pipe, uint64_t pos, size_t got,
		      const uint8_t *buf)
{
	struct pf_pipe *pp = m->pc->pipe;
	int r = 0;

	if (!pipe)
		return send_run(m, p, pos, got, buf);
	pf_pipe_submit(pp, pos, got);
	/* what is ready goes now: the link must not wait for a full ring */
	while (r == 0 && pf_pipe_queued(pp) && pf_pipe_oldest_done(pp))
		r = pipe_send_one(m, p);
	return r;
}

/* The pipe's last chunks, when nothing failed; none left in it after. */
static int pipe_flush(struct migration *m, struct pc_proc *p, int r)
{
	struct pf_pipe *pp = m->pc->pipe;

	while (pp && r == 0 && pf_pipe_queued(pp))
		r = pipe_send_one(m, p);
	if (pp && r < 0)
		pf_pipe_drop(pp);
	return r;
}

/* A pipe when one is worth it (pfpipe.h) and can be had. */
static void pipe_get(struct migration *m)
{
	struct precopy *pc = m->pc;

	if (pc->pipe && pf_pipe_codec(pc->pipe) != m->conn->pf) {
		pf_pipe_free(pc->pipe);
		pc->pipe = NULL;
	}
	if (pc->pipe || !pf_pipe_wanted(m->conn) || pc->nopipe)
		return;
	pc->pipe = pf_pipe_new(m->conn);
	pc->nopipe = !pc->pipe;
	if (pc->pipe)
		pr_debug("pages are encoded on a thread of their own while they are sent");
}

/* Send every page of @s that can still be read; count pages sent. */
static int send_set(struct migration *m, struct pc_proc *p, const struct rangeset *s,
		    uint64_t *pages)
{
	uint8_t *buf;
	int r = 0;

	pipe_get(m);
	for (size_t i = 0; r == 0 && i < s->nr; i++) {
		uint64_t pos = s->r[i].start, end = s->r[i].end;
		while (r == 0 && pos < end) {
			size_t n = MIN((end - pos) / PAGE, RUN_PAGES);
			/* a round of GiBs must not keep the operator waiting */
			if (control_cancelled()) {
				r = -ECANCELED;
				break;
			}
			bool pipe = piped(m);
			if (!(buf = read_buf(m, p, pipe, &r)))
				break;
			size_t got = read_remote(p, pos, n, buf);
			if (got == 0) { /* unmapped since: nothing to move */
				pos += PAGE;
				continue;
			}
			/* the next round compares with what goes now */
			tracker_sent(p->t, pos, buf, got);
			r = chunk_read(m, p, pipe, pos, got, buf);
			progress_add(&m->pc->bar, got);
			*pages += got / PAGE;
			pos += got;
		}
	}
	r = pipe_flush(m, p, r);
	if (r < 0)
		mig_fail(m, r, "sending pages of PID %d: %s", p->pid, strerror(-r));
	return r;
}

static int send_round_end(struct migration *m, unsigned int round, uint64_t pages, bool final)
{
	Phaul__RoundEnd re = PHAUL__ROUND_END__INIT;

	re.round = round;
	re.pages = pages;
	re.has_final = true;
	re.final = final;
	return msg_send_round_end(m->conn, &re);
}

/*
 * The shared memory objects' pages that differ from the destination's
 * copy; new objects are looked for only while the tree runs (those found
 * later are CRIU's: the list it was given is written before the dump).
 */
static int shm_collect_all(struct migration *m, bool frozen, uint64_t *dirty, uint64_t *scanned)
{
	struct precopy *pc = m->pc;
	uint64_t seen = pc->shm.seen, n = 0;
	int r = 0;

	if (!frozen) { /* the preflight's processes, and those found since */
		pid_t *v = calloc(m->nr_procs + pc->nr + 1, sizeof(*v));
		if (!v)
			return mig_fail(m, -ENOMEM, "no memory for the shared memory scan");
		for (size_t i = 0; i < m->nr_procs; i++)
			v[i] = m->pids[i];
		for (size_t i = 0; i < pc->nr; i++)
			v[m->nr_procs + i] = pc->p[i].pid;
		r = shm_scan(&pc->shm, v, m->nr_procs + pc->nr);
		free(v);
	}
	/* frozen: on a thread, beside the processes' pages (send_shm joins) */
	if (r == 0 && frozen && shm_collect_start(&pc->shm) == 0) {
		pc->shm_collected = true;
		return 0;
	}
	if (r == 0)
		r = shm_collect(&pc->shm, &n);
	if (r < 0)
		return mig_fail(m, r, "shared memory: %s", strerror(-r));
	pc->shm_collected = frozen;
	*dirty += n;
	*scanned += pc->shm.seen - seen;
	return 0;
}

/* Collect every process's dirty pages into its pending set. */
static int collect(struct migration *m, bool frozen, uint64_t *dirty, uint64_t *scanned)
{
	struct precopy *pc = m->pc;
	int r = 0;

	*dirty = *scanned = 0;
	for (size_t i = 0; r == 0 && i < pc->nr; i++) {
		struct pc_proc *p = &pc->p[i];
		struct rangeset fresh = { 0 };
		uint64_t sc = 0;
		if (!p->t)
			continue;
		r = tracker_collect(p->t, &fresh, &sc);
		if (r < 0 && !proc_alive(p->pid)) {
			/* exited: CRIU will not dump it, its pages are moot */
			tracker_close(p->t);
			p->t = NULL;
			rangeset_free(&p->pending);
			rangeset_free(&fresh);
			r = 0;
			continue;
		}
		if (r == 0)
			r = rangeset_union(&p->pending, &fresh);
		*dirty += rangeset_bytes(&fresh) / PAGE;
		*scanned += sc;
		rangeset_free(&fresh);
		if (r < 0)
			mig_fail(m, r, "tracking PID %d: %s", p->pid, strerror(-r));
	}
	if (r == 0 && pc->shm_on && !pc->shm_frozen && !pc->shm_collected)
		r = shm_collect_all(m, frozen, dirty, scanned);
	return r;
}

static int add_round(struct migration *m, const struct round_stat *rs)
{
	struct round_stat *v = realloc(m->st.rounds, (m->st.nr_rounds + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	m->st.rounds = v;
	v[m->st.nr_rounds++] = *rs;
	return 0;
}

/*
 * A round while running shows a bar on a terminal (never while frozen),
 * and so does stop mode's stream, which is the whole memory, as its
 * images did.
 */
static void begin_bar(struct migration *m, bool final)
{
	struct precopy *pc = m->pc;
	uint64_t bytes = 0;

	for (size_t i = 0; i < pc->nr; i++)
		bytes += rangeset_bytes(&pc->p[i].pending);
	if (m->stream)
		snprintf(pc->label, sizeof(pc->label), "memory");
	else
		snprintf(pc->label, sizeof(pc->label), "round %u", pc->round);
	progress_begin(&pc->bar,
		       (!final || m->stream) && m->opts->progress && isatty(STDERR_FILENO),
		       pc->label, bytes);
}

/* The shared memory objects' pending pages; after a frozen collect,
 * the last of them. */
static int send_shm(struct migration *m, uint64_t *pages)
{
	struct precopy *pc = m->pc;
	uint64_t n = 0, dirty;
	int r;

	if (!pc->shm_on || pc->shm_frozen)
		return 0;
	r = shm_collect_wait(&pc->shm, &dirty);
	if (r < 0)
		return mig_fail(m, r, "shared memory: %s", strerror(-r));
	r = shm_send(&pc->shm, m->conn, pc->buf, &n);
	if (r < 0)
		return mig_fail(m, r, "sending shared memory: %s", strerror(-r));
	*pages += n;
	m->st.shm_pages += n;
	if (pc->shm_collected)
		m->st.shm_frozen_pages += n;
	pc->shm_frozen = pc->shm_collected;
	return 0;
}

/* Send every pending page (@procs: the processes' too): one round. */
static int send_round(struct migration *m, uint64_t scanned, bool final, bool procs)
{
	struct precopy *pc = m->pc;
	struct round_stat rs = { .pages_scanned = scanned, .frozen = final };
	uint64_t t0 = now_ms(), b0 = m->conn->bytes_out;
	int r = 0;

	pc->round++;
	begin_bar(m, final);
	for (size_t i = 0; procs && r == 0 && i < pc->nr; i++) {
		r = send_set(m, &pc->p[i], &pc->p[i].pending, &rs.pages_sent);
		rangeset_clear(&pc->p[i].pending);
	}
	if (r == 0)
		r = send_shm(m, &rs.pages_sent);
	if (r == 0)
		r = send_round_end(m, pc->round, rs.pages_sent, final);
	if (r < 0)
		return m->error[0] ? r : mig_fail(m, r, "round %u: %s", pc->round, strerror(-r));
	progress_end(&pc->bar);
	rs.ms = now_ms() - t0;
	rs.bytes_sent = m->conn->bytes_out - b0;
	pr_info("round %u: %llu pages sent in %llu ms", pc->round,
		(unsigned long long)rs.pages_sent, (unsigned long long)rs.ms);
	return add_round(m, &rs);
}

int precopy_rounds(struct migration *m)
{
	struct precopy *pc = m->pc;
	enum policy_verdict v = POLICY_CONTINUE;
	uint64_t dirty, scanned, predicted = 0;
	int r;

	mig_step(m, "round");
	for (;;) {
		r = collect(m, false, &dirty, &scanned);
		if (r < 0)
			return r;
		if (m->st.nr_rounds) {
			m->st.rounds[m->st.nr_rounds - 1].pages_dirty = dirty;
			v = policy_decide(&pc->pol, m->st.rounds, m->st.nr_rounds,
					  now_ms() - pc->start_ms, &predicted);
			if (m->auto_mode)
				v = policy_auto_verdict(v, m->st.rounds, m->st.nr_rounds);
			events_round(m->ev, m->st.nr_rounds, &m->st.rounds[m->st.nr_rounds - 1],
				     predicted);
			if (v != POLICY_CONTINUE)
				break;
		}
		unsigned int n = pc->round + 1; /* send_round() counts it */
		if (control_cancelled())
			return mig_fail(m, -ECANCELED, "round %u: %s", n, CONTROL_CANCELLED);
		r = fault_point("src.round");
		if (r == 0)
			r = send_round(m, scanned, false, true);
		if (r == 0)
			r = mig_hook(m, HOOK_NEXT_ITERATION);
		if (r < 0)
			return m->error[0] ? r : mig_fail(m, r, "round %u: %s", n, strerror(-r));
		m->st.iterations = pc->round;
	}
	m->st.predicted_ms = predicted;
	m->st.stop_reason = policy_verdict_name(v);
	pr_info("stopping pre-copy after %u rounds: %s; %llu pages dirty, predicted frozen %llu ms",
		pc->round, m->st.stop_reason, (unsigned long long)dirty,
		(unsigned long long)predicted);
	if (m->auto_mode) {
		m->mode = policy_pick_mode(&pc->pol, v, predicted, m->st.auto_why,
					   sizeof(m->st.auto_why));
		pr_info("--mode auto chose %s: %s", mode_name(m->mode), m->st.auto_why);
	}
	return 0;
}

/* What of CRIU's lazy runs for @pid the destination lacks. */
static int final_needs(struct migration *m, pid_t pid, const struct pagemap *pm)
{
	struct pc_proc *p = pc_find_img(m, pid);
	struct rangeset need = { 0 };
	int r = p ? 0 : -ESRCH;

	for (size_t i = 0; r == 0 && i < pm->nr; i++) {
		const struct pm_entry *e = &pm->e[i];
		uint64_t end = e->vaddr + (uint64_t)e->nr_pages * PAGE;
		if (!(e->flags & PE_LAZY) || (e->flags & PE_PRESENT))
			continue;
		r = rangeset_missing(&p->sent, e->vaddr, end, &need);
		if (r == 0)
			r = rangeset_intersect(&p->pending, e->vaddr, end, &need);
	}
	if (r == 0) {
		rangeset_free(&p->pending);
		p->pending = need;
	} else {
		rangeset_free(&need);
	}
	return r;
}

static int plan_one(void *arg, int pid, const char *name)
{
	struct migration *m = arg;
	struct pagemap pm;
	int r = pagemap_read(m->imgfd, name, &pm);

	if (r == 0)
		r = final_needs(m, pid, &pm);
	pagemap_free(&pm);
	return r;
}

static int plan_final(struct migration *m)
{
	return pagemap_each(m->imgfd, plan_one, m);
}

static bool named_in_preflight(const struct migration *m, pid_t ipid)
{
	const int32_t *v = m->img_pids ? m->img_pids : m->pids;

	for (size_t i = 0; i < m->nr_procs; i++)
		if (v[i] == ipid)
			return true;
	return false;
}

/* Processes forked since the preflight: the destination learns them first. */
static int send_new_pids(struct migration *m)
{
	Phaul__NewPids np = PHAUL__NEW_PIDS__INIT;
	_cleanup_free_ int32_t *v = calloc(m->pc->nr + 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->pc->nr; i++)
		if (!m->pc->p[i].announced && !named_in_preflight(m, m->pc->p[i].ipid)) {
			v[np.n_pids++] = m->pc->p[i].ipid;
			m->pc->p[i].announced = true;
		}
	if (!np.n_pids)
		return 0;
	pr_info("%zu processes forked since the preflight", np.n_pids);
	np.pids = v;
	return msg_send_new_pids(m->conn, &np);
}

int precopy_stream_start(struct migration *m)
{
	struct precopy *pc;
	int r = attach(m);

	if (r < 0)
		return mig_fail(m, r, "no memory for the pages");
	pc = m->pc;
	pc->start_ms = now_ms();
	for (size_t i = 0; i < m->nr_procs; i++) {
		struct pc_proc *p = pc_find(pc, m->pids[i], true);
		if (!p)
			return mig_fail(m, -ENOMEM, "no memory for the pages");
		if (m->img_pids)
			p->ipid = m->img_pids[i];
	}
	m->st.tracking = track_method_name(TRACK_NONE);
	return 0;
}

/*
 * Stop mode, the tree seized: every populated page goes now, while CRIU
 * dumps; precopy_final() sends what CRIU's lazy runs add (executable
 * mappings, processes the scan missed). A scan that fails leaves all to
 * precopy_final(): slower, never wrong.
 */
static void stream_pending(struct migration *m)
{
	struct precopy *pc = m->pc;
	int r = 0;

	for (size_t i = 0; r == 0 && i < pc->nr; i++) {
		r = track_populated(pc->p[i].pid, &pc->p[i].pending);
		if (r == -ESRCH) { /* exited: CRIU will not dump it */
			rangeset_clear(&pc->p[i].pending);
			r = 0;
		}
	}
	if (r < 0) {
		pr_warn("cannot list the frozen tree's pages (%s): they go after CRIU's dump",
			strerror(-r));
		for (size_t i = 0; i < pc->nr; i++)
			rangeset_clear(&pc->p[i].pending);
	}
}

/* Hybrid, frozen: the shared memory's last pages, as a round of their own. */
static int shm_round(struct migration *m)
{
	struct precopy *pc = m->pc;
	bool any = false;
	uint64_t dirty;
	int r = shm_collect_wait(&pc->shm, &dirty);

	if (r < 0)
		return mig_fail(m, r, "shared memory: %s", strerror(-r));
	for (size_t i = 0; i < pc->shm.nr; i++)
		any |= pc->shm.o[i].pending.nr > 0;
	if (!pc->shm_on || pc->shm_frozen || !any) {
		pc->shm_frozen = pc->shm_collected;
		return 0;
	}
	r = send_round(m, 0, true, false);
	if (r == 0)
		pc->early_pages += m->st.rounds[m->st.nr_rounds - 1].pages_sent;
	return r;
}

int precopy_shm_ahead(struct migration *m)
{
	uint64_t dirty = 0, scanned = 0;
	int r = shm_wanted(m) ? attach(m) : 0;

	if (!shm_wanted(m) || r < 0)
		return r < 0 ? mig_fail(m, r, "no memory for shared memory") : 0;
	m->pc->shm_on = true;
	r = shm_collect_all(m, false, &dirty, &scanned);
	if (r == 0 && !m->pc->shm.nr) { /* nothing to send ahead */
		m->pc->shm_on = false;
		return 0;
	}
	mig_step(m, "shared memory");
	if (r == 0)
		r = send_round(m, scanned, false, false);
	if (r == 0)
		pr_info("%llu pages of shared memory sent ahead of the freeze",
			(unsigned long long)m->st.shm_pages);
	return r;
}

int precopy_shm_final(struct migration *m)
{
	struct precopy *pc = m->pc;
	uint64_t dirty = 0, scanned = 0;
	int r = 0;

	if (!pc || !pc->shm_on || pc->shm_frozen)
		return 0;
	if (!pc->shm_collected)
		r = shm_collect_all(m, true, &dirty, &scanned);
	return r < 0 ? r : shm_round(m);
}

int precopy_send_frozen(struct migration *m)
{
	struct precopy *pc = m->pc;
	uint64_t dirty = 0, scanned = 0;
	int r = 0;

	if (!pc)
		return 0;
	if (m->stream)
		stream_pending(m);
	else
		r = collect(m, true, &dirty, &scanned);
	if (r == 0 && mode_postcopy(m->mode)) {
		/* hybrid: post-copy moves these. Sent now, they would fill the
		 * link (and every socket buffer on the way) with data that
		 * the frozen path's own messages then wait behind. Shared
		 * memory cannot wait: CRIU restores it with the tree. */
		pr_info("%llu pages dirty at the freeze, left to post-copy",
			(unsigned long long)dirty);
		return shm_round(m);
	}
	/* a round of its own: what post-dump adds may lie below these */
	if (r == 0)
		r = send_round(m, scanned, true, true);
	if (r < 0)
		return r;
	pc->early_pages = m->st.rounds[m->st.nr_rounds - 1].pages_sent;
	pc->early_round = true;
	pr_info("%llu pages sent while CRIU dumps", (unsigned long long)pc->early_pages);
	return 0;
}

/* While frozen: what the destination lacks goes into every pending set. */
static int plan(struct migration *m, uint64_t *dirty, uint64_t *scanned)
{
	int r;

	mig_step(m, "final pages");
	r = collect(m, true, dirty, scanned);
	if (r == 0)
		r = plan_final(m);
	if (r == 0)
		r = send_new_pids(m);
	if (r < 0)
		return m->error[0] ? r :
				     mig_fail(m, r, "planning the final pages: %s", strerror(-r));
	/* The trackers stay until the end: releasing uffd-wp walks the whole
	 * memory (~40 ms/GiB), and after a commit the tree dies anyway. */
	return 0;
}

/* Report the two frozen rounds (during the dump, after it) as one. */
static void merge_frozen(struct migration *m)
{
	struct round_stat *a, *b;

	if (m->st.nr_rounds < 2 || !m->pc->early_round)
		return;
	a = &m->st.rounds[m->st.nr_rounds - 2];
	b = &m->st.rounds[m->st.nr_rounds - 1];
	if (!a->frozen || !b->frozen)
		return;
	a->pages_scanned += b->pages_scanned;
	a->pages_sent += b->pages_sent;
	a->bytes_sent += b->bytes_sent;
	a->ms += b->ms;
	m->st.nr_rounds--;
}

int precopy_final(struct migration *m)
{
	uint64_t dirty, scanned;
	int r = plan(m, &dirty, &scanned);

	if (r == 0)
		r = send_round(m, scanned, true, true);
	if (r == 0) {
		merge_frozen(m);
		m->st.final_pages = m->st.rounds[m->st.nr_rounds - 1].pages_sent;
		/* the rounds while running are reported by precopy_rounds(),
		 * once their dirty pages are known */
		events_round(m->ev, m->st.nr_rounds, &m->st.rounds[m->st.nr_rounds - 1], 0);
		pr_info("final: %llu pages while frozen (%llu written since the last round)",
			(unsigned long long)m->st.final_pages, (unsigned long long)dirty);
	}
	return r;
}

static int send_drop(struct migration *m, pid_t pid, uint64_t vaddr, uint32_t nr)
{
	Phaul__PageDrop pd = PHAUL__PAGE_DROP__INIT;

	pd.pid = pid;
	pd.vaddr = vaddr;
	pd.nr_pages = nr;
	return msg_send_page_drop(m->conn, &pd);
}

/* Tell the destination which of its pages are stale: one process's set. */
static int drop_set(struct migration *m, struct pc_proc *p, uint64_t *pages)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < p->pending.nr; i++) {
		uint64_t pos = p->pending.r[i].start, end = p->pending.r[i].end;
		while (r == 0 && pos < end) {
			uint32_t n = MIN((end - pos) / PAGE, (uint64_t)MSG_DROP_PAGES_MAX);
			r = send_drop(m, p->ipid, pos, n);
			pos += (uint64_t)n * PAGE;
			*pages += n;
		}
	}
	rangeset_clear(&p->pending);
	return r;
}

int precopy_final_lazy(struct migration *m)
{
	uint64_t dirty, scanned, pages = 0;
	int r = plan(m, &dirty, &scanned);

	if (r == 0) /* if the freeze's pass did not send it */
		r = shm_round(m);
	for (size_t i = 0; r == 0 && i < m->pc->nr; i++)
		r = drop_set(m, &m->pc->p[i], &pages);
	if (r < 0)
		return mig_fail(m, r, "marking stale pages: %s", strerror(-r));
	m->st.pages_dropped = pages;
	m->st.final_pages = m->pc->early_pages;
	pr_info("final: %llu pages left to post-copy", (unsigned long long)pages);
	return 0;
}

/*
 * @p's shared pages the destination lacks, or holds stale: those not
 * sent, and those written since (pending) in @need; the pending ones no
 * longer are (sent now, never dropped).
 */
static int shared_needs(struct pc_proc *p, const struct rangeset *shared, struct rangeset *need)
{
	struct rangeset rest = { 0 };
	int r = 0;

	for (size_t i = 0; r == 0 && i < shared->nr; i++) {
		r = rangeset_missing(&p->sent, shared->r[i].start, shared->r[i].end, need);
		if (r == 0)
			r = rangeset_intersect(&p->pending, shared->r[i].start, shared->r[i].end,
					       need);
	}
	for (size_t i = 0; r == 0 && i < p->pending.nr; i++)
		r = rangeset_missing(shared, p->pending.r[i].start, p->pending.r[i].end, &rest);
	if (r == 0) {
		rangeset_free(&p->pending);
		p->pending = rest;
	} else {
		rangeset_free(&rest);
	}
	return r;
}

/* PageShared for every run of @s; with @from (> 0), the destination
 * copies them from its copy of @from's. */
static int send_shared_marks(struct migration *m, int32_t ipid, const struct rangeset *s,
			     int32_t from)
{
	Phaul__PageShared ps = PHAUL__PAGE_SHARED__INIT;
	int r = 0;

	ps.pid = ipid;
	ps.has_from_pid = from > 0;
	ps.from_pid = from;
	for (size_t i = 0; r == 0 && i < s->nr; i++) {
		for (uint64_t pos = s->r[i].start; r == 0 && pos < s->r[i].end;) {
			ps.vaddr = pos;
			ps.nr_pages = MIN((s->r[i].end - pos) / PAGE, (uint64_t)MSG_DROP_PAGES_MAX);
			r = msg_send_page_shared(m->conn, &ps);
			pos += (uint64_t)ps.nr_pages * PAGE;
		}
	}
	return r;
}

/*
 * What a process needs of the pages it shares with its parent is the
 * parent's: @need[i] loses them to @copy[i], which the destination
 * copies from its copy of the parent's instead of receiving them again.
 */
static int split_copies(const struct cow_set *cs, struct rangeset *need, struct rangeset *copy)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < cs->nr; i++) {
		struct rangeset rest = { 0 };
		if (cs->p[i].parent < 0 || !need[i].nr)
			continue;
		for (size_t k = 0; r == 0 && k < need[i].nr; k++) {
			r = rangeset_intersect(&cs->p[i].with_parent, need[i].r[k].start,
					       need[i].r[k].end, &copy[i]);
			if (r == 0)
				r = rangeset_missing(&cs->p[i].with_parent, need[i].r[k].start,
						     need[i].r[k].end, &rest);
		}
		rangeset_free(&need[i]);
		need[i] = rest;
	}
	return r;
}

/*
 * The copies, one round per depth in the tree: a process's parent holds
 * the pages it copies in a finished round (sent in the data round, or
 * copied from its own parent the round before).
 */
static int send_copy_rounds(struct migration *m, const struct cow_set *cs,
			    const struct rangeset *copy)
{
	int r = 0;

	for (unsigned int d = 1; r == 0 && d <= cs->depth; d++) {
		uint64_t pages = 0;
		for (size_t i = 0; r == 0 && i < cs->nr; i++) {
			if (cs->p[i].depth != d || !copy[i].nr)
				continue;
			r = send_shared_marks(m, cs->p[i].ipid, &copy[i],
					      cs->p[cs->p[i].parent].ipid);
			pages += rangeset_bytes(&copy[i]) / PAGE;
		}
		if (r == 0 && pages)
			r = send_round_end(m, ++m->pc->round, 0, true);
		m->st.cow_copied += pages;
	}
	return r;
}

/* One frozen round of @need[i], the pages of @cs->p[i]. */
static int send_shared_round(struct migration *m, const struct cow_set *cs,
			     const struct rangeset *need)
{
	struct round_stat rs = { .frozen = true };
	uint64_t t0 = now_ms(), b0 = m->conn->bytes_out;
	int r = 0;

	m->pc->round++;
	for (size_t i = 0; r == 0 && i < cs->nr; i++)
		if (need[i].nr)
			r = send_set(m, pc_find_img(m, cs->p[i].ipid), &need[i], &rs.pages_sent);
	if (r == 0)
		r = send_round_end(m, m->pc->round, rs.pages_sent, true);
	if (r < 0)
		return m->error[0] ? r : mig_fail(m, r, "shared pages: %s", strerror(-r));
	rs.ms = now_ms() - t0;
	rs.bytes_sent = m->conn->bytes_out - b0;
	m->st.cow_sent = rs.pages_sent;
	pr_info("%llu shared pages sent while frozen in %llu ms", (unsigned long long)rs.pages_sent,
		(unsigned long long)rs.ms);
	return add_round(m, &rs);
}

int precopy_send_shared(struct migration *m, const struct cow_set *cs)
{
	uint64_t bytes = 0, dirty, scanned;
	struct rangeset *need, *copy;
	int r;

	if (!cs->pages || !m->peer_shared)
		return 0;
	r = attach(m);
	/* hybrid: what was written last, if the freeze's collect missed it */
	if (r == 0 && (r = collect(m, true, &dirty, &scanned)) < 0)
		return r;
	need = r == 0 ? calloc(2 * cs->nr, sizeof(*need)) : NULL;
	if (!need)
		return mig_fail(m, -ENOMEM, "no memory for the shared pages");
	copy = need + cs->nr;
	for (size_t i = 0; r == 0 && i < cs->nr; i++) {
		struct pc_proc *p = cs->p[i].shared.nr ? pc_find_img(m, cs->p[i].ipid) : NULL;
		if (cs->p[i].shared.nr)
			r = p ? shared_needs(p, &cs->p[i].shared, &need[i]) : -ESRCH;
	}
	if (r == 0)
		r = split_copies(cs, need, copy);
	for (size_t i = 0; i < cs->nr; i++)
		bytes += rangeset_bytes(&need[i]);
	if (r == 0)
		r = send_new_pids(m);
	/* the fault: a source naming pages it never sent (the destination
	 * must refuse them) */
	if (r == 0 && bytes && fault_point("src.cowsend") == 0)
		r = send_shared_round(m, cs, need);
	if (r == 0)
		r = send_copy_rounds(m, cs, copy);
	for (size_t i = 0; r == 0 && i < cs->nr; i++)
		r = send_shared_marks(m, cs->p[i].ipid, &cs->p[i].shared, 0);
	for (size_t i = 0; i < 2 * cs->nr; i++)
		rangeset_free(&need[i]);
	free(need);
	if (r < 0)
		return m->error[0] ? r : mig_fail(m, r, "shared pages: %s", strerror(-r));
	m->st.cow_pages = cs->pages;
	if (m->st.cow_copied)
		pr_info("%llu shared pages copied on the destination, not sent",
			(unsigned long long)m->st.cow_copied);
	return 0;
}

void precopy_stop(struct migration *m)
{
	struct precopy *pc = m->pc;

	if (!pc)
		return;
	for (size_t i = 0; i < pc->nr; i++) {
		if (pc->p[i].t)
			tracker_close(pc->p[i].t);
		pc->p[i].t = NULL;
	}
}

void precopy_free(struct migration *m)
{
	struct precopy *pc = m->pc;

	if (!pc)
		return;
	precopy_stop(m);
	for (size_t i = 0; i < pc->nr; i++) {
		procmem_close(&pc->p[i].mem);
		rangeset_free(&pc->p[i].sent);
		rangeset_free(&pc->p[i].pending);
	}
	pf_pipe_free(pc->pipe);
	shm_free(&pc->shm);
	free(pc->p);
	free(pc->buf);
	free(pc);
	m->pc = NULL;
}

int precopy_shmem_list(struct migration *m, const char *path)
{
	struct precopy *pc = m->pc;
	int r;

	if (!pc || !pc->shm_on || !pc->shm.nr)
		return 0;
	r = shm_write_list(&pc->shm, path);
	if (r < 0)
		return mig_fail(m, r, "cannot write %s: %s", path, strerror(-r));
	return 1;
}
