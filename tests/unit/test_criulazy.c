/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for criu_lazy_pages_spawn/go/cancel (criu/criu.c): a
 * criu lazy-pages started ahead of its restore, let go or ended; and for
 * criu_pick_network_lock, which avoids iptables where it is missing.
 *
 * CRIU is replaced ($PHAUL_CRIU) by a shell script that behaves as the
 * patched one (scripts/criu-patches/0007) or as an unpatched one, and
 * notes what it was told in a file of the test's temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "criu/criu.h"

static char dir[] = "/tmp/phaul-criulazy.XXXXXX";
static char note[4200];

/*
 * patched: wait for the go byte on $CRIU_LAZY_WAIT_FD, note "go" (and
 * " bulk" if told CRIU_LAZY_BULK=1, patch 0015) or "eof", and on "go" say it listens on fd 101 and stay until killed.
 * unpatched: ignore the variable, fail at once as with no images.
 */
static const char fake_patched[] =
	"#!/bin/bash\n"
	"[ \"$1\" = lazy-pages ] || exit 2\n"
	"[ \"$CRIU_LAZY_WAIT_FD\" = 102 ] || { echo noenv >\"$NOTE\"; exit 3; }\n"
	"b=$(head -c 1 <&102)\n"
	"if [ \"$b\" = g ]; then echo \"go${CRIU_LAZY_BULK:+ bulk=$CRIU_LAZY_BULK}\" >\"$NOTE\"; else echo eof >\"$NOTE\"; exit 1; fi\n"
	"printf x >&101\n"
	"exec sleep 60\n";
static const char fake_unpatched[] = "#!/bin/bash\necho started >\"$NOTE\"\nexit 1\n";

static void write_fake(const char *text)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/criu", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
	setenv("PHAUL_CRIU", path, 1);
}

/* The fake's note, "" if none (yet) */
static const char *read_note(void)
{
	static char text[64];
	FILE *f = fopen(note, "r");

	text[0] = '\0';
	if (f) {
		if (!fgets(text, sizeof(text), f))
			text[0] = '\0';
		fclose(f);
	}
	text[strcspn(text, "\n")] = '\0';
	return text;
}

static int setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(note, sizeof(note), "%s/note", dir);
	setenv("NOTE", note, 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[4300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* a socketpair standing for the page server's; *ours kept, theirs given */
static int spawn_fake(struct criu_lazy *l, bool bulk, int *ours)
{
	int sp[2], r;

	unlink(note);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	r = criu_lazy_pages_spawn(dir, dir, sp[1], bulk, l);
	close(sp[1]);
	*ours = sp[0];
	return r;
}

static void go_and_check(bool bulk, const char *noted)
{
	struct criu_lazy l = CRIU_LAZY_INIT;
	int sk, status;
	pid_t pid;

	write_fake(fake_patched);
	assert_int_equal(spawn_fake(&l, bulk, &sk), 0);
	assert_true(l.pid > 0);
	/* it waits: nothing noted before the go */
	usleep(100 * 1000);
	assert_string_equal(read_note(), "");
	pid = l.pid;
	assert_int_equal(criu_lazy_pages_go(&l), 0);
	assert_int_equal(l.pid, pid);
	assert_int_equal(l.go, -1);
	assert_int_equal(l.status, -1);
	assert_string_equal(read_note(), noted);
	/* still running: it serves the restore from now on */
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(sk);
}

static void test_go(void **state)
{
	(void)state;
	go_and_check(false, "go");
}

/* live mode's fill from the local store: the bulk transfer asked for */
static void test_go_bulk(void **state)
{
	(void)state;
	go_and_check(true, "go bulk=1");
}

static void test_cancel(void **state)
{
	struct criu_lazy l = CRIU_LAZY_INIT;
	int sk;
	pid_t pid;

	(void)state;
	write_fake(fake_patched);
	assert_int_equal(spawn_fake(&l, false, &sk), 0);
	pid = l.pid;
	criu_lazy_pages_cancel(&l);
	assert_int_equal(l.pid, 0);
	assert_int_equal(l.go, -1);
	/* reaped: no such child any more */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	/* cancelling twice, or one never started, is harmless */
	criu_lazy_pages_cancel(&l);
	close(sk);
}

/* an unpatched CRIU reads the images at once and fails: go says so */
static void test_unpatched(void **state)
{
	struct criu_lazy l = CRIU_LAZY_INIT;
	int sk;
	pid_t pid;

	(void)state;
	write_fake(fake_unpatched);
	assert_int_equal(spawn_fake(&l, false, &sk), 0);
	pid = l.pid;
	usleep(100 * 1000); /* it has exited by now: the go byte finds no reader */
	assert_int_equal(criu_lazy_pages_go(&l), -EIO);
	assert_int_equal(l.pid, 0);
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_string_equal(read_note(), "started");
	close(sk);
}

/* started the old way (criu_lazy_pages_start): not told to wait */
static void test_start_not_waiting(void **state)
{
	int sp[2];
	pid_t pid = 0;

	(void)state;
	write_fake(fake_patched);
	unlink(note);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(criu_lazy_pages_start(dir, dir, sp[1], true, &pid), -EIO);
	assert_string_equal(read_note(), "noenv");
	close(sp[0]);
	close(sp[1]);
}

static void touch_exec(const char *name)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	close(fd);
}

static void lock_is(bool has, CriuNetworkLockMethod want)
{
	CriuOpts o = CRIU_OPTS__INIT;

	criu_pick_network_lock(&o);
	assert_int_equal(o.has_network_lock, has);
	if (has)
		assert_int_equal(o.network_lock, want);
}

static void test_network_lock(void **state)
{
	CriuOpts o = CRIU_OPTS__INIT;
	char *old = strdup(getenv("PATH") ?: "");

	(void)state;
	setenv("PATH", dir, 1);
	/* neither: nftables */
	lock_is(true, CRIU_NETWORK_LOCK_METHOD__NFTABLES);
	/* iptables-restore alone: IPv6 connections would still fail */
	touch_exec("iptables-restore");
	lock_is(true, CRIU_NETWORK_LOCK_METHOD__NFTABLES);
	/* both, in the second directory of PATH: CRIU's default */
	touch_exec("ip6tables-restore");
	setenv("PATH", "/nonexistent::/tmp/x", 1);
	lock_is(true, CRIU_NETWORK_LOCK_METHOD__NFTABLES);
	{
		char path[4300];

		snprintf(path, sizeof(path), "/nonexistent:%s", dir);
		setenv("PATH", path, 1);
	}
	lock_is(false, 0);
	/* a method chosen already (a container driver's) is kept */
	setenv("PATH", "/nonexistent", 1);
	o.has_network_lock = true;
	o.network_lock = CRIU_NETWORK_LOCK_METHOD__SKIP;
	criu_pick_network_lock(&o);
	assert_int_equal(o.network_lock, CRIU_NETWORK_LOCK_METHOD__SKIP);
	setenv("PATH", old, 1);
	free(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_go),
		cmocka_unit_test(test_go_bulk),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_unpatched),
		cmocka_unit_test(test_start_not_waiting),
		cmocka_unit_test(test_network_lock),
	};

	signal(SIGPIPE, SIG_IGN); /* as phaul serve does */
	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
