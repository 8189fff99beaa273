# CRIU's upstream source tarball, as Debian 13 ships it, fetched with apt
# (checked against the signed index).  Sourced by scripts/setup and
# scripts/zdtm-build; they define log and die.
#
#   apt_update                  apt-get update, once per run
#   fetch_criu_tarball DIR      download criu_*.orig.tar.* into DIR, print its path

apt_updated=""
apt_update() {
	[ -n "$apt_updated" ] && return 0
	log "apt-get update"
	apt-get update -qq >/dev/null
	apt_updated=1
}

trixie_src_list=/etc/apt/sources.list.d/phaul-trixie-src.sources
add_trixie_sources() {
	[ -f "$trixie_src_list" ] && return 0
	local uri
	uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources | head -n1)
	[ -n "$uri" ] || uri=http://deb.debian.org/debian
	cat >"$trixie_src_list" <<EOT
Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
	apt_updated=""
}

fetch_criu_tarball() {
	local dir=$1 tarball
	add_trixie_sources
	apt_update
	mkdir -p "$dir"
	(cd "$dir" && apt-get source -qq --download-only --tar-only criu/trixie >/dev/null 2>&1) ||
		die "apt-get source criu/trixie failed"
	tarball=$(ls "$dir"/criu_*.orig.tar.* 2>/dev/null | head -n1)
	[ -n "$tarball" ] || die "no CRIU tarball downloaded"
	echo "$tarball"
}
