"""mod_coupecircuit in a real Apache: prefork + mod_php and event + php-fpm
(mod_proxy_fcgi), fed by a real coupecircuitd and driven by coupecircuitctl.

The harness tests at the top run without the module; every other test needs
mod_coupecircuit.so in the build tree and is skipped, saying so, without it.
"""

from __future__ import annotations

import re
import time

import pytest

from harness import (ENV_KEYS, MPM_SINGLE_PROCESS, SINGLE_PROCESS_ALLOWED, VARIANTS, LoadRunner, VirtualHost,
                     running_as_root, wait_for)

SAPI = {"prefork": "apache2handler", "event": "fpm-fcgi"}
MODULE_WARNING = r"\[coupecircuit:warn\].*CC03\d\d"
NUMBER = re.compile(r"\d+(\.\d{1,2})?")
LOAD_TEXT = re.compile(r"\d+\.\d\d")


def wait_env(client, condition, within: float, what: str, since: float | None = None, host: str | None = None):
    """Polls /env.php until condition(env) holds, at most `within` seconds after
    `since` (default: now). Every answer must be a 200."""
    since = time.monotonic() if since is None else since
    timeout = max(0.0, since + within - time.monotonic())
    env, _ = wait_for(lambda: client.env(host=host), condition, timeout, what)
    return env


def wait_status(helper, condition, within: float, what: str):
    (_, document), _ = wait_for(helper.status, lambda v: condition(v[1]), within, what)
    return document


def graceful_restarts_under_load(apache, load: LoadRunner, step: int, within: float) -> LoadRunner:
    """Three graceful restarts while `load` runs, each followed by `step` more
    completed requests (within `within` s); returns the stopped runner."""
    load.start()
    try:
        wait_for(load.completed, lambda n: n >= step, within, "load running")
        for _ in range(3):
            apache.graceful()
            done = load.completed()
            wait_for(load.completed, lambda n, d=done: n >= d + step, within, "load goes on after the graceful restart")
    finally:
        load.stop()
    return load


def float_of(text: str | None) -> float:
    assert text is not None and NUMBER.fullmatch(text), f"not a number: {text!r}"
    return float(text)


def only_etat(env: dict, etat: str) -> bool:
    return env["COUPECIRCUIT_ETAT"] == etat


# ======================================================================
# The harness itself (no module): Apache, PHP, sessions, graceful, -t.
# ======================================================================

@pytest.mark.parametrize("variant", VARIANTS)
def test_harness_without_module(helper, make_apache, variant):
    apache = make_apache(variant, helper)
    client = apache.client()

    env = client.env()
    assert env["_sapi"] == SAPI[variant]
    assert {key: env[key] for key in ENV_KEYS} == {key: None for key in ENV_KEYS}
    assert apache.client().request("/index.html").status == 200
    assert apache.client().request("/missing.html").status == 404

    # PHP sessions of this server land in the test's session directory.
    reply = client.request("/login.php")
    assert reply.status == 200, reply.body
    session_id = reply.json()["session_id"]
    assert client.cookies.get("PHPSESSID") == session_id
    session_file = helper.session_dir / f"sess_{session_id}"
    wait_for(session_file.exists, bool, 2.0, f"{session_file} written")
    if running_as_root():
        assert session_file.stat().st_uid != 0, "PHP must run as www-data, not root"
    wait_status(helper, lambda d: d["sessions"]["active"]["authenticated"] == 1, 2.0, "login counted")
    visitor = apache.client()
    assert visitor.request("/anon.php").status == 200
    wait_status(helper, lambda d: d["sessions"]["active"]["anonymous"] == 1, 2.0, "visitor counted")
    reply = client.request("/logout.php")
    assert reply.status == 200 and reply.json()["destroyed"] is True
    assert not session_file.exists()
    wait_status(helper, lambda d: d["sessions"]["active"]["authenticated"] == 0, 2.0, "logout counted")

    # Graceful restarts under load lose nothing.
    load = graceful_restarts_under_load(apache, LoadRunner(apache.port, threads=3, max_seconds=90), 20, 15)
    assert load.failures == [], f"{len(load.failures)} failed of {load.count}: {load.failures[:10]}"

    # apache2 -t reports a bad directive with the file and line.
    apache.server_lines.append("NoSuchDirective on")
    apache.write_config()
    result = apache.configtest()
    assert result.returncode != 0
    assert f"Syntax error on line {apache.line_of('NoSuchDirective')} of {apache.conf}" in result.stderr
    apache.server_lines.pop()
    apache.write_config()
    result = apache.configtest()
    assert result.returncode == 0 and "Syntax OK" in result.stderr, result.stderr


# ======================================================================
# With the module
# ======================================================================

@pytest.mark.parametrize("variant", VARIANTS)
def test_values_reach_php(helper, make_apache, module_so, variant):
    """(a) prefork: $_SERVER of mod_php; (b) event: FastCGI params of php-fpm
    (its pool clears the environment: the values can only come as params)."""
    helper.session("authenticated")
    helper.session("authenticated")
    helper.session("anonymous")
    wait_status(helper, lambda d: d["sessions"]["active_authenticated"] == 2, 2.0, "sessions counted")
    apache = make_apache(variant, helper, with_module=True,
                         server_lines=["CoupeCircuitThreshold sessions 50", "CoupeCircuitThreshold load 40.5"])
    client = apache.client()

    before = float(helper.status()[1]["load"]["1"])
    env = client.env()
    after = float(helper.status()[1]["load"]["1"])
    assert env["_sapi"] == SAPI[variant]
    assert env["SESSIONS_ACTIVES"] == "2"
    assert env["LOAD_AVG"] is not None and LOAD_TEXT.fullmatch(env["LOAD_AVG"]), env["LOAD_AVG"]
    assert min(before, after) - 0.5 <= float(env["LOAD_AVG"]) <= max(before, after) + 0.5
    assert env["COUPURE_CHARGE_SERVEUR"] == "0"
    assert env["COUPECIRCUIT_ETAT"] == "ok"
    assert env["SEUIL_SESSIONS_ACTIVES"] == "50"
    assert float_of(env["SEUIL_LOAD_AVG"]) == 40.5
    assert 0 <= float_of(env["COUPECIRCUIT_AGE"]) <= 10
    assert env["_redirect_keys"] == []
    assert apache.client().request("/index.html").status == 200

    # Runtime overrides (global) win over the directives, without a reload (a load
    # override above any load of a busy test machine: it must not trip).
    since = time.monotonic()
    helper.ctl_ok("threshold", "set", "sessions", "30")
    helper.ctl_ok("threshold", "set", "load", "512.25")
    env = wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "30" and e["SEUIL_LOAD_AVG"] is not None
                   and float(e["SEUIL_LOAD_AVG"]) == 512.25, 1.0 + 1.0, "global overrides", since)
    helper.ctl_ok("threshold", "unset", "sessions")
    helper.ctl_ok("threshold", "unset", "load")
    env = wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "50" and float_of(e["SEUIL_LOAD_AVG"]) == 40.5,
                   1.0, "directives again once the overrides are gone")
    assert env["COUPECIRCUIT_ETAT"] == "ok"


def test_env_names_and_off(helper, make_apache, module_so):
    apache = make_apache("prefork", helper, with_module=True,
                         server_lines=["CoupeCircuitEnvName etat APP_ETAT",
                                       "CoupeCircuitEnvName sessions_actives NB_SESSIONS"],
                         vhosts=[VirtualHost("on.test"), VirtualHost("off.test", ["CoupeCircuit Off"])])
    client = apache.client()
    env = client.env(host="on.test", extra=["APP_ETAT", "NB_SESSIONS"])
    assert env["APP_ETAT"] == "ok" and env["COUPECIRCUIT_ETAT"] is None
    assert env["NB_SESSIONS"] == "0" and env["SESSIONS_ACTIVES"] is None
    assert env["COUPURE_CHARGE_SERVEUR"] == "0"
    env = client.env(host="off.test", extra=["APP_ETAT", "NB_SESSIONS"])
    assert all(value is None for key, value in env.items() if not key.startswith("_")), env


@pytest.mark.parametrize("variant", VARIANTS)
def test_values_survive_internal_redirects(helper, make_apache, module_so, variant):
    """A front controller (per-directory RewriteRule) and an ErrorDocument are
    internal redirects: PHP still gets the plain names, not only REDIRECT_*."""
    helper.session("authenticated")
    wait_status(helper, lambda d: d["sessions"]["active_authenticated"] == 1, 2.0, "session counted")
    apache = make_apache(variant, helper, with_module=True, server_lines=["ErrorDocument 404 /env.php"],
                         directory_lines=["Options +SymLinksIfOwnerMatch", "RewriteEngine On",
                                          "RewriteRule ^app/ env.php [L]"])
    client = apache.client()
    reply = client.request("/app/some/route")
    assert reply.status == 200, reply.body
    env = reply.json()
    assert env["COUPECIRCUIT_ETAT"] == "ok" and env["SESSIONS_ACTIVES"] == "1", env
    assert env["COUPURE_CHARGE_SERVEUR"] == "0" and LOAD_TEXT.fullmatch(env["LOAD_AVG"] or ""), env
    reply = client.request("/no/such/page.html")
    assert reply.status == 404
    env = reply.json()
    assert env["COUPECIRCUIT_ETAT"] == "ok" and env["SESSIONS_ACTIVES"] == "1", env


@pytest.mark.parametrize("variant", VARIANTS)
def test_values_reach_front_controllers_and_server_rewrite_rules(helper, make_apache, module_so, variant):
    """FallbackResource and DirectoryIndex hand the request to a script (mod_dir,
    through a sub-request); server-context RewriteRules test the values (they
    run before the location walk). Every request of a keep-alive connection
    sees them, whatever came before it."""
    helper.session("authenticated")
    wait_status(helper, lambda d: d["sessions"]["active_authenticated"] == 1, 2.0, "session counted")
    apache = make_apache(variant, helper, with_module=True,
                         server_lines=["FallbackResource /env.php", "DirectoryIndex index.html env.php",
                                       "RewriteEngine On",
                                       "RewriteCond %{ENV:COUPECIRCUIT_ETAT} =ok",
                                       "RewriteCond %{ENV:SESSIONS_ACTIVES} =1",
                                       "RewriteRule ^/etat-ok$ /env.php [PT,E=VU_PAR_REWRITE:1]"])
    (apache.htdocs / "idx").mkdir()
    (apache.htdocs / "idx" / "env.php").write_bytes((apache.htdocs / "env.php").read_bytes())
    client = apache.client()
    for path in ("/front/some/route", "/idx/", "/etat-ok?extra=VU_PAR_REWRITE", "/front/again", "/index.html",
                 "/etat-ok?extra=VU_PAR_REWRITE"):
        reply = client.request(path)
        assert reply.status == 200, (path, reply.body)
        if path == "/index.html":
            continue
        env = reply.json()
        assert env["COUPECIRCUIT_ETAT"] == "ok" and env["SESSIONS_ACTIVES"] == "1", (path, env)
        assert env["COUPURE_CHARGE_SERVEUR"] == "0" and LOAD_TEXT.fullmatch(env["LOAD_AVG"] or ""), (path, env)
        assert env["COUPECIRCUIT_AGE"] is not None, (path, env)
        if path.startswith("/etat-ok"):
            assert env["VU_PAR_REWRITE"] == "1", (path, env)  # the rule saw the values


@pytest.mark.parametrize("variant", VARIANTS)
def test_vhost_thresholds(helper, make_apache, module_so, variant):
    """(c) two name-based vhosts on one port, each with its own directives; a
    runtime override for one vhost reaches only that vhost, without reload."""
    apache = make_apache(variant, helper, with_module=True, vhosts=[
        # ServerName in mixed case: overrides name vhosts case-insensitively.
        VirtualHost("A.Test", ["CoupeCircuitThreshold sessions 100 90", "CoupeCircuitThreshold load 50"]),
        VirtualHost("b.test", ["CoupeCircuitThreshold sessions 200"]),
        # Without any directive of the module: each keeps its own name.
        VirtualHost("c.test"),
        VirtualHost("d.test"),
    ])
    client = apache.client()
    a = client.env(host="a.test")
    b = client.env(host="b.test")
    assert a["_server_name"].lower() == "a.test" and b["_server_name"] == "b.test"
    assert a["SEUIL_SESSIONS_ACTIVES"] == "100" and float_of(a["SEUIL_LOAD_AVG"]) == 50
    assert b["SEUIL_SESSIONS_ACTIVES"] == "200" and b["SEUIL_LOAD_AVG"] is None
    parent = apache.pid()

    since = time.monotonic()
    helper.ctl_ok("threshold", "set", "sessions", "7", "--vhost", "a.test")
    wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "7", 1.0, "a.test override", since, host="a.test")
    for _ in range(5):
        assert client.env(host="b.test")["SEUIL_SESSIONS_ACTIVES"] == "200"
    helper.ctl_ok("threshold", "set", "sessions", "9", "--vhost", "c.test")
    wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "9", 1.0, "c.test override", host="c.test")
    for host in ("d.test", "a.test", "b.test"):
        assert client.env(host=host)["SEUIL_SESSIONS_ACTIVES"] != "9", host
    helper.ctl_ok("threshold", "unset", "sessions", "--vhost", "c.test")
    assert apache.pid() == parent and "graceful" not in apache.error_log_text().lower()

    # Global override: below a vhost override, above the directives.
    helper.ctl_ok("threshold", "set", "load", "60")
    helper.ctl_ok("threshold", "set", "sessions", "300")
    a = wait_env(client, lambda e: e["SEUIL_LOAD_AVG"] is not None and float(e["SEUIL_LOAD_AVG"]) == 60, 1.0,
                 "global load override on a.test", host="a.test")
    assert a["SEUIL_SESSIONS_ACTIVES"] == "7"
    b = wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "300", 1.0, "global override on b.test",
                 host="b.test")
    assert float_of(b["SEUIL_LOAD_AVG"]) == 60

    # Vhost names are case-insensitive.
    helper.ctl_ok("threshold", "set", "load", "5", "--vhost", "B.Test")
    wait_env(client, lambda e: e["SEUIL_LOAD_AVG"] is not None and float(e["SEUIL_LOAD_AVG"]) == 5, 1.0,
             "b.test load override", host="b.test")
    assert float_of(client.env(host="a.test")["SEUIL_LOAD_AVG"]) == 60

    for command in (("sessions", "--vhost", "a.test"), ("load", "--vhost", "b.test"), ("load",), ("sessions",)):
        helper.ctl_ok("threshold", "unset", *command)
    a = wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "100", 1.0, "a.test directive again",
                 host="a.test")
    assert float_of(a["SEUIL_LOAD_AVG"]) == 50
    wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "200" and e["SEUIL_LOAD_AVG"] is None, 1.0,
             "b.test directive again", host="b.test")


@pytest.mark.parametrize("variant", VARIANTS)
def test_login_logout_counts(helper, make_apache, module_so, variant):
    """(d) a login through this Apache is counted within 2 s; logout uncounts it."""
    apache = make_apache(variant, helper, with_module=True)
    watcher = apache.client()
    base = int(watcher.env()["SESSIONS_ACTIVES"])

    user = apache.client()
    since = time.monotonic()
    reply = user.request("/login.php")
    assert reply.status == 200, reply.body
    wait_env(watcher, lambda e: e["SESSIONS_ACTIVES"] == str(base + 1), 2.0, "login counted", since)

    visitor = apache.client()
    assert visitor.request("/anon.php").status == 200
    wait_status(helper, lambda d: d["sessions"]["active"]["anonymous"] == 1, 2.0, "visitor seen by the helper")
    assert watcher.env()["SESSIONS_ACTIVES"] == str(base + 1), "a visitor is not an active session"

    since = time.monotonic()
    reply = user.request("/logout.php")
    assert reply.status == 200 and reply.json()["destroyed"] is True
    wait_env(watcher, lambda e: e["SESSIONS_ACTIVES"] == str(base), 2.0, "logout counted", since)


@pytest.mark.parametrize("variant", VARIANTS)
def test_cut_and_surcharge(helper, make_apache, module_so, variant):
    """(e) manual cut within 1 s, and surcharge once a threshold is reached
    (CoupeCircuitHold 0: released as soon as the value is back down)."""
    apache = make_apache(variant, helper, with_module=True, server_lines=["CoupeCircuitHold 0"])
    client = apache.client()
    env = client.env()
    assert env["COUPURE_CHARGE_SERVEUR"] == "0" and env["COUPECIRCUIT_ETAT"] == "ok"

    since = time.monotonic()
    helper.ctl_ok("cut", "on", "--reason", "incident")
    wait_env(client, lambda e: e["COUPURE_CHARGE_SERVEUR"] == "1" and e["COUPECIRCUIT_ETAT"] == "coupure", 1.0,
             "cut on", since)
    since = time.monotonic()
    helper.ctl_ok("cut", "off")
    wait_env(client, lambda e: e["COUPURE_CHARGE_SERVEUR"] == "0" and e["COUPECIRCUIT_ETAT"] == "ok", 1.0,
             "cut off", since)

    # sessions: reached at 1 with one login
    helper.ctl_ok("threshold", "set", "sessions", "1")
    env = wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "1", 1.0, "threshold sessions 1")
    assert env["COUPECIRCUIT_ETAT"] == "ok" and env["SESSIONS_ACTIVES"] == "0"
    user = apache.client()
    assert user.request("/login.php").status == 200
    env = wait_env(client, lambda e: e["COUPECIRCUIT_ETAT"] == "surcharge", 2.0, "surcharge after one login")
    assert env["SESSIONS_ACTIVES"] == "1" and env["COUPURE_CHARGE_SERVEUR"] == "0"
    # The manual cut wins over a reached threshold.
    helper.ctl_ok("cut", "on")
    wait_env(client, lambda e: e["COUPECIRCUIT_ETAT"] == "coupure" and e["COUPURE_CHARGE_SERVEUR"] == "1", 1.0,
             "cut over surcharge")
    helper.ctl_ok("cut", "off")
    wait_env(client, lambda e: e["COUPECIRCUIT_ETAT"] == "surcharge", 1.0, "surcharge again after the cut")
    assert user.request("/logout.php").status == 200
    wait_env(client, lambda e: e["COUPECIRCUIT_ETAT"] == "ok" and e["SESSIONS_ACTIVES"] == "0", 2.0,
             "ok after logout")
    helper.ctl_ok("threshold", "unset", "sessions")

    # load: a threshold of 0 would always be reached: refused (exit 2)
    assert helper.ctl("threshold", "set", "load", "0").returncode == 2
    helper.ctl_ok("threshold", "set", "load", "1000000")
    env = wait_env(client, lambda e: e["SEUIL_LOAD_AVG"] is not None, 1.0, "load threshold exported")
    assert float_of(env["SEUIL_LOAD_AVG"]) == 1000000 and env["COUPECIRCUIT_ETAT"] == "ok"
    helper.ctl_ok("threshold", "unset", "load")
    env = wait_env(client, lambda e: e["COUPECIRCUIT_ETAT"] == "ok", 1.0, "ok without thresholds")
    assert env["SEUIL_LOAD_AVG"] is None and env["SEUIL_SESSIONS_ACTIVES"] is None


# Hysteresis and hold, shared by every child: test_degradation.py.


@pytest.mark.parametrize("variant", VARIANTS)
def test_helper_killed_then_restarted(helper, make_apache, module_so, logs, variant):
    """(f) kill -9 of the helper: inconnu within CoupeCircuitMaxAge, requests
    still served, one warning per incident; values back after a restart."""
    max_age = 2
    for pattern in SINGLE_PROCESS_ALLOWED:
        logs.allow(pattern)
    logs.allow(MODULE_WARNING)
    apache = make_apache(variant, helper, with_module=True, server_lines=[f"CoupeCircuitMaxAge {max_age}"],
                         mpm=MPM_SINGLE_PROCESS[variant])
    client = apache.client()
    assert client.env()["COUPECIRCUIT_ETAT"] == "ok"
    assert apache.module_warnings() == []

    for incident in (1, 2):
        since = time.monotonic()
        helper.kill9()
        # The last heartbeat precedes the kill: stale at most max_age later.
        env = wait_env(client, lambda e: only_etat(e, "inconnu"), max_age + 0.75, "inconnu after kill -9", since)
        for key in ("LOAD_AVG", "SESSIONS_ACTIVES", "COUPURE_CHARGE_SERVEUR"):
            assert env[key] is None, f"{key} exported from a stale snapshot: {env}"
        for _ in range(20):
            assert client.env()["COUPECIRCUIT_ETAT"] == "inconnu"
        warnings = apache.module_warnings()
        assert len(warnings) == incident, f"expected {incident} module warning(s):\n" + "\n".join(warnings)
        assert re.search(r"CC03\d\d", warnings[-1])

        since = time.monotonic()
        helper.start()
        env = wait_env(client, lambda e: only_etat(e, "ok"), 3.0, "values back after the restart", since)
        assert env["SESSIONS_ACTIVES"] == "0" and env["COUPURE_CHARGE_SERVEUR"] == "0"
        assert LOAD_TEXT.fullmatch(env["LOAD_AVG"] or "")
        for _ in range(10):
            assert client.env()["COUPECIRCUIT_ETAT"] == "ok"
        assert len(apache.module_warnings()) == incident


def test_stale_snapshot_keeps_only_the_directive_thresholds(helper, make_apache, module_so, logs):
    """coupecircuit.conf(5): while the snapshot is stale, LOAD_AVG,
    SESSIONS_ACTIVES and COUPURE_CHARGE_SERVEUR are not set, COUPECIRCUIT_ETAT
    is inconnu and the thresholds come from the vhost's directives only (no
    runtime override, no manual cut)."""
    for pattern in SINGLE_PROCESS_ALLOWED:
        logs.allow(pattern)
    logs.allow(MODULE_WARNING)
    apache = make_apache("prefork", helper, with_module=True, mpm=MPM_SINGLE_PROCESS["prefork"],
                         server_lines=["CoupeCircuitMaxAge 1", "CoupeCircuitThreshold sessions 50",
                                       "CoupeCircuitThreshold load 8"])
    client = apache.client()
    helper.ctl_ok("threshold", "set", "sessions", "7")
    helper.ctl_ok("cut", "on")
    env = wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "7" and only_etat(e, "coupure"), 1.0,
                   "override and cut before the incident")
    assert float_of(env["SEUIL_LOAD_AVG"]) == 8
    helper.kill9()
    env = wait_env(client, lambda e: only_etat(e, "inconnu"), 1.75, "inconnu after kill -9")
    for key in ("LOAD_AVG", "SESSIONS_ACTIVES", "COUPURE_CHARGE_SERVEUR"):
        assert env[key] is None, f"{key} exported from a stale snapshot: {env}"
    assert env["SEUIL_SESSIONS_ACTIVES"] == "50" and float_of(env["SEUIL_LOAD_AVG"]) == 8, env
    if env["COUPECIRCUIT_AGE"] is not None:
        assert float_of(env["COUPECIRCUIT_AGE"]) >= 1, env


def test_missing_snapshot_then_helper_starts(make_helper, make_apache, module_so, logs):
    """Apache up before the helper: inconnu and one warning, then the values
    as soon as the helper publishes."""
    for pattern in SINGLE_PROCESS_ALLOWED:
        logs.allow(pattern)
    logs.allow(MODULE_WARNING)
    helper = make_helper(start=False)
    assert not helper.snapshot.exists()
    apache = make_apache("prefork", helper, with_module=True, mpm=MPM_SINGLE_PROCESS["prefork"])
    client = apache.client()
    for _ in range(10):
        env = client.env()
        assert env["COUPECIRCUIT_ETAT"] == "inconnu"
        assert env["LOAD_AVG"] is None and env["SESSIONS_ACTIVES"] is None and env["COUPURE_CHARGE_SERVEUR"] is None
    warnings = apache.module_warnings()
    assert len(warnings) == 1, "\n".join(warnings)

    since = time.monotonic()
    helper.start()
    env = wait_env(client, lambda e: only_etat(e, "ok"), 3.0, "values once the helper publishes", since)
    assert env["SESSIONS_ACTIVES"] == "0"
    assert len(apache.module_warnings()) == 1


def test_snapshot_recreated_by_the_helper_is_followed(helper, make_apache, module_so, logs):
    """The snapshot file removed: the helper re-creates it (new inode) and the
    module must follow it, not keep the old mapping until it goes stale (one
    process: the one that mapped the old file serves every request)."""
    logs.allow(r"CC0021")
    logs.allow(MODULE_WARNING)
    for pattern in SINGLE_PROCESS_ALLOWED:
        logs.allow(pattern)
    apache = make_apache("prefork", helper, with_module=True, mpm=MPM_SINGLE_PROCESS["prefork"])
    client = apache.client()
    assert client.env()["COUPECIRCUIT_ETAT"] == "ok"
    helper.snapshot.unlink()
    wait_for(helper.status, lambda v: v[0] == 0, 3.0, "the helper re-creates its snapshot")
    since = time.monotonic()
    helper.ctl_ok("cut", "on")
    # The helper zeroes the old file's heartbeat when it re-creates the
    # snapshot: the module re-opens the path at once.
    wait_env(client, lambda e: only_etat(e, "coupure"), 2.0, "cut on after the snapshot was re-created", since)


@pytest.mark.parametrize("variant", VARIANTS)
def test_graceful_under_load(helper, make_apache, module_so, variant):
    """(g) three graceful restarts while requests run: no failure, and every
    answer carries the values."""
    helper.session("authenticated")
    wait_status(helper, lambda d: d["sessions"]["active_authenticated"] == 1, 2.0, "session counted")
    apache = make_apache(variant, helper, with_module=True, server_lines=["CoupeCircuitThreshold sessions 50"])

    def check(response) -> str | None:
        env = response.json()
        if env["COUPECIRCUIT_ETAT"] != "ok" or env["SESSIONS_ACTIVES"] != "1" or env["SEUIL_SESSIONS_ACTIVES"] != "50":
            return f"unexpected values: {env}"
        return None

    load = graceful_restarts_under_load(apache, LoadRunner(apache.port, threads=4, max_seconds=120, check=check), 50,
                                        20)
    assert load.count >= 200
    assert load.failures == [], f"{len(load.failures)} failed of {load.count}: {load.failures[:10]}"


# (h) apache2 -t refuses each bad value, naming the directive, file and line.
CONFIG_ERRORS = [
    ("server", "CoupeCircuit maybe", "CoupeCircuit"),
    ("server", "CoupeCircuitMaxAge -1", "CoupeCircuitMaxAge"),
    ("server", "CoupeCircuitMaxAge abc", "CoupeCircuitMaxAge"),
    ("server", "CoupeCircuitMaxAge 0", "CoupeCircuitMaxAge"),
    ("vhost", "CoupeCircuitMaxAge 1.5", "CoupeCircuitMaxAge"),
    ("server", "CoupeCircuitThreshold foo 1", "CoupeCircuitThreshold"),
    ("server", "CoupeCircuitThreshold sessions abc", "CoupeCircuitThreshold"),
    ("server", "CoupeCircuitThreshold sessions -3", "CoupeCircuitThreshold"),
    ("server", "CoupeCircuitThreshold load 1.234", "CoupeCircuitThreshold"),
    ("server", "CoupeCircuitThreshold sessions 10 20", "CoupeCircuitThreshold"),
    ("vhost", "CoupeCircuitThreshold sessions 10 10", "CoupeCircuitThreshold"),
    ("vhost", "CoupeCircuitThreshold load 2 3", "CoupeCircuitThreshold"),
    ("server", "CoupeCircuitThreshold sessions", "CoupeCircuitThreshold"),
    ("server", "CoupeCircuitEnvName unknown_logical X", "CoupeCircuitEnvName"),
    ("server", 'CoupeCircuitEnvName etat "BAD NAME"', "CoupeCircuitEnvName"),
    ("vhost", "CoupeCircuitEnvName age 9LIVES", "CoupeCircuitEnvName"),
    ("server", "CoupeCircuitHold -1", "CoupeCircuitHold"),
    ("vhost", "CoupeCircuitHold abc", "CoupeCircuitHold"),
    ("server", "CoupeCircuitHold 86401", "CoupeCircuitHold"),
    ("server", "CoupeCircuitSnapshot relative/path", "CoupeCircuitSnapshot"),
    ("vhost", "CoupeCircuitSnapshot /run/elsewhere/snapshot", "CoupeCircuitSnapshot"),
]


@pytest.mark.parametrize("where,line,directive", CONFIG_ERRORS, ids=[c[1] for c in CONFIG_ERRORS])
def test_configtest_rejects(make_helper, make_apache, module_so, where, line, directive):
    helper = make_helper(start=False)
    options = {"server_lines": [line]} if where == "server" else {"vhosts": [VirtualHost("bad.test", [line])]}
    apache = make_apache("prefork", helper, with_module=True, start=False, **options)
    result = apache.configtest()
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"apache2 -t accepted {line!r}:\n{output}"
    number = apache.line_of(line)
    assert f"Syntax error on line {number} of {apache.conf}" in output, output
    message = output.split(f"of {apache.conf}:", 1)[1]
    assert directive in message, f"the message does not name {directive}:\n{output}"


def test_configtest_accepts_valid_directives(make_helper, make_apache, module_so):
    helper = make_helper(start=False)
    apache = make_apache("prefork", helper, with_module=True, start=False,
                         server_lines=["CoupeCircuitMaxAge 5", "CoupeCircuitHold 0",
                                       "CoupeCircuitThreshold sessions 10 5", "CoupeCircuitThreshold load 4.5",
                                       "CoupeCircuitEnvName etat APP_ETAT",
                                       "CoupeCircuitEnvName seuil_load APP_SEUIL_LOAD"],
                         vhosts=[VirtualHost("good.test", ["CoupeCircuit Off", "CoupeCircuitMaxAge 3",
                                                           "CoupeCircuitHold 86400",
                                                           "CoupeCircuitThreshold load 2.25 1.5",
                                                           "CoupeCircuitEnvName age APP_AGE"])])
    result = apache.configtest()
    assert result.returncode == 0 and "Syntax OK" in result.stderr, result.stdout + result.stderr
