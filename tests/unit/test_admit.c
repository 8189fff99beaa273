/* SPDX-License-Identifier: MIT */
/* admit: the destination's policy file and its checks of a Preflight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "target/admit.h"

static char tmp[256]; /* a scratch tree: tmp/root, tmp/out, tmp/root/link -> ../out */

static int make_tree(void **s)
{
	char p[PATH_MAX + 32], t[] = "/tmp/test_admit.XXXXXX", *res;

	if (!mkdtemp(t) || !(res = realpath(t, NULL)) || strlen(res) >= sizeof(tmp))
		return -1;
	snprintf(tmp, sizeof(tmp), "%s", res);
	free(res);
	snprintf(p, sizeof(p), "%s/root", tmp);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/out", tmp);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/root/file", tmp);
	fclose(fopen(p, "w"));
	snprintf(p, sizeof(p), "%s/root/link", tmp);
	return symlink("../out", p);
}

static int remove_tree(void **s)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	return system(cmd) == 0 ? 0 : -1;
}

__attribute__((format(printf, 2, 3))) static int parse(struct admit *a, const char *fmt, ...)
{
	char text[4096], why[512] = "";
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	admit_defaults(a);
	r = admit_parse(a, "test.policy", text, why, sizeof(why));
	if (r < 0)
		print_message("%s\n", why);
	return r;
}

static void defaults_are_closed(void **s)
{
	struct admit a;
	char why[512];

	admit_defaults(&a);
	assert_int_equal(admit_path(&a, ROOT_SYNC, "sync: directory", "/srv/x", why, sizeof(why)),
			 -EPERM);
	assert_non_null(strstr(why, "sync_root = DIR"));
	/* a NULL policy is the defaults */
	assert_int_equal(admit_path(NULL, ROOT_STDIO, "stdio", "/tmp/x", why, sizeof(why)), -EPERM);
}

static void parses_keys(void **s)
{
	struct admit a;

	assert_int_equal(parse(&a,
			       "# comment\n\nmode = stop restart  # trailing\n"
			       "sync_root = %s/root\nsync_root=%s/out/\n"
			       "shell_job = yes\nlxc_hooks = no\n",
			       tmp, tmp),
			 0);
	assert_int_equal(a.modes, (1u << 0) | (1u << 4));
	assert_int_equal(a.nr_roots[ROOT_SYNC], 2);
	assert_true(a.shell_job);
	assert_false(a.lxc_hooks);
	/* stored resolved, without the trailing slash */
	assert_non_null(strstr(a.roots[ROOT_SYNC][1], "/out"));
	assert_int_equal(a.roots[ROOT_SYNC][1][strlen(a.roots[ROOT_SYNC][1]) - 1], 't');
	admit_free(&a);
	/* a root that does not exist yet is kept as written */
	assert_int_equal(parse(&a, "oci_root = /nonexistent/phaul-test/\n"), 0);
	assert_string_equal(a.roots[ROOT_OCI][0], "/nonexistent/phaul-test");
	admit_free(&a);
}

static void rejects_bad_lines(void **s)
{
	struct admit a;

	assert_int_equal(parse(&a, "mode = stop teleport\n"), -EINVAL);
	assert_int_equal(parse(&a, "sync_root = relative/dir\n"), -EINVAL);
	assert_int_equal(parse(&a, "sync_root = /a/../etc\n"), -EINVAL);
	assert_int_equal(parse(&a, "shell_job = maybe\n"), -EINVAL);
	assert_int_equal(parse(&a, "frobnicate = yes\n"), -EINVAL);
	assert_int_equal(parse(&a, "just words\n"), -EINVAL);
	assert_int_equal(parse(&a, "mode =\n"), -EINVAL);
	admit_free(&a);
}

static void resolves_paths(void **s)
{
	char out[PATH_MAX], want[PATH_MAX + 32];

	/* absent components are kept as they are */
	snprintf(want, sizeof(want), "%s/root/new/deeper", tmp);
	assert_int_equal(admit_resolve(want, out, sizeof(out)), 0);
	assert_string_equal(out, want);
	/* a symlink in the existing part is followed */
	snprintf(want, sizeof(want), "%s/root/link/x", tmp);
	assert_int_equal(admit_resolve(want, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/out/x", tmp);
	assert_string_equal(out, want);
	assert_int_equal(admit_resolve("/", out, sizeof(out)), 0);
	assert_string_equal(out, "/");
	assert_int_equal(admit_resolve("/no-such-dir-phaul/a", out, sizeof(out)), 0);
	assert_string_equal(out, "/no-such-dir-phaul/a");
	assert_int_equal(admit_resolve("relative", out, sizeof(out)), -EINVAL);
	assert_int_equal(admit_resolve("/a/../etc", out, sizeof(out)), -EINVAL);
	assert_int_equal(admit_resolve("/a/./b", out, sizeof(out)), -EINVAL);
	assert_int_equal(admit_resolve("/a//b", out, sizeof(out)), -EINVAL);
	assert_int_equal(admit_resolve("", out, sizeof(out)), -EINVAL);
	/* a dangling symlink: what creates the rest would follow it */
	snprintf(want, sizeof(want), "%s/root/dangling", tmp);
	assert_int_equal(symlink("../out/not-yet", want), 0);
	snprintf(want, sizeof(want), "%s/root/dangling/x", tmp);
	assert_int_equal(admit_resolve(want, out, sizeof(out)), -ELOOP);
	snprintf(want, sizeof(want), "%s/root/dangling", tmp);
	assert_int_equal(admit_resolve(want, out, sizeof(out)), -ELOOP);
	unlink(want);
	/* a file in the middle */
	snprintf(want, sizeof(want), "%s/root/file/x", tmp);
	assert_int_equal(admit_resolve(want, out, sizeof(out)), -ENOTDIR);
}

static void long_names(void **s)
{
	char *p = malloc(PATH_MAX + 10), out[PATH_MAX];

	memset(p, 'a', PATH_MAX + 9);
	p[0] = '/';
	p[PATH_MAX + 9] = '\0';
	assert_int_equal(admit_resolve(p, out, sizeof(out)), -EINVAL);
	/* a name longer than NAME_MAX under an existing directory */
	snprintf(p, PATH_MAX, "%s/root/", tmp);
	memset(p + strlen(p), 'b', 300);
	p[strlen(tmp) + 6 + 300] = '\0';
	assert_int_equal(admit_resolve(p, out, sizeof(out)), -ENAMETOOLONG);
	free(p);
}

static void confines_paths(void **s)
{
	struct admit a;
	char why[1024], path[PATH_MAX + 32];

	assert_int_equal(parse(&a, "sync_root = %s/root\n", tmp), 0);
	snprintf(path, sizeof(path), "%s/root/app", tmp);
	assert_int_equal(admit_path(&a, ROOT_SYNC, "sync: directory", path, why, sizeof(why)), 0);
	snprintf(path, sizeof(path), "%s/root", tmp);
	assert_int_equal(admit_path(&a, ROOT_SYNC, "sync: directory", path, why, sizeof(why)), 0);
	/* a sibling whose name starts like the root */
	snprintf(path, sizeof(path), "%s/rootx", tmp);
	assert_int_equal(admit_path(&a, ROOT_SYNC, "sync: directory", path, why, sizeof(why)),
			 -EPERM);
	/* out through a symlink: refused, the resolved path named */
	snprintf(path, sizeof(path), "%s/root/link/app", tmp);
	assert_int_equal(admit_path(&a, ROOT_SYNC, "sync: directory", path, why, sizeof(why)),
			 -EPERM);
	assert_non_null(strstr(why, "(resolved: "));
	assert_non_null(strstr(why, "test.policy"));
	/* another kind of root does not count */
	snprintf(path, sizeof(path), "%s/root/app", tmp);
	assert_int_equal(admit_path(&a, ROOT_DISK_MOUNT, "disk: mount point", path, why,
				    sizeof(why)),
			 -EPERM);
	assert_non_null(strstr(why, "disk_mount_root"));
	admit_free(&a);
}

static void preflight_rules(void **s)
{
	struct admit a;
	Phaul__Preflight p = PHAUL__PREFLIGHT__INIT;
	char why[1024], fs0[PATH_MAX + 64], *fs[1] = { fs0 };

	admit_defaults(&a);
	p.mode = "live";
	p.htype = "pid";
	assert_int_equal(admit_preflight(&a, &p, NULL, why, sizeof(why)), 0);
	p.mode = "restart";
	assert_int_equal(admit_preflight(&a, &p, NULL, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "mode restart is not allowed"));
	assert_non_null(strstr(why, "'mode = stop live lazy hybrid restart'"));
	p.mode = "stop";
	p.has_shell_job = p.shell_job = true;
	assert_int_equal(admit_preflight(&a, &p, NULL, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "shell_job = yes"));
	p.shell_job = false;
	p.fs = fs;
	p.n_fs = 1;
	snprintf(fs0, sizeof(fs0), "disk:/var/img:/etc");
	assert_int_equal(admit_preflight(&a, &p, NULL, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "disk_image_root"));
	snprintf(fs0, sizeof(fs0), "disk:/var/img:/etc:/x");
	assert_int_equal(admit_preflight(&a, &p, NULL, why, sizeof(why)), -EPERM);
	snprintf(fs0, sizeof(fs0), "shared");
	assert_int_equal(admit_preflight(&a, &p, NULL, why, sizeof(why)), 0);

	assert_int_equal(
		parse(&a, "disk_image_root = %s/out\ndisk_mount_root = %s/root\n", tmp, tmp), 0);
	snprintf(fs0, sizeof(fs0), "disk:%s/out/a.img:%s/root/mnt", tmp, tmp);
	assert_int_equal(admit_preflight(&a, &p, NULL, why, sizeof(why)), 0);
	/* image and mount point swapped */
	snprintf(fs0, sizeof(fs0), "disk:%s/root/a.img:%s/out/mnt", tmp, tmp);
	assert_int_equal(admit_preflight(&a, &p, NULL, why, sizeof(why)), -EPERM);
	admit_free(&a);
}

static void oci_rules(void **s)
{
	struct admit a;
	Phaul__Preflight p = PHAUL__PREFLIGHT__INIT;
	Phaul__OciContainer oc = PHAUL__OCI_CONTAINER__INIT;
	Phaul__OciMount mnt = PHAUL__OCI_MOUNT__INIT, *mnts[1] = { &mnt };
	Phaul__OciStdio io = PHAUL__OCI_STDIO__INIT, *ios[1] = { &io };
	Msg info = PHAUL__MSG__INIT;
	char why[1024], b[PATH_MAX + 32], r[PATH_MAX + 32], rt[PATH_MAX + 32], src[PATH_MAX + 32];

	p.mode = "stop";
	p.htype = "oci";
	msg_set_oci(&info, &oc);
	snprintf(b, sizeof(b), "%s/root/bundle", tmp);
	snprintf(r, sizeof(r), "%s/root/bundle/rootfs", tmp);
	snprintf(rt, sizeof(rt), "%s/root/runc", tmp);
	snprintf(src, sizeof(src), "%s/out/data", tmp);
	oc.bundle = b;
	oc.rootfs = r;
	oc.runtime_root = rt;
	assert_int_equal(parse(&a, "oci_root = %s/root\n", tmp), 0);
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), 0);
	oc.rootfs = "/";
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "OCI rootfs /"));
	oc.rootfs = r;
	oc.mounts = mnts;
	oc.n_mounts = 1;
	mnt.dest = "/data";
	mnt.source = src;
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "bind_root"));
	/* a masked path: /dev/null bound over it */
	mnt.source = "/dev/null";
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), 0);
	mnt.source = "/dev/urandom";
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), 0);
	mnt.source = "/dev";
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	mnt.source = "/dev/sda";
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	oc.n_mounts = 0;
	oc.stdio = ios;
	oc.n_stdio = 1;
	io.key = "file[1:2]";
	io.path = "/etc/passwd";
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "stdio_root"));
	io.path = NULL; /* a pipe: nothing reopened */
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), 0);
	/* a Podman container: only with podman = yes */
	Phaul__PodmanInfo pi = PHAUL__PODMAN_INFO__INIT;
	oc.podman = &pi;
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "podman = yes"));
	admit_free(&a);
	assert_int_equal(parse(&a, "oci_root = %s/root\npodman = yes\n", tmp), 0);
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), 0);
	admit_free(&a);
}

static void lxc_rules(void **s)
{
	struct admit a;
	Phaul__Preflight p = PHAUL__PREFLIGHT__INIT;
	Phaul__LxcContainer lc = PHAUL__LXC_CONTAINER__INIT;
	Msg info = PHAUL__MSG__INIT;
	char why[1024], path[PATH_MAX + 32], conf[2 * PATH_MAX];

	p.mode = "stop";
	p.htype = "lxc";
	msg_set_lxc(&info, &lc);
	lc.name = "ct";
	snprintf(path, sizeof(path), "%s/root", tmp);
	lc.lxcpath = path;
	snprintf(conf, sizeof(conf), "lxc.rootfs.path = dir:%s/root/ct/rootfs\n", tmp);
	lc.config = conf;
	assert_int_equal(parse(&a, "lxc_root = %s/root\n", tmp), 0);
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), 0);
	snprintf(conf, sizeof(conf),
		 "lxc.rootfs.path = dir:%s/root/ct/rootfs\n"
		 "  lxc.hook.pre-start = /bin/sh -c 'id > /tmp/x'\n",
		 tmp);
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "lxc_hooks = yes"));
	snprintf(conf, sizeof(conf),
		 "lxc.rootfs.path = dir:%s/root/ct/rootfs\n"
		 "lxc.mount.entry = /etc etc none bind 0 0\n",
		 tmp);
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "lxc.mount.entry source /etc"));
	snprintf(conf, sizeof(conf), "lxc.rootfs.path = dir:/usr\n");
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "LXC rootfs"));
	lc.lxcpath = "/var/lib/lxc";
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), -EPERM);
	assert_non_null(strstr(why, "lxc_root"));
	admit_free(&a);
	assert_int_equal(parse(&a, "lxc_root = %s/root\nlxc_hooks = yes\n", tmp), 0);
	lc.lxcpath = path;
	snprintf(conf, sizeof(conf),
		 "lxc.rootfs.path = dir:%s/root/ct/rootfs\n"
		 "lxc.hook.pre-start = /bin/true\n",
		 tmp);
	assert_int_equal(admit_preflight(&a, &p, &info, why, sizeof(why)), 0);
	admit_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_are_closed), cmocka_unit_test(parses_keys),
		cmocka_unit_test(rejects_bad_lines),   cmocka_unit_test(resolves_paths),
		cmocka_unit_test(long_names),	       cmocka_unit_test(confines_paths),
		cmocka_unit_test(preflight_rules),     cmocka_unit_test(oci_rules),
		cmocka_unit_test(lxc_rules),
	};
	return cmocka_run_group_tests(tests, make_tree, remove_tree);
}
