/* SPDX-License-Identifier: MIT */
/*
 * pfpipe: page frames encoded on a second thread while the caller reads
 * the chunks after them and sends the ones before. Compressing a chunk
 * (zstd, ~1 GB/s on one core) costs about as long as sending it over
 * 1 Gbit/s; done one after the other on one thread, a pre-copy round
 * takes their sum, here about the longer of the two.
 *
 * A ring of PF_PIPE_SLOTS chunks, in order: the caller reads a chunk into
 * the buffer pf_pipe_slot gives and submits it; the worker encodes the
 * submitted ones, oldest first; the caller takes the oldest back with
 * pf_pipe_wait (which accounts it on the caller's thread: auto's measures
 * and the stats keep one writer) and sends it with pf_pipe_send, after
 * whatever must go before it on the wire. Whether to compress a chunk is
 * decided at its submit, from what was accounted by then.
 */
#ifndef PHAUL_PFPIPE_H
#define PHAUL_PFPIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/conn.h"

#define PF_PIPE_SLOTS 8u

struct pf_pipe;

/*
 * Whether a pipe is worth its thread on @c: page frames with a codec that
 * may compress, and a second CPU to compress on (PHAUL_COMPRESS_THREAD=0:
 * never, to measure against).
 */
bool pf_pipe_wanted(const struct conn *c);
/* A worker for @c's codec; NULL (logged) when no thread can be had. */
struct pf_pipe *pf_pipe_new(struct conn *c);
/* Waits for the jobs still running, then ends the worker. */
void pf_pipe_free(struct pf_pipe *pp);
/* The codec this pipe encodes for. */
const struct pf_ctx *pf_pipe_codec(const struct pf_pipe *pp);
/* The free buffer (FRAME_DATA_MAX) the next chunk is read into; NULL when
 * every slot is taken (pf_pipe_wait and pf_pipe_send the oldest first). */
uint8_t *pf_pipe_slot(struct pf_pipe *pp);
/* Encode the @len bytes just read into pf_pipe_slot's buffer (1 page to
 * FRAME_DATA_MAX), on the worker; @tag is given back by pf_pipe_wait. */
void pf_pipe_submit(struct pf_pipe *pp, uint64_t tag, size_t len);
/* Chunks submitted and not sent yet. */
size_t pf_pipe_queued(const struct pf_pipe *pp);
/* Whether the oldest of them is encoded already (pf_pipe_wait won't wait). */
bool pf_pipe_oldest_done(struct pf_pipe *pp);
/* Wait for the oldest and account it: its tag and raw length (0 when none
 * is queued). */
void pf_pipe_wait(struct pf_pipe *pp, uint64_t *tag, size_t *len);
/* Send the oldest, waited for, on @c, and free its slot. */
int pf_pipe_send(struct pf_pipe *pp, struct conn *c);
/* Forget every chunk not sent (waiting for the worker to let go of them). */
void pf_pipe_drop(struct pf_pipe *pp);

#endif
