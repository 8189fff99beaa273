/* SPDX-License-Identifier: MIT */
/*
 * connect: the source's connection to the destination, TLS and Hello.
 */
#define LOG_PREFIX "engine: "
#include "source/connect.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "proto/sshchan.h"
#include "proto/pageframe.h"
#include "proto/xfer.h"
#include "proto/tls.h"

static int send_hello(struct conn *c, const uint8_t *resume, uint64_t features)
{
	Phaul__Hello h = PHAUL__HELLO__INIT;
	char host[HOST_NAME_MAX + 1] = "";

	gethostname(host, sizeof(host) - 1);
	h.version = proto_version();
	h.host = host;
	h.has_features = features != 0;
	h.features = features;
	if (resume) {
		h.has_resume = true;
		h.resume.data = (uint8_t *)resume;
		h.resume.len = PHAUL_SESSION_ID_LEN;
	}
	return msg_send_hello(c, &h);
}

static int conn_ready(struct migration *m, const uint8_t *resume, uint64_t features)
{
	conn_set_timeout(m->conn, 60000);
	conn_set_rate(m->conn, m->opts->bandwidth_mbit);
	return send_hello(m->conn, resume, features);
}

/* ssh://: a fresh ssh process and `phaul serve --stdio` behind it. */
static int ssh_connect(struct migration *m, const uint8_t *resume, uint64_t features)
{
	const struct mig_opts *o = m->opts;
	char why[256];
	struct ssh_dest d;
	int r = ssh_url_parse(o->to, &d);

	if (r == 0)
		r = ssh_dial(&d, o->ssh_cmd, o->ssh_remote, &m->conn);
	if (r < 0)
		return mig_fail(m, r, "cannot start ssh to %s: %s", o->to, strerror(-r));
	r = conn_ready(m, resume, features);
	/* the Hello may go out before ssh even logs in: wait for a word back */
	if (r == 0 || r == -EPIPE || r == -ECONNRESET)
		r = ssh_await(m->conn, (o->connect_timeout_s + 20) * 1000, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", strerror(-r));
	if (r < 0)
		return mig_fail(m, r, "%s: %s", o->to, why);
	return 0;
}

int source_connect(struct migration *m, const uint8_t *resume, uint64_t features)
{
	const struct mig_opts *o = m->opts;
	int r;

	if (m->conn) {
		m->st.bytes_before += m->conn->bytes_out;
		conn_free(m->conn);
		m->conn = NULL;
	}
	if (ssh_is_url(o->to))
		return ssh_connect(m, resume, features);
	r = tls_connect(o->to, &o->key, o->connect_timeout_s * 1000, &m->conn);
	if (r == -EACCES)
		return mig_fail(m, r, "the destination %s refused our key (wrong key?)", o->to);
	if (r < 0)
		return mig_fail(m, r, "cannot reach the destination %s: %s", o->to, strerror(-r));
	return conn_ready(m, resume, features);
}

int source_hello(struct migration *m)
{
	_cleanup_msg_ Msg *msg = NULL;
	char fs[64];
	int r;

	mig_step(m, "connect");
	r = fault_point("src.connect");
	if (r == 0)
		r = source_connect(m, NULL,
				   PHAUL_FEAT_PAGE_FRAMES | PHAUL_FEAT_PAGE_SHARED |
					   PHAUL_FEAT_SHMEM_PAGES |
					   (m->opts->compress != PF_COMPRESS_OFF ?
						    PHAUL_FEAT_PAGE_ZSTD | PHAUL_FEAT_IMG_ZSTD :
						    0));
	if (r < 0)
		return m->error[0] ? r : mig_fail(m, r, "%s", strerror(-r));
	r = expect_msg(m, PHAUL__MSG__BODY_HELLO_REPLY, &msg);
	if (r < 0)
		return r;
	if (msg->hello_reply->version != proto_version())
		return mig_fail(m, -EPROTONOSUPPORT,
				"the destination speaks protocol version %u, we speak %u",
				msg->hello_reply->version, proto_version());
	if (!msg->hello_reply->has_session_id)
		return mig_fail(m, -EPROTO, "the destination sent no session id");
	memcpy(m->session_id, msg->hello_reply->session_id.data, PHAUL_SESSION_ID_LEN);
	/* an older destination does not say it: raw pages then */
	if (msg->hello_reply->features & PHAUL_FEAT_PAGE_FRAMES) {
		if (pf_attach(m->conn, &m->st.pages) < 0)
			return mig_fail(m, -ENOMEM, "no memory for the page codec");
		/* an older destination does not say zstd: zero pages only then */
		m->conn->pf->compress = msg->hello_reply->features & PHAUL_FEAT_PAGE_ZSTD ?
						m->opts->compress :
						PF_COMPRESS_OFF;
	}
	/* an older destination takes image files raw */
	if (msg->hello_reply->features & PHAUL_FEAT_IMG_ZSTD &&
	    xfer_attach(m->conn, m->opts->compress, &m->st.images) < 0)
		return mig_fail(m, -ENOMEM, "no memory for the image codec");
	/* an older destination restores COW-shared pages lazily: unshared */
	m->peer_shared = msg->hello_reply->features & PHAUL_FEAT_PAGE_SHARED;
	/* an older destination gets shared memory in CRIU's images */
	m->peer_shmem = msg->hello_reply->features & PHAUL_FEAT_SHMEM_PAGES;
	pr_info("connected to %s (%s), protocol %u, features %s", m->opts->to,
		msg->hello_reply->host ? msg->hello_reply->host : "?", proto_version(),
		proto_features_str(msg->hello_reply->features, fs, sizeof(fs)));
	return 0;
}
