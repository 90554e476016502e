#!/usr/bin/env bash
# clang-tidy (Debian clang-tidy 14) with the checks of .clang-tidy on the
# project's sources (common/, scanner/, probes/, ctl/, mod_coupecircuit/; not the
# tests), from the compile_commands.json of a CMake build tree.
#   tests/lint/run_clang_tidy.sh [--report] [--fail-on REGEX] [--not-in REGEX] [--checks LIST] [--jobs N] [BUILD_DIR]
# Lists the findings; exits 1 when one of them is of a check matching
# --fail-on (default: any) in a file whose path (from the source root) does
# not match --not-in (default: none), 0 with --report. The full output is
# in BUILD_DIR/clang-tidy.log. --checks adds to .clang-tidy's list (e.g.
# '-clang-analyzer-*' leaves out the path-sensitive analyzer, half the time).
set -euo pipefail
source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
mode=blocking
fail_on='.*'
not_in='^$'
jobs="$(nproc)"
extra_checks=
build_dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --report) mode=report; shift ;;
    --fail-on) fail_on="$2"; shift 2 ;;
    --not-in) not_in="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --checks) extra_checks="$2"; shift 2 ;;
    -*) echo "usage: $0 [--report] [--fail-on REGEX] [--not-in REGEX] [--checks LIST] [--jobs N] [BUILD_DIR]" >&2; exit 2 ;;
    *) build_dir="$1"; shift ;;
  esac
done
build_dir="${build_dir:-$source_dir/build}"
if [ ! -f "$build_dir/compile_commands.json" ]; then
  echo "run_clang_tidy: no $build_dir/compile_commands.json (configure with CMake first)" >&2
  exit 2
fi
command -v run-clang-tidy-14 >/dev/null || { echo "run_clang_tidy: install clang-tidy" >&2; exit 2; }

log="$build_dir/clang-tidy.log"
# The sources of the project, not of the tests or of the build tree.
files_regex="^$source_dir/(common|scanner|probes|ctl|mod_coupecircuit)/[^/]*\.cpp\$"
status=0
checks_option=()
[ -z "$extra_checks" ] || checks_option=(-checks="$extra_checks")
run-clang-tidy-14 -quiet -j "$jobs" -p "$build_dir" -clang-tidy-binary clang-tidy-14 "${checks_option[@]}" \
  "$files_regex" >"$log" 2>&1 || status=$?
# One line per finding, once (a header's finding is reported by each source).
# (run-clang-tidy colours its output: the escapes are removed first.)
findings="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^/.*:[0-9]+:[0-9]+: (warning|error): ' | sort -u || true)"
count="$(printf '%s' "$findings" | grep -c . || true)"
if [ "$count" -eq 0 ] && [ "$status" -ne 0 ]; then
  tail -n 30 "$log" >&2
  echo "run_clang_tidy: clang-tidy failed ($status), see $log" >&2
  exit 1
fi
findings="$(printf '%s' "$findings" | sed "s|^$source_dir/||")"
if [ "$count" -gt 0 ]; then
  printf '%s\n' "$findings"
fi
blocking="$(printf '%s' "$findings" | grep -E "\[([a-z0-9.,-]*,)?($fail_on)(,[a-z0-9.,-]*)?\]\$" |
  { grep -vE "^[^:]*($not_in)" || true; } | grep -c . || true)"
echo "run_clang_tidy: $count finding(s), $blocking of checks matching '$fail_on' outside '$not_in' ($mode; full output in $log)"
if [ "$mode" = blocking ] && [ "$blocking" -gt 0 ]; then exit 1; fi
exit 0
