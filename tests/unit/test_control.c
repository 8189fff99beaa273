/* SPDX-License-Identifier: MIT */
/*
 * control: the request parser of the control socket (untrusted input:
 * exactly the documented requests pass, anything else is refused) and
 * the socket itself: status answered, a cancel for another migration
 * refused, a cancel before the commit point taken (and then the commit
 * refused), a cancel after it refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/util.h"
#include "engine/control.h"

#define ID "0123456789abcdef0123456789abcdef"

static int parse(const char *s, struct control_req *rq)
{
	return control_parse(s, strlen(s), rq);
}

static void valid(void **s)
{
	struct control_req rq;

	assert_int_equal(parse("{\"v\":1,\"op\":\"status\"}", &rq), 0);
	assert_int_equal(rq.op, CONTROL_STATUS);
	assert_int_equal(parse("{\"v\":1,\"op\":\"status\"}\n", &rq), 0);
	assert_int_equal(parse(" { \"op\" : \"cancel\", \"id\":\"" ID "\", \"v\": 1 }\n", &rq), 0);
	assert_int_equal(rq.op, CONTROL_CANCEL);
	assert_string_equal(rq.id, ID);
}

static void invalid(void **s)
{
	static const char *bad[] = {
		"",
		"\n",
		"{}",
		"[]",
		"null",
		"1",
		"{\"v\":1}",
		"{\"op\":\"status\"}",
		"{\"v\":2,\"op\":\"status\"}",
		"{\"v\":\"1\",\"op\":\"status\"}",
		"{\"v\":1.0,\"op\":\"status\"}",
		"{\"v\":1,\"op\":\"stat\"}",
		"{\"v\":1,\"op\":\"STATUS\"}",
		"{\"v\":1,\"op\":1}",
		"{\"v\":1,\"op\":\"status\",\"x\":1}",
		"{\"v\":1,\"op\":\"status\"} {}",
		"{\"v\":1,\"op\":\"status\"}\n\n",
		"{\"v\":1,\"op\":\"status\"}\n{\"v\":1,\"op\":\"status\"}",
		"{\"v\":1,\"op\":\"status\"",
		"{\"v\":1,\"op\":\"cancel\"}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":\"\"}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":\"0123\"}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":\"" ID "0\"}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":\"0123456789ABCDEF0123456789abcdef\"}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":\"0123456789abcdef0123456789abcdeg\"}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":\"../../../../etc/passwd0000000000\"}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":1}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":[\"" ID "\"]}",
		"{\"v\":1,\"op\":\"cancel\",\"id\":\"" ID "\",\"x\":{}}",
		"{\"v\":1,\"op\":\"status\",\"a\":{\"b\":{\"c\":{\"d\":{}}}}}",
	};
	struct control_req rq;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &rq) != -EINVAL)
			fail_msg("accepted or not -EINVAL: '%s'", bad[i]);
	/* a NUL inside */
	assert_int_equal(control_parse("{\"v\":1,\"op\":\"status\"}\0", 22, &rq), -EINVAL);
}

static void too_long(void **s)
{
	char buf[CONTROL_REQ_MAX + 2];
	struct control_req rq;
	int n = snprintf(buf, sizeof(buf), "{\"v\":1,\"op\":\"status\"}");

	memset(buf + n, ' ', sizeof(buf) - n);
	assert_int_equal(control_parse(buf, CONTROL_REQ_MAX + 1, &rq), -E2BIG);
	/* padding within the bound is fine */
	buf[CONTROL_REQ_MAX - 1] = '\n';
	assert_int_equal(control_parse(buf, CONTROL_REQ_MAX, &rq), 0);
}

static char dir[] = "/tmp/test_control.XXXXXX";

/* The socket control_start() made in dir. */
static void sock_path(char *buf, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	assert_non_null(d);
	buf[0] = '\0';
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".sock"))
			snprintf(buf, len, "%s/%s", dir, de->d_name);
	closedir(d);
	assert_true(buf[0]);
}

static json_object *call(const char *path, const char *req)
{
	_cleanup_free_ char *reply = NULL;
	json_object *o;

	assert_int_equal(control_call(path, req, &reply), 0);
	o = json_tokener_parse(reply);
	assert_non_null(o);
	return o;
}

static bool ok_of(json_object *o)
{
	json_object *v;

	assert_true(json_object_object_get_ex(o, "ok", &v));
	return json_object_get_boolean(v);
}

/* In a child (the state is per process): start, @commit_first, cancel. */
static void scenario(bool commit_first)
{
	static const uint8_t id[16] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
					0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	char path[512];
	struct events *ev;
	json_object *o, *v;
	struct stat st;

	assert_int_equal(events_new(NULL, "source", &ev), 0);
	events_set_id(ev, id, sizeof(id));
	events_step(ev, "round");
	assert_int_equal(control_start(ev), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);
	sock_path(path, sizeof(path));

	o = call(path, "{\"v\":1,\"op\":\"status\"}");
	assert_true(json_object_object_get_ex(o, "phase", &v));
	assert_string_equal(json_object_get_string(v), "round");
	assert_true(json_object_object_get_ex(o, "id", &v));
	assert_string_equal(json_object_get_string(v), ID);
	json_object_put(o);

	o = call(path, "{\"v\":1,\"op\":\"nope\"}");
	assert_false(ok_of(o));
	json_object_put(o);
	/* another migration's id */
	o = call(path, "{\"v\":1,\"op\":\"cancel\",\"id\":\"ffffffffffffffffffffffffffffffff\"}");
	assert_false(ok_of(o));
	json_object_put(o);
	assert_false(control_cancelled());

	if (commit_first)
		assert_int_equal(control_commit(), 0);
	o = call(path, "{\"v\":1,\"op\":\"cancel\",\"id\":\"" ID "\"}");
	assert_int_equal(ok_of(o), !commit_first);
	if (commit_first) {
		assert_true(json_object_object_get_ex(o, "error", &v));
		assert_string_equal(json_object_get_string(v), "committed");
		assert_false(control_cancelled());
	} else {
		assert_true(control_cancelled());
		assert_int_equal(control_commit(), -ECANCELED);
	}
	json_object_put(o);
	control_stop();
	/* the socket goes with it */
	assert_int_equal(access(path, F_OK), -1);
	events_free(ev);
}

static void run_child(bool commit_first)
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		scenario(commit_first);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void cancel_before_commit(void **s)
{
	run_child(false);
}

static void cancel_after_commit(void **s)
{
	run_child(true);
}

static int make_dir(void **s)
{
	if (!mkdtemp(dir))
		return -1;
	setenv("PHAUL_CONTROL_DIR", dir, 1);
	return 0;
}

static int remove_dir(void **s)
{
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid),
		cmocka_unit_test(invalid),
		cmocka_unit_test(too_long),
		cmocka_unit_test(cancel_before_commit),
		cmocka_unit_test(cancel_after_commit),
	};

	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
