#!/bin/sh
# Regenerates the seed corpus of fuzz_snapshot_reader: snapshot files written
# by the real coupecircuitd (--once) over small session directories, with
# and without a manual cut, global and per-vhost threshold overrides, and a
# state file at the vhost limit. Each file is exactly the layout's size.
#
# Usage: tests/fuzz/make_snapshot_corpus.sh COUPECIRCUITD [output-dir]
#   e.g. tests/fuzz/make_snapshot_corpus.sh build/scanner/coupecircuitd
set -eu

here=$(cd "$(dirname "$0")" && pwd)
daemon=${1:?usage: $0 COUPECIRCUITD [output-dir]}
out=${2:-"$here/corpus/snapshot_reader"}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$out"

authenticated='Default|a:1:{s:11:"initialized";b:1;}vzn_abc|a:1:{s:7:"storage";s:11:"compte_reel";}'
anonymous='Default|a:1:{s:11:"initialized";b:1;}'

snapshot_for() {  # name state-json session-count
  name=$1
  rm -rf "$work/sessions" "$work/run"
  mkdir -p "$work/sessions" "$work/run"
  i=0
  while [ "$i" -lt "$3" ]; do
    printf '%s' "$authenticated" >"$work/sessions/sess_a$i"
    printf '%s' "$anonymous" >"$work/sessions/sess_b$i"
    : >"$work/sessions/sess_c$i"
    i=$((i + 1))
  done
  if [ -n "$2" ]; then printf '%s' "$2" >"$work/run/state"; fi
  cat >"$work/coupecircuitd.conf" <<EOF
[sessions]
dir = $work/sessions
[snapshot]
path = $work/run/snapshot
[state]
path = $work/run/state
[log]
level = error
EOF
  "$daemon" --once --config "$work/coupecircuitd.conf"
  cp "$work/run/snapshot" "$out/$name"
}

snapshot_for empty_dir '' 0
snapshot_for counts_only '' 3
snapshot_for cut_and_overrides \
  '{"version":1,"cut":{"active":true,"reason":"DB maintenance","since":1700000000},"thresholds":{"global":{"sessions":500,"load":"8.00"},"vhosts":{"www.example.org":{"sessions":200},"app.example.org":{"load":"4.50"}}}}' 2
vhosts=$(i=0; sep=''; while [ $i -lt 64 ]; do printf '%s"h%d.example.org":{"sessions":%d,"load":"%d.%02d"}' "$sep" $i $i $i $i; sep=','; i=$((i + 1)); done)
snapshot_for sixty_four_vhosts "{\"version\":1,\"thresholds\":{\"vhosts\":{$vhosts}}}" 1
snapshot_for state_invalid 'not json' 1
echo "wrote $(ls "$out" | wc -l) files to $out"
