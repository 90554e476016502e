"""The status page (SetHandler coupecircuit-status) in a real browser:
Debian's headless chromium loads it from a real Apache + mod_coupecircuit fed
by a real coupecircuitd, while the node goes ok -> surcharge -> coupure ->
inconnu. Assertions are on the rendered page (state words, bar geometry
against TRIP and RELEASE, the chart's points against the helper's history
file); each state is saved as a screenshot (the test's run directory, and
docs/img/ with COUPECIRCUIT_UPDATE_SCREENSHOTS=1); the HTML passes tidy.

One Apache, one helper, one browser for the whole file.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from harness import VirtualHost, wait_for
from headless_chromium import Chromium, chromium_binary

SITE = "site.test"
WEIRD = 'we"ird<i>\\name.test'  # quote, angle brackets, backslash: escaped or the DOM shows it
CUT_REASON = "<script>document.title='pwned'</script> & maintenance"
MAX_AGE_WARNING = r"\[coupecircuit:warn\].*CC030[12]"

HISTORY_HEADER = struct.Struct("<IHHIIII")
HISTORY_POINT = struct.Struct("<qQII")
POINT_CUT, POINT_SESSIONS_UNKNOWN = 1, 2

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="chromium (Debian package) is not installed")


def write_history(path: Path, points: list[tuple[int, int, int, int]]) -> None:
    """The history file as common/history.hpp lays it out."""
    data = HISTORY_HEADER.pack(0x49484343, 1, HISTORY_POINT.size, 360, 10, len(points), 0)
    data += b"".join(HISTORY_POINT.pack(*point) for point in points)
    path.write_bytes(data)


def read_history(path: Path) -> list[tuple[int, int, int, int]]:
    data = path.read_bytes()
    magic, version, size, capacity, interval, count, _ = HISTORY_HEADER.unpack_from(data)
    assert (magic, version, size, capacity, interval) == (0x49484343, 1, 24, 360, 10)
    assert len(data) == HISTORY_HEADER.size + count * HISTORY_POINT.size
    return [HISTORY_POINT.unpack_from(data, HISTORY_HEADER.size + i * HISTORY_POINT.size) for i in range(count)]


def seeded_history(now: int) -> list[tuple[int, int, int, int]]:
    """The hour before the helper starts: a climb to 3 sessions (over
    SITE's TRIP of 2), a cut, a 5-minute gap (helper stopped), a stretch with
    the session store unreadable."""
    points = []
    start = (now - 3590) // 10 * 10
    for wall in range(start, now - 20, 10):
        minute = (now - wall) / 60
        if 40 <= minute < 45:
            continue  # helper stopped
        sessions = 3 if 25 <= minute < 32 else 1
        flags = POINT_CUT if 15 <= minute < 20 else 0
        if 8 <= minute < 10:
            flags |= POINT_SESSIONS_UNKNOWN
        points.append((wall, sessions, 50 + (wall // 10) % 30, flags))
    return points


PAGE_FACTS = r"""(() => {
  const ratio = (a, b) => b.width ? a / b.width : -1;
  const vhosts = [...document.querySelectorAll('article.vhost')].map(article => {
    const svg = article.querySelector('svg.chart');
    const count = cls => [...svg.querySelectorAll('polyline.' + cls)]
        .reduce((n, line) => n + line.getAttribute('points').trim().split(/\s+/).length, 0);
    return {
      name: article.querySelector('.name').textContent,
      state: article.dataset.state,
      word: article.querySelector('.head .state').textContent,
      color: getComputedStyle(article.querySelector('.head .state')).backgroundColor,
      tripped_at: article.querySelector('.tripped-at').textContent,
      released_at: article.querySelector('.released-at').textContent,
      signals: [...article.querySelectorAll('.signal')].map(signal => {
        const bar = signal.querySelector('.bar').getBoundingClientRect();
        const fill = signal.querySelector('.fill');
        const mark = cls => {
          const box = signal.querySelector('.mark.' + cls).getBoundingClientRect();
          return ratio(box.left + box.width / 2 - bar.left, bar);
        };
        return {kind: signal.dataset.signal, value: signal.dataset.value, trip: +signal.dataset.trip,
                release: +signal.dataset.release, scale: +signal.dataset.scale,
                fill: fill ? ratio(fill.getBoundingClientRect().width, bar) : null,
                trip_at: mark('trip'), release_at: mark('release')};
      }),
      points: +svg.dataset.points, sessions_points: +svg.dataset.sessionsPoints,
      drawn: count('load'), drawn_sessions: count('sessions'),
      bands: [...svg.querySelectorAll('rect.band')].map(rect => rect.classList[1]),
    };
  });
  return {
    title: document.title, scripts: document.scripts.length,
    helper: document.querySelector('.helper').dataset.health,
    cut: (document.querySelector('.cut') || {dataset: {}}).dataset.cut || null,
    cut_reason: (document.querySelector('.cut-reason') || {}).textContent || null,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    external: [...document.querySelectorAll('[src],link[href]')].length,
    vhosts,
  };
})()"""


@pytest.fixture
def node(make_helper, make_apache, module_so, run_dir, logs):
    logs.allow(MAX_AGE_WARNING)
    helper = make_helper(start=False)
    now = int(time.time())
    write_history(Path(f"{helper.snapshot}.history"), seeded_history(now))
    helper.start()
    apache = make_apache("prefork", helper, with_module=True,
                         server_lines=['<Location "/cc-status">', "    SetHandler coupecircuit-status", "</Location>",
                                       "CoupeCircuitHold 0", "CoupeCircuitMaxAge 2"],
                         vhosts=[VirtualHost(SITE, ["CoupeCircuitThreshold sessions 2 1"]),
                                 VirtualHost(WEIRD, ["CoupeCircuitThreshold load 40.5",
                                                     "CoupeCircuitThreshold sessions 500"])])
    return helper, apache


def tidy_problems(html: str, path: Path) -> str:
    path.write_text(html)
    result = subprocess.run(["tidy", "-q", "-e", "-utf8", "--show-warnings", "yes", str(path)],
                            capture_output=True, text=True, timeout=30)
    return "" if result.returncode == 0 else result.stderr


def facts_by_name(facts: dict) -> dict:
    return {v["name"]: v for v in facts["vhosts"]}


def assert_bars(vhost: dict) -> None:
    """Each bar's fill, TRIP and RELEASE marks where their values put them."""
    assert vhost["signals"], vhost
    for signal in vhost["signals"]:
        scale = signal["scale"]
        assert scale >= signal["trip"] > signal["release"] > 0, signal
        assert abs(signal["trip_at"] - signal["trip"] / scale) < 0.02, signal
        assert abs(signal["release_at"] - signal["release"] / scale) < 0.02, signal
        if signal["value"] == "unknown":
            assert signal["fill"] is None, signal
        else:
            assert abs(signal["fill"] - min(1.0, float(signal["value"]) / scale)) < 0.02, signal


def test_status_page_in_a_browser(node, run_dir, paths):
    helper, apache = node
    client = apache.client()
    url = f"http://127.0.0.1:{apache.port}/cc-status"
    shots = run_dir / "screenshots"
    update_docs = os.environ.get("COUPECIRCUIT_UPDATE_SCREENSHOTS") == "1"
    history_path = Path(f"{helper.snapshot}.history")

    def json_state(name: str) -> str:
        return next(v["state"] for v in client.request("/cc-status?json").json()["vhosts"] if v["name"] == name)

    # ?refresh=N: a meta refresh, bounded to [5, 3600] s; nothing for anything else.
    for query, content in (("refresh=10", "10"), ("refresh=1", "5"), ("refresh=999999", "3600")):
        html = client.request(f"/cc-status?{query}").body.decode()
        assert f'<meta http-equiv="refresh" content="{content}">' in html, query
    for query in ("", "refresh=", "refresh=-1", "refresh=10x", "refresh=1e3"):
        assert "http-equiv" not in client.request(f"/cc-status?{query}").body.decode(), query

    with Chromium(run_dir / "chromium-profile") as browser:
        page = browser.new_page(1280, 900)

        def load(state: str) -> dict:
            before = read_history(history_path)
            page.goto(url)
            facts = page.evaluate(PAGE_FACTS)
            after = read_history(history_path)
            # Valid HTML, as served.
            html = client.request("/cc-status").body.decode("utf-8")
            problems = tidy_problems(html, run_dir / f"{state}.html")
            assert not problems, problems
            assert facts["scripts"] == 0 and facts["title"] == "CoupeCircuit status" and facts["external"] == 0
            assert facts["overflow"] <= 0, facts["overflow"]
            assert set(facts_by_name(facts)) == {SITE, WEIRD, "127.0.0.1"}, facts_by_name(facts).keys()
            for vhost in facts["vhosts"]:
                assert vhost["word"] == vhost["state"], vhost
                # The chart has one point per history point of the last hour.
                assert vhost["drawn"] == vhost["points"], vhost
                assert vhost["drawn_sessions"] == vhost["sessions_points"], vhost
                start = int(time.time()) - 3600
                expected = {sum(1 for p in h if p[0] >= start - 5) for h in (before, after)} | \
                           {sum(1 for p in h if p[0] >= start + 5) for h in (before, after)}
                assert vhost["points"] in expected, (vhost["points"], expected)
                unknown = {sum(1 for p in h if p[0] >= start - 5 and p[3] & POINT_SESSIONS_UNKNOWN) for h in
                           (before, after)}
                assert vhost["points"] - vhost["sessions_points"] in unknown | {u - 1 for u in unknown}
            page.screenshot(shots / f"status-{state}.png")
            if update_docs:
                shutil.copyfile(shots / f"status-{state}.png", paths.source_dir / "docs" / "img" / f"status-{state}.png")
            return facts

        # ok
        facts = load("ok")
        site = facts_by_name(facts)[SITE]
        assert (site["state"], site["word"]) == ("ok", "ok")
        assert facts["helper"] == "fresh" and facts["cut"] == "off"
        assert_bars(site)
        assert [s["kind"] for s in site["signals"]] == ["sessions"]
        assert site["signals"][0] | {"fill": None} == site["signals"][0] | {"value": "0", "trip": 2, "release": 1,
                                                                           "fill": None}
        weird = facts_by_name(facts)[WEIRD]
        assert [s["kind"] for s in weird["signals"]] == ["sessions", "load"]
        assert_bars(weird)
        # The seeded hour shows in the bands: the climb, the cut, the gap.
        assert {"ok", "surcharge", "coupure", "inconnu"} <= set(site["bands"]), site["bands"]
        assert site["tripped_at"] == "never"
        ok_color = site["color"]

        # surcharge: two users log in through PHP; SITE trips (TRIP 2).
        users = [apache.client() for _ in range(2)]
        for user in users:
            assert user.request("/login.php").status == 200
        wait_for(lambda: json_state(SITE), lambda s: s == "surcharge", 10.0, "site.test in surcharge")
        facts = load("surcharge")
        site = facts_by_name(facts)[SITE]
        assert (site["state"], site["word"]) == ("surcharge", "surcharge")
        assert site["color"] != ok_color
        assert site["signals"][0]["value"] == "2" and site["signals"][0]["fill"] > site["signals"][0]["trip_at"] - 0.02
        assert site["tripped_at"].endswith("s ago)") and site["released_at"] == "not yet", site
        assert facts_by_name(facts)[WEIRD]["state"] == "ok"
        # Dark scheme and a phone's width: no horizontal scrolling.
        page.color_scheme("dark")
        page.resize(360, 740, mobile=True)
        page.goto(url)
        dark = page.evaluate(PAGE_FACTS)
        assert dark["overflow"] <= 0, dark["overflow"]
        assert facts_by_name(dark)[SITE]["color"] != site["color"]  # the dark palette
        assert_bars(facts_by_name(dark)[SITE])
        page.screenshot(shots / "status-surcharge-360-dark.png")
        if update_docs:
            shutil.copyfile(shots / "status-surcharge-360-dark.png",
                            paths.source_dir / "docs" / "img" / "status-surcharge-360-dark.png")
        page.color_scheme("light")
        page.resize(1920, 1080)
        page.goto(url)
        assert page.evaluate(PAGE_FACTS)["overflow"] <= 0
        page.resize(1280, 900)

        # coupure: the manual cut, its reason shown as text, never as markup.
        helper.ctl_ok("cut", "on", "--reason", CUT_REASON)
        wait_for(lambda: json_state(SITE), lambda s: s == "coupure", 10.0, "site.test in coupure")
        facts = load("coupure")
        assert facts["cut"] == "on" and facts["cut_reason"] == CUT_REASON
        assert all(v["state"] == "coupure" and v["word"] == "coupure" for v in facts["vhosts"]), facts["vhosts"]

        # inconnu: the helper dies; the snapshot goes stale (CoupeCircuitMaxAge 2).
        helper.kill9()
        wait_for(lambda: json_state(SITE), lambda s: s == "inconnu", 10.0, "site.test inconnu")
        facts = load("inconnu")
        assert facts["helper"] == "stale"
        assert all(v["state"] == "inconnu" and v["word"] == "inconnu" for v in facts["vhosts"]), facts["vhosts"]

    # No session id anywhere on the page.
    html = client.request("/cc-status").body
    for path in helper.session_dir.glob("sess_*"):
        assert path.name[5:].encode() not in html

