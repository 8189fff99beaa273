#!/usr/bin/env bats
# The man page phaul(1): made at build time by scripts/manpage from the
# binary's own --help texts (the one source of both), installed by
# `make install` under $(PREFIX)/share/man/man1. Checked: it is current
# (the binary's help texts make it again byte for byte), man and groff
# render it without a warning, every command of `phaul --help` is in it
# and every option of each command's --help too. No test hosts needed.

load lib/hosts
load lib/phaul

setup() {
	[ -x "$PHAUL" ] || { echo "$PHAUL does not exist: run make" >&2; return 1; }
	MAN1=$(dirname "$PHAUL")/phaul.1
	[ -f "$MAN1" ] || { echo "$MAN1 does not exist: run make" >&2; return 1; }
	command -v man >/dev/null && command -v groff >/dev/null ||
		{ echo "man or groff missing (scripts/setup installs man-db, groff-base)" >&2; return 1; }
}

# render FILE: the page as text, wide (no option split across lines); fails
# on any warning of man or groff.
render() {
	local err=$BATS_TEST_TMPDIR/render.err
	groff -man -Tutf8 -ww -z "$1" 2>"$err" && [ ! -s "$err" ] ||
		{ echo "groff warns about $1:" >&2; cat "$err" >&2; return 1; }
	MANWIDTH=200 MAN_KEEP_FORMATTING= man -l "$1" 2>"$err" | col -b
	[ ! -s "$err" ] || { echo "man -l $1:" >&2; cat "$err" >&2; return 1; }
}

commands() { sed -n '/^commands:$/,/^$/s/^  \([a-z][a-z0-9-]*\).*/\1/p' <<<"$("$PHAUL" --help)"; }

@test "man: phaul(1) is current, renders, and has every command and option of the help texts" {
	local text cmd help opt n=0
	cmp "$MAN1" <(bash "$REPO_ROOT/scripts/manpage" "$PHAUL") ||
		{ echo "$MAN1 is stale: the help texts make another page" >&2; false; }
	text=$(render "$MAN1")
	[[ "$text" == *"PHAUL(1)"* && "$text" == *"SYNOPSIS"* && "$text" == *"phaul COMMAND [OPTIONS]"* ]]
	for cmd in $(commands); do
		n=$((n + 1))
		grep -qE "^ +$cmd( |$)" <<<"$text" || { echo "command $cmd not in COMMANDS" >&2; false; }
		help=$("$PHAUL" "$cmd" --help 2>&1) || true
		[[ "$help" == usage:* ]] || continue
		grep -qx "   phaul $cmd" <<<"$text" || { echo "no section for phaul $cmd" >&2; false; }
		for opt in $(grep -oE '^  (-[a-z], )?--[a-z-]+' <<<"$help" | grep -oE -- '--[a-z-]+'); do
			# the option as a tag in the section of its command
			sed -n "/^   phaul $cmd\$/,/^   phaul /p" <<<"$text" | grep -qE "^ +(-[a-z], )?$opt( |\$)" ||
				{ echo "phaul $cmd $opt not in the man page" >&2; false; }
		done
	done
	((n >= 7)) || { echo "only $n commands in phaul --help" >&2; false; }
}

@test "man: make install puts phaul(1) in PREFIX/share/man/man1" {
	local root=$BATS_TEST_TMPDIR/root
	# RELEASE_BUILD= the test build: nothing to compile, the rule's paths tested
	make -s -C "$REPO_ROOT" install DESTDIR="$root" PREFIX=/opt/phaul \
		RELEASE_BUILD="$(dirname "$PHAUL")" >"$BATS_TEST_TMPDIR/make.out" 2>&1 ||
		{ cat "$BATS_TEST_TMPDIR/make.out" >&2; false; }
	[ -x "$root/opt/phaul/bin/phaul" ]
	[ "$(stat -c %a "$root/opt/phaul/share/man/man1/phaul.1")" = 644 ]
	cmp "$MAN1" "$root/opt/phaul/share/man/man1/phaul.1"
	[[ "$(render "$root/opt/phaul/share/man/man1/phaul.1")" == *"phaul report"* ]]
}
