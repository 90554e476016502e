#!/bin/sh
# Classifier cost per session format on the same sessions (the seed corpus
# tests/fuzz/corpus/session_classifier: the same $_SESSION contents written
# by PHP with each serialize_handler): callgrind instruction counts per byte
# and per session, relative to the php format, then wall-clock MB/s and
# sessions/s (noisy on a loaded machine; the instruction counts are not).
#
# Usage: bench/classifier.sh BUILD_DIR [PASSES]
set -eu
build=${1:?usage: bench/classifier.sh BUILD_DIR [PASSES]}
passes=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/../tests/fuzz/corpus/session_classifier"
tool="$build/bench/classifier_bench"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

echo "| handler | bytes | sessions | instructions/byte | vs php | instructions/session | vs php |"
echo "|---|---|---|---|---|---|---|"
base_byte=""
base_session=""
for handler in php php_serialize php_binary igbinary; do
  valgrind --tool=callgrind --callgrind-out-file="$work/out" --toggle-collect='*classify_pass*' \
    "$tool" "$corpus" --passes "$handler" "$passes" >"$work/stdout" 2>"$work/stderr"
  bytes=$(awk '{print $5}' "$work/stdout")
  files=$(awk '{print $3}' "$work/stdout")
  ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$work/stderr")
  per_byte=$(echo "$ir $bytes $passes" | awk '{printf "%.2f", $1 / ($2 * $3)}')
  per_session=$(echo "$ir $files $passes" | awk '{printf "%.0f", $1 / ($2 * $3)}')
  base_byte=${base_byte:-$per_byte}
  base_session=${base_session:-$per_session}
  echo "| $handler | $bytes | $files | $per_byte | $(echo "$per_byte $base_byte" | awk '{printf "%.2f", $1 / $2}')× |" \
       "$per_session | $(echo "$per_session $base_session" | awk '{printf "%.2f", $1 / $2}')× |"
done
echo
"$tool" "$corpus" 2
