#!/usr/bin/env bash
# CoupeCircuit benchmark suite: builds a Release tree of its own, then runs
# the sections (per-request cost, throughput, scanner, freshness, helper
# cost; profiles in full mode) and prints a Markdown report. See
# docs/BENCHMARKS.md.
#
#   bench/run.sh            full suite (about 30 minutes; 1M-file scanner test)
#   bench/run.sh --quick    CI smoke (a few minutes; small sizes, few repetitions)
#
# Options:
#   --only LIST        comma-separated sections:
#                      percall,throughput,scanner,freshness,helper,profile
#   --strict           exit 1 when a target is missed (default: only hard checks fail)
#   --no-profile       skip the profiles (strace, callgrind, perf) of the full mode
#   --session-fs loop|dir
#                      session directories on a dedicated loop-mounted ext4
#                      (default, when root) or as plain directories
#   --build-dir DIR    Release build directory (default: <source>/build-bench,
#                      or $COUPECIRCUIT_BENCH_BUILD_DIR)
#   --work-dir DIR     generated servers, session directories and results
#                      (default: <build-dir>/bench-work; about 6 GB free needed
#                      in full mode)
#
# Needs (Debian 12): cmake g++ pkg-config libcli11-dev libinih-dev libabsl-dev
# nlohmann-json3-dev libsystemd-dev apache2 apache2-dev libapache2-mod-php8.2
# php8.2-fpm php8.2-apcu valgrind wrk time python3 util-linux e2fsprogs;
# optional: strace linux-perf (profiles). Run as root (the helper reads
# session files as in production; Apache and php-fpm workers run as
# www-data); every server listens on 127.0.0.1 only. Exit status: 0 done
# (see the report for targets), 1 a hard check failed, 2 bad usage.
set -euo pipefail

source_dir="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${COUPECIRCUIT_BENCH_BUILD_DIR:-$source_dir/build-bench}"
work_dir=""
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick|--strict|--no-profile) pass+=("$1"); shift ;;
    --only|--session-fs) pass+=("$1" "$2"); shift 2 ;;
    --build-dir) build_dir="$2"; shift 2 ;;
    --work-dir) work_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
build_dir="$(mkdir -p "$build_dir" && cd "$build_dir" && pwd)"
work_dir="${work_dir:-$build_dir/bench-work}"

missing=()
for tool in cmake g++ python3 valgrind wrk apache2 apxs setpriv /usr/bin/time php-fpm8.2; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/run.sh: missing: ${missing[*]}" >&2
  echo "  apt-get install cmake g++ python3 valgrind wrk apache2 apache2-dev libapache2-mod-php8.2 php8.2-fpm php8.2-apcu time util-linux" >&2
  exit 2
fi
if [ ! -f /usr/lib/apache2/modules/libphp8.2.so ]; then
  echo "bench/run.sh: mod_php missing: apt-get install libapache2-mod-php8.2 php8.2-apcu" >&2
  exit 2
fi

avail_kb="$(df -Pk "$(dirname "$work_dir")" | awk 'NR==2 {print $4}')"
echo "bench: disk free under $(dirname "$work_dir"): $((avail_kb / 1024 / 1024)) GB" >&2
case " ${pass[*]} " in
  *" --quick "*) ;;
  *) if [ "$avail_kb" -lt $((6 * 1024 * 1024)) ]; then
       echo "bench/run.sh: the full suite needs about 6 GB free for the 1M-file directory; use --work-dir or --quick" >&2
       exit 2
     fi ;;
esac

echo "bench: building (Release) in $build_dir" >&2
cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCOUPECIRCUIT_BUILD_TESTS=OFF \
  -DCOUPECIRCUIT_BUILD_MODULE=ON >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target coupecircuitd coupecircuitctl mod_coupecircuit >/dev/null
mkdir -p "$build_dir/bench-tools"
g++ -std=c++20 -O2 -Wall -Wextra -pthread -o "$build_dir/bench-tools/cc_benchtool" "$source_dir/bench/tools/cc_benchtool.cpp"

exec python3 "$source_dir/bench/bench.py" --build-dir "$build_dir" --work-dir "$work_dir" \
  --tool "$build_dir/bench-tools/cc_benchtool" --apache-modules "$(apxs -q LIBEXECDIR)" "${pass[@]}"
