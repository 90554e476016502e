"""Graceful degradation in Apache, with the real module, Apache, PHP and
coupecircuitd: hysteresis and hold time shared by every child, shedding
(CoupeCircuitAction), the load-balancer health endpoint, the HAProxy agent of
coupecircuitd, and the status pages (HTML, JSON, Prometheus, mod_status).

Everything binds to 127.0.0.1. Timing assertions compare the test's
CLOCK_MONOTONIC with the module's CLOCK_MONOTONIC_COARSE: a request observed
between t_send and t_recv was computed within that interval (give or take
COARSE_SLACK).
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

import prometheus_parser
from harness import HttpClient, Response, VirtualHost, WorkerThreads, free_port, php_session, wait_for

MODULE_WARNING = r"\[coupecircuit:warn\].*CC03\d\d"
# The coarse clock lags the precise one by at most a tick or two.
COARSE_SLACK = 0.05
TOKEN = "cc-health-" + secrets.token_hex(16)

# A maintenance page with bytes that must come back unchanged (UTF-8, quotes,
# a percent sign, a line without a final newline).
MAINTENANCE_PAGE = ('<!doctype html>\n<html lang="fr"><meta charset="utf-8"><title>Maintenance</title>\n'
                    "<p>Trop de connexions — réessayez dans 2 minutes (100 % des serveurs occupés).</p>"
                    "\n<p class='x'>\"merci\"</p>").encode("utf-8")


# ---------------------------------------------------------------- helpers

def timed(client: HttpClient, path: str, **kwargs) -> tuple[float, float, Response]:
    t_send = time.monotonic()
    response = client.request(path, **kwargs)
    return t_send, time.monotonic(), response


def wait_env(client: HttpClient, condition, timeout: float, what: str, host: str | None = None) -> dict:
    env, _ = wait_for(lambda: client.env(host=host), condition, timeout, what)
    return env


def etat_is(etat: str):
    return lambda env: env["COUPECIRCUIT_ETAT"] == etat


def health(client: HttpClient, path: str = "/health", token: str | None = None) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    return client.request(path, headers=headers)


def wait_health(client: HttpClient, status: int, body: bytes, timeout: float, what: str, path: str = "/health",
                token: str | None = None) -> Response:
    reply, _ = wait_for(lambda: health(client, path, token), lambda r: (r.status, r.body) == (status, body),
                        timeout, what)
    return reply


def login(apache) -> tuple[HttpClient, str]:
    """A user who logs in through Apache (real PHP session); returns the client
    holding the PHPSESSID cookie and the session id."""
    user = apache.client()
    reply = user.request("/login.php")
    assert reply.status == 200, reply.body
    session_id = reply.json()["session_id"]
    assert user.cookies.get("PHPSESSID") == session_id
    return user, session_id


def logout(user: HttpClient) -> None:
    reply = user.request("/logout.php")
    assert reply.status == 200 and reply.json()["destroyed"] is True, reply.body


@dataclass
class Observation:
    t_send: float
    t_recv: float
    status: int
    env: dict | None

    def __repr__(self) -> str:
        where = f"pid {self.env['_pid']}, {self.sessions} sessions, {self.etat}" if self.env else "no JSON"
        return f"<{self.status} sent {self.t_send:.3f} received {self.t_recv:.3f}: {where}>"

    @property
    def etat(self) -> str | None:
        return None if self.env is None else self.env["COUPECIRCUIT_ETAT"]

    @property
    def sessions(self) -> str | None:
        return None if self.env is None else self.env["SESSIONS_ACTIVES"]


class Poller(WorkerThreads):
    """Threads requesting /env.php without pause (a new connection each, so
    that several Apache children answer); every answer is kept with the time
    it was sent and received."""

    def __init__(self, port: int, threads: int = 3, host: str | None = None):
        super().__init__(threads)
        self.port = port
        self.host = host
        self.observations: list[Observation] = []
        self.errors: list[str] = []

    def _loop(self) -> None:
        client = HttpClient(self.port, host=self.host, timeout=30.0)
        while not self.stop_event.is_set():
            t_send = time.monotonic()
            try:
                reply = client.request("/env.php")
                env = reply.json() if reply.status == 200 else None
                observation = Observation(t_send, time.monotonic(), reply.status, env)
            except (OSError, http.client.HTTPException, ValueError) as error:
                with self.lock:
                    self.errors.append(f"{type(error).__name__}: {error}")
                continue
            with self.lock:
                self.observations.append(observation)
            self.stop_event.wait(0.005)

    def snapshot(self) -> list[Observation]:
        with self.lock:
            return list(self.observations)

    def wait(self, condition, timeout: float, what: str, after: float = 0.0) -> Observation:
        """The first observation sent at or after `after` that satisfies
        condition (in order of reception), waiting for it at most timeout."""
        def first():
            return next((o for o in self.snapshot() if o.t_send >= after and condition(o)), None)
        found, _ = wait_for(first, lambda o: o is not None, timeout, what)
        return found


# ======================================================================
# Hysteresis and hold time, shared by every prefork child
# ======================================================================

SEVERAL_CHILDREN = {"StartServers": "4", "MinSpareServers": "4", "MaxSpareServers": "8"}


def test_hysteresis_hold_shared_by_all_children(helper, make_apache, module_so):
    """CoupeCircuitThreshold sessions 3 1, CoupeCircuitHold 4, logins and
    logouts through Apache. Three threads request /env.php all along (new
    connection each: several children answer) and every answer is checked
    against the time it was computed:
      * the first trip is immediate: no answer computed with 3 sessions says ok;
      * with 1 session (<= RELEASE) right after the trip, it stays surcharge
        until Hold has passed since the trip, then it is released;
      * released, it trips again at once with 3 sessions (Hold delays only
        the release);
      * with 2 sessions (between RELEASE and TRIP) it stays surcharge long
        after Hold; with 1 it is released at once (Hold long gone);
      * once any child answered a new state, no answer sent afterwards (by
        whichever child) gives the old one."""
    hold = 4.0
    apache = make_apache("prefork", helper, with_module=True, mpm=SEVERAL_CHILDREN,
                         server_lines=["CoupeCircuitThreshold sessions 3 1", f"CoupeCircuitHold {hold:g}"])
    watcher = apache.client()
    users = [login(apache)[0] for _ in range(2)]
    wait_env(watcher, lambda e: e["SESSIONS_ACTIVES"] == "2" and e["COUPECIRCUIT_ETAT"] == "ok", 5.0,
             "2 sessions, ok")

    # The first trip: a single client, so that the request that trips is known.
    users.append(login(apache)[0])
    history: list[Observation] = []

    def probe() -> Observation:
        t_send, t_recv, reply = timed(watcher, "/env.php")
        assert reply.status == 200, reply.body
        history.append(Observation(t_send, t_recv, reply.status, reply.json()))
        return history[-1]

    tripping, _ = wait_for(probe, lambda o: o.etat == "surcharge", 5.0, "trips at 3 sessions")
    for observation in history:
        if observation.sessions == "3":
            assert observation.etat == "surcharge", f"computed with 3 sessions but not tripped: {observation}"
        else:
            assert observation.etat == "ok", observation
    assert tripping.sessions == "3"
    trip_lower, trip_upper = tripping.t_send - COARSE_SLACK, tripping.t_recv

    poller = Poller(apache.port).start()
    try:
        # Under RELEASE at once: held until trip + hold.
        logout(users.pop())
        logout(users.pop())
        held = poller.wait(lambda o: o.sessions == "1", 5.0, "1 session seen", after=trip_upper)
        assert held.etat == "surcharge", f"released before the hold: {held}"
        assert held.t_recv < trip_lower + hold, "the machine was too slow to see the hold at work"
        released = poller.wait(lambda o: o.etat == "ok", hold + 10.0, "released after the hold")
        release_lower = min(o.t_send for o in poller.snapshot() if o.etat == "ok") - COARSE_SLACK
        release_upper = released.t_recv

        # Released: a trip does not wait for the hold.
        users += [login(apache)[0] for _ in range(2)]
        retripped = poller.wait(lambda o: o.sessions == "3", 5.0, "3 sessions seen", after=release_upper)
        assert retripped.etat == "surcharge", f"3 sessions within the hold after a release, not tripped: {retripped}"
        assert retripped.t_recv < release_lower + hold, "the machine was too slow to see a trip within the hold"

        # Between RELEASE and TRIP: stays surcharge well after the hold.
        logout(users.pop())
        poller.wait(lambda o: o.sessions == "2", 5.0, "2 sessions seen", after=retripped.t_recv)
        beyond = retripped.t_recv + hold + 1.5
        poller.wait(lambda o: o.t_send > beyond, beyond - time.monotonic() + 10.0, "answers after the hold")

        # At RELEASE, the hold long gone: released at once.
        t_logout = time.monotonic()
        logout(users.pop())
        final = poller.wait(lambda o: o.sessions == "1", 5.0, "1 session seen", after=t_logout)
        assert final.etat == "ok", f"1 session, hold over, still {final.etat}"
        poller.wait(lambda o: o.t_send > final.t_recv + 1.0, 10.0, "a second of answers")
    finally:
        poller.stop()

    observations = poller.snapshot()
    assert poller.errors == [], poller.errors[:5]
    assert all(o.status == 200 for o in observations), [o for o in observations if o.status != 200][:5]

    def all_say(etat: str, what: str, sent_after: float = float("-inf"), received_before: float = float("inf"),
                sessions: str | None = None) -> int:
        window = [o for o in observations if o.t_send > sent_after and o.t_recv < received_before
                  and (sessions is None or o.sessions == sessions)]
        wrong = [o for o in window if o.etat != etat]
        assert wrong == [], f"{what}: {len(wrong)} of {len(window)} answers differ, e.g. {wrong[:3]}"
        return len(window)

    # Tripped: every child says surcharge until trip + hold, whatever the sessions.
    assert all_say("surcharge", "held after the trip", received_before=trip_lower + hold) > 0
    # Released: once one child said ok, every later answer with 1 session says ok (the logins may
    # follow the release too closely for any)...
    all_say("ok", "released", sent_after=release_upper + COARSE_SLACK, received_before=retripped.t_send,
            sessions="1")
    # ...and every answer computed with 3 sessions says surcharge, within the hold too.
    assert all_say("surcharge", "tripped again at once", sent_after=release_upper + COARSE_SLACK,
                   received_before=t_logout, sessions="3") > 0
    # Tripped again: every later answer says surcharge until the last logout,
    # and with 2 sessions (between RELEASE and TRIP) long after the hold.
    assert all_say("surcharge", "tripped again", sent_after=retripped.t_recv + COARSE_SLACK,
                   received_before=t_logout) > 0
    assert all_say("surcharge", "between RELEASE and TRIP, after the hold", sent_after=beyond,
                   received_before=t_logout, sessions="2") > 0
    # Released for good.
    assert all_say("ok", "released at RELEASE", sent_after=final.t_recv + COARSE_SLACK) > 0

    pids = {o.env["_pid"] for o in observations}
    assert len(pids) >= 2, f"only one Apache child answered ({pids}): the sharing was not exercised"


def test_runtime_override_releases_at_90_percent(helper, make_apache, module_so):
    """A runtime override has no RELEASE of its own: it is 90 % of its value.
    With `threshold set sessions 20 --vhost`, 20 sessions trip, 19 stay
    surcharge, 18 release (Hold 0); the other vhost, with its directive
    only, never trips."""
    apache = make_apache("prefork", helper, with_module=True, vhosts=[
        VirtualHost("override.test", ["CoupeCircuitThreshold sessions 500 1", "CoupeCircuitHold 0"]),
        VirtualHost("directive.test", ["CoupeCircuitThreshold sessions 500 1", "CoupeCircuitHold 0"])])
    client = apache.client()
    helper.ctl_ok("threshold", "set", "sessions", "20", "--vhost", "override.test")
    wait_env(client, lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "20", 5.0, "override seen", host="override.test")
    sessions = [helper.session("authenticated") for _ in range(19)]
    wait_env(client, lambda e: e["SESSIONS_ACTIVES"] == "19", 5.0, "19 sessions", host="override.test")
    assert client.env(host="override.test")["COUPECIRCUIT_ETAT"] == "ok", "19 < TRIP 20 must not trip"
    sessions.append(helper.session("authenticated"))
    wait_env(client, lambda e: e["SESSIONS_ACTIVES"] == "20" and e["COUPECIRCUIT_ETAT"] == "surcharge", 5.0,
             "trips at 20", host="override.test")
    sessions.pop().unlink()
    wait_env(client, lambda e: e["SESSIONS_ACTIVES"] == "19", 5.0, "back to 19", host="override.test")
    for _ in range(10):
        assert client.env(host="override.test")["COUPECIRCUIT_ETAT"] == "surcharge", "19 > RELEASE 18"
    sessions.pop().unlink()
    wait_env(client, lambda e: e["SESSIONS_ACTIVES"] == "18" and e["COUPECIRCUIT_ETAT"] == "ok", 5.0,
             "released at 18 = 90 % of 20", host="override.test")
    env = client.env(host="directive.test")
    assert env["COUPECIRCUIT_ETAT"] == "ok" and env["SEUIL_SESSIONS_ACTIVES"] == "500", env


# ======================================================================
# Shedding: CoupeCircuitAction
# ======================================================================

def write_site(apache) -> None:
    """Pages served as they are: an exempt prefix, a regex-exempt file, and a
    page whose name only starts like the exempt prefix."""
    (apache.htdocs / "static").mkdir(exist_ok=True)
    (apache.htdocs / "static" / "page.html").write_text("static page\n")
    (apache.htdocs / "styles").mkdir(exist_ok=True)
    (apache.htdocs / "styles" / "site.css").write_text("body { color: black }\n")
    (apache.htdocs / "staticky.html").write_text("not exempt\n")
    (apache.htdocs / "all").mkdir(exist_ok=True)
    (apache.htdocs / "all" / "index.html").write_text("all\n")
    (apache.htdocs / "all" / "theme.css").write_text("h1 { color: red }\n")
    (apache.htdocs / "all" / "keep").mkdir(exist_ok=True)
    (apache.htdocs / "all" / "keep" / "page.html").write_text("kept\n")


def reason_log(apache) -> list[tuple[str, str, str]]:
    """(status, path, note) of each line of logs/reason.log."""
    path = apache.root / "logs" / "reason.log"
    if not path.exists():
        return []
    return [tuple(line.split(" ")) for line in path.read_text().splitlines()]


def enforcement_lines(page: Path, status: int | None, retry_after: int = 120,
                      cookie: str | None = None) -> list[str]:
    lines = ["CoupeCircuitHold 0", "CoupeCircuitAction refuse-new", f"CoupeCircuitRetryAfter {retry_after}",
             f'CoupeCircuitErrorDocument "{page}"', r"CoupeCircuitExempt /static ~\.css$",
             'LogFormat "%>s %U %{coupecircuit}n" reason', 'CustomLog "logs/reason.log" reason',
             '<Location "/all">', "    CoupeCircuitAction refuse-all", "    CoupeCircuitExempt /all/keep",
             "</Location>"]
    if status is not None:
        lines.append(f"CoupeCircuitStatusCode {status}")
    if cookie is not None:
        lines.append(f"CoupeCircuitSessionCookie {cookie}")
    return lines


def assert_refused(reply: Response, status: int, reason: str, retry_after: str = "120",
                   body: bytes = MAINTENANCE_PAGE) -> None:
    assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.header("Retry-After") == retry_after, reply.headers
    assert reply.header("Cache-Control") == "no-store", reply.headers
    assert reply.header("X-CoupeCircuit") == reason, reply.headers
    assert reply.body == body, reply.body[:500]


def assert_served(reply: Response, body: bytes | None = None) -> None:
    assert reply.status == 200, (reply.status, reply.body[:300])
    assert reply.header("X-CoupeCircuit") is None, reply.headers
    if body is not None:
        assert reply.body == body


class RecordingClient(HttpClient):
    """An HttpClient that keeps (status, path, X-CoupeCircuit) of every answer."""

    def __init__(self, port: int, record: list):
        super().__init__(port)
        self.record = record

    def request(self, path: str, **kwargs) -> Response:
        reply = super().request(path, **kwargs)
        self.record.append((str(reply.status), path.split("?")[0], reply.header("X-CoupeCircuit") or "-"))
        return reply


@pytest.mark.parametrize("variant", ["prefork", "event"])
def test_refuse_new_lets_sessions_through(helper, make_apache, module_so, run_dir, variant):
    """refuse-new while cut, then while tripped: a new visitor gets the status,
    headers and page; the logged-in user and exempt paths (prefix, regex) are
    served; refuse-all in <Location /all> refuses the user too, except its own
    and the server's exemptions; the access log has the reason
    (%{coupecircuit}n); nothing is refused once it is over."""
    page = run_dir / "maintenance.html"
    page.write_bytes(MAINTENANCE_PAGE)
    apache = make_apache(variant, helper, with_module=True, start=False,
                         server_lines=enforcement_lines(page, status=None))
    write_site(apache)
    apache.start()
    sent: list[tuple[str, str, str]] = []
    visitor = RecordingClient(apache.port, sent)
    user = RecordingClient(apache.port, sent)
    reply = user.request("/login.php")
    assert reply.status == 200
    session_id = reply.json()["session_id"]
    assert user.cookies["PHPSESSID"] == session_id

    # ok: nothing is refused.
    for path in ("/env.php", "/index.html", "/staticky.html", "/all/index.html"):
        assert_served(visitor.request(path))
    assert visitor.env()["COUPECIRCUIT_ETAT"] == "ok"
    assert "PHPSESSID" not in visitor.cookies

    for trigger, reason, undo in ((("cut", "on", "--reason", "test"), "coupure", ("cut", "off")),
                                  (("threshold", "set", "sessions", "1"), "surcharge",
                                   ("threshold", "unset", "sessions"))):
        helper.ctl_ok(*trigger)
        reply, _ = wait_for(lambda: visitor.request("/env.php"), lambda r: r.status != 200, 5.0,
                            f"{reason}: a new visitor is refused")
        assert_refused(reply, 503, reason)
        assert_refused(visitor.request("/index.html"), 503, reason)
        assert_refused(visitor.request("/staticky.html"), 503, reason)  # not under /static
        # An empty session cookie is no session.
        assert_refused(visitor.request("/env.php", headers={"Cookie": "PHPSESSID="}), 503, reason)
        # Exempt: prefix and regex.
        assert_served(visitor.request("/static/page.html"), b"static page\n")
        assert_served(visitor.request("/styles/site.css"), b"body { color: black }\n")
        # The logged-in user keeps working, and PHP sees the state.
        reply = user.request("/env.php")
        assert_served(reply)
        assert reply.json()["COUPECIRCUIT_ETAT"] == reason
        assert_served(user.request("/index.html"))
        # refuse-all in /all: even with the session, except its own exemption
        # and the server's (exemptions add up).
        assert_refused(user.request("/all/index.html"), 503, reason)
        assert_served(user.request("/all/keep/page.html"), b"kept\n")
        assert_served(user.request("/all/theme.css"), b"h1 { color: red }\n")
        helper.ctl_ok(*undo)
        wait_for(lambda: visitor.request("/env.php").status, lambda s: s == 200, 5.0, f"{reason} over")
        assert_served(visitor.request("/all/index.html"))
        assert_served(user.request("/all/index.html"))

    apache.stop()
    log = reason_log(apache)
    # Every answer this test received is in the log with its reason (a child
    # logs after it answered: the order may differ), besides the harness's
    # start-up probes.
    extra = Counter(log) - Counter(sent)
    assert Counter(sent) - Counter(log) == Counter(), "answers missing from the log"
    assert set(extra) <= {("200", "/index.html", "-")}, extra
    refused = [entry for entry in log if entry[0] == "503"]
    assert len([e for e in refused if e[2] == "coupure"]) >= 5, refused
    assert len([e for e in refused if e[2] == "surcharge"]) >= 5, refused
    assert {e[2] for e in refused} == {"coupure", "surcharge"}
    assert all(entry[2] == "-" for entry in log if entry[0] == "200"), log
    assert ("503", "/staticky.html", "coupure") in log and ("200", "/static/page.html", "-") in log
    assert session_id not in (apache.root / "logs" / "reason.log").read_text()


def test_refuse_with_429_and_own_cookie(helper, make_apache, module_so, run_dir):
    """CoupeCircuitStatusCode 429, another cookie name, another Retry-After."""
    page = run_dir / "maintenance.html"
    page.write_bytes(MAINTENANCE_PAGE)
    apache = make_apache("prefork", helper, with_module=True, start=False,
                         server_lines=enforcement_lines(page, status=429, retry_after=7, cookie="APPSESS"))
    write_site(apache)
    apache.start()
    client = apache.client()
    helper.ctl_ok("cut", "on")
    reply, _ = wait_for(lambda: client.request("/env.php"), lambda r: r.status != 200, 5.0, "refused while cut")
    assert_refused(reply, 429, "coupure", retry_after="7")
    # PHPSESSID is not this site's session cookie.
    assert_refused(client.request("/env.php", headers={"Cookie": "PHPSESSID=abc"}), 429, "coupure", "7")
    reply = client.request("/env.php", headers={"Cookie": "other=1; APPSESS=opaque-value"})
    assert_served(reply)
    assert reply.json()["COUPECIRCUIT_ETAT"] == "coupure"
    assert_served(client.request("/static/page.html"))
    helper.ctl_ok("cut", "off")
    wait_for(lambda: client.request("/env.php").status, lambda s: s == 200, 5.0, "served once the cut is off")


@pytest.mark.parametrize("variant", ["prefork", "event"])
def test_refusal_survives_graceful_restarts(helper, make_apache, module_so, variant):
    """Enforcement costs a hook only in configurations that refuse: it must be
    there again after each graceful restart, and go with the directive."""
    apache = make_apache(variant, helper, with_module=True, start=False,
                         server_lines=["CoupeCircuitHold 0", '<Location "/guarded">',
                                       "    CoupeCircuitAction refuse-all", "</Location>"])
    (apache.htdocs / "guarded").mkdir()
    (apache.htdocs / "guarded" / "page.html").write_text("guarded\n")
    apache.start()
    client = apache.client()
    helper.ctl_ok("cut", "on")
    for _ in range(2):
        reply, _ = wait_for(lambda: client.request("/guarded/page.html"), lambda r: r.status != 200, 5.0,
                            "refused while cut")
        assert reply.status == 503 and reply.header("X-CoupeCircuit") == "coupure", (reply.status, reply.headers)
        assert_served(client.request("/index.html"))
        apache.graceful()
    # Without the directive, nothing is refused any more.
    apache.server_lines = ["CoupeCircuitHold 0"]
    apache.write_config()
    apache.graceful()
    wait_for(lambda: client.request("/guarded/page.html").status, lambda s: s == 200, 5.0,
             "served once no directive refuses")
    helper.ctl_ok("cut", "off")


def test_refused_without_own_page_uses_errordocument(helper, make_apache, module_so):
    """Without CoupeCircuitErrorDocument, Apache's ErrorDocument for the
    status answers (here a static page), with the module's headers."""
    apache = make_apache("prefork", helper, with_module=True, start=False,
                         server_lines=["CoupeCircuitHold 0", "CoupeCircuitAction refuse-all",
                                       "CoupeCircuitRetryAfter 30", "ErrorDocument 503 /busy.html"])
    (apache.htdocs / "busy.html").write_text("busy, come back later\n")
    apache.start()
    client = apache.client()
    helper.session("authenticated")
    helper.ctl_ok("threshold", "set", "sessions", "1")  # reached as soon as the helper counts the session
    reply, _ = wait_for(lambda: client.request("/env.php"), lambda r: r.status != 200, 5.0, "refused")
    assert_refused(reply, 503, "surcharge", retry_after="30", body=b"busy, come back later\n")
    assert_refused(client.request("/index.html", headers={"Cookie": "PHPSESSID=x"}), 503, "surcharge", "30",
                   body=b"busy, come back later\n")


def test_refused_page_is_sent_whatever_its_first_word(helper, make_apache, module_so, run_dir, logs):
    """A page starting with "word:" or "/" is a page, not a redirect, and is
    labelled UTF-8."""
    page = run_dir / "maintenance.txt"
    text = b"Maintenance: the service is busy, retry in 2 minutes.\n"
    page.write_bytes(text)
    apache = make_apache("prefork", helper, with_module=True,
                         server_lines=["CoupeCircuitHold 0", "CoupeCircuitAction refuse-all",
                                       f'CoupeCircuitErrorDocument "{page}"'])
    client = apache.client()
    helper.ctl_ok("cut", "on")
    reply, _ = wait_for(lambda: client.request("/index.html"), lambda r: r.status != 200, 5.0, "refused")
    assert (reply.status, reply.body, reply.header("Location")) == (503, text, None)
    assert reply.header("Content-Type") == "text/html; charset=utf-8"


# ======================================================================
# Health endpoint for load balancers
# ======================================================================

HEALTH_LOCATIONS = ['<Location "/health">', "    SetHandler coupecircuit-health", "</Location>",
                    '<Location "/health-token">', "    SetHandler coupecircuit-health",
                    f"    CoupeCircuitHealthToken {TOKEN}", "</Location>"]


def test_health_states(helper, make_apache, module_so, logs):
    """200 UP, 503 DRAIN coupure / sessions / load / surcharge (tripped, held,
    values already back under RELEASE), 200 UP inconnu when stale; never shed
    by refuse-all; GET and HEAD only."""
    logs.allow(MODULE_WARNING)
    hold = 5
    apache = make_apache("prefork", helper, with_module=True,
                         server_lines=["CoupeCircuitMaxAge 2", f"CoupeCircuitHold {hold}",
                                       "CoupeCircuitThreshold sessions 1", "CoupeCircuitAction refuse-all",
                                       *HEALTH_LOCATIONS])
    client = apache.client()
    reply = health(client)
    assert (reply.status, reply.body) == (200, b"UP\n")
    assert reply.header("Content-Type") == "text/plain; charset=utf-8"
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("X-CoupeCircuit") is None
    reply = client.request("/health", method="HEAD")
    assert (reply.status, reply.body) == (200, b"")
    assert client.request("/health", method="POST", body=b"x").status == 405

    helper.ctl_ok("cut", "on")
    reply = wait_health(client, 503, b"DRAIN coupure\n", 5.0, "cut: DRAIN coupure")
    assert reply.header("X-CoupeCircuit") is None, "the health answer is not a shed request"
    assert reply.header("Cache-Control") == "no-store"
    assert reply.header("Retry-After") is None
    shed = client.request("/index.html")
    assert shed.status == 503 and shed.header("X-CoupeCircuit") == "coupure"
    assert shed.header("Retry-After") is None, "no CoupeCircuitRetryAfter: no Retry-After"
    helper.ctl_ok("cut", "off")
    wait_health(client, 200, b"UP\n", 5.0, "cut off: UP")

    # Tripped by one session: DRAIN sessions, and the cut adds its reason.
    session = helper.session("authenticated")
    wait_health(client, 503, b"DRAIN sessions\n", 5.0, "tripped: DRAIN sessions")
    helper.ctl_ok("cut", "on")
    wait_health(client, 503, b"DRAIN coupure sessions\n", 5.0, "cut and tripped")
    helper.ctl_ok("cut", "off")
    # Back under RELEASE within the hold: still drained, with no value over.
    session.unlink()
    wait_health(client, 503, b"DRAIN surcharge\n", 5.0, "held: DRAIN surcharge")
    wait_health(client, 200, b"UP\n", hold + 10.0, "released after the hold")

    # Load: an override of 0.01 trips on any load (after the hold of the release).
    helper.ctl_ok("threshold", "set", "load", "0.01")
    if float(helper.status()[1]["load"]["1"]) >= 0.01:
        wait_health(client, 503, b"DRAIN load\n", hold + 10.0, "tripped by load: DRAIN load")
    helper.ctl_ok("threshold", "unset", "load")
    wait_health(client, 200, b"UP\n", hold + 10.0, "UP without the load override")

    # Stale: kill -9, MaxAge 2 -> UP inconnu (still in the pool).
    helper.kill9()
    wait_health(client, 200, b"UP inconnu\n", 2 + 5.0, "stale: UP inconnu")
    for _ in range(10):
        reply = health(client)
        assert (reply.status, reply.body) == (200, b"UP inconnu\n")
    # Nothing is shed while the state is unknown.
    assert_served(client.request("/index.html"))
    helper.start()
    wait_health(client, 200, b"UP\n", 5.0, "UP once the helper publishes again")


def test_health_token(helper, make_apache, module_so):
    apache = make_apache("prefork", helper, with_module=True,
                         server_lines=["CoupeCircuitHold 0", "CoupeCircuitAction refuse-all", *HEALTH_LOCATIONS])
    client = apache.client()
    for headers in (None, {"Authorization": "Bearer wrong-token-0123456789"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"},
                    {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Authorization": "Bearer"}):
        reply = client.request("/health-token", headers=headers)
        assert reply.status == 401, (headers, reply.status, reply.body)
        assert reply.header("WWW-Authenticate") == 'Bearer realm="coupecircuit"', reply.headers
        assert TOKEN.encode() not in reply.body and not reply.body.startswith((b"UP", b"DRAIN"))
    for value in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER   {TOKEN}  "):
        reply = client.request("/health-token", headers={"Authorization": value})
        assert (reply.status, reply.body) == (200, b"UP\n"), value
    # Without a token of its own, /health answers anyone.
    assert (health(client).status, health(client).body) == (200, b"UP\n")

    # Under refuse-all the health check is never shed; the token still applies.
    helper.ctl_ok("cut", "on")
    wait_health(client, 503, b"DRAIN coupure\n", 5.0, "DRAIN with the token", path="/health-token", token=TOKEN)
    reply = client.request("/health-token")
    assert reply.status == 401 and reply.header("X-CoupeCircuit") is None
    assert client.request("/index.html").header("X-CoupeCircuit") == "coupure"


def test_health_token_length_is_checked(make_helper, make_apache, module_so):
    helper = make_helper(start=False)
    for token, accepted in (("x" * 15, False), ("x" * 16, True), ("x" * 512, True), ("x" * 513, False),
                            ("abc\x7fdefghijklmnopq", False)):
        apache = make_apache("prefork", helper, with_module=True, start=False, name=f"apache-{len(token)}",
                             server_lines=['<Location "/health">', "    SetHandler coupecircuit-health",
                                           f"    CoupeCircuitHealthToken {token}", "</Location>"])
        result = apache.configtest()
        assert (result.returncode == 0) == accepted, (len(token), result.stderr)
        if not accepted:
            assert "CoupeCircuitHealthToken" in result.stderr


# ======================================================================
# coupecircuitd's HAProxy agent
# ======================================================================

def agent_line(port: int) -> str:
    """One connection: the agent writes one line and closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        data = b""
        while True:
            chunk = connection.recv(4096)
            if not chunk:
                break
            data += chunk
    text = data.decode("ascii")
    assert text.endswith("\n") and text.count("\n") == 1, f"not one line: {text!r}"
    return text[:-1]


def expected_weight(sessions: int, sessions_trip: int | None, load_centi: int = 0,
                    load_trip_centi: int | None = None) -> str:
    """The documented formula: r = max(sessions / TRIP_sessions, load / TRIP_load);
    drain at r >= 1; N = 100 while r <= 0.5, then 100 * (1 - r) / 0.5, at least 1
    (computed in per-mille, rounded down)."""
    ratio = 0
    if sessions_trip:
        ratio = max(ratio, 1000 if sessions >= sessions_trip else sessions * 1000 // sessions_trip)
    if load_trip_centi:
        ratio = max(ratio, 1000 if load_centi >= load_trip_centi else load_centi * 1000 // load_trip_centi)
    if ratio >= 1000:
        return "drain"
    weight = 100 if ratio <= 500 else (1000 - ratio) * 100 // 500
    return f"up ready {max(weight, 1)}%"


def test_agent_answers(make_helper, logs):
    port = free_port()
    helper = make_helper(config_extra=f"\n[agent]\nport = {port}\nbind = 127.0.0.1\nsessions = 8\nload = 5000\n")
    logs.watch(helper.log_path, re.compile(r"\bCC0051\b"))
    wait_for(lambda: "CC0050" in helper.log_text(), bool, 5.0, "agent listening (CC0050)")
    assert f"127.0.0.1:{port}" in helper.log_text()

    assert agent_line(port) == "up ready 100%" == expected_weight(0, 8)
    sessions = []
    # r = n / 8: 4 -> 0.5 (100 %), 5 -> 0.625 (75 %), 6 -> 0.75 (50 %), 7 -> 0.875 (25 %), 8 -> drain.
    for count, answer in ((4, "up ready 100%"), (5, "up ready 75%"), (6, "up ready 50%"), (7, "up ready 25%"),
                          (8, "drain")):
        while len(sessions) < count:
            sessions.append(helper.session("authenticated"))
        assert expected_weight(count, 8) == answer
        wait_for(lambda: agent_line(port), lambda line, a=answer: line == a, 5.0, f"{count} sessions: {answer}")
    # Anonymous sessions do not count.
    helper.session("anonymous")
    for _ in range(5):
        assert agent_line(port) == "drain"

    # The cut drains too (persistent clients keep their server).
    helper.ctl_ok("cut", "on")
    wait_for(lambda: agent_line(port), lambda line: line == "drain", 5.0, "cut: drain")
    sessions.pop().unlink()
    sessions.pop().unlink()
    for _ in range(5):
        assert agent_line(port) == "drain", "the cut drains whatever the sessions"
    helper.ctl_ok("cut", "off")
    wait_for(lambda: agent_line(port), lambda line: line == "up ready 50%", 5.0, "6 sessions, no cut: 50%")

    # A global runtime override wins over [agent] sessions.
    helper.ctl_ok("threshold", "set", "sessions", "7")
    expected = expected_weight(6, 7)
    assert expected == "up ready 28%"
    wait_for(lambda: agent_line(port), lambda line: line == expected, 5.0, "override 7: 28%")
    helper.ctl_ok("threshold", "set", "sessions", "600")
    wait_for(lambda: agent_line(port), lambda line: line == "up ready 100%", 5.0, "override 600: 100%")
    # A vhost override does not concern the agent.
    helper.ctl_ok("threshold", "set", "sessions", "1", "--vhost", "some.vhost")
    for _ in range(5):
        assert agent_line(port) == "up ready 100%"

    # Load: with a global load override, the weight follows the published load.
    def load_case():
        before = helper.status()[1]["load"]["1"]
        line = agent_line(port)
        after = helper.status()[1]["load"]["1"]
        return before, line, after

    load_centi = round(float(helper.status()[1]["load"]["1"]) * 100)
    trip_centi = max(2, load_centi * 4 // 3)  # r close to 0.75 while the load holds still
    helper.ctl_ok("threshold", "set", "load", f"{trip_centi // 100}.{trip_centi % 100:02d}")
    # The load the agent answered from is the one published before and after it.
    (before, line, _), _ = wait_for(load_case, lambda v: v[0] == v[2], 10.0, "a steady load around the answer")
    assert line == expected_weight(6, 600, round(float(before) * 100), trip_centi), (before, trip_centi)


def test_agent_not_listening_without_port(helper):
    assert "CC0050" not in helper.log_text()


# ======================================================================
# Status pages: Prometheus, JSON, HTML, mod_status
# ======================================================================

SITE = "site.test"
WEIRD = 'we"ird\\name.test'  # a quote and a backslash to escape
STATUS_LINES = ['<Location "/cc-status">', "    SetHandler coupecircuit-status", "</Location>"]


def status_apache(make_apache, helper, extra=()):
    modules = "/usr/lib/apache2/modules"
    return make_apache("prefork", helper, with_module=True, start=False,
                       server_lines=[f'LoadModule status_module "{modules}/mod_status.so"', "ExtendedStatus On",
                                     '<Location "/server-status">', "    SetHandler server-status", "</Location>",
                                     *STATUS_LINES, "CoupeCircuitHold 0", "CoupeCircuitAction refuse-new",
                                     # mod_status is an ordinary handler: shed unless exempt.
                                     "CoupeCircuitExempt /server-status", *extra],
                       # site.test twice, as the :80 and :443 virtual hosts of one site would be.
                       vhosts=[VirtualHost(SITE, ["CoupeCircuitThreshold sessions 2"]),
                               VirtualHost(SITE, ["CoupeCircuitThreshold sessions 2"]),
                               VirtualHost(WEIRD, ["CoupeCircuitThreshold load 40.5"])])


def prometheus(client: HttpClient) -> prometheus_parser.Exposition:
    reply = client.request("/cc-status?prometheus")
    assert reply.status == 200, reply.body
    assert reply.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8"
    return prometheus_parser.parse(reply.body.decode("utf-8"))


def status_json(client: HttpClient) -> dict:
    reply = client.request("/cc-status?json")
    assert reply.status == 200 and reply.header("Content-Type") == "application/json", reply.headers
    return json.loads(reply.body)


def assert_one_hot(exposition, vhost: str, state: str) -> None:
    values = {s.labels["state"]: s.value for s in exposition.samples("coupecircuit_vhost_state")
              if s.labels["vhost"] == vhost}
    assert values == {k: (1.0 if k == state else 0.0) for k in ("ok", "surcharge", "coupure", "inconnu")}, \
        (vhost, values)


def test_status_pages(helper, make_apache, module_so):
    apache = status_apache(make_apache, helper)
    apache.start()
    client = apache.client()
    main_vhost = "127.0.0.1"  # the main server (no request reaches it: site.test is the default)
    weird = WEIRD

    page = prometheus(client)
    for name, kind in (("coupecircuit_snapshot_fresh", "gauge"), ("coupecircuit_requests_shed_total", "counter"),
                       ("coupecircuit_vhost_state", "gauge"), ("coupecircuit_vhost_trips_total", "counter"),
                       ("coupecircuit_sessions_active_authenticated", "gauge"), ("coupecircuit_cut", "gauge"),
                       ("coupecircuit_load_average", "gauge"), ("coupecircuit_session_files", "gauge")):
        assert page.family(name).type == kind and page.family(name).help, name
    assert page.value("coupecircuit_snapshot_fresh") == 1
    assert page.value("coupecircuit_sessions_active_authenticated") == 0
    assert page.value("coupecircuit_cut") == 0
    assert page.value("coupecircuit_requests_shed_total", reason="coupure") == 0
    assert page.value("coupecircuit_requests_shed_total", reason="surcharge") == 0
    assert page.value("coupecircuit_helper_info", pid=str(helper.pid)) == 1
    # The label escaping round-trips the odd vhost name.
    assert_one_hot(page, weird, "ok")
    assert page.value("coupecircuit_vhost_threshold", vhost=weird, kind="load") == 40.5
    assert page.value("coupecircuit_vhost_threshold", vhost=SITE, kind="sessions") == 2
    # Each name once (the parser also rejects any duplicate series).
    names = [s.labels["vhost"] for s in page.samples("coupecircuit_vhost_trips_total")]
    assert sorted(names) == sorted([main_vhost, SITE, weird])
    vhosts = set(names)

    # Two logins; the first vhost (threshold 2) trips, then the cut.
    users = [login(apache) for _ in range(2)]
    wait_for(lambda: prometheus(client).value("coupecircuit_sessions_active_authenticated"), lambda v: v == 2, 5.0,
             "2 sessions in the Prometheus page")
    visitor = apache.client()
    for _ in range(3):
        assert visitor.request("/index.html", host=SITE).status == 503
    page = prometheus(client)
    assert page.value("coupecircuit_requests_shed_total", reason="surcharge") == 3
    assert page.value("coupecircuit_requests_shed_total", reason="coupure") == 0
    assert page.value("coupecircuit_vhost_trips_total", vhost=SITE) == 1
    assert page.value("coupecircuit_vhost_trips_total", vhost=main_vhost) == 0
    assert_one_hot(page, SITE, "surcharge")
    assert_one_hot(page, main_vhost, "ok")
    assert_one_hot(page, weird, "ok")
    helper.ctl_ok("cut", "on", "--reason", "<b>deploy</b> & co")
    wait_for(lambda: prometheus(client).value("coupecircuit_cut"), lambda v: v == 1, 5.0, "cut in Prometheus")
    # When the cut went on, for the "cut forgotten" alert (contrib/prometheus).
    assert abs(prometheus(client).value("coupecircuit_cut_since_timestamp_seconds") - time.time()) < 30
    for _ in range(2):
        assert visitor.request("/index.html", host=SITE).status == 503
    page = prometheus(client)
    assert page.value("coupecircuit_requests_shed_total", reason="coupure") == 2
    assert page.value("coupecircuit_requests_shed_total", reason="surcharge") == 3
    for vhost in vhosts:
        assert_one_hot(page, vhost, "coupure")

    # JSON says the same.
    document = status_json(client)
    assert document["snapshot"]["health"] == "fresh"
    assert document["sessions"]["active_authenticated"] == 2
    assert document["cut"]["active"] is True and document["cut"]["reason"] == "<b>deploy</b> & co"
    assert document["requests_shed"] == {"coupure": 2, "surcharge": 3}
    assert document["helper"]["pid"] == helper.pid
    assert sorted(v["name"] for v in document["vhosts"]) == sorted([main_vhost, SITE, SITE, weird])
    by_name = {v["name"]: v for v in document["vhosts"]}
    assert all(v["state"] == "coupure" for v in document["vhosts"])
    assert by_name[SITE]["tripped"] is True and by_name[SITE]["threshold_sessions"] == "2"
    assert by_name[main_vhost]["tripped"] is False and "threshold_sessions" not in by_name[main_vhost]
    assert by_name[weird]["threshold_load"] == "40.50"
    for name, entry in by_name.items():
        assert entry["trips"] == page.value("coupecircuit_vhost_trips_total", vhost=name)

    # HTML escapes what it shows.
    reply = client.request("/cc-status")
    assert reply.status == 200 and reply.header("Content-Type") == "text/html; charset=utf-8"
    html = reply.body.decode("utf-8")
    assert "&lt;b&gt;deploy&lt;/b&gt; &amp; co" in html and "<b>deploy" not in html
    assert "we&quot;ird\\name.test" in html

    # mod_status: a section in /server-status and in ?auto.
    reply = client.request("/server-status")
    assert reply.status == 200
    text = reply.body.decode("utf-8", "replace")
    assert "<h2>CoupeCircuit</h2>" in text and "2 active authenticated sessions" in text
    assert f"<tr><td>{SITE}</td><td>coupure</td></tr>" in text
    reply = client.request("/server-status?auto")
    auto = reply.body.decode()
    assert "CoupeCircuitSnapshot: fresh\n" in auto and "CoupeCircuitSessionsActives: 2\n" in auto
    assert f"CoupeCircuitVhost: {SITE} coupure\n" in auto

    # No session id nor session content anywhere.
    helper.ctl_ok("cut", "off")
    outputs = [client.request(path).body for path in ("/cc-status", "/cc-status?json", "/cc-status?prometheus",
                                                       "/server-status", "/server-status?auto")]
    contents = [(helper.session_dir / f"sess_{sid}").read_bytes() for _, sid in users]
    for (_, session_id), content in zip(users, contents):
        assert b"compte_reel" in content
        for output in outputs:
            assert session_id.encode() not in output
            assert b"compte_reel" not in output and content not in output


def test_status_while_stale(helper, make_apache, module_so, logs):
    """Stale snapshot: snapshot_fresh 0, every vhost inconnu, still a valid
    exposition."""
    logs.allow(MODULE_WARNING)
    apache = status_apache(make_apache, helper, extra=["CoupeCircuitMaxAge 1"])
    apache.start()
    client = apache.client()
    assert prometheus(client).value("coupecircuit_snapshot_fresh") == 1
    helper.kill9()
    page, _ = wait_for(lambda: prometheus(client), lambda p: p.value("coupecircuit_snapshot_fresh") == 0, 5.0,
                       "stale in Prometheus")
    for vhost in {s.labels["vhost"] for s in page.samples("coupecircuit_vhost_state")}:
        assert_one_hot(page, vhost, "inconnu")
    assert status_json(client)["snapshot"]["health"] == "stale"
    auto = client.request("/server-status?auto").body.decode()
    assert "CoupeCircuitSnapshot: stale\n" in auto


# ======================================================================
# The strict Prometheus parser itself
# ======================================================================

GOOD_EXPOSITION = """# HELP a_total Things, with a \\\\ and a \\n.
# TYPE a_total counter
a_total{k="v",q="say \\"hi\\"\\n\\\\"} 3
a_total{k="w",} 4 1700000000000
# a comment
# TYPE g gauge
g -1.5e3
g{x="1"} +Inf
# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 2
h_sum 3.5
h_count 2
"""

BAD_EXPOSITIONS = {
    "no final newline": "# TYPE g gauge\ng 1",
    "no TYPE": "g 1\n",
    "TYPE after sample": "# TYPE g gauge\ng 1\n# TYPE h gauge\nh 1\n# TYPE g gauge\n",
    "duplicate series": "# TYPE g gauge\ng{a=\"1\"} 1\ng{a=\"1\"} 2\n",
    "bad metric name": "# TYPE 1g gauge\n1g 1\n",
    "bad label name": "# TYPE g gauge\ng{1a=\"x\"} 1\n",
    "reserved label": "# TYPE g gauge\ng{__name__=\"x\"} 1\n",
    "bad escape": "# TYPE g gauge\ng{a=\"\\t\"} 1\n",
    "unquoted label": "# TYPE g gauge\ng{a=x} 1\n",
    "unterminated label": "# TYPE g gauge\ng{a=\"x} 1\n",
    "bad value": "# TYPE g gauge\ng one\n",
    "hex value": "# TYPE g gauge\ng 0x10\n",
    "bad timestamp": "# TYPE g gauge\ng 1 1.5\n",
    "counter without _total": "# TYPE c counter\nc 1\n",
    "negative counter": "# TYPE c_total counter\nc_total -1\n",
    "unknown type": "# TYPE g gauges\ng 1\n",
    "second HELP": "# HELP g x\n# HELP g y\n# TYPE g gauge\ng 1\n",
    "interleaved": "# TYPE g gauge\n# TYPE h gauge\ng 1\nh 1\ng{a=\"b\"} 1\n",
    "duplicate label": "# TYPE g gauge\ng{a=\"1\",a=\"2\"} 1\n",
    "carriage return": "# TYPE g gauge\r\ng 1\r\n",
    "missing value": "# TYPE g gauge\ng{a=\"1\"}\n",
}


def test_prometheus_parser_is_strict():
    page = prometheus_parser.parse(GOOD_EXPOSITION)
    assert page.value("a_total", k="v", q='say "hi"\n\\') == 3
    assert page.family("a_total").help == "Things, with a \\ and a \n."
    assert page.samples("a_total")[1].timestamp == 1700000000000
    assert page.value("g") == -1500 and page.value("g", x="1") == float("inf")
    assert page.family("h").type == "histogram" and page.value("h_count") == 2
    for case, text in BAD_EXPOSITIONS.items():
        with pytest.raises(prometheus_parser.PrometheusFormatError):
            prometheus_parser.parse(text)
            pytest.fail(f"accepted: {case}")


# ======================================================================
# Exemptions apply to what is served; duplicate session cookies
# ======================================================================

FRONT_CONTROLLER = b"<?php echo 'front controller ran';\n"


@pytest.mark.parametrize("variant", ["prefork", "event"])
def test_exemptions_apply_to_what_is_served(helper, make_apache, module_so, run_dir, variant):
    """refuse-new with the shipped example `CoupeCircuitExempt ~\\.(css|js|...)$`:
    PATH_INFO (/env.php/x.css, /index.php/a.js), a per-directory RewriteRule
    to a front controller, FallbackResource and a server-context rewrite to a
    script never make a refused request a served one; real assets stay
    exempt; a logged-in user with the cookie twice (two paths) is served and
    nothing is logged per request (the logs fixture fails on any warn/error
    line, e.g. AH00011)."""
    htdocs = run_dir / f"apache-{variant}" / "htdocs"
    lines = ["CoupeCircuitHold 0", "CoupeCircuitAction refuse-new",
             r"CoupeCircuitExempt /static ~\.(css|js|png|svg|woff2?)$",
             "RewriteEngine On", r"RewriteRule ^/srv/.*\.css$ /env.php",
             f'<Directory "{htdocs}/app">', "    Options +FollowSymLinks", "    RewriteEngine On", "    RewriteCond %{REQUEST_FILENAME} !-f",
             "    RewriteRule ^ index.php [L]", "</Directory>",
             f'<Directory "{htdocs}/fc">', "    FallbackResource /fc/index.php", "</Directory>"]
    apache = make_apache(variant, helper, with_module=True, start=False, server_lines=lines)
    write_site(apache)
    for sub in ("app", "fc"):
        (apache.htdocs / sub).mkdir(exist_ok=True)
        (apache.htdocs / sub / "index.php").write_bytes(FRONT_CONTROLLER)
    (apache.htdocs / "index.php").write_bytes(FRONT_CONTROLLER)
    apache.start()
    visitor = apache.client()
    assert visitor.request("/app/missing.css").body == b"front controller ran"  # the rewrite works
    assert visitor.request("/fc/missing.js").body == b"front controller ran"

    helper.ctl_ok("cut", "on", "--reason", "test")
    wait_for(lambda: visitor.request("/env.php"), lambda r: r.status == 503, 5.0, "cut: /env.php refused")
    for path in ("/env.php/x.css", "/index.php/a.js", "/env.php/a/b.woff2", "/app/missing.css", "/app/x.png",
                 "/fc/missing.js", "/srv/theme.css"):
        reply = visitor.request(path)
        assert reply.status == 503 and reply.header("X-CoupeCircuit") == "coupure", (path, reply.status, reply.body)
    assert_served(visitor.request("/styles/site.css"), b"body { color: black }\n")
    assert_served(visitor.request("/static/page.html"), b"static page\n")

    # The session cookie twice (set for two paths or domains): a session.
    for cookie in ("PHPSESSID=abc; PHPSESSID=def", "PHPSESSID=; PHPSESSID=def", "a=1, PHPSESSID=abc"):
        reply = visitor.request("/env.php", headers={"Cookie": cookie})
        assert_served(reply)
        assert reply.json()["COUPECIRCUIT_ETAT"] == "coupure"
    assert visitor.request("/env.php", headers={"Cookie": "PHPSESSID=; PHPSESSID="}).status == 503
    assert "AH00011" not in apache.error_log_text()


def test_sessions_unknown_when_the_scan_fails(make_helper, make_apache, module_so, logs):
    """The helper cannot read the session directory: SESSIONS_ACTIVES is
    absent (not 0), the sessions threshold does not trip however many
    sessions there are, the status page, JSON and Prometheus say so
    (coupecircuit_sessions_source_up 0) and the health answer says
    sessions-inconnues without draining; readable again, all comes back."""
    logs.allow(r"CC0011")  # the helper reports the failed scan
    helper = make_helper(interval=1)
    apache = make_apache("prefork", helper, with_module=True,
                         server_lines=["CoupeCircuitHold 0", "CoupeCircuitThreshold sessions 2",
                                       *HEALTH_LOCATIONS, *STATUS_LINES])
    client = apache.client()
    env = wait_env(client, lambda e: e["SESSIONS_ACTIVES"] == "0", 5.0, "0 sessions")
    assert env["COUPECIRCUIT_ETAT"] == "ok"
    assert prometheus(client).value("coupecircuit_sessions_source_up") == 1.0

    hidden = helper.session_dir.with_name("sessions.hidden")
    helper.session_dir.rename(hidden)
    try:
        env = wait_env(client, lambda e: e["SESSIONS_ACTIVES"] is None, 10.0, "sessions unknown")
        assert env["COUPECIRCUIT_ETAT"] == "ok" and env["LOAD_AVG"] is not None, env
        assert env["SEUIL_SESSIONS_ACTIVES"] == "2"
        reply = health(client)
        assert (reply.status, reply.body) == (200, b"UP sessions-inconnues\n")
        document = status_json(client)
        assert document["sessions"]["known"] is False
        exposition = prometheus(client)
        assert exposition.value("coupecircuit_sessions_source_up") == 0.0
        assert not exposition.samples("coupecircuit_sessions_active_authenticated")
        assert "unknown" in client.request("/cc-status").body.decode()
        # Sessions the helper cannot see do not trip it.
        for _ in range(3):
            php_session(hidden, "authenticated")
        # The scan runs every second: a few of them see the directory missing.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert client.env()["COUPECIRCUIT_ETAT"] == "ok"
    finally:
        hidden.rename(helper.session_dir)
    env = wait_env(client, lambda e: e["SESSIONS_ACTIVES"] is not None, 10.0, "sessions known again")
    assert prometheus(client).value("coupecircuit_sessions_source_up") == 1.0
    assert health(client).body in (b"UP\n", b"DRAIN sessions\n")
