"""httpd.conf of the benchmark's Apache servers: the smallest configuration
that serves the document root, plus the features a row compares (mod_env
SetEnv, mod_coupecircuit, refuse-new, mod_php, php-fpm). Unlike the
integration tests' ServerRoot it loads no module, log or <Directory /> block
that the measured request does not need: each adds instructions per request."""
from lib.common import STATIC_VALUES, THRESHOLD_LINES

# Worker pools sized for wrk -c16 on a small machine.
MPM_SIZES = {
    "event": ["StartServers 2", "ServerLimit 4", "ThreadsPerChild 25", "MaxRequestWorkers 100",
              "MinSpareThreads 25", "MaxSpareThreads 100"],
    "prefork": ["StartServers 20", "MinSpareServers 20", "MaxSpareServers 40", "ServerLimit 40",
                "MaxRequestWorkers 40", "MaxConnectionsPerChild 0"],
}


def server_lines(base, port, mpm, modules_dir, rundir, logs):
    return [
        f'ServerRoot "{base}"',
        "ServerName 127.0.0.1",
        f"Listen 127.0.0.1:{port}",
        f"PidFile {rundir}/httpd.pid",
        f"DefaultRuntimeDir {rundir}",
        f"ErrorLog {logs}/error.log",
        "LogLevel warn",
        f"LoadModule mpm_{mpm}_module {modules_dir}/mod_mpm_{mpm}.so",
        f"LoadModule authz_core_module {modules_dir}/mod_authz_core.so",
        f"LoadModule mime_module {modules_dir}/mod_mime.so",
        "TypesConfig /etc/mime.types",
    ]


def docroot_lines(docroot):
    # Keep-alive without a request limit: the per-request rows send hundreds
    # of requests on one connection.
    return ["KeepAlive On", "MaxKeepAliveRequests 0", "KeepAliveTimeout 60", "Timeout 60",
            f"DocumentRoot {docroot}",
            f"<Directory {docroot}>", "  Require all granted", "  AllowOverride None", "  Options None",
            "</Directory>"]


def feature_lines(features, modules_dir, module_so, snapshot, fpm_port):
    lines = []
    if "setenv" in features:
        lines.append(f"LoadModule env_module {modules_dir}/mod_env.so")
        lines += [f"SetEnv {k} {v}" for k, v in STATIC_VALUES.items()]
    if "cc" in features:
        lines.append(f"LoadModule coupecircuit_module {module_so}")
        lines.append(f"CoupeCircuitSnapshot {snapshot}")
        lines += THRESHOLD_LINES.strip().splitlines()
    if "refuse" in features:
        # Armed but never tripped, whatever the machine's load: the
        # thresholds above are overridden for this server.
        lines += ["CoupeCircuitThreshold sessions 1000000", "CoupeCircuitThreshold load 1000",
                  "CoupeCircuitAction refuse-new"]
    if "php" in features:
        lines.append(f"LoadModule php_module {modules_dir}/libphp8.2.so")
        lines += ['<FilesMatch "\\.php$">', "  SetHandler application/x-httpd-php", "</FilesMatch>"]
    if "fcgi" in features:
        lines.append(f"LoadModule proxy_module {modules_dir}/mod_proxy.so")
        lines.append(f"LoadModule proxy_fcgi_module {modules_dir}/mod_proxy_fcgi.so")
        lines += ['<FilesMatch "\\.php$">', f'  SetHandler "proxy:fcgi://127.0.0.1:{fpm_port}"', "</FilesMatch>"]
    return lines


def render(base, port, mpm, features, docroot, *, modules_dir, module_so, user=None, snapshot=None, fpm_port=None,
           extra=""):
    """The text of httpd.conf; `user` runs the workers as that user."""
    rundir, logs = f"{base}/run", f"{base}/logs"
    lines = server_lines(base, port, mpm, modules_dir, rundir, logs)
    if user:
        lines += [f"User {user}", f"Group {user}"]
    lines += docroot_lines(docroot)
    lines += MPM_SIZES.get(mpm, [])
    lines += feature_lines(features, modules_dir, module_so, snapshot, fpm_port)
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"
