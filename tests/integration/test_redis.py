"""Sessions kept in a real standalone redis-server, written by real PHP with
phpredis (session.save_handler = redis), counted by the real coupecircuitd
and read back through coupecircuitctl status --json."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from harness import HttpClient, clean_env, wait_for
from redis_harness import (NOTIFICATION_DEADLINE, PASS_INTERVAL, RedisServer, counts, new_id, php_sessions,
                           redis_available, store_of, wait_active)

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server and redis-cli are needed")

# A heartbeat at most this old: the loop ticks every second; a stalled loop
# (Redis asleep for 5 s) would be older.
HEARTBEAT_AGE_LIMIT = 3.0
# Fixed waits of a few seconds (a full pass, a reload) on a busy host.
SLACK = 5.0


def redis_helper(make_helper, server: RedisServer, start: bool = True, extra: str = "", save_path: str | None = None,
                 interval: int = PASS_INTERVAL, **options):
    save_path = save_path or f"tcp://127.0.0.1:{server.port}"
    config = f"\n[sessions]\nsave_handler = redis\nsave_path = {save_path}\n{extra}"
    return make_helper(start=start, interval=interval, config_extra=config, **options)


def write(server: RedisServer, *operations: tuple[str, str], **kwargs) -> None:
    php_sessions("redis", f"tcp://127.0.0.1:{server.port}", operations, **kwargs)


@pytest.fixture(scope="module")
def quiet_redis(paths):
    """Keyspace notifications off: counts follow the full passes."""
    from harness import run_dir_for
    server = RedisServer(run_dir_for(paths, f"redis-quiet-{os.getpid()}") / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def notifying_redis(paths):
    """notify-keyspace-events KEA: logins and logouts arrive within 1 s."""
    from harness import run_dir_for
    server = RedisServer(run_dir_for(paths, f"redis-notify-{os.getpid()}") / "redis", notifications="KEA").start()
    yield server
    server.stop()


@pytest.fixture
def fresh(quiet_redis, notifying_redis):
    for server in (quiet_redis, notifying_redis):
        server.cli("FLUSHALL")
    return quiet_redis, notifying_redis


# ---------------------------------------------------------------- counting

def test_counts_each_class_skips_locks_and_non_strings(make_helper, fresh):
    server, _ = fresh
    write(server, ("authenticated", new_id()), ("authenticated", new_id()), ("anonymous", new_id()),
          ("unknown", new_id()), ("empty", new_id()))
    # phpredis's lock key (redis.session.locking_enabled) and a non-string
    # under the prefix: neither is a session.
    sid = new_id()
    write(server, ("authenticated", sid))
    server.cli("SET", f"PHPREDIS_SESSION:{sid}_LOCK", "web1|1234")
    server.cli("HSET", "PHPREDIS_SESSION:not-a-string", "vzn_x", "storage")
    server.cli("SET", "other:key", "vzn_x|a:1:{s:7:\"storage\";s:1:\"x\";}")

    helper = redis_helper(make_helper, server)
    sessions, store = store_of(helper)
    assert sessions["active"] == counts(authenticated=3, anonymous=1, unknown=1, empty=1), sessions
    assert sessions["active_authenticated"] == 3
    assert store["kind"] == "redis" and store["available"] is True and store["sessions_known"] is True
    assert store["keys_seen"] == 6 and sessions["keys_seen"] == 6
    assert store["masters_reached"] == 1 and store["masters_total"] == 1
    assert store["notifications"] is False
    assert "keyspace notifications off" in helper.log_text()

    # Login and logout without notifications: the next full pass.
    login = new_id()
    write(server, ("authenticated", login))
    waited = wait_active(helper, counts(authenticated=4, anonymous=1, unknown=1, empty=1), PASS_INTERVAL + SLACK,
                         "login seen by the full pass")
    print(f"login without notifications seen after {waited:.2f} s")
    write(server, ("destroy", login))
    wait_active(helper, counts(authenticated=3, anonymous=1, unknown=1, empty=1), PASS_INTERVAL + SLACK,
                "logout seen by the full pass")

    text = helper.ctl_ok("status").stdout
    assert "store:      redis, masters 1/1, 6 keys" in text and "notifications off" in text

    # Signals reach the daemon's loop, not the store's thread: SIGHUP reloads
    # (and makes a pass), SIGTERM stops cleanly.
    helper.signal(signal.SIGHUP)
    wait_for(helper.log_text, lambda text: "CC0003" in text, 2 * SLACK, "reloaded on SIGHUP")
    assert helper.running()
    assert helper.stop() == 0 and "CC0002" in helper.log_text()


def test_notifications_bring_login_and_logout_within_a_second(make_helper, fresh):
    _, server = fresh
    write(server, ("anonymous", new_id()))
    # A long pass interval: only notifications can be this quick.
    helper = redis_helper(make_helper, server, interval=60)
    _, store = store_of(helper)
    assert store["notifications"] is True
    for _ in range(3):
        login = new_id()
        write(server, ("anonymous", login))
        wait_active(helper, counts(anonymous=2), NOTIFICATION_DEADLINE, "anonymous visit")
        write(server, ("authenticated", login))
        waited = wait_active(helper, counts(authenticated=1, anonymous=1), NOTIFICATION_DEADLINE, "login")
        print(f"login seen after {waited:.3f} s")
        write(server, ("destroy", login))
        wait_active(helper, counts(anonymous=1), NOTIFICATION_DEADLINE, "logout")


def test_sessions_age_out_by_ttl(make_helper, fresh):
    _, server = fresh
    # PHP's gc_maxlifetime is the TTL of every write: with 3 s the key
    # expires (and the helper drops it) 3 s after the last request.
    helper = redis_helper(make_helper, server, extra="gc_maxlifetime = 3\n", interval=60)
    write(server, ("authenticated", new_id()), extra_ini=["session.gc_maxlifetime=3"])
    wait_active(helper, counts(authenticated=1), NOTIFICATION_DEADLINE, "session written")
    wait_active(helper, counts(), 3 + SLACK, "session expired by its TTL")


def test_last_activity_is_derived_from_the_ttl(make_helper, fresh):
    server, _ = fresh
    recent, idle = new_id(), new_id()
    write(server, ("authenticated", recent), ("authenticated", idle))
    # Written 20 minutes ago: TTL = gc_maxlifetime - 1200 s.
    server.cli("EXPIRE", f"PHPREDIS_SESSION:{idle}", str(1440 - 1200))
    server.cli("SET", "PHPREDIS_SESSION:forever", "vzn_x|a:1:{s:7:\"storage\";s:1:\"x\";}")
    server.cli("SET", "PHPREDIS_SESSION:forever-empty", "")
    helper = redis_helper(make_helper, server, active_minutes=10)
    sessions, _ = store_of(helper)
    # No expiry: active when not empty.
    assert sessions["active"] == counts(authenticated=2), sessions
    assert sessions["inactive"]["authenticated"] == 1 and sessions["inactive"]["empty"] == 1, sessions


def test_a_2_mib_session_is_read_capped(make_helper, fresh):
    server, _ = fresh
    write(server, ("big", new_id()))
    helper = redis_helper(make_helper, server)
    sessions, store = store_of(helper)
    assert sessions["active"] == counts(authenticated=1)
    assert store["values_read_last_pass"] == 1
    assert 0 < store["bytes_read_last_pass"] <= 64 * 1024 + 200, store


def test_symfony_prefix_and_rule(make_helper, fresh):
    server, _ = fresh
    # Symfony's RedisSessionHandler: prefix sf_s, the PHP session encoding.
    logged = "_sf2_attributes|a:1:{s:14:\"_security_main\";s:3:\"tok\";}_sf2_meta|a:0:{}"
    anonymous = "_sf2_attributes|a:0:{}_sf2_meta|a:0:{}"
    server.cli("SETEX", "sf_s" + new_id(), "1440", logged)
    server.cli("SETEX", "sf_s" + new_id(), "1440", anonymous)
    write(server, ("authenticated", new_id()))  # PHPREDIS_SESSION: not this site's prefix
    helper = redis_helper(make_helper, server, save_path=f"tcp://127.0.0.1:{server.port}?prefix=sf_s",
                          extra="authenticated = _sf2_attributes contains _security_main\nunknown_key =\n")
    sessions, store = store_of(helper)
    assert store["keys_seen"] == 2
    assert sessions["active"] == counts(authenticated=1, anonymous=1), sessions


def test_rescans_read_only_what_changed(make_helper, fresh):
    server, _ = fresh
    ids = [new_id() for _ in range(40)]
    write(server, *[("authenticated", sid) for sid in ids])
    helper = redis_helper(make_helper, server, interval=1)
    _, first = store_of(helper)
    assert first["values_read_last_pass"] == 40

    def later_pass(store):
        return store["values_read_last_pass"] == 0 and store["pass_duration_us"] != first["pass_duration_us"]

    wait_for(lambda: store_of(helper)[1], later_pass, 2 * SLACK, "a pass that reads no value")
    write(server, ("anonymous", ids[0]))
    (sessions, store), _ = wait_for(lambda: store_of(helper), lambda v: v[0]["active"]["anonymous"] == 1, 2 * SLACK,
                                    "the changed session re-read")
    assert sessions["active"] == counts(authenticated=39, anonymous=1)


# ---------------------------------------------------------------- faults

def test_redis_killed_and_restarted_flag_set_then_cleared(make_helper, run_dir, logs):
    server = RedisServer(run_dir / "redis").start()
    try:
        write(server, ("authenticated", new_id()))
        helper = redis_helper(make_helper, server)
        logs.allow(r"CC0070")
        server.kill()
        (_, store), _ = wait_for(lambda: store_of(helper), lambda v: not v[1]["available"], PASS_INTERVAL + SLACK,
                                 "store flagged unavailable")
        code, document = helper.status()
        assert code == 3 and document["status"] == "sessions_unknown", document
        assert document["age_seconds"] < HEARTBEAT_AGE_LIMIT, "heartbeat kept"
        assert document["sessions"]["known"] is False and store["unavailable_since"] > 0
        assert store["last_good_pass_age_seconds"] is not None
        assert "sessions unavailable since" in helper.ctl("status").stdout
        server.start()  # empty: no persistence
        write(server, ("authenticated", new_id()), ("authenticated", new_id()))
        wait_active(helper, counts(authenticated=2), PASS_INTERVAL + SLACK, "counted again after the restart")
        log = helper.log_text()
        assert f"CC0070: sessions in Redis unavailable: 127.0.0.1:{server.port}" in log and "CC0071" in log, log
    finally:
        server.stop()


def test_debug_sleep_does_not_stall_the_heartbeat(make_helper, run_dir, logs):
    server = RedisServer(run_dir / "redis").start()
    try:
        write(server, ("authenticated", new_id()))
        helper = redis_helper(make_helper, server, interval=1)
        logs.allow(r"CC0070")
        sleeper = subprocess.Popen(["redis-cli", "-p", str(server.port), "DEBUG", "SLEEP", "5"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
        try:
            worst = 0.0
            flagged = False
            deadline = time.monotonic() + 4.5
            while time.monotonic() < deadline:
                _, document = helper.status()
                worst = max(worst, document["age_seconds"])
                flagged = flagged or not document["store"]["available"]
                time.sleep(0.1)
            assert worst < HEARTBEAT_AGE_LIMIT, f"heartbeat {worst:.2f} s old while Redis sleeps"
            assert flagged, "a server that does not answer within 1 s makes the store unavailable"
        finally:
            sleeper.wait(15)
        wait_active(helper, counts(authenticated=1), 2 * SLACK, "counted again once Redis answers")
    finally:
        server.stop()


def test_password_from_auth_file_and_wrong_password(make_helper, run_dir, logs):
    secret = "Pa55-" + new_id()
    server = RedisServer(run_dir / "redis", password=secret).start()
    try:
        php_sessions("redis", f"tcp://127.0.0.1:{server.port}?auth={secret}", [("authenticated", new_id())])
        auth_file = run_dir / "redis.pass"
        auth_file.write_text(secret + "\n")
        os.chmod(auth_file, 0o600)
        helper = redis_helper(make_helper, server, extra=f"auth_file = {auth_file}\n")
        sessions, store = store_of(helper)
        assert sessions["active"] == counts(authenticated=1) and store["available"]

        wrong_file = run_dir / "wrong.pass"
        wrong_file.write_text("not-" + secret)
        os.chmod(wrong_file, 0o600)
        logs.allow(r"CC0070")
        wrong = redis_helper(make_helper, server, start=False, name="wrong", extra=f"auth_file = {wrong_file}\n")
        wrong.start(wait=False)
        (code, document), _ = wait_for(wrong.status, lambda v: v[1].get("helper_pid") == wrong.pid, 10,
                                       "the helper with a wrong password publishes")
        assert code == 3 and document["status"] == "sessions_unknown"
        assert document["store"]["available"] is False and document["sessions"]["known"] is False
        log = wrong.log_text()
        assert "authentication failed" in log, log
        outputs = [log, wrong.ctl("status").stdout, wrong.ctl("status", "--json").stdout, helper.log_text()]
        assert not any(secret in text for text in outputs), "the password leaked"
    finally:
        server.stop()


@pytest.mark.parametrize("handler, save_path, names", [
    ("redis", "tcp://127.0.0.1:99999", 'port "99999"'),
    ("redis", "tcp://127.0.0.1:6379?datbase=1", 'unknown parameter "datbase"'),
    ("rediscluster", "seed[]=127.0.0.1", "missing port"),
    ("files", "2;0888;/tmp", 'mode "0888"'),
])
def test_malformed_save_path_exits_2_naming_the_part(make_helper, logs, handler, save_path, names):
    logs.allow(r"CC0005")
    helper = make_helper(start=False, config_extra=f"\n[sessions]\nsave_handler = {handler}\nsave_path = {save_path}\n")
    result = helper.run_once()
    assert result.returncode == 2
    log = helper.log_text()
    assert names in log and f"{helper.config}:" in log, log
    # The same string on the command line.
    command = [str(helper.paths.daemon), "--config", str(helper.config), "--save-handler", handler, "--save-path",
               save_path, "--snapshot", str(helper.snapshot), "--state", str(helper.state), "--once"]
    helper.write_config()
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=clean_env())
    assert result.returncode == 2 and names in result.stderr and "--save-path" in result.stderr, result.stderr


def test_no_password_on_the_command_line(make_helper):
    helper = make_helper(start=False)
    command = [str(helper.paths.daemon), "--config", str(helper.config), "--save-handler", "redis", "--save-path",
               "tcp://127.0.0.1:6379?auth=hunter2", "--snapshot", str(helper.snapshot), "--once"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=clean_env())
    assert result.returncode == 2 and "auth_file" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


# ---------------------------------------------------------------- through Apache

WRK = shutil.which("wrk") or "/usr/bin/wrk"


@pytest.mark.skipif(not os.path.exists(WRK), reason="wrk is needed")
def test_apache_exports_redis_counts_and_serves_through_a_redis_restart(make_helper, make_apache, module_so, run_dir,
                                                                       logs):
    server = RedisServer(run_dir / "redis", notifications="KEA").start()
    try:
        write(server, ("authenticated", new_id()), ("authenticated", new_id()), ("anonymous", new_id()))
        helper = redis_helper(make_helper, server)
        apache = make_apache("prefork", helper, with_module=True,
                             mpm={"StartServers": "4", "MinSpareServers": "4", "MaxSpareServers": "8",
                                  "ServerLimit": "16", "MaxRequestWorkers": "16"})
        logs.allow(r"AH00161")
        logs.allow(r"CC0070")
        client = HttpClient(apache.port)
        wait_for(client.env, lambda e: e["SESSIONS_ACTIVES"] == "2", 2 * SLACK,
                 "SESSIONS_ACTIVES from Redis in $_SERVER")
        login = new_id()
        write(server, ("authenticated", login))
        _, waited = wait_for(client.env, lambda e: e["SESSIONS_ACTIVES"] == "3", NOTIFICATION_DEADLINE,
                             "a login in $_SERVER")
        print(f"login in $_SERVER after {waited:.3f} s")

        wrk = subprocess.Popen([WRK, "-t2", "-c4", "-d8s", "--timeout", "10s", "-H", "Connection: close",
                                f"http://127.0.0.1:{apache.port}/env.php"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=clean_env())
        try:
            time.sleep(1)
            server.kill()
            wait_for(lambda: store_of(helper)[1], lambda store: not store["available"], PASS_INTERVAL + SLACK,
                     "flagged unavailable under load")
            _, document = helper.status()
            assert document["age_seconds"] < HEARTBEAT_AGE_LIMIT, "heartbeat kept while Redis is down"
            env = client.env()
            assert env["COUPECIRCUIT_ETAT"] == "ok", env  # sessions unknown: no state invented
            server.start()
            write(server, ("authenticated", new_id()))
            wait_for(client.env, lambda e: e["SESSIONS_ACTIVES"] == "1", PASS_INTERVAL + 4,
                     "counted again in $_SERVER after the restart")
        finally:
            output, _ = wrk.communicate(timeout=60)
        assert "Non-2xx" not in output and "Socket errors" not in output, output
        assert " requests in " in output, output
    finally:
        server.stop()
