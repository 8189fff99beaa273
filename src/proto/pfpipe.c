/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pages: "
#include "proto/pfpipe.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/pageframe.h"
#include "proto/wire.h"

struct pf_slot {
	uint8_t *raw, *out;
	struct pf_enc res; /* the worker's result, read once done */
	uint64_t tag;
	size_t len;
	bool zstd;
};

/*
 * Slots are used in ring order: [head, head + queued) are submitted,
 * head the oldest; the worker encodes slot `work` (head <= work) next.
 * Counts are modulo nothing: indices are taken % PF_PIPE_SLOTS.
 */
struct pf_pipe {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work_cv, done_cv;
	struct pf_ctx *pf;
	struct pf_enc enc; /* the worker's cctx and scratch */
	struct pf_slot s[PF_PIPE_SLOTS];
	/* under lock */
	size_t head, submitted, encoded; /* running counts of slots */
	bool quit;
	/* the caller's: the oldest was waited for */
	bool waited;
};

bool pf_pipe_wanted(const struct conn *c)
{
	const char *env = getenv("PHAUL_COMPRESS_THREAD");
	cpu_set_t set;

	if (!c->pf || c->pf->compress == PF_COMPRESS_OFF || (env && !strcmp(env, "0")))
		return false;
	return sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) >= 2;
}

static void *worker(void *arg)
{
	struct pf_pipe *pp = arg;

	pthread_mutex_lock(&pp->lock);
	for (;;) {
		while (pp->encoded == pp->submitted && !pp->quit)
			pthread_cond_wait(&pp->work_cv, &pp->lock);
		if (pp->encoded == pp->submitted)
			break;
		struct pf_slot *s = &pp->s[pp->encoded % PF_PIPE_SLOTS];
		pthread_mutex_unlock(&pp->lock);
		pf_encode_into(&pp->enc, s->raw, s->len, s->zstd, s->out);
		s->res = pp->enc;
		pthread_mutex_lock(&pp->lock);
		pp->encoded++;
		pthread_cond_signal(&pp->done_cv);
	}
	pthread_mutex_unlock(&pp->lock);
	return NULL;
}

static void pipe_release(struct pf_pipe *pp)
{
	pf_enc_fini(&pp->enc);
	for (size_t i = 0; i < PF_PIPE_SLOTS; i++) {
		free(pp->s[i].raw);
		free(pp->s[i].out);
	}
	pthread_cond_destroy(&pp->work_cv);
	pthread_cond_destroy(&pp->done_cv);
	pthread_mutex_destroy(&pp->lock);
	free(pp);
}

/* The worker takes no signals: they stay with the thread that handles them. */
static int start_worker(struct pf_pipe *pp)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&pp->thread, NULL, worker, pp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
}

static bool alloc_slots(struct pf_pipe *pp)
{
	pp->enc.tmp = malloc(FRAME_DATA_MAX);
	if (!pp->enc.tmp)
		return false;
	for (size_t i = 0; i < PF_PIPE_SLOTS; i++) {
		pp->s[i].raw = malloc(FRAME_DATA_MAX);
		pp->s[i].out = malloc(FRAME_PAGES_MAX);
		if (!pp->s[i].raw || !pp->s[i].out)
			return false;
	}
	return true;
}

struct pf_pipe *pf_pipe_new(struct conn *c)
{
	struct pf_pipe *pp = calloc(1, sizeof(*pp));
	int r = -ENOMEM;

	if (!pp)
		goto fail;
	pthread_mutex_init(&pp->lock, NULL);
	pthread_cond_init(&pp->work_cv, NULL);
	pthread_cond_init(&pp->done_cv, NULL);
	pp->pf = c->pf;
	pp->enc.level = c->pf->level;
	if (alloc_slots(pp) && (r = start_worker(pp)) == 0)
		return pp;
	pipe_release(pp);
fail:
	pr_warn("cannot start a thread to compress on (%s): compressing on the sending thread",
		strerror(-r));
	return NULL;
}

void pf_pipe_free(struct pf_pipe *pp)
{
	if (!pp)
		return;
	pthread_mutex_lock(&pp->lock);
	pp->quit = true;
	pthread_cond_signal(&pp->work_cv);
	pthread_mutex_unlock(&pp->lock);
	pthread_join(pp->thread, NULL);
	pipe_release(pp);
}

const struct pf_ctx *pf_pipe_codec(const struct pf_pipe *pp)
{
	return pp->pf;
}

size_t pf_pipe_queued(const struct pf_pipe *pp)
{
	return pp->submitted - pp->head; /* both the caller's to change */
}

uint8_t *pf_pipe_slot(struct pf_pipe *pp)
{
	if (pf_pipe_queued(pp) == PF_PIPE_SLOTS)
		return NULL;
	return pp->s[pp->submitted % PF_PIPE_SLOTS].raw;
}

void pf_pipe_submit(struct pf_pipe *pp, uint64_t tag, size_t len)
{
	struct pf_slot *s = &pp->s[pp->submitted % PF_PIPE_SLOTS];

	s->tag = tag;
	s->len = len;
	s->zstd = pf_choose_zstd(pp->pf);
	pthread_mutex_lock(&pp->lock);
	pp->submitted++;
	pthread_cond_signal(&pp->work_cv);
	pthread_mutex_unlock(&pp->lock);
}

bool pf_pipe_oldest_done(struct pf_pipe *pp)
{
	bool done;

	pthread_mutex_lock(&pp->lock);
	done = pp->encoded > pp->head;
	pthread_mutex_unlock(&pp->lock);
	return done;
}

void pf_pipe_wait(struct pf_pipe *pp, uint64_t *tag, size_t *len)
{
	struct pf_slot *s = &pp->s[pp->head % PF_PIPE_SLOTS];

	*tag = 0;
	*len = 0;
	if (!pf_pipe_queued(pp))
		return; /* nothing to wait for (pf_pipe_send then refuses) */
	pthread_mutex_lock(&pp->lock);
	while (pp->encoded == pp->head)
		pthread_cond_wait(&pp->done_cv, &pp->lock);
	pthread_mutex_unlock(&pp->lock);
	pf_account(pp->pf, &s->res, s->out);
	pp->waited = true;
	*tag = s->tag;
	*len = s->len;
}

int pf_pipe_send(struct pf_pipe *pp, struct conn *c)
{
	struct pf_slot *s = &pp->s[pp->head % PF_PIPE_SLOTS];

	if (!pp->waited || pf_pipe_queued(pp) == 0)
		return -EINVAL;
	pp->waited = false;
	pp->head++;
	return pf_send_frame(c, s->out, s->res.n);
}

void pf_pipe_drop(struct pf_pipe *pp)
{
	pthread_mutex_lock(&pp->lock);
	while (pp->encoded != pp->submitted)
		pthread_cond_wait(&pp->done_cv, &pp->lock);
	pp->head = pp->submitted;
	pthread_mutex_unlock(&pp->lock);
	pp->waited = false;
	/* a probe among them is never accounted: auto must not wait for it */
	pp->pf->a.probing = false;
}
