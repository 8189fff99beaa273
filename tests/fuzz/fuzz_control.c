/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the control socket's request parser
 * (engine/control.h), which reads what any local root process sends.
 * Any input is answered: accepted, it is one of the two requests with
 * a well-formed id; refused, with -EINVAL or -E2BIG.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "engine/control.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_req rq;
	int r = control_parse((const char *)data, size, &rq);

	if (r < 0) {
		CHECK(r == -EINVAL || r == -E2BIG || r == -ENOMEM);
		CHECK(r != -E2BIG || size > CONTROL_REQ_MAX);
		return 0;
	}
	CHECK(size <= CONTROL_REQ_MAX);
	CHECK(rq.op == CONTROL_STATUS || rq.op == CONTROL_CANCEL);
	if (rq.op == CONTROL_CANCEL) {
		CHECK(strlen(rq.id) == CONTROL_ID_LEN);
		CHECK(strspn(rq.id, "0123456789abcdef") == CONTROL_ID_LEN);
	}
	return 0;
}
