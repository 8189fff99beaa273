/* SPDX-License-Identifier: MIT */
/*
 * msg: control messages (phaul.proto) on top of wire frames.
 *
 * msg_recv()/msg_decode() return only messages that passed msg_validate():
 * exactly one body set, every string and byte field within its limit,
 * names confined (name_is_safe), numbers in range, control characters in
 * peer text replaced. Whether a message is allowed *now* is the session
 * state machine's business (proto/state.h).
 */
#ifndef PHAUL_MSG_H
#define PHAUL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phaul.pb-c.h"
#include "proto/conn.h"

#define PHAUL_PROTO_VERSION 1
/* The version this side speaks: PHAUL_PROTO_VERSION, or in fault-injection
 * builds $PHAUL_FAKE_PROTO_VERSION (tests of a mismatch). */
uint32_t proto_version(void);
#define PHAUL_SESSION_ID_LEN 16
/* Hello.features: with `resume`, reattach to a post-copy session whose
 * connection broke (instead of asking its outcome). */
#define PHAUL_FEAT_PAGES_RESUME (1ULL << 0)
/* Hello and HelloReply.features: page data as FRAME_PAGES (pageframe.h),
 * used when both ends say it. */
#define PHAUL_FEAT_PAGE_FRAMES (1ULL << 1)
/* With PAGE_FRAMES: page frames may be zstd-compressed (the source asks
 * when --compress is not off; the destination answers if it can). */
#define PHAUL_FEAT_PAGE_ZSTD (1ULL << 2)
/* Hello and HelloReply.features: the destination takes PageShared (the
 * pages a fork shares copy-on-write are restored with the tree). */
#define PHAUL_FEAT_PAGE_SHARED (1ULL << 3)
/* Hello and HelloReply.features: the data chunks of image files carry a
 * header and may be zstd-compressed (xfer.h). The source asks when
 * --compress is not off; the destination answers if it can. */
#define PHAUL_FEAT_IMG_ZSTD (1ULL << 4)
/* Hello and HelloReply.features: the destination takes PageRuns of shared
 * memory objects (PageRun.shmid) and has CRIU restore them from its store:
 * live and hybrid mode pre-copy shared memory. */
#define PHAUL_FEAT_SHMEM_PAGES (1ULL << 5)
/* The feature bits in @f as words ("frames zstd", "none", unknown bits in
 * hex) in @buf of @len bytes (64 hold them all); returns @buf. For the logs:
 * what a peer of another version agreed to. */
const char *proto_features_str(uint64_t f, char *buf, size_t len);

/* Limits on peer-controlled fields (documented in PROTOCOL.txt). */
#define MSG_TEXT_MAX 1024
#define MSG_NAME_MAX 128
#define MSG_CPUINFO_MAX (64u * 1024 - 1024)
#define MSG_PIDS_MAX 32768
#define MSG_FS_MAX 16
#define MSG_IN_PLACE_MAX 4
#define MSG_FILE_MAX (1ULL << 40)
#define MSG_RUN_PAGES_MAX 64u	/* one FRAME_DATA_MAX of pages */
#define MSG_REQ_PAGES_MAX 1024u /* one post-copy request: 4 MiB */
#define MSG_DROP_PAGES_MAX (1u << 24)
#define MSG_VADDR_LIMIT (1ULL << 57)
#define MSG_ROUNDS_MAX 1000u
#define MSG_SHMEM_MAX 1024u	    /* shared memory objects in the store */
#define MSG_SHM_NAME_MAX 249u	    /* a memfd's name (MFD_NAME_MAX_LEN) */
#define MSG_FSDATA_MAX (60u * 1024) /* bytes of one FsData */
#define MSG_ARGV_MAX 256u
#define MSG_ENV_MAX 1024u
#define MSG_PATH_MAX 4096u
#define MSG_OCI_MOUNTS_MAX 64
#define MSG_OCI_FILES_MAX 16
#define MSG_PODMAN_NETS_MAX 8
#define MSG_PODMAN_DIRS_MAX 4
#define MSG_OCI_VETHS_MAX 8
#define MSG_LXC_CONFIG_MAX (32u * 1024)

typedef Phaul__Msg Msg;

/* A file name the peer may create: [A-Za-z0-9._-]{1,128}, no leading dot. */
bool name_is_safe(const char *name);
/* A path the peer names: absolute, at most 4096 bytes, no control
 * characters, no ".." component. */
bool path_is_safe(const char *path);

int msg_validate(Msg *m);
/* Decode and validate one packed message (the fuzzers' entry point). */
int msg_decode(const uint8_t *buf, size_t len, Msg **ret);
void msg_free(Msg *m);
static inline void msg_freep(Msg **m)
{
	if (*m)
		msg_free(*m);
}
#define _cleanup_msg_ __attribute__((cleanup(msg_freep)))

const char *msg_name(int body_case);

int msg_send(struct conn *c, Msg *m);
/* Receive the next frame, which must be a valid FRAME_MSG. */
int msg_recv(struct conn *c, Msg **ret);

/*
 * Every message body, once: (field in Msg, PHAUL__MSG__BODY_<CASE>, type,
 * name in logs).
 * The typed builders below are generated from it, so a body and its
 * body_case cannot disagree and the compiler checks the body's type.
 * MSG_SENT_BODIES have a plain sender msg_send_<field>(conn, body); Abort
 * and Error are sent with the formatting senders further down.
 */
/* clang-format off */
#define MSG_SENT_BODIES(X)									\
	X(hello,		HELLO,		Phaul__Hello,		"Hello")		\
	X(hello_reply,		HELLO_REPLY,	Phaul__HelloReply,	"HelloReply")		\
	X(preflight,		PREFLIGHT,	Phaul__Preflight,	"Preflight")		\
	X(preflight_reply,	PREFLIGHT_REPLY, Phaul__PreflightReply,	"PreflightReply")	\
	X(file_begin,		FILE_BEGIN,	Phaul__FileBegin,	"FileBegin")		\
	X(file_end,		FILE_END,	Phaul__FileEnd,		"FileEnd")		\
	X(restore,		RESTORE,	Phaul__Restore,		"Restore")		\
	X(restore_ready,	RESTORE_READY,	Phaul__RestoreReady,	"RestoreReady")		\
	X(commit,		COMMIT,		Phaul__Commit,		"Commit")		\
	X(committed,		COMMITTED,	Phaul__Committed,	"Committed")		\
	X(outcome,		OUTCOME,	Phaul__Outcome,		"Outcome")		\
	X(page_run,		PAGE_RUN,	Phaul__PageRun,		"PageRun")		\
	X(round_end,		ROUND_END,	Phaul__RoundEnd,	"RoundEnd")		\
	X(page_req,		PAGE_REQ,	Phaul__PageReq,		"PageReq")		\
	X(page_data,		PAGE_DATA,	Phaul__PageData,	"PageData")		\
	X(page_drop,		PAGE_DROP,	Phaul__PageDrop,	"PageDrop")		\
	X(page_shared,		PAGE_SHARED,	Phaul__PageShared,	"PageShared")		\
	X(pages_done,		PAGES_DONE,	Phaul__PagesDone,	"PagesDone")		\
	X(fs_sync,		FS_SYNC,	Phaul__FsSync,		"FsSync")		\
	X(fs_data,		FS_DATA,	Phaul__FsData,		"FsData")		\
	X(fs_sync_done,		FS_SYNC_DONE,	Phaul__FsSyncDone,	"FsSyncDone")		\
	X(restart,		RESTART,	Phaul__Restart,		"Restart")		\
	X(oci,			OCI,		Phaul__OciContainer,	"OciContainer")		\
	X(new_pids,		NEW_PIDS,	Phaul__NewPids,		"NewPids")		\
	X(lxc,			LXC,		Phaul__LxcContainer,	"LxcContainer")		\
	X(check,		CHECK,		Phaul__Preflight,	"Check")

#define MSG_BODIES(X)										\
	MSG_SENT_BODIES(X)									\
	X(abort,		ABORT,		Phaul__Abort,		"Abort")		\
	X(error,		ERROR,		Phaul__Error,		"Error")
/* clang-format on */

/* msg_set_<field>(m, body): make body the one body of m. */
#define MSG_SETTER(field, CASE, Type, name)                    \
	static inline void msg_set_##field(Msg *m, Type *body) \
	{                                                      \
		m->body_case = PHAUL__MSG__BODY_##CASE;        \
		m->field = body;                               \
	}
MSG_BODIES(MSG_SETTER)
#undef MSG_SETTER

/* msg_send_<field>(conn, body): send a message whose one body is body. */
#define MSG_SENDER(field, CASE, Type, name) int msg_send_##field(struct conn *c, Type *body);
MSG_SENT_BODIES(MSG_SENDER)
#undef MSG_SENDER

/* Error{code = |err| (EIO if 0 or out of range), step, printf text}. */
int msg_send_error(struct conn *c, int err, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Abort{reason}, the reason cut to MSG_TEXT_MAX. */
int msg_send_abort(struct conn *c, const char *reason);

#endif
