/* SPDX-License-Identifier: MIT */
/*
 * phaul status: ask every control socket of this host (engine/control.h)
 * for its migration's status; a socket nobody answers on any more is
 * what a killed phaul left: removed.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "engine/control.h"

/* The status of the migration behind @path, or NULL. */
static json_object *ask(const char *path)
{
	_cleanup_free_ char *reply = NULL;
	json_object *o;
	int r = control_call(path, "{\"v\":1,\"op\":\"status\"}", &reply);

	if (r == -ECONNREFUSED) {
		unlink(path);
		return NULL;
	}
	if (r < 0)
		return NULL;
	o = json_tokener_parse(reply);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	json_object_object_add(o, "socket", json_object_new_string(path));
	return o;
}

json_object *status_collect(void)
{
	json_object *all = json_object_new_array();
	const char *dir = control_dir();
	DIR *d = opendir(dir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		char path[4096];
		json_object *o;
		if (n < 6 || strcmp(de->d_name + n - 5, ".sock"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		o = ask(path);
		if (o)
			json_object_array_add(all, o);
	}
	if (d)
		closedir(d);
	return all;
}

static const char *str(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "-";
}

static int64_t num(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v) : 0;
}

/* "round 3: 1200 pages, 48.1 MB/s" or "post-copy: 800 moved, 200 left" */
static void progress_text(json_object *o, char *buf, size_t len)
{
	json_object *p;

	snprintf(buf, len, "-");
	if (!json_object_object_get_ex(o, "progress", &p) || !p)
		return;
	if (!strcmp(str(p, "event"), "round"))
		snprintf(buf, len, "round %lld: %lld pages sent, %lld dirty",
			 (long long)num(p, "round"), (long long)num(p, "pages_sent"),
			 (long long)num(p, "pages_dirty"));
	else
		snprintf(buf, len, "post-copy: %lld pages moved, %lld left",
			 (long long)num(p, "pages_moved"), (long long)num(p, "pages_remaining"));
}

static void print_table(json_object *all)
{
	printf("%-32s  %-11s  %-7s  %-7s  %-7s  %-10s  %-9s  %s\n", "ID", "SIDE", "PHAUL", "PID",
	       "MODE", "PHASE", "COMMITTED", "PROGRESS");
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		json_object *o = json_object_array_get_idx(all, i);
		char prog[128];
		progress_text(o, prog, sizeof(prog));
		printf("%-32s  %-11s  %-7lld  %-7lld  %-7s  %-10s  %-9s  %s\n", str(o, "id"),
		       str(o, "side"), (long long)num(o, "phaul_pid"), (long long)num(o, "pid"),
		       str(o, "mode"), str(o, "phase"), str(o, "committed"), prog);
	}
}

int cmd_status(int argc, char **argv)
{
	static const struct option lo[] = { { "json", no_argument, NULL, 'j' },
					    { "help", no_argument, NULL, 'h' },
					    { 0 } };
	bool json = false;
	json_object *all, *o;
	int c;

	while ((c = getopt_long(argc, argv, "jh", lo, NULL)) != -1) {
		if (c == 'j') {
			json = true;
			continue;
		}
		fprintf(c == 'h' ? stdout : stderr,
			"usage: phaul status [--json]\n"
			"The migrations running on this host, source or destination side, with\n"
			"their session ID, side, PIDs, mode, phase and progress (root only).\n"
			"  --json                 one JSON object, {\"v\":1,\"migrations\":[...]}\n"
			"                         (docs/EVENTS.md)\n");
		return c == 'h' ? 0 : 2;
	}
	if (optind != argc) {
		fprintf(stderr, "usage: phaul status [--json]\n");
		return 2;
	}
	/* none there yet is no migration; not allowed in is not root */
	if (access(control_dir(), R_OK | X_OK) < 0 && errno != ENOENT) {
		fprintf(stderr, "phaul: status: %s: %m (root only)\n", control_dir());
		return 1;
	}
	all = status_collect();
	if (json) {
		o = json_object_new_object();
		json_object_object_add(o, "v", json_object_new_int(EVENTS_VERSION));
		json_object_object_add(o, "migrations", json_object_get(all));
		printf("%s\n",
		       json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		print_table(all);
	}
	json_object_put(all);
	return 0;
}
