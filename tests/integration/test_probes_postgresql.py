"""End to end: a real PostgreSQL (max_connections = 30), the real
coupecircuit-probes, coupecircuitd and Apache with mod_php. What PHP and the
load balancer see while the database fills up, stops, and while the probes
program is killed."""

import os
import signal
import time
from pathlib import Path

import pytest

import harness
from probes_harness import PgClient, Postgres, Probes, probes_binary

PERIOD_S = 0.5
RISE = 2
FALL = 3
# The helper reads the results once a second; the module sees a new snapshot at once.
HELPER_TICK_S = 1.0
SLACK_S = 2.0  # a loaded shared machine


class TestProbesWithPostgresql:
    """One PostgreSQL, one coupecircuit-probes, one helper, one Apache for
    the class; the tests run in order (saturation, down, probes killed)."""

    @pytest.fixture(scope="class")
    def servers(self, paths, make_class_helper, make_class_apache, class_run_dir, class_logs):
        if not Path("/usr/lib/postgresql/15/bin/postgres").exists():
            pytest.skip("PostgreSQL 15 is needed")
        if not probes_binary(paths).is_file() or not paths.module.is_file():
            pytest.skip("coupecircuit-probes or mod_coupecircuit.so not built")
        postgres = Postgres(max_connections=30).start()
        conninfo = class_run_dir / "pg.conninfo"
        conninfo.write_text(f"host=127.0.0.1 port={postgres.port} dbname=app user=app\n")
        os.chmod(conninfo, 0o600)
        probe_section = (f"[probe pg]\ntype = postgresql\nconninfo_file = {conninfo}\nperiod = {int(PERIOD_S * 1000)}ms\n"
                         f"timeout = 1\nrise = {RISE}\nfall = {FALL}\ncritical = yes\n")
        probes = Probes(paths, class_run_dir / "probes", probe_section)
        probes.results_path.parent.mkdir(parents=True, exist_ok=True)
        class_logs.watch(probes.log_path, harness.HELPER_BAD_LINE)
        class_logs.allow(r"CC0551 ")  # the helper starts before the first results and sees them go stale
        class_logs.allow(r"CC05[0-4][0-9] .*pg")  # coupecircuit-probes says when pg goes down
        helper = make_class_helper(config_extra=f"\n[probes]\nresults = {probes.results_path}\n\n{probe_section}")
        vhosts = [harness.VirtualHost("default.test"),
                  harness.VirtualHost("sat.test", ["CoupeCircuitThreshold saturation:pg 80 70", "CoupeCircuitHold 1"])]
        apache = make_class_apache("prefork", helper, with_module=True, vhosts=vhosts,
                                   server_lines=['<Location "/health">', "    SetHandler coupecircuit-health",
                                                 "</Location>"])
        probes.start()
        clients: list[PgClient] = []
        yield postgres, probes, helper, apache, clients
        for client in clients:
            client.close()
        probes.stop()
        postgres.remove()

    @staticmethod
    def saturation(apache, host: str = "default.test") -> dict:
        return apache.client().env(host=host, extra=["SATURATION_PG", "COUPECIRCUIT_INDISPONIBLE"])

    def test_saturation_follows_clients_and_trips_the_vhost(self, servers):
        postgres, probes, helper, apache, clients = servers
        env, _ = harness.wait_for(lambda: self.saturation(apache), lambda e: e["SATURATION_PG"] is not None, 15,
                                  "SATURATION_PG in $_SERVER")
        assert int(env["SATURATION_PG"]) <= 10 and env["COUPECIRCUIT_INDISPONIBLE"] == ""
        # A logged-in user.
        user = apache.client(host="sat.test")
        assert user.request("/login.php").status == 200
        # max_connections 30 - 3 reserved = 27 usable: 22 clients + the probe's own = 85 %.
        clients += [PgClient(postgres.port) for _ in range(22)]
        started = time.monotonic()
        env, waited = harness.wait_for(lambda: self.saturation(apache), lambda e: int(e["SATURATION_PG"] or 0) >= 80,
                                       PERIOD_S * RISE + HELPER_TICK_S + SLACK_S, "SATURATION_PG >= 80")
        assert waited <= PERIOD_S * RISE + HELPER_TICK_S + SLACK_S
        sat = self.saturation(apache, "sat.test")
        assert sat["COUPECIRCUIT_ETAT"] == "surcharge", sat  # saturation:pg 80 reached
        assert self.saturation(apache)["COUPECIRCUIT_ETAT"] == "ok"  # the other vhost has no such threshold
        clients += [PgClient(postgres.port) for _ in range(5)]
        env, _ = harness.wait_for(lambda: self.saturation(apache), lambda e: e["SATURATION_PG"] == "100",
                                  PERIOD_S * RISE + HELPER_TICK_S + SLACK_S, "SATURATION_PG 100")
        # Logged-in users keep getting 200 from PHP while the vhost is tripped.
        assert user.request("/env.php").status == 200
        assert time.monotonic() - started < 30
        for client in clients:
            client.close()
        clients.clear()
        harness.wait_for(lambda: self.saturation(apache, "sat.test"), lambda e: e["COUPECIRCUIT_ETAT"] == "ok", 15,
                         "sat.test released once the clients left")

    def test_postgresql_stopped_is_down_and_drains(self, servers):
        postgres, probes, helper, apache, _ = servers
        postgres.stop()
        health, waited = harness.wait_for(lambda: apache.client().request("/health"), lambda r: r.status == 503,
                                          PERIOD_S * FALL + 1.0 + HELPER_TICK_S + SLACK_S, "health 503 once pg stops")
        assert health.body == b"DRAIN indisponible:pg\n"
        env = self.saturation(apache)
        assert env["COUPECIRCUIT_INDISPONIBLE"] == "pg"
        assert env["SATURATION_PG"] is None
        # Pages still answer: a dependency down is the application's to handle.
        assert apache.client().request("/index.html").status == 200

    def test_probes_killed_is_stale_never_up(self, servers):
        _, probes, helper, apache, _ = servers
        probes.process.send_signal(signal.SIGKILL)
        probes.process.wait(10)
        table, _ = harness.wait_for(lambda: helper.status()[1]["probes"], lambda t: t["stale"], 20,
                                    "the helper flags the probe results stale")
        assert all(check["status"] == "unknown" for check in table["checks"])
        health = apache.client().request("/health")
        assert (health.status, health.body) == (200, b"UP probes-inconnues\n")
        env = self.saturation(apache)
        assert env["COUPECIRCUIT_INDISPONIBLE"] is None and env["SATURATION_PG"] is None
        assert apache.client().request("/env.php").status == 200
