/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the oci driver's pure logic (drivers/htype/ocistate.h):
 * runc's and crun's state files, their rewrite for a restored init, the
 * external mounts of a container from two mountinfo texts; and the
 * validation of the OciContainer message (proto/msg.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "drivers/htype/ocistate.h"
#include "proto/msg.h"

static const char runc_state[] =
	"{\"id\":\"c1\",\"init_process_pid\":13,\"init_process_start\":1094497,"
	"\"created\":\"2026-11-25T23:30:16.2Z\",\"config\":{\"rootfs\":\"/srv/b/rootfs\","
	"\"labels\":[\"other=x\",\"bundle=/srv/b\"]},\"cgroup_paths\":{\"\":\"/sys/fs/cgroup/c1\"},"
	"\"namespace_paths\":{\"NEWNET\":\"/proc/13/ns/net\",\"NEWPID\":\"/proc/13/ns/pid\","
	"\"NEWUTS\":\"/var/run/netns/shared\"}}";

static const char crun_status[] =
	"{\"pid\":8,\"process-start-time\":1113395,\"cgroup-path\":\"\",\"rootfs\":\"rootfs\","
	"\"bundle\":\"/srv/b\",\"created\":\"2026-11-25T23:33:25Z\",\"detached\":true}";

static void test_parse_runc(void **state)
{
	struct oci_state st;

	assert_int_equal(oci_state_parse(OCI_RUNC, runc_state, &st), 0);
	assert_int_equal(st.pid, 13);
	assert_int_equal(st.start, 1094497);
	assert_string_equal(st.rootfs, "/srv/b/rootfs");
	assert_string_equal(st.bundle, "/srv/b");
	assert_int_equal(st.nr_cgroups, 1);
	assert_string_equal(st.cgroups[0], "/sys/fs/cgroup/c1");
	oci_state_free(&st);
}

/* Only directories below /sys/fs/cgroup/, each once. */
static void test_parse_runc_cgroups(void **state)
{
	const char *j =
		"{\"init_process_pid\":9,\"init_process_start\":1,\"config\":"
		"{\"rootfs\":\"/r\",\"labels\":[\"bundle=/b\"]},\"cgroup_paths\":{"
		"\"cpu\":\"/sys/fs/cgroup/cpu,cpuacct/c\",\"cpuacct\":\"/sys/fs/cgroup/cpu,cpuacct/c\","
		"\"memory\":\"/sys/fs/cgroup/memory/c\",\"x\":\"/etc\",\"y\":\"/sys/fs/cgroup/\","
		"\"z\":\"/sys/fs/cgroup/memory/../../../etc\",\"n\":5}}";
	struct oci_state st;

	assert_int_equal(oci_state_parse(OCI_RUNC, j, &st), 0);
	assert_int_equal(st.nr_cgroups, 2);
	assert_string_equal(st.cgroups[0], "/sys/fs/cgroup/cpu,cpuacct/c");
	assert_string_equal(st.cgroups[1], "/sys/fs/cgroup/memory/c");
	oci_state_free(&st);
}

static void test_parse_crun_cgroup(void **state)
{
	const char *j = "{\"pid\":8,\"process-start-time\":1,\"cgroup-path\":\"/a/c\","
			"\"rootfs\":\"/r\",\"bundle\":\"/b\"}";
	struct oci_state st;

	assert_int_equal(oci_state_parse(OCI_CRUN, j, &st), 0);
	assert_int_equal(st.nr_cgroups, 1);
	assert_string_equal(st.cgroups[0], "/sys/fs/cgroup/a/c");
	oci_state_free(&st);
	assert_int_equal(oci_state_parse(OCI_CRUN, crun_status, &st), 0);
	assert_int_equal(st.nr_cgroups, 0);
	oci_state_free(&st);
}

static void test_parse_runc_start_as_string(void **state)
{
	const char *j = "{\"init_process_pid\":99,\"init_process_start\":\"42\",\"config\":"
			"{\"rootfs\":\"/r\",\"labels\":[\"bundle=/b\"]}}";
	struct oci_state st;

	assert_int_equal(oci_state_parse(OCI_RUNC, j, &st), 0);
	assert_int_equal(st.start, 42);
	oci_state_free(&st);
}

static void test_parse_crun_relative_rootfs(void **state)
{
	struct oci_state st;

	assert_int_equal(oci_state_parse(OCI_CRUN, crun_status, &st), 0);
	assert_int_equal(st.pid, 8);
	assert_int_equal(st.start, 1113395);
	assert_string_equal(st.rootfs, "/srv/b/rootfs");
	assert_string_equal(st.bundle, "/srv/b");
	oci_state_free(&st);
}

static void test_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"[]",
		"not json",
		"{\"init_process_pid\":13}",
		"{\"init_process_pid\":1,\"init_process_start\":1,\"config\":{\"rootfs\":\"/r\","
		"\"labels\":[\"bundle=/b\"]}}",
		"{\"init_process_pid\":-5,\"init_process_start\":1,\"config\":{\"rootfs\":\"/r\","
		"\"labels\":[\"bundle=/b\"]}}",
		"{\"init_process_pid\":13,\"init_process_start\":\"12x\",\"config\":{\"rootfs\":"
		"\"/r\",\"labels\":[\"bundle=/b\"]}}",
		"{\"init_process_pid\":13,\"init_process_start\":1,\"config\":{\"rootfs\":\"/r\","
		"\"labels\":[\"bundle=relative\"]}}",
		"{\"init_process_pid\":13,\"init_process_start\":1,\"config\":{\"rootfs\":\"/r\"}}",
		"{\"init_process_pid\":\"13\",\"init_process_start\":1,\"config\":[1]}",
	};
	struct oci_state st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(oci_state_parse(OCI_RUNC, bad[i], &st), -EINVAL);
	assert_int_equal(oci_state_parse(OCI_CRUN,
					 "{\"pid\":8,\"process-start-time\":1,"
					 "\"rootfs\":\"rootfs\"}",
					 &st),
			 -EINVAL);
}

static const char *str_at(json_object *o, const char *a, const char *b)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, a, &v));
	if (b)
		assert_true(json_object_object_get_ex(v, b, &v));
	return json_object_get_string(v);
}

static void test_update_runc(void **state)
{
	char *out = NULL;
	json_object *o;
	struct oci_state st;

	assert_int_equal(oci_state_update(OCI_RUNC, runc_state, 4321, 777, &out), 0);
	o = json_tokener_parse(out);
	assert_non_null(o);
	assert_string_equal(str_at(o, "init_process_pid", NULL), "4321");
	assert_string_equal(str_at(o, "init_process_start", NULL), "777");
	assert_string_equal(str_at(o, "namespace_paths", "NEWNET"), "/proc/4321/ns/net");
	assert_string_equal(str_at(o, "namespace_paths", "NEWPID"), "/proc/4321/ns/pid");
	/* a namespace the container joined by path stays that path */
	assert_string_equal(str_at(o, "namespace_paths", "NEWUTS"), "/var/run/netns/shared");
	assert_string_equal(str_at(o, "cgroup_paths", ""), "/sys/fs/cgroup/c1");
	assert_string_equal(str_at(o, "id", NULL), "c1");
	json_object_put(o);
	/* and it parses back */
	assert_int_equal(oci_state_parse(OCI_RUNC, out, &st), 0);
	assert_int_equal(st.pid, 4321);
	oci_state_free(&st);
	free(out);
	/* a manager's restore (podman's): its rootfs and the network namespace
	 * the container joined by path, in the list runc checkpoint reads too */
	static const char joined[] =
		"{\"id\":\"c1\",\"init_process_pid\":13,\"init_process_start\":1,"
		"\"config\":{\"rootfs\":\"/old/root\",\"labels\":[\"bundle=/srv/b\"],"
		"\"namespaces\":[{\"type\":\"NEWPID\"},{\"type\":\"NEWNET\","
		"\"path\":\"/run/netns/n1\"}]},\"namespace_paths\":{\"NEWNET\":"
		"\"/run/netns/n1\",\"NEWPID\":\"/proc/13/ns/pid\"}}";
	assert_int_equal(oci_state_rewrite(OCI_RUNC, joined, 4321, 777,
					   &(struct oci_state_change){ .rootfs = "/new/root",
								       .netns = "/run/netns/n2" },
					   &out),
			 0);
	assert_int_equal(oci_state_parse(OCI_RUNC, out, &st), 0);
	assert_string_equal(st.rootfs, "/new/root");
	oci_state_free(&st);
	o = json_tokener_parse(out);
	assert_string_equal(str_at(o, "namespace_paths", "NEWNET"), "/run/netns/n2");
	assert_string_equal(str_at(o, "namespace_paths", "NEWPID"), "/proc/4321/ns/pid");
	{
		json_object *cfg, *list, *path;
		assert_true(json_object_object_get_ex(o, "config", &cfg));
		assert_true(json_object_object_get_ex(cfg, "namespaces", &list));
		assert_true(json_object_object_get_ex(json_object_array_get_idx(list, 1), "path",
						      &path));
		assert_string_equal(json_object_get_string(path), "/run/netns/n2");
		assert_false(json_object_object_get_ex(json_object_array_get_idx(list, 0), "path",
						       &path));
	}
	json_object_put(o);
	free(out);
}

static void test_update_crun(void **state)
{
	char *out = NULL;
	struct oci_state st;

	assert_int_equal(oci_state_update(OCI_CRUN, crun_status, 55, 66, &out), 0);
	assert_int_equal(oci_state_parse(OCI_CRUN, out, &st), 0);
	assert_int_equal(st.pid, 55);
	assert_int_equal(st.start, 66);
	oci_state_free(&st);
	free(out);
	assert_int_equal(oci_state_update(OCI_CRUN, "{}", 5, 6, &out), -EINVAL);
	assert_int_equal(oci_state_update(OCI_RUNC, "garbage", 5, 6, &out), -EINVAL);
}

/* From a runc container in this project's test hosts (trimmed). */
static const char cont_mi[] =
	"90 66 254:0 /srv/b/rootfs / rw,relatime - ext4 /dev/vda rw\n"
	"91 90 0:42 / /proc rw,relatime - proc proc rw\n"
	"92 90 0:43 / /dev rw,nosuid - tmpfs tmpfs rw\n"
	"96 90 0:46 / /sys ro - sysfs sysfs ro\n"
	"97 96 0:47 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
	"98 97 0:29 /c1 /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n"
	"107 90 254:0 /srv/data /data rw,relatime - ext4 /dev/vda rw\n"
	"108 90 254:0 /srv/b/rootfs/opt /mnt/opt rw,relatime - ext4 /dev/vda rw\n"
	"109 90 254:0 /srv/with\\040space /sp rw,relatime - ext4 /dev/vda rw\n"
	"72 91 0:43 /null /proc/keys rw,nosuid - tmpfs tmpfs rw\n"
	"67 91 0:42 /bus /proc/bus ro,relatime - proc proc rw\n";

static const char host_mi[] =
	"20 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
	"21 20 0:5 / /proc rw - proc proc rw\n"
	"22 20 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
	"23 20 0:29 / /old/cpu rw - cgroup cgroup rw,cpu\n"
	"24 20 0:50 / /old rw - tmpfs tmpfs rw\n";

static const char *source_of(struct oci_mount *m, size_t n, const char *dest)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(m[i].dest, dest))
			return m[i].source;
	return NULL;
}

static void test_ext_mounts(void **state)
{
	struct oci_mount *m = NULL;
	size_t n = 0;

	assert_int_equal(oci_ext_mounts(cont_mi, host_mi, &m, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(source_of(m, n, "/data"), "/srv/data");
	assert_string_equal(source_of(m, n, "/sp"), "/srv/with space");
	/* /old/cpu is hidden by the tmpfs mounted on /old later */
	assert_string_equal(source_of(m, n, "/sys/fs/cgroup/cpu"), "/sys/fs/cgroup/cpu/c1");
	/* part of the rootfs, the container's own proc/tmpfs: CRIU's business */
	assert_null(source_of(m, n, "/mnt/opt"));
	assert_null(source_of(m, n, "/proc/keys"));
	assert_null(source_of(m, n, "/proc"));
	oci_mounts_free(m, n);
}

/*
 * Real hosts' tables hold mounts whose root is no path: nsfs files of
 * named network namespaces (`ip netns add`, CNI), persisted mount and
 * other namespaces, all on the nsfs device (0:4 here).
 */
static const char host_ns_mi[] =
	"20 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
	"25 20 0:23 / /run rw,nosuid,nodev - tmpfs tmpfs rw,mode=755\n"
	"612 25 0:23 /netns /run/netns rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755\n"
	"640 612 0:4 net:[4026532174] /run/netns/blue rw shared:221 - nsfs nsfs rw\n"
	"655 612 0:4 net:[4026532410] /run/netns/cni-2f1c\0405 rw - nsfs nsfs rw\n"
	"670 20 0:4 mnt:[4026532522] /var/lib/ns/mnt rw - nsfs nsfs rw\n"
	"671 20 0:4 uts:[4026532523] /var/lib/ns/uts rw - nsfs nsfs rw\n"
	"680 20 0:4 net:[4026532174] /srv/data rw - nsfs nsfs rw\n"
	"690 20 254:0 /srv/data /srv/data rw,relatime - ext4 /dev/vda rw\n"
	"700 20 0:13 anon_inode:[bpf-map] /sys/fs/bpf/m rw - anon_inodefs anon_inodefs rw\n";

static void test_ext_mounts_nsfs(void **state)
{
	/* the container's: a bind of /srv/data, and an nsfs file bound in */
	static const char cont[] =
		"90 66 254:0 /srv/b/rootfs / rw,relatime - ext4 /dev/vda rw\n"
		"91 90 0:42 / /proc rw,relatime - proc proc rw\n"
		"107 90 254:0 /srv/data /data rw,relatime - ext4 /dev/vda rw\n"
		"110 90 0:4 net:[4026532174] /run/netns/blue rw - nsfs nsfs rw\n";
	struct oci_mount *m = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(oci_ext_mounts(cont, host_ns_mi, &m, &n), 0);
	/* only the bind of a host path; /srv/data's nsfs mount is hidden
	 * by the ext4 bind mounted over it later */
	assert_int_equal(n, 1);
	assert_string_equal(source_of(m, n, "/data"), "/srv/data");
	assert_null(source_of(m, n, "/run/netns/blue"));
	oci_mounts_free(m, n);
	/* the earlier tables parse next to nsfs lines in either text */
	assert_int_equal(oci_ext_mounts(cont_mi, host_ns_mi, &m, &n), 0);
	assert_string_equal(source_of(m, n, "/data"), "/srv/data");
	assert_null(source_of(m, n, "/sys/fs/cgroup/cpu"));
	oci_mounts_free(m, n);
}

static void test_ext_mounts_rejects(void **state)
{
	struct oci_mount *m = NULL;
	size_t n = 0;

	/* no root mount */
	assert_int_equal(oci_ext_mounts("91 90 0:42 / /proc rw - proc proc rw\n", host_mi, &m, &n),
			 -EINVAL);
	assert_int_equal(oci_ext_mounts("garbage\n", host_mi, &m, &n), -EINVAL);
	assert_int_equal(oci_ext_mounts(cont_mi, "1 2 3\n", &m, &n), -EINVAL);
	/* a root mount whose root is no path */
	assert_int_equal(oci_ext_mounts("1 0 8:1 rel / rw - ext4 x rw\n", host_mi, &m, &n),
			 -EINVAL);
	/* a mount point that is no path, in either text */
	assert_int_equal(oci_ext_mounts("1 0 0:4 net:[1] x rw - nsfs nsfs rw\n", host_mi, &m, &n),
			 -EINVAL);
	assert_int_equal(oci_ext_mounts(cont_mi, "640 612 0:4 net:[4026532174] run rw\n", &m, &n),
			 -EINVAL);
}

static void test_mountinfo_ids(void **state)
{
	(void)state;
	assert_true(mountinfo_has_id(cont_mi, 107));
	assert_true(mountinfo_has_id(cont_mi, 90));
	assert_false(mountinfo_has_id(cont_mi, 10));
	assert_false(mountinfo_has_id("", 1));
}

/* --- the OciContainer message ------------------------------------------ */

static int decode_oci(Phaul__OciContainer *oc)
{
	Msg m = PHAUL__MSG__INIT, *out = NULL;
	uint8_t buf[65536];
	size_t len;
	int r;

	m.body_case = PHAUL__MSG__BODY_OCI;
	m.oci = oc;
	len = phaul__msg__pack(&m, buf);
	r = msg_decode(buf, len, &out);
	if (out)
		msg_free(out);
	return r;
}

static void test_msg_oci(void **state)
{
	Phaul__OciContainer oc = PHAUL__OCI_CONTAINER__INIT;
	Phaul__OciMount mnt = PHAUL__OCI_MOUNT__INIT, *mp = &mnt;
	Phaul__OciStdio sd = PHAUL__OCI_STDIO__INIT, *sp = &sd;

	oc.id = "c1";
	oc.runtime = "runc";
	oc.runtime_root = "/run/runc";
	oc.bundle = "/srv/b";
	oc.rootfs = "/srv/b/rootfs";
	mnt.dest = "/data";
	mnt.source = "/srv/data";
	oc.mounts = &mp;
	oc.n_mounts = 1;
	sd.fd = 1;
	sd.key = "file[2b:a721c7]";
	sd.path = "/var/log/c1.log";
	sd.has_flags = true;
	sd.flags = O_WRONLY | O_APPEND;
	oc.stdio = &sp;
	oc.n_stdio = 1;
	assert_int_equal(decode_oci(&oc), 0);
	sd.key = "pipe:[1234]";
	assert_int_equal(decode_oci(&oc), 0);

	sd.key = "socket:[1]";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	sd.key = "file[2b:a7]x";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	sd.key = "pipe:[1234]";
	sd.flags = O_WRONLY | O_CREAT;
	assert_int_equal(decode_oci(&oc), -EPROTO);
	sd.flags = O_RDONLY;
	sd.path = "relative";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	sd.path = NULL;
	assert_int_equal(decode_oci(&oc), 0);

	oc.id = "../etc";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	oc.id = "c1";
	oc.runtime = "docker";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	oc.runtime = "crun";
	oc.runtime_root = "/run/../etc";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	oc.runtime_root = "/run/crun";
	mnt.source = "/srv/..";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	mnt.source = "/srv/data\n";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	mnt.source = "/srv/..data";
	assert_int_equal(decode_oci(&oc), 0);
	oc.bundle = "";
	assert_int_equal(decode_oci(&oc), -EPROTO);
}

static void test_msg_oci_veths(void **state)
{
	Phaul__OciContainer oc = PHAUL__OCI_CONTAINER__INIT;
	Phaul__OciVeth v = PHAUL__OCI_VETH__INIT, *vp[9];

	oc.id = "c1";
	oc.runtime = "runc";
	oc.runtime_root = "/run/runc";
	oc.bundle = "/srv/b";
	oc.rootfs = "/srv/b/rootfs";
	v.inner = "eth0";
	v.outer = "pv1-23";
	v.bridge = "phbr0";
	for (int i = 0; i < 9; i++)
		vp[i] = &v;
	oc.veths = vp;
	oc.n_veths = 1;
	assert_int_equal(decode_oci(&oc), 0);
	v.bridge = NULL;
	assert_int_equal(decode_oci(&oc), 0);
	oc.n_veths = 9;
	assert_int_equal(decode_oci(&oc), -EPROTO);
	oc.n_veths = 1;
	v.outer = "0123456789abcdef"; /* 16: longer than IFNAMSIZ - 1 */
	assert_int_equal(decode_oci(&oc), -EPROTO);
	v.outer = "a/b";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	v.outer = "pv1";
	v.inner = "eth0@x";
	assert_int_equal(decode_oci(&oc), -EPROTO);
	v.inner = "eth0";
	v.bridge = "br:0";
	assert_int_equal(decode_oci(&oc), -EPROTO);
}

static void test_msg_new_pids(void **state)
{
	Phaul__NewPids np = PHAUL__NEW_PIDS__INIT;
	Msg m = PHAUL__MSG__INIT, *out = NULL;
	int32_t pids[] = { 1, 4194304, 0 };
	uint8_t buf[256];
	size_t len;

	m.body_case = PHAUL__MSG__BODY_NEW_PIDS;
	m.new_pids = &np;
	np.pids = pids;
	np.n_pids = 2;
	len = phaul__msg__pack(&m, buf);
	assert_int_equal(msg_decode(buf, len, &out), 0);
	assert_int_equal(out->new_pids->n_pids, 2);
	msg_free(out);
	np.n_pids = 3; /* PID 0 */
	len = phaul__msg__pack(&m, buf);
	assert_int_equal(msg_decode(buf, len, &out), -EPROTO);
	pids[2] = 4194305;
	len = phaul__msg__pack(&m, buf);
	assert_int_equal(msg_decode(buf, len, &out), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_runc),
		cmocka_unit_test(test_parse_runc_cgroups),
		cmocka_unit_test(test_parse_crun_cgroup),
		cmocka_unit_test(test_parse_runc_start_as_string),
		cmocka_unit_test(test_parse_crun_relative_rootfs),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_update_runc),
		cmocka_unit_test(test_update_crun),
		cmocka_unit_test(test_ext_mounts),
		cmocka_unit_test(test_ext_mounts_nsfs),
		cmocka_unit_test(test_ext_mounts_rejects),
		cmocka_unit_test(test_mountinfo_ids),
		cmocka_unit_test(test_msg_oci),
		cmocka_unit_test(test_msg_oci_veths),
		cmocka_unit_test(test_msg_new_pids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
