/* SPDX-License-Identifier: MIT */
#include "proto/state.h"

#include "common/util.h"
#include "phaul.pb-c.h"

#define BIT(x) (1ull << (x))

static const unsigned long long allowed[ST__MAX] = {
	[ST_HELLO] = BIT(PHAUL__MSG__BODY_HELLO),
	[ST_PREFLIGHT] = BIT(PHAUL__MSG__BODY_PREFLIGHT) | BIT(PHAUL__MSG__BODY_OCI) |
			 BIT(PHAUL__MSG__BODY_LXC) | BIT(PHAUL__MSG__BODY_CHECK) |
			 BIT(PHAUL__MSG__BODY_ABORT),
	[ST_TRANSFER] = BIT(PHAUL__MSG__BODY_FILE_BEGIN) | BIT(PHAUL__MSG__BODY_RESTORE) |
			BIT(PHAUL__MSG__BODY_PAGE_RUN) | BIT(PHAUL__MSG__BODY_ROUND_END) |
			BIT(PHAUL__MSG__BODY_PAGE_DROP) | BIT(PHAUL__MSG__BODY_PAGE_SHARED) |
			BIT(PHAUL__MSG__BODY_FS_SYNC) | BIT(PHAUL__MSG__BODY_RESTART) |
			BIT(PHAUL__MSG__BODY_NEW_PIDS) | BIT(PHAUL__MSG__BODY_ABORT),
	[ST_RESTORED] = BIT(PHAUL__MSG__BODY_COMMIT) | BIT(PHAUL__MSG__BODY_ABORT),
	[ST_DONE] = 0,
};

bool state_allows(enum sess_state st, int body_case)
{
	if ((unsigned)st >= ST__MAX || body_case <= 0 || body_case >= 64)
		return false;
	return allowed[st] & BIT(body_case);
}

const char *state_name(enum sess_state st)
{
	static const char *const names[ST__MAX] = {
		[ST_HELLO] = "hello",	    [ST_PREFLIGHT] = "preflight",
		[ST_TRANSFER] = "transfer", [ST_RESTORED] = "restored",
		[ST_DONE] = "done",
	};

	return (unsigned)st < ST__MAX ? names[st] : "invalid";
}
