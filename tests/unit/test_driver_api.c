/* SPDX-License-Identifier: MIT */
/*
 * The driver interface (drivers/driver.h) without the engine: this test
 * is linked with the objects of drivers/, common/, proto/ and criu/ only
 * (Makefile: test_driver_%), so it fails to link if a driver reaches into
 * engine/, source/, target/ or pages/. Each test builds the struct
 * drv_ctx a hook gets and plays the engine's part (struct drv_host).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "drivers/driver.h"
#include "drivers/fs/tunnel.h"
#include "proto/conn.h"
#include "proto/msg.h"

/* The engine's part: failures recorded as mig_fail does (the first one). */
struct fake_engine {
	int nr_fail;
	int err;
	char text[400];
	int fds[2];
	size_t nr_fds;
	struct conn *conn;
};

static int fake_fail(void *arg, int err, const char *text)
{
	struct fake_engine *e = arg;

	if (err >= 0)
		err = -EIO;
	if (e->nr_fail++ == 0) {
		e->err = err;
		snprintf(e->text, sizeof(e->text), "%s", text);
	}
	return err;
}

static int fake_add_criu_fd(void *arg, int fd)
{
	struct fake_engine *e = arg;

	if (e->nr_fds == 2)
		return -E2BIG;
	e->fds[e->nr_fds++] = fd;
	return 0;
}

static int fake_send(void *arg, Msg *msg)
{
	struct fake_engine *e = arg;

	return msg_send(e->conn, msg);
}

static int fake_recv(void *arg, Msg **msg)
{
	struct fake_engine *e = arg;

	return msg_recv(e->conn, msg);
}

static const struct drv_host fake_host = {
	.fail = fake_fail,
	.send = fake_send,
	.recv = fake_recv,
	.add_criu_fd = fake_add_criu_fd,
};

static const struct drv_tree no_tree;

static struct drv_ctx ctx_of(struct fake_engine *e, bool source, enum mig_mode mode)
{
	return (struct drv_ctx){ .source = source,
				 .mode = mode,
				 .dir = "/nonexistent",
				 .imgfd = -1,
				 .fs_index = -1,
				 .tree = &no_tree,
				 .host = &fake_host,
				 .arg = e };
}

/* A child in a session of its own (no controlling terminal) that waits. */
static pid_t spawn_sleeper(void)
{
	int p[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setsid();
		close(p[1]); /* there: the parent's read returns */
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void free_tree(struct drv_tree *t)
{
	free(t->pids);
	free(t->img_pids);
}

/* prepare returns the tree; nothing is written anywhere else. */
static void pid_prepare_returns_the_tree(void **s)
{
	struct fake_engine e = { 0 };
	struct drv_ctx ctx = ctx_of(&e, true, MODE_LIVE);
	struct drv_tree t = { 0 };
	struct driver *d;
	char spec[32];
	pid_t child = spawn_sleeper();

	snprintf(spec, sizeof(spec), "pid:%d", child);
	assert_int_equal(driver_new(DRV_HTYPE, spec, &d), 0);
	assert_int_equal(driver_prepare(d, &ctx, &t), 0);
	assert_int_equal(e.nr_fail, 0);
	assert_int_equal(t.root, child);
	assert_int_equal(t.nr_procs, 1);
	assert_int_equal(t.nr_pids, 1);
	assert_non_null(t.pids);
	assert_int_equal(t.pids[0], child);
	assert_null(t.img_pids); /* no PID namespace of its own */
	assert_true(t.est_bytes > 0);
	assert_false(t.shell_job); /* setsid(): no controlling terminal */
	free_tree(&t);
	driver_free(d);
	reap(child);
}

static void pid_prepare_failures_reach_the_engine(void **s)
{
	struct fake_engine e = { 0 };
	struct drv_ctx ctx = ctx_of(&e, true, MODE_STOP);
	struct drv_tree t = { 0 };
	struct driver *d;
	char spec[32];
	pid_t gone = spawn_sleeper();

	reap(gone);
	assert_int_equal(driver_new(DRV_HTYPE, "pid:1", &d), 0);
	assert_int_equal(driver_prepare(d, &ctx, &t), -EINVAL);
	assert_int_equal(e.err, -EINVAL);
	assert_string_equal(e.text, "refusing to migrate PID 1");
	/* the driver's reason first, then driver_prepare's own */
	assert_int_equal(e.nr_fail, 2);
	driver_free(d);
	free_tree(&t);

	memset(&e, 0, sizeof(e));
	memset(&t, 0, sizeof(t));
	snprintf(spec, sizeof(spec), "pid:%d", gone);
	assert_int_equal(driver_new(DRV_HTYPE, spec, &d), 0);
	assert_int_equal(driver_prepare(d, &ctx, &t), -ESRCH);
	assert_int_equal(e.err, -ESRCH);
	assert_non_null(strstr(e.text, "no process with PID"));
	free_tree(&t);
	driver_free(d);
}

/* The destination's check reads the tree the context gives. */
static void pid_target_check_reads_the_tree(void **s)
{
	struct fake_engine e = { 0 };
	struct drv_ctx ctx = ctx_of(&e, false, MODE_STOP);
	int32_t pids[1] = { getpid() };
	struct drv_tree t = { .root = getpid(), .pids = pids, .nr_pids = 1, .nr_procs = 1 };
	struct driver *d;

	ctx.tree = &t;
	assert_int_equal(driver_new(DRV_HTYPE, "pid", &d), 0);
	assert_int_equal(driver_call(d, HOOK_TARGET_CHECK, &ctx), -EEXIST);
	assert_non_null(strstr(e.text, "is taken on the destination"));

	memset(&e, 0, sizeof(e));
	ctx.mode = MODE_RESTART; /* no CRIU: the PIDs do not matter */
	assert_int_equal(driver_call(d, HOOK_TARGET_CHECK, &ctx), 0);
	assert_int_equal(e.nr_fail, 0);

	ctx.mode = MODE_STOP;
	pids[0] = spawn_sleeper();
	reap(pids[0]); /* free now (PIDs are not reused this fast) */
	assert_int_equal(driver_call(d, HOOK_TARGET_CHECK, &ctx), 0);
	assert_int_equal(e.nr_fail, 0);
	driver_free(d);
}

/* A driver of the test's own, to see what driver_call does with it. */
static int fake_hook_err;

static int fake_hook(struct driver *d, const struct drv_ctx *ctx)
{
	return fake_hook_err;
}

static int fake_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree)
{
	tree->root = 42;
	tree->est_bytes = 4096;
	return 0;
}

static const struct driver_ops fake_ops = {
	.name = "fake",
	.kind = DRV_HTYPE,
	.prepare = fake_prepare,
	.hooks = {
		[HOOK_FROZEN] = fake_hook,
		[HOOK_MIGRATION_COMPLETE] = fake_hook,
		[HOOK_TARGET_RESTORED] = fake_hook,
		[HOOK_TARGET_COMMITTED] = fake_hook,
	},
};

static void driver_call_reports_failures_before_the_commit(void **s)
{
	struct fake_engine e = { 0 };
	struct drv_ctx ctx = ctx_of(&e, true, MODE_STOP);
	struct driver d = { .ops = &fake_ops };
	struct drv_tree t = { 0 };

	fake_hook_err = -EIO;
	assert_int_equal(driver_call(&d, HOOK_FROZEN, &ctx), -EIO);
	assert_int_equal(e.nr_fail, 1);
	assert_string_equal(e.text, "fake driver: frozen failed");

	/* past the commit: logged, not the migration's failure */
	memset(&e, 0, sizeof(e));
	assert_int_equal(driver_call(&d, HOOK_MIGRATION_COMPLETE, &ctx), -EIO);
	assert_int_equal(e.nr_fail, 0);
	/* the destination: held, the failure is the migration's; once the
	 * source committed, it is only logged */
	ctx.source = false;
	assert_int_equal(driver_call(&d, HOOK_TARGET_RESTORED, &ctx), -EIO);
	assert_int_equal(e.nr_fail, 1);
	memset(&e, 0, sizeof(e));
	assert_int_equal(driver_call(&d, HOOK_TARGET_COMMITTED, &ctx), -EIO);
	assert_int_equal(e.nr_fail, 0);
	assert_string_equal(driver_hook_name(HOOK_TARGET_COMMITTED), "target_committed");
	ctx.source = true;

	/* no hook: nothing to do */
	assert_int_equal(driver_call(&d, HOOK_TARGET_CHECK, &ctx), 0);
	fake_hook_err = 0;
	assert_int_equal(driver_call(&d, HOOK_FROZEN, &ctx), 0);
	assert_int_equal(e.nr_fail, 0);

	/* prepare is not a hook driver_call runs; driver_prepare returns it */
	assert_int_equal(driver_call(&d, HOOK_PREPARE, &ctx), 0);
	assert_int_equal(t.root, 0);
	assert_int_equal(driver_prepare(&d, &ctx, &t), 0);
	assert_int_equal(t.root, 42);
	assert_int_equal(t.est_bytes, 4096);
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void services_without_an_engine(void **s)
{
	struct drv_ctx ctx = { .tree = &no_tree, .fs_index = -1 };
	struct fake_engine e = { 0 };
	Msg msg = PHAUL__MSG__INIT;
	Msg *in = NULL;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	assert_int_equal(drv_fail(&ctx, -ENOENT, "x %d", 1), -ENOENT);
	assert_int_equal(drv_fail(&ctx, 0, "not an errno"), -EIO);
	assert_int_equal(drv_send(&ctx, &msg), -ENOTSUP);
	assert_int_equal(drv_recv(&ctx, &in), -ENOTSUP);
	assert_int_equal(drv_expect(&ctx, PHAUL__MSG__BODY_FS_SYNC_DONE, &in), -ENOTSUP);
	assert_int_equal(drv_add_in_place(&ctx, "/x"), -ENOTSUP);
	assert_false(drv_in_place(&ctx, "/x"));
	assert_false(drv_storage_brings(&ctx, "/x"));
	assert_int_equal(drv_criu_failed(&ctx, "restore.log", "restore"), -EIO);
	/* an fd nobody keeps is closed, not leaked */
	assert_true(fd >= 0);
	assert_int_equal(drv_add_criu_fd(&ctx, fd), -ENOTSUP);
	assert_false(fd_open(fd));

	/* with an engine: it keeps two, refuses the third (and that is closed) */
	ctx = ctx_of(&e, false, MODE_STOP);
	for (int i = 0; i < 3; i++) {
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_int_equal(drv_add_criu_fd(&ctx, fd), i < 2 ? 0 : -E2BIG);
		assert_true(fd_open(fd) == (i < 2));
	}
	close(e.fds[0]);
	close(e.fds[1]);
}

static void storage_brings_paths_under_its_directory(void **s)
{
	struct driver *drv[3];

	assert_int_equal(driver_new(DRV_HTYPE, "pid:100", &drv[0]), 0);
	assert_int_equal(driver_new(DRV_FS, "shared", &drv[1]), 0);
	assert_int_equal(driver_new(DRV_FS, "sync:/srv/app", &drv[2]), 0);
	assert_true(driver_storage_brings(drv, 3, "/srv/app"));
	assert_true(driver_storage_brings(drv, 3, "/srv/app/data/x"));
	assert_false(driver_storage_brings(drv, 3, "/srv/apple"));
	assert_false(driver_storage_brings(drv, 3, "/srv"));
	assert_false(driver_storage_brings(drv, 2, "/srv/app/data"));
	for (int i = 0; i < 3; i++)
		driver_free(drv[i]);
}

/* The sync driver's target_msg: a message it does not take fails the
 * migration through the context, with the driver's reason. */
static void sync_target_msg_refuses_other_messages(void **s)
{
	struct fake_engine e = { 0 };
	struct drv_ctx ctx = ctx_of(&e, false, MODE_STOP);
	Phaul__Commit c = PHAUL__COMMIT__INIT;
	Msg msg = PHAUL__MSG__INIT;
	struct driver *d;

	msg.body_case = PHAUL__MSG__BODY_COMMIT;
	msg.commit = &c;
	ctx.fs_index = 0;
	assert_int_equal(driver_new(DRV_FS, "sync:/srv/app", &d), 0);
	assert_int_equal(d->ops->target_msg(d, &ctx, &msg), -EPROTO);
	assert_int_equal(e.nr_fail, 1);
	assert_non_null(strstr(e.text, "unexpected"));
	driver_free(d);
}

/* Two drivers' channels, each over one end of a socket pair, carry a
 * tunnel both ways: what goes into one local end comes out of the other. */
struct side {
	struct fake_engine e;
	struct drv_ctx ctx;
	int local[2]; /* [0] the tunnel's, [1] the test's */
	struct tunnel_stats ts;
	int r;
};

static void *run_tunnel(void *arg)
{
	struct side *sd = arg;

	sd->r = tunnel_run(&sd->ctx, sd->local[0], &sd->ts);
	return NULL;
}

static void exchange(struct side *from, struct side *to, const char *text)
{
	char buf[64] = "";
	size_t n = 0;
	ssize_t k;

	assert_int_equal(write(from->local[1], text, strlen(text)), (ssize_t)strlen(text));
	shutdown(from->local[1], SHUT_WR);
	while ((k = read(to->local[1], buf + n, sizeof(buf) - 1 - n)) > 0)
		n += k;
	assert_string_equal(buf, text);
}

static void channel_carries_a_tunnel(void **s)
{
	struct side a = { 0 }, b = { 0 };
	pthread_t ta, tb;
	int sp[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(conn_from_fd(sp[0], &a.e.conn), 0);
	assert_int_equal(conn_from_fd(sp[1], &b.e.conn), 0);
	a.ctx = ctx_of(&a.e, true, MODE_STOP);
	b.ctx = ctx_of(&b.e, false, MODE_STOP);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a.local), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b.local), 0);
	assert_int_equal(pthread_create(&ta, NULL, run_tunnel, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, run_tunnel, &b), 0);
	exchange(&a, &b, "from the source");
	exchange(&b, &a, "and back");
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.r, 0);
	assert_int_equal(b.r, 0);
	assert_int_equal(a.ts.bytes_out, strlen("from the source"));
	assert_int_equal(b.ts.bytes_in, strlen("from the source"));
	assert_int_equal(b.ts.bytes_out, strlen("and back"));
	assert_int_equal(a.e.nr_fail + b.e.nr_fail, 0);
	for (int i = 0; i < 2; i++) {
		close(a.local[i]);
		close(b.local[i]);
	}
	conn_free(a.e.conn);
	conn_free(b.e.conn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pid_prepare_returns_the_tree),
		cmocka_unit_test(pid_prepare_failures_reach_the_engine),
		cmocka_unit_test(pid_target_check_reads_the_tree),
		cmocka_unit_test(driver_call_reports_failures_before_the_commit),
		cmocka_unit_test(services_without_an_engine),
		cmocka_unit_test(storage_brings_paths_under_its_directory),
		cmocka_unit_test(sync_target_msg_refuses_other_messages),
		cmocka_unit_test(channel_carries_a_tunnel),
	};

	log_init("test_driver_api", LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
