#!/usr/bin/env bash
# The test command. Run as root (the helper and Apache run as in production):
#   1. configure and build (Release, warnings as errors: GCC warns about
#      other things at -O3 than at -O2);
#   2. every CTest test, side by side (ctest -j): unit, stress, integration
#      against a real Apache, PHP and php-fpm;
#   meanwhile, in the background at the lowest CPU priority (nice 19: they
#   use the CPU the tests leave idle and do not take it from them):
#      - the fuzzers (clang, ASan + UBSan, Debug), each for a bounded time;
#      - the Debian packages (dpkg-buildpackage: -O2 with Debian's hardening
#        flags, warnings as errors here), so that every source is compiled
#        once per set of flags: the programs and the module at -O3 and -O2,
#        the tests at -O3;
#      - clang-tidy (tests/lint/run_clang_tidy.sh);
#   3. the Debian package install test on the packages built in 2.
# With ccache installed, every build goes through it (the package build
# too: its copy of the sources is always at the same place).
# Benchmarks are not tests: bench/run.sh. The time of each phase is printed
# at the end and kept in <build>/test-times.txt.
#
# Environment:
#   COUPECIRCUIT_BUILD_DIR            build tree (default <source>/build); the
#                                     fuzz and package builds go below it
#   COUPECIRCUIT_BUILD_TYPE           CMake build type of the tree the tests
#                                     run on (default Release)
#   COUPECIRCUIT_CTEST_JOBS           ctest -j (default: twice the cores, the
#                                     integration tests mostly wait on servers)
#   COUPECIRCUIT_FUZZ_SECONDS         seconds per fuzz target (default 30)
#   COUPECIRCUIT_SKIP_PACKAGE_TEST=1  no package build and install test
#   COUPECIRCUIT_CLANG_TIDY           blocking (default: every finding listed,
#                                     those of COUPECIRCUIT_CLANG_TIDY_FAIL_ON
#                                     fail the run), report (none fails), or off
#   COUPECIRCUIT_CLANG_TIDY_FAIL_ON   with blocking, the checks whose findings
#                                     fail the run (regex, default: the
#                                     cognitive complexity above .clang-tidy's
#                                     threshold)
#   COUPECIRCUIT_CLANG_TIDY_NOT_IN    with blocking, the files (regex on the
#                                     path from the source root) whose
#                                     findings are listed but do not fail
#   COUPECIRCUIT_CLANG_TIDY_CHECKS    added to .clang-tidy's checks (default
#                                     '-clang-analyzer-*': the path-sensitive
#                                     analyzer doubles clang-tidy's time; set
#                                     it empty to run every check)
set -euo pipefail
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="${COUPECIRCUIT_BUILD_DIR:-$source_dir/build}"
build_type="${COUPECIRCUIT_BUILD_TYPE:-Release}"
jobs="$(nproc)"
ctest_jobs="${COUPECIRCUIT_CTEST_JOBS:-$((jobs * 2))}"
fuzz_seconds="${COUPECIRCUIT_FUZZ_SECONDS:-30}"
clang_tidy="${COUPECIRCUIT_CLANG_TIDY:-blocking}"
logs="$build_dir/test-logs"
times="$build_dir/test-times.txt"
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  # CMake's default for the builds configured elsewhere (fuzzers, package).
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
fi

started=$(date +%s)
mkdir -p "$logs"
: >"$times"

# phase NAME COMMAND...: runs COMMAND, appends "NAME: N s (ok|FAILED)" to
# the times file; returns COMMAND's status.
phase() {
  local name=$1 start status=0
  shift
  start=$(date +%s)
  "$@" || status=$?
  printf '%-28s %4d s  %s\n' "$name" $(($(date +%s) - start)) "$([ $status = 0 ] && echo ok || echo "FAILED ($status)")" >>"$times"
  return $status
}

# Background lanes: output in $logs/<lane>.log, status in $logs/<lane>.status.
lane() {
  local name=$1
  shift
  (
    status=0
    "$@" >"$logs/$name.log" 2>&1 || status=$?
    echo $status >"$logs/$name.status"
  ) &
}

phase configure cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" \
  -DCOUPECIRCUIT_WERROR=ON "${launcher[@]}" >"$logs/configure.log" ||
  { cat "$logs/configure.log"; exit 1; }
phase build cmake --build "$build_dir" -j "$jobs"

fuzz_lane() {
  COUPECIRCUIT_FUZZ_BUILD_DIR="$build_dir/fuzz" phase "fuzz (${fuzz_seconds} s per target)" \
    nice -n 19 "$source_dir/tests/fuzz/run_fuzzers.sh" --seconds "$fuzz_seconds" --jobs "$jobs"
}
# The packages as Debian builds them (-O2, hardening), with warnings as
# errors and all the cores (dh builds with one job unless told).
package_lane() {
  DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" DEB_CXXFLAGS_APPEND=-Werror DEB_CFLAGS_APPEND=-Werror \
    phase "package build (-Werror)" nice -n 19 "$source_dir/tests/package/install_test.sh" --build-only \
    "$build_dir/package"
}
clang_tidy_lane() {
  local mode=()
  [ "$clang_tidy" = blocking ] || mode=(--report)
  mode+=(--fail-on "${COUPECIRCUIT_CLANG_TIDY_FAIL_ON:-readability-function-cognitive-complexity}")
  mode+=(--not-in "${COUPECIRCUIT_CLANG_TIDY_NOT_IN:-^\$}")
  mode+=(--checks "${COUPECIRCUIT_CLANG_TIDY_CHECKS--clang-analyzer-*}")
  phase "clang-tidy ($clang_tidy)" nice -n 19 "$source_dir/tests/lint/run_clang_tidy.sh" "${mode[@]}" \
    --jobs "$jobs" "$build_dir"
}
lanes=(fuzz)
lane fuzz fuzz_lane
if [ "${COUPECIRCUIT_SKIP_PACKAGE_TEST:-0}" != 1 ]; then
  lanes+=(package)
  lane package package_lane
fi
if [ "$clang_tidy" != off ]; then
  lanes+=(clang-tidy)
  lane clang-tidy clang_tidy_lane
fi

failed=()
phase "ctest -j $ctest_jobs" ctest --test-dir "$build_dir" --output-on-failure -j "$ctest_jobs" || failed+=(ctest)

wait
for name in "${lanes[@]}"; do
  if [ "$(cat "$logs/$name.status" 2>/dev/null || echo 1)" != 0 ]; then
    echo "== $name failed ($logs/$name.log):"
    tail -n 60 "$logs/$name.log"
    failed+=("$name")
  else
    grep -E "^run_clang_tidy: |stat::number_of_executed_units" "$logs/$name.log" || true
  fi
done

if [ "${COUPECIRCUIT_SKIP_PACKAGE_TEST:-0}" != 1 ] && [ -f "$build_dir/package/build.ok" ]; then
  COUPECIRCUIT_PREBUILT_PACKAGES="$build_dir/package" phase "package install test" \
    "$source_dir/tests/package/install_test.sh" || failed+=(package)
fi

printf '%-28s %4d s\n' "total" $(($(date +%s) - started)) >>"$times"
echo "== times (background phases overlap ctest):"
cat "$times"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED: ${failed[*]}"
  exit 1
fi
echo "== all passed"
