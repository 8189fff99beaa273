# shellcheck shell=bash
# An older phaul, built from this repository's own history, for tests of
# migrations between versions (a host upgraded before its peer).
#
# oldpeer_init builds commit OLDPEER_COMMIT once into
# $OLDPEER_CACHE/<commit> (default /var/cache/phaul-oldpeer) and sets
#   OLD            the old phaul binary
#   OLD_FEATS      the page features it knows, as both sides log them
#                  (proto_features_str), "none" for 204b605
#   OLDPEER_SKIP   why old-peer tests cannot run here (a shallow clone
#                  lacks the commit), or empty

# "Copies of directory fds are close-on-exec", the parent of the commit
# that added PAGE_FRAMES: Hello carries PAGES_RESUME only.
OLDPEER_COMMIT=${OLDPEER_COMMIT:-204b6055e8830415587510118d8a50fcabf80100}
OLDPEER_CACHE=${OLDPEER_CACHE:-/var/cache/phaul-oldpeer}

# Build the old phaul into the cache unless it is there (flock: bats -j,
# and several test files sharing it).
_oldpeer_build() {
	local dir=$OLDPEER_CACHE/$OLDPEER_COMMIT tmp
	[ ! -x "$dir/build/phaul" ] || return 0
	mkdir -p "$OLDPEER_CACHE" || return 1
	(
		flock 9
		[ ! -x "$dir/build/phaul" ] || exit 0
		tmp=$(mktemp -d "$OLDPEER_CACHE/.build.XXXXXX") || exit 1
		git -C "$REPO_ROOT" archive "$OLDPEER_COMMIT" | tar -C "$tmp" -x || exit 1
		if ! make -C "$tmp" -j"$(nproc)" all >"$tmp/build.log" 2>&1; then
			echo "building phaul $OLDPEER_COMMIT in $tmp failed:" >&2
			tail -n 30 "$tmp/build.log" >&2
			exit 1
		fi
		mv -T "$tmp" "$dir"
	) 9>"$OLDPEER_CACHE/.lock"
}

oldpeer_init() {
	local f
	export OLDPEER_SKIP= OLD_FEATS= OLD=$OLDPEER_CACHE/$OLDPEER_COMMIT/build/phaul
	if ! git -C "$REPO_ROOT" cat-file -e "$OLDPEER_COMMIT^{commit}" 2>/dev/null; then
		OLDPEER_SKIP="commit $OLDPEER_COMMIT (the old phaul) is not in $REPO_ROOT's history (a shallow clone?)"
		return 0
	fi
	_oldpeer_build || return 1
	for f in PAGE_FRAMES PAGE_ZSTD PAGE_SHARED IMG_ZSTD; do
		git -C "$REPO_ROOT" grep -q "PHAUL_FEAT_$f" "$OLDPEER_COMMIT" -- src/proto/msg.h &&
			OLD_FEATS+="${OLD_FEATS:+ }$(_oldpeer_feat_name "$f")"
	done
	OLD_FEATS=${OLD_FEATS:-none}
}

# the name proto_features_str() logs for PHAUL_FEAT_$1
_oldpeer_feat_name() {
	local n=${1#PAGE_}
	[ "$1" = IMG_ZSTD ] && n=imgzstd
	echo "${n,,}"
}

old_has() { [[ " $OLD_FEATS " == *" $1 "* ]]; }

# old_serve, old_migrate: serve_start, fx_migrate with the old phaul
old_serve() { PHAUL=$OLD serve_start "$@"; }
old_migrate() { PHAUL=$OLD fx_migrate "$@"; }
