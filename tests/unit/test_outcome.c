/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for target/outcome: the answer to an outcome query, from the
 * session's record in the work directory. A record that says
 * "committing" or "pending" is decided by whether its process (the same
 * one: PID and start time) still lives.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "target/outcome.h"

static char workdir[] = "/tmp/phaul-outcome.XXXXXX";
static struct conn *srv, *cli;

static int setup(void **state)
{
	int sv[2];

	(void)state;
	assert_non_null(mkdtemp(workdir));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(conn_from_fd(sv[0], &srv), 0);
	assert_int_equal(conn_from_fd(sv[1], &cli), 0);
	assert_int_equal(conn_set_timeout(cli, 5000), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	conn_free(srv);
	conn_free(cli);
	return rm_rf(workdir) < 0 ? -1 : 0;
}

/* Session id @n (all bytes @n); with @state, its record names @pid. */
static void record(uint8_t id[PHAUL_SESSION_ID_LEN], uint8_t n, const char *state, int pid)
{
	char hex[2 * PHAUL_SESSION_ID_LEN + 1];

	memset(id, n, PHAUL_SESSION_ID_LEN);
	session_hex(id, hex);
	if (state)
		assert_int_equal(outcome_write(workdir, hex, state, pid), 0);
}

/* What the source hears when it asks about @id. */
static Phaul__Outcome__State ask(const uint8_t *id)
{
	Phaul__Outcome__State s;
	Msg *msg = NULL;

	assert_int_equal(outcome_answer(srv, workdir, id), 0);
	assert_int_equal(msg_recv(cli, &msg), 0);
	assert_int_equal(msg->body_case, PHAUL__MSG__BODY_OUTCOME);
	s = msg->outcome->state;
	msg_free(msg);
	return s;
}

/* A process that has ended, and was reaped. */
static pid_t dead_pid(const char *state, uint8_t id[PHAUL_SESSION_ID_LEN], uint8_t n)
{
	pid_t child = fork();

	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	record(id, n, state, child);
	assert_int_equal(waitpid(child, NULL, 0), child);
	return child;
}

static void test_decided(void **state)
{
	uint8_t id[PHAUL_SESSION_ID_LEN];

	(void)state;
	record(id, 1, "committed", 0);
	assert_int_equal(ask(id), PHAUL__OUTCOME__STATE__COMMITTED);
	record(id, 2, "aborted", 0);
	assert_int_equal(ask(id), PHAUL__OUTCOME__STATE__ABORTED);
	/* no record, or one with a state nobody writes */
	record(id, 3, NULL, 0);
	assert_int_equal(ask(id), PHAUL__OUTCOME__STATE__UNKNOWN);
	record(id, 4, "restoring", getpid());
	assert_int_equal(ask(id), PHAUL__OUTCOME__STATE__UNKNOWN);
}

/*
 * committing: CRIU was told to resume the tree, whose life tells;
 * pending: the session runs on (ask again), or died and rolled back.
 */
static void test_by_process(void **state)
{
	static const struct {
		const char *state;
		Phaul__Outcome__State alive;
	} cases[] = {
		{ "committing", PHAUL__OUTCOME__STATE__COMMITTED },
		{ "pending", PHAUL__OUTCOME__STATE__PENDING },
	};
	uint8_t id[PHAUL_SESSION_ID_LEN];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		record(id, (uint8_t)(10 + 2 * i), cases[i].state, getpid());
		assert_int_equal(ask(id), cases[i].alive);
		dead_pid(cases[i].state, id, (uint8_t)(11 + 2 * i));
		assert_int_equal(ask(id), PHAUL__OUTCOME__STATE__ABORTED);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decided),
		cmocka_unit_test(test_by_process),
	};

	log_init("test", LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("outcome", tests, setup, teardown);
}
