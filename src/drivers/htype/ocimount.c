/* SPDX-License-Identifier: MIT */
/*
 * ocimount: which of a container's mounts are binds of host paths
 * (ocistate.h's oci_ext_mounts), from two mountinfo texts.
 *
 * A mount's root is a path in its file system, except for mounts of
 * objects that have none: a named network namespace (`ip netns add`, CNI)
 * leaves an nsfs mount whose root is "net:[4026532174]" in every mount
 * namespace copied after it, as do persisted mnt, uts, ... namespaces.
 * Those are no binds of a host path; they still hide what is under them.
 */
#define LOG_PREFIX "oci: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "drivers/htype/ocistate.h"

struct mi {
	unsigned int major, minor;
	bool path; /* root is a path, not "net:[N]" and the like */
	char root[4096];
	char point[4096];
};

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

static int parse_line(const char *line, struct mi *m)
{
	if (sscanf(line, "%*d %*d %u:%u %4095s %4095s", &m->major, &m->minor, m->root, m->point) !=
	    4)
		return -EINVAL;
	unescape(m->root);
	unescape(m->point);
	m->path = m->root[0] == '/';
	return m->point[0] == '/' ? 0 : -EINVAL;
}

/* Parse every line of @text; -EINVAL if one is malformed. */
static int parse_all(const char *text, struct mi **ret, size_t *nr)
{
	_cleanup_free_ struct mi *v = NULL;
	size_t n = 0, cap = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (*l == '\n')
			continue;
		if (n == cap) {
			struct mi *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (!nv)
				return -ENOMEM;
			v = nv;
		}
		if (parse_line(l, &v[n]) < 0)
			return -EINVAL;
		n++;
	}
	*ret = TAKE_PTR(v);
	*nr = n;
	return 0;
}

/* @path is @dir or below it; the rest (with its '/') in *rest. */
static bool under(const char *path, const char *dir, const char **rest)
{
	size_t len = strlen(dir);

	if (len == 1) { /* "/" */
		*rest = strcmp(path, "/") ? path : "";
		return true;
	}
	if (strncmp(path, dir, len) || (path[len] && path[len] != '/'))
		return false;
	*rest = path + len;
	return true;
}

/* A later mount on or above h[i]'s mount point hides it. */
static bool hidden(const struct mi *h, size_t nh, size_t i)
{
	const char *rest;

	for (size_t j = i + 1; j < nh; j++)
		if (under(h[i].point, h[j].point, &rest))
			return true;
	return false;
}

/* The host path of @c's root: a visible host mount of the same device
 * whose root holds it (the deepest such root); NULL when there is none. */
static char *host_path(const struct mi *c, const struct mi *h, size_t nh)
{
	const struct mi *best = NULL;
	const char *rest = NULL, *r;
	char *out;

	for (size_t i = 0; i < nh; i++)
		if (h[i].path && h[i].major == c->major && h[i].minor == c->minor &&
		    under(c->root, h[i].root, &r) &&
		    (!best || strlen(h[i].root) > strlen(best->root)) && !hidden(h, nh, i)) {
			best = &h[i];
			rest = r;
		}
	if (!best)
		return NULL;
	if (!strcmp(best->point, "/"))
		return strdup(*rest ? rest : "/");
	if (asprintf(&out, "%s%s", best->point, rest) < 0)
		return NULL;
	return out;
}

static int add(struct oci_mount **v, size_t *n, const char *dest, char *src)
{
	struct oci_mount *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv) {
		free(src);
		return -ENOMEM;
	}
	*v = nv;
	nv[*n].source = src;
	nv[*n].dest = strdup(dest);
	(*n)++;
	return nv[*n - 1].dest ? 0 : -ENOMEM;
}

int oci_ext_mounts(const char *cont_mountinfo, const char *host_mountinfo, struct oci_mount **ret,
		   size_t *ret_nr)
{
	_cleanup_free_ struct mi *c = NULL, *h = NULL;
	struct oci_mount *v = NULL;
	const struct mi *root = NULL;
	size_t nc, nh, n = 0;
	const char *rest;
	int r;

	r = parse_all(cont_mountinfo, &c, &nc);
	if (r == 0)
		r = parse_all(host_mountinfo, &h, &nh);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nc; i++)
		if (!strcmp(c[i].point, "/"))
			root = &c[i];
	if (!root || !root->path)
		return -EINVAL;
	for (size_t i = 0; i < nc && r == 0; i++) {
		char *src;
		if (!c[i].path)
			continue; /* a namespace file: CRIU's business */
		if (&c[i] == root || (c[i].major == root->major && c[i].minor == root->minor &&
				      under(c[i].root, root->root, &rest)))
			continue; /* the root file system, or a part of it */
		src = host_path(&c[i], h, nh);
		if (src)
			r = add(&v, &n, c[i].point, src);
	}
	if (r < 0) {
		oci_mounts_free(v, n);
		return r;
	}
	*ret = v;
	*ret_nr = n;
	return 0;
}

void oci_mounts_free(struct oci_mount *m, size_t nr)
{
	for (size_t i = 0; i < nr; i++) {
		free(m[i].dest);
		free(m[i].source);
	}
	free(m);
}

bool mountinfo_has_id(const char *mi, unsigned int id)
{
	for (const char *l = mi; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned int v;
		if (sscanf(l, "%u ", &v) == 1 && v == id)
			return true;
	}
	return false;
}
