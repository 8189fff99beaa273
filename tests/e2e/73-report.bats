#!/usr/bin/env bats
# End-to-end tests of `phaul report`: the JSON of a real migration between
# the two test hosts as an HTML page, rendered by headless Chromium (the
# package `chromium`, which scripts/setup installs: these tests fail, never
# skip, without it). Checked: the page holds no script and Chromium logs
# no console message (the page's Content-Security-Policy turns any script
# or external resource into one), the DOM has one bar pair per pre-copy
# round and the charts' titles, the screenshot is not blank; a hostile JSON
# is escaped, a broken one refused with one line.

load lib/hosts
load lib/phaul
load lib/fixtures

setup() {
	hosts_setup
	phaul_setup
	CHROMIUM=$(command -v chromium || command -v chromium-browser) || {
		echo "chromium is not installed (scripts/setup installs it)" >&2
		return 1
	}
}

teardown() {
	hosts_teardown
}

# render NAME: $SCRATCH/NAME.html through headless Chromium, in one run,
# into NAME.dom (the DOM after loading), NAME.png (a 900x1100 screenshot)
# and NAME.log (Chromium's log, console messages included). Fails on a
# console message.
render() {
	local base=$SCRATCH/$1
	timeout -k 5 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
		--user-data-dir="$SCRATCH/chromium" --enable-logging=stderr --log-level=0 \
		--hide-scrollbars --window-size=900,1100 --screenshot="$base.png" \
		--dump-dom "file://$base.html" >"$base.dom" 2>"$base.log" ||
		{ echo "chromium failed:" >&2; cat "$base.log" >&2; return 1; }
	[ -s "$base.png" ] || { echo "chromium wrote no screenshot:" >&2; cat "$base.log" >&2; return 1; }
	if grep ':CONSOLE' "$base.log" >&2; then
		echo "the page logged console messages (above)" >&2
		return 1
	fi
	grep -q '</svg>\|id="no-rounds"' "$base.dom" ||
		{ echo "the DOM Chromium dumped has no chart:" >&2; head -c 2000 "$base.dom" >&2; return 1; }
}

# png_ink PNG: "WIDTH HEIGHT INKED COLOURED": pixels not white, and of
# those, pixels of a colour (not grey: the bars). PNG decoded by hand
# (zlib and the five row filters): python3 here has no PIL.
png_ink() {
	python3 - "$1" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat = 8, b''
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b'IHDR':
        w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
    elif kind == b'IDAT':
        idat += body
    pos += 12 + n
assert depth == 8 and ctype in (2, 6), 'unexpected PNG format %d/%d' % (depth, ctype)
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, inked, coloured = bytearray(stride), 0, 0
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        r, g, bl = line[x], line[x + 1], line[x + 2]
        if min(r, g, bl) < 240:
            inked += 1
            if max(r, g, bl) - min(r, g, bl) > 60:
                coloured += 1
    prev = line
print(w, h, inked, coloured)
PY
}

# assert_screenshot NAME MIN_COLOURED: NAME.png is 900 wide, at least 2% of
# it is ink, at least MIN_COLOURED pixels are coloured (the charts).
assert_screenshot() {
	local w h inked coloured
	read -r w h inked coloured < <(png_ink "$SCRATCH/$1.png") ||
		{ echo "cannot read $1.png" >&2; return 1; }
	note "$1.png: ${w}x${h}, $inked pixels inked, $coloured coloured"
	[ "$w" -eq 900 ] && ((inked > w * h / 50 && coloured >= $2)) ||
		{ echo "$1.png looks blank: ${w}x${h}, $inked inked, $coloured coloured" >&2; false; }
}

# count NAME PATTERN: occurrences of PATTERN (fixed) in NAME.dom
count() { grep -oF -- "$2" "$SCRATCH/$1.dom" | wc -l; }

# report_of NAME: phaul report of $output (a migration's JSON) as NAME.html
report_of() {
	printf '%s\n' "$output" >"$SCRATCH/$1.json"
	"$PHAUL" report "$SCRATCH/$1.json" >"$SCRATCH/$1.html" ||
		{ echo "phaul report failed on: $output" >&2; return 1; }
	! grep -qi '<script' "$SCRATCH/$1.html" ||
		{ echo "the page has a script" >&2; return 1; }
}

@test "report: a live migration's JSON renders in Chromium: a bar pair per round, the frozen phases, no console message" {
	local rounds frozen
	serve_start
	fx_start_mtouch 64 8 32
	migrate --key "$KEY" --mode live --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_json_object
	rounds=$(json '.iters | length') frozen=$(json .frozen_ms)
	((rounds >= 2)) || { echo "expected the rounds and the frozen one: $output" >&2; false; }
	report_of live
	render live
	[ "$(count live '<rect class="bar dirty')" -eq "$rounds" ]
	[ "$(count live '<rect class="bar sent')" -eq "$rounds" ]
	[ "$(count live '<circle class="ratept"')" -eq "$rounds" ]
	# the frozen round (the last one) is marked as such
	[ "$(count live '<rect class="bar sent frozen"')" -eq "$(json '[.iters[] | select(.frozen)] | length')" ]
	[ "$(count live '<title>Pre-copy rounds: dirty and sent pages, transfer rate</title>')" -eq 1 ]
	[ "$(count live '<title>Frozen time by phase</title>')" -eq 1 ]
	[ "$(count live '<rect class="seg ')" -eq 4 ]
	[ "$(count live "<title>dump: $(json .dump_ms) ms</title>")" -eq 1 ]
	[ "$(count live "<title>restore: $(json .restore_ms) ms</title>")" -eq 1 ]
	[ "$(count live "<h2>Frozen time: $frozen ms</h2>")" -eq 1 ]
	[ "$(count live '<td id="mode">live</td>')" -eq 1 ]
	[ "$(count live 'id="chart-postcopy"')" -eq 0 ]
	assert_screenshot live 5000
}

@test "report: a lazy migration's post-copy totals and its fill over time are charted" {
	serve_start
	fx_start_mtouch 64 8 32
	migrate --key "$KEY" --mode lazy --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_json_object
	report_of lazy
	render lazy
	[ "$(count lazy '<title>Post-copy: where the pages came from</title>')" -eq 1 ]
	[ "$(count lazy "<title>on a fault: $(json .postcopy.pages_on_fault) pages</title>")" -eq 1 ]
	[ "$(count lazy "<title>pre-copied: $(json .postcopy.pages_local) pages</title>")" -eq 1 ]
	[ "$(count lazy 'id="no-rounds"')" -eq 1 ]
	# the fill: one point per sample of postcopy.fill, the last one all
	# the pages the source sent
	local n last
	n=$(json '.postcopy.fill | length')
	last=$(json '.postcopy.fill[-1] | "\(.[0]) ms: \(.[1]) pages"')
	[ "$n" -ge 2 ]
	[ "$(json '.postcopy.fill[-1][1]')" -eq "$(json .postcopy.pages_fetched)" ]
	[ "$(count lazy '<circle class="ratept fillpt"')" -eq "$n" ]
	[ "$(count lazy "<title>$last</title>")" -ge 1 ]
	[ "$(count lazy '<rect class="bar ')" -eq 0 ]
	assert_screenshot lazy 2000
}

@test "report: a hostile JSON is escaped and its bad fields dropped; a broken one is refused in one line" {
	local big
	big=$(printf '{"pages_dirty":%d,"mb_per_s":1e308},' $(seq 1 3000))
	cat >"$SCRATCH/evil.json" <<EOF
{"ok":"yes","mode":"<script>alert(1)</script>","outcome":"\"><img src=x onerror=alert(2)>",
 "error":"</td></table><svg onload=alert(3)>","frozen_ms":-1,"total_ms":NaN,"dump_ms":1e400,
 "restore_ms":"90","iters":[${big%,}],"postcopy":{"pages_fetched":1,"pages_on_fault":9}}
EOF
	run "$PHAUL" report "$SCRATCH/evil.json"
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >"$SCRATCH/evil.html"
	[[ "$output" != *"<script"* && "$output" != *"<img"* && "$output" != *"<svg onload"* ]]
	render evil
	[ "$(count evil '<rect class="bar dirty')" -eq 1000 ]
	[ "$(count evil 'The first 1000 of 3000 rounds.')" -eq 1 ]
	[ "$(count evil '&lt;script&gt;alert(1)&lt;/script&gt;')" -ge 1 ]
	[ "$(count evil 'id="warnings"')" -eq 1 ]
	[ "$(count evil '<img')" -eq 0 ]
	assert_screenshot evil 2000

	for bad in '' '{"ok":true' '[1,2]' '{} {}'; do
		printf '%s' "$bad" >"$SCRATCH/bad.json"
		run --separate-stderr "$PHAUL" report "$SCRATCH/bad.json"
		[ "$status" -eq 1 ] && [ -z "$output" ] && [ "$(wc -l <<<"$stderr")" -eq 1 ] &&
			[[ "$stderr" == *"bad.json: not "* ]] ||
			{ echo "'$bad': exit $status, stderr '$stderr'" >&2; false; }
	done
	run --separate-stderr "$PHAUL" report "$SCRATCH/missing.json"
	[ "$status" -eq 1 ] && [[ "$stderr" == *"cannot read"* ]]
	run --separate-stderr "$PHAUL" report
	[ "$status" -eq 2 ]
}
