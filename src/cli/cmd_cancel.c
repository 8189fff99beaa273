/* SPDX-License-Identifier: MIT */
/*
 * phaul cancel ID: roll back the migration of session ID (or a unique
 * prefix of it) on this host, source or destination side, if it has not
 * committed; then wait until it has ended there.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "engine/control.h"

enum { CANCEL_OK = 0, CANCEL_FAILED = 1, CANCEL_USAGE = 2, CANCEL_COMMITTED = 3 };

#define CANCEL_WAIT_S 60

static void cancel_usage(FILE *f)
{
	fprintf(f, "usage: phaul cancel ID\n"
		   "Roll back the migration of session ID (or a unique prefix of it: see\n"
		   "'phaul status'), on whichever side of it this host is, if it has not\n"
		   "committed, and wait until it has ended.\n"
		   "exit status: 0 cancelled and rolled back, 1 no such migration or failed,\n"
		   "             2 usage, 3 refused: the migration has committed\n");
}

/*
 * The full id of the one migration whose id starts with @id into @full;
 * NULL (and why) if none or several. Both sides of one migration may be
 * on this host (a migration to itself): one id, two entries.
 */
static int find(json_object *all, const char *id, char *full, const char **why)
{
	json_object *v;

	*why = "no migration with that ID on this host";
	full[0] = '\0';
	for (size_t i = 0; i < json_object_array_length(all); i++) {
		json_object *o = json_object_array_get_idx(all, i);
		if (!json_object_object_get_ex(o, "id", &v) || !v ||
		    strncmp(json_object_get_string(v), id, strlen(id)))
			continue;
		if (full[0] && strcmp(full, json_object_get_string(v))) {
			*why = "that ID prefix names more than one migration";
			return -EINVAL;
		}
		snprintf(full, CONTROL_ID_LEN + 1, "%s", json_object_get_string(v));
	}
	return full[0] ? 0 : -ENOENT;
}

/* Until the socket is gone (the process ended) or @secs passed. */
static bool wait_gone(const char *path, unsigned int secs)
{
	struct timespec ts = { 0, 100000000 };

	for (unsigned int i = 0; i < secs * 10; i++) {
		if (access(path, F_OK) < 0)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* Ask the process behind @path to cancel @id: CANCEL_OK (then wait until
 * it has ended), CANCEL_COMMITTED or CANCEL_FAILED, said on stderr. */
static int cancel_one(const char *path, const char *id)
{
	_cleanup_free_ char *reply = NULL;
	json_object *rep, *v;
	char req[128];
	int r;

	snprintf(req, sizeof(req), "{\"v\":1,\"op\":\"cancel\",\"id\":\"%s\"}", id);
	r = control_call(path, req, &reply);
	rep = r == 0 ? json_tokener_parse(reply) : NULL;
	if (!rep || !json_object_object_get_ex(rep, "ok", &v)) {
		fprintf(stderr, "phaul: cancel %s: no answer: %s\n", id,
			strerror(r < 0 ? -r : EPROTO));
		json_object_put(rep);
		return CANCEL_FAILED;
	}
	if (!json_object_get_boolean(v)) {
		json_object *e = json_object_object_get(rep, "error");
		bool committed = e && !strcmp(json_object_get_string(e), "committed");
		fprintf(stderr, "phaul: cancel %s refused: %s\n", id,
			json_object_get_string(json_object_object_get(rep, "message")));
		json_object_put(rep);
		return committed ? CANCEL_COMMITTED : CANCEL_FAILED;
	}
	json_object_put(rep);
	if (!wait_gone(path, CANCEL_WAIT_S)) {
		fprintf(stderr, "phaul: cancel %s: still rolling back after %d s\n", id,
			CANCEL_WAIT_S);
		return CANCEL_FAILED;
	}
	return CANCEL_OK;
}

int cmd_cancel(int argc, char **argv)
{
	char full[CONTROL_ID_LEN + 1];
	const char *why;
	json_object *all;
	int r = CANCEL_FAILED;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		cancel_usage(stdout);
		return CANCEL_OK;
	}
	if (argc != 2 || strlen(argv[1]) < 4 || strlen(argv[1]) > CONTROL_ID_LEN) {
		cancel_usage(stderr);
		return CANCEL_USAGE;
	}
	all = status_collect();
	if (find(all, argv[1], full, &why) < 0) {
		fprintf(stderr, "phaul: cancel %s: %s\n", argv[1], why);
		json_object_put(all);
		return CANCEL_FAILED;
	}
	/* every side of it here; the first that takes the cancel rolls back both */
	for (size_t i = 0; i < json_object_array_length(all) && r != CANCEL_OK; i++) {
		json_object *o = json_object_array_get_idx(all, i), *v, *sock;
		if (!json_object_object_get_ex(o, "id", &v) || !v ||
		    strcmp(json_object_get_string(v), full) ||
		    !json_object_object_get_ex(o, "socket", &sock))
			continue;
		r = cancel_one(json_object_get_string(sock), full);
	}
	json_object_put(all);
	if (r == CANCEL_OK)
		fprintf(stderr, "phaul: migration %s cancelled and rolled back\n", full);
	return r;
}
