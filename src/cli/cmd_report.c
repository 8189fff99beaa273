/* SPDX-License-Identifier: MIT */
/* phaul report: a migration's JSON (phaul migrate --json) as an HTML page. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/report_html.h"
#include "common/log.h"
#include "common/util.h"

static void report_usage(FILE *f)
{
	fprintf(f, "usage: phaul report RESULT.json > REPORT.html\n"
		   "  RESULT.json  what 'phaul migrate --json' printed ('-': standard input)\n"
		   "Writes one self-contained HTML page (inline SVG charts, no script) on\n"
		   "stdout: the summary, each pre-copy round's dirty and sent pages and rate,\n"
		   "where the frozen time went, and post-copy's page totals.\n"
		   "exit status: 0 written, 1 unreadable or not a migration's JSON, 2 usage\n");
}

int cmd_report(int argc, char **argv)
{
	_cleanup_free_ char *buf = NULL;
	const char *path;
	struct rpt r;
	char err[160];
	size_t len;
	int ret;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		report_usage(stdout);
		return 0;
	}
	if (argc != 2 || (argv[1][0] == '-' && argv[1][1])) {
		report_usage(stderr);
		return 2;
	}
	path = strcmp(argv[1], "-") ? argv[1] : "/dev/stdin";
	ret = read_file(path, RPT_MAX_INPUT + 1, &buf, &len);
	if (ret < 0) {
		pr_err("cannot read %s: %s", argv[1], strerror(-ret));
		return 1;
	}
	if (rpt_parse(buf, len, &r, err, sizeof(err)) < 0) {
		pr_err("%s: %s", argv[1], err);
		return 1;
	}
	ret = rpt_html(stdout, &r);
	rpt_free(&r);
	if (ret < 0) {
		pr_err("cannot write the report: %s", strerror(-ret));
		return 1;
	}
	return 0;
}
