/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the scratch directories of engine/session.c: a sweep
 * removes what dead owners left and never a live session's directory,
 * even one whose owner is being written while another phaul sweeps; and
 * outcome records, whose PID counts only while it names the same process.
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
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include <cmocka.h>

#include "common/proc.h"
#include "common/util.h"
#include "engine/session.h"

static char workdir[] = "/tmp/phaul-session.XXXXXX";

static int setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(workdir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return rm_rf(workdir) < 0 ? -1 : 0;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* a session directory as a phaul that died would leave it */
static void make_left(const char *name, bool owner, time_t age)
{
	char path[4200];
	struct utimbuf t = { time(NULL) - age, time(NULL) - age };
	int fd;

	snprintf(path, sizeof(path), "%s/%s", workdir, name);
	assert_int_equal(mkdir(path, 0700), 0);
	if (owner) {
		snprintf(path, sizeof(path), "%s/%s/owner", workdir, name);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "1 1\n", 4), 4);
		close(fd);
		snprintf(path, sizeof(path), "%s/%s", workdir, name);
	}
	assert_int_equal(utime(path, &t), 0);
}

static void new_session(struct migration *m)
{
	memset(m, 0, sizeof(*m));
	m->imgfd = -1;
	assert_int_equal(getrandom(m->session_id, sizeof(m->session_id), 0),
			 (ssize_t)sizeof(m->session_id));
	assert_int_equal(session_mkdirs(m, workdir, "out-"), 0);
	assert_int_equal(session_write_owner(m), 0);
}

static void end_session(struct migration *m)
{
	session_rmdirs(m);
	free(m->dir);
	m->dir = NULL;
}

static void test_sweep_dead(void **state)
{
	struct migration live;
	char path[4200];

	(void)state;
	new_session(&live);
	make_left("out-dead", true, 5);	   /* an owner nobody holds */
	make_left("out-old", false, 3600); /* no owner, long ago */
	make_left("out-young", false, 5);  /* no owner yet: being made */
	make_left("in-other", true, 3600); /* another prefix */
	session_sweep(workdir, "out-");
	snprintf(path, sizeof(path), "%s/out-dead", workdir);
	assert_false(exists(path));
	snprintf(path, sizeof(path), "%s/out-old", workdir);
	assert_false(exists(path));
	snprintf(path, sizeof(path), "%s/out-young", workdir);
	assert_true(exists(path));
	snprintf(path, sizeof(path), "%s/in-other", workdir);
	assert_true(exists(path));
	assert_true(exists(live.dir));
	/* its owner file has its name and no temporary is left */
	snprintf(path, sizeof(path), "%s/owner", live.dir);
	assert_true(exists(path));
	snprintf(path, sizeof(path), "%s/owner.tmp", live.dir);
	assert_false(exists(path));
	end_session(&live);
}

/*
 * Another phaul sweeps without pause while sessions are made here: none
 * of them may lose its directory (the owner file was once visible
 * before it was locked, and a sweep in that moment removed it all).
 */
static void test_sweep_races_owner(void **state)
{
	struct migration m;
	pid_t pid;
	int status, i, lost = 0;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;)
			session_sweep(workdir, "out-");
	}
	for (i = 0; i < 2000; i++) {
		memset(&m, 0, sizeof(m));
		m.imgfd = -1;
		m.session_id[0] = i & 0xff;
		m.session_id[1] = i >> 8;
		if (session_mkdirs(&m, workdir, "out-") < 0 || session_write_owner(&m) < 0 ||
		    !exists(m.dir))
			lost++;
		end_session(&m);
	}
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(lost, 0);
}

static void write_record(const char *hex, const char *text)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/outcomes", workdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/outcomes/%s", workdir, hex);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_outcome_records(void **state)
{
	char st[32], text[128];
	uint64_t start, mine;
	int pid;
	pid_t child;

	(void)state;
	assert_int_equal(proc_start_time(getpid(), &mine), 0);
	assert_int_equal(outcome_write(workdir, "aa", "committing", getpid()), 0);
	assert_int_equal(outcome_read(workdir, "aa", st, sizeof(st), &pid, &start), 0);
	assert_string_equal(st, "committing");
	assert_int_equal(pid, getpid());
	assert_int_equal(start, mine);
	assert_true(outcome_pid_alive(pid, start));
	/* the same PID, started at another time: a later process, not ours */
	assert_false(outcome_pid_alive(pid, start + 1));
	/* no PID */
	assert_int_equal(outcome_write(workdir, "bb", "aborted", 0), 0);
	assert_int_equal(outcome_read(workdir, "bb", st, sizeof(st), &pid, &start), 0);
	assert_string_equal(st, "aborted");
	assert_int_equal(pid, 0);
	assert_false(outcome_pid_alive(pid, start));
	/* a process that has ended */
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(outcome_write(workdir, "cc", "pending", child), 0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_int_equal(outcome_read(workdir, "cc", st, sizeof(st), &pid, &start), 0);
	assert_false(outcome_pid_alive(pid, start));
	/* a record of an older phaul: "STATE PID", the PID alone decides */
	snprintf(text, sizeof(text), "committed %d\n", getpid());
	write_record("dd", text);
	assert_int_equal(outcome_read(workdir, "dd", st, sizeof(st), &pid, &start), 0);
	assert_int_equal(pid, getpid());
	assert_int_equal(start, 0);
	assert_true(outcome_pid_alive(pid, start));
	/* malformed: no state, a state too long, garbage for a PID */
	write_record("ee", "\n");
	assert_int_equal(outcome_read(workdir, "ee", st, sizeof(st), &pid, &start), -EINVAL);
	write_record("ff", "0123456789012345678901234567890123456789 1 1\n");
	assert_int_equal(outcome_read(workdir, "ff", st, sizeof(st), &pid, &start), -EINVAL);
	write_record("gg", "pending x y\n");
	assert_int_equal(outcome_read(workdir, "gg", st, sizeof(st), &pid, &start), 0);
	assert_int_equal(pid, 0);
	assert_int_equal(outcome_read(workdir, "none", st, sizeof(st), &pid, &start), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sweep_dead),
		cmocka_unit_test(test_sweep_races_owner),
		cmocka_unit_test(test_outcome_records),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
