/* SPDX-License-Identifier: MIT */
/*
 * admit: the destination's policy (admit.h).
 */
#define LOG_PREFIX "policy: "
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "drivers/fs/disk_spec.h"
#include "drivers/htype/lxcconf.h"
#include "target/admit.h"

#define POLICY_MAX (64u * 1024)

static const char *const admit_modes[] = { "stop", "live", "lazy", "hybrid", "restart", NULL };
#define DEFAULT_MODES 0xfu /* all but restart */

static const char *const root_keys[ROOT__MAX] = {
	[ROOT_SYNC] = "sync_root",
	[ROOT_DISK_IMAGE] = "disk_image_root",
	[ROOT_DISK_MOUNT] = "disk_mount_root",
	[ROOT_OCI] = "oci_root",
	[ROOT_LXC] = "lxc_root",
	[ROOT_BIND] = "bind_root",
	[ROOT_STDIO] = "stdio_root",
};

static const struct admit defaults = { .modes = DEFAULT_MODES };

/* A daemon started without a policy object gets the defaults. */
static const struct admit *pick(const struct admit *a)
{
	return a ? a : &defaults;
}

void admit_defaults(struct admit *a)
{
	memset(a, 0, sizeof(*a));
	a->modes = DEFAULT_MODES;
}

void admit_free(struct admit *a)
{
	for (int k = 0; k < ROOT__MAX; k++)
		for (size_t i = 0; i < a->nr_roots[k]; i++)
			free(a->roots[k][i]);
	admit_defaults(a);
}

static int mode_index(const char *mode, size_t n)
{
	for (int i = 0; admit_modes[i]; i++)
		if (strlen(admit_modes[i]) == n && !strncmp(admit_modes[i], mode, n))
			return i;
	return -1;
}

/* "stop live ...": the set of modes, replacing the defaults. */
static int parse_modes(struct admit *a, const char *v, char *why, size_t len)
{
	unsigned int set = 0;

	for (const char *w = v; *w;) {
		size_t n = strcspn(w, " \t,");
		int i = n ? mode_index(w, n) : -2;

		if (i == -1) {
			snprintf(why, len, "unknown mode '%.*s'", (int)n, w);
			return -EINVAL;
		}
		if (i >= 0)
			set |= 1u << i;
		w += n ? n : 1;
	}
	a->modes = set;
	return 0;
}

static int parse_bool(const char *v, bool *ret, char *why, size_t len)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true"))
		*ret = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false"))
		*ret = false;
	else {
		snprintf(why, len, "'%s' is not yes or no", v);
		return -EINVAL;
	}
	return 0;
}

static int add_root(struct admit *a, int k, const char *v, char *why, size_t len)
{
	char res[PATH_MAX];
	int r;

	if (v[0] != '/') {
		snprintf(why, len, "%s must be an absolute path", root_keys[k]);
		return -EINVAL;
	}
	if (a->nr_roots[k] >= ADMIT_ROOTS_MAX) {
		snprintf(why, len, "more than %d %s lines", ADMIT_ROOTS_MAX, root_keys[k]);
		return -E2BIG;
	}
	/* resolved once, now (a part that does not exist yet, such as a
	 * runtime's state directory, is kept as written) */
	r = admit_resolve(v, res, sizeof(res));
	if (r < 0) {
		snprintf(why, len, "%s %s: %s", root_keys[k], v,
			 r == -EINVAL ? "not an absolute path of plain names" : strerror(-r));
		return r;
	}
	a->roots[k][a->nr_roots[k]] = strdup(res);
	if (!a->roots[k][a->nr_roots[k]])
		return -ENOMEM;
	a->nr_roots[k]++;
	return 0;
}

static char *trim(char *s)
{
	char *e = s + strlen(s);

	while (*s == ' ' || *s == '\t')
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int parse_line(struct admit *a, char *line, char *why, size_t len)
{
	char *eq = strchr(line, '='), *key, *val;

	if (!eq) {
		snprintf(why, len, "expected 'key = value'");
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	if (!*val) {
		snprintf(why, len, "%s has no value", key);
		return -EINVAL;
	}
	if (!strcmp(key, "mode"))
		return parse_modes(a, val, why, len);
	if (!strcmp(key, "shell_job"))
		return parse_bool(val, &a->shell_job, why, len);
	if (!strcmp(key, "lxc_hooks"))
		return parse_bool(val, &a->lxc_hooks, why, len);
	if (!strcmp(key, "podman"))
		return parse_bool(val, &a->podman, why, len);
	for (int k = 0; k < ROOT__MAX; k++)
		if (!strcmp(key, root_keys[k]))
			return add_root(a, k, val, why, len);
	snprintf(why, len, "unknown key '%s'", key);
	return -EINVAL;
}

int admit_parse(struct admit *a, const char *file, const char *text, char *why, size_t len)
{
	_cleanup_free_ char *copy = strdup(text);
	char *save = NULL, *line, msg[512];
	unsigned int no = 0;
	int r;

	if (!copy)
		return -ENOMEM;
	a->file = file;
	/* strtok_r would skip blank lines and lose the numbering */
	for (line = copy; line; line = save) {
		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		no++;
		line[strcspn(line, "#")] = '\0';
		if (!*trim(line))
			continue;
		r = parse_line(a, line, msg, sizeof(msg));
		if (r < 0) {
			snprintf(why, len, "%s:%u: %s", file, no, msg);
			return r;
		}
	}
	return 0;
}

/* The file must be root's (or ours), a regular file, not writable by
 * group or others, and reached without a symlink at its last component. */
int admit_load(struct admit *a, const char *file)
{
	_cleanup_close_ int fd = open(file,
				      O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	_cleanup_free_ char *text = NULL;
	char why[1024];
	struct stat st;
	ssize_t n;
	int r;

	admit_defaults(a);
	if (fd < 0) {
		pr_perror("cannot open the policy file %s", file);
		return -errno;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & 022) || st.st_size > POLICY_MAX) {
		pr_err("%s must be a regular file of at most %u bytes, owned by root, "
		       "not writable by group or others",
		       file, POLICY_MAX);
		return -EPERM;
	}
	text = calloc(1, st.st_size + 1);
	if (!text)
		return -ENOMEM;
	n = read(fd, text, st.st_size);
	if (n != st.st_size) {
		pr_err("cannot read %s", file);
		return -EIO;
	}
	r = admit_parse(a, file, text, why, sizeof(why));
	if (r < 0) {
		pr_err("%s", why);
		admit_free(a);
	}
	return r;
}

void admit_describe(const struct admit *a, char *buf, size_t len)
{
	size_t off = 0;

#define OUT(...)                                                            \
	do {                                                                \
		if (off < len)                                              \
			off += snprintf(buf + off, len - off, __VA_ARGS__); \
	} while (0)
	buf[0] = '\0';
	OUT("mode =");
	for (int i = 0; admit_modes[i]; i++)
		if (a->modes & (1u << i))
			OUT(" %s", admit_modes[i]);
	for (int k = 0; k < ROOT__MAX; k++) {
		OUT("; %s =", root_keys[k]);
		if (!a->nr_roots[k])
			OUT(" (none)");
		for (size_t i = 0; i < a->nr_roots[k]; i++)
			OUT(" %s", a->roots[k][i]);
	}
	OUT("; shell_job = %s; lxc_hooks = %s; podman = %s", a->shell_job ? "yes" : "no",
	    a->lxc_hooks ? "yes" : "no", a->podman ? "yes" : "no");
#undef OUT
}

/* Whether @rest ("a/b/c") is free of ".", ".." and empty names. */
static bool names_ok(const char *rest)
{
	for (const char *c = rest; *c;) {
		size_t n = strcspn(c, "/");
		if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += n;
		if (*c == '/')
			c++;
	}
	return true;
}

int admit_resolve(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX], res[PATH_MAX];
	size_t n = path ? strnlen(path, PATH_MAX) : 0, cut;

	if (n == 0 || n >= PATH_MAX || path[0] != '/')
		return -EINVAL;
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	if (!names_ok(buf + 1))
		return -EINVAL;
	/* the longest prefix buf[0, cut) that exists, resolved; the rest
	 * exists not (yet), so holds no symlink */
	for (cut = n;;) {
		char save = buf[cut];
		struct stat st;
		bool found;
		int e;

		buf[cut] = '\0';
		found = realpath(cut ? buf : "/", res) != NULL;
		e = errno;
		/* a dangling symlink: whatever creates the rest would follow it */
		if (!found && e == ENOENT && lstat(buf, &st) == 0)
			e = ELOOP;
		buf[cut] = save;
		if (found)
			break;
		if (e != ENOENT)
			return -e;
		while (cut > 0 && buf[cut - 1] != '/')
			cut--;
		if (cut > 0)
			cut--;
	}
	if ((size_t)snprintf(out, len, "%s%s", strcmp(res, "/") ? res : "", buf + cut) >= len)
		return -ENAMETOOLONG;
	if (!out[0])
		snprintf(out, len, "/");
	return 0;
}

static bool under(const char *root, const char *path)
{
	size_t n = strlen(root);

	if (!strcmp(root, "/"))
		return true;
	return !strncmp(root, path, n) && (path[n] == '\0' || path[n] == '/');
}

static const char *policy_name(const struct admit *a)
{
	return a->file ? a->file : "a --policy file (there is none)";
}

int admit_path(const struct admit *a, enum admit_root kind, const char *what, const char *path,
	       char *why, size_t len)
{
	char res[PATH_MAX];
	int r = admit_resolve(path, res, sizeof(res));

	a = pick(a);
	if (r < 0) {
		snprintf(why, len, "policy: %s '%.256s' is refused: %s", what, path ? path : "",
			 r == -EINVAL ? "not an absolute path of plain names (no '.', '..', '//')" :
					strerror(-r));
		return -EPERM;
	}
	for (size_t i = 0; i < a->nr_roots[kind]; i++)
		if (under(a->roots[kind][i], res))
			return 0;
	snprintf(why, len,
		 "policy: %s %.256s%s%.256s%s is not under any %s (allow it with "
		 "'%s = DIR' in %s)",
		 what, path, strcmp(path, res) ? " (resolved: " : "", strcmp(path, res) ? res : "",
		 strcmp(path, res) ? ")" : "", root_keys[kind], root_keys[kind], policy_name(a));
	return -EPERM;
}

static int refuse(const struct admit *a, char *why, size_t len, const char *rule,
		  const char *setting)
{
	snprintf(why, len, "policy: %s (allow it with '%s' in %s)", rule, setting, policy_name(a));
	return -EPERM;
}

static int check_mode(const struct admit *a, const char *mode, char *why, size_t len)
{
	int i = mode ? mode_index(mode, strlen(mode)) : -1;
	char rule[128], setting[128] = "mode =";
	size_t off = strlen(setting);

	if (i < 0) /* unknown modes are the preflight's to refuse */
		return 0;
	if (a->modes & (1u << i))
		return 0;
	snprintf(rule, sizeof(rule), "mode %s is not allowed here", mode);
	/* the modes allowed now, and this one */
	for (int j = 0; admit_modes[j]; j++)
		if ((a->modes | 1u << i) & (1u << j))
			off += snprintf(setting + off, sizeof(setting) - off, " %s",
					admit_modes[j]);
	return refuse(a, why, len, rule, setting);
}

static int check_fs(const struct admit *a, const char *spec, char *why, size_t len)
{
	char img[PATH_MAX], mnt[PATH_MAX];
	int r;

	if (!strncmp(spec, "sync:", 5))
		return admit_path(a, ROOT_SYNC, "sync: directory", spec + 5, why, len);
	if (!strncmp(spec, "disk:", 5)) {
		if (disk_parse_spec(spec + 5, img, mnt, sizeof(img)) < 0) {
			snprintf(why, len,
				 "policy: %.300s is not disk:IMAGE:MOUNTPOINT of two "
				 "absolute paths of plain names",
				 spec);
			return -EPERM;
		}
		r = admit_path(a, ROOT_DISK_IMAGE, "disk: image", img, why, len);
		return r ? r : admit_path(a, ROOT_DISK_MOUNT, "disk: mount point", mnt, why, len);
	}
	return 0; /* shared: nothing to write on this host */
}

/*
 * Always allowed: the OCI runtime spec's default devices, which runtimes
 * bind from the host where they cannot mknod (a user namespace), and
 * /dev/null, which they also bind over masked paths (/proc/kcore, ...).
 */
static const char *const default_devices[] = {
	"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", NULL
};

static int check_bind(const struct admit *a, const char *src, char *why, size_t len)
{
	char res[PATH_MAX];

	if (admit_resolve(src, res, sizeof(res)) == 0)
		for (size_t i = 0; default_devices[i]; i++)
			if (!strcmp(res, default_devices[i]))
				return 0;
	return admit_path(a, ROOT_BIND, "bind mount source", src, why, len);
}

static int check_oci(const struct admit *a, const Phaul__OciContainer *oc, char *why, size_t len)
{
	int r = admit_path(a, ROOT_OCI, "OCI bundle", oc->bundle, why, len);

	if (r == 0 && oc->podman && !a->podman)
		r = refuse(a, why, len,
			   "Podman containers are not allowed: podman's restore runs them as "
			   "the source describes them (privileges, mounts)",
			   "podman = yes");
	if (r == 0)
		r = admit_path(a, ROOT_OCI, "OCI rootfs", oc->rootfs, why, len);
	if (r == 0)
		r = admit_path(a, ROOT_OCI, "OCI runtime root", oc->runtime_root, why, len);
	for (size_t i = 0; r == 0 && i < oc->n_mounts; i++)
		r = check_bind(a, oc->mounts[i]->source, why, len);
	for (size_t i = 0; r == 0 && i < oc->n_stdio; i++)
		if (oc->stdio[i]->path)
			r = admit_path(a, ROOT_STDIO, "stdio file", oc->stdio[i]->path, why, len);
	return r;
}

/* The value of "key = value" @line when its key is @key (or starts with
 * it when @key ends in '.'), else NULL. */
static const char *conf_value(const char *line, const char *key)
{
	size_t n = strlen(key);
	const char *v;

	while (*line == ' ' || *line == '\t')
		line++;
	if (strncmp(line, key, n))
		return NULL;
	v = line + n;
	if (key[n - 1] == '.')
		v += strcspn(v, " \t=");
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v != '=')
		return NULL;
	for (v++; *v == ' ' || *v == '\t';)
		v++;
	return v;
}

static int check_lxc_line(const struct admit *a, const char *line, char *why, size_t len)
{
	const char *v;
	char src[PATH_MAX];

	if ((conf_value(line, "lxc.hook.") || conf_value(line, "lxc.mount.fstab")) && !a->lxc_hooks)
		return refuse(a, why, len,
			      "LXC hooks and fstab files run or mount as root "
			      "on the destination",
			      "lxc_hooks = yes");
	v = conf_value(line, "lxc.mount.entry");
	if (v && *v == '/') {
		snprintf(src, sizeof(src), "%.*s", (int)strcspn(v, " \t\n"), v);
		return admit_path(a, ROOT_BIND, "lxc.mount.entry source", src, why, len);
	}
	return 0;
}

static int check_lxc(const struct admit *a, const Phaul__LxcContainer *lc, char *why, size_t len)
{
	_cleanup_free_ struct lxcconf *c = calloc(1, sizeof(*c));
	int r = admit_path(a, ROOT_LXC, "lxcpath", lc->lxcpath, why, len);

	if (r == 0 && !c)
		return -ENOMEM;
	if (r == 0 && lxcconf_parse(lc->config, c) == 0)
		r = admit_path(a, ROOT_LXC, "LXC rootfs", c->rootfs, why, len);
	for (const char *l = lc->config; r == 0 && l && *l;
	     l = strchr(l, '\n'), l = l ? l + 1 : l) {
		char line[4096];

		snprintf(line, sizeof(line), "%.*s", (int)strcspn(l, "\n"), l);
		r = check_lxc_line(a, line, why, len);
	}
	return r;
}

int admit_preflight(const struct admit *a, const Phaul__Preflight *p, const Msg *info, char *why,
		    size_t len)
{
	int r;

	a = pick(a);
	r = check_mode(a, p->mode, why, len);
	if (r == 0 && p->has_shell_job && p->shell_job && !a->shell_job)
		r = refuse(a, why, len, "shell jobs (a workload on a terminal) are not allowed",
			   "shell_job = yes");
	for (size_t i = 0; r == 0 && i < p->n_fs; i++)
		r = check_fs(a, p->fs[i], why, len);
	if (r == 0 && info && info->body_case == PHAUL__MSG__BODY_OCI)
		r = check_oci(a, info->oci, why, len);
	if (r == 0 && info && info->body_case == PHAUL__MSG__BODY_LXC)
		r = check_lxc(a, info->lxc, why, len);
	return r;
}
