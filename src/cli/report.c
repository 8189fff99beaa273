/* SPDX-License-Identifier: MIT */
#include <json-c/json.h>
#include <stdio.h>

#include "cli/cli.h"

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

void report_json(const struct migration *m, bool ok)
{
	json_object *o = json_object_new_object();
	const struct mig_stats *s = &m->st;

	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	json_object_object_add(o, "mode", json_object_new_string(m->mode));
	json_object_object_add(o, "error", ok ? NULL : json_object_new_string(m->error));
	json_object_object_add(o, "pid", json_object_new_int(m->root_pid));
	json_object_object_add(o, "outcome",
			       json_object_new_string(m->outcome == OUTCOME_COMMITTED ? "committed" :
						      m->outcome == OUTCOME_IN_DOUBT ? "in-doubt" :
										       "rolled-back"));
	add_u64(o, "iterations", s->iterations);
	add_u64(o, "frozen_ms", s->frozen_ms);
	add_u64(o, "total_ms", s->total_ms);
	add_u64(o, "bytes_sent", s->bytes_sent);
	add_u64(o, "restore_ms", s->restore_ms);
	add_u64(o, "dump_ms", s->dump_ms);
	add_u64(o, "transfer_ms", s->transfer_ms);
	add_u64(o, "image_bytes", s->bytes_images);
	add_u64(o, "tasks", m->nr_pids);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(o);
}

void report_human(const struct migration *m, bool ok)
{
	const struct mig_stats *s = &m->st;
	double secs = s->transfer_ms / 1000.0;

	if (!ok)
		return;
	fprintf(stderr,
		"migrated PID %d (%zu tasks) in %s mode\n"
		"  frozen   %llu ms (dump %llu ms, transfer %llu ms, restore %llu ms)\n"
		"  total    %llu ms\n"
		"  sent     %.1f MiB (%.1f MiB of images), %.1f MB/s while transferring\n",
		m->root_pid, m->nr_pids, m->mode, (unsigned long long)s->frozen_ms,
		(unsigned long long)s->dump_ms, (unsigned long long)s->transfer_ms,
		(unsigned long long)s->restore_ms, (unsigned long long)s->total_ms,
		s->bytes_sent / 1048576.0, s->bytes_images / 1048576.0,
		secs > 0 ? s->bytes_images / secs / 1e6 : 0.0);
}
