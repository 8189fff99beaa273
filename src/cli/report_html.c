/* SPDX-License-Identifier: MIT */
/*
 * phaul report: struct rpt as one HTML page. The charts are inline SVG
 * drawn here; the page has no script and forbids any (its
 * Content-Security-Policy allows inline styles only), so a string that
 * escaped the escaping could still not run.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "cli/report_html.h"

#define W 760 /* chart width, px */
#define ML 70 /* margins: left, right, top, bottom */
#define MR 70
#define MT 30
#define MB 46

void html_escape(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
				fputs("\xef\xbf\xbd", f);
			else
				fputc(c, f);
		}
	}
}

/* printf, then @s escaped, then the rest: "<td>" s "</td>" */
static void esc_between(FILE *f, const char *pre, const char *s, const char *post)
{
	fputs(pre, f);
	html_escape(f, s ? s : "-");
	fputs(post, f);
}

/* The smallest 1, 2 or 5 times a power of ten >= @v (1 for 0). */
static double nice_max(double v)
{
	double p;

	if (!(v > 0))
		return 1;
	p = pow(10, floor(log10(v)));
	if (v <= p)
		return p;
	if (v <= 2 * p)
		return 2 * p;
	if (v <= 5 * p)
		return 5 * p;
	return 10 * p;
}

static void human_bytes(char *buf, size_t len, uint64_t b)
{
	if (b >= (1ull << 30))
		snprintf(buf, len, "%.2f GiB", b / 1073741824.0);
	else if (b >= (1ull << 20))
		snprintf(buf, len, "%.1f MiB", b / 1048576.0);
	else if (b >= 1024)
		snprintf(buf, len, "%.1f KiB", b / 1024.0);
	else
		snprintf(buf, len, "%llu B", (unsigned long long)b);
}

static const char style[] =
	"body{font:14px/1.4 sans-serif;margin:24px;color:#222;background:#fff;max-width:820px}"
	"h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:24px 0 6px}"
	"table.summary{border-collapse:collapse}"
	"table.summary th{text-align:left;padding:2px 16px 2px 0;font-weight:normal;color:#555}"
	"table.summary td{padding:2px 0;font-weight:bold}"
	".ok{color:#1a7f37}.bad{color:#c62828}"
	"svg{display:block;margin:4px 0}svg text{font:12px sans-serif;fill:#333}"
	"svg .axis{stroke:#888;stroke-width:1}svg .grid{stroke:#ddd;stroke-width:1}"
	".dirty{fill:#e8a33d}.sent{fill:#3d7be8}.bar.frozen{stroke:#000;stroke-width:1.5}"
	".rate{fill:none;stroke:#c62828;stroke-width:2}.ratept{fill:#c62828}"
	".dump{fill:#7b61c9}.transfer{fill:#3d7be8}.restore{fill:#2ea36b}.other{fill:#aaa}"
	".local{fill:#2ea36b}.pushed{fill:#3d7be8}.fault{fill:#e8a33d}"
	"p.note{color:#555;font-size:13px}ul.warn{color:#c62828}";

static void svg_open(FILE *f, const char *id, int h, const char *title)
{
	fprintf(f,
		"<svg id=\"%s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\" role=\"img\"><title>%s</title>\n",
		id, W, h, W, h, title);
}

/* A legend entry at (@x, @y): a swatch of class @cls and its label. */
static void legend(FILE *f, int x, int y, const char *cls, const char *label)
{
	fprintf(f,
		"<rect class=\"swatch %s\" x=\"%d\" y=\"%d\" width=\"12\" height=\"12\"/>"
		"<text x=\"%d\" y=\"%d\">%s</text>\n",
		cls, x, y - 10, x + 16, y, label);
}

/* A vertical axis with three ticks (0, half, @max) at x = @x. */
static void y_axis(FILE *f, int x, int h, double max, const char *anchor, int dx, const char *unit)
{
	int y0 = h - MB, ph = h - MB - MT;

	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", x, MT, x,
		y0);
	for (int i = 0; i <= 2; i++) {
		int y = y0 - ph * i / 2;

		double v = max * i / 2;

		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\">", x + dx, y + 4, anchor);
		fprintf(f, v == floor(v) && v < 1e15 ? "%.0f</text>\n" : "%.3g</text>\n", v);
		if (i && dx < 0)
			fprintf(f,
				"<line class=\"grid\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n",
				x, y, W - MR, y);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"%s\">%s</text>\n", x + dx, MT - 12,
		anchor, unit);
}

static double bar_h(uint64_t v, double max, int ph)
{
	double h = v / max * ph;

	return h > ph ? ph : h;
}

/* The rounds' transfer rate: a line and a point per round (right axis). */
static void rate_line(FILE *f, const struct rpt *r, double gw, double rmax, int ph, int y0)
{
	fprintf(f, "<polyline class=\"rate\" points=\"");
	for (size_t i = 0; i < r->nr_rounds; i++)
		if (r->rounds[i].mb_per_s >= 0)
			fprintf(f, "%.1f,%.1f ", ML + gw * (i + 0.5),
				y0 - fmin(r->rounds[i].mb_per_s / rmax, 1) * ph);
	fprintf(f, "\"/>\n");
	for (size_t i = 0; i < r->nr_rounds; i++)
		if (r->rounds[i].mb_per_s >= 0)
			fprintf(f,
				"<circle class=\"ratept\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\">"
				"<title>round %zu: %.1f MB/s</title></circle>\n",
				ML + gw * (i + 0.5),
				y0 - fmin(r->rounds[i].mb_per_s / rmax, 1) * ph, i + 1,
				r->rounds[i].mb_per_s);
}

/* Per round: dirty and sent pages (bars, left axis), MB/s (line, right). */
static void chart_rounds(FILE *f, const struct rpt *r)
{
	const int h = 320, ph = h - MT - MB, pw = W - ML - MR, y0 = h - MB;
	double pmax = 0, rmax = 0, gw, bw;
	size_t n = r->nr_rounds;
	bool any_rate = false;

	fprintf(f, "<section id=\"rounds\"><h2>Pre-copy rounds</h2>\n");
	if (!n) {
		fprintf(f,
			"<p class=\"note\" id=\"no-rounds\">No pre-copy rounds in this "
			"migration%s.</p></section>\n",
			r->has_tracking ? "" :
					  " (its mode copies nothing while the workload runs)");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct rpt_round *rd = &r->rounds[i];

		pmax = fmax(pmax, fmax((double)rd->dirty, (double)rd->sent));
		if (rd->mb_per_s >= 0) {
			rmax = fmax(rmax, rd->mb_per_s);
			any_rate = true;
		}
	}
	pmax = nice_max(pmax);
	rmax = nice_max(rmax);
	gw = (double)pw / n;
	bw = gw * 0.38;
	svg_open(f, "chart-rounds", h, "Pre-copy rounds: dirty and sent pages, transfer rate");
	y_axis(f, ML, h, pmax, "end", -6, "pages");
	if (any_rate)
		y_axis(f, W - MR, h, rmax, "start", 6, "MB/s");
	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", ML, y0,
		W - MR, y0);
	for (size_t i = 0; i < n; i++) {
		const struct rpt_round *rd = &r->rounds[i];
		double x = ML + gw * i + gw * 0.12;
		double hd = bar_h(rd->dirty, pmax, ph), hs = bar_h(rd->sent, pmax, ph);
		const char *fz = rd->frozen ? " frozen" : "";

		fprintf(f,
			"<rect class=\"bar dirty%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			"height=\"%.1f\"><title>round %zu%s: %llu pages dirty of %llu scanned"
			"</title></rect>\n",
			fz, x, y0 - hd, bw, hd, i + 1, rd->frozen ? " (frozen)" : "",
			(unsigned long long)rd->dirty, (unsigned long long)rd->scanned);
		fprintf(f,
			"<rect class=\"bar sent%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			"height=\"%.1f\"><title>round %zu%s: %llu pages sent, %llu bytes in "
			"%llu ms</title></rect>\n",
			fz, x + bw, y0 - hs, bw, hs, i + 1, rd->frozen ? " (frozen)" : "",
			(unsigned long long)rd->sent, (unsigned long long)rd->bytes,
			(unsigned long long)rd->ms);
		if (n <= 40 || i % (n / 20) == 0)
			fprintf(f,
				"<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%zu%s</text>\n",
				x + bw, y0 + 16, i + 1, rd->frozen ? " F" : "");
	}
	if (any_rate)
		rate_line(f, r, gw, rmax, ph, y0);
	legend(f, ML, h - 6, "dirty", "pages dirty");
	legend(f, ML + 120, h - 6, "sent", "pages sent");
	if (any_rate)
		legend(f, ML + 230, h - 6, "ratept", "MB/s (right axis)");
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">round (F: while frozen)</text>\n",
		W - MR, h - 6);
	fprintf(f, "</svg>\n");
	if (r->rounds_in_json > n)
		fprintf(f, "<p class=\"note\">The first %zu of %zu rounds.</p>\n", n,
			r->rounds_in_json);
	fprintf(f, "</section>\n");
}

struct seg {
	const char *cls, *label;
	uint64_t ms;
};

/* One horizontal bar of @n segments, scaled to @total. */
static void stacked_bar(FILE *f, const struct seg *s, size_t n, double total, const char *unit)
{
	const int pw = W - ML - MR;
	double x = ML;

	for (size_t i = 0; i < n; i++) {
		double w = s[i].ms / total * pw;

		fprintf(f,
			"<rect class=\"seg %s\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"36\">"
			"<title>%s: %llu %s</title></rect>\n",
			s[i].cls, x, MT, w, s[i].label, (unsigned long long)s[i].ms, unit);
		x += w;
	}
	for (size_t i = 0; i < n; i++)
		fprintf(f,
			"<rect class=\"swatch %s\" x=\"%zu\" y=\"%d\" width=\"12\" height=\"12\"/>"
			"<text x=\"%zu\" y=\"%d\">%s %llu %s</text>\n",
			s[i].cls, ML + i * 165, MT + 50, ML + i * 165 + 16, MT + 60, s[i].label,
			(unsigned long long)s[i].ms, unit);
}

/* Where the frozen time went: dump, transfer, restore, the rest. */
static void chart_frozen(FILE *f, const struct rpt *r)
{
	struct seg s[] = {
		{ "dump", "dump", r->dump_ms },
		{ "transfer", "transfer", r->transfer_ms },
		{ "restore", "restore", r->restore_ms },
		{ "other", "commit, other", 0 },
	};
	uint64_t sum = r->dump_ms + r->transfer_ms + r->restore_ms;

	fprintf(f, "<section id=\"frozen\"><h2>Frozen time: %llu ms</h2>\n",
		(unsigned long long)r->frozen_ms);
	if (!r->frozen_ms && !sum) {
		fprintf(f, "<p class=\"note\" id=\"no-frozen\">No frozen time recorded.</p>"
			   "</section>\n");
		return;
	}
	if (r->frozen_ms >= sum)
		s[3].ms = r->frozen_ms - sum;
	svg_open(f, "chart-frozen", MT + 70, "Frozen time by phase");
	stacked_bar(f, s, 4, (double)(sum > r->frozen_ms ? sum : r->frozen_ms), "ms");
	fprintf(f, "</svg>\n");
	if (sum > r->frozen_ms)
		fprintf(f,
			"<p class=\"note\">The phases add up to %llu ms, more than the "
			"frozen time: they overlap, or the report is inconsistent.</p>\n",
			(unsigned long long)sum);
	fprintf(f, "<p class=\"note\">Dump: CRIU's final dump, the tree frozen; transfer: "
		   "its images sent; restore: from the destination's restore request to "
		   "the tree restored there, as it measured it; the rest: the commit and "
		   "the messages around it.</p></section>\n");
}

/* Post-copy over time: the pages the source had sent, ms after the commit. */
static void chart_fill(FILE *f, const struct rpt_postcopy *p)
{
	const int h = 260, ph = h - MT - MB, pw = W - ML - MR, y0 = h - MB;
	const struct rpt_fill *last = &p->fill[p->nr_fill - 1];
	double tmax = nice_max((double)last->ms), pmax = nice_max((double)last->pages);

	svg_open(f, "chart-fill", h, "Post-copy over time: pages sent by the source");
	y_axis(f, ML, h, pmax, "end", -6, "pages");
	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", ML, y0,
		W - MR, y0);
	for (int i = 0; i <= 2; i++)
		fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n",
			ML + pw * i / 2, y0 + 16, tmax * i / 2);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">ms after the commit</text>\n",
		W - MR, h - 6);
	fprintf(f, "<polyline class=\"rate fill\" points=\"");
	for (size_t i = 0; i < p->nr_fill; i++)
		fprintf(f, "%.1f,%.1f ", ML + pw * fmin(p->fill[i].ms / tmax, 1),
			y0 - bar_h(p->fill[i].pages, pmax, ph));
	fprintf(f, "\"/>\n");
	for (size_t i = 0; i < p->nr_fill; i++)
		fprintf(f,
			"<circle class=\"ratept fillpt\" cx=\"%.1f\" cy=\"%.1f\" r=\"2\">"
			"<title>%llu ms: %llu pages</title></circle>\n",
			ML + pw * fmin(p->fill[i].ms / tmax, 1),
			y0 - bar_h(p->fill[i].pages, pmax, ph), (unsigned long long)p->fill[i].ms,
			(unsigned long long)p->fill[i].pages);
	fprintf(f, "</svg>\n");
}

/* Post-copy: where the pages came from, and the fill over time. */
static void chart_postcopy(FILE *f, const struct rpt *r)
{
	const struct rpt_postcopy *p = &r->pc;
	uint64_t pushed = p->fetched >= p->on_fault ? p->fetched - p->on_fault : 0;
	struct seg s[] = {
		{ "local", "pre-copied", p->local },
		{ "pushed", "pushed", pushed },
		{ "fault", "on a fault", p->on_fault },
	};
	uint64_t total = p->local + pushed + p->on_fault;

	if (!r->has_postcopy)
		return;
	fprintf(f, "<section id=\"postcopy\"><h2>Post-copy</h2>\n");
	if (!total) {
		fprintf(f, "<p class=\"note\" id=\"no-postcopy\">No page moved after the "
			   "commit.</p></section>\n");
		return;
	}
	svg_open(f, "chart-postcopy", MT + 70, "Post-copy: where the pages came from");
	stacked_bar(f, s, 3, (double)total, "pages");
	fprintf(f,
		"</svg>\n<p class=\"note\">%llu pages fetched from the source after the "
		"commit (%llu because the workload faulted on them, the rest pushed in the "
		"background), %llu served from the pre-copy store, %llu left stale at the "
		"freeze; the last page was in place %llu ms after the commit.</p>\n",
		(unsigned long long)p->fetched, (unsigned long long)p->on_fault,
		(unsigned long long)p->local, (unsigned long long)p->left_at_freeze,
		(unsigned long long)p->last_page_ms);
	if (p->nr_fill)
		chart_fill(f, p);
	else
		fprintf(f, "<p class=\"note\" id=\"no-fill\">No time series of the fill in "
			   "this report (postcopy.fill).</p>\n");
	fprintf(f, "</section>\n");
}

static void row_num(FILE *f, const char *name, uint64_t v, const char *unit)
{
	fprintf(f, "<tr><th>%s</th><td>%llu%s</td></tr>\n", name, (unsigned long long)v, unit);
}

static void summary(FILE *f, const struct rpt *r)
{
	char sent[32], img[32];
	const char *cls = r->ok_known && r->ok ? "ok" : "bad";

	human_bytes(sent, sizeof(sent), r->bytes_sent);
	human_bytes(img, sizeof(img), r->image_bytes);
	fprintf(f, "<table class=\"summary\" id=\"summary\">\n");
	esc_between(f, "<tr><th>mode</th><td id=\"mode\">", r->mode, "</td></tr>\n");
	fprintf(f, "<tr><th>outcome</th><td id=\"outcome\" class=\"%s\">", cls);
	html_escape(f, r->outcome ? r->outcome : "-");
	fprintf(f, " (%s)</td></tr>\n", !r->ok_known ? "ok: unknown" : r->ok ? "ok" : "failed");
	if (r->error)
		esc_between(f, "<tr><th>error</th><td id=\"error\" class=\"bad\">", r->error,
			    "</td></tr>\n");
	row_num(f, "PID", r->pid, "");
	row_num(f, "tasks", r->tasks, "");
	row_num(f, "frozen", r->frozen_ms, " ms");
	row_num(f, "total", r->total_ms, " ms");
	fprintf(f, "<tr><th>sent</th><td>%s (%llu bytes; CRIU images %s)</td></tr>\n", sent,
		(unsigned long long)r->bytes_sent, img);
	if (r->has_tracking) {
		row_num(f, "pre-copy rounds", r->iterations, "");
		esc_between(f, "<tr><th>dirty tracking</th><td>", r->tracking, "</td></tr>\n");
		esc_between(f, "<tr><th>rounds stopped</th><td>", r->stop_reason, "</td></tr>\n");
		row_num(f, "predicted frozen", r->predicted_ms, " ms");
		row_num(f, "pages sent while frozen", r->final_pages, "");
	}
	row_num(f, "phaul's peak memory", r->max_rss_kb, " kB");
	fprintf(f, "</table>\n");
}

static void warnings(FILE *f, const struct rpt *r)
{
	if (!r->nr_warn)
		return;
	fprintf(f, "<section id=\"warnings\"><h2>Fields ignored</h2><ul class=\"warn\">\n");
	for (size_t i = 0; i < r->nr_warn; i++)
		esc_between(f, "<li>", r->warn[i], "</li>\n");
	if (r->warn_dropped)
		fprintf(f, "<li>and %zu more</li>\n", r->warn_dropped);
	fprintf(f, "</ul></section>\n");
}

int rpt_html(FILE *f, const struct rpt *r)
{
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		   "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		   "style-src 'unsafe-inline'\">\n<title>phaul: ");
	html_escape(f, r->mode ? r->mode : "?");
	fputs(" migration, ", f);
	html_escape(f, r->outcome ? r->outcome : "?");
	fprintf(f,
		"</title>\n<style>%s</style></head><body>\n"
		"<h1>phaul migration report</h1>\n",
		style);
	summary(f, r);
	chart_rounds(f, r);
	chart_frozen(f, r);
	chart_postcopy(f, r);
	warnings(f, r);
	fprintf(f, "</body></html>\n");
	return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
