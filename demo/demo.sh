#!/usr/bin/env bash
# CoupeCircuit demo: as root on a fresh Debian 12, installs what it needs,
# builds, and starts a throwaway Apache (prefork + mod_php) on
# 127.0.0.1:8080 with mod_coupecircuit, coupecircuitd on a demo session
# directory, and a small PHP application. `demo/demo.sh stop` stops it.
set -euo pipefail
source_dir="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$source_dir/build-demo"
run_dir="/tmp/coupecircuit-demo"
port=8080

stop_demo() {
  if [ -f "$run_dir/apache/httpd.pid" ]; then
    /usr/sbin/apache2 -d "$run_dir/apache" -f "$run_dir/apache/httpd.conf" -k stop 2>/dev/null || true
  fi
  if [ -f "$run_dir/coupecircuitd.pid" ]; then kill "$(cat "$run_dir/coupecircuitd.pid")" 2>/dev/null || true; fi
  sleep 1
}

if [ "${1:-}" = stop ]; then stop_demo; echo "demo stopped"; exit 0; fi
[ "$(id -u)" = 0 ] || { echo "run as root (it installs packages and starts Apache)" >&2; exit 2; }

if [ "${COUPECIRCUIT_DEMO_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d  # no service autostart
  apt-get update -q
  apt-get install -y -q --no-install-recommends build-essential cmake pkg-config libcli11-dev libinih-dev libabsl-dev \
    nlohmann-json3-dev libsystemd-dev apache2 apache2-dev libapache2-mod-php8.2 php8.2-cli libgtest-dev curl
  rm -f /usr/sbin/policy-rc.d
fi

cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCOUPECIRCUIT_BUILD_TESTS=OFF >/dev/null
cmake --build "$build_dir" -j "$(nproc)" >/dev/null

stop_demo
rm -rf "$run_dir"
mkdir -p "$run_dir"/{sessions,apache/logs,apache/run,state}
chmod 1733 "$run_dir/sessions"   # like /var/lib/php/sessions: www-data writes, cannot list
chmod 755 "$run_dir"
cp -r "$source_dir/demo/app" "$run_dir/htdocs"

"$build_dir/scanner/coupecircuitd" --foreground --session-dir "$run_dir/sessions" \
  --snapshot "$run_dir/snapshot" --state "$run_dir/state/state" >/dev/null 2>"$run_dir/coupecircuitd.log" &
echo $! > "$run_dir/coupecircuitd.pid"

cat > "$run_dir/apache/httpd.conf" <<CONF
ServerRoot $run_dir/apache
Listen 127.0.0.1:$port
LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule php_module /usr/lib/apache2/modules/libphp8.2.so
LoadModule coupecircuit_module $build_dir/mod_coupecircuit/mod_coupecircuit.so
User www-data
Group www-data
ServerName demo.localhost
PidFile $run_dir/apache/httpd.pid
DefaultRuntimeDir $run_dir/apache/run
ErrorLog $run_dir/apache/logs/error.log
TypesConfig /etc/mime.types
DocumentRoot $run_dir/htdocs
DirectoryIndex index.php
<Directory $run_dir/htdocs>
  Require all granted
</Directory>
<FilesMatch "\.php$">
  SetHandler application/x-httpd-php
</FilesMatch>
php_admin_value session.save_path "$run_dir/sessions"
CoupeCircuitSnapshot $run_dir/snapshot
CoupeCircuitThreshold sessions 3
CoupeCircuitThreshold load 50
CONF
/usr/sbin/apache2 -d "$run_dir/apache" -f "$run_dir/apache/httpd.conf" -k start

ctl="$build_dir/ctl/coupecircuitctl --snapshot $run_dir/snapshot --state $run_dir/state/state"
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
cat <<TEXT

CoupeCircuit demo on http://127.0.0.1:$port/ (threshold: 3 active sessions)

  curl -s http://127.0.0.1:$port/                         # the values, as PHP sees them
  curl -s -c /tmp/alice http://127.0.0.1:$port/login.php?user=alice
  curl -s -b /tmp/alice http://127.0.0.1:$port/           # SESSIONS_ACTIVES went up
  for u in bob carol; do curl -s -c /tmp/\$u http://127.0.0.1:$port/login.php?user=\$u; done
  curl -s http://127.0.0.1:$port/login.php?user=dave      # 503: overloaded, new logins refused
  curl -s -b /tmp/alice http://127.0.0.1:$port/report.php # logged-in users keep working, degraded
  $ctl status
  $ctl cut on --reason "maintenance BDD"                  # COUPURE_CHARGE_SERVEUR=1
  $ctl cut off
  $ctl threshold set sessions 10 --vhost demo.localhost   # runtime override, no reload
  curl -s -b /tmp/alice http://127.0.0.1:$port/logout.php

Logs: $run_dir/coupecircuitd.log, $run_dir/apache/logs/error.log
Stop: $source_dir/demo/demo.sh stop
TEXT
