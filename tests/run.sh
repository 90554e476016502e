#!/usr/bin/env bash
# The test command: configure with warnings as errors, build, run every CTest
# test (unit + integration against a real Apache, PHP and php-fpm), then the
# Debian package install test (benchmarks are not tests: bench/run.sh). Run as root (the helper and Apache run as in
# production). Set COUPECIRCUIT_SKIP_PACKAGE_TEST=1 to skip the .deb install.
set -euo pipefail
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${COUPECIRCUIT_BUILD_DIR:-$source_dir/build}"
jobs="$(nproc)"

cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOUPECIRCUIT_WERROR=ON
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs"

if [ -x "$source_dir/tests/fuzz/run_fuzzers.sh" ]; then
  "$source_dir/tests/fuzz/run_fuzzers.sh" --seconds "${COUPECIRCUIT_FUZZ_SECONDS:-30}"
fi
if [ "${COUPECIRCUIT_SKIP_PACKAGE_TEST:-0}" != 1 ] && [ -x "$source_dir/tests/package/install_test.sh" ]; then
  "$source_dir/tests/package/install_test.sh"
fi
