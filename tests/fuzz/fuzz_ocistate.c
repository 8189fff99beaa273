/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the oci driver's parsers of what a peer sends (the
 * runtime's state file arrives with the images) and of mountinfo text.
 * The input's first byte picks runc or crun; the rest, NUL-terminated,
 * is a state file, rewritten when it parses (the rewrite must parse back
 * with the new PID and start time), and, split at its first NUL or '|',
 * two mountinfo texts for oci_ext_mounts (every source found must be an
 * absolute path).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "drivers/htype/ocistate.h"
#include "fuzz.h"

static void state(enum oci_runtime rt, const char *s)
{
	struct oci_state st, st2;
	char *out = NULL;

	if (oci_state_parse(rt, s, &st) < 0)
		return;
	CHECK(st.pid >= 2 && st.rootfs[0] == '/' && st.bundle[0] == '/');
	if (oci_state_update(rt, s, 4242, 77, &out) == 0) {
		CHECK(oci_state_parse(rt, out, &st2) == 0);
		CHECK(st2.pid == 4242 && st2.start == 77);
		CHECK(!strcmp(st.rootfs, st2.rootfs) && !strcmp(st.bundle, st2.bundle));
		oci_state_free(&st2);
		free(out);
	}
	oci_state_free(&st);
}

static void mounts(char *s)
{
	char *host = strchr(s, '|');
	struct oci_mount *m;
	size_t n;

	if (!host)
		return;
	*host++ = '\0';
	if (oci_ext_mounts(s, host, &m, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		CHECK(m[i].source[0] == '/' && m[i].dest[0] == '/');
	oci_mounts_free(m, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1 || size > 65536)
		return 0;
	log_init("fuzz", LOG_QUIET);
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	state(data[0] & 1 ? OCI_CRUN : OCI_RUNC, s);
	mounts(s);
	free(s);
	return 0;
}
