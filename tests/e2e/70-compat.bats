#!/usr/bin/env bats
# The fast part of the compatibility suite (tests/compat, `make compat`):
# the zdtm static tests marked "quick" in tests/compat/zdtm.list, each
# started in src, migrated by phaul to dst in one mode, and checked there
# as zdtm checks them (SIGTERM, the test's own PASS).  Every one must
# pass: they are tests CRIU alone passes between the two hosts, and so
# must phaul.  scripts/zdtm-build builds them (once) from CRIU's source.

bats_require_minimum_version 1.5.0

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd -P)

# compat MODE: run the quick tests in MODE; print what did not pass.
compat() {
	run --separate-stderr "$REPO/tests/compat/run" -q -m "$1" -o "$BATS_TEST_TMPDIR/res"
	echo "$output" | sed 's/^/# /' >&3
	if [ "$status" != 0 ]; then
		echo "tests/compat/run -q -m $1 exited $status: $stderr" >&2
		grep -v "	PASS	" "$BATS_TEST_TMPDIR/res" >&2 || true
		return 1
	fi
	[ "$(grep -c "	PASS	" "$BATS_TEST_TMPDIR/res")" -ge 8 ] ||
		{ echo "fewer than 8 tests passed" >&2; cat "$BATS_TEST_TMPDIR/res" >&2; return 1; }
}

@test "compat: zdtm quick subset, stop mode" { compat stop; }
@test "compat: zdtm quick subset, live mode" { compat live; }
@test "compat: zdtm quick subset, lazy mode" { compat lazy; }
@test "compat: zdtm quick subset, hybrid mode" { compat hybrid; }
