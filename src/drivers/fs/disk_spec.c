/* SPDX-License-Identifier: MIT */
#include "drivers/fs/disk_spec.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "drivers/fs/sync_policy.h"

int disk_parse_spec(const char *spec, char *image, char *mnt, size_t len)
{
	const char *colon = strchr(spec, ':');
	size_t n;

	if (!colon || strchr(colon + 1, ':'))
		return -EINVAL;
	n = (size_t)(colon - spec);
	if (n >= len || strlen(colon + 1) >= len)
		return -EINVAL;
	memcpy(image, spec, n);
	image[n] = '\0';
	strcpy(mnt, colon + 1);
	if (!sync_dir_ok(image) || !sync_dir_ok(mnt) || !strcmp(image, mnt))
		return -EINVAL;
	return 0;
}

/* Decode mountinfo's \ooo escapes of one field into @out (NUL-terminated). */
static int unescape(const char *in, size_t n, char *out, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == '\\' && i + 3 < n && in[i + 1] >= '0' && in[i + 1] <= '3' &&
		    in[i + 2] >= '0' && in[i + 2] <= '7' && in[i + 3] >= '0' && in[i + 3] <= '7') {
			c = (char)((in[i + 1] - '0') * 64 + (in[i + 2] - '0') * 8 +
				   (in[i + 3] - '0'));
			i += 3;
		}
		if (o + 1 >= len)
			return -ENAMETOOLONG;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* The @k-th space-separated field of @line (0-based): start and length. */
static const char *field(const char *line, const char *end, int k, size_t *n)
{
	const char *p = line;

	for (int i = 0; i < k; i++) {
		p = memchr(p, ' ', (size_t)(end - p));
		if (!p)
			return NULL;
		p++;
	}
	*n = strcspn(p, " \n");
	return p + *n <= end ? p : NULL;
}

static int match_line(const char *line, const char *end, const char *mnt, char *src, size_t srclen,
		      char *fstype, size_t fslen)
{
	char point[4096], s[4096], t[64];
	const char *f, *dash = NULL;
	size_t n;

	f = field(line, end, 4, &n);
	if (!f || unescape(f, n, point, sizeof(point)) < 0 || strcmp(point, mnt))
		return -ENOENT;
	for (const char *p = f; p + 3 <= end; p++)
		if (!memcmp(p, " - ", 3)) {
			dash = p + 3;
			break;
		}
	if (!dash)
		return -EINVAL;
	f = field(dash, end, 0, &n);
	if (!f || unescape(f, n, t, sizeof(t)) < 0)
		return -EINVAL;
	f = field(dash, end, 1, &n);
	if (!f || unescape(f, n, s, sizeof(s)) < 0)
		return -EINVAL;
	if (strlen(s) >= srclen || strlen(t) >= fslen)
		return -ENAMETOOLONG;
	strcpy(src, s);
	strcpy(fstype, t);
	return 0;
}

int disk_mountinfo_find(const char *text, const char *mnt, char *src, size_t srclen, char *fstype,
			size_t fslen)
{
	int found = -ENOENT;

	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		if (match_line(line, end, mnt, src, srclen, fstype, fslen) == 0)
			found = 0;
		line = *end ? end + 1 : NULL;
	}
	return found;
}
