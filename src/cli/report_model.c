/* SPDX-License-Identifier: MIT */
/* phaul report: the JSON of `phaul migrate --json` into struct rpt. */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/report_html.h"

__attribute__((format(printf, 2, 3))) static void warn(struct rpt *r, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (r->nr_warn >= RPT_MAX_WARN) {
		r->warn_dropped++;
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s)
		r->warn[r->nr_warn++] = s;
	else
		r->warn_dropped++;
}

/* A count or a duration: an integer (or an integral double) in 0..2^53. */
static bool num_value(json_object *v, uint64_t *out)
{
	double d;
	int64_t i;

	switch (json_object_get_type(v)) {
	case json_type_int:
		i = json_object_get_int64(v);
		if (i < 0 || (uint64_t)i > RPT_MAX_NUM)
			return false;
		*out = (uint64_t)i;
		return true;
	case json_type_double:
		d = json_object_get_double(v);
		if (!isfinite(d) || d < 0 || d > (double)RPT_MAX_NUM || d != floor(d))
			return false;
		*out = (uint64_t)d;
		return true;
	default: return false;
	}
}

/* @where.@key into @out (0 when absent or invalid, with a warning). */
static void get_num(struct rpt *r, json_object *o, const char *where, const char *key,
		    uint64_t *out)
{
	json_object *v;

	*out = 0;
	if (!json_object_object_get_ex(o, key, &v))
		return;
	if (!num_value(v, out))
		warn(r, "%s%s: not a count in 0..2^53, ignored", where, key);
}

static char *dup_cut(struct rpt *r, const char *key, const char *s, size_t len)
{
	if (len > RPT_MAX_STR) {
		warn(r, "%s: %zu bytes long, cut to %d", key, len, RPT_MAX_STR);
		len = RPT_MAX_STR;
	}
	return strndup(s, len);
}

/* A string field; absent or null: NULL; another type: NULL and a warning. */
static int get_str(struct rpt *r, json_object *o, const char *key, char **out)
{
	json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		warn(r, "%s: not a string, ignored", key);
		return 0;
	}
	*out = dup_cut(r, key, json_object_get_string(v), (size_t)json_object_get_string_len(v));
	return *out ? 0 : -ENOMEM;
}

static void get_bool(struct rpt *r, json_object *o, const char *key, bool *out, bool *known)
{
	json_object *v;

	*out = false;
	if (known)
		*known = false;
	if (!json_object_object_get_ex(o, key, &v))
		return;
	if (!json_object_is_type(v, json_type_boolean)) {
		warn(r, "%s: not a boolean, ignored", key);
		return;
	}
	*out = json_object_get_boolean(v);
	if (known)
		*known = true;
}

static void parse_round(struct rpt *r, json_object *o, size_t i, struct rpt_round *rd)
{
	char where[48];
	json_object *v;
	double d;

	snprintf(where, sizeof(where), "iters[%zu].", i);
	memset(rd, 0, sizeof(*rd));
	rd->mb_per_s = -1;
	if (!json_object_is_type(o, json_type_object)) {
		warn(r, "iters[%zu]: not an object, shown as empty", i);
		return;
	}
	get_num(r, o, where, "pages_scanned", &rd->scanned);
	get_num(r, o, where, "pages_dirty", &rd->dirty);
	get_num(r, o, where, "pages_sent", &rd->sent);
	get_num(r, o, where, "bytes", &rd->bytes);
	get_num(r, o, where, "ms", &rd->ms);
	get_bool(r, o, "frozen", &rd->frozen, NULL);
	if (json_object_object_get_ex(o, "mb_per_s", &v)) {
		d = json_object_get_double(v);
		if ((json_object_is_type(v, json_type_double) ||
		     json_object_is_type(v, json_type_int)) &&
		    isfinite(d) && d >= 0 && d <= 1e9)
			rd->mb_per_s = d;
		else
			warn(r, "%smb_per_s: not a rate in 0..1e9, ignored", where);
	}
}

static int parse_rounds(struct rpt *r, json_object *top)
{
	json_object *a;
	size_t n;

	if (!json_object_object_get_ex(top, "iters", &a) || !a)
		return 0;
	if (!json_object_is_type(a, json_type_array)) {
		warn(r, "iters: not an array, ignored");
		return 0;
	}
	r->rounds_in_json = json_object_array_length(a);
	n = r->rounds_in_json;
	if (n > RPT_MAX_ROUNDS) {
		warn(r, "iters: %zu rounds, only the first %d shown", n, RPT_MAX_ROUNDS);
		n = RPT_MAX_ROUNDS;
	}
	if (!n)
		return 0;
	r->rounds = calloc(n, sizeof(*r->rounds));
	if (!r->rounds)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		parse_round(r, json_object_array_get_idx(a, i), i, &r->rounds[i]);
	r->nr_rounds = n;
	return 0;
}

/* One [ms, pages] pair of postcopy.fill, or false. */
static bool fill_point(json_object *pt, struct rpt_fill *out)
{
	uint64_t v[2];

	if (!json_object_is_type(pt, json_type_array) || json_object_array_length(pt) != 2)
		return false;
	for (int k = 0; k < 2; k++) {
		json_object *x = json_object_array_get_idx(pt, k);
		if (!json_object_is_type(x, json_type_int) || json_object_get_int64(x) < 0)
			return false;
		v[k] = json_object_get_uint64(x);
		if (v[k] > RPT_MAX_NUM)
			return false;
	}
	*out = (struct rpt_fill){ v[0], v[1] };
	return true;
}

/* postcopy.fill: kept only whole and in order (time and pages never go
 * back); anything else is dropped with a warning. */
static void parse_fill(struct rpt *r, json_object *o)
{
	json_object *a;
	size_t n;

	if (!json_object_object_get_ex(o, "fill", &a) || !a)
		return;
	if (!json_object_is_type(a, json_type_array)) {
		warn(r, "postcopy.fill: not an array, ignored");
		return;
	}
	n = json_object_array_length(a);
	if (n > RPT_MAX_FILL) {
		warn(r, "postcopy.fill: %zu samples, only the first %d shown", n, RPT_MAX_FILL);
		n = RPT_MAX_FILL;
	}
	r->pc.fill = n ? calloc(n, sizeof(*r->pc.fill)) : NULL;
	if (n && !r->pc.fill)
		return;
	for (size_t i = 0; i < n; i++) {
		struct rpt_fill *p = &r->pc.fill[i];
		if (!fill_point(json_object_array_get_idx(a, i), p) ||
		    (i && (p->ms < p[-1].ms || p->pages < p[-1].pages))) {
			warn(r,
			     "postcopy.fill: sample %zu is not [ms, pages] in order, "
			     "the series ignored",
			     i);
			free(r->pc.fill);
			r->pc.fill = NULL;
			return;
		}
	}
	r->pc.nr_fill = n;
}

static void parse_postcopy(struct rpt *r, json_object *top)
{
	json_object *o;

	if (!json_object_object_get_ex(top, "postcopy", &o) || !o)
		return;
	if (!json_object_is_type(o, json_type_object)) {
		warn(r, "postcopy: not an object, ignored");
		return;
	}
	r->has_postcopy = true;
	get_num(r, o, "postcopy.", "last_page_ms", &r->pc.last_page_ms);
	get_num(r, o, "postcopy.", "pages_fetched", &r->pc.fetched);
	get_num(r, o, "postcopy.", "pages_on_fault", &r->pc.on_fault);
	get_num(r, o, "postcopy.", "pages_pushed", &r->pc.pushed);
	get_num(r, o, "postcopy.", "pages_local", &r->pc.local);
	get_num(r, o, "postcopy.", "pages_left_at_freeze", &r->pc.left_at_freeze);
	parse_fill(r, o);
	if (r->pc.on_fault > r->pc.fetched)
		warn(r, "postcopy: more pages on a fault (%llu) than fetched (%llu)",
		     (unsigned long long)r->pc.on_fault, (unsigned long long)r->pc.fetched);
}

static int parse_top(struct rpt *r, json_object *top)
{
	static const struct {
		const char *key;
		size_t off;
	} nums[] = {
#define N(k, f) { k, offsetof(struct rpt, f) }
		N("pid", pid),
		N("tasks", tasks),
		N("iterations", iterations),
		N("frozen_ms", frozen_ms),
		N("total_ms", total_ms),
		N("dump_ms", dump_ms),
		N("transfer_ms", transfer_ms),
		N("restore_ms", restore_ms),
		N("bytes_sent", bytes_sent),
		N("image_bytes", image_bytes),
		N("max_rss_kb", max_rss_kb),
		N("predicted_frozen_ms", predicted_ms),
		N("final_pages", final_pages),
#undef N
	};
	int ret;

	get_bool(r, top, "ok", &r->ok, &r->ok_known);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		get_num(r, top, "", nums[i].key, (uint64_t *)((char *)r + nums[i].off));
	if ((ret = get_str(r, top, "mode", &r->mode)) < 0 ||
	    (ret = get_str(r, top, "outcome", &r->outcome)) < 0 ||
	    (ret = get_str(r, top, "error", &r->error)) < 0 ||
	    (ret = get_str(r, top, "tracking", &r->tracking)) < 0 ||
	    (ret = get_str(r, top, "stop_reason", &r->stop_reason)) < 0)
		return ret;
	r->has_tracking = r->tracking || json_object_object_get_ex(top, "iters", NULL);
	ret = parse_rounds(r, top);
	if (ret < 0)
		return ret;
	parse_postcopy(r, top);
	return 0;
}

int rpt_parse(const char *json, size_t len, struct rpt *r, char *err, size_t errlen)
{
	struct json_tokener *tok;
	json_object *top;
	enum json_tokener_error e;
	int ret;

	memset(r, 0, sizeof(*r));
	if (len > RPT_MAX_INPUT || len > INT32_MAX) {
		snprintf(err, errlen, "%zu bytes: larger than a migration's JSON can be", len);
		return -EINVAL;
	}
	tok = json_tokener_new();
	if (!tok) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	top = json_tokener_parse_ex(tok, json, (int)len);
	e = json_tokener_get_error(tok);
	if (!top || e != json_tokener_success) {
		if (e == json_tokener_continue)
			snprintf(err, errlen, "not JSON: it ends too early, at byte %zu", len);
		else
			snprintf(err, errlen, "not JSON: %s at byte %zu",
				 json_tokener_error_desc(e), json_tokener_get_parse_end(tok));
		json_object_put(top);
		json_tokener_free(tok);
		return -EINVAL;
	}
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
		if (!strchr(" \t\r\n", json[i])) {
			snprintf(err, errlen, "not JSON: more after the object, at byte %zu", i);
			json_object_put(top);
			json_tokener_free(tok);
			return -EINVAL;
		}
	}
	json_tokener_free(tok);
	if (!json_object_is_type(top, json_type_object)) {
		snprintf(err, errlen, "not a phaul migration report: a JSON %s, not an object",
			 json_type_to_name(json_object_get_type(top)));
		json_object_put(top);
		return -EINVAL;
	}
	ret = parse_top(r, top);
	json_object_put(top);
	if (ret < 0) {
		snprintf(err, errlen, "out of memory");
		rpt_free(r);
	}
	return ret;
}

void rpt_free(struct rpt *r)
{
	free(r->mode);
	free(r->pc.fill);
	free(r->outcome);
	free(r->error);
	free(r->tracking);
	free(r->stop_reason);
	free(r->rounds);
	for (size_t i = 0; i < r->nr_warn; i++)
		free(r->warn[i]);
	memset(r, 0, sizeof(*r));
}
