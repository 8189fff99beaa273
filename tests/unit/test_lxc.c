/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the lxc driver's pure logic: an LXC config's rootfs,
 * network, console and user namespace (drivers/htype/lxcconf.h), CRIU options rendered
 * as a CRIU config file (criu/criuconf.h), and the validation of the
 * LxcContainer message (proto/msg.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "criu/criuconf.h"
#include "drivers/htype/lxcconf.h"
#include "proto/msg.h"

static const char conf_net[] =
	"# a comment\n"
	"lxc.include = /usr/share/lxc/config/common.conf\n"
	"lxc.uts.name = web\n"
	"  lxc.rootfs.path =   dir:/srv/lxc/web/rootfs  \n"
	"lxc.console.path = none\n"
	"lxc.net.0.type = veth\n"
	"lxc.net.0.link = br0\n"
	"lxc.net.0.name = eth0\n"
	"lxc.net.0.ipv4.address = 192.0.2.5/24\n"
	"lxc.net.1.type = empty\n"
	"lxc.net.1.veth.pair = vout1\n";

static void test_parse(void **state)
{
	struct lxcconf c;

	assert_int_equal(lxcconf_parse(conf_net, &c), 0);
	assert_string_equal(c.rootfs, "/srv/lxc/web/rootfs");
	assert_false(c.console);
	assert_int_equal(c.nr_net, 2);
	assert_int_equal(c.net[0].type, LXCNET_VETH);
	assert_string_equal(c.net[0].link, "br0");
	assert_string_equal(c.net[0].name, "eth0");
	assert_string_equal(c.net[0].pair, "");
	assert_int_equal(c.net[1].type, LXCNET_EMPTY);
	assert_string_equal(c.net[1].pair, "vout1");
}

static void test_parse_defaults(void **state)
{
	struct lxcconf c;

	/* a bare path is a directory; no console line: LXC gives one */
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /srv/r\n", &c), 0);
	assert_string_equal(c.rootfs, "/srv/r");
	assert_true(c.console);
	assert_int_equal(c.nr_net, 0);
	/* no trailing newline, a reset "lxc.net =" */
	assert_int_equal(lxcconf_parse("lxc.net =\nlxc.rootfs.path=dir:/r", &c), 0);
	assert_string_equal(c.rootfs, "/r");
}

static void test_parse_rejects(void **state)
{
	struct lxcconf c;

	assert_int_equal(lxcconf_parse("lxc.uts.name = x\n", &c), -EINVAL); /* no rootfs */
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = overlay:/a:/b\n", &c), -ENOTSUP);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = btrfs:/a\n", &c), -ENOTSUP);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = rootfs\n", &c), -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /a/../etc\n", &c), -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.net.0.type = macvlan\n", &c),
			 -ENOTSUP);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.net.8.type = veth\n", &c),
			 -ENOTSUP);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.net.0.link = br0\n", &c),
			 -EINVAL); /* no type */
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.net.0.type = veth\n"
				       "lxc.net.0.link = a/b\n",
				       &c),
			 -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.net.0.type = veth\n"
				       "lxc.net.0.link = 0123456789abcdef\n",
				       &c),
			 -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.network.type = veth\n", &c),
			 -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\njunk\n", &c), -EINVAL);
}

static void test_parse_idmap(void **state)
{
	struct lxcconf c;

	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\n", &c), 0);
	assert_false(c.apparmor);
	assert_int_equal(
		lxcconf_parse("lxc.rootfs.path = /r\nlxc.apparmor.profile = generated\n", &c), 0);
	assert_true(c.apparmor);
	assert_int_equal(lxcconf_parse("lxc.apparmor.profile = x\nlxc.apparmor.profile =\n"
				       "lxc.rootfs.path = /r\n",
				       &c),
			 0);
	assert_false(c.apparmor); /* reset */
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\n", &c), 0);
	assert_int_equal(c.root_uid, -1);
	assert_int_equal(c.root_gid, -1);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\n"
				       "lxc.idmap = u 0 100000 1000\n"
				       "lxc.idmap = u 1000 1000 1\n" /* not root: ignored */
				       "lxc.idmap = g 0 200000 65536\n",
				       &c),
			 0);
	assert_int_equal(c.root_uid, 100000);
	assert_int_equal(c.root_gid, 200000);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.idmap = b 0 300000 10\n", &c), 0);
	assert_int_equal(c.root_uid, 300000);
	assert_int_equal(c.root_gid, 300000);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.idmap = x 0 1 1\n", &c), -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.idmap = u 0 1\n", &c), -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.idmap = u 0 1 0\n", &c), -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.idmap = u 0 -5 1\n", &c),
			 -EINVAL);
	assert_int_equal(lxcconf_parse("lxc.rootfs.path = /r\nlxc.idmap = u 0 1 1 x\n", &c),
			 -EINVAL);
}

static void test_parse_too_big(void **state)
{
	struct lxcconf c;
	size_t n = LXCCONF_MAX + 2;
	char *big = malloc(n);

	assert_non_null(big);
	memset(big, '#', n - 1);
	big[n - 1] = '\0';
	assert_int_equal(lxcconf_parse(big, &c), -E2BIG);
	free(big);
}

/* what `lxc-info -c KEY` prints, the effective value (includes followed) */
static void test_info_long(void **state)
{
	long v = -1;

	(void)state;
	assert_int_equal(lxcconf_info_long("lxc.tty.max = 4\n", "lxc.tty.max", &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(lxcconf_info_long("lxc.tty.max = 0", "lxc.tty.max", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(lxcconf_info_long("lxc.tty.max = \n", "lxc.tty.max", &v), 0);
	assert_int_equal(v, 0); /* unset: LXC's default, none */
	v = 7;
	assert_int_equal(lxcconf_info_long("lxc.tty.maxx = 4\n", "lxc.tty.max", &v), -EINVAL);
	assert_int_equal(lxcconf_info_long("lxc.tty.dir = lxc\n", "lxc.tty.max", &v), -EINVAL);
	assert_int_equal(lxcconf_info_long("lxc.tty.max = -1\n", "lxc.tty.max", &v), -EINVAL);
	assert_int_equal(lxcconf_info_long("lxc.tty.max = 4x\n", "lxc.tty.max", &v), -EINVAL);
	assert_int_equal(lxcconf_info_long("lxc.tty.max = 4\nlxc.tty.max = 5\n", "lxc.tty.max", &v),
			 -EINVAL);
	assert_int_equal(lxcconf_info_long("lxc.tty.max 4\n", "lxc.tty.max", &v), -EINVAL);
	assert_int_equal(lxcconf_info_long("", "lxc.tty.max", &v), -EINVAL);
	assert_int_equal(v, 7);
}

static void test_info_str(void **state)
{
	char buf[8] = "x";

	(void)state;
	assert_int_equal(lxcconf_info_str("lxc.tty.dir = lxc\n", "lxc.tty.dir", buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "lxc");
	assert_int_equal(lxcconf_info_str("lxc.tty.dir =\n", "lxc.tty.dir", buf, sizeof(buf)), 0);
	assert_string_equal(buf, ""); /* unset */
	assert_int_equal(lxcconf_info_str("lxc.tty.dir = 1234567\n", "lxc.tty.dir", buf, 8), 0);
	assert_string_equal(buf, "1234567");
	strcpy(buf, "x");
	assert_int_equal(lxcconf_info_str("lxc.tty.dir = 12345678\n", "lxc.tty.dir", buf, 8),
			 -EINVAL);
	assert_int_equal(lxcconf_info_str("lxc.tty.dir = a\nb = c\n", "lxc.tty.dir", buf, 8),
			 -EINVAL);
	assert_int_equal(lxcconf_info_str("lxc.tty.max = 4\n", "lxc.tty.dir", buf, 8), -EINVAL);
	assert_string_equal(buf, "x");
}

/* CRIU's key of an LXC tty's pty, as the source writes it in the images */
static void test_tty_key(void **state)
{
	char buf[40] = "x";

	(void)state;
	assert_int_equal(lxcconf_tty_key("tty[8801:18]", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "tty[8801:18]");
	assert_int_equal(lxcconf_tty_key("tty[ffffffffffffffff:0]\n", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "tty[ffffffffffffffff:0]");
	strcpy(buf, "x");
	assert_int_equal(lxcconf_tty_key("tty[8801:18]", buf, 12), -EINVAL); /* no room for NUL */
	assert_int_equal(lxcconf_tty_key("tty[8801:18]\n\n", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[8801:18] ", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[8801:18]x", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[8801]", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[:18]", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[8801:]", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[8801:18", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[8801:1G]", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[880A:18]", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("tty[1ffffffffffffffff:0]", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("pipe[8801:18]", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(lxcconf_tty_key("", buf, sizeof(buf)), -EINVAL);
	assert_string_equal(buf, "x");
}

/* LXC's log as `lxc-checkpoint -r -o FILE -l ERROR` writes it */
static void test_log_error(void **state)
{
	const char *log =
		"lxc-checkpoint ct 20261207085113.749 ERROR    criu - ../src/lxc/criu.c:"
		"exec_criu:467 - lxc.console.path configured on source host but not target\n"
		"lxc-checkpoint ct 20261207085113.750 ERROR    criu - ../src/lxc/criu.c:"
		"do_restore:1038 - Failed to execute criu\n";
	char buf[64] = "x", small[8];

	(void)state;
	assert_int_equal(lxcconf_log_error(log, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "lxc.console.path configured on source host but not target");
	assert_int_equal(lxcconf_log_error(log, small, sizeof(small)), 0);
	assert_string_equal(small, "lxc.con");
	strcpy(buf, "x");
	assert_int_equal(lxcconf_log_error("", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(lxcconf_log_error("lxc-checkpoint ct 1 INFO x - y - z\n", buf, 8),
			 -ENOENT);
	assert_int_equal(lxcconf_log_error("a ERROR b - \n", buf, 8), -ENOENT); /* no message */
	assert_int_equal(lxcconf_log_error("a ERROR b\nc ERROR d - e", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "e");
}

static void test_criuconf(void **state)
{
	CriuOpts o = CRIU_OPTS__INIT;
	ExtMountMap em = EXT_MOUNT_MAP__INIT, *emp = &em;
	char *ext[] = { "veth[eth0]:v1@br0" };
	char *text = NULL;

	o.has_log_level = true;
	o.log_level = 4;
	o.has_lazy_pages = true;
	o.lazy_pages = true;
	o.has_tcp_established = true;
	o.tcp_established = true;
	o.has_shell_job = true; /* false: not written */
	o.has_work_dir_fd = true;
	o.has_network_lock = true;
	o.network_lock = CRIU_NETWORK_LOCK_METHOD__NFTABLES;
	o.has_mntns_compat_mode = true;
	o.mntns_compat_mode = true;
	o.root = "/ignored"; /* the manager's */
	em.key = "/data";
	em.val = "/srv/data";
	o.ext_mnt = &emp;
	o.n_ext_mnt = 1;
	o.external = ext;
	o.n_external = 1;
	assert_int_equal(criuconf_render(&o, "/w/s1", "/w/s1/hook", &text), 0);
	assert_string_equal(text, "verbosity=4\n"
				  "lazy-pages\n"
				  "tcp-established\n"
				  "mntns-compat-mode\n"
				  "work-dir /w/s1\n"
				  "network-lock nftables\n"
				  "ext-mount-map /data:/srv/data\n"
				  "external veth[eth0]:v1@br0\n"
				  "action-script /w/s1/hook\n");
	free(text);
}

static void test_criuconf_rejects(void **state)
{
	CriuOpts o = CRIU_OPTS__INIT;
	InheritFd in = INHERIT_FD__INIT, *inp = &in;
	char *bad[] = { "a b" }, *hash[] = { "x#y" }, *quote[] = { "x\"" };
	char *text = NULL;

	assert_int_equal(criuconf_render(&o, NULL, NULL, &text), 0);
	assert_string_equal(text, "");
	free(text);
	text = NULL;
	assert_int_equal(criuconf_render(&o, NULL, "/a dir/hook", &text), -EINVAL);
	o.has_work_dir_fd = true;
	assert_int_equal(criuconf_render(&o, "/w\n", NULL, &text), -EINVAL);
	o.has_work_dir_fd = false;
	o.external = bad;
	o.n_external = 1;
	assert_int_equal(criuconf_render(&o, NULL, NULL, &text), -EINVAL);
	o.external = hash;
	assert_int_equal(criuconf_render(&o, NULL, NULL, &text), -EINVAL);
	o.external = quote;
	assert_int_equal(criuconf_render(&o, NULL, NULL, &text), -EINVAL);
	o.n_external = 0;
	o.inherit_fd = &inp;
	o.n_inherit_fd = 1;
	assert_int_equal(criuconf_render(&o, NULL, NULL, &text), -ENOTSUP);
	o.n_inherit_fd = 0;
	o.has_network_lock = true;
	o.network_lock = 42;
	assert_int_equal(criuconf_render(&o, NULL, NULL, &text), -EINVAL);
	assert_null(text);
}

static int decode_lxc(Phaul__LxcContainer *lc)
{
	Msg m = PHAUL__MSG__INIT, *out = NULL;
	static uint8_t buf[65536];
	size_t len;
	int r;

	m.body_case = PHAUL__MSG__BODY_LXC;
	m.lxc = lc;
	len = phaul__msg__pack(&m, buf);
	r = msg_decode(buf, len, &out);
	if (out)
		msg_free(out);
	return r;
}

static void test_msg_lxc(void **state)
{
	Phaul__LxcContainer lc = PHAUL__LXC_CONTAINER__INIT;
	char *big = malloc(MSG_LXC_CONFIG_MAX + 2);

	assert_non_null(big);
	lc.name = "web";
	lc.lxcpath = "/var/lib/lxc";
	lc.config = (char *)conf_net;
	assert_int_equal(decode_lxc(&lc), 0);
	lc.name = "../etc";
	assert_int_equal(decode_lxc(&lc), -EPROTO);
	lc.name = "web";
	lc.lxcpath = "var/lib/lxc";
	assert_int_equal(decode_lxc(&lc), -EPROTO);
	lc.lxcpath = "/var/lib/../../etc";
	assert_int_equal(decode_lxc(&lc), -EPROTO);
	lc.lxcpath = "/var/lib/lxc";
	memset(big, '#', MSG_LXC_CONFIG_MAX + 1);
	big[MSG_LXC_CONFIG_MAX + 1] = '\0';
	lc.config = big;
	assert_int_equal(decode_lxc(&lc), -EPROTO);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_defaults),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_idmap),
		cmocka_unit_test(test_parse_too_big),
		cmocka_unit_test(test_info_long),
		cmocka_unit_test(test_info_str),
		cmocka_unit_test(test_log_error),
		cmocka_unit_test(test_tty_key),
		cmocka_unit_test(test_criuconf),
		cmocka_unit_test(test_criuconf_rejects),
		cmocka_unit_test(test_msg_lxc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
