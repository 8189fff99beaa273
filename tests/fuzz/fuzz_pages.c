/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the destination's page store fed a forged page stream.
 *
 * Input: a 3-byte header, then the byte stream as it would come from the
 * source, read through an in-memory conn:
 *
 *   [0]  which pids the preflight named: bit 0 -> 1, bit 1 -> 100,
 *        bit 2 -> 200, bit 3 -> 4194304
 *   [1]  budget in pages (0: 256)
 *   [2]  bytes per read() call (0: as many as asked)
 *
 * Messages are taken with msg_recv, as the target does: PageRun goes to
 * pagestore_recv_run (which reads the data frames), RoundEnd to
 * pagestore_end_round; anything else, the first error, the end of the stream
 * or a 65th round stops it. Every input gets a fresh store in a temporary
 * directory (created once, emptied after each input); the budget and the
 * input's own size bound what is written.
 *
 * The store is then checked against a model built from the stream: the
 * page count charged exactly, the budget at most once a page (older copies
 * give theirs back); pagestore_lookup finds the newest
 * finished round's copy of every page (contents compared), for the longest
 * stretch that copy is contiguous, and nothing else; every round directory
 * holds, for every process seen so far, a pagemap that pagemap_read accepts
 * whose PE_PRESENT pages are that round's and PE_PARENT pages the earlier
 * rounds', and a pages file of the right size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "criu/pagemap.h"
#include "pages/store.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/wire.h"
#include "fuzz.h"

#define HDR 3
#define P PAGE
#define MAX_ROUNDS 64

static const int32_t pid_choice[4] = { 1, 100, 200, 4194304 };

/* --- the in-memory conn -------------------------------------------------- */

struct mem {
	const uint8_t *p;
	size_t len, pos, chunk;
};

static ssize_t mem_read(void *priv, void *buf, size_t len)
{
	struct mem *m = priv;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return n;
}

static ssize_t mem_write(void *priv, const void *buf, size_t len)
{
	return len;
}

static void mem_close(void *priv)
{
}

static const struct conn_ops mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.close = mem_close,
};

/* --- the model ----------------------------------------------------------- */

/* One page as received: who, where, which round, what. */
struct page {
	int32_t pid;
	uint64_t vaddr;
	unsigned int round;
	const uint8_t *data; /* P bytes in model.bytes */
};

struct model {
	struct page *v; /* every accepted page, in order of arrival */
	size_t nr, cap;
	size_t done;	/* v[0..done) are in finished rounds */
	uint8_t *bytes; /* their contents */
	size_t nbytes, bcap;
};

static void model_add(struct model *m, int32_t pid, uint64_t vaddr, unsigned int round,
		      const uint8_t *data)
{
	if (m->nr == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->v = realloc(m->v, m->cap * sizeof(*m->v));
		CHECK(m->v);
	}
	m->v[m->nr++] = (struct page){ pid, vaddr, round, data };
}

/* The newest copy of a page in rounds up to @upto, or NULL. */
static const struct page *newest(const struct model *m, int32_t pid, uint64_t vaddr,
				 unsigned int upto)
{
	const struct page *best = NULL;

	for (size_t i = 0; i < m->done; i++)
		if (m->v[i].pid == pid && m->v[i].vaddr == vaddr && m->v[i].round <= upto &&
		    (!best || m->v[i].round > best->round))
			best = &m->v[i];
	return best;
}

static bool sent_in(const struct model *m, int32_t pid, uint64_t vaddr, unsigned int round)
{
	for (size_t i = 0; i < m->done; i++)
		if (m->v[i].pid == pid && m->v[i].vaddr == vaddr && m->v[i].round == round)
			return true;
	return false;
}

/*
 * The payload of the data frames in @b[0..len) (they were all accepted, so
 * well-formed): copied into the model's byte store, @want bytes.
 */
static const uint8_t *frames_payload(struct model *m, const uint8_t *b, size_t len, size_t want)
{
	size_t pos = 0, start = m->nbytes;

	if (m->nbytes + want > m->bcap) {
		/* the pages point into the store: allocated once per input */
		__builtin_trap();
	}
	while (pos < len) {
		uint32_t l;
		CHECK(len - pos >= FRAME_HDR_LEN);
		CHECK(b[pos] == 'P' && b[pos + 1] == 'H' && b[pos + 2] == FRAME_DATA);
		l = (uint32_t)b[pos + 4] << 24 | (uint32_t)b[pos + 5] << 16 |
		    (uint32_t)b[pos + 6] << 8 | b[pos + 7];
		pos += FRAME_HDR_LEN;
		CHECK(l > 0 && l <= len - pos);
		memcpy(m->bytes + m->nbytes, b + pos, l);
		m->nbytes += l;
		pos += l;
	}
	CHECK(m->nbytes - start == want);
	return m->bytes + start;
}

/* --- the checks ---------------------------------------------------------- */

static void check_page_at(int fd, uint64_t off, const uint8_t *want)
{
	uint8_t buf[P];

	CHECK(pread(fd, buf, P, off) == P);
	CHECK(memcmp(buf, want, P) == 0);
}

static void check_lookups(const struct pagestore *ps, const struct model *m)
{
	unsigned int last = ps->round - 1;
	uint64_t off;
	uint32_t nr;
	int fd;

	for (size_t i = 0; i < m->done; i++) {
		const struct page *pg = newest(m, m->v[i].pid, m->v[i].vaddr, last);
		uint32_t want = 0;

		if (pg != &m->v[i])
			continue; /* an older copy */
		while (want < 4096) {
			const struct page *q = newest(m, pg->pid, pg->vaddr + (uint64_t)want * P,
						      last);
			if (!q || q->round != pg->round)
				break;
			want++;
		}
		CHECK(pagestore_lookup(ps, pg->pid, pg->vaddr, 4096, &fd, &off, &nr) == 0);
		CHECK(off % P == 0);
		CHECK(nr == want);
		for (uint32_t k = 0; k < nr; k++)
			check_page_at(fd, off + (uint64_t)k * P,
				      newest(m, pg->pid, pg->vaddr + (uint64_t)k * P, last)->data);
		CHECK(pagestore_lookup(ps, pg->pid, pg->vaddr, 1, &fd, &off, &nr) == 0 && nr == 1);
		/* the neighbours: there if and only if the model has them */
		for (int d = -1; d <= 1; d += 2) {
			uint64_t v = pg->vaddr + (int64_t)d * P;
			int r = pagestore_lookup(ps, pg->pid, v, 1, &fd, &off, &nr);
			CHECK(r == (newest(m, pg->pid, v, last) ? 0 : -ENOENT));
		}
		CHECK(pagestore_lookup(ps, pg->pid, pg->vaddr + 1, 1, &fd, &off, &nr) == -ENOENT);
	}
	/* pages of the unfinished round are not there unless an older copy is */
	for (size_t i = m->done; i < m->nr; i++) {
		int r = pagestore_lookup(ps, m->v[i].pid, m->v[i].vaddr, 1, &fd, &off, &nr);
		CHECK(r == (newest(m, m->v[i].pid, m->v[i].vaddr, last) ? 0 : -ENOENT));
	}
	CHECK(pagestore_lookup(ps, 4242, 0, 1, &fd, &off, &nr) == -ENOENT);
}

/* rounds/K/pagemap-PID.img and pages-PID.img for every process known by round K. */
static void check_round(int roundsfd, const struct model *m, unsigned int k)
{
	char name[64];
	int dfd;

	snprintf(name, sizeof(name), "%u", k);
	dfd = openat(roundsfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0);
	for (size_t i = 0; i < m->done; i++) {
		int32_t pid = m->v[i].pid;
		struct pagemap pm = { 0 };
		uint64_t known = 0, present = 0;
		struct stat st;
		bool first = true;
		int fd;

		if (m->v[i].round > k)
			continue;
		for (size_t j = 0; j < i; j++)
			first &= m->v[j].pid != pid || m->v[j].round > k;
		if (!first)
			continue; /* this process is checked already */
		for (size_t j = 0; j < m->done; j++)
			if (m->v[j].pid == pid && m->v[j].round <= k &&
			    newest(m, pid, m->v[j].vaddr, k) == &m->v[j])
				known++;
		snprintf(name, sizeof(name), "pagemap-%d.img", pid);
		CHECK(pagemap_read(dfd, name, &pm) == 0);
		CHECK(pm.pages_id == (uint32_t)pid);
		uint64_t total = 0;
		for (size_t e = 0; e < pm.nr; e++)
			total += pm.e[e].nr_pages;
		CHECK(total == known);
		for (size_t e = 0; e < pm.nr; e++) {
			for (uint32_t q = 0; q < pm.e[e].nr_pages; q++) {
				uint64_t v = pm.e[e].vaddr + (uint64_t)q * P;
				CHECK(newest(m, pid, v, k));
				if (sent_in(m, pid, v, k)) {
					CHECK(pm.e[e].flags == PE_PRESENT);
					present++;
				} else {
					CHECK(pm.e[e].flags == PE_PARENT);
				}
			}
		}
		pagemap_free(&pm);
		snprintf(name, sizeof(name), "pages-%d.img", pid);
		fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0);
		CHECK(fstat(fd, &st) == 0 && (uint64_t)st.st_size == present * P);
		close(fd);
	}
	if (k > 1) {
		char link[32], want[32];
		ssize_t n = readlinkat(dfd, "parent", link, sizeof(link) - 1);
		CHECK(n > 0);
		link[n] = '\0';
		snprintf(want, sizeof(want), "../%u", k - 1);
		CHECK(strcmp(link, want) == 0);
	}
	close(dfd);
}

/* --- the target ---------------------------------------------------------- */

static char dir[4096];
static int sessfd = -1;

static void cleanup(void)
{
	if (sessfd >= 0) {
		close(sessfd);
		sessfd = -1;
		rm_rf(dir);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	log_init("fuzz", LOG_QUIET);
	snprintf(dir, sizeof(dir), "%s/phaul-fuzz-pages.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	sessfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sessfd < 0)
		abort();
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int32_t pids[4];
	size_t npids = 0, accepted = 0;
	struct pagestore ps;
	struct model m = { 0 };
	struct mem mm = { 0 };
	struct conn *c;
	uint64_t budget, start_budget;
	unsigned int rounds = 0;
	int r, roundsfd;

	if (size < HDR)
		return 0;
	for (int i = 0; i < 4; i++)
		if (data[0] & (1 << i))
			pids[npids++] = pid_choice[i];
	start_budget = budget = (uint64_t)(data[1] ? data[1] : 256) * P;
	mm.chunk = data[2];
	mm.p = data + HDR;
	mm.len = size - HDR;
	m.bcap = size;
	m.bytes = malloc(size ? size : 1);
	CHECK(m.bytes);

	CHECK(pagestore_init(&ps, sessfd, pids, npids) == 0);
	CHECK(conn_new(&mem_ops, &mm, &c) == 0);
	for (;;) {
		Msg *msg = NULL;
		r = msg_recv(c, &msg);
		if (r < 0)
			break;
		if (msg->body_case == PHAUL__MSG__BODY_PAGE_RUN) {
			const Phaul__PageRun *pr = msg->page_run;
			size_t before = mm.pos;
			uint64_t b0 = budget;
			r = pagestore_recv_run(&ps, c, pr, &budget);
			if (r == 0) {
				const uint8_t *d = frames_payload(&m, mm.p + before,
								  mm.pos - before,
								  (size_t)pr->nr_pages * P);
				for (uint32_t i = 0; i < pr->nr_pages; i++)
					model_add(&m, pr->pid, pr->vaddr + (uint64_t)i * P,
						  ps.round, d + (size_t)i * P);
				accepted += pr->nr_pages;
				/* charged the run, less what older copies gave back */
				CHECK(budget <= b0 && b0 - budget <= (uint64_t)pr->nr_pages * P);
			} else {
				CHECK(budget == b0);
			}
		} else if (msg->body_case == PHAUL__MSG__BODY_ROUND_END) {
			r = pagestore_end_round(&ps);
			if (r == 0) {
				m.done = m.nr;
				rounds++;
			}
		} else {
			r = -EBADMSG;
		}
		msg_free(msg);
		if (r < 0 || rounds >= MAX_ROUNDS)
			break;
	}
	conn_free(c);

	/* only the peer's doing can stop it */
	CHECK(r == 0 || r == -EPIPE || r == -EPROTO || r == -ENOSPC || r == -EBADMSG);
	CHECK(ps.round == rounds + 1);
	CHECK(ps.pages == accepted);
	/* each page held once: the store gives older copies back (BUG-5) */
	CHECK(start_budget - budget <= (uint64_t)accepted * P);

	check_lookups(&ps, &m);
	roundsfd = openat(sessfd, "rounds", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(roundsfd >= 0);
	for (unsigned int k = 1; k <= rounds; k++)
		check_round(roundsfd, &m, k);
	close(roundsfd);

	pagestore_fini(&ps);
	CHECK(rm_rf_at(sessfd) == 0);
	free(m.v);
	free(m.bytes);
	return 0;
}
