"""Probe results in coupecircuitd: the file coupecircuit-probes writes is read
as untrusted input into the snapshot's probe table (docs/SECURITY.md).

These tests write the results file themselves, to exercise what a faulty or
hostile writer could hand over; the end-to-end tests with the real
coupecircuit-probes and PostgreSQL are in test_probes_postgresql.py."""

import json
import os
import time
from pathlib import Path

import pytest

import harness

STALE_AFTER_MS = 60_000


def probe(name: str, status: str = "up", critical: bool = False, saturation: int | None = None,
          error: str = "", kind: str = "tcp") -> dict:
    entry = {"name": name, "type": kind, "critical": critical, "status": status,
             "since_wall_s": int(time.time()) - 30, "latency_us": 1500, "error": error}
    if saturation is not None:
        entry["saturation_pct"] = saturation
    return entry


def results(*probes: dict, written_ms: int | None = None, stale_after_ms: int = STALE_AFTER_MS) -> str:
    document = {"format": "coupecircuit-probes/1",
                "written_wall_ms": int(time.time() * 1000) if written_ms is None else written_ms,
                "pid": os.getpid(), "stale_after_ms": stale_after_ms, "probes": list(probes)}
    return json.dumps(document)


def replace_file(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """As coupecircuit-probes does: a temporary file renamed over the path."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(content.encode() if isinstance(content, str) else content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def probes_of(helper: harness.Helper) -> dict:
    return helper.status()[1]["probes"]


def wait_probes(helper: harness.Helper, condition, what: str, timeout: float = 10.0) -> dict:
    value, _ = harness.wait_for(lambda: probes_of(helper), condition, timeout, what)
    return value


class TestProbeResultsInHelper:
    """One helper for the class; each test writes the results file it needs."""

    @pytest.fixture(scope="class")
    def setup(self, make_class_helper, class_run_dir, class_logs):
        results_path = class_run_dir / "probes.json"
        results_path.unlink(missing_ok=True)
        class_logs.allow(r"CC0550 .*probe results .*(invalid|not a regular|world-writable|larger than|"
                         r"Too many levels|probe name|duplicate)")
        class_logs.allow(r"CC0551 ")
        helper = make_class_helper(config_extra=f"\n[probes]\nresults = {results_path}\n"
                                                f"[probe pg]\ntype = postgresql\nconninfo_file = /nonexistent\n")
        return helper, results_path

    def test_a_missing_file_is_stale_every_probe_unknown(self, setup):
        helper, _ = setup
        table = probes_of(helper)
        assert table["configured"] is True
        assert table["stale"] is True
        assert table["down"] == [] and table["critical_down"] is False
        assert "CC0551" in helper.log_text() and "no probe results file" in helper.log_text()

    def test_valid_results_fill_the_table(self, setup):
        helper, path = setup
        replace_file(path, results(probe("pg", critical=True, saturation=57, kind="postgresql"),
                                   probe("elastic", status="down", critical=True, error="timeout after 2000 ms"),
                                   probe("cache", status="down")))
        table = wait_probes(helper, lambda t: not t["stale"], "fresh probe results")
        assert [c["name"] for c in table["checks"]] == ["pg", "elastic", "cache"]
        assert table["down"] == ["elastic", "cache"]
        assert table["critical_down"] is True
        assert table["checks"][0]["saturation_percent"] == 57
        assert "saturation_percent" not in table["checks"][1]
        assert table["checks"][1]["error"] == "timeout after 2000 ms"
        text = helper.ctl("status").stdout
        assert "down: elastic,cache" in text and "saturation 57 %" in text

    @pytest.mark.parametrize("bad", ["garbage", "oversized", "control-character-name", "seventeen", "duplicate",
                                     "symlink", "world-writable", "fifo"])
    def test_bad_input_is_ignored_with_a_log_line(self, setup, bad):
        helper, path = setup
        good = results(probe("pg", critical=True, saturation=40, kind="postgresql"), probe("elastic"))
        replace_file(path, good)
        before = wait_probes(helper, lambda t: not t["stale"] and t["checks"][0].get("saturation_percent") == 40,
                             "the good results in use")
        log_size = helper.log_path.stat().st_size
        if bad == "garbage":
            replace_file(path, b"\x00\xffnot json at all{")
        elif bad == "oversized":
            replace_file(path, results(probe("pg", status="down")) + " " * 70_000)
        elif bad == "control-character-name":
            replace_file(path, results(probe("pg\u001b[2J", status="down")))
        elif bad == "seventeen":
            replace_file(path, results(*[probe(f"p{i}", status="down") for i in range(17)]))
        elif bad == "duplicate":
            replace_file(path, results(probe("pg", status="down"), probe("pg", status="down")))
        elif bad == "symlink":
            target = path.with_name("elsewhere.json")
            replace_file(target, results(probe("pg", status="down")))
            link = path.with_name("link.tmp")
            link.unlink(missing_ok=True)
            link.symlink_to(target)
            os.replace(link, path)
        elif bad == "world-writable":
            replace_file(path, results(probe("pg", status="down")), mode=0o666)
        elif bad == "fifo":
            fifo = path.with_name("fifo.tmp")
            fifo.unlink(missing_ok=True)
            os.mkfifo(fifo)
            os.replace(fifo, path)

        def logged():
            with open(helper.log_path, "rb") as log:
                log.seek(log_size)
                return log.read().decode(errors="replace")

        # The first invalid file of the class is logged at once; later ones
        # within the minute are counted (rate limit), so the line is not
        # required for each, but the table must never change.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert probes_of(helper)["checks"] == before["checks"], f"{bad} changed the probe table"
            time.sleep(0.2)
        assert not probes_of(helper)["stale"]
        if bad == "garbage":
            assert "CC0550" in logged(), "no log line for an invalid results file"
        assert "\x1b" not in helper.log_text()

    def test_old_results_are_stale_never_up(self, setup):
        helper, path = setup
        replace_file(path, results(probe("pg", critical=True, saturation=10), probe("elastic", status="down"),
                                   written_ms=int(time.time() * 1000) - 20_000, stale_after_ms=5_000))
        table = wait_probes(helper, lambda t: t["stale"] and [c["name"] for c in t["checks"]] == ["pg", "elastic"],
                            "stale results with their names")
        assert all(c["status"] == "unknown" for c in table["checks"])
        assert table["down"] == [] and table["critical_down"] is False
        assert all("saturation_percent" not in c for c in table["checks"])


HEALTH_LINES = ['<Location "/health">', "    SetHandler coupecircuit-health", "</Location>",
                '<Location "/health-token">', "    SetHandler coupecircuit-health",
                "    CoupeCircuitHealthToken s3cret-token-of-the-test", "</Location>"]
PROBE_VARIABLES = ["COUPECIRCUIT_INDISPONIBLE", "SATURATION_PG", "SATURATION_MAIN_DB", "SATURATION_ELASTIC"]


@pytest.mark.parametrize("variant", ["prefork", "event"], scope="class")
class TestProbesThroughApache:
    """One helper and one Apache per variant: $_SERVER and the health check
    follow the results file the test writes."""

    @pytest.fixture(scope="class")
    def servers(self, variant, make_class_helper, make_class_apache, paths, class_run_dir, class_logs):
        if not paths.module.is_file():
            pytest.skip(f"mod_coupecircuit.so not built ({paths.module})")
        results_path = class_run_dir / f"probes-{variant}.json"
        results_path.unlink(missing_ok=True)
        class_logs.allow(r"CC0551 ")
        helper = make_class_helper(name=f"helper-{variant}", config_extra=f"\n[probes]\nresults = {results_path}\n")
        vhosts = [harness.VirtualHost("default.test"),
                  harness.VirtualHost("sat.test", ["CoupeCircuitThreshold saturation:pg 80 70", "CoupeCircuitHold 1"])]
        apache = make_class_apache(variant, helper, with_module=True, server_lines=HEALTH_LINES, vhosts=vhosts)
        return helper, apache, results_path

    def publish(self, servers, *probes: dict, **options) -> None:
        helper, _, path = servers
        replace_file(path, results(*probes, **options))
        names = [p["name"] for p in probes]
        wait_probes(helper, lambda t: not t["stale"] and [c["name"] for c in t["checks"]] == names
                    and [c["status"] for c in t["checks"]] == [p["status"] for p in probes]
                    and [c.get("saturation_percent") for c in t["checks"]] ==
                    [p.get("saturation_pct") if p["status"] == "up" else None for p in probes],
                    "the results in the snapshot")

    def env(self, apache) -> dict:
        return apache.client().env(extra=PROBE_VARIABLES)

    def test_stale_results_export_nothing_and_stay_up(self, servers):
        _, apache, _ = servers
        env = self.env(apache)
        assert env["COUPECIRCUIT_INDISPONIBLE"] is None
        assert env["SATURATION_PG"] is None
        health = apache.client().request("/health")
        assert (health.status, health.body) == (200, b"UP probes-inconnues\n")

    def test_saturation_and_down_list_reach_php(self, servers):
        _, apache, _ = servers
        self.publish(servers, probe("pg", critical=True, saturation=57, kind="postgresql"),
                     probe("main-db", saturation=80, kind="postgresql"), probe("elastic"))
        env = self.env(apache)
        assert env["COUPECIRCUIT_INDISPONIBLE"] == ""
        assert env["SATURATION_PG"] == "57"
        assert env["SATURATION_MAIN_DB"] == "80"
        assert env["SATURATION_ELASTIC"] is None  # no saturation measured
        assert env["COUPECIRCUIT_ETAT"] == "ok"
        assert apache.client().env(host="sat.test")["COUPECIRCUIT_ETAT"] == "ok"  # 57 % < TRIP 80 %
        self.publish(servers, probe("pg", critical=True, saturation=100, kind="postgresql"),
                     probe("main-db", status="down", kind="postgresql"), probe("elastic", status="down"))
        env = self.env(apache)
        assert env["COUPECIRCUIT_INDISPONIBLE"] == "main-db,elastic"
        assert env["SATURATION_PG"] == "100"
        # saturation:pg 80 trips sat.test only, through the same verdict and health.
        assert env["COUPECIRCUIT_ETAT"] == "ok"
        assert apache.client().env(host="sat.test")["COUPECIRCUIT_ETAT"] == "surcharge"
        tripped = apache.client().request("/health", host="sat.test")
        assert (tripped.status, tripped.body) == (503, b"DRAIN surcharge\n")
        assert env["SATURATION_MAIN_DB"] is None  # down: no measurement
        health = apache.client().request("/health")
        assert (health.status, health.body) == (200, b"UP\n")  # nothing critical down

    def test_a_critical_probe_down_drains_the_health_check(self, servers):
        _, apache, _ = servers
        self.publish(servers, probe("pg", status="down", critical=True, kind="postgresql", error="connection refused"),
                     probe("elastic", status="down", critical=True), probe("cache", status="down"))
        health = apache.client().request("/health")
        assert health.status == 503
        assert health.body == b"DRAIN indisponible:pg,elastic\n"
        as_json = apache.client().request("/health?format=health+json")
        assert as_json.status == 503
        assert as_json.header("Content-Type") == "application/health+json"
        document = as_json.json()
        assert document["status"] == "fail"
        assert document["checks"]["pg:responseTime"][0]["status"] == "fail"
        assert document["checks"]["pg:responseTime"][0]["output"] == "connection refused"
        assert document["checks"]["cache:responseTime"][0]["status"] == "warn"
        # A wrong token keeps 401 (not 511) and tells nothing.
        wrong = apache.client().request("/health-token?format=health+json",
                                        headers={"Authorization": "Bearer wrong"})
        assert wrong.status == 401 and b"pg" not in wrong.body
        right = apache.client().request("/health-token", headers={"Authorization": "Bearer s3cret-token-of-the-test"})
        assert right.status == 503
        # Pages keep working: a probe down never makes Apache fail a request.
        assert apache.client().request("/index.html").status == 200

    def test_back_up_is_up(self, servers):
        _, apache, _ = servers
        # pg down (previous test): its saturation threshold neither tripped nor released sat.test.
        assert apache.client().env(host="sat.test")["COUPECIRCUIT_ETAT"] == "surcharge"
        self.publish(servers, probe("pg", critical=True, saturation=10, kind="postgresql"))
        health = apache.client().request("/health")
        assert (health.status, health.body) == (200, b"UP\n")
        harness.wait_for(lambda: apache.client().env(host="sat.test")["COUPECIRCUIT_ETAT"], lambda v: v == "ok", 10,
                         "sat.test released under RELEASE 70 % after its hold")
        document = apache.client().request("/health?format=health+json").json()
        assert document["status"] == "pass"
        assert document["checks"]["pg:utilization"][0]["observedValue"] == 10


def test_a_bad_saturation_threshold_fails_configtest_naming_file_and_line(make_helper, make_apache, paths):
    if not paths.module.is_file():
        pytest.skip(f"mod_coupecircuit.so not built ({paths.module})")
    helper = make_helper(start=False)
    for line, why in (("CoupeCircuitThreshold saturation:p\\x01g 80", "character outside"),
                      ("CoupeCircuitThreshold saturation:pg 0", "whole percentage"),
                      ("CoupeCircuitThreshold saturation:pg 80 90", "RELEASE")):
        apache = make_apache("prefork", helper, start=False, with_module=True, server_lines=[line],
                             name=f"apache-{abs(hash(line))}")
        result = apache.configtest()
        assert result.returncode != 0, line
        output = result.stdout + result.stderr
        assert "CoupeCircuitThreshold" in output and why in output, output
        assert f"line {apache.line_of(line.split()[1])}" in output, output
