/* SPDX-License-Identifier: MIT */
/*
 * phaul report: the JSON `phaul migrate --json` prints, read back into a
 * model (rpt_parse) and written as one self-contained HTML page with
 * inline SVG charts (rpt_html): no script, no external resource.
 *
 * The JSON is local input but may be hand-edited, truncated or hostile:
 * rpt_parse refuses what is not a JSON object (-EINVAL, @err says why),
 * and otherwise keeps every field it can use. A field of the wrong type,
 * a negative, non-finite or too large number is dropped (its value 0)
 * with a warning the page shows; rounds beyond RPT_MAX_ROUNDS and strings
 * beyond RPT_MAX_STR bytes are cut, with a warning. Every string from the
 * JSON is escaped for HTML (html_escape). These files use only libc and
 * json-c (the unit tests and the fuzz target link them alone).
 */
#ifndef PHAUL_CLI_REPORT_HTML_H
#define PHAUL_CLI_REPORT_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RPT_MAX_ROUNDS 1000
#define RPT_MAX_STR 1024
#define RPT_MAX_WARN 16
#define RPT_MAX_INPUT (16u << 20) /* bytes of JSON read */
/* Larger numbers are not believed (2^53: exact in a double). */
#define RPT_MAX_NUM (1ull << 53)

struct rpt_round {
	uint64_t scanned, dirty, sent, bytes, ms;
	double mb_per_s; /* < 0: absent or invalid */
	bool frozen;
};

#define RPT_MAX_FILL 1000 /* samples of postcopy.fill kept */

struct rpt_fill {
	uint64_t ms, pages;
};

struct rpt_postcopy {
	uint64_t last_page_ms, fetched, on_fault, pushed, local, left_at_freeze;
	struct rpt_fill *fill; /* postcopy.fill: time order, pages never fewer */
	size_t nr_fill;
};

struct rpt {
	bool ok, ok_known;
	char *mode, *outcome, *error, *tracking, *stop_reason; /* NULL: absent */
	uint64_t pid, tasks, iterations;
	uint64_t frozen_ms, total_ms, dump_ms, transfer_ms, restore_ms;
	uint64_t bytes_sent, image_bytes, max_rss_kb, predicted_ms, final_pages;
	bool has_tracking; /* the pre-copy fields were there */
	struct rpt_round *rounds;
	size_t nr_rounds;
	size_t rounds_in_json; /* > nr_rounds: cut */
	bool has_postcopy;
	struct rpt_postcopy pc;
	char *warn[RPT_MAX_WARN];
	size_t nr_warn, warn_dropped;
};

/* 0, or -EINVAL (not JSON, not an object), -ENOMEM; @err gets one line. */
int rpt_parse(const char *json, size_t len, struct rpt *r, char *err, size_t errlen);
void rpt_free(struct rpt *r);

/* @s escaped for HTML text and quoted attributes (& < > " ' and control
 * characters, which become U+FFFD). */
void html_escape(FILE *f, const char *s);

/* The page; 0 or -EIO when writing failed. */
int rpt_html(FILE *f, const struct rpt *r);

#endif
