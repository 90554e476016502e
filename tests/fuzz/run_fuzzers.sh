#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time on its seed corpus. A crash fails the run and leaves the
# reproducer in the build directory (add it to tests as a regression).
#   tests/fuzz/run_fuzzers.sh [--seconds N] [--jobs J]
# N seconds per target (default 60), J targets at a time (default 1).
set -euo pipefail
seconds=60
jobs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    *) echo "usage: $0 [--seconds N] [--jobs J]" >&2; exit 2 ;;
  esac
done
source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
build_dir="${COUPECIRCUIT_FUZZ_BUILD_DIR:-$source_dir/build-fuzz}"

# Every library linked into a fuzzer carries the sanitizers, not only the target.
CC=clang CXX=clang++ cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=Debug \
  -DCOUPECIRCUIT_FUZZ=ON -DCOUPECIRCUIT_BUILD_TESTS=OFF -DCOUPECIRCUIT_BUILD_MODULE=OFF \
  -DCOUPECIRCUIT_SANITIZE=address,undefined -DCOUPECIRCUIT_WERROR=ON >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target $(cd "$source_dir/tests/fuzz" && ls fuzz_*.cpp | sed 's/\.cpp$//')

# One target: its exit status says whether it found a failure.
run_one() {
  local name=$1
  local corpus_seed="$source_dir/tests/fuzz/corpus/${name#fuzz_}"
  local work_corpus="$build_dir/corpus/$name"
  mkdir -p "$work_corpus" "$build_dir/artifacts/$name"
  [ -d "$corpus_seed" ] || corpus_seed=
  "$build_dir/tests/fuzz/$name" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$build_dir/artifacts/$name/" "$work_corpus" ${corpus_seed:+"$corpus_seed"} \
    2> "$build_dir/$name.log"
}

names=()
for source in "$source_dir"/tests/fuzz/fuzz_*.cpp; do names+=("$(basename "$source" .cpp)"); done
declare -A pids=()
status=0
for ((i = 0; i < ${#names[@]}; i += jobs)); do
  for name in "${names[@]:i:jobs}"; do
    echo "== $name: ${seconds}s"
    run_one "$name" &
    pids[$name]=$!
  done
  for name in "${names[@]:i:jobs}"; do
    if ! wait "${pids[$name]}"; then
      echo "!! $name found a failure; see $build_dir/$name.log and $build_dir/artifacts/$name/" >&2
      tail -n 40 "$build_dir/$name.log" >&2
      status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build_dir/$name.log" | sed "s/^/   $name /"
  done
done
exit $status
