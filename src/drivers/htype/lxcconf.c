/* SPDX-License-Identifier: MIT */
/*
 * lxcconf: an LXC container's config, the parts the driver needs
 * (lxcconf.h).
 */
#define LOG_PREFIX "lxc: "
#include "drivers/htype/lxcconf.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/msg.h"

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int set_ifname(char *dst, const char *v)
{
	if (strlen(v) > 15 || !name_is_safe(v)) {
		pr_err("'%s' is not an interface name", v);
		return -EINVAL;
	}
	snprintf(dst, 16, "%s", v);
	return 0;
}

static int set_rootfs(struct lxcconf *c, const char *v)
{
	const char *colon = strchr(v, ':');

	if (colon && (colon - v != 3 || strncmp(v, "dir", 3))) {
		pr_err("rootfs '%s': only a directory (dir:PATH or PATH) is supported", v);
		return -ENOTSUP;
	}
	if (colon)
		v = colon + 1;
	if (strlen(v) >= sizeof(c->rootfs) || !path_is_safe(v)) {
		pr_err("rootfs '%s' is not an absolute path", v);
		return -EINVAL;
	}
	snprintf(c->rootfs, sizeof(c->rootfs), "%s", v);
	return 0;
}

static int set_net_type(struct lxcconf_net *n, const char *v)
{
	if (!strcmp(v, "veth"))
		n->type = LXCNET_VETH;
	else if (!strcmp(v, "empty"))
		n->type = LXCNET_EMPTY;
	else if (!strcmp(v, "none"))
		n->type = LXCNET_NONE;
	else {
		pr_err("network type '%s' is not supported (veth, empty, none)", v);
		return -ENOTSUP;
	}
	return 0;
}

/* lxc.net.N.KEY = V */
static int set_net(struct lxcconf *c, const char *key, const char *v)
{
	char *end;
	unsigned long i = strtoul(key, &end, 10);
	struct lxcconf_net *n;

	if (end == key || *end != '.')
		return 0; /* lxc.net = (a reset) or lxc.net.N alone */
	if (i >= LXCCONF_NET_MAX) {
		pr_err("more than %d network devices are not supported", LXCCONF_NET_MAX);
		return -ENOTSUP;
	}
	n = &c->net[i];
	if (i >= c->nr_net)
		c->nr_net = i + 1;
	key = end + 1;
	if (!strcmp(key, "type"))
		return set_net_type(n, v);
	if (!strcmp(key, "link"))
		return set_ifname(n->link, v);
	if (!strcmp(key, "name"))
		return set_ifname(n->name, v);
	if (!strcmp(key, "veth.pair"))
		return set_ifname(n->pair, v);
	return 0;
}

/* lxc.idmap = u|g|b NSID HOSTID RANGE: who NSID 0 is on the host */
static int set_idmap(struct lxcconf *c, const char *v)
{
	char kind;
	long ns, host, range;
	int n = 0;

	if (sscanf(v, "%c %ld %ld %ld%n", &kind, &ns, &host, &range, &n) != 4 || v[n] ||
	    !strchr("ugb", kind) || ns < 0 || host < 0 || range < 1 || host > 0xfffffffeL) {
		pr_err("lxc.idmap '%.64s' is not u|g|b NSID HOSTID RANGE", v);
		return -EINVAL;
	}
	if (ns != 0)
		return 0;
	if (kind != 'g')
		c->root_uid = host;
	if (kind != 'u')
		c->root_gid = host;
	return 0;
}

static int set(struct lxcconf *c, const char *key, const char *v)
{
	if (!strcmp(key, "lxc.rootfs.path"))
		return set_rootfs(c, v);
	if (!strcmp(key, "lxc.console.path")) {
		c->console = strcmp(v, "none") != 0;
		return 0;
	}
	if (!strncmp(key, "lxc.net.", 8))
		return set_net(c, key + 8, v);
	if (!strcmp(key, "lxc.idmap"))
		return set_idmap(c, v);
	if (!strcmp(key, "lxc.apparmor.profile")) {
		c->apparmor = *v != '\0'; /* an empty value resets it */
		return 0;
	}
	if (!strncmp(key, "lxc.network.", 12)) {
		pr_err("legacy key %s: LXC 5 needs lxc.net.*", key);
		return -EINVAL;
	}
	return 0;
}

static int parse_line(struct lxcconf *c, char *line)
{
	char *eq, *key;

	line = trim(line);
	if (!*line || *line == '#')
		return 0;
	eq = strchr(line, '=');
	if (!eq) {
		pr_err("config line without '=': %.64s", line);
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(line);
	return set(c, key, trim(eq + 1));
}

int lxcconf_parse(const char *text, struct lxcconf *c)
{
	_cleanup_free_ char *copy = NULL;
	char *line, *save = NULL;
	int r = 0;

	memset(c, 0, sizeof(*c));
	c->console = true; /* LXC's default: a console on a pty */
	c->root_uid = c->root_gid = -1;
	if (strnlen(text, LXCCONF_MAX + 1) > LXCCONF_MAX)
		return -E2BIG;
	copy = strdup(text);
	if (!copy)
		return -ENOMEM;
	for (line = strtok_r(copy, "\n", &save); r == 0 && line; line = strtok_r(NULL, "\n", &save))
		r = parse_line(c, line);
	if (r == 0 && !c->rootfs[0]) {
		pr_err("the config names no lxc.rootfs.path");
		r = -EINVAL;
	}
	for (size_t i = 0; r == 0 && i < c->nr_net; i++)
		if (c->net[i].type == LXCNET_UNSET) {
			pr_err("lxc.net.%zu has no type", i);
			r = -EINVAL;
		}
	return r;
}

/* The value in "KEY = VALUE\n" (trailing blanks cut), or NULL (not that
 * key, or more than one line). */
static const char *info_value(const char *out, const char *key, size_t *len)
{
	size_t klen = strlen(key);
	const char *end;

	while (isspace((unsigned char)*out))
		out++;
	if (strncmp(out, key, klen))
		return NULL;
	out += klen;
	while (*out == ' ' || *out == '\t')
		out++;
	if (*out++ != '=')
		return NULL;
	while (*out == ' ' || *out == '\t')
		out++;
	end = out + strlen(out);
	while (end > out && isspace((unsigned char)end[-1]))
		end--;
	*len = end - out;
	return memchr(out, '\n', *len) ? NULL : out;
}

int lxcconf_info_long(const char *out, const char *key, long *v)
{
	size_t len;
	const char *val = info_value(out, key, &len);
	char num[16], *end;
	long n;

	if (!val || len >= sizeof(num))
		return -EINVAL;
	if (!len) {
		*v = 0;
		return 0;
	}
	memcpy(num, val, len);
	num[len] = '\0';
	errno = 0;
	n = strtol(num, &end, 10);
	if (errno || end == num || *end || n < 0 || n > 65536)
		return -EINVAL;
	*v = n;
	return 0;
}

int lxcconf_info_str(const char *out, const char *key, char *buf, size_t size)
{
	size_t len;
	const char *val = info_value(out, key, &len);

	if (!val || len >= size)
		return -EINVAL;
	memcpy(buf, val, len);
	buf[len] = '\0';
	return 0;
}

static size_t hex_run(const char *s)
{
	size_t n = 0;

	while ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))
		n++;
	return n;
}

int lxcconf_tty_key(const char *text, char *buf, size_t size)
{
	size_t a, b, len;

	if (strncmp(text, "tty[", 4))
		return -EINVAL;
	a = hex_run(text + 4);
	if (!a || a > 16 || text[4 + a] != ':')
		return -EINVAL;
	b = hex_run(text + 5 + a);
	if (!b || b > 16 || text[5 + a + b] != ']')
		return -EINVAL;
	len = 6 + a + b;
	if (strcmp(text + len, "") && strcmp(text + len, "\n"))
		return -EINVAL;
	if (len >= size)
		return -EINVAL;
	memcpy(buf, text, len);
	buf[len] = '\0';
	return 0;
}

int lxcconf_log_error(const char *log, char *buf, size_t size)
{
	for (const char *l = log; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *end = strchr(l, '\n') ?: l + strlen(l), *msg = NULL, *e;
		int n;

		e = memmem(l, end - l, " ERROR ", 7);
		if (!e)
			continue;
		for (const char *s = e; (s = memmem(s, end - s, " - ", 3)); s += 3)
			msg = s + 3;
		if (!msg || msg == end)
			continue;
		n = end - msg < (ptrdiff_t)size ? (int)(end - msg) : (int)size - 1;
		snprintf(buf, size, "%.*s", n, msg);
		return 0;
	}
	return -ENOENT;
}
