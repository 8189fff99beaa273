/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for criu_lazy_pages_spawn/go/cancel (criu/criu.c): a
 * criu lazy-pages started ahead of its restore, let go or ended; and for
 * criu_log_error and criu_resp_error, which find why CRIU failed.
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
 * patched: wait for the go byte on $CRIU_LAZY_WAIT_FD, note "go" or
 * "eof", and on "go" say it listens on fd 101 and stay until killed.
 * unpatched: ignore the variable, fail at once as with no images.
 */
static const char fake_patched[] =
	"#!/bin/bash\n"
	"[ \"$1\" = lazy-pages ] || exit 2\n"
	"[ \"$CRIU_LAZY_WAIT_FD\" = 102 ] || { echo noenv >\"$NOTE\"; exit 3; }\n"
	"b=$(head -c 1 <&102)\n"
	"if [ \"$b\" = g ]; then echo go >\"$NOTE\"; else echo eof >\"$NOTE\"; exit 1; fi\n"
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
static int spawn_fake(struct criu_lazy *l, int *ours)
{
	int sp[2], r;

	unlink(note);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	r = criu_lazy_pages_spawn(dir, dir, sp[1], l);
	close(sp[1]);
	*ours = sp[0];
	return r;
}

static void test_go(void **state)
{
	struct criu_lazy l = CRIU_LAZY_INIT;
	int sk, status;
	pid_t pid;

	(void)state;
	write_fake(fake_patched);
	assert_int_equal(spawn_fake(&l, &sk), 0);
	assert_true(l.pid > 0);
	/* it waits: nothing noted before the go */
	usleep(100 * 1000);
	assert_string_equal(read_note(), "");
	pid = l.pid;
	assert_int_equal(criu_lazy_pages_go(&l), 0);
	assert_int_equal(l.pid, pid);
	assert_int_equal(l.go, -1);
	assert_int_equal(l.status, -1);
	assert_string_equal(read_note(), "go");
	/* still running: it serves the restore from now on */
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(sk);
}

static void test_cancel(void **state)
{
	struct criu_lazy l = CRIU_LAZY_INIT;
	int sk;
	pid_t pid;

	(void)state;
	write_fake(fake_patched);
	assert_int_equal(spawn_fake(&l, &sk), 0);
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
	assert_int_equal(spawn_fake(&l, &sk), 0);
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
	assert_int_equal(criu_lazy_pages_start(dir, dir, sp[1], &pid), -EIO);
	assert_string_equal(read_note(), "noenv");
	close(sp[0]);
	close(sp[1]);
}

/* A CRIU log NAME in dir holding text (none if text is NULL), in path. */
static void write_log(char *path, size_t len, const char *name, const char *text)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	unlink(path);
	if (!text)
		return;
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void log_is(const char *text, const char *want)
{
	char path[4200], why[256];

	write_log(path, sizeof(path), "check.log", text);
	criu_log_error(path, why, sizeof(why));
	if (want)
		assert_string_equal(why, want);
	else /* no log: it names the file */
		assert_int_equal(strncmp(why, "see ", 4), 0);
}

static void test_log_error(void **state)
{
	(void)state;
	/* the first error, not what followed from it */
	log_is("(00.001) Loaded kdat\n(00.002) Error (criu/mount.c:12): a\n"
	       "(00.003) Error (criu/cr-check.c:9): b\nLooks bad\n",
	       "Error (criu/mount.c:12): a");
	/* no error line: the last line, trailing newlines dropped */
	log_is("(00.001) x\nThe sock diag infrastructure is incomplete.\n\n",
	       "The sock diag infrastructure is incomplete.");
	log_is("one line, no newline", "one line, no newline");
	/* a long line is cut to the buffer */
	char lng[400], cut[256];
	memset(lng, 'x', sizeof(lng) - 2);
	memcpy(lng, "Error (x.c:1): ", 15);
	lng[sizeof(lng) - 2] = '\n';
	lng[sizeof(lng) - 1] = '\0';
	memcpy(cut, lng, sizeof(cut) - 1);
	cut[sizeof(cut) - 1] = '\0';
	log_is(lng, cut);
	/* an error CRIU goes on from is not the cause */
	log_is("(00.000) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
	       "Operation not permitted\n(00.020) Error (criu/mem.c:5): c\n",
	       "Error (criu/mem.c:5): c");
	log_is("Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: x\n"
	       "(00.1) Dumping finished\n",
	       "(00.1) Dumping finished");
	/* an error whose cause CRIU does not name gets a hint */
	log_is("Error (criu/cr-dump.c:371): Can't get rlimit 0: Operation not permitted\n",
	       "Error (criu/cr-dump.c:371): Can't get rlimit 0: Operation not permitted"
	       " (the limits of another uid's process need CAP_SYS_RESOURCE, or a CRIU with"
	       " phaul's patch 0012)");
	log_is(NULL, NULL);
	log_is("", NULL);
	log_is("\n\n", NULL);
}

static void resp_is(const char *errmsg, int err, const char *log, const char *want)
{
	CriuResp resp = CRIU_RESP__INIT;
	char path[4200], why[256];

	write_log(path, sizeof(path), "dump.log", log);
	resp.cr_errmsg = (char *)errmsg;
	resp.has_cr_errno = err != 0;
	resp.cr_errno = err;
	criu_resp_error(&resp, log ? path : NULL, why, sizeof(why));
	assert_string_equal(why, want);
}

static void test_resp_error(void **state)
{
	(void)state;
	/* CRIU's first error, without its newline */
	resp_is("Error (criu/mem.c:5): c\n", 0, "Error (criu/x.c:1): other\n",
		"Error (criu/mem.c:5): c");
	/* its first error is one CRIU went on from: the log says why */
	resp_is("Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
		"Operation not permitted\n", EPERM,
		"Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: x\n"
		"Error (criu/cr-dump.c:371): Can't get rlimit 0: Operation not permitted\n",
		"Error (criu/cr-dump.c:371): Can't get rlimit 0: Operation not permitted (the limits "
		"of another uid's process need CAP_SYS_RESOURCE, or a CRIU with phaul's patch 0012)");
	/* no message: the log, else errno */
	resp_is(NULL, EPERM, "(00.1) Error (criu/a.c:2): d\n", "Error (criu/a.c:2): d");
	resp_is("", ENOENT, NULL, strerror(ENOENT));
	resp_is(NULL, 0, NULL, "see CRIU's log");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_go),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_unpatched),
		cmocka_unit_test(test_start_not_waiting),
		cmocka_unit_test(test_log_error),
		cmocka_unit_test(test_resp_error),
	};

	signal(SIGPIPE, SIG_IGN); /* as phaul serve does */
	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, setup, teardown);
}
