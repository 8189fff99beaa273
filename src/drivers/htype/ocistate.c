/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "oci: "
#include "drivers/htype/ocistate.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

int oci_runtime_parse(const char *name, enum oci_runtime *ret)
{
	if (!strcmp(name, "runc"))
		*ret = OCI_RUNC;
	else if (!strcmp(name, "crun"))
		*ret = OCI_CRUN;
	else
		return -EINVAL;
	return 0;
}

const char *oci_runtime_name(enum oci_runtime rt)
{
	return rt == OCI_CRUN ? "crun" : "runc";
}

const char *oci_state_file(enum oci_runtime rt)
{
	return rt == OCI_CRUN ? "status" : "state.json";
}

static void json_putp(json_object **j)
{
	if (*j)
		json_object_put(*j);
}

static json_object *get(json_object *o, const char *key, json_type type)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

/* A number, or a decimal string (runc wrote init_process_start as one). */
static int get_u64(json_object *o, const char *key, uint64_t *ret)
{
	json_object *v = get(o, key, json_type_int);
	json_object *s = get(o, key, json_type_string);
	char *end;

	if (v) {
		int64_t n = json_object_get_int64(v);
		if (n < 0)
			return -EINVAL;
		*ret = n;
		return 0;
	}
	if (!s || !*json_object_get_string(s))
		return -EINVAL;
	errno = 0;
	*ret = strtoull(json_object_get_string(s), &end, 10);
	return errno || *end ? -EINVAL : 0;
}

/* runc keeps the bundle as a "bundle=PATH" label of its config. */
static const char *runc_bundle(json_object *cfg)
{
	json_object *labels = get(cfg, "labels", json_type_array);
	size_t n = labels ? json_object_array_length(labels) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *l = json_object_array_get_idx(labels, i);
		const char *s =
			json_object_is_type(l, json_type_string) ? json_object_get_string(l) : "";
		if (!strncmp(s, "bundle=", 7))
			return s + 7;
	}
	return NULL;
}

static int fill_paths(struct oci_state *st, const char *rootfs, const char *bundle)
{
	if (!rootfs || !bundle || bundle[0] != '/' || !*rootfs)
		return -EINVAL;
	if (rootfs[0] == '/')
		st->rootfs = strdup(rootfs);
	else if (asprintf(&st->rootfs, "%s/%s", bundle, rootfs) < 0)
		st->rootfs = NULL;
	st->bundle = strdup(bundle);
	return st->rootfs && st->bundle ? 0 : -ENOMEM;
}

#define OCI_CGROUPS_MAX 32
#define CGROUP_ROOT "/sys/fs/cgroup/"

/* @path if it names a directory below /sys/fs/cgroup/, not yet in @st. */
static int add_cgroup(struct oci_state *st, const char *prefix, const char *path)
{
	char *s;

	if (!path || !*path || strstr(path, "/..") || strstr(path, "../") ||
	    st->nr_cgroups >= OCI_CGROUPS_MAX)
		return 0;
	if (asprintf(&s, "%s%s", prefix, path) < 0)
		return -ENOMEM;
	if (strncmp(s, CGROUP_ROOT, strlen(CGROUP_ROOT)) || !s[strlen(CGROUP_ROOT)]) {
		free(s);
		return 0;
	}
	for (size_t i = 0; i < st->nr_cgroups; i++)
		if (!strcmp(st->cgroups[i], s)) {
			free(s);
			return 0;
		}
	st->cgroups[st->nr_cgroups++] = s;
	return 0;
}

/* runc: cgroup_paths {"memory": "/sys/fs/cgroup/memory/ID", ...};
 * crun: cgroup-path, relative to its cgroup2 mount at /sys/fs/cgroup. */
static int parse_cgroups(enum oci_runtime rt, json_object *o, struct oci_state *st)
{
	json_object *paths = get(o, "cgroup_paths", json_type_object);
	json_object *path = get(o, "cgroup-path", json_type_string);
	int r = 0;

	st->cgroups = calloc(OCI_CGROUPS_MAX, sizeof(char *));
	if (!st->cgroups)
		return -ENOMEM;
	if (rt == OCI_CRUN)
		return path ? add_cgroup(st, "/sys/fs/cgroup", json_object_get_string(path)) : 0;
	if (!paths)
		return 0;
	json_object_object_foreach(paths, key, val)
	{
		(void)key;
		if (r == 0 && json_object_is_type(val, json_type_string))
			r = add_cgroup(st, "", json_object_get_string(val));
	}
	return r;
}

int oci_state_parse(enum oci_runtime rt, const char *json, struct oci_state *ret)
{
	_cleanup_(json_putp) json_object *o = json_tokener_parse(json);
	json_object *cfg, *rootfs, *bundle;
	struct oci_state st = { 0 };
	uint64_t pid;
	int r;

	if (!o || !json_object_is_type(o, json_type_object))
		return -EINVAL;
	if (rt == OCI_RUNC) {
		cfg = get(o, "config", json_type_object);
		rootfs = get(cfg, "rootfs", json_type_string);
		r = get_u64(o, "init_process_pid", &pid);
		if (r == 0)
			r = get_u64(o, "init_process_start", &st.start);
		if (r == 0)
			r = fill_paths(&st, rootfs ? json_object_get_string(rootfs) : NULL,
				       runc_bundle(cfg));
	} else {
		rootfs = get(o, "rootfs", json_type_string);
		bundle = get(o, "bundle", json_type_string);
		r = get_u64(o, "pid", &pid);
		if (r == 0)
			r = get_u64(o, "process-start-time", &st.start);
		if (r == 0)
			r = fill_paths(&st, rootfs ? json_object_get_string(rootfs) : NULL,
				       bundle ? json_object_get_string(bundle) : NULL);
	}
	if (r == 0 && (pid < 2 || pid > (1 << 22)))
		r = -EINVAL;
	if (r == 0)
		r = parse_cgroups(rt, o, &st);
	if (r < 0) {
		oci_state_free(&st);
		return r;
	}
	st.pid = pid;
	*ret = st;
	return 0;
}

void oci_state_free(struct oci_state *st)
{
	free(st->rootfs);
	free(st->bundle);
	st->rootfs = st->bundle = NULL;
	for (size_t i = 0; i < st->nr_cgroups; i++)
		free(st->cgroups[i]);
	free(st->cgroups);
	st->cgroups = NULL;
	st->nr_cgroups = 0;
}

/* runc: namespace_paths {"NEWNET": "/proc/OLD/ns/net", ...} -> new PID. */
static int runc_ns_paths(json_object *o, pid_t pid)
{
	json_object *ns = get(o, "namespace_paths", json_type_object);
	char path[64];

	if (!ns)
		return 0;
	json_object_object_foreach(ns, key, val)
	{
		const char *old = json_object_is_type(val, json_type_string) ?
					  json_object_get_string(val) :
					  NULL;
		const char *name = old ? strrchr(old, '/') : NULL;
		if (!name || strncmp(old, "/proc/", 6))
			continue; /* a namespace joined by path stays as it is */
		snprintf(path, sizeof(path), "/proc/%d/ns/%.16s", pid, name + 1);
		if (json_object_object_add(ns, key, json_object_new_string(path)) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* The rootfs and network namespace path @ch names (runc: config.rootfs
 * and namespace_paths.NEWNET; crun: rootfs). */
static int apply_change(enum oci_runtime rt, json_object *o, const struct oci_state_change *ch)
{
	json_object *cfg = rt == OCI_RUNC ? get(o, "config", json_type_object) : o;
	json_object *ns = get(o, "namespace_paths", json_type_object);
	json_object *list = rt == OCI_RUNC ? get(cfg, "namespaces", json_type_array) : NULL;

	if (ch->rootfs && cfg &&
	    json_object_object_add(cfg, "rootfs", json_object_new_string(ch->rootfs)) < 0)
		return -ENOMEM;
	if (ch->netns && ns &&
	    json_object_object_add(ns, "NEWNET", json_object_new_string(ch->netns)) < 0)
		return -ENOMEM;
	/* the namespace runc joined by path (checkpoint marks it external) */
	for (size_t i = 0; ch->netns && list && i < json_object_array_length(list); i++) {
		json_object *n = json_object_array_get_idx(list, i);
		json_object *type = get(n, "type", json_type_string);
		if (type && !strcmp(json_object_get_string(type), "NEWNET") &&
		    get(n, "path", json_type_string) &&
		    json_object_object_add(n, "path", json_object_new_string(ch->netns)) < 0)
			return -ENOMEM;
	}
	return 0;
}

int oci_state_update(enum oci_runtime rt, const char *json, pid_t pid, uint64_t start, char **ret)
{
	return oci_state_rewrite(rt, json, pid, start, NULL, ret);
}

int oci_state_rewrite(enum oci_runtime rt, const char *json, pid_t pid, uint64_t start,
		      const struct oci_state_change *ch, char **ret)
{
	_cleanup_(json_putp) json_object *o = json_tokener_parse(json);
	const char *kpid = rt == OCI_RUNC ? "init_process_pid" : "pid";
	const char *kstart = rt == OCI_RUNC ? "init_process_start" : "process-start-time";
	const char *out;
	int r = 0;

	if (!o || !json_object_is_type(o, json_type_object) || !get(o, kpid, json_type_int))
		return -EINVAL;
	if (json_object_object_add(o, kpid, json_object_new_int64(pid)) < 0 ||
	    json_object_object_add(o, kstart, json_object_new_uint64(start)) < 0)
		return -ENOMEM;
	if (rt == OCI_RUNC)
		r = runc_ns_paths(o, pid);
	if (r == 0 && ch)
		r = apply_change(rt, o, ch);
	if (r < 0)
		return r;
	out = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							JSON_C_TO_STRING_NOSLASHESCAPE);
	*ret = out ? strdup(out) : NULL;
	return *ret ? 0 : -ENOMEM;
}
