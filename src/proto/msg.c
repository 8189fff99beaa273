/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "msg: "
#include "proto/msg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "proto/wire.h"

bool name_is_safe(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > MSG_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Peer text is for logs: bound it and replace control characters. */
static int text_ok(char *s, size_t max)
{
	size_t len;

	if (!s)
		return 0;
	len = strnlen(s, max + 1);
	if (len > max)
		return -EPROTO;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = '?';
	return 0;
}

static int check_preflight_reply(Phaul__PreflightReply *r)
{
	if (r->n_in_place > MSG_IN_PLACE_MAX)
		return -EPROTO;
	for (size_t i = 0; i < r->n_in_place; i++)
		if (text_ok(r->in_place[i], 4096) || r->in_place[i][0] != '/')
			return -EPROTO;
	if (text_ok(r->stream_why, MSG_TEXT_MAX))
		return -EPROTO;
	return text_ok(r->error, MSG_TEXT_MAX);
}

static int check_hello(Phaul__Hello *h)
{
	if (h->has_resume && h->resume.len != PHAUL_SESSION_ID_LEN)
		return -EPROTO;
	return text_ok(h->host, 255);
}

static int check_hello_reply(Phaul__HelloReply *h)
{
	if (h->has_session_id && h->session_id.len != PHAUL_SESSION_ID_LEN)
		return -EPROTO;
	return text_ok(h->host, 255);
}

static int check_preflight(Phaul__Preflight *p)
{
	if (text_ok(p->mode, 16) || text_ok(p->htype, 32) || text_ok(p->root_cmd, 64))
		return -EPROTO;
	if (p->n_fs > MSG_FS_MAX || p->n_pids > MSG_PIDS_MAX)
		return -EPROTO;
	for (size_t i = 0; i < p->n_fs; i++)
		if (text_ok(p->fs[i], 4096))
			return -EPROTO;
	for (size_t i = 0; i < p->n_pids; i++)
		if (p->pids[i] <= 0 || p->pids[i] > (1 << 22))
			return -EPROTO;
	if (p->has_cpuinfo && p->cpuinfo.len > MSG_CPUINFO_MAX)
		return -EPROTO;
	return 0;
}

/* A run of pages of one process: in range, page aligned, not wrapping. */
static int check_run(int32_t pid, uint64_t vaddr, uint32_t nr, uint32_t min, uint32_t max)
{
	if (pid <= 0 || pid > (1 << 22) || vaddr % PAGE || nr < min || nr > max ||
	    vaddr >= MSG_VADDR_LIMIT || (uint64_t)nr * PAGE > MSG_VADDR_LIMIT - vaddr)
		return -EPROTO;
	return 0;
}

/* Peer strings that become a command line: bounded, nothing else. */
static int check_restart(Phaul__Restart *r)
{
	if (r->n_argv == 0 || r->n_argv > MSG_ARGV_MAX || r->n_env > MSG_ENV_MAX)
		return -EPROTO;
	if (!r->argv[0][0] || strnlen(r->cwd, MSG_PATH_MAX + 1) > MSG_PATH_MAX || r->cwd[0] != '/')
		return -EPROTO;
	if (r->stdout &&
	    (strnlen(r->stdout, MSG_PATH_MAX + 1) > MSG_PATH_MAX || r->stdout[0] != '/'))
		return -EPROTO;
	for (size_t i = 0; i < r->n_env; i++)
		if (!strchr(r->env[i], '=') || r->env[i][0] == '=')
			return -EPROTO;
	return 0;
}

bool path_is_safe(const char *path)
{
	size_t len = path ? strnlen(path, MSG_PATH_MAX + 1) : 0;

	if (len < 1 || len > MSG_PATH_MAX || path[0] != '/')
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)path[i] < 0x20 || path[i] == 0x7f)
			return false;
	for (const char *p = path; (p = strstr(p, "/..")); p += 3)
		if (p[3] == '/' || p[3] == '\0')
			return false;
	return true;
}

/* CRIU's key for an external file: file[HEX:HEX] or pipe:[DIGITS]. */
static bool stdio_key_ok(const char *k)
{
	unsigned long long a, b;
	int n = 0;

	if (strlen(k) > 64)
		return false;
	if (sscanf(k, "file[%llx:%llx]%n", &a, &b, &n) == 2 && k[n] == '\0')
		return true;
	n = 0;
	return sscanf(k, "pipe:[%llu]%n", &a, &n) == 1 && k[n] == '\0';
}

static bool ifname_ok(const char *s)
{
	return s && strlen(s) < 16 && name_is_safe(s);
}

static int check_podman(Phaul__PodmanInfo *p)
{
	if (!name_is_safe(p->name) || strlen(p->image_id) != 64 ||
	    strspn(p->image_id, "0123456789abcdef") != 64 || p->n_networks > MSG_PODMAN_NETS_MAX ||
	    p->n_dirs > MSG_PODMAN_DIRS_MAX || text_ok(p->image, 512) < 0)
		return -EPROTO;
	for (size_t i = 0; i < p->n_networks; i++)
		if (!name_is_safe(p->networks[i]))
			return -EPROTO;
	for (size_t i = 0; i < p->n_dirs; i++)
		if (!path_is_safe(p->dirs[i]))
			return -EPROTO;
	if (p->n_macs > MSG_PODMAN_NETS_MAX)
		return -EPROTO;
	for (size_t i = 0; i < p->n_macs; i++) {
		unsigned int b[6];
		int n = 0;
		if (sscanf(p->macs[i], "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1], &b[2], &b[3],
			   &b[4], &b[5], &n) != 6 ||
		    n != 17 || p->macs[i][n])
			return -EPROTO;
	}
	return 0;
}

static int check_oci(Phaul__OciContainer *o)
{
	if (o->podman && check_podman(o->podman) < 0)
		return -EPROTO;
	if (!name_is_safe(o->id) || (strcmp(o->runtime, "runc") && strcmp(o->runtime, "crun")))
		return -EPROTO;
	if (!path_is_safe(o->runtime_root) || !path_is_safe(o->bundle) ||
	    !path_is_safe(o->rootfs) || o->n_mounts > MSG_OCI_MOUNTS_MAX ||
	    o->n_stdio > MSG_OCI_FILES_MAX)
		return -EPROTO;
	for (size_t i = 0; i < o->n_mounts; i++)
		if (!path_is_safe(o->mounts[i]->dest) || !path_is_safe(o->mounts[i]->source))
			return -EPROTO;
	if (o->n_veths > MSG_OCI_VETHS_MAX)
		return -EPROTO;
	for (size_t i = 0; i < o->n_veths; i++)
		if (!ifname_ok(o->veths[i]->inner) || !ifname_ok(o->veths[i]->outer) ||
		    (o->veths[i]->bridge && !ifname_ok(o->veths[i]->bridge)))
			return -EPROTO;
	for (size_t i = 0; i < o->n_stdio; i++) {
		Phaul__OciStdio *s = o->stdio[i];
		if (s->fd > (1u << 20) || !stdio_key_ok(s->key) ||
		    (s->path && !path_is_safe(s->path)))
			return -EPROTO;
		if (s->has_flags && (s->flags & ~(uint32_t)(O_ACCMODE | O_APPEND)))
			return -EPROTO;
	}
	return 0;
}

static int check_lxc(const Phaul__LxcContainer *l)
{
	if (!name_is_safe(l->name) || !path_is_safe(l->lxcpath) ||
	    strnlen(l->config, MSG_LXC_CONFIG_MAX + 1) > MSG_LXC_CONFIG_MAX)
		return -EPROTO;
	return 0;
}

/* A process's run, or a shared memory object's (pid 0, a shmid; the
 * offset in the object checked as a vaddr). */
static int check_page_run(Phaul__PageRun *pr)
{
	if (text_ok(pr->shm_name, MSG_SHM_NAME_MAX) < 0)
		return -EPROTO;
	if (pr->has_shmid)
		return pr->pid == 0 && pr->shmid ?
			       check_run(1, pr->vaddr, pr->nr_pages, 1, MSG_RUN_PAGES_MAX) :
			       -EPROTO;
	return check_run(pr->pid, pr->vaddr, pr->nr_pages, 1, MSG_RUN_PAGES_MAX);
}

static int check_body(Msg *m)
{
	switch (m->body_case) {
	case PHAUL__MSG__BODY_HELLO: return check_hello(m->hello);
	case PHAUL__MSG__BODY_HELLO_REPLY: return check_hello_reply(m->hello_reply);
	case PHAUL__MSG__BODY_PREFLIGHT: return check_preflight(m->preflight);
	case PHAUL__MSG__BODY_CHECK: return check_preflight(m->check);
	case PHAUL__MSG__BODY_PREFLIGHT_REPLY: return check_preflight_reply(m->preflight_reply);
	case PHAUL__MSG__BODY_FILE_BEGIN:
		if (!name_is_safe(m->file_begin->name) || m->file_begin->size > MSG_FILE_MAX ||
		    m->file_begin->mode > 07777)
			return -EPROTO;
		return 0;
	case PHAUL__MSG__BODY_RESTORE_READY:
		return m->restore_ready->root_pid > 0 && m->restore_ready->root_pid <= (1 << 22) ?
			       0 :
			       -EPROTO;
	case PHAUL__MSG__BODY_COMMITTED:
		return m->committed->root_pid > 0 && m->committed->root_pid <= (1 << 22) ?
			       0 :
			       -EPROTO;
	case PHAUL__MSG__BODY_ABORT: return text_ok(m->abort->reason, MSG_TEXT_MAX);
	case PHAUL__MSG__BODY_OUTCOME:
		return (uint32_t)m->outcome->state <= PHAUL__OUTCOME__STATE__PENDING ? 0 : -EPROTO;
	case PHAUL__MSG__BODY_ERROR:
		if (m->error->code == 0 || m->error->code > 4095)
			return -EPROTO;
		if (text_ok(m->error->message, MSG_TEXT_MAX) || text_ok(m->error->step, 32))
			return -EPROTO;
		return 0;
	case PHAUL__MSG__BODY_PAGE_RUN: return check_page_run(m->page_run);
	case PHAUL__MSG__BODY_PAGE_REQ:
		return check_run(m->page_req->pid, m->page_req->vaddr, m->page_req->nr_pages, 1,
				 MSG_REQ_PAGES_MAX);
	case PHAUL__MSG__BODY_PAGE_DATA:
		return check_run(m->page_data->pid, m->page_data->vaddr, m->page_data->nr_pages, 0,
				 MSG_REQ_PAGES_MAX);
	case PHAUL__MSG__BODY_PAGE_DROP:
		return check_run(m->page_drop->pid, m->page_drop->vaddr, m->page_drop->nr_pages, 1,
				 MSG_DROP_PAGES_MAX);
	case PHAUL__MSG__BODY_PAGE_SHARED:
		if (m->page_shared->has_from_pid &&
		    (m->page_shared->from_pid <= 0 || m->page_shared->from_pid > (1 << 22) ||
		     m->page_shared->from_pid == m->page_shared->pid))
			return -EPROTO;
		return check_run(m->page_shared->pid, m->page_shared->vaddr,
				 m->page_shared->nr_pages, 1, MSG_DROP_PAGES_MAX);
	case PHAUL__MSG__BODY_PAGES_DONE: return 0;
	case PHAUL__MSG__BODY_ROUND_END: return m->round_end->round <= MSG_ROUNDS_MAX ? 0 : -EPROTO;
	case PHAUL__MSG__BODY_FS_SYNC:
		return m->fs_sync->driver < MSG_FS_MAX && m->fs_sync->round <= MSG_ROUNDS_MAX ?
			       0 :
			       -EPROTO;
	case PHAUL__MSG__BODY_FS_DATA:
		return !m->fs_data->has_data || m->fs_data->data.len <= MSG_FSDATA_MAX ?
			       0 :
			       -EPROTO;
	case PHAUL__MSG__BODY_FS_SYNC_DONE:
		return m->fs_sync_done->status >= 0 && m->fs_sync_done->status <= 255 ? 0 : -EPROTO;
	case PHAUL__MSG__BODY_RESTART: return check_restart(m->restart);
	case PHAUL__MSG__BODY_OCI: return check_oci(m->oci);
	case PHAUL__MSG__BODY_LXC: return check_lxc(m->lxc);
	case PHAUL__MSG__BODY_NEW_PIDS:
		if (m->new_pids->n_pids > MSG_PIDS_MAX)
			return -EPROTO;
		for (size_t i = 0; i < m->new_pids->n_pids; i++)
			if (m->new_pids->pids[i] <= 0 || m->new_pids->pids[i] > (1 << 22))
				return -EPROTO;
		return 0;
	case PHAUL__MSG__BODY_FILE_END:
	case PHAUL__MSG__BODY_RESTORE:
	case PHAUL__MSG__BODY_COMMIT: return 0;
	default: return -EPROTO;
	}
}

int msg_validate(Msg *m)
{
	return check_body(m);
}

int msg_decode(const uint8_t *buf, size_t len, Msg **ret)
{
	Msg *m;

	if (len > FRAME_MSG_MAX)
		return -EPROTO;
	m = phaul__msg__unpack(NULL, len, buf);
	if (!m)
		return -EPROTO;
	if (msg_validate(m) < 0) {
		phaul__msg__free_unpacked(m, NULL);
		return -EPROTO;
	}
	*ret = m;
	return 0;
}

void msg_free(Msg *m)
{
	phaul__msg__free_unpacked(m, NULL);
}

const char *msg_name(int body_case)
{
#define MSG_NAME(field, CASE, Type, name) [PHAUL__MSG__BODY_##CASE] = name,
	static const char *const names[] = { MSG_BODIES(MSG_NAME) };
#undef MSG_NAME

	if (body_case <= 0 || (size_t)body_case >= ARRAY_SIZE(names) || !names[body_case])
		return "unknown";
	return names[body_case];
}

int msg_send(struct conn *c, Msg *m)
{
	uint8_t buf[FRAME_MSG_MAX];
	size_t len = phaul__msg__get_packed_size(m);

	if (len > sizeof(buf)) {
		pr_err("%s message too large (%zu bytes)", msg_name(m->body_case), len);
		return -EMSGSIZE;
	}
	phaul__msg__pack(m, buf);
	pr_debug("send %s (%zu bytes)", msg_name(m->body_case), len);
	return frame_send(c, FRAME_MSG, buf, len);
}

int msg_recv(struct conn *c, Msg **ret)
{
	_cleanup_free_ uint8_t *buf = malloc(FRAME_MSG_MAX);
	enum frame_type type;
	uint32_t len;
	int r;

	if (!buf)
		return -ENOMEM;
	r = frame_recv(c, &type, buf, FRAME_MSG_MAX, &len);
	if (r == -EMSGSIZE) { /* a valid header: only a data frame is that long */
		pr_err("peer sent a data frame where a message was expected");
		return -EPROTO;
	}
	if (r < 0)
		return r;
	if (type != FRAME_MSG) {
		pr_err("peer sent a data frame where a message was expected");
		return -EPROTO;
	}
	r = msg_decode(buf, len, ret);
	if (r < 0) {
		pr_err("peer sent a malformed or out-of-range message (%u bytes)", len);
		return r;
	}
	pr_debug("recv %s", msg_name((*ret)->body_case));
	return 0;
}

#define MSG_SENDER(field, CASE, Type, name)              \
	int msg_send_##field(struct conn *c, Type *body) \
	{                                                \
		Msg m = PHAUL__MSG__INIT;                \
                                                         \
		msg_set_##field(&m, body);               \
		return msg_send(c, &m);                  \
	}
MSG_SENT_BODIES(MSG_SENDER)
#undef MSG_SENDER

int msg_send_error(struct conn *c, int err, const char *step, const char *fmt, ...)
{
	Phaul__Error e = PHAUL__ERROR__INIT;
	Msg m = PHAUL__MSG__INIT;
	char text[MSG_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	e.code = err < 0 ? -err : err;
	if (e.code == 0 || e.code > 4095)
		e.code = EIO;
	e.message = text;
	e.step = (char *)step;
	msg_set_error(&m, &e);
	return msg_send(c, &m);
}

int msg_send_abort(struct conn *c, const char *reason)
{
	Phaul__Abort a = PHAUL__ABORT__INIT;
	Msg m = PHAUL__MSG__INIT;
	char text[MSG_TEXT_MAX];

	snprintf(text, sizeof(text), "%s", reason);
	a.reason = text;
	msg_set_abort(&m, &a);
	return msg_send(c, &m);
}

const char *proto_features_str(uint64_t f, char *buf, size_t len)
{
	static const char *const names[] = { "resume", "frames",  "zstd",
					     "shared", "imgzstd", "shmem" };
	size_t n = 0;

	if (!len)
		return buf;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (f & (1ULL << i) && n < len)
			n += snprintf(buf + n, len - n, "%s%s", n ? " " : "", names[i]);
	f &= ~((1ULL << (sizeof(names) / sizeof(names[0]))) - 1);
	if (f && n < len)
		n += snprintf(buf + n, len - n, "%s0x%llx", n ? " " : "", (unsigned long long)f);
	if (!n)
		snprintf(buf, len, "none");
	return buf;
}

uint32_t proto_version(void)
{
#ifdef PHAUL_FAULT_INJECTION
	const char *v = getenv("PHAUL_FAKE_PROTO_VERSION");
	uint64_t n;

	if (v && parse_u64(v, 0, UINT32_MAX, &n) == 0)
		return n;
#endif
	return PHAUL_PROTO_VERSION;
}
