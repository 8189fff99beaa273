/* SPDX-License-Identifier: MIT */
#include "proto/mode.h"

#include <errno.h>
#include <string.h>

static const char *const names[MODE__MAX] = {
	[MODE_STOP] = "stop",	  [MODE_LIVE] = "live",	      [MODE_LAZY] = "lazy",
	[MODE_HYBRID] = "hybrid", [MODE_RESTART] = "restart",
};

int mode_parse(const char *name)
{
	for (int i = 0; name && i < MODE__MAX; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -EINVAL;
}

const char *mode_name(enum mig_mode mode)
{
	return (unsigned)mode < MODE__MAX ? names[mode] : "?";
}

bool mode_has_rounds(enum mig_mode mode)
{
	return mode == MODE_LIVE || mode == MODE_HYBRID;
}

bool mode_lazy_dump(enum mig_mode mode)
{
	return mode == MODE_LIVE || mode == MODE_LAZY || mode == MODE_HYBRID;
}

bool mode_postcopy(enum mig_mode mode)
{
	return mode == MODE_LAZY || mode == MODE_HYBRID;
}
