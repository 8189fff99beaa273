/* SPDX-License-Identifier: MIT */
/* sshchan: ssh:// URLs, and the channel over a stand-in for ssh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/sshchan.h"

static void parses_urls(void **s)
{
	struct ssh_dest d;

	assert_int_equal(ssh_url_parse("ssh://host", &d), 0);
	assert_string_equal(d.host, "host");
	assert_string_equal(d.user, "");
	assert_string_equal(d.port, "");
	assert_int_equal(ssh_url_parse("ssh://root@10.0.0.2:2222", &d), 0);
	assert_string_equal(d.user, "root");
	assert_string_equal(d.host, "10.0.0.2");
	assert_string_equal(d.port, "2222");
	assert_int_equal(ssh_url_parse("ssh://me@[fd00::2]:22", &d), 0);
	assert_string_equal(d.host, "fd00::2");
	assert_string_equal(d.port, "22");
	assert_int_equal(ssh_url_parse("ssh://[fd00::2]", &d), 0);
	assert_string_equal(d.host, "fd00::2");
	assert_true(ssh_is_url("ssh://x"));
	assert_false(ssh_is_url("10.0.0.2:7411"));
}

static void refuses_options_and_junk(void **s)
{
	static const char *bad[] = {
		"10.0.0.2:7411",  "ssh://",	     "ssh://-oProxyCommand=x",
		"ssh://-x@host",  "ssh://host:0",    "ssh://host:65536",
		"ssh://host:22x", "ssh://ho st",     "ssh://host;reboot",
		"ssh://@host",	  "ssh://[::1",	     "ssh://[::1]x",
		"ssh://a@b@c",	  "ssh://host/path", "ssh://h:",
	};
	struct ssh_dest d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ssh_url_parse(bad[i], &d) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
}

/* A stand-in for ssh: a shell script of @body in a temporary file. */
static char *fake_ssh(const char *body)
{
	static char path[] = "/tmp/test-sshchan-XXXXXX";
	int fd;

	strcpy(path, "/tmp/test-sshchan-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_true(dprintf(fd, "#!/bin/sh\n%s\n", body) > 0);
	fchmod(fd, 0700);
	close(fd);
	return path;
}

static void passes_the_destination_as_arguments(void **s)
{
	char *ssh = fake_ssh("echo \"$@\"");
	const char want[] = "-F cfg -o BatchMode=yes -l root -p 2222 -- h phaul serve --stdio\n";
	char cmd[256], got[sizeof(want)] = "", why[128];
	struct ssh_dest d;
	struct conn *c;

	assert_int_equal(ssh_url_parse("ssh://root@h:2222", &d), 0);
	snprintf(cmd, sizeof(cmd), "%s  -F cfg", ssh);
	assert_int_equal(ssh_dial(&d, cmd, NULL, &c), 0);
	assert_int_equal(ssh_await(c, 5000, why, sizeof(why)), 0);
	assert_int_equal(conn_read(c, got, sizeof(want) - 1), 0);
	assert_string_equal(got, want);
	conn_free(c);
	unlink(ssh);
}

static void carries_bytes_both_ways(void **s)
{
	char *ssh = fake_ssh("exec cat");
	char got[6] = "", why[128];
	struct ssh_dest d;
	struct conn *c;

	assert_int_equal(ssh_url_parse("ssh://h", &d), 0);
	assert_int_equal(ssh_dial(&d, ssh, "x", &c), 0);
	assert_int_equal(conn_write(c, "hello", 5), 0);
	assert_int_equal(ssh_await(c, 5000, why, sizeof(why)), 0);
	assert_int_equal(conn_read(c, got, 5), 0);
	assert_string_equal(got, "hello");
	conn_free(c); /* cat sees the end and exits: no hang */
	unlink(ssh);
}

static void explains_why_ssh_ended(void **s)
{
	static const struct {
		const char *body;
		int err;
		const char *says;
	} cases[] = {
		{ "exit 127", -ENOEXEC, "no phaul on the far side" },
		{ "exit 255", -EHOSTUNREACH, "could not connect or log in" },
		{ "exit 3", -EPIPE, "status 3" },
	};
	struct ssh_dest d;

	assert_int_equal(ssh_url_parse("ssh://h", &d), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *ssh = fake_ssh(cases[i].body), why[256] = "";
		struct conn *c;
		assert_int_equal(ssh_dial(&d, ssh, NULL, &c), 0);
		assert_int_equal(ssh_await(c, 5000, why, sizeof(why)), cases[i].err);
		assert_non_null(strstr(why, cases[i].says));
		conn_free(c);
		unlink(ssh);
	}
}

static void says_when_ssh_is_not_here(void **s)
{
	struct ssh_dest d;
	struct conn *c = NULL;

	assert_int_equal(ssh_url_parse("ssh://h", &d), 0);
	assert_int_equal(ssh_dial(&d, "/nonexistent/ssh -v", NULL, &c), -ENOENT);
	assert_int_equal(ssh_dial(&d, "no-such-ssh-here", NULL, &c), -ENOENT);
	assert_null(c);
}

static void times_out_on_silence(void **s)
{
	char *ssh = fake_ssh("exec sleep 30");
	char why[128];
	struct ssh_dest d;
	struct conn *c;

	assert_int_equal(ssh_url_parse("ssh://h", &d), 0);
	assert_int_equal(ssh_dial(&d, ssh, NULL, &c), 0);
	assert_int_equal(ssh_await(c, 100, why, sizeof(why)), -ETIMEDOUT);
	conn_free(c); /* kills the silent ssh */
	unlink(ssh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_urls),
		cmocka_unit_test(refuses_options_and_junk),
		cmocka_unit_test(passes_the_destination_as_arguments),
		cmocka_unit_test(carries_bytes_both_ways),
		cmocka_unit_test(explains_why_ssh_ended),
		cmocka_unit_test(says_when_ssh_is_not_here),
		cmocka_unit_test(times_out_on_silence),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
