#!/bin/bash
# Package install test of CoupeCircuit on Debian 12.
#
# Builds the Debian packages from a copy of this source tree, installs them
# with apt-get, and checks, each as a hard failure:
#   - lintian finds no error in the .debs and the .changes;
#   - the files are where the manual pages say (dpkg -L), the manual pages
#     are found by man, the configuration is a conffile;
#   - the systemd units pass systemd-analyze verify, and their
#     systemd-analyze security exposure is at most 2.5 (coupecircuitd) and
#     2.0 (coupecircuit-probes, unprivileged);
#   - the package creates the system user coupecircuit (sysusers.d), and the
#     installed coupecircuit-probes --once, as that user, writes its results;
#   - Apache loads mod_coupecircuit (apache2ctl -M) and configtest passes;
#   - the installed coupecircuitd, with the installed configuration, scans
#     /var/lib/php/sessions and coupecircuitctl status --json reports it;
#   - the system Apache with mod_php serves the values to a PHP page, a PHP
#     login raises SESSIONS_ACTIVES within 2 s, the manual cut and a runtime
#     threshold reach the page and the coupecircuit-health handler, a stopped
#     helper turns the page to COUPECIRCUIT_ETAT=inconnu with CC0301 in the
#     error log;
#   - purge disables the module and removes every file and directory of the
#     packages, and Apache's configtest still passes.
#
# Run as root on a machine where systemd is not PID 1 (CI): the helper is
# then started directly, with the unit's capability bounding set. With
# systemd as PID 1, the test starts coupecircuitd.service instead. While
# packages are installed and purged, a temporary policy-rc.d (when there is
# none) keeps maintainer scripts from starting or restarting services. Apache must not be running when the test starts; it is started
# on 127.0.0.1 only. Every change to the Apache configuration is undone on
# exit, and the script can be run again on the same machine.
#
# Needs (besides the build dependencies of debian/control): apache2,
# libapache2-mod-php8.2, curl, lintian, systemd, man-db, util-linux.
#
#   tests/package/install_test.sh --build-only DIR
# only builds the packages into DIR (no root needed, nothing installed);
# tests/run.sh does that while the other tests run, then passes DIR in
# COUPECIRCUIT_PREBUILT_PACKAGES so that the test installs those.
#
# Environment:
#   COUPECIRCUIT_SOURCE_DIR  source tree to package (default: this checkout)
#   COUPECIRCUIT_PREBUILT_PACKAGES  a --build-only DIR: install its packages
#                            instead of building them
#   COUPECIRCUIT_TEST_PORT   loopback port for Apache (default 8089)
#   COUPECIRCUIT_KEEP_WORK   1: keep the build directory (default: removed)
set -euo pipefail

started_at=$(date +%s)
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "${COUPECIRCUIT_SOURCE_DIR:-$script_dir/../..}" && pwd)
readonly started_at script_dir source_dir
readonly port=${COUPECIRCUIT_TEST_PORT:-8089}
readonly packages=(coupecircuit libapache2-mod-coupecircuit)
readonly apache_conf=/etc/apache2
readonly ports_backup=$apache_conf/ports.conf.coupecircuit-install-test
readonly site_name=coupecircuit-install-test
readonly site_file=$apache_conf/sites-available/$site_name.conf
readonly docroot=/var/www/html/coupecircuit-install-test
readonly vhost_name=coupecircuit-install-test.localhost
readonly session_dir=/var/lib/php/sessions
readonly marker_dir=/run/coupecircuit-install-test
readonly apache_pid_file=/var/run/apache2/apache2.pid
readonly apt_options=(-o DPkg::Lock::Timeout=300 -y -q)
readonly policy_rc=/usr/sbin/policy-rc.d
base_url="http://127.0.0.1:$port/coupecircuit-install-test"

work=
passed=0
apache_started=0
helper_pid=
export DEBIAN_FRONTEND=noninteractive

log() { printf 'install_test: %s\n' "$*"; }
pass() {
  passed=$((passed + 1))
  printf 'install_test: ok   %s\n' "$*"
}
fail() {
  printf 'install_test: FAIL %s\n' "$*" >&2
  show_logs
  printf '%d passed, 1 failed\n' "$passed"
  exit 1
}

show_logs() {
  if [[ -n $work && -s $work/helper.log ]]; then
    echo "--- coupecircuitd log (last 20 lines)" >&2
    tail -n 20 "$work/helper.log" >&2 || true
  fi
  if [[ -s /var/log/apache2/$site_name-error.log ]]; then
    echo "--- Apache error log of the test vhost (last 20 lines)" >&2
    tail -n 20 "/var/log/apache2/$site_name-error.log" >&2 || true
  fi
}

systemd_is_running() { [[ -d /run/systemd/system ]]; }

apache_pid() {
  local pid
  [[ -r $apache_pid_file ]] || return 1
  pid=$(cat "$apache_pid_file" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

package_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

package_known() {
  [[ -n $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -v '^unknown ok not-installed$' || true) ]]
}

# While packages are installed or removed, maintainer scripts start or
# restart no service (Apache, coupecircuitd): the test starts what it needs.
block_service_starts() {
  if [[ ! -e $policy_rc ]]; then
    printf '#!/bin/sh\n# Temporary, from tests/package/install_test.sh.\nexit 101\n' >"$policy_rc"
    chmod 755 "$policy_rc"
    touch "$marker_dir/policy-rc.d"
  fi
}
allow_service_starts() {
  if [[ -f $marker_dir/policy-rc.d ]]; then
    rm -f "$policy_rc" "$marker_dir/policy-rc.d"
  fi
}

purge_packages() {
  local present=() status=0
  for package in "${packages[@]}"; do
    if package_known "$package"; then present+=("$package"); fi
  done
  if ((${#present[@]} > 0)); then
    # policy-rc.d also keeps the prerm from stopping the unit: stop it here.
    if systemd_is_running && systemctl is-active --quiet coupecircuitd 2>/dev/null; then
      systemctl stop coupecircuitd || true
    fi
    block_service_starts
    apt-get purge "${apt_options[@]}" "${present[@]}" >"${work:-/tmp}/purge.log" 2>&1 || status=$?
    allow_service_starts
    if ((status != 0)); then
      cat "${work:-/tmp}/purge.log" >&2
      return 1
    fi
  fi
}

stop_helper() {
  [[ -n $helper_pid ]] || return 0
  if kill -0 "$helper_pid" 2>/dev/null; then
    kill -TERM "$helper_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$helper_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$helper_pid" 2>/dev/null; then kill -KILL "$helper_pid" 2>/dev/null || true; fi
  fi
  wait "$helper_pid" 2>/dev/null || true
  helper_pid=
  rm -f "$marker_dir/helper.pid"
}

stop_apache() {
  local pid
  pid=$(apache_pid) || return 0
  apache2ctl stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$marker_dir/apache.started"
}

# Undoes every change of an earlier, interrupted run, then of this one.
restore_machine() {
  set +e
  allow_service_starts
  stop_helper
  if [[ -f $marker_dir/helper.pid ]]; then
    # Left by an interrupted run: that process only, and only if it is ours.
    local old_pid
    old_pid=$(cat "$marker_dir/helper.pid")
    if [[ $old_pid =~ ^[0-9]+$ && $(cat "/proc/$old_pid/comm" 2>/dev/null) == coupecircuitd ]]; then
      kill -TERM "$old_pid" 2>/dev/null
      sleep 0.5
    fi
    rm -f "$marker_dir/helper.pid"
  fi
  if [[ $apache_started == 1 || -f $marker_dir/apache.started ]]; then
    stop_apache
  fi
  apache_started=0
  if [[ -L $apache_conf/sites-enabled/$site_name.conf ]]; then
    a2dissite -q "$site_name" >/dev/null 2>&1
  fi
  rm -f "$site_file" "/var/log/apache2/$site_name-error.log" "/var/log/apache2/$site_name-access.log"
  if [[ -f $ports_backup ]]; then
    mv -f "$ports_backup" "$apache_conf/ports.conf"
  fi
  if [[ -f $marker_dir/php-changes ]]; then
    # Lines "enabled MODULE" / "disabled MODULE": undo in reverse order.
    tac "$marker_dir/php-changes" | while read -r action module; do
      case $action in
        enabled) a2dismod -q -f "$module" >/dev/null 2>&1 ;;
        disabled) a2enmod -q "$module" >/dev/null 2>&1 ;;
      esac
    done
    rm -f "$marker_dir/php-changes"
  fi
  if [[ -f $marker_dir/sessions ]]; then
    while read -r id; do
      [[ $id =~ ^[A-Za-z0-9,-]+$ ]] && rm -f "$session_dir/sess_$id"
    done <"$marker_dir/sessions"
    rm -f "$marker_dir/sessions"
  fi
  rm -rf "$docroot"
  set -e
}

on_exit() {
  local status=$?
  restore_machine
  if ((status != 0)); then
    set +e
    purge_packages >/dev/null 2>&1
  fi
  if [[ -n $work && -d $work ]]; then
    if [[ ${COUPECIRCUIT_KEEP_WORK:-0} == 1 || $status != 0 ]]; then
      log "build directory kept: $work"
    else
      rm -rf "$work"
    fi
  fi
  rmdir "$marker_dir" 2>/dev/null || true
  log "runtime $(($(date +%s) - started_at)) s"
}

# The value of NAME in the text printed by env.php ("NAME=value" lines).
page_value() { sed -n "s/^$1=//p" <<<"$2"; }

fetch_env() { curl -fsS --max-time 5 "$base_url/env.php"; }

# Waits until env.php shows NAME=VALUE, at most SECONDS; prints the page.
wait_for_value() {
  local name=$1 value=$2 seconds=$3 page deadline
  deadline=$(($(date +%s%N) + seconds * 1000000000))
  while :; do
    page=$(fetch_env) || page=
    if [[ $(page_value "$name" "$page") == "$value" ]]; then
      printf '%s' "$page"
      return 0
    fi
    (($(date +%s%N) < deadline)) || { printf '%s' "$page"; return 1; }
    sleep 0.1
  done
}

require_command() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 not found: install $2"
}

# Copies the source tree to DEST/src/coupecircuit and builds the binary
# packages there (DEST/src/*.deb, *.changes); DEST/build.ok says how long
# it took.
build_packages() {
  local dest=$1 build_start
  log "building the packages from $source_dir in $dest"
  mkdir -p "$dest/src/coupecircuit"
  tar -C "$source_dir" -cf - \
    --exclude=./.git --exclude='./build*' --exclude='./obj-*' --exclude=./.cache \
    --exclude=./debian/.debhelper --exclude=./debian/tmp --exclude=./debian/files \
    --exclude=./debian/coupecircuit --exclude=./debian/coupecircuit-dbgsym \
    --exclude=./debian/libapache2-mod-coupecircuit --exclude=./debian/libapache2-mod-coupecircuit-dbgsym \
    --exclude='./debian/*.substvars' --exclude='./debian/*.debhelper.log' \
    --exclude=./debian/debhelper-build-stamp . | tar -C "$dest/src/coupecircuit" -xf -
  build_start=$(date +%s)
  if ! (cd "$dest/src/coupecircuit" && dpkg-buildpackage -us -uc -b) >"$dest/build.log" 2>&1; then
    tail -n 40 "$dest/build.log" >&2
    return 1
  fi
  echo "$(($(date +%s) - build_start)) s" >"$dest/build.ok"
}

if [[ ${1:-} == --build-only ]]; then
  [[ $# == 2 ]] || { echo "usage: $0 [--build-only DIR]" >&2; exit 2; }
  rm -rf "$2" && mkdir -p "$2"
  build_packages "$(cd "$2" && pwd)"
  exit
fi
[[ $# == 0 ]] || { echo "usage: $0 [--build-only DIR]" >&2; exit 2; }

# ---------------------------------------------------------------- checks

[[ $(id -u) == 0 ]] || fail "run as root (installs packages and configures Apache)"
require_command dpkg-buildpackage dpkg-dev
require_command apache2ctl apache2
require_command curl curl
require_command lintian lintian
require_command systemd-analyze systemd
require_command man man-db
require_command setpriv util-linux
[[ -f $source_dir/debian/control ]] || fail "$source_dir has no debian/control"
grep -q 'install_extras\.cmake' "$source_dir/CMakeLists.txt" ||
  fail "CMakeLists.txt does not include cmake/install_extras.cmake (man pages and unit would not be installed)"
# a2enmod also enables the modules named on a "# Depends:" line of the .load
# file, and fails (so does the package's postinst) when one does not exist.
while read -r dependency; do
  [[ -z $dependency || -f $apache_conf/mods-available/$dependency.load ]] ||
    fail "conf.d/coupecircuit.load depends on Apache module \"$dependency\", which does not exist: a2enmod coupecircuit would fail"
done < <(sed -n 's/^# Depends:[[:space:]]*//p' "$source_dir/conf.d/coupecircuit.load" | tr -s ' \t' '\n')
php_loads=("$apache_conf"/mods-available/php*.load)
[[ -f ${php_loads[-1]} ]] || fail "no PHP Apache module: install libapache2-mod-php8.2"
php_module=$(basename "${php_loads[-1]}" .load)
[[ -d $session_dir ]] || fail "$session_dir missing: install libapache2-mod-php8.2"

mkdir -p "$marker_dir"
trap on_exit EXIT
restore_machine
if apache_pid >/dev/null; then
  fail "Apache is already running (pid $(apache_pid)): stop it first, this test starts and stops it"
fi
work=$(mktemp -d /tmp/coupecircuit-install-test.XXXXXX)
purge_packages || fail "cannot purge the packages left by an earlier run"

# ---------------------------------------------------------------- build

if [[ -n ${COUPECIRCUIT_PREBUILT_PACKAGES:-} ]]; then
  package_dir=$COUPECIRCUIT_PREBUILT_PACKAGES
  [[ -f $package_dir/build.ok ]] || fail "no packages built in $package_dir (tests/package/install_test.sh --build-only)"
  pass "dpkg-buildpackage -us -uc -b (built beforehand in $package_dir: $(cat "$package_dir/build.ok"))"
else
  package_dir=$work
  build_packages "$work" || fail "dpkg-buildpackage failed (log above, full log in $work/build.log)"
  pass "dpkg-buildpackage -us -uc -b ($(cat "$work/build.ok"))"
fi
debs=()
for package in "${packages[@]}"; do
  found_debs=("$package_dir/src/${package}_"*.deb)
  [[ -f ${found_debs[0]} ]] || fail "no .deb for $package"
  debs+=("${found_debs[0]}")
done
found_changes=("$package_dir/src/"*.changes)
[[ -f ${found_changes[0]} ]] || fail "no .changes file"
changes=${found_changes[0]}

if ! lintian --fail-on error --tag-display-limit 0 "$changes" >"$work/lintian.log" 2>&1; then
  cat "$work/lintian.log" >&2
  fail "lintian reports errors"
fi
grep -E '^[EWIPXO]: ' "$work/lintian.log" | sed 's/^/install_test:      lintian: /' || true
pass "lintian: no error ($(grep -c '^W:' "$work/lintian.log" || true) warning(s))"

# ---------------------------------------------------------------- install

block_service_starts
install_status=0
apt-get install "${apt_options[@]}" "${debs[@]}" >"$work/install.log" 2>&1 || install_status=$?
allow_service_starts
if ((install_status != 0)); then
  cat "$work/install.log" >&2
  fail "apt-get install of ${debs[*]##*/} failed"
fi
for package in "${packages[@]}"; do
  package_installed "$package" || fail "$package is not installed after apt-get install"
done
pass "apt-get install ${packages[*]}"

# The files, where the manual pages say they are.
files=$(dpkg -L "${packages[@]}")
for path in /usr/sbin/coupecircuitd /usr/sbin/coupecircuitctl /usr/sbin/coupecircuit-probes \
  /etc/coupecircuit/coupecircuitd.conf /lib/systemd/system/coupecircuitd.service \
  /lib/systemd/system/coupecircuit-probes.service /usr/lib/sysusers.d/coupecircuit.conf /var/lib/coupecircuit \
  /usr/lib/apache2/modules/mod_coupecircuit.so \
  /etc/apache2/mods-available/coupecircuit.load /etc/apache2/mods-available/coupecircuit.conf; do
  grep -qx -- "$path" <<<"$files" || fail "dpkg -L does not list $path"
  [[ -e $path ]] || fail "$path is listed but missing"
done
pass "dpkg -L lists the binaries, the configuration, the unit, the module and /var/lib/coupecircuit"
dpkg-query -W -f='${Conffiles}\n' coupecircuit | grep -q ' /etc/coupecircuit/coupecircuitd.conf ' ||
  fail "/etc/coupecircuit/coupecircuitd.conf is not a conffile"
pass "/etc/coupecircuit/coupecircuitd.conf is a conffile"

declare -A man_pages=([coupecircuitd]=8 [coupecircuitctl]=8 [coupecircuit-probes]=8 [coupecircuitd.conf]=5 [coupecircuit.conf]=5)
for page in "${!man_pages[@]}"; do
  section=${man_pages[$page]}
  found=$(man -w "$section" "$page" 2>/dev/null) || fail "man -w $section $page finds nothing"
  [[ $found == /usr/share/man/man$section/$page.$section.gz ]] || fail "man $section $page is $found"
  grep -qx -- "$found" <<<"$files" || fail "$found does not belong to the packages"
  # Every file named in FILES, except run-time data, is installed.
  while read -r named; do
    case $named in
      /run/* | /var/lib/php/* | /var/lib/coupecircuit/state*) continue ;;
    esac
    grep -qx -- "$named" <<<"$files" || fail "$page($section) names $named, which the packages do not install"
  done < <(zcat "$found" | sed -n '/^\.SH FILES/,/^\.SH /p' | sed -n 's/^\.I \(\/[^ ]*\).*/\1/p' | sed 's/\\-/-/g')
done
pass "man finds coupecircuitd(8), coupecircuitctl(8), coupecircuit-probes(8), coupecircuitd.conf(5), coupecircuit.conf(5); their FILES are installed"

# ---------------------------------------------------------------- systemd unit

# check_unit UNIT MAX_EXPOSURE: systemd-analyze verify is clean and the
# security exposure is at most MAX_EXPOSURE.
check_unit() {
  local unit=/lib/systemd/system/$1 max=$2 verify_output security_output exposure
  verify_output=$(systemd-analyze verify "$unit" 2>&1) || { echo "$verify_output" >&2; fail "systemd-analyze verify $unit"; }
  if grep -q 'coupecircuit' <<<"$verify_output"; then
    echo "$verify_output" >&2
    fail "systemd-analyze verify reports problems in $unit"
  fi
  pass "systemd-analyze verify $unit"
  security_output=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) ||
    { echo "$security_output" >&2; fail "systemd-analyze security --offline=yes $unit"; }
  exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$security_output")
  [[ -n $exposure ]] || { echo "$security_output" >&2; fail "no exposure level in systemd-analyze security output"; }
  log "systemd-analyze security exposure of $1: $exposure"
  grep '✗' <<<"$security_output" | sed 's/  */ /g; s/^/install_test:      /' || true
  awk -v e="$exposure" -v m="$max" 'BEGIN { exit !(e <= m) }' || fail "exposure of $1 $exposure is above $max"
  pass "systemd-analyze security exposure of $1 $exposure <= $max"
}
check_unit coupecircuitd.service 2.5
check_unit coupecircuit-probes.service 2.0

# coupecircuit-probes runs as the package's system user, without privilege.
getent passwd coupecircuit >/dev/null || fail "the package did not create the system user coupecircuit"
# Under /tmp: the work directory may not be traversable by that user.
probes_dir=$(mktemp -d /tmp/coupecircuit-probes-test.XXXXXX)
chown coupecircuit: "$probes_dir"
printf '[probes]\nresults = %s/probes.json\n[probe self]\ntype = tcp\naddress = 127.0.0.1:9\n' "$probes_dir" >"$probes_dir/probes.conf"
chmod 644 "$probes_dir/probes.conf"
setpriv --reuid=coupecircuit --regid=coupecircuit --init-groups --bounding-set=-all --no-new-privs -- \
  /usr/sbin/coupecircuit-probes --config "$probes_dir/probes.conf" --once 2>"$probes_dir/probes.log" ||
  { cat "$probes_dir/probes.log" >&2; fail "coupecircuit-probes --once as the user coupecircuit"; }
grep -q '"format":"coupecircuit-probes/1".*"name":"self"' "$probes_dir/probes.json" ||
  { cat "$probes_dir/probes.json" >&2; fail "coupecircuit-probes --once wrote no results"; }
rm -rf "$probes_dir"
pass "coupecircuit-probes --once as the unprivileged user coupecircuit writes its results"

# ---------------------------------------------------------------- Apache

[[ -L $apache_conf/mods-enabled/coupecircuit.load ]] || fail "the package did not enable the module (no mods-enabled/coupecircuit.load)"
apache2ctl -M 2>/dev/null | grep -q 'coupecircuit_module' || fail "apache2ctl -M does not list coupecircuit_module"
pass "apache2ctl -M lists coupecircuit_module"
apache2ctl configtest >"$work/configtest.log" 2>&1 || { cat "$work/configtest.log" >&2; fail "apache2ctl configtest"; }
pass "apache2ctl configtest"

# mod_php needs the prefork MPM; record every change to undo it.
if [[ ! -L $apache_conf/mods-enabled/$php_module.load ]]; then
  for mpm in mpm_event mpm_worker; do
    if [[ -L $apache_conf/mods-enabled/$mpm.load ]]; then
      a2dismod -q "$mpm" >/dev/null
      echo "disabled $mpm" >>"$marker_dir/php-changes"
    fi
  done
  for module in mpm_prefork "$php_module"; do
    if [[ ! -L $apache_conf/mods-enabled/$module.load ]]; then
      a2enmod -q "$module" >/dev/null
      echo "enabled $module" >>"$marker_dir/php-changes"
    fi
  done
fi

# Loopback only: the test's vhost on 127.0.0.1:$port, nothing else listens.
cp -p "$apache_conf/ports.conf" "$ports_backup"
echo "Listen 127.0.0.1:$port" >"$apache_conf/ports.conf"
cat >"$site_file" <<EOF
# Temporary vhost of tests/package/install_test.sh (removed on exit).
<VirtualHost 127.0.0.1:$port>
    ServerName $vhost_name
    DocumentRoot /var/www/html
    ErrorLog \${APACHE_LOG_DIR}/$site_name-error.log
    CustomLog \${APACHE_LOG_DIR}/$site_name-access.log combined
    <IfModule coupecircuit_module>
        CoupeCircuitThreshold sessions 100000
        CoupeCircuitThreshold load 900.00
        CoupeCircuitMaxAge 3
        CoupeCircuitHold 0
        <Location /coupecircuit-install-test/health>
            SetHandler coupecircuit-health
        </Location>
    </IfModule>
</VirtualHost>
EOF
a2ensite -q "$site_name" >/dev/null
mkdir -p "$docroot"
cat >"$docroot/env.php" <<'EOF'
<?php
header('Content-Type: text/plain');
foreach (['LOAD_AVG', 'SESSIONS_ACTIVES', 'COUPURE_CHARGE_SERVEUR', 'SEUIL_SESSIONS_ACTIVES',
          'SEUIL_LOAD_AVG', 'COUPECIRCUIT_ETAT', 'COUPECIRCUIT_AGE'] as $name) {
    echo $name, '=', $_SERVER[$name] ?? '(unset)', "\n";
}
EOF
cat >"$docroot/login.php" <<'EOF'
<?php
// An authenticated session as a Zend/Voozanoo application stores it.
session_start();
$_SESSION['vzn_t'] = ['storage' => 'x'];
header('Content-Type: text/plain');
echo session_id(), "\n";
EOF
apache2ctl configtest >"$work/configtest.log" 2>&1 || { cat "$work/configtest.log" >&2; fail "apache2ctl configtest with the test vhost"; }

# ---------------------------------------------------------------- helper

if systemd_is_running; then
  # The hardened unit itself, as installed and enabled by the package.
  systemctl is-enabled --quiet coupecircuitd || fail "the package did not enable coupecircuitd.service"
  systemctl start coupecircuitd || fail "systemctl start coupecircuitd (see journalctl -u coupecircuitd)"
  systemctl is-active --quiet coupecircuitd || fail "coupecircuitd.service is not active"
  helper_pid=
  pass "coupecircuitd.service enabled by the package, starts with the hardened unit"
else
  # As the unit runs it: root with CAP_DAC_READ_SEARCH only, no new
  # privileges, default configuration /etc/coupecircuit/coupecircuitd.conf.
  setpriv --bounding-set=-all,+dac_read_search --inh-caps=-all --no-new-privs -- \
    /usr/sbin/coupecircuitd --foreground >"$work/helper.log" 2>&1 &
  helper_pid=$!
  echo "$helper_pid" >"$marker_dir/helper.pid"
fi
status_json=
for _ in $(seq 50); do
  if status_json=$(coupecircuitctl status --json 2>&1); then break; fi
  sleep 0.1
done
grep -q '"status": "ok"' <<<"$status_json" || { echo "$status_json" >&2; fail "coupecircuitctl status --json does not say ok"; }
if [[ -n $helper_pid ]]; then
  grep -q "\"helper_pid\": $helper_pid," <<<"$status_json" || { echo "$status_json" >&2; fail "the snapshot is not from the helper just started (pid $helper_pid)"; }
fi
grep -q '"scan_failed": false' <<<"$status_json" || { echo "$status_json" >&2; fail "the helper cannot read $session_dir"; }
grep -q 'CC0001: coupecircuitd .*/var/lib/php/sessions .*-> /run/coupecircuit/snapshot' "$work/helper.log" 2>/dev/null ||
  systemd_is_running || fail "coupecircuitd did not log CC0001 with the default paths"
[[ $(stat -c %a /run/coupecircuit/snapshot) == 644 ]] || fail "/run/coupecircuit/snapshot is not mode 0644"
pass "coupecircuitd runs with CAP_DAC_READ_SEARCH only, coupecircuitctl status --json: ok"

# ---------------------------------------------------------------- PHP page

apache2ctl start >"$work/apache-start.log" 2>&1 || { cat "$work/apache-start.log" >&2; fail "apache2ctl start"; }
apache_started=1
touch "$marker_dir/apache.started"
for _ in $(seq 100); do fetch_env >/dev/null 2>&1 && break; sleep 0.1; done
page=$(fetch_env) || fail "GET $base_url/env.php"
load=$(page_value LOAD_AVG "$page")
sessions_before=$(page_value SESSIONS_ACTIVES "$page")
[[ $load =~ ^[0-9]+\.[0-9]{2}$ ]] || { echo "$page" >&2; fail "LOAD_AVG is \"$load\""; }
[[ $sessions_before =~ ^[0-9]+$ ]] || { echo "$page" >&2; fail "SESSIONS_ACTIVES is \"$sessions_before\""; }
[[ $(page_value COUPECIRCUIT_ETAT "$page") == ok ]] || { echo "$page" >&2; fail "COUPECIRCUIT_ETAT is not ok"; }
[[ $(page_value COUPURE_CHARGE_SERVEUR "$page") == 0 ]] || { echo "$page" >&2; fail "COUPURE_CHARGE_SERVEUR is not 0"; }
[[ $(page_value SEUIL_SESSIONS_ACTIVES "$page") == 100000 ]] || { echo "$page" >&2; fail "SEUIL_SESSIONS_ACTIVES is not the vhost's 100000"; }
[[ $(page_value SEUIL_LOAD_AVG "$page") == 900.00 ]] || { echo "$page" >&2; fail "SEUIL_LOAD_AVG is not the vhost's 900.00"; }
pass "PHP sees LOAD_AVG=$load SESSIONS_ACTIVES=$sessions_before COUPECIRCUIT_ETAT=ok and the vhost's thresholds"
health=$(curl -sS --max-time 5 -w ' %{http_code}' "$base_url/health") || fail "GET $base_url/health"
[[ $health == $'UP\n 200' ]] || fail "the coupecircuit-health handler answers \"$health\", not \"UP\" 200"
pass "the coupecircuit-health handler answers UP"

login_at=$(date +%s%N)
session_id=$(curl -fsS --max-time 5 "$base_url/login.php") || fail "GET $base_url/login.php"
[[ $session_id =~ ^[A-Za-z0-9,-]+$ ]] || fail "login.php returned \"$session_id\""
echo "$session_id" >>"$marker_dir/sessions"
[[ -f $session_dir/sess_$session_id ]] || fail "no session file $session_dir/sess_$session_id"
expected=$((sessions_before + 1))
page=$(wait_for_value SESSIONS_ACTIVES "$expected" 2) ||
  { echo "$page" >&2; fail "SESSIONS_ACTIVES did not reach $expected within 2 s of the login"; }
pass "a PHP login raises SESSIONS_ACTIVES to $expected in $((($(date +%s%N) - login_at) / 1000000)) ms"

coupecircuitctl cut on --reason "install test" >/dev/null || fail "coupecircuitctl cut on"
page=$(wait_for_value COUPECIRCUIT_ETAT coupure 2) || { echo "$page" >&2; fail "the manual cut does not reach PHP"; }
[[ $(page_value COUPURE_CHARGE_SERVEUR "$page") == 1 ]] || { echo "$page" >&2; fail "COUPURE_CHARGE_SERVEUR is not 1 during the cut"; }
set +e; coupecircuitctl status >/dev/null; status_code=$?; set -e
((status_code == 1)) || fail "coupecircuitctl status exits $status_code during the cut, not 1"
health=$(curl -sS --max-time 5 -w ' %{http_code}' "$base_url/health") || fail "GET $base_url/health"
[[ $health == $'DRAIN coupure\n 503' ]] || fail "during the cut, coupecircuit-health answers \"$health\", not \"DRAIN coupure\" 503"
coupecircuitctl cut off >/dev/null || fail "coupecircuitctl cut off"
wait_for_value COUPECIRCUIT_ETAT ok 2 >/dev/null || fail "COUPECIRCUIT_ETAT does not return to ok after cut off"
pass "coupecircuitctl cut on/off reaches PHP (COUPURE_CHARGE_SERVEUR, COUPECIRCUIT_ETAT), the health check and its exit status"

coupecircuitctl threshold set sessions "$expected" --vhost "$vhost_name" >/dev/null || fail "coupecircuitctl threshold set"
page=$(wait_for_value COUPECIRCUIT_ETAT surcharge 2) || { echo "$page" >&2; fail "a runtime vhost threshold does not reach PHP"; }
[[ $(page_value SEUIL_SESSIONS_ACTIVES "$page") == "$expected" ]] || { echo "$page" >&2; fail "SEUIL_SESSIONS_ACTIVES is not the runtime override"; }
coupecircuitctl threshold unset sessions --vhost "$vhost_name" >/dev/null || fail "coupecircuitctl threshold unset"
page=$(wait_for_value COUPECIRCUIT_ETAT ok 2) || { echo "$page" >&2; fail "COUPECIRCUIT_ETAT does not return to ok after threshold unset (CoupeCircuitHold 0)"; }
[[ $(page_value SEUIL_SESSIONS_ACTIVES "$page") == 100000 ]] || { echo "$page" >&2; fail "SEUIL_SESSIONS_ACTIVES does not return to the directive's value"; }
pass "coupecircuitctl threshold set/unset --vhost reaches PHP (surcharge, then ok)"

if [[ -n $helper_pid ]]; then
  stop_helper
  page=$(wait_for_value COUPECIRCUIT_ETAT inconnu 8) || { echo "$page" >&2; fail "COUPECIRCUIT_ETAT is not inconnu once the helper stopped"; }
  [[ $(page_value LOAD_AVG "$page") == "(unset)" ]] || { echo "$page" >&2; fail "LOAD_AVG is still set with a stale snapshot"; }
  for _ in $(seq 20); do grep -q 'CC0301' "/var/log/apache2/$site_name-error.log" && break; sleep 0.1; done
  grep -q 'CC0301' "/var/log/apache2/$site_name-error.log" || fail "no CC0301 in the Apache error log"
  pass "a stopped helper turns PHP to COUPECIRCUIT_ETAT=inconnu, CC0301 logged"
fi

stop_apache
apache_started=0
stop_helper
pass "Apache and coupecircuitd stopped"

# ---------------------------------------------------------------- purge

purge_packages || fail "apt-get purge ${packages[*]}"
for package in "${packages[@]}"; do
  package_known "$package" && fail "$package is still known to dpkg after purge"
done
for path in "$apache_conf/mods-enabled/coupecircuit.load" "$apache_conf/mods-enabled/coupecircuit.conf" \
  "$apache_conf/mods-available/coupecircuit.load" "$apache_conf/mods-available/coupecircuit.conf" \
  /usr/lib/apache2/modules/mod_coupecircuit.so /usr/sbin/coupecircuitd /usr/sbin/coupecircuitctl \
  /usr/sbin/coupecircuit-probes /etc/coupecircuit /var/lib/coupecircuit /run/coupecircuit \
  /lib/systemd/system/coupecircuitd.service /lib/systemd/system/coupecircuit-probes.service \
  /etc/systemd/system/multi-user.target.wants/coupecircuitd.service \
  /etc/systemd/system/multi-user.target.wants/coupecircuit-probes.service; do
  [[ -e $path || -L $path ]] && fail "$path remains after purge"
done
apache2ctl -M 2>/dev/null | grep -q coupecircuit_module && fail "apache2ctl -M still lists coupecircuit_module"
apache2ctl configtest >"$work/configtest.log" 2>&1 || { cat "$work/configtest.log" >&2; fail "apache2ctl configtest after purge"; }
pass "purge disables the module, removes its files, /etc/coupecircuit and /var/lib/coupecircuit; configtest OK"

restore_machine
apache2ctl configtest >"$work/configtest.log" 2>&1 || { cat "$work/configtest.log" >&2; fail "apache2ctl configtest after restoring the configuration"; }
pass "Apache configuration restored"
printf '%d passed, 0 failed\n' "$passed"
