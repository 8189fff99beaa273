/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "events: "
#include "engine/events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

struct events {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t writer;
	bool has_writer;
	bool stopping;
	int fd; /* the stream, or -1 */
	bool own_fd;
	/* lines not written yet */
	char *buf;
	size_t len, cap;
	uint64_t dropped;
	/* the status */
	uint64_t start_ms;
	const char *side;
	char id[65];
	int pid;
	char mode[16];
	char phase[32];
	bool committed;
	bool done;
	json_object *progress; /* the latest round or post-copy event */
	uint64_t last_postcopy_ms;
};

static void add_u64(json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

json_object *event_new(const char *type, uint64_t elapsed_ms, uint64_t wall)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "v", json_object_new_int(EVENTS_VERSION));
	json_object_object_add(o, "event", json_object_new_string(type));
	add_u64(o, "elapsed_ms", elapsed_ms);
	add_u64(o, "ts", wall);
	return o;
}

json_object *round_stat_fields(json_object *o, const struct round_stat *rs)
{
	add_u64(o, "pages_scanned", rs->pages_scanned);
	add_u64(o, "pages_dirty", rs->pages_dirty);
	add_u64(o, "pages_sent", rs->pages_sent);
	add_u64(o, "bytes", rs->bytes_sent);
	add_u64(o, "ms", rs->ms);
	json_object_object_add(o, "mb_per_s",
			       json_object_new_double(
				       rs->ms ? rs->bytes_sent / 1000.0 / rs->ms : 0));
	json_object_object_add(o, "frozen", json_object_new_boolean(rs->frozen));
	return o;
}

json_object *event_round_fields(json_object *o, unsigned int round, const struct round_stat *rs,
				uint64_t predicted_ms)
{
	json_object_object_add(o, "round", json_object_new_int((int)round));
	round_stat_fields(o, rs);
	add_u64(o, "predicted_frozen_ms", predicted_ms);
	return o;
}

json_object *event_postcopy_fields(json_object *o, uint64_t moved, uint64_t remaining)
{
	add_u64(o, "pages_moved", moved);
	add_u64(o, "pages_remaining", remaining);
	return o;
}

char *event_line(json_object *o, size_t *len)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	char *line = malloc(n + 2);

	if (!line)
		return NULL;
	memcpy(line, s, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

/* The writer: out with whatever is buffered, until told to stop. */
static void *writer_main(void *arg)
{
	struct events *ev = arg;

	pthread_mutex_lock(&ev->lock);
	for (;;) {
		while (!ev->len && !ev->stopping)
			pthread_cond_wait(&ev->wake, &ev->lock);
		if (!ev->len)
			break;
		char *out = ev->buf;
		size_t n = ev->len;
		ev->buf = NULL;
		ev->len = ev->cap = 0;
		pthread_mutex_unlock(&ev->lock);
		if (write_full(ev->fd, out, n) < 0)
			pr_warn("cannot write the events: %m");
		free(out);
		pthread_mutex_lock(&ev->lock);
	}
	pthread_mutex_unlock(&ev->lock);
	return NULL;
}

int events_new(const char *path, const char *side, struct events **ret)
{
	struct events *ev = calloc(1, sizeof(*ev));
	int r;

	if (!ev)
		return -ENOMEM;
	pthread_mutex_init(&ev->lock, NULL);
	pthread_cond_init(&ev->wake, NULL);
	ev->side = side;
	ev->start_ms = now_ms();
	ev->fd = -1;
	snprintf(ev->phase, sizeof(ev->phase), "start");
	if (path && !strcmp(path, "-")) {
		ev->fd = STDOUT_FILENO;
	} else if (path) {
		ev->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (ev->fd < 0) {
			r = -errno;
			pr_err("cannot open %s: %m", path);
			events_free(ev);
			return r;
		}
		ev->own_fd = true;
	}
	if (ev->fd >= 0) {
		r = -pthread_create(&ev->writer, NULL, writer_main, ev);
		if (r < 0) {
			pr_err("cannot start the events writer: %s", strerror(-r));
			events_free(ev);
			return r;
		}
		ev->has_writer = true;
	}
	*ret = ev;
	return 0;
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	if (ev->has_writer) {
		pthread_mutex_lock(&ev->lock);
		ev->stopping = true;
		pthread_cond_signal(&ev->wake);
		pthread_mutex_unlock(&ev->lock);
		pthread_join(ev->writer, NULL);
	}
	if (ev->dropped)
		pr_warn("%llu event lines dropped: the stream was not read fast enough",
			(unsigned long long)ev->dropped);
	if (ev->own_fd)
		close(ev->fd);
	json_object_put(ev->progress);
	free(ev->buf);
	pthread_cond_destroy(&ev->wake);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
}

/* Queue @o's line (called with the lock held); takes @o. */
static void queue_locked(struct events *ev, json_object *o)
{
	size_t n;
	char *line;

	if (ev->fd < 0) {
		json_object_put(o);
		return;
	}
	line = event_line(o, &n);
	json_object_put(o);
	if (!line || ev->len + n > EVENTS_BUF_MAX) {
		ev->dropped++;
		free(line);
		return;
	}
	if (ev->len + n > ev->cap) {
		size_t cap = MAX(ev->cap * 2, MAX(ev->len + n, (size_t)4096));
		char *b = realloc(ev->buf, cap);
		if (!b) {
			ev->dropped++;
			free(line);
			return;
		}
		ev->buf = b;
		ev->cap = cap;
	}
	memcpy(ev->buf + ev->len, line, n);
	ev->len += n;
	free(line);
	pthread_cond_signal(&ev->wake);
}

static json_object *new_locked(struct events *ev, const char *type)
{
	json_object *o = event_new(type, now_ms() - ev->start_ms, wall_ms());

	json_object_object_add(o, "phase", json_object_new_string(ev->phase));
	return o;
}

void events_set_id(struct events *ev, const uint8_t *id, size_t len)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	for (size_t i = 0; i < len && i < (sizeof(ev->id) - 1) / 2; i++)
		sprintf(ev->id + 2 * i, "%02x", id[i]);
	pthread_mutex_unlock(&ev->lock);
}

void events_set_workload(struct events *ev, int pid, const char *mode)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->pid = pid;
	snprintf(ev->mode, sizeof(ev->mode), "%s", mode ? mode : "");
	pthread_mutex_unlock(&ev->lock);
}

void events_step(struct events *ev, const char *step)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	snprintf(ev->phase, sizeof(ev->phase), "%s", step);
	queue_locked(ev, new_locked(ev, "step"));
	pthread_mutex_unlock(&ev->lock);
}

/* Keep @o as the status's progress and queue a copy. */
static void progress_locked(struct events *ev, json_object *o)
{
	json_object *copy = NULL;

	json_object_put(ev->progress);
	ev->progress = o;
	if (json_object_deep_copy(o, &copy, NULL) == 0)
		queue_locked(ev, copy);
}

void events_round(struct events *ev, unsigned int round, const struct round_stat *rs,
		  uint64_t predicted_ms)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	progress_locked(ev, event_round_fields(new_locked(ev, "round"), round, rs, predicted_ms));
	pthread_mutex_unlock(&ev->lock);
}

void events_postcopy(struct events *ev, uint64_t moved, uint64_t remaining, bool force)
{
	uint64_t now = now_ms();

	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	if (force || now - ev->last_postcopy_ms >= EVENTS_POSTCOPY_MS) {
		ev->last_postcopy_ms = now;
		progress_locked(ev, event_postcopy_fields(new_locked(ev, "postcopy"), moved,
							  remaining));
	}
	pthread_mutex_unlock(&ev->lock);
}

void events_committed(struct events *ev)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->committed = true;
	queue_locked(ev, new_locked(ev, "committed"));
	pthread_mutex_unlock(&ev->lock);
}

void events_outcome(struct events *ev, json_object *result)
{
	json_object *o, *copy = NULL;

	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->done = true;
	o = new_locked(ev, "outcome");
	if (result && json_object_deep_copy(result, &copy, NULL) == 0)
		json_object_object_add(o, "result", copy);
	queue_locked(ev, o);
	pthread_mutex_unlock(&ev->lock);
}

json_object *events_status(struct events *ev)
{
	json_object *o = json_object_new_object(), *p = NULL;

	pthread_mutex_lock(&ev->lock);
	json_object_object_add(o, "v", json_object_new_int(EVENTS_VERSION));
	json_object_object_add(o, "id", ev->id[0] ? json_object_new_string(ev->id) : NULL);
	json_object_object_add(o, "side", json_object_new_string(ev->side));
	json_object_object_add(o, "phaul_pid", json_object_new_int(getpid()));
	json_object_object_add(o, "pid", json_object_new_int(ev->pid));
	json_object_object_add(o, "mode", json_object_new_string(ev->mode));
	json_object_object_add(o, "phase", json_object_new_string(ev->phase));
	json_object_object_add(o, "committed", json_object_new_boolean(ev->committed));
	add_u64(o, "elapsed_ms", now_ms() - ev->start_ms);
	if (ev->progress && json_object_deep_copy(ev->progress, &p, NULL) == 0)
		json_object_object_add(o, "progress", p);
	pthread_mutex_unlock(&ev->lock);
	return o;
}
