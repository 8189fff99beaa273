/* SPDX-License-Identifier: MIT */
/* phaul report: the migration JSON into its model, HTML escaping, the page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli/report_html.h"

static const char live_json[] =
	"{\"ok\":true,\"mode\":\"live\",\"error\":null,\"pid\":4242,\"outcome\":\"committed\","
	"\"iterations\":2,\"frozen_ms\":180,\"total_ms\":2400,\"bytes_sent\":90000000,"
	"\"restore_ms\":90,\"dump_ms\":40,\"transfer_ms\":20,\"image_bytes\":300000,\"tasks\":3,"
	"\"max_rss_kb\":9000,\"tracking\":\"pagemap-scan\",\"stop_reason\":\"converged\","
	"\"predicted_frozen_ms\":150,\"final_pages\":900,\"iters\":["
	"{\"pages_scanned\":16384,\"pages_dirty\":16384,\"pages_sent\":16000,\"bytes\":65536000,"
	"\"ms\":900,\"mb_per_s\":72.8,\"frozen\":false},"
	"{\"pages_scanned\":16384,\"pages_dirty\":900,\"pages_sent\":900,\"bytes\":3686400,"
	"\"ms\":50,\"mb_per_s\":73.7,\"frozen\":true}]}\n";

static void parses_live(void **s)
{
	struct rpt r;
	char err[128];

	assert_int_equal(rpt_parse(live_json, strlen(live_json), &r, err, sizeof(err)), 0);
	assert_true(r.ok && r.ok_known);
	assert_string_equal(r.mode, "live");
	assert_string_equal(r.outcome, "committed");
	assert_null(r.error);
	assert_string_equal(r.tracking, "pagemap-scan");
	assert_string_equal(r.stop_reason, "converged");
	assert_int_equal(r.pid, 4242);
	assert_int_equal(r.tasks, 3);
	assert_int_equal(r.frozen_ms, 180);
	assert_int_equal(r.dump_ms, 40);
	assert_int_equal(r.transfer_ms, 20);
	assert_int_equal(r.restore_ms, 90);
	assert_int_equal(r.bytes_sent, 90000000);
	assert_int_equal(r.predicted_ms, 150);
	assert_int_equal(r.final_pages, 900);
	assert_true(r.has_tracking);
	assert_int_equal(r.nr_rounds, 2);
	assert_int_equal(r.rounds[0].dirty, 16384);
	assert_int_equal(r.rounds[0].sent, 16000);
	assert_int_equal(r.rounds[0].ms, 900);
	assert_false(r.rounds[0].frozen);
	assert_true(r.rounds[1].frozen);
	assert_true(r.rounds[1].mb_per_s > 73.6 && r.rounds[1].mb_per_s < 73.8);
	assert_false(r.has_postcopy);
	assert_int_equal(r.nr_warn, 0);
	rpt_free(&r);
}

/* postcopy.fill: kept when every sample is [ms, pages] in order. */
static void parses_fill(void **s)
{
	static const char good[] =
		"{\"postcopy\":{\"pages_fetched\":400,\"fill\":[[0,10],[50,400],[100,400]]}}";
	static const char *const bad[] = {
		"{\"postcopy\":{\"fill\":[[0,10],[50,4]]}}",   /* pages go back */
		"{\"postcopy\":{\"fill\":[[60,10],[50,40]]}}", /* time goes back */
		"{\"postcopy\":{\"fill\":[[0,10],[50]]}}",     /* not a pair */
		"{\"postcopy\":{\"fill\":[[0,-1]]}}",	       /* negative */
		"{\"postcopy\":{\"fill\":[[0,\"7\"]]}}",       /* a string */
		"{\"postcopy\":{\"fill\":[[0,1.5]]}}",	       /* not whole */
		"{\"postcopy\":{\"fill\":{\"0\":1}}}",	       /* not an array */
	};
	struct rpt r;
	char err[128];
	FILE *f;
	char *page = NULL;
	size_t len = 0;

	assert_int_equal(rpt_parse(good, strlen(good), &r, err, sizeof(err)), 0);
	assert_int_equal(r.pc.nr_fill, 3);
	assert_int_equal(r.pc.fill[1].ms, 50);
	assert_int_equal(r.pc.fill[1].pages, 400);
	assert_int_equal(r.nr_warn, 0);
	f = open_memstream(&page, &len);
	assert_int_equal(rpt_html(f, &r), 0);
	fclose(f);
	assert_non_null(strstr(page, "id=\"chart-fill\""));
	assert_non_null(strstr(page, "<title>50 ms: 400 pages</title>"));
	free(page);
	rpt_free(&r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(rpt_parse(bad[i], strlen(bad[i]), &r, err, sizeof(err)), 0);
		assert_int_equal(r.pc.nr_fill, 0);
		assert_null(r.pc.fill);
		assert_int_equal(r.nr_warn, 1);
		rpt_free(&r);
	}
}

static void parses_postcopy(void **s)
{
	static const char j[] =
		"{\"ok\":true,\"mode\":\"lazy\",\"postcopy\":{\"last_page_ms\":700,"
		"\"pages_fetched\":5000,\"pages_on_fault\":120,\"pages_pushed\":4880,"
		"\"pages_local\":10,\"pages_left_at_freeze\":3}}";
	struct rpt r;
	char err[128];

	assert_int_equal(rpt_parse(j, strlen(j), &r, err, sizeof(err)), 0);
	assert_true(r.has_postcopy);
	assert_false(r.has_tracking);
	assert_int_equal(r.pc.last_page_ms, 700);
	assert_int_equal(r.pc.fetched, 5000);
	assert_int_equal(r.pc.on_fault, 120);
	assert_int_equal(r.pc.pushed, 4880);
	assert_int_equal(r.pc.local, 10);
	assert_int_equal(r.pc.left_at_freeze, 3);
	assert_int_equal(r.nr_warn, 0);
	rpt_free(&r);
}

/* Wrong types, negatives, fractions, huge numbers: dropped, one warning each. */
static void drops_bad_fields(void **s)
{
	static const char j[] =
		"{\"ok\":\"yes\",\"mode\":42,\"pid\":\"1\",\"frozen_ms\":-5,"
		"\"total_ms\":1.5,\"bytes_sent\":1e300,\"dump_ms\":12.0,\"tasks\":9007199254740993,"
		"\"iters\":[7,{\"pages_dirty\":-1,\"pages_sent\":3,\"mb_per_s\":\"fast\"},"
		"{\"mb_per_s\":-2}],\"postcopy\":[]}";
	struct rpt r;
	char err[128];

	assert_int_equal(rpt_parse(j, strlen(j), &r, err, sizeof(err)), 0);
	assert_false(r.ok_known);
	assert_null(r.mode);
	assert_int_equal(r.pid, 0);
	assert_int_equal(r.frozen_ms, 0);
	assert_int_equal(r.total_ms, 0);
	assert_int_equal(r.bytes_sent, 0);
	assert_int_equal(r.dump_ms, 12); /* an integral double is a count */
	assert_int_equal(r.tasks, 0);
	assert_int_equal(r.nr_rounds, 3);
	assert_int_equal(r.rounds[0].dirty, 0);
	assert_true(r.rounds[0].mb_per_s < 0);
	assert_int_equal(r.rounds[1].dirty, 0);
	assert_int_equal(r.rounds[1].sent, 3);
	assert_true(r.rounds[1].mb_per_s < 0);
	assert_true(r.rounds[2].mb_per_s < 0);
	assert_false(r.has_postcopy);
	/* ok mode pid frozen total bytes tasks iters[0] dirty rate rate postcopy */
	assert_int_equal(r.nr_warn, 12);
	assert_int_equal(r.warn_dropped, 0);
	assert_non_null(strstr(r.warn[3], "frozen_ms"));
	rpt_free(&r);
}

/* json-c reads NaN and Infinity: they must not reach a chart. */
static void drops_non_finite(void **s)
{
	static const char j[] = "{\"frozen_ms\":NaN,\"total_ms\":Infinity,"
				"\"iters\":[{\"mb_per_s\":NaN,\"ms\":-Infinity}]}";
	struct rpt r;
	char err[128];
	int ret = rpt_parse(j, strlen(j), &r, err, sizeof(err));

	if (ret == -EINVAL) /* a json-c without them: refused, fine too */
		return;
	assert_int_equal(ret, 0);
	assert_int_equal(r.frozen_ms, 0);
	assert_int_equal(r.total_ms, 0);
	assert_int_equal(r.nr_rounds, 1);
	assert_true(r.rounds[0].mb_per_s < 0);
	assert_int_equal(r.rounds[0].ms, 0);
	assert_int_equal(r.nr_warn, 4);
	rpt_free(&r);
}

static void refuses(const char *j, size_t len, const char *why)
{
	struct rpt r;
	char err[128] = "";

	assert_int_equal(rpt_parse(j, len, &r, err, sizeof(err)), -EINVAL);
	if (!strstr(err, why))
		fail_msg("'%.*s': error '%s' does not say '%s'", (int)len, j, err, why);
	assert_null(r.mode);
	assert_null(r.rounds);
}

static void refuses_what_is_not_an_object(void **s)
{
	refuses("", 0, "not JSON");
	refuses("{\"ok\":tru", 9, "not JSON");
	refuses("{\"ok\":true", 10, "ends too early");
	refuses("{} {}", 5, "more after the object");
	refuses("[1,2]", 5, "not an object");
	refuses("\"live\"", 6, "not an object");
	refuses("{\"a\":1}\0{", 9, "more after the object");
	refuses("{}", RPT_MAX_INPUT + 1, "larger than");
}

static void refuses_deep_nesting(void **s)
{
	size_t n = 100000;
	char *j = malloc(2 * n + 8);

	assert_non_null(j);
	strcpy(j, "{\"a\":");
	memset(j + 5, '[', n);
	memset(j + 5 + n, ']', n);
	strcpy(j + 5 + 2 * n, "}");
	refuses(j, strlen(j), "not JSON");
	free(j);
}

/* 5000 rounds: the first RPT_MAX_ROUNDS kept, the cut said. */
static void cuts_huge_arrays_and_strings(void **s)
{
	size_t cap = 5000 * 32 + 4 * RPT_MAX_STR;
	char *j = malloc(cap), *p = j;
	struct rpt r;
	char err[128];

	assert_non_null(j);
	p += sprintf(p, "{\"mode\":\"");
	memset(p, 'x', 2 * RPT_MAX_STR);
	p += 2 * RPT_MAX_STR;
	p += sprintf(p, "\",\"iters\":[");
	for (int i = 0; i < 5000; i++)
		p += sprintf(p, "%s{\"pages_dirty\":%d}", i ? "," : "", i);
	strcpy(p, "]}");
	assert_int_equal(rpt_parse(j, strlen(j), &r, err, sizeof(err)), 0);
	assert_int_equal(strlen(r.mode), RPT_MAX_STR);
	assert_int_equal(r.nr_rounds, RPT_MAX_ROUNDS);
	assert_int_equal(r.rounds_in_json, 5000);
	assert_int_equal(r.rounds[RPT_MAX_ROUNDS - 1].dirty, RPT_MAX_ROUNDS - 1);
	assert_int_equal(r.nr_warn, 2);
	rpt_free(&r);
	free(j);
}

static void caps_warnings(void **s)
{
	char j[4096], *p = j;
	struct rpt r;
	char err[128];

	p += sprintf(p, "{\"iters\":[");
	for (int i = 0; i < 40; i++)
		p += sprintf(p, "%s{\"ms\":-1}", i ? "," : "");
	strcpy(p, "]}");
	assert_int_equal(rpt_parse(j, strlen(j), &r, err, sizeof(err)), 0);
	assert_int_equal(r.nr_warn, RPT_MAX_WARN);
	assert_int_equal(r.warn_dropped, 40 - RPT_MAX_WARN);
	rpt_free(&r);
}

static char *escaped(const char *in)
{
	char *out = NULL;
	size_t len;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	html_escape(f, in);
	fclose(f);
	return out;
}

static void escapes_html(void **s)
{
	char *e = escaped("<script>alert('x' & \"y\")</script>\x01\x7f\tok\n\xc3\xa9");

	assert_string_equal(e, "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
			       "\xef\xbf\xbd\xef\xbf\xbd\tok\n\xc3\xa9");
	free(e);
	e = escaped("");
	assert_string_equal(e, "");
	free(e);
	e = escaped(NULL);
	assert_string_equal(e, "");
	free(e);
}

static char *page(const char *j)
{
	struct rpt r;
	char err[128], *out = NULL;
	size_t len;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	assert_int_equal(rpt_parse(j, strlen(j), &r, err, sizeof(err)), 0);
	assert_int_equal(rpt_html(f, &r), 0);
	fclose(f);
	rpt_free(&r);
	return out;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void page_has_the_charts(void **s)
{
	char *h = page(live_json);

	assert_int_equal(count(h, "<rect class=\"bar dirty"), 2);
	assert_int_equal(count(h, "<rect class=\"bar sent"), 2);
	assert_int_equal(count(h, "<rect class=\"bar sent frozen\""), 1);
	assert_int_equal(count(h, "<circle class=\"ratept\""), 2);
	assert_int_equal(count(h, "<rect class=\"seg "), 4);
	assert_non_null(strstr(h, "<title>dump: 40 ms</title>"));
	assert_non_null(strstr(h, "<title>commit, other: 30 ms</title>"));
	assert_null(strstr(h, "id=\"chart-postcopy\""));
	assert_null(strstr(h, "<script"));
	assert_null(strstr(h, "nan"));
	assert_null(strstr(h, "inf"));
	free(h);
}

/* A hostile JSON: its strings never become markup, the charts stay finite. */
static void page_of_hostile_json(void **s)
{
	char *h = page("{\"mode\":\"<script>alert(1)</script>\",\"outcome\":\"\\\"><img src=x>\","
		       "\"error\":\"</td></table><svg onload=alert(1)>\",\"tracking\":\"'\","
		       "\"iters\":[{},{\"pages_dirty\":9007199254740992,\"ms\":0}],"
		       "\"postcopy\":{\"pages_fetched\":1,\"pages_on_fault\":5}}");

	assert_null(strstr(h, "<script"));
	assert_null(strstr(h, "<img"));
	assert_null(strstr(h, "<svg onload"));
	assert_non_null(strstr(h, "&lt;script&gt;alert(1)&lt;/script&gt;"));
	assert_int_equal(count(h, "<rect class=\"bar dirty"), 2);
	assert_non_null(strstr(h, "id=\"chart-postcopy\""));
	assert_non_null(strstr(h, "id=\"warnings\""));
	assert_null(strstr(h, "nan"));
	assert_null(strstr(h, "inf"));
	assert_null(strstr(h, "-"
			      "1")); /* no negative coordinate or width */
	free(h);
}

static void page_without_rounds_or_times(void **s)
{
	char *h = page("{}");

	assert_non_null(strstr(h, "id=\"no-rounds\""));
	assert_non_null(strstr(h, "id=\"no-frozen\""));
	assert_int_equal(count(h, "<rect"), 0);
	free(h);
	h = page("{\"mode\":\"lazy\",\"frozen_ms\":10,\"postcopy\":{}}");
	assert_non_null(strstr(h, "id=\"no-postcopy\""));
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_live),
		cmocka_unit_test(parses_postcopy),
		cmocka_unit_test(parses_fill),
		cmocka_unit_test(drops_bad_fields),
		cmocka_unit_test(drops_non_finite),
		cmocka_unit_test(refuses_what_is_not_an_object),
		cmocka_unit_test(refuses_deep_nesting),
		cmocka_unit_test(cuts_huge_arrays_and_strings),
		cmocka_unit_test(caps_warnings),
		cmocka_unit_test(escapes_html),
		cmocka_unit_test(page_has_the_charts),
		cmocka_unit_test(page_of_hostile_json),
		cmocka_unit_test(page_without_rounds_or_times),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
