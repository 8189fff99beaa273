/* SPDX-License-Identifier: MIT */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "engine/events.h"

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

/* phaul's own peak memory (kB): the O(pages) budget is checked with it */
static uint64_t max_rss_kb(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss : 0;
}

static const char *outcome_name(enum mig_outcome o)
{
	switch (o) {
	case OUTCOME_COMMITTED: return "committed";
	case OUTCOME_IN_DOUBT: return "in-doubt";
	case OUTCOME_LOST: return "lost";
	default: return "rolled-back";
	}
}

/* Lazy, hybrid: what moved after the commit. */
static json_object *postcopy_json(const struct mig_stats *s)
{
	json_object *o = json_object_new_object();

	add_u64(o, "last_page_ms", s->postcopy_ms);
	add_u64(o, "pages_fetched", s->pages_remote);
	add_u64(o, "pages_on_fault", s->pages_fault);
	add_u64(o, "pages_pushed", s->pages_remote - s->pages_fault);
	add_u64(o, "pages_local", s->pages_local);
	add_u64(o, "pages_left_at_freeze", s->pages_dropped);
	json_object *fill = json_object_new_array();
	for (size_t i = 0; i < s->nr_fill; i++) {
		json_object *pt = json_object_new_array();
		json_object_array_add(pt, json_object_new_uint64(s->fill[i].ms));
		json_object_array_add(pt, json_object_new_uint64(s->fill[i].pages));
		json_object_array_add(fill, pt);
	}
	json_object_object_add(o, "fill", fill);
	return o;
}

/* Page data through the codec (pageframe.h): 0s with an older peer. */
static json_object *pages_json(const struct mig_stats *s)
{
	json_object *o = json_object_new_object();

	add_u64(o, "bytes_raw", s->pages.raw_bytes);
	add_u64(o, "bytes_wire", s->pages.wire_bytes);
	add_u64(o, "zero_pages", s->pages.zero_pages);
	add_u64(o, "zstd_frames", s->pages.zstd_frames);
	json_object_object_add(o, "ratio",
			       json_object_new_double(
				       s->pages.wire_bytes ?
					       (double)s->pages.raw_bytes / s->pages.wire_bytes :
					       0));
	add_u64(o, "compress_cpu_ms", s->pages.cpu_ns / 1000000);
	return o;
}

/* Image files through their codec (xfer.h): raw on the wire with an
 * older peer or --compress off, the header's 8 bytes a chunk aside. */
static json_object *images_json(const struct mig_stats *s)
{
	json_object *o = json_object_new_object();
	uint64_t wire = s->images.wire_bytes ? s->images.wire_bytes : s->bytes_images;

	add_u64(o, "bytes_raw", s->bytes_images);
	add_u64(o, "bytes_wire", wire);
	add_u64(o, "zstd_chunks", s->images.zstd_chunks);
	json_object_object_add(o, "ratio",
			       json_object_new_double(wire ? (double)s->bytes_images / wire : 0));
	add_u64(o, "compress_cpu_ms", s->images.cpu_ns / 1000000);
	return o;
}

/* The mode, "auto" until --mode auto chose one. */
static const char *shown_mode(const struct migration *m)
{
	return m->auto_mode && !m->st.auto_why[0] ? "auto" : mode_name(m->mode);
}

/* --mode auto: what it chose and why ("" before the rounds ended) */
static json_object *auto_json(const struct migration *m)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "chosen",
			       json_object_new_string(m->st.auto_why[0] ? mode_name(m->mode) : ""));
	json_object_object_add(o, "why", json_object_new_string(m->st.auto_why));
	return o;
}

json_object *report_object(const struct migration *m, bool ok)
{
	json_object *o = json_object_new_object();
	const struct mig_stats *s = &m->st;

	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	json_object_object_add(o, "mode", json_object_new_string(shown_mode(m)));
	if (m->auto_mode)
		json_object_object_add(o, "auto", auto_json(m));
	json_object_object_add(o, "error", ok ? NULL : json_object_new_string(m->error));
	json_object_object_add(o, "pid", json_object_new_int(m->root_pid));
	json_object_object_add(o, "outcome", json_object_new_string(outcome_name(m->outcome)));
	add_u64(o, "iterations", s->iterations);
	add_u64(o, "frozen_ms", s->frozen_ms);
	add_u64(o, "total_ms", s->total_ms);
	add_u64(o, "bytes_sent", s->bytes_sent);
	add_u64(o, "restore_ms", s->restore_ms);
	add_u64(o, "dump_ms", s->dump_ms);
	add_u64(o, "transfer_ms", s->transfer_ms);
	add_u64(o, "image_bytes", s->bytes_images);
	add_u64(o, "tasks", m->nr_pids);
	add_u64(o, "cow_pages", s->cow_pages);
	add_u64(o, "cow_sent_pages", s->cow_sent);
	add_u64(o, "cow_copied_pages", s->cow_copied);
	add_u64(o, "shmem_pages", s->shm_pages);
	add_u64(o, "shmem_frozen_pages", s->shm_frozen_pages);
	add_u64(o, "max_rss_kb", max_rss_kb());
	if (s->tracking) {
		json_object *iters = json_object_new_array();
		json_object_object_add(o, "tracking", json_object_new_string(s->tracking));
		json_object_object_add(o, "stop_reason",
				       s->stop_reason ? json_object_new_string(s->stop_reason) :
							NULL);
		add_u64(o, "predicted_frozen_ms", s->predicted_ms);
		add_u64(o, "final_pages", s->final_pages);
		for (size_t i = 0; i < s->nr_rounds; i++)
			json_object_array_add(iters, round_stat_fields(json_object_new_object(),
								       &s->rounds[i]));
		json_object_object_add(o, "iters", iters);
	}
	if (mode_postcopy(m->mode) && strcmp(shown_mode(m), "auto"))
		json_object_object_add(o, "postcopy", postcopy_json(s));
	if (s->fill_asked)
		json_object_object_add(o, "fill_asked", json_object_new_boolean(true));
	if (s->stop_path) {
		json_object_object_add(o, "stop_path", json_object_new_string(s->stop_path));
		json_object_object_add(o, "stop_path_why", json_object_new_string(s->stop_why));
	}
	/* stop mode that streams: the fill from the store after the commit */
	if (m->stream)
		json_object_object_add(o, "fill", postcopy_json(s));
	json_object_object_add(o, "pages", pages_json(s));
	json_object_object_add(o, "images", images_json(s));
	return o;
}

void report_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
}

void report_human(const struct migration *m, bool ok)
{
	const struct mig_stats *s = &m->st;
	double secs = s->total_ms / 1000.0;

	if (!ok)
		return;
	fprintf(stderr,
		"migrated PID %d (%zu tasks) in %s mode\n"
		"  frozen   %llu ms (dump %llu ms, restore %llu ms)\n"
		"  total    %llu ms\n"
		"  sent     %.1f MiB (%.1f MiB of CRIU images as %.1f MiB), %.1f MB/s on average\n",
		m->root_pid, m->nr_pids, shown_mode(m), (unsigned long long)s->frozen_ms,
		(unsigned long long)s->dump_ms, (unsigned long long)s->restore_ms,
		(unsigned long long)s->total_ms, s->bytes_sent / 1048576.0,
		s->bytes_images / 1048576.0,
		(s->images.wire_bytes ? s->images.wire_bytes : s->bytes_images) / 1048576.0,
		secs > 0 ? s->bytes_sent / secs / 1e6 : 0.0);
	if (m->auto_mode && s->auto_why[0])
		fprintf(stderr, "  auto     %s: %s\n", mode_name(m->mode), s->auto_why);
	if (s->tracking)
		fprintf(stderr,
			"  rounds   %u before the freeze (%s, tracking: %s), %llu pages while frozen\n",
			s->iterations, s->stop_reason ? s->stop_reason : "-", s->tracking,
			(unsigned long long)s->final_pages);
	if (mode_postcopy(m->mode))
		fprintf(stderr,
			"  post-copy %llu pages fetched (%llu on a fault), %llu from pre-copy; "
			"the last %llu ms after the commit\n",
			(unsigned long long)s->pages_remote, (unsigned long long)s->pages_fault,
			(unsigned long long)s->pages_local, (unsigned long long)s->postcopy_ms);
	if (s->stop_path && m->stream)
		fprintf(stderr,
			"  memory   streamed while CRIU dumped; all in place %llu ms after the "
			"commit (%llu pages from the destination's store)\n",
			(unsigned long long)s->postcopy_ms, (unsigned long long)s->pages_local);
	else if (s->stop_path)
		fprintf(stderr, "  memory   in CRIU's images: %s\n", s->stop_why);
	if (s->fill_asked)
		fprintf(stderr, "  fill     the connection broke during the memory fill; the "
				"destination, asked again, had filled it\n");
	if (s->cow_pages)
		fprintf(stderr,
			"  shared   %llu pages a fork shares, restored with the tree to stay "
			"shared (%llu sent while frozen, %llu copied on arrival)\n",
			(unsigned long long)s->cow_pages, (unsigned long long)s->cow_sent,
			(unsigned long long)s->cow_copied);
	if (s->shm_pages)
		fprintf(stderr,
			"  shmem    %llu pages of shared memory pre-copied (%llu while frozen)\n",
			(unsigned long long)s->shm_pages, (unsigned long long)s->shm_frozen_pages);
}
