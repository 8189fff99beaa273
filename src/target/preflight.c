/* SPDX-License-Identifier: MIT */
/*
 * target/preflight: everything that could make a restore fail late is
 * checked before the source freezes anything: mode and drivers known,
 * CRIU usable and not older than the source's, this CPU able to run what
 * the source's CPU ran, the tree's PIDs free, room for the images.
 */
#define LOG_PREFIX "session: "
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "criu/criu.h"
#include "target/admit.h"
#include "engine/drvctx.h"
#include "engine/session.h"
#include "target/target.h"

#define SPACE_RESERVE (16ULL << 20)

static int check_mode(struct target *t, const char *mode)
{
	int r = mode_parse(mode);

	if (r < 0)
		return mig_fail(&t->m, -ENOTSUP, "mode '%s' is not supported by this destination",
				mode);
	t->m.mode = r;
	return 0;
}

/* The daemon's policy (admit.h), before any driver touches a path. */
static int check_policy(struct target *t, Phaul__Preflight *p)
{
	char why[1024];
	int r = admit_preflight(t->so->admit, p, t->info, why, sizeof(why));

	return r < 0 ? mig_fail(&t->m, r, "%s", why) : 0;
}

static int setup_drivers(struct target *t, Phaul__Preflight *p)
{
	struct migration *m = &t->m;
	int r = driver_new(DRV_HTYPE, p->htype, &m->drv[0]);

	if (r < 0)
		return mig_fail(m, r, "workload driver '%s' unknown here", p->htype);
	m->nr_drv = 1;
	for (size_t i = 0; i < p->n_fs; i++) {
		r = driver_new(DRV_FS, p->fs[i], &m->drv[m->nr_drv]);
		if (r < 0)
			return mig_fail(m, r, "storage driver '%s' unknown here", p->fs[i]);
		m->nr_drv++;
	}
	for (size_t i = 0; i < m->nr_drv; i++) {
		const struct driver_ops *ops = m->drv[i]->ops;
		struct mig_drvctx b;

		mig_drvctx_init(m, i, &b);
		r = ops->recv_info ? ops->recv_info(m->drv[i], &b.ctx, t->info) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_criu_version(struct target *t, uint32_t theirs, uint32_t *ours)
{
	int r = criu_version(ours);

	if (r < 0)
		return mig_fail(&t->m, r, "CRIU is not usable on the destination");
	if (*ours / 100 < theirs / 100)
		return mig_fail(&t->m, -ENOTSUP, "CRIU %u.%u here is older than the source's %u.%u",
				*ours / 10000, *ours / 100 % 100, theirs / 10000,
				theirs / 100 % 100);
	return 0;
}

/* `criu check`: the answer of the one started with the session, if any. */
static int check_criu(struct target *t)
{
	char why[256];
	int r = criu_call_pending(&t->check) ?
			criu_check_end(&t->check, t->m.dir, why, sizeof(why)) :
			criu_check(t->m.dir, why, sizeof(why));

	if (r < 0)
		return mig_fail(&t->m, -ENOTSUP, "'criu check' fails on the destination: %s", why);
	return 0;
}

/* The source's cpuinfo.img written, `criu cpuinfo check` started on it. */
static int cpu_begin(struct target *t, const ProtobufCBinaryData *img, struct criu_call *k)
{
	char dir[4096], path[4200];
	static const char garbled[] = "not a cpuinfo image";
	const void *data = img->data;
	size_t n = img->len;
	_cleanup_close_ int fd = -1;

	snprintf(dir, sizeof(dir), "%s/cpu", t->m.dir);
	snprintf(path, sizeof(path), "%s/cpuinfo.img", dir);
	if (mkdir(dir, 0700) < 0)
		return mig_fail(&t->m, -errno, "cannot create %s: %m", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fault_point("dst.cpuinfo") < 0) {
		data = garbled;
		n = sizeof(garbled) - 1;
	}
	if (fd < 0 || write_full(fd, data, n) < 0)
		return mig_fail(&t->m, -EIO, "cannot write %s", path);
	if (criu_cpuinfo_begin(k, dir, false) < 0)
		return mig_fail(&t->m, -EIO, "cannot run criu cpuinfo check");
	return 0;
}

static int cpu_end(struct target *t, struct criu_call *k)
{
	int r = criu_cpuinfo_end(k);

	if (r < 0)
		return mig_fail(&t->m, r,
				"this CPU lacks features the source's CPU has "
				"(criu cpuinfo check failed)");
	return 0;
}

/*
 * CRIU here (its version, `criu check`) and the source's CPU features
 * against this CPU, the last two CRIUs side by side. In `phaul check`
 * (@errs) every failure is noted and the checks go on.
 */
static int check_criu_cpu(struct target *t, const Phaul__Preflight *p, uint32_t *ver, char *errs,
			  size_t len)
{
	struct migration *m = &t->m;
	struct criu_call cpuk = CRIU_CALL_INIT;
	bool cpu = false;
	int r;

	/* restart mode does without CRIU */
	if (m->mode == MODE_RESTART)
		return 0;
	r = check_criu_version(t, p->criu_version, ver);
	if (r < 0)
		return mig_note(m, r, errs, len); /* nothing more to ask of it */
	if (p->has_cpuinfo) {
		int rb = cpu_begin(t, &p->cpuinfo, &cpuk);

		cpu = rb == 0;
		r = mig_note(m, rb, errs, len);
	}
	if (r == 0)
		r = mig_note(m, check_criu(t), errs, len);
	if (!cpu)
		return r;
	if (r < 0) {
		criu_call_end(&cpuk);
		return r;
	}
	return mig_note(m, cpu_end(t, &cpuk), errs, len);
}

static int check_space(struct target *t, uint64_t need)
{
	struct statvfs sv;
	uint64_t avail, want;

	if (fstatvfs(t->m.imgfd, &sv) < 0)
		return mig_fail(&t->m, -errno, "statvfs %s: %m", t->m.dir);
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	/* the peer's estimate: saturate rather than wrap (2 * need + reserve
	 * bounds the sum) */
	want = need > (UINT64_MAX - SPACE_RESERVE) / 2 ? UINT64_MAX :
							 need + need / 10 + SPACE_RESERVE;
	if (avail < want)
		return mig_fail(&t->m, -ENOSPC,
				"not enough space in %s: %llu MiB free, about %llu MiB needed",
				t->so->workdir, (unsigned long long)(avail >> 20),
				(unsigned long long)(want >> 20));
	t->budget = avail - SPACE_RESERVE;
	return 0;
}

static int copy_pids(struct migration *m, Phaul__Preflight *p)
{
	m->pids = calloc(p->n_pids ? p->n_pids : 1, sizeof(int32_t));
	if (!m->pids)
		return -ENOMEM;
	if (p->n_pids) /* a check without a tree sends none: pids is NULL */
		memcpy(m->pids, p->pids, p->n_pids * sizeof(int32_t));
	m->nr_pids = p->n_pids;
	m->nr_procs = p->has_nr_procs && p->nr_procs <= p->n_pids ? p->nr_procs : p->n_pids;
	m->root_pid = p->n_pids ? p->pids[0] : 0;
	m->est_bytes = p->est_bytes;
	m->shell_job = p->has_shell_job && p->shell_job;
	return 0;
}

static int open_pagestore(struct target *t)
{
	_cleanup_close_ int fd = open(t->m.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return mig_fail(&t->m, -errno, "cannot open %s: %m", t->m.dir);
	r = pagestore_init(&t->ps, fd, t->m.pids, t->m.nr_procs);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot create the page store: %s", strerror(-r));
	t->live = true;
	t->remote = mode_postcopy(t->m.mode);
	t->ps.shmem = t->shmem;
	return 0;
}

/*
 * Stop mode: the source asks to stream the memory (Preflight.stream); the
 * restore is then lazy, as in live mode. Declined with PHAUL_STOP_STREAM=0,
 * and for a workload driver other than pid where userfaultfd is for root
 * only: a container may be restored in a user namespace of its own,
 * where a lazy restore needs vm.unprivileged_userfaultfd = 1.
 */
static void stream_decide(struct target *t, const Phaul__Preflight *p)
{
	struct migration *m = &t->m;
	const char *env = getenv("PHAUL_STOP_STREAM"), *drv = m->drv[0]->ops->name;
	_cleanup_free_ char *v = NULL;

	if (m->mode != MODE_STOP || !p->has_stream || !p->stream)
		return;
	if (env && !strcmp(env, "0"))
		snprintf(m->st.stop_why, sizeof(m->st.stop_why),
			 "PHAUL_STOP_STREAM=0 on the destination");
	else if (strcmp(drv, "pid") &&
		 !(read_file("/proc/sys/vm/unprivileged_userfaultfd", 64, &v, NULL) == 0 &&
		   v[0] == '1'))
		snprintf(m->st.stop_why, sizeof(m->st.stop_why),
			 "a %s workload may be restored in a user namespace, where a lazy "
			 "restore needs vm.unprivileged_userfaultfd = 1 on the destination",
			 drv);
	else
		m->stream = true;
	m->st.stop_path = m->stream ? "streamed" : "images";
}

static int reply(struct target *t, const char *error, uint32_t ver)
{
	Phaul__PreflightReply pr = PHAUL__PREFLIGHT_REPLY__INIT;

	pr.ok = error == NULL;
	pr.error = (char *)error;
	pr.has_criu_version = true;
	pr.criu_version = ver;
	if (!error) {
		pr.n_in_place = t->m.nr_in_place;
		pr.in_place = t->m.in_place;
		pr.has_stream = t->m.mode == MODE_STOP;
		pr.stream = t->m.stream;
		pr.stream_why = t->m.stream || !t->m.st.stop_why[0] ? NULL : t->m.st.stop_why;
	}
	return msg_send_preflight_reply(t->m.conn, &pr);
}

/*
 * Every check in order. With @errs (check-only) a failure is noted there
 * and the next check runs; without, the first failure ends the chain.
 */
static int run_checks(struct target *t, Phaul__Preflight *p, uint32_t *ver, char *errs, size_t len)
{
	struct migration *m = &t->m;
	int r = fault_point("dst.preflight");

	if (r < 0)
		mig_fail(m, r, "injected fault");
	r = mig_note(m, r, errs, len);
	if (r == 0)
		r = mig_note(m, check_mode(t, p->mode), errs, len);
	if (r == 0)
		r = mig_note(m, check_policy(t, p), errs, len);
	if (r == 0)
		r = mig_note(m, setup_drivers(t, p), errs, len);
	if (r == 0)
		r = mig_note(m, copy_pids(m, p), errs, len);
	if (r == 0)
		r = check_criu_cpu(t, p, ver, errs, len);
	if (r == 0)
		r = mig_note(m, mig_hook(m, HOOK_TARGET_CHECK), errs, len);
	if (r == 0)
		r = mig_note(m, check_space(t, p->est_bytes), errs, len);
	return r;
}

int target_preflight(struct target *t, Phaul__Preflight *p)
{
	struct migration *m = &t->m;
	uint32_t ver = 0;
	int r;

	r = run_checks(t, p, &ver, NULL, 0);
	if (r == 0)
		stream_decide(t, p);
	if (r == 0 && mig_lazy_dump(m))
		r = open_pagestore(t);
	if (r < 0) {
		/* say why, then end the session: the source has frozen nothing */
		reply(t, m->reason[0] ? m->reason : strerror(-r), ver);
		m->peer_said = true;
		return r;
	}
	/* shared memory may come prepared in memfds (store.h): our own CRIU
	 * restores, not a container manager's (podman) or tool's
	 * (lxc-checkpoint), which would not be told */
	if (t->live && t->shmem && !m->drv[0]->ops->restore_criu && !m->drv[0]->ops->restore_exec) {
		snprintf(t->shm_env, sizeof(t->shm_env), "CRIU_SHMEM_PREPARED=%s/shmem-prepared",
			 m->dir);
		t->criu.shmem_env = t->shm_env;
	}
	/* the restore's CRIU starts now: its exec is off the frozen path */
	if (m->mode != MODE_RESTART && criu_start(&t->criu) < 0)
		pr_warn("could not start CRIU ahead of the restore; it starts then");
	if (t->live)
		target_lazy_prestart(t);
	pr_info("preflight passed: %s%s of '%s' (%zu tasks, %llu MiB)", mode_name(m->mode),
		m->stream ? " (memory streamed, lazy restore)" : "",
		p->root_cmd ? p->root_cmd : "?", m->nr_pids,
		(unsigned long long)(p->est_bytes >> 20));
	return reply(t, NULL, ver);
}

int target_check_only(struct target *t, Phaul__Preflight *p)
{
	char errs[MSG_TEXT_MAX - 1] = "";
	uint32_t ver = 0;
	int r;

	run_checks(t, p, &ver, errs, sizeof(errs));
	r = reply(t, errs[0] ? errs : NULL, ver);
	pr_info("check only (phaul check) of '%s', %zu tasks: %s", p->root_cmd ? p->root_cmd : "-",
		t->m.nr_pids, errs[0] ? errs : "a migration would pass the preflight");
	/* undo what the drivers' checks set up; no outcome to remember */
	mig_hook(&t->m, HOOK_TARGET_ABORT);
	outcome_remove(t->so->workdir, t->hex);
	return r;
}
