/* SPDX-License-Identifier: MIT */
/*
 * source: `phaul migrate`. Prepare the drivers, connect, run the
 * preflight on both sides, then the final dump, during which CRIU holds
 * the tree frozen at post-dump while final.c moves the images,
 * has the destination restore and commits.
 */
#define LOG_PREFIX "engine: "
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "criu/criu.h"
#include "engine/drvctx.h"
#include "engine/migration.h"
#include "source/precopy.h"
#include "engine/restart.h"
#include "engine/session.h"
#include "source/connect.h"
#include "source/migrate.h"
#include "source/postcopy.h"
#include "source/source.h"
#include "common/pidlock.h"
#include "common/proc.h"
#include "common/procmem.h"

/* cpuinfo.img of this host, for the destination's CPU check. */
/* `criu cpuinfo dump` into m->dir/cpu, started (source_cpuinfo_end reads it). */
static int cpuinfo_begin(struct migration *m, struct criu_call *k)
{
	char dir[4096];
	int r;

	snprintf(dir, sizeof(dir), "%s/cpu", m->dir);
	if (mkdir(dir, 0700) < 0)
		return mig_fail(m, -errno, "cannot create %s: %m", dir);
	r = criu_cpuinfo_begin(k, dir, true);
	if (r < 0)
		return mig_fail(m, r, "criu cpuinfo dump failed (see %s)", dir);
	return 0;
}

static int cpuinfo_end(struct migration *m, struct criu_call *k, uint8_t **ret, size_t *ret_len)
{
	char path[4200];
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = criu_cpuinfo_end(k);

	snprintf(path, sizeof(path), "%s/cpu/cpuinfo.img", m->dir);
	if (r < 0)
		return mig_fail(m, r, "criu cpuinfo dump failed (see %s)", path);
	r = read_file(path, MSG_CPUINFO_MAX, &buf, &len);
	if (r < 0)
		return mig_fail(m, r, "cannot read %s: %s", path, strerror(-r));
	*ret = (uint8_t *)TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}

/*
 * Live, lazy and hybrid modes, and stop mode when it streams, read the
 * tree's memory themselves: pages of mappings the process cannot read
 * (PROT_NONE, write-only) only through /proc/PID/mem (common/procmem.h).
 * 1 where the kernel refuses that and such pages exist (the first, in
 * *@pid, *@start, *@end), else 0.
 */
static int find_unreadable(struct migration *m, pid_t *pid, uint64_t *start, uint64_t *end)
{
	/* the fault: as on a kernel that refuses (the tests) */
	if (procmem_can_force() && fault_point("src.memforce") == 0)
		return 0;
	for (size_t i = 0; i < m->nr_procs; i++)
		if (procmem_find_unreadable(m->pids[i], start, end) > 0) {
			*pid = m->pids[i];
			return 1;
		}
	return 0;
}

/* Such a tree must not freeze: the destination would lack pages. */
static int check_memory_readable(struct migration *m)
{
	uint64_t start, end;
	pid_t pid;

	if (!mode_lazy_dump(m->mode) || !find_unreadable(m, &pid, &start, &end))
		return 0;
	return mig_fail(m, -EPERM,
			"PID %d has pages in %#llx-%#llx, a mapping it cannot read, and "
			"this kernel does not let phaul read them (/proc/PID/mem, "
			"proc_mem.force_override): --mode stop moves it",
			pid, (unsigned long long)start, (unsigned long long)end);
}

/*
 * Stop mode streams memory (m->stream) unless PHAUL_STOP_STREAM=0 or the
 * tree has pages phaul cannot read: then CRIU's images carry it, and
 * m->st.stop_why says why. The destination has the last word.
 */
static bool stop_stream_wanted(struct migration *m)
{
	const char *env = getenv("PHAUL_STOP_STREAM");
	uint64_t start, end;
	pid_t pid;

	if (m->mode != MODE_STOP)
		return false;
	if (env && !strcmp(env, "0")) {
		snprintf(m->st.stop_why, sizeof(m->st.stop_why), "PHAUL_STOP_STREAM=0 here");
		return false;
	}
	if (find_unreadable(m, &pid, &start, &end)) {
		snprintf(m->st.stop_why, sizeof(m->st.stop_why),
			 "PID %d has pages in %#llx-%#llx that this kernel does not let "
			 "phaul read (/proc/PID/mem)",
			 pid, (unsigned long long)start, (unsigned long long)end);
		return false;
	}
	return true;
}

/* The destination's answer to Preflight.stream: the path stop mode takes. */
static void stop_path(struct migration *m, const Phaul__PreflightReply *pr)
{
	if (m->mode != MODE_STOP)
		return;
	if (m->stream && !(pr->has_stream && pr->stream)) {
		m->stream = false;
		snprintf(m->st.stop_why, sizeof(m->st.stop_why), "%s",
			 !pr->has_stream ? "the destination does not take streamed memory "
					   "(an older phaul)" :
			 pr->stream_why	 ? pr->stream_why :
					   "the destination declined streamed memory");
	}
	m->st.stop_path = m->stream ? "streamed" : "images";
	if (m->stream)
		pr_info("stop mode streams memory while CRIU dumps; the restore is lazy from "
			"the destination's store");
	else
		pr_info("stop mode moves CRIU's images: %s", m->st.stop_why);
}

int source_local_checks(struct migration *m, uint32_t *ver, uint8_t **cpu, size_t *cpulen)
{
	struct criu_call cpuk = CRIU_CALL_INIT;
	char why[256];
	int r = criu_version(ver);

	if (r < 0)
		return mig_fail(m, r, "CRIU is not usable on the source");
	if (*ver < 40000)
		return mig_fail(m, -ENOTSUP, "CRIU %u.%u on the source is too old (need >= 4.0)",
				*ver / 10000, *ver / 100 % 100);
	/* one CRIU writes the cpuinfo while another runs its checks */
	r = cpuinfo_begin(m, &cpuk);
	if (r < 0)
		return r;
	r = criu_check(m->dir, why, sizeof(why));
	if (r < 0)
		mig_fail(m, r, "'criu check' fails on the source: %s", why);
	if (r == 0)
		r = check_memory_readable(m);
	if (r == 0)
		r = source_check_locks(m);
	if (r < 0) {
		criu_call_end(&cpuk);
		return r;
	}
	return cpuinfo_end(m, &cpuk, cpu, cpulen);
}

int source_send_preflight(struct migration *m, uint32_t ver, uint8_t *cpu, size_t cpulen,
			  bool check)
{
	Phaul__Preflight p = PHAUL__PREFLIGHT__INIT;
	char comm[32];
	char *fs[MSG_FS_MAX];

	p.mode = (char *)mode_name(m->mode);
	p.htype = (char *)m->drv[0]->ops->name;
	for (size_t i = 1; i < m->nr_drv; i++)
		fs[i - 1] = (char *)m->opts->fs[i - 1];
	p.fs = fs;
	p.n_fs = m->nr_drv - 1;
	p.criu_version = ver;
	p.has_cpuinfo = cpu != NULL;
	p.cpuinfo.data = cpu;
	p.cpuinfo.len = cpulen;
	p.pids = m->img_pids ? m->img_pids : m->pids;
	p.n_pids = m->nr_pids;
	p.has_nr_procs = true;
	p.nr_procs = m->nr_procs;
	p.est_bytes = m->est_bytes;
	proc_comm(m->root_pid, comm, sizeof(comm));
	p.root_cmd = comm;
	p.has_shell_job = true;
	p.shell_job = m->shell_job;
	p.has_stream = m->stream;
	p.stream = m->stream;
	return check ? msg_send_check(m->conn, &p) : msg_send_preflight(m->conn, &p);
}

static int preflight(struct migration *m)
{
	_cleanup_msg_ Msg *reply = NULL;
	_cleanup_free_ uint8_t *cpu = NULL;
	size_t cpulen = 0;
	uint32_t ver = 0;
	int r;

	mig_step(m, "preflight");
	r = fault_point("src.preflight");
	if (r < 0)
		return mig_fail(m, r, "injected fault");
	/* restart mode does without CRIU */
	if (m->mode != MODE_RESTART)
		r = source_local_checks(m, &ver, &cpu, &cpulen);
	for (size_t i = 0; r == 0 && i < m->nr_drv; i++) {
		struct mig_drvctx b;

		mig_drvctx_init(m, i, &b);
		if (m->drv[i]->ops->send_info)
			r = m->drv[i]->ops->send_info(m->drv[i], &b.ctx);
	}
	if (r == 0) {
		m->stream = stop_stream_wanted(m);
		r = source_send_preflight(m, ver, cpu, cpulen, false);
	}
	if (r < 0)
		return m->error[0] ? r :
				     mig_fail(m, r, "cannot send the preflight: %s", strerror(-r));
	conn_set_timeout(m->conn, 120000);
	r = expect_msg(m, PHAUL__MSG__BODY_PREFLIGHT_REPLY, &reply);
	if (r < 0)
		return r;
	if (!reply->preflight_reply->ok)
		return mig_fail(m, -EAGAIN, "destination: %s",
				reply->preflight_reply->error ?: "refused");
	stop_path(m, reply->preflight_reply);
	for (size_t i = 0; i < reply->preflight_reply->n_in_place; i++) {
		r = mig_add_in_place(m, reply->preflight_reply->in_place[i]);
		if (r < 0)
			return mig_fail(m, r, "cannot note what the destination uses in place");
		pr_info("the destination uses %s in place", m->in_place[i]);
	}
	pr_info("preflight passed: CRIU %u.%u.%u here, %u.%u.%u there", ver / 10000,
		ver / 100 % 100, ver % 100, reply->preflight_reply->criu_version / 10000,
		reply->preflight_reply->criu_version / 100 % 100,
		reply->preflight_reply->criu_version % 100);
	return 0;
}

int source_setup_drivers(struct migration *m, bool prepare)
{
	const struct mig_opts *o = m->opts;
	int r;

	mig_step(m, "prepare");
	/* --shell-job; the workload driver may also find a terminal */
	m->shell_job = o->shell_job;
	r = driver_new(DRV_HTYPE, o->htype, &m->drv[m->nr_drv]);
	if (r < 0)
		return mig_fail(m, r, "bad workload '%s'", o->htype);
	m->nr_drv++;
	for (size_t i = 0; i < o->nr_fs; i++) {
		r = driver_new(DRV_FS, o->fs[i], &m->drv[m->nr_drv]);
		if (r < 0)
			return mig_fail(m, r, "bad storage '%s'", o->fs[i]);
		m->nr_drv++;
	}
	return prepare ? mig_hook(m, HOOK_PREPARE) : 0;
}

int source_lock_tree(struct migration *m, int *fd)
{
	pid_t holder;
	int r = pidlock_take(pidlock_dir(), m->root_pid, &holder);

	if (r == -EBUSY)
		return mig_fail(m, r, "PID %d is being migrated already (by phaul PID %d)",
				m->root_pid, holder);
	if (r < 0)
		return mig_fail(m, r, "cannot lock PID %d: %s", m->root_pid, strerror(-r));
	*fd = r;
	return 0;
}

int migrate_source(struct migration *m)
{
	int r, lock = -1;

	m->st.start_ms = now_ms();
	m->imgfd = -1;
	r = source_setup_drivers(m, true);
	if (r == 0)
		r = source_lock_tree(m, &lock);
	if (r == 0)
		r = source_hello(m);
	if (r == 0) {
		session_sweep(m->opts->workdir, "out-");
		r = session_mkdirs(m, m->opts->workdir, "out-");
		m->logdir = m->opts->logdir;
	}
	if (r == 0)
		r = session_write_owner(m);
	if (r == 0)
		r = preflight(m);
	if (r == 0) {
		mig_step(m, "start");
		r = mig_hook(m, HOOK_START_MIGRATION);
	}
	if (r == 0 && mode_has_rounds(m->mode))
		r = precopy_start(m, &m->opts->policy);
	if (r == 0 && m->mode == MODE_LAZY)
		r = precopy_shm_ahead(m);
	if (r == 0 && m->pc)
		r = precopy_rounds(m);
	if (r == 0 && m->mode == MODE_RESTART) {
		r = source_restart(m);
	} else if (r == 0) {
		r = source_final_dump(m);
	} else {
		precopy_stop(m);
		session_peer_reason(m, 2000);
		if (m->conn && !m->peer_said)
			msg_send_abort(m->conn, m->error[0] ? m->error : "source failed");
		mig_hook(m, HOOK_MIGRATION_FAILED);
	}
	if (m->outcome == OUTCOME_COMMITTED)
		r = 0;
	m->st.total_ms = now_ms() - m->st.start_ms;
	m->st.bytes_sent = m->st.bytes_before + (m->conn ? m->conn->bytes_out : 0);
	session_rmdirs(m);
	pidlock_release(pidlock_dir(), m->root_pid, lock);
	return r;
}

void migrate_free(struct migration *m)
{
	precopy_free(m);
	postcopy_end(m);
	mig_free(m);
}
