/* SPDX-License-Identifier: MIT */
/*
 * events: the encoder of `phaul migrate --events` (docs/EVENTS.md) and
 * the stream as a reader sees it: one JSON object a line, schema
 * version 1 in each, in the order they happened, the outcome last and
 * carrying the result object; the status the control socket answers
 * with; the terminal's progress bar and ETA.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "engine/events.h"
#include "engine/progress.h"

static int64_t num(json_object *o, const char *k)
{
	json_object *v;

	assert_true(json_object_object_get_ex(o, k, &v));
	return json_object_get_int64(v);
}

static const char *str(json_object *o, const char *k)
{
	json_object *v;

	assert_true(json_object_object_get_ex(o, k, &v));
	return json_object_get_string(v);
}

static void common_fields(void **s)
{
	json_object *o = event_new("step", 1234, 1796624413631ULL);

	assert_int_equal(num(o, "v"), EVENTS_VERSION);
	assert_string_equal(str(o, "event"), "step");
	assert_int_equal(num(o, "elapsed_ms"), 1234);
	assert_int_equal(num(o, "ts"), 1796624413631LL);
	json_object_put(o);
}

static void round_fields(void **s)
{
	struct round_stat rs = { .pages_scanned = 17017,
				 .pages_dirty = 1559,
				 .pages_sent = 16442,
				 .bytes_sent = 67354696,
				 .ms = 327 };
	json_object *o = event_round_fields(event_new("round", 0, 0), 3, &rs, 181), *v;

	assert_int_equal(num(o, "round"), 3);
	assert_int_equal(num(o, "pages_scanned"), 17017);
	assert_int_equal(num(o, "pages_dirty"), 1559);
	assert_int_equal(num(o, "pages_sent"), 16442);
	assert_int_equal(num(o, "bytes"), 67354696);
	assert_int_equal(num(o, "ms"), 327);
	assert_int_equal(num(o, "predicted_frozen_ms"), 181);
	assert_true(json_object_object_get_ex(o, "mb_per_s", &v));
	assert_true(json_object_get_double(v) > 205.9 && json_object_get_double(v) < 206.0);
	assert_true(json_object_object_get_ex(o, "frozen", &v));
	assert_false(json_object_get_boolean(v));
	json_object_put(o);
	/* a round of no time has no rate, not a division by zero */
	rs.ms = 0;
	o = round_stat_fields(json_object_new_object(), &rs);
	assert_true(json_object_object_get_ex(o, "mb_per_s", &v));
	assert_true(json_object_get_double(v) == 0);
	json_object_put(o);
}

static void line_is_one_line(void **s)
{
	json_object *o = event_postcopy_fields(event_new("postcopy", 5, 6), 100, 28);
	size_t len;
	char *line;

	json_object_object_add(o, "phase", json_object_new_string("a\nb"));
	line = event_line(o, &len);
	assert_non_null(line);
	assert_int_equal(strlen(line), len);
	assert_int_equal(line[len - 1], '\n');
	assert_null(memchr(line, '\n', len - 1));
	json_object_put(o);
	o = json_tokener_parse(line);
	assert_non_null(o);
	assert_int_equal(num(o, "pages_moved"), 100);
	assert_int_equal(num(o, "pages_remaining"), 28);
	assert_string_equal(str(o, "phase"), "a\nb");
	json_object_put(o);
	free(line);
}

/* A whole stream, written by the writer thread, read back. */
static void stream(void **s)
{
	char path[] = "/tmp/test_events.XXXXXX", line[4096];
	struct round_stat rs = { .pages_sent = 10, .bytes_sent = 40960, .ms = 2 };
	static const uint8_t id[16] = { 0xab, 0xcd };
	const char *want[] = { "step",	   "round",    "step",	 "committed",
			       "postcopy", "postcopy", "outcome" };
	json_object *result = json_object_new_object(), *o, *v, *st;
	struct events *ev;
	int64_t last = -1;
	size_t n = 0;
	FILE *f;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(events_new(path, "source", &ev), 0);
	events_set_id(ev, id, sizeof(id));
	events_set_workload(ev, 4242, "lazy");
	events_step(ev, "round");
	events_round(ev, 1, &rs, 50);
	events_step(ev, "post-copy");
	events_committed(ev);
	events_postcopy(ev, 1, 9, true);
	/* within EVENTS_POSTCOPY_MS of the last: dropped unless forced */
	events_postcopy(ev, 2, 8, false);
	events_postcopy(ev, 10, 0, true);
	st = events_status(ev);
	assert_string_equal(str(st, "id"), "abcd0000000000000000000000000000");
	assert_string_equal(str(st, "side"), "source");
	assert_string_equal(str(st, "mode"), "lazy");
	assert_string_equal(str(st, "phase"), "post-copy");
	assert_int_equal(num(st, "pid"), 4242);
	assert_int_equal(num(st, "phaul_pid"), getpid());
	assert_true(json_object_object_get_ex(st, "committed", &v) && json_object_get_boolean(v));
	assert_true(json_object_object_get_ex(st, "progress", &v));
	assert_int_equal(num(v, "pages_moved"), 10);
	json_object_put(st);
	json_object_object_add(result, "ok", json_object_new_boolean(1));
	events_outcome(ev, result);
	json_object_put(result);
	events_free(ev);

	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		o = json_tokener_parse(line);
		assert_non_null(o);
		assert_true(n < sizeof(want) / sizeof(want[0]));
		assert_int_equal(num(o, "v"), 1);
		assert_string_equal(str(o, "event"), want[n]);
		assert_true(num(o, "elapsed_ms") >= last);
		last = num(o, "elapsed_ms");
		if (!strcmp(want[n], "round"))
			assert_int_equal(num(o, "pages_sent"), 10);
		if (!strcmp(want[n], "outcome")) {
			assert_true(json_object_object_get_ex(o, "result", &v));
			assert_true(json_object_object_get_ex(v, "ok", &v));
			assert_true(json_object_get_boolean(v));
		}
		json_object_put(o);
		n++;
	}
	fclose(f);
	unlink(path);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
}

static void no_stream(void **s)
{
	struct events *ev;
	json_object *st, *v;

	assert_int_equal(events_new(NULL, "destination", &ev), 0);
	events_step(ev, "preflight");
	st = events_status(ev);
	assert_string_equal(str(st, "phase"), "preflight");
	/* no id yet: null, not a string */
	assert_true(json_object_object_get_ex(st, "id", &v));
	assert_null(v);
	assert_false(json_object_object_get_ex(st, "progress", &v));
	json_object_put(st);
	events_free(ev);
	/* a NULL events is no events */
	events_step(NULL, "x");
	events_free(NULL);
	assert_true(events_new("/nonexistent/dir/f", "source", &ev) < 0);
}

static void bar_and_eta(void **s)
{
	char bar[PROGRESS_BAR_WIDTH + 3];

	progress_bar(bar, 10, 0, 100);
	assert_string_equal(bar, "[----------]");
	progress_bar(bar, 10, 45, 100);
	assert_string_equal(bar, "[####------]");
	progress_bar(bar, 10, 150, 100);
	assert_string_equal(bar, "[##########]");
	progress_bar(bar, 10, 5, 0);
	assert_string_equal(bar, "[----------]");
	/* 25 of 100 in 5 s: 75 more take 15 s */
	assert_int_equal(progress_eta(25, 100, 5.0), 15);
	assert_int_equal(progress_eta(0, 100, 5.0), -1);
	assert_int_equal(progress_eta(100, 100, 5.0), 0);
	assert_int_equal(progress_eta(120, 100, 5.0), 0);
	assert_int_equal(progress_eta(10, 100, 0), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(common_fields),    cmocka_unit_test(round_fields),
		cmocka_unit_test(line_is_one_line), cmocka_unit_test(stream),
		cmocka_unit_test(no_stream),	    cmocka_unit_test(bar_and_eta),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
