/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto/state: the destination's dispatch table, checked
 * cell by cell (every state x every body case of phaul.proto's Msg, plus
 * out-of-range input). When the protocol grows a message, the table
 * `allowed` below must say where it is accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "phaul.pb-c.h"
#include "proto/msg.h"
#include "proto/state.h"

/*
 * What PROTOCOL.txt allows from the source in each state, by the names of
 * the Msg body fields in phaul.proto (so renumbering cannot hide a change).
 */
static const char *const allowed[ST__MAX][11] = {
	[ST_HELLO] = { "hello" },
	[ST_PREFLIGHT] = { "preflight", "oci", "lxc", "check", "abort" },
	[ST_TRANSFER] = { "file_begin", "page_run", "round_end", "page_drop", "page_shared",
			  "restore", "fs_sync", "restart", "new_pids", "abort" },
	[ST_RESTORED] = { "commit", "abort" },
	[ST_DONE] = { NULL },
};

/* The largest body case: the highest field number of Msg. */
static int max_body(void)
{
	int max = 0;

	for (unsigned i = 0; i < phaul__msg__descriptor.n_fields; i++)
		if ((int)phaul__msg__descriptor.fields[i].id > max)
			max = phaul__msg__descriptor.fields[i].id;
	return max;
}

static const char *field_name(int body)
{
	const ProtobufCFieldDescriptor *fd =
		protobuf_c_message_descriptor_get_field(&phaul__msg__descriptor, body);

	return fd ? fd->name : NULL;
}

static bool expected(enum sess_state st, int body)
{
	const char *name = field_name(body);

	if (!name || (unsigned)st >= ST__MAX)
		return false;
	for (int i = 0; allowed[st][i]; i++)
		if (!strcmp(allowed[st][i], name))
			return true;
	return false;
}

/* Every name in the table is a real message (a rename must update it). */
static void test_table_names_exist(void **state)
{
	for (int st = 0; st < ST__MAX; st++)
		for (int i = 0; allowed[st][i]; i++)
			if (!protobuf_c_message_descriptor_get_field_by_name(
				    &phaul__msg__descriptor, allowed[st][i]))
				fail_msg("phaul.proto has no message body '%s'", allowed[st][i]);
}

static void check_row(enum sess_state st)
{
	for (int body = 0; body <= max_body() + 1; body++)
		if (state_allows(st, body) != expected(st, body))
			fail_msg("state %s, %s (%d): got %d, want %d", state_name(st),
				 msg_name(body), body, state_allows(st, body), expected(st, body));
}

static void test_hello(void **state)
{
	check_row(ST_HELLO);
}
static void test_preflight(void **state)
{
	check_row(ST_PREFLIGHT);
}
static void test_transfer(void **state)
{
	check_row(ST_TRANSFER);
}
static void test_restored(void **state)
{
	check_row(ST_RESTORED);
}
static void test_done(void **state)
{
	check_row(ST_DONE);
}

/* The count of allowed cells, over the whole table. */
static void test_table_size(void **state)
{
	int n = 0;

	for (int st = 0; st < ST__MAX; st++)
		for (int body = 0; body <= max_body(); body++)
			n += state_allows(st, body);
	assert_int_equal(n, 1 + 5 + 10 + 2 + 0);
	assert_int_equal(ST__MAX, 5);
}

/* Messages only the destination sends are never accepted from the source. */
static void test_replies_never_allowed(void **state)
{
	static const int replies[] = {
		PHAUL__MSG__BODY_HELLO_REPLY,	PHAUL__MSG__BODY_PREFLIGHT_REPLY,
		PHAUL__MSG__BODY_RESTORE_READY, PHAUL__MSG__BODY_COMMITTED,
		PHAUL__MSG__BODY_OUTCOME,	PHAUL__MSG__BODY_FILE_END,
	};

	for (int st = 0; st < ST__MAX; st++)
		for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++)
			assert_false(state_allows(st, replies[i]));
}

static void test_out_of_range(void **state)
{
	const int bodies[] = { -1, -64, max_body() + 1, max_body() + 2, 63,	  64,
			       65, 127, 1 << 20,	INT32_MIN,	INT32_MAX };

	for (int st = 0; st < ST__MAX; st++) {
		assert_false(state_allows(st, PHAUL__MSG__BODY__NOT_SET));
		for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
			assert_false(state_allows(st, bodies[i]));
	}
	for (int body = 0; body <= max_body(); body++) {
		assert_false(state_allows(ST__MAX, body));
		assert_false(state_allows(ST__MAX + 1, body));
		assert_false(state_allows((enum sess_state) - 1, body));
		assert_false(state_allows((enum sess_state)1000, body));
	}
}

static void test_state_names(void **state)
{
	assert_string_equal(state_name(ST_HELLO), "hello");
	assert_string_equal(state_name(ST_PREFLIGHT), "preflight");
	assert_string_equal(state_name(ST_TRANSFER), "transfer");
	assert_string_equal(state_name(ST_RESTORED), "restored");
	assert_string_equal(state_name(ST_DONE), "done");
	assert_string_equal(state_name(ST__MAX), "invalid");
	assert_string_equal(state_name((enum sess_state) - 1), "invalid");
	assert_string_equal(state_name((enum sess_state)12345), "invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_names_exist),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_preflight),
		cmocka_unit_test(test_transfer),
		cmocka_unit_test(test_restored),
		cmocka_unit_test(test_done),
		cmocka_unit_test(test_table_size),
		cmocka_unit_test(test_replies_never_allowed),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_state_names),
	};

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
