"""coupecircuitd and coupecircuitctl on their own: real PHP session files, the
real helper (inotify, signals, snapshot) and the real control tool."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from harness import clean_env, free_port, port_accepts, wait_for

CLASSES = ("empty", "anonymous", "unknown", "authenticated")
ZERO = {name: 0 for name in CLASSES}
# Session updates travel through inotify and are published within a tenth
# of a second on an idle host; the tests poll, so this bound only matters
# when the host is busy (tests side by side, builds, fuzzers).
INOTIFY_DEADLINE = 10.0
# A SIGHUP, a helper stopping or a snapshot re-created: seen within this.
SIGNAL_DEADLINE = 10.0


def counts(**values: int) -> dict:
    return {**ZERO, **values}


def sessions_of(helper) -> dict:
    code, document = helper.status()
    assert code in (0, 1), f"status exit {code}: {document}"
    return document["sessions"]


def wait_sessions(helper, active: dict, inactive: dict | None = None, timeout: float = INOTIFY_DEADLINE,
                  what: str = "session counts") -> dict:
    # "unread": non-empty files already inactive when the helper first saw
    # them (stat'ed, never read).
    inactive = {"unread": 0, **ZERO, **(inactive or {})}

    def matches(sessions: dict) -> bool:
        return sessions["active"] == active and sessions["inactive"] == inactive

    sessions, _ = wait_for(lambda: sessions_of(helper), matches, timeout,
                           f"{what}: active {active}, inactive {inactive}")
    assert sessions["active_authenticated"] == active["authenticated"]
    assert sessions["files_seen"] == sum(active.values()) + sum(inactive.values())
    return sessions


def age(path, minutes: float) -> None:
    when = time.time() - minutes * 60
    os.utime(path, (when, when))


def read_state(helper) -> dict:
    return json.loads(helper.state.read_text())


# ---------------------------------------------------------------- counting

def test_counts_each_class_exactly(make_helper):
    helper = make_helper(start=False)
    for kind, number in (("authenticated", 2), ("anonymous", 1), ("unknown", 1), ("empty", 1)):
        for _ in range(number):
            helper.session(kind)
    # Files the helper must ignore: not named sess_*, or not a regular file.
    (helper.session_dir / "README").write_text("vzn_x|a:1:{s:7:\"storage\";s:1:\"x\";}")
    os.mkdir(helper.session_dir / "sess_directory")
    os.symlink(helper.session_dir / "README", helper.session_dir / "sess_symlink")

    document = helper.start()
    assert document["sessions"]["active"] == counts(authenticated=2, anonymous=1, unknown=1, empty=1)

    # Sessions created while it runs arrive through inotify.
    helper.session("authenticated")
    helper.session("anonymous")
    helper.session("empty")
    sessions = wait_sessions(helper, counts(authenticated=3, anonymous=2, unknown=1, empty=2))
    assert sessions["active_authenticated"] == 3
    assert sessions["scan_failed"] is False

    code, document = helper.status()
    assert code == 0 and document["status"] == "ok"
    assert document["helper_pid"] == helper.pid
    assert set(document["load"]) == {"1", "5", "15"}
    for value in document["load"].values():
        assert float(value) >= 0 and value.count(".") == 1 and len(value.split(".")[1]) == 2, value
    text = helper.ctl("status")
    assert text.returncode == 0, text.stdout + text.stderr
    assert "3 active authenticated" in text.stdout


def test_sessions_aged_added_rewritten_deleted_within_deadline(helper):
    first = helper.session("authenticated")
    second = helper.session("authenticated")
    visitor = helper.session("anonymous")
    wait_sessions(helper, counts(authenticated=2, anonymous=1))

    # Older than active_minutes (24): inactive. Moving the mtime back is a
    # change the helper sees; the file is then inactive when examined, so
    # it is stat'ed, not read ("unread").
    age(first, 30)
    wait_sessions(helper, counts(authenticated=1, anonymous=1), {"unread": 1}, what="aged session")

    third = helper.session("authenticated")
    wait_sessions(helper, counts(authenticated=2, anonymous=1), {"unread": 1}, what="new session")

    # The visitor logs in: PHP rewrites the same file.
    helper.session("authenticated", session_id=visitor.name[len("sess_"):])
    wait_sessions(helper, counts(authenticated=3), {"unread": 1}, what="visitor logged in")

    second.unlink()
    wait_sessions(helper, counts(authenticated=2), {"unread": 1}, what="deleted session")

    first.unlink()
    wait_sessions(helper, counts(authenticated=2), what="deleted inactive session")

    age(third, 30)
    wait_sessions(helper, counts(authenticated=1), {"unread": 1}, what="second aged session")
    os.utime(third, None)  # used again: active again
    wait_sessions(helper, counts(authenticated=2), what="session used again")


def test_sessions_age_out_without_any_file_event(make_helper):
    """Nothing touches the file: the helper's own clock moves it out of the
    active window (active_minutes = 1)."""
    helper = make_helper(active_minutes=1)
    session = helper.session("authenticated")
    window = 6.0  # seconds left in the active window: it must be seen active before it leaves
    leaves_at = time.time() + window
    age(session, (60 - window) / 60)
    sessions = wait_sessions(helper, counts(authenticated=1), timeout=window - 1.0,
                             what=f"session active for {window:.0f} more seconds")
    assert sessions["active_minutes"] == 1
    # The helper ages sessions once a second; a busy host may delay that tick.
    wait_sessions(helper, ZERO, counts(authenticated=1), timeout=max(0.0, leaves_at + 5.0 - time.time()),
                  what="session aged out by the clock alone")
    assert time.time() >= leaves_at - 1.0, "aged out before its minute was over"


# ---------------------------------------------------------------- manual cut

def test_cut_on_off_round_trip(helper):
    helper.session("authenticated")
    before = time.time()
    result = helper.ctl_ok("cut", "on", "--reason", "Maintenance BDD")
    assert "applied" in result.stdout

    code, document = helper.status()
    assert code == 1 and document["status"] == "cut"
    assert document["cut"]["active"] is True
    assert document["cut"]["reason"] == "Maintenance BDD"
    assert before - 2 <= document["cut"]["since"] <= time.time() + 2
    text = helper.ctl("status")
    assert text.returncode == 1
    assert "Maintenance BDD" in text.stdout
    assert read_state(helper)["cut"]["active"] is True

    result = helper.ctl_ok("cut", "off")
    assert "applied" in result.stdout
    code, document = helper.status()
    assert code == 0 and document["status"] == "ok"
    assert document["cut"] == {"active": False, "reason": "", "since": 0}
    assert document["sessions"]["active_authenticated"] == 1
    assert read_state(helper)["cut"]["active"] is False


# ---------------------------------------------------------------- thresholds

def threshold_list(helper) -> dict:
    return json.loads(helper.ctl_ok("threshold", "list", "--json").stdout)


def test_thresholds_set_unset_list_global_and_vhost(helper):
    helper.session("authenticated")
    assert threshold_list(helper) == {"global": {}, "vhosts": {}}

    assert "applied" in helper.ctl_ok("threshold", "set", "sessions", "500").stdout
    helper.ctl_ok("threshold", "set", "load", "900.5")
    helper.ctl_ok("threshold", "set", "sessions", "200", "--vhost", "WWW.Example.ORG")
    helper.ctl_ok("threshold", "set", "load", "3", "--vhost", "b.test")
    expected = {"global": {"sessions": 500, "load": "900.50"},
                "vhosts": {"www.example.org": {"sessions": 200}, "b.test": {"load": "3.00"}}}
    assert threshold_list(helper) == expected
    code, document = helper.status()
    assert code == 0 and document["status"] == "ok"
    assert document["thresholds"] == expected
    text = helper.ctl_ok("threshold", "list").stdout
    assert "vhost www.example.org: sessions 200" in text
    assert "global: sessions 500, load 900.50" in text

    # A global threshold reached: status says so (exit 1).
    helper.ctl_ok("threshold", "set", "sessions", "1")
    code, document = helper.status()
    assert code == 1 and document["status"] == "over_threshold"
    helper.ctl_ok("threshold", "unset", "sessions")
    code, document = helper.status()
    assert code == 0 and document["status"] == "ok"
    helper.ctl_ok("threshold", "unset", "load")

    helper.ctl_ok("threshold", "unset", "sessions", "--vhost", "www.example.org")
    helper.ctl_ok("threshold", "unset", "load", "--vhost", "B.TEST")
    helper.ctl_ok("threshold", "unset", "load", "--vhost", "never-set.test")  # nothing to remove: no error
    assert threshold_list(helper) == {"global": {}, "vhosts": {}}
    code, document = helper.status()
    assert code == 0 and document["thresholds"] == {"global": {}, "vhosts": {}}


# ---------------------------------------------------------------- bad usage

BAD_ARGUMENTS = [
    [],
    ["bogus"],
    ["cut"],
    ["cut", "maybe"],
    ["cut", "on", "--reason"],
    ["cut", "on", "--reason", "x" * 200],
    ["cut", "on", "--reason", "tab\there"],
    ["cut", "off", "--bogus"],
    ["threshold"],
    ["threshold", "set"],
    ["threshold", "set", "sessions"],
    ["threshold", "set", "sessions", "abc"],
    ["threshold", "set", "sessions", "-1"],
    ["threshold", "set", "sessions", "1.5"],
    ["threshold", "set", "sessions", "0"],  # a threshold of 0 is always reached: refused everywhere
    ["threshold", "set", "load", "0"],
    ["threshold", "set", "load", "0.00"],
    ["threshold", "set", "load", "1.234"],
    ["threshold", "set", "load", "abc"],
    ["threshold", "set", "cpu", "1"],
    ["threshold", "set", "sessions", "5", "--vhost", "bad name"],
    ["threshold", "set", "sessions", "5", "--vhost", ""],
    ["threshold", "unset"],
    ["threshold", "unset", "cpu"],
    ["threshold", "list", "extra"],
    ["status", "--bogus"],
    ["--max-age", "abc", "status"],
    ["--wait", "-1", "cut", "off"],
]


def test_bad_arguments_exit_2_and_leave_the_state_file_untouched(helper):
    helper.ctl_ok("cut", "on", "--reason", "garder")
    helper.ctl_ok("threshold", "set", "sessions", "12", "--vhost", "a.test")
    before_bytes = helper.state.read_bytes()
    before_stat = helper.state.stat()
    # The helper writes its history (snapshot.history, through
    # snapshot.history.tmp) every 10 s: both may appear or vanish at any time.
    history = helper.snapshot.name + ".history"
    helper_files = {history, history + ".tmp"}

    def control_files():
        return sorted(name for name in os.listdir(helper.control_dir) if name not in helper_files)

    before_files = control_files()

    for arguments in BAD_ARGUMENTS:
        result = helper.ctl(*arguments)
        assert result.returncode == 2, f"{arguments}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        assert "usage" in (result.stdout + result.stderr).lower(), f"{arguments}: no usage text"
        assert helper.state.read_bytes() == before_bytes, f"{arguments} changed the state file"
        after = helper.state.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before_stat.st_ino, before_stat.st_mtime_ns), arguments
        assert control_files() == before_files, f"{arguments} left files behind"

    code, document = helper.status()
    assert code == 1 and document["cut"]["reason"] == "garder"


def test_reason_not_utf8_is_a_usage_error(helper):
    """The state file is JSON: a reason that is not UTF-8 is bad usage (exit 2),
    never a crash, and nothing is written."""
    helper.ctl_ok("cut", "on", "--reason", "ok")
    before = helper.state.read_bytes()
    result = helper.ctl("cut", "on", "--reason", "op\udce9ration")  # b"op\xe9ration": Latin-1, not UTF-8
    assert helper.state.read_bytes() == before
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def test_vhost_override_limit(helper):
    names = [f"vhost{i:02d}.test" for i in range(64)]
    for number, name in enumerate(names, start=1):
        helper.ctl_ok("--wait", "5", "threshold", "set", "sessions", str(number), "--vhost", name)
    listed = threshold_list(helper)["vhosts"]
    assert listed == {name: {"sessions": number} for number, name in enumerate(names, start=1)}
    before = helper.state.read_bytes()
    result = helper.ctl("threshold", "set", "sessions", "99", "--vhost", "one-too-many.test")
    assert result.returncode == 1 and "nothing was changed" in result.stderr, result.stdout + result.stderr
    assert helper.state.read_bytes() == before
    # Changing one of the 64 is still possible.
    helper.ctl_ok("threshold", "set", "load", "2.5", "--vhost", names[-1])
    code, document = helper.status()
    assert code == 0 and len(document["thresholds"]["vhosts"]) == 64
    assert document["thresholds"]["vhosts"][names[-1]] == {"sessions": 64, "load": "2.50"}


# ---------------------------------------------------------------- helper life cycle

def test_cut_persists_without_helper_and_applies_when_it_starts(make_helper):
    helper = make_helper(start=False)
    code, document = helper.status()
    assert code == 3 and document["status"] == "missing"

    result = helper.ctl_ok("cut", "on", "--reason", "avant demarrage")
    assert "not running" in result.stdout and "applies when the helper starts" in result.stdout, result.stdout
    state = read_state(helper)
    assert state["cut"]["active"] is True and state["cut"]["reason"] == "avant demarrage"

    helper.start()
    code, document = helper.status()
    assert code == 1 and document["status"] == "cut"
    assert document["cut"]["reason"] == "avant demarrage"
    assert "CC0030" in helper.log_text() and "cut on" in helper.log_text()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_keeps_the_cut(helper, how):
    helper.session("authenticated")
    helper.ctl_ok("cut", "on", "--reason", f"avant {how}")
    helper.ctl_ok("threshold", "set", "sessions", "40", "--vhost", "a.test")
    first_pid = helper.pid

    if how == "sigterm":
        assert helper.stop() == 0
        assert "CC0002" in helper.log_text()
    else:
        helper.kill9()
    # Nobody publishes any more: the snapshot goes stale (exit 3).
    (code, document), _ = wait_for(lambda: helper.status(max_age=1), lambda v: v[0] == 3, SIGNAL_DEADLINE,
                                   "status reports the stale snapshot")
    assert document["status"] == "stale"

    helper.start()
    code, document = helper.status()
    assert helper.pid != first_pid and document["helper_pid"] == helper.pid
    assert code == 1 and document["status"] == "cut"
    assert document["cut"]["reason"] == f"avant {how}"
    assert document["thresholds"]["vhosts"] == {"a.test": {"sessions": 40}}
    assert document["sessions"]["active_authenticated"] == 1

    helper.ctl_ok("cut", "off")
    assert helper.status()[0] == 0


def test_snapshot_removed_is_recreated(helper, logs):
    logs.allow(r"CC0021")
    helper.session("authenticated")
    wait_sessions(helper, counts(authenticated=1))
    helper.snapshot.unlink()
    code, document = helper.status()
    assert code == 3 and document["status"] == "missing"
    (code, document), _ = wait_for(helper.status, lambda v: v[0] == 0, SIGNAL_DEADLINE,
                                   "snapshot re-created")
    assert document["sessions"]["active_authenticated"] == 1 and document["helper_pid"] == helper.pid
    assert "CC0021" in helper.log_text()
    assert (helper.snapshot.stat().st_mode & 0o777) == 0o644


def test_once_publishes_and_exits(make_helper):
    helper = make_helper(start=False)
    helper.session("authenticated")
    helper.session("authenticated")
    helper.session("anonymous")
    started = time.monotonic()
    result = helper.run_once()
    assert result.returncode == 0, helper.log_text()
    assert time.monotonic() - started < 10
    code, document = helper.status(max_age=30)
    assert code == 0 and document["status"] == "ok"
    assert document["sessions"]["active"] == counts(authenticated=2, anonymous=1)
    # Nothing stays behind to keep the snapshot fresh.
    (code, document), _ = wait_for(lambda: helper.status(max_age=1), lambda v: v[0] == 3, SIGNAL_DEADLINE,
                                   "snapshot of --once goes stale")
    assert document["status"] == "stale"


def test_sighup_reloads_the_configuration(make_helper, logs):
    # The session is 10 minutes old before the helper starts: its first scan
    # reads it (active within 24 minutes). Aged while the helper runs, the
    # counts would not change (active either way) and so could not tell
    # whether that inotify event was handled before the SIGHUP; handled
    # after the reload, the file is already out of the 5-minute window and
    # only stat'ed ("unread"), not known as authenticated.
    helper = make_helper(active_minutes=24, start=False)
    session = helper.session("authenticated")
    age(session, 10)
    helper.start()
    sessions = wait_sessions(helper, counts(authenticated=1))
    assert sessions["active_minutes"] == 24
    pid = helper.pid

    helper.write_config(active_minutes=5)
    helper.signal(signal.SIGHUP)
    # The scanner keeps what it read: the session is still known as
    # authenticated once out of the shorter window.
    sessions = wait_sessions(helper, ZERO, counts(authenticated=1), what="reload with active_minutes = 5")
    assert sessions["active_minutes"] == 5
    wait_for(helper.log_text, lambda text: "CC0003" in text, SIGNAL_DEADLINE, "CC0003 (reloaded) logged")

    # A broken file is refused and the running configuration kept.
    logs.allow(r"CC0004")
    helper.write_config(active_minutes=5, extra="[sessions]\nactive_minutes = banana\n")
    helper.signal(signal.SIGHUP)
    wait_for(helper.log_text, lambda text: "CC0004" in text, SIGNAL_DEADLINE, "CC0004 (reload failed) logged")
    assert helper.running() and helper.pid == pid
    sessions = sessions_of(helper)
    assert sessions["active_minutes"] == 5 and sessions["inactive"]["authenticated"] == 1

    helper.write_config(active_minutes=30)
    helper.signal(signal.SIGHUP)
    sessions = wait_sessions(helper, counts(authenticated=1), what="reload with active_minutes = 30")
    assert sessions["active_minutes"] == 30


def test_corrupted_state_file_keeps_the_last_good_state(helper, logs):
    logs.allow(r"CC0031")
    helper.ctl_ok("cut", "on", "--reason", "bon etat")
    helper.ctl_ok("threshold", "set", "sessions", "42")
    pid = helper.pid

    helper.state.write_text('{"version": 1, "cut": {"active": fal')
    wait_for(helper.log_text, lambda text: "CC0031" in text, INOTIFY_DEADLINE, "CC0031 (state invalid) logged")
    (code, document), _ = wait_for(helper.status, lambda v: v[1].get("state_file_invalid") is True,
                                   INOTIFY_DEADLINE, "status reports the invalid state file")
    assert code == 1 and document["status"] == "cut"
    assert document["cut"]["reason"] == "bon etat"
    assert document["thresholds"]["global"] == {"sessions": 42}
    assert "WARNING" in helper.ctl("status").stdout

    corrupted = helper.state.read_bytes()
    for arguments in (["cut", "off"], ["cut", "on"], ["threshold", "set", "sessions", "3"],
                      ["threshold", "unset", "sessions"], ["threshold", "set", "load", "2", "--vhost", "a.test"]):
        result = helper.ctl(*arguments)
        assert result.returncode == 1, f"{arguments}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        assert "nothing was changed" in result.stderr, result.stderr
        assert helper.state.read_bytes() == corrupted, f"{arguments} modified the corrupted state file"
    assert helper.ctl("threshold", "list").returncode == 1
    assert helper.running() and helper.pid == pid

    # Removing the file is the documented way out: back to the default state.
    helper.state.unlink()
    (code, document), _ = wait_for(helper.status, lambda v: v[1].get("state_file_invalid") is False,
                                   INOTIFY_DEADLINE, "state file removed")
    assert code == 0 and document["cut"]["active"] is False
    helper.ctl_ok("cut", "on", "--reason", "de nouveau")
    assert helper.status()[1]["cut"]["reason"] == "de nouveau"


def test_corrupted_state_file_at_start(make_helper, logs):
    logs.allow(r"CC0031")
    helper = make_helper(start=False)
    helper.state.write_text("not json at all")
    helper.start()
    code, document = helper.status()
    assert code == 0 and document["state_file_invalid"] is True
    assert document["cut"]["active"] is False
    assert "CC0031" in helper.log_text()
    assert helper.ctl("cut", "on").returncode == 1
    assert helper.state.read_text() == "not json at all"


# ---------------------------------------------------------------- reload is all or nothing

def config_driven(helper, snapshot, state, extra: str = "") -> None:
    """The helper takes its paths from the configuration file alone (no
    command-line overrides), so that a reload can move them."""
    text = (f"[sessions]\ndir = {helper.session_dir}\n\n[snapshot]\npath = {snapshot}\n\n"
            f"[state]\npath = {state}\n\n[log]\nlevel = info\n{extra}")
    temporary = helper.config.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, helper.config)
    helper.command = lambda once=False: [str(helper.paths.daemon), "--config", str(helper.config),
                                         "--once" if once else "--foreground"]


def agent_answer(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
        return connection.recv(100).decode().strip()


def test_failed_reload_keeps_every_resource_and_the_cut(make_helper, logs):
    """A reload whose snapshot cannot be created (with a new state path and a
    new agent port) changes nothing: the old agent port answers, the old state
    file is still the one followed, and the manual cut stays on."""
    logs.allow(r"CC0004")
    helper = make_helper(start=False)
    first_port, second_port = free_port(), free_port()
    agent = "\n[agent]\nport = {}\n"
    config_driven(helper, helper.snapshot, helper.state, agent.format(first_port))
    helper.start()
    helper.ctl_ok("cut", "on", "--reason", "garder")
    assert agent_answer(first_port) == "drain"

    blocker = helper.workdir / "not-a-directory"
    blocker.write_text("")
    other_state = make_dir_for(helper.workdir / "other") / "state"
    config_driven(helper, blocker / "snapshot", other_state, agent.format(second_port))
    helper.signal(signal.SIGHUP)
    wait_for(helper.log_text, lambda text: "CC0004" in text, SIGNAL_DEADLINE, "CC0004 (reload failed) logged")

    assert agent_answer(first_port) == "drain", "the old agent port must stay bound"
    assert not port_accepts(second_port), "the new agent port must not be opened"
    # The old state file is still followed: a change there is published, and
    # the cut is kept through it.
    helper.ctl_ok("threshold", "set", "sessions", "77")
    code, document = helper.status()
    assert code == 1 and document["status"] == "cut" and document["cut"]["reason"] == "garder"
    assert document["thresholds"]["global"] == {"sessions": 77}
    assert "manual cut off" not in helper.log_text()

    # A new agent port that cannot be bound fails the reload the same way.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy_port = taken.getsockname()[1]
        config_driven(helper, helper.snapshot, helper.state, agent.format(busy_port))
        helper.signal(signal.SIGHUP)
        wait_for(helper.log_text, lambda text: text.count("CC0004") >= 2, SIGNAL_DEADLINE,
                 "second CC0004 logged")
        assert agent_answer(first_port) == "drain", "the old listener is kept when the new port is busy"

    # And a good reload still moves everything.
    config_driven(helper, helper.snapshot, helper.state, agent.format(second_port))
    helper.signal(signal.SIGHUP)
    wait_for(lambda: port_accepts(second_port), bool, SIGNAL_DEADLINE, "agent moved to the new port")
    assert agent_answer(second_port) == "drain"
    wait_for(lambda: port_accepts(first_port), lambda accepts: not accepts, SIGNAL_DEADLINE,
             "old agent port closed")


def make_dir_for(path):
    path.mkdir(mode=0o755, exist_ok=True)
    return path


def test_state_directory_replaced_is_followed(make_helper):
    """mv state state.old; mkdir state; coupecircuitctl cut on: published
    without a SIGHUP (the watch follows the path, the periodic pass reads a
    state file whose identity changed)."""
    helper = make_helper(start=False)
    state_dir = make_dir_for(helper.workdir / "state")
    helper.state = state_dir / "state"
    config_driven(helper, helper.snapshot, helper.state)
    helper.start()
    helper.ctl_ok("cut", "on", "--reason", "avant")
    helper.ctl_ok("cut", "off")

    os.rename(state_dir, helper.workdir / "state.old")
    os.mkdir(state_dir, 0o755)
    result = helper.ctl_ok("--wait", "5", "cut", "on", "--reason", "apres")
    assert "applied" in result.stdout, result.stdout
    code, document = helper.status()
    assert code == 1 and document["cut"]["reason"] == "apres"
    # Watched again: the new directory is among the helper's inotify watches
    # (asked of the kernel rather than timed: a busy host may delay any tick).
    wait_for(helper.log_text, lambda text: "CC0033" in text, SIGNAL_DEADLINE,
             "state directory watched again (CC0033)")
    new_inode = os.stat(state_dir).st_ino
    wait_for(lambda: inotify_watched_inodes(helper.pid), lambda inodes: new_inode in inodes, SIGNAL_DEADLINE,
             "the new state directory in the helper's inotify watches")
    helper.ctl_ok("cut", "off")
    assert helper.status()[1]["cut"]["active"] is False


def inotify_watched_inodes(pid: int) -> set[int]:
    """Inodes watched by the inotify descriptors of process pid (proc(5), fdinfo)."""
    inodes = set()
    for fdinfo in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fdinfo}") as file:
                text = file.read()
        except FileNotFoundError:
            continue
        inodes.update(int(line.split(" ino:")[1].split()[0], 16) for line in text.splitlines()
                      if line.startswith("inotify wd:"))
    return inodes


def test_closed_stderr_pipe_does_not_kill_the_helper(make_helper):
    """A log line written to a pipe nobody reads any more fails with EPIPE
    instead of killing the helper with SIGPIPE."""
    helper = make_helper(start=False)
    process = subprocess.Popen(helper.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=clean_env(), start_new_session=True)
    try:
        wait_for(helper.status, lambda v: v[1].get("helper_pid") == process.pid, 10.0, "helper publishes")
        process.stderr.close()
        process.send_signal(signal.SIGHUP)  # logs CC0003 to the closed pipe
        helper.ctl_ok("cut", "on", "--reason", "toujours la")  # published: the helper survived
        assert process.poll() is None, f"helper died with {process.returncode}"
    finally:
        process.terminate()
        process.wait(10)
