/* SPDX-License-Identifier: MIT */
/* Convergence policy against synthetic round traces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "engine/converge.h"

static const struct policy P = { .downtime_ms = 300,
				 .max_iters = 8,
				 .max_time_ms = 0,
				 .fixed_ms = 50 };

/* 125 000 bytes/ms = 1 Gbit/s */
static struct round_stat rs(uint64_t dirty, uint64_t sent_pages, uint64_t ms)
{
	return (struct round_stat){ .pages_scanned = 262144,
				    .pages_dirty = dirty,
				    .pages_sent = sent_pages,
				    .bytes_sent = sent_pages * 4096,
				    .ms = ms };
}

static void no_rounds_continue(void **s)
{
	uint64_t pred;

	assert_int_equal(policy_decide(&P, NULL, 0, 0, &pred), POLICY_CONTINUE);
}

static void converges_when_prediction_fits(void **s)
{
	/* 1 GiB sent in 8.6 s, then 16 MiB dirty: 16.8 MB / 125 kB/ms = 134 ms + 50 */
	struct round_stat r[] = { rs(4096, 262144, 8590) };
	uint64_t pred;

	assert_int_equal(policy_decide(&P, r, 1, 8590, &pred), POLICY_CONVERGED);
	assert_in_range(pred, 180, 190);
}

static void continues_while_too_big(void **s)
{
	/* 64 MiB dirty at 1 Gbit/s: ~537 ms + 50 > 300 */
	struct round_stat r[] = { rs(16384, 262144, 8590) };
	uint64_t pred;

	assert_int_equal(policy_decide(&P, r, 1, 8590, &pred), POLICY_CONTINUE);
	assert_true(pred > 300);
}

static void stops_when_growing_over_10_percent(void **s)
{
	struct round_stat r[] = { rs(20000, 262144, 8590), rs(22001, 20000, 700) };
	uint64_t pred;

	assert_int_equal(policy_decide(&P, r, 2, 9290, &pred), POLICY_NOT_SHRINKING);
	/* exactly +10 % still counts as shrinking enough to go on */
	r[1].pages_dirty = 22000;
	assert_int_equal(policy_decide(&P, r, 2, 9290, &pred), POLICY_CONTINUE);
}

static void stops_when_small(void **s)
{
	struct round_stat r[] = { rs(64, 262144, 1) };
	uint64_t pred;

	/* even with a useless bandwidth estimate */
	r[0].bytes_sent = 0;
	assert_int_equal(policy_decide(&P, r, 1, 1, &pred), POLICY_SMALL);
	r[0].pages_dirty = 65;
	assert_int_equal(policy_decide(&P, r, 1, 1, &pred), POLICY_CONTINUE);
}

static void stops_at_max_iters_and_time(void **s)
{
	struct round_stat r[8];
	struct policy p = P;
	uint64_t pred;

	for (int i = 0; i < 8; i++)
		r[i] = rs(30000 - i * 100, 30000, 1000);
	assert_int_equal(policy_decide(&p, r, 7, 7000, &pred), POLICY_CONTINUE);
	assert_int_equal(policy_decide(&p, r, 8, 8000, &pred), POLICY_MAX_ITERS);
	p.max_iters = 0;
	p.max_time_ms = 5000;
	assert_int_equal(policy_decide(&p, r, 7, 4999, &pred), POLICY_CONTINUE);
	assert_int_equal(policy_decide(&p, r, 7, 5000, &pred), POLICY_MAX_TIME);
}

static void bandwidth_over_recent_rounds(void **s)
{
	struct round_stat r[] = { rs(1, 1000, 1000), rs(1, 250000, 8000), rs(1, 100, 1),
				  rs(1, 2000, 100) };

	/* the last three rounds together; the first is out of the window */
	assert_float_equal(policy_bandwidth(r, 4), (250000.0 + 100 + 2000) * 4096 / 8101, 1);
	assert_float_equal(policy_bandwidth(r, 1), 1000.0 * 4096 / 1000, 1);
	assert_float_equal(policy_bandwidth(r, 0), 0, 0);
}

/*
 * Bytes on the wire, not pages: the 64 MiB dirty that did not fit at
 * 1 Gbit/s fits when the rounds showed a page costs a tenth of PAGE on
 * the wire (compression, zero pages).
 */
static void wire_bytes_per_page(void **s)
{
	/* 262144 pages in 26.2 MB (a tenth), at 125 kB/ms on the wire */
	struct round_stat r[] = { rs(16384, 262144, 859) };
	uint64_t pred;

	r[0].bytes_sent = 262144 * 4096 / 10;
	assert_float_equal(policy_wire_per_page(r, 1), 409.6, 0.1);
	/* 16384 x 409.6 B / 125 kB/ms = 54 ms + 50 */
	assert_int_equal(policy_decide(&P, r, 1, 859, &pred), POLICY_CONVERGED);
	assert_in_range(pred, 100, 110);
	/* never more than a page: framing of incompressible data */
	r[0].bytes_sent = 262144 * 4100ull;
	assert_float_equal(policy_wire_per_page(r, 1), 4096, 0);
	assert_float_equal(policy_wire_per_page(r, 0), 4096, 0);
}

/* --mode auto: a round that dirtied as many wire bytes as it sent */
static void auto_outpaced(void **s)
{
	/* 1 GiB sent in 8.6 s while 300 000 pages were written: outpaced */
	struct round_stat fast[] = { rs(300000, 262144, 8590) };
	/* 80 % of what was sent: each round shaves a fifth off */
	struct round_stat near[] = { rs(209715, 262144, 8590) };
	/* a quarter of that: more rounds still shrink the dirty set */
	struct round_stat slow[] = { rs(65536, 262144, 8590) };

	(void)s;
	assert_int_equal(policy_auto_verdict(POLICY_CONTINUE, fast, 1), POLICY_OUTPACED);
	assert_int_equal(policy_auto_verdict(POLICY_CONTINUE, near, 1), POLICY_OUTPACED);
	assert_int_equal(policy_auto_verdict(POLICY_CONTINUE, slow, 1), POLICY_CONTINUE);
	/* a verdict already reached stands */
	assert_int_equal(policy_auto_verdict(POLICY_MAX_ITERS, fast, 1), POLICY_MAX_ITERS);
	assert_int_equal(policy_auto_verdict(POLICY_CONTINUE, NULL, 0), POLICY_CONTINUE);
	/* compressed pages: the dirty pages cost what sent pages cost */
	fast[0].bytes_sent /= 10;
	slow[0].bytes_sent /= 10;
	assert_int_equal(policy_auto_verdict(POLICY_CONTINUE, fast, 1), POLICY_OUTPACED);
	assert_int_equal(policy_auto_verdict(POLICY_CONTINUE, slow, 1), POLICY_CONTINUE);
}

static void auto_picks_live_or_hybrid(void **s)
{
	char why[160];

	(void)s;
	assert_int_equal(policy_pick_mode(&P, POLICY_CONVERGED, 120, why, sizeof(why)), MODE_LIVE);
	assert_non_null(strstr(why, "converged"));
	assert_int_equal(policy_pick_mode(&P, POLICY_SMALL, 60, why, sizeof(why)), MODE_LIVE);
	/* the rounds ran out, but what is left still fits the target */
	assert_int_equal(policy_pick_mode(&P, POLICY_MAX_ITERS, 290, why, sizeof(why)), MODE_LIVE);
	assert_int_equal(policy_pick_mode(&P, POLICY_MAX_ITERS, 900, why, sizeof(why)),
			 MODE_HYBRID);
	assert_non_null(strstr(why, "~900 ms (target 300)"));
	assert_int_equal(policy_pick_mode(&P, POLICY_OUTPACED, 2400, why, sizeof(why)),
			 MODE_HYBRID);
	assert_non_null(strstr(why, "outpace"));
	assert_int_equal(policy_pick_mode(&P, POLICY_NOT_SHRINKING, UINT64_MAX, why, sizeof(why)),
			 MODE_HYBRID);
	assert_non_null(strstr(why, "unknown"));
	/* a short buffer is cut, never overrun */
	policy_pick_mode(&P, POLICY_OUTPACED, 2400, why, 8);
	assert_int_equal(strlen(why), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_rounds_continue),
		cmocka_unit_test(converges_when_prediction_fits),
		cmocka_unit_test(continues_while_too_big),
		cmocka_unit_test(stops_when_growing_over_10_percent),
		cmocka_unit_test(stops_when_small),
		cmocka_unit_test(stops_at_max_iters_and_time),
		cmocka_unit_test(bandwidth_over_recent_rounds),
		cmocka_unit_test(wire_bytes_per_page),
		cmocka_unit_test(auto_outpaced),
		cmocka_unit_test(auto_picks_live_or_hybrid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
