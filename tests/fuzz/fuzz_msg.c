/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: msg_decode on arbitrary bytes.
 *
 * What it accepts must hold up: exactly one known body, validation
 * idempotent, FileBegin names confined, no control characters left in
 * peer text, and pack(decode(x)) decodes again to the same encoding.
 *
 * (That last check is skipped for messages carrying unknown fields:
 * protobuf-c 1.4 keeps e.g. a non-minimal "\x80\x00" tag for field 0 as an
 * unknown field, then packs it as "\x00", which its own parser rejects.
 * phaul never re-encodes what a peer sent, so this is not phaul's bug.)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/msg.h"
#include "proto/state.h"
#include "proto/wire.h"
#include "fuzz.h"

static void check_text(const char *s, size_t max)
{
	size_t n;

	if (!s)
		return;
	n = strlen(s);
	CHECK(n <= max);
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
}

static void check_msg(Msg *m)
{
	/* a body phaul.proto defines, known by name */
	CHECK(protobuf_c_message_descriptor_get_field(&phaul__msg__descriptor, m->body_case));
	CHECK(strcmp(msg_name(m->body_case), "unknown") != 0);
	for (int st = 0; st < ST__MAX; st++)
		(void)state_allows(st, m->body_case);

	switch (m->body_case) {
	case PHAUL__MSG__BODY_HELLO:
		check_text(m->hello->host, 255);
		CHECK(!m->hello->has_resume || m->hello->resume.len == PHAUL_SESSION_ID_LEN);
		break;
	case PHAUL__MSG__BODY_HELLO_REPLY: check_text(m->hello_reply->host, 255); break;
	case PHAUL__MSG__BODY_PREFLIGHT:
		check_text(m->preflight->mode, 16);
		check_text(m->preflight->htype, 32);
		check_text(m->preflight->root_cmd, 64);
		CHECK(m->preflight->n_pids <= MSG_PIDS_MAX && m->preflight->n_fs <= MSG_FS_MAX);
		for (size_t i = 0; i < m->preflight->n_fs; i++)
			check_text(m->preflight->fs[i], 4096);
		for (size_t i = 0; i < m->preflight->n_pids; i++)
			CHECK(m->preflight->pids[i] >= 1 && m->preflight->pids[i] <= 4194304);
		break;
	case PHAUL__MSG__BODY_FILE_BEGIN: {
		const char *n = m->file_begin->name;
		CHECK(name_is_safe(n));
		CHECK(!strchr(n, '/') && n[0] != '.' && strlen(n) <= MSG_NAME_MAX);
		CHECK(m->file_begin->size <= MSG_FILE_MAX);
		break;
	}
	case PHAUL__MSG__BODY_ABORT: check_text(m->abort->reason, MSG_TEXT_MAX); break;
	case PHAUL__MSG__BODY_ERROR:
		CHECK(m->error->code >= 1 && m->error->code <= 4095);
		check_text(m->error->message, MSG_TEXT_MAX);
		check_text(m->error->step, 32);
		break;
	case PHAUL__MSG__BODY_OUTCOME:
		CHECK((unsigned)m->outcome->state <= PHAUL__OUTCOME__STATE__PENDING);
		break;
	case PHAUL__MSG__BODY_RESTORE_READY: CHECK(m->restore_ready->root_pid > 0); break;
	case PHAUL__MSG__BODY_COMMITTED: CHECK(m->committed->root_pid > 0); break;
	case PHAUL__MSG__BODY_PAGE_RUN:
		if (m->page_run->has_shmid) /* a shared memory object's */
			CHECK(m->page_run->pid == 0 && m->page_run->shmid != 0);
		else
			CHECK(m->page_run->pid >= 1 && m->page_run->pid <= 4194304);
		check_text(m->page_run->shm_name, MSG_SHM_NAME_MAX);
		CHECK(m->page_run->vaddr % 4096 == 0 && m->page_run->vaddr < MSG_VADDR_LIMIT);
		CHECK(m->page_run->nr_pages >= 1 && m->page_run->nr_pages <= MSG_RUN_PAGES_MAX);
		break;
	case PHAUL__MSG__BODY_ROUND_END: CHECK(m->round_end->round <= MSG_ROUNDS_MAX); break;
	default: break;
	}
}

static bool has_unknown(const Msg *m)
{
	/* every body member is a pointer to a message, at the same place */
	const ProtobufCMessage *body = (const ProtobufCMessage *)m->hello;

	return m->base.n_unknown_fields || (body && body->n_unknown_fields);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_QUIET);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Msg *m = NULL, *m2 = NULL;
	uint8_t *p1, *p2;
	size_t l1, l2;

	if (msg_decode(data, size, &m) < 0) {
		CHECK(m == NULL);
		return 0;
	}
	CHECK(size <= FRAME_MSG_MAX);
	check_msg(m);
	CHECK(msg_validate(m) == 0);

	if (has_unknown(m)) {
		msg_free(m);
		return 0;
	}
	l1 = phaul__msg__get_packed_size(m);
	p1 = malloc(l1 + 1);
	CHECK(p1 && phaul__msg__pack(m, p1) == l1);
	if (l1 <= FRAME_MSG_MAX) {
		CHECK(msg_decode(p1, l1, &m2) == 0);
		check_msg(m2);
		CHECK(m2->body_case == m->body_case);
		l2 = phaul__msg__get_packed_size(m2);
		p2 = malloc(l2 + 1);
		CHECK(p2 && phaul__msg__pack(m2, p2) == l2);
		CHECK(l2 == l1 && memcmp(p1, p2, l1) == 0);
		free(p2);
		msg_free(m2);
	}
	free(p1);
	msg_free(m);
	return 0;
}
