/* SPDX-License-Identifier: MIT */
/*
 * events: what a migration is doing, for the operator. One struct events
 * per migration process keeps its status (session, side, workload,
 * mode, phase, the latest progress), which the control socket answers
 * with (engine/control.h), and optionally writes every event as a JSON
 * line (`phaul migrate --events`; the schema is docs/EVENTS.md).
 *
 * Events must not slow the migration: the migrating thread only builds
 * the line and appends it to a buffer (a few microseconds, also while
 * the workload is frozen); a writer thread of its own writes the buffer
 * out. Every function takes a NULL @ev and then does nothing.
 */
#ifndef PHAUL_EVENTS_H
#define PHAUL_EVENTS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/converge.h"

#define EVENTS_VERSION 1
/* post-copy progress: at most one event per this many ms */
#define EVENTS_POSTCOPY_MS 250
/* lines not written out yet beyond this are dropped (and counted) */
#define EVENTS_BUF_MAX (8u << 20)

struct events;

/*
 * @path: "-" for stdout, a file (created or truncated), or NULL for no
 * stream (the status only). @side: "source" or "destination".
 */
int events_new(const char *path, const char *side, struct events **ret);
/* Flush what is buffered, stop the writer, free. */
void events_free(struct events *ev);

/* The migration's identity, as soon as each part is known. */
void events_set_id(struct events *ev, const uint8_t *id, size_t len);
void events_set_workload(struct events *ev, int pid, const char *mode);

/* Events. @round counts from 1; @predicted_ms is the policy's frozen-time
 * prediction after this round (0: none). */
void events_step(struct events *ev, const char *step);
void events_round(struct events *ev, unsigned int round, const struct round_stat *rs,
		  uint64_t predicted_ms);
/* Post-copy: pages moved so far, pages left (an upper bound); at most one
 * event every EVENTS_POSTCOPY_MS unless @force. */
void events_postcopy(struct events *ev, uint64_t moved, uint64_t remaining, bool force);
/* The end: @result is the same object as `--json` prints (borrowed). */
void events_outcome(struct events *ev, json_object *result);
/* The commit point was passed (status "committed": true). */
void events_committed(struct events *ev);

/* The status object (docs/EVENTS.md, "status"); the caller puts it. */
json_object *events_status(struct events *ev);

/*
 * The encoder, pure (tests/unit/test_events.c): the common fields of
 * every line ("v", "event", "elapsed_ms", "ts") on a new object, and one
 * line of text from an object (a newline at the end; the caller frees).
 */
json_object *event_new(const char *type, uint64_t elapsed_ms, uint64_t wall_ms);
/* A round's numbers, as `--json`'s "iters" has them, added to @o. */
json_object *round_stat_fields(json_object *o, const struct round_stat *rs);
json_object *event_round_fields(json_object *o, unsigned int round, const struct round_stat *rs,
				uint64_t predicted_ms);
json_object *event_postcopy_fields(json_object *o, uint64_t moved, uint64_t remaining);
char *event_line(json_object *o, size_t *len);

#endif
