/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: phaul report's reader of a migration's JSON and the
 * page it writes. Any input is parsed; when it parses, the page is
 * written into memory and must be one document with no markup from the
 * input (no "<script" or "<img", which only a string from the JSON could
 * bring) and never a non-finite coordinate.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/report_html.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpt r;
	char err[160], *out = NULL;
	size_t len = 0;
	FILE *f;

	if (rpt_parse((const char *)data, size, &r, err, sizeof(err)) < 0) {
		CHECK(err[0]);
		return 0;
	}
	CHECK(r.nr_rounds <= RPT_MAX_ROUNDS && r.nr_warn <= RPT_MAX_WARN);
	f = open_memstream(&out, &len);
	CHECK(f);
	CHECK(rpt_html(f, &r) == 0);
	fclose(f);
	CHECK(!strstr(out, "<script") && !strstr(out, "<img"));
	CHECK(!strstr(out, "=\"nan") && !strstr(out, "=\"-nan") && !strstr(out, "=\"inf"));
	CHECK(strstr(out, "</html>") == out + len - strlen("</html>\n"));
	free(out);
	rpt_free(&r);
	return 0;
}
