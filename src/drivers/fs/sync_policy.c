/* SPDX-License-Identifier: MIT */
#include "drivers/fs/sync_policy.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

bool sync_dir_ok(const char *dir)
{
	size_t len = dir ? strnlen(dir, 1025) : 0;
	const char *c;

	if (len < 2 || len > 1024 || dir[0] != '/' || dir[len - 1] == '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = dir[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("/._+-", ch)))
			return false;
	}
	/* each component: not empty, not "." or ".." */
	for (c = dir; c; c = strchr(c + 1, '/')) {
		const char *next = strchr(c + 1, '/');
		size_t n = next ? (size_t)(next - c - 1) : strlen(c + 1);
		if (n == 0 || (n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.'))
			return false;
	}
	return true;
}

/* The number after @label on the line, separators skipped. */
static int number_after(const char *text, const char *label, uint64_t *ret)
{
	const char *p = strstr(text, label);
	uint64_t v = 0;
	bool digits = false;

	if (!p || (p != text && p[-1] != '\n'))
		return -ENOENT;
	for (p += strlen(label); *p == ' '; p++)
		;
	for (; (*p >= '0' && *p <= '9') || *p == ','; p++) {
		if (*p == ',')
			continue;
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
		digits = true;
	}
	if (!digits)
		return -ENOENT;
	*ret = v;
	return 0;
}

int sync_parse_stats(const char *text, struct sync_stats *st)
{
	static const struct {
		const char *label;
		size_t off;
	} fields[] = {
		{ "Number of files:", offsetof(struct sync_stats, files) },
		{ "Number of regular files transferred:",
		  offsetof(struct sync_stats, transferred) },
		{ "Number of deleted files:", offsetof(struct sync_stats, deleted) },
		{ "Total transferred file size:", offsetof(struct sync_stats, changed_bytes) },
		{ "Total bytes sent:", offsetof(struct sync_stats, bytes_sent) },
	};
	int found = 0;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		uint64_t *f = (uint64_t *)((char *)st + fields[i].off);
		if (number_after(text, fields[i].label, f) == 0)
			found++;
	}
	return found ? 0 : -EINVAL;
}

static uint64_t changes(const struct sync_stats *s)
{
	return s->transferred + s->deleted;
}

enum sync_verdict sync_decide(const struct sync_stats *rounds, size_t n)
{
	const struct sync_stats *last = &rounds[n - 1];

	if (last->changed_bytes <= SYNC_SMALL_BYTES && changes(last) <= SYNC_SMALL_FILES)
		return SYNC_CONVERGED;
	if (n >= SYNC_MAX_ROUNDS)
		return SYNC_MAX;
	if (n >= 2 && last->changed_bytes >= rounds[n - 2].changed_bytes &&
	    changes(last) >= changes(&rounds[n - 2]))
		return SYNC_NOT_SHRINKING;
	return SYNC_CONTINUE;
}

const char *sync_verdict_name(enum sync_verdict v)
{
	switch (v) {
	case SYNC_CONTINUE: return "continue";
	case SYNC_CONVERGED: return "converged";
	case SYNC_NOT_SHRINKING: return "not shrinking";
	case SYNC_MAX: return "max rounds";
	}
	return "?";
}
