/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the destination's policy checks (target/admit.h) on
 * what a source sends. The first byte chooses:
 *   even  the rest is a path: admit_resolve() either refuses it or
 *         returns an absolute path free of "/./", "/../" and "//", and
 *         admit_path() under a root of /nonexistent-phaul-root accepts
 *         only what resolves below it;
 *   odd   the rest is an LXC config sent with an lxcpath under the only
 *         lxc_root: a config with an lxc.hook.* key is always refused.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "target/admit.h"
#include "fuzz.h"

#define ROOT "/nonexistent-phaul-root"

static void path_case(const char *s)
{
	static struct admit a;
	static char *roots[1] = { (char *)ROOT };
	char out[PATH_MAX], why[512];
	int r = admit_resolve(s, out, sizeof(out));

	if (r == 0) {
		CHECK(out[0] == '/');
		CHECK(!strstr(out, "/./") && !strstr(out, "/../") && !strstr(out, "//"));
	}
	a.modes = 1;
	a.roots[ROOT_SYNC][0] = roots[0];
	a.nr_roots[ROOT_SYNC] = 1;
	if (admit_path(&a, ROOT_SYNC, "fuzz", s, why, sizeof(why)) == 0)
		CHECK(r == 0 && !strncmp(out, ROOT, strlen(ROOT)) &&
		      (out[strlen(ROOT)] == '/' || !out[strlen(ROOT)]));
}

/* Whether some line's first word starts with "lxc.hook." and has an '='. */
static bool has_hook(const char *s)
{
	for (const char *l = s; l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
		const char *p = l + strspn(l, " \t");
		size_t key = strcspn(p, " \t=\n");
		if (!strncmp(p, "lxc.hook.", 9) && key >= 9 &&
		    p[key + strspn(p + key, " \t")] == '=')
			return true;
	}
	return false;
}

static void lxc_case(char *s)
{
	static struct admit a;
	Phaul__Preflight p = PHAUL__PREFLIGHT__INIT;
	Phaul__LxcContainer lc = PHAUL__LXC_CONTAINER__INIT;
	Msg info = PHAUL__MSG__INIT;
	char why[512];
	int r;

	a.modes = 1;
	a.roots[ROOT_LXC][0] = (char *)"/";
	a.nr_roots[ROOT_LXC] = 1;
	p.mode = "stop";
	p.htype = "lxc";
	lc.name = "fuzz";
	lc.lxcpath = ROOT "/lxc";
	lc.config = s;
	msg_set_lxc(&info, &lc);
	r = admit_preflight(&a, &p, &info, why, sizeof(why));
	CHECK(r == 0 || r == -EPERM || r == -ENOMEM);
	if (has_hook(s))
		CHECK(r == -EPERM);
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
	if (data[0] & 1)
		lxc_case(s);
	else
		path_case(s);
	free(s);
	return 0;
}
