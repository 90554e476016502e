#!/usr/bin/env bash
# The overload experiment of docs/OVERLOAD.md: two nodes (Apache event MPM +
# php-fpm + mod_coupecircuit + coupecircuitd), HAProxy, PostgreSQL with
# max_connections = 30, and a load generator that behaves like people; run A
# without CoupeCircuit, run B with it, same traffic.
#
#   bench/overload/run.sh            full run; rewrites docs/OVERLOAD.md and docs/overload.png
#   bench/overload/run.sh --quick    under 3 minutes; results in <build>/bench/overload/quick/
#   bench/overload/run.sh --with-c   also run C (B with web1's helper killed during the spike)
#   bench/overload/run.sh --help     every option
#
# As root (Apache and php-fpm run as www-data, PostgreSQL as postgres), on
# Debian 12 with the packages of .ci/packages.txt. Builds what it needs in
# $COUPECIRCUIT_BUILD_DIR (default: build/). Everything binds to 127.0.0.1
# and is stopped at the end.
set -euo pipefail
source_dir="$(cd "$(dirname "$0")/../.." && pwd)"
build_dir="${COUPECIRCUIT_BUILD_DIR:-$source_dir/build}"

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build_dir" -j "$(nproc)" --target coupecircuitd coupecircuitctl mod_coupecircuit

publish=(--publish)
for argument in "$@"; do
  case "$argument" in
    --quick|--out|--out=*|-h|--help) publish=() ;;
  esac
done
exec /usr/bin/python3 "$source_dir/bench/overload/overload.py" --build-dir "$build_dir" "${publish[@]}" "$@"
