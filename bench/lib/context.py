"""The state a benchmark run shares between its sections: paths, the
helper and Apache configurations, the document root, the report rows."""
import json
import os
import pwd
import random
import time

from lib import apache, common
from lib.common import (CLEANUP_PATHS, PROCS, STATIC_VALUES, VARIABLES, HardCheckFailed, log,
                        remove_session_dir, run)


class Context:
    def __init__(self, options):
        self.o = options
        self.quick = options.quick
        self.build = os.path.abspath(options.build_dir)
        self.work = os.path.abspath(options.work_dir)
        self.daemon_bin = os.path.join(self.build, "scanner", "coupecircuitd")
        self.ctl_bin = os.path.join(self.build, "ctl", "coupecircuitctl")
        self.module_so = os.path.join(self.build, "mod_coupecircuit", "mod_coupecircuit.so")
        self.tool = options.tool
        self.modules_dir = options.apache_modules
        self.apache_bin = options.apache_bin
        self.is_root = os.geteuid() == 0
        self.www_user = "www-data" if self.is_root else pwd.getpwuid(os.geteuid()).pw_name
        self.results = {"quick": self.quick, "sections": {}}
        self.rows = []          # summary table rows
        self.details = []       # (title, markdown) per section
        self.notes = []
        self.failures = []
        self.daemon_conf = os.path.join(self.work, "coupecircuitd.conf")
        self.module_helper = None
        self.prewarm_seconds = {}
        self.started = time.monotonic()

    # ---- helpers

    def path(self, *parts):
        p = os.path.join(self.work, *parts)
        return p

    def mkdir(self, p, owner_www=False, mode=0o755):
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        if owner_www and self.is_root:
            entry = pwd.getpwnam(self.www_user)
            os.chown(p, entry.pw_uid, entry.pw_gid)
        return p

    def fail(self, message):
        log("HARD CHECK FAILED: " + message)
        self.failures.append(message)

    def tool_json(self, *args, timeout=None):
        result = run([self.tool, *[str(a) for a in args]], timeout=timeout)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def generate(self, name, count, seed, stable=900, mode="0600"):
        directory = os.path.join(common.STORE.root, name)
        if os.path.exists(directory):
            remove_session_dir(directory)
        CLEANUP_PATHS.append(directory)
        info = self.tool_json("generate", directory, count, seed, stable, mode)
        log(f"generated {count} session files in {directory} ({info['seconds']:.1f} s, "
            f"{info['expected_active_authenticated']} active authenticated)")
        return directory, info

    def status(self, snapshot, state=None):
        args = [self.ctl_bin, "--snapshot", snapshot]
        if state:
            args += ["--state", state]
        result = run(args + ["status", "--json"], check=False)
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError:
            return {"status": "unreadable", "output": result.stdout + result.stderr}

    def start_daemon(self, session_dir, snapshot, state, interval=None, name="helper", timeout=900):
        args = [self.daemon_bin, "--foreground", "--config", self.daemon_conf, "--session-dir", session_dir,
                "--snapshot", snapshot, "--state", state]
        if interval is not None:
            args += ["--interval", str(interval)]
        process = PROCS.start(args, self.path("logs", f"{name}.log"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise HardCheckFailed(f"coupecircuitd exited ({process.returncode}), see {process.log_path}")
            if os.path.exists(snapshot):
                s = self.status(snapshot, state)
                if s.get("helper_pid") == process.pid and s.get("last_scan", {}).get("wall_time", 0) > 0:
                    return process
            time.sleep(0.1)
        raise HardCheckFailed(f"coupecircuitd did not publish within {timeout} s")

    # ---- Apache configuration

    def prewarm(self, directory):
        """Reads the whole directory with parallel readers right before a warm
        measurement (see the note on idle page-cache pages)."""
        info = self.tool_json("warm", directory, 16)
        self.prewarm_seconds.setdefault(os.path.basename(directory), []).append(info["seconds"])
        return info["seconds"]


    def apache_conf(self, name, port, mpm, features, docroot, switch_user, snapshot=None, fpm_port=None, extra=""):
        """Writes the httpd.conf of one server under apache/<name>/ (see lib/apache.py)."""
        base = self.mkdir(self.path("apache", name), owner_www=not switch_user)
        self.mkdir(os.path.join(base, "logs"), owner_www=not switch_user)
        self.mkdir(os.path.join(base, "run"), owner_www=not switch_user)
        user = self.www_user if switch_user and self.is_root else None
        conf = os.path.join(base, "httpd.conf")
        with open(conf, "w") as f:
            f.write(apache.render(base, port, mpm, features, docroot, modules_dir=self.modules_dir,
                                  module_so=self.module_so, user=user, snapshot=snapshot, fpm_port=fpm_port,
                                  extra=extra))
        return conf

    def write_docroot(self, session_glob_dir):
        docroot = self.mkdir(self.path("htdocs"))
        rnd = random.Random(7)
        with open(os.path.join(docroot, "static.txt"), "w") as f:
            f.write("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(511)) + "\n")
        names = ", ".join(f"'{v}'" for v in VARIABLES)
        pages = {
            # Every page but none.php reads $_SERVER['REQUEST_URI'] as any
            # application does: PHP imports the CGI environment into $_SERVER
            # on a script's first use of it, whatever the key.
            "none.php": "<?php\necho \"ok\\n\";\n",
            "uri.php": "<?php\n$u = $_SERVER['REQUEST_URI'] ?? '';\necho \"ok $u\\n\";\n",
            "server.php": "<?php\n$u = $_SERVER['REQUEST_URI'] ?? '';\n$v = [];\n"
                          "foreach ([%s] as $k) { $v[] = $_SERVER[$k] ?? ''; }\n"
                          "echo implode(' ', $v), ' ', $u, \"\\n\";\n" % names,
            "apcu_setup.php": "<?php\napcu_store([%s]);\necho \"stored\\n\";\n" % ", ".join(
                f"'{k}' => '{v}'" for k, v in STATIC_VALUES.items()),
            "apcu.php": "<?php\n$u = $_SERVER['REQUEST_URI'] ?? '';\n$got = apcu_fetch([%s]);\n$v = [];\n"
                        "foreach ([%s] as $k) { $v[] = $got[$k] ?? ''; }\n"
                        "echo implode(' ', $v), ' ', $u, \"\\n\";\n" % (names, names),
            # The naive way: ask the kernel and count the session files on every request.
            "naive.php": "<?php\n$u = $_SERVER['REQUEST_URI'] ?? '';\n$l = sys_getloadavg();\n"
                         "$n = count(glob('%s/sess_*'));\n"
                         "$v = [sprintf('%%.2f', $l[0]), $n, '0', '500', '8.00', ($n >= 500 || $l[0] >= 8) ? 'surcharge' : 'ok', '0'];\n"
                         "echo implode(' ', $v), ' ', $u, \"\\n\";\n" % session_glob_dir,
            "login.php": "<?php\nsession_start();\n$_SESSION['vzn_bench'] = ['storage' => 'compte_reel'];\n"
                         "echo session_id(), \"\\n\";\n",
        }
        # What harness.Apache.start() waits for (section 4 serves this
        # document root through the integration tests' Apache).
        pages["index.html"] = "<!doctype html><title>ok</title><p>ok</p>\n"
        for name, text in pages.items():
            with open(os.path.join(docroot, name), "w") as f:
                f.write(text)
        return docroot
