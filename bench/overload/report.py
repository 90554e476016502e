"""Figures of the overload experiment: the table per run and class, the PNG
(matplotlib, Agg backend) and docs/OVERLOAD.md from its template."""

from __future__ import annotations

import string
from collections import Counter, defaultdict
from pathlib import Path

import loadgen
from loadgen import CLIENT, ERROR_5XX, FAILED, LOST, OK, SHED, TIMEOUT, percentile

HERE = Path(__file__).resolve().parent
CLASSES = ("logged-in", "new")
TRIPPED = ("surcharge", "coupure")


def class_summary(records: list[loadgen.Record]) -> dict:
    outcomes = Counter(r.outcome for r in records)
    latencies = [r.latency_ms for r in records]
    shed = [r.latency_ms for r in records if r.outcome == SHED]
    total = len(records)
    return {"requests": total, "ok": outcomes[OK], "shed": outcomes[SHED], "errors_5xx": outcomes[ERROR_5XX],
            "statuses_5xx": dict(Counter(str(r.status) for r in records if r.outcome == ERROR_5XX)),
            "timeouts": outcomes[TIMEOUT], "failed": outcomes[FAILED], "lost_session": outcomes[LOST],
            "client_errors": outcomes[CLIENT], "degraded": sum(1 for r in records if r.degraded),
            "success_rate": outcomes[OK] / total if total else None,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "shed_p99_ms": percentile(shed, 99)}


def summarize(outcome: dict, profile: loadgen.Profile, hold: int) -> dict:
    records: list[loadgen.Record] = outcome["records"]
    spike_start, spike_end = profile.crossing_up(1.0), profile.crossing_down(1.0)
    result = {"spike_start_s": round(spike_start, 1), "spike_end_s": round(spike_end, 1),
              "base_users": outcome["base_users"], "classes": {}}
    for cls in CLASSES:
        result["classes"][cls] = class_summary([r for r in records if r.cls == cls])
    users = [r for r in records if r.cls == "logged-in"]
    before = [r.latency_ms for r in users if r.t < spike_start]
    during = [r.latency_ms for r in users if spike_start <= r.t < spike_end]
    result["logged_in_p99_before_ms"] = percentile(before, 99)
    result["logged_in_p99_spike_ms"] = percentile(during, 99)
    sheds = [r.t for r in records if r.outcome == SHED]
    result["first_shed_after_spike_s"] = round(min(sheds) - spike_start, 1) if sheds else None
    result["shed_requests"] = len(sheds)
    # Release: the last second a node was seen tripped, after the spike.
    releases = {}
    for node in ("web1", "web2"):
        states = [(row["t"], row.get(f"{node}_state")) for row in outcome["samples"]]
        if not any(state is not None for _, state in states):
            continue
        tripped = [t for t, state in states if state in TRIPPED]
        if not tripped:
            releases[node] = {"tripped": False}
            continue
        last = max(tripped)
        released = last + 1 <= states[-1][0]
        releases[node] = {"tripped": True, "first_trip_s": min(tripped),
                          "release_after_spike_s": round(last + 1 - spike_end, 1) if released else None,
                          "trip_seconds": len(tripped)}
    result["nodes"] = releases
    result["hold"] = hold
    return result


def fmt_ms(value) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def fmt_pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def one_line(summary: dict) -> str:
    parts = []
    for cls in CLASSES:
        c = summary["classes"][cls]
        parts.append(f"{cls}: {c['requests']} req, ok {fmt_pct(c['success_rate'])}, shed {c['shed']}, "
                     f"5xx {c['errors_5xx']}, timeouts {c['timeouts']}, no answer {c['failed']}, "
                     f"lost session {c['lost_session']}, p99 {fmt_ms(c['p99_ms'])}")
    return "; ".join(parts) + f"; first shed {summary['first_shed_after_spike_s']} s"


# ---------------------------------------------------------------- figure

def per_second(records: list[loadgen.Record], duration: int, key) -> dict[str, list[int]]:
    series: dict[str, list[int]] = defaultdict(lambda: [0] * (duration + 1))
    for r in records:
        second = min(duration, int(r.t))
        series[key(r)][second] += 1
    return series


def figure(out: Path, result: dict, profile: loadgen.Profile) -> Path:
    import csv

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(result["runs"])
    duration = int(profile.duration) + 1
    rows_per_run = 4
    fig, axes = plt.subplots(rows_per_run * len(runs), 1, figsize=(11, 3.0 * rows_per_run * len(runs) / 1.6),
                             sharex=True, gridspec_kw={"hspace": 0.25})
    colours = {"logged-in ok": "tab:green", "new ok": "tab:blue", "shed (503 + Retry-After)": "tab:orange",
               "5xx": "tab:red", "timeout / failed": "black", "session lost": "tab:purple"}
    spike_start, spike_end = profile.crossing_up(1.0), profile.crossing_down(1.0)
    for index, name in enumerate(runs):
        records = read_records(out / f"requests-{name}.csv", csv)
        samples = loadgen_samples(out / f"samples-{name}.json")
        title = {"A": "A: without CoupeCircuit", "B": "B: with CoupeCircuit",
                 "C": "C: with CoupeCircuit, web1's helper killed in the spike"}[name]
        ax = axes[index * rows_per_run]

        def label(r: loadgen.Record) -> str:
            if r.outcome == OK:
                return f"{r.cls} ok"
            if r.outcome == SHED:
                return "shed (503 + Retry-After)"
            if r.outcome == ERROR_5XX:
                return "5xx"
            if r.outcome in (TIMEOUT, FAILED):
                return "timeout / failed"
            if r.outcome == LOST:
                return "session lost"
            return "4xx"

        series = per_second(records, duration, label)
        xs = list(range(duration + 1))
        for key, colour in colours.items():
            if key in series:
                ax.plot(xs, series[key], label=key, color=colour, linewidth=1.2)
        ax.set_ylabel("requests/s")
        ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
        ax.legend(fontsize=7, ncol=3, loc="upper left")
        # p99 latency of logged-in users per second.
        ax = axes[index * rows_per_run + 1]
        buckets: dict[int, list[float]] = defaultdict(list)
        for r in records:
            if r.cls == "logged-in":
                buckets[int(r.t)].append(r.latency_ms)
        seconds = sorted(buckets)
        ax.plot(seconds, [percentile(buckets[s], 99) for s in seconds], color="tab:green", linewidth=1.2)
        ax.set_yscale("log")
        ax.set_ylabel("p99 logged-in\n(ms)")
        # Sessions and load.
        ax = axes[index * rows_per_run + 2]
        ts = [row["t"] for row in samples]
        ax.plot(ts, [row["logged_in"] for row in samples], color="tab:green", label="users logged in (clients)")
        node_sessions = [row.get("web1_sessions") for row in samples]
        trip = result.get("thresholds", {}).get("trip")
        if any(v is not None for v in node_sessions) and result.get("sessions") == "redis":
            # One store: both helpers count the same sessions (the larger: a
            # helper killed in run C publishes nothing new).
            shared = [max((v for v in (row.get("web1_sessions"), row.get("web2_sessions")) if v is not None),
                          default=None) for row in samples]
            ax.plot(ts, shared, color="tab:olive", linestyle="--", label="SESSIONS_ACTIVES (Redis)")
            if trip:
                ax.axhline(trip, color="tab:red", linewidth=0.8, linestyle=":", label="trip")
        elif any(v is not None for v in node_sessions):
            total = [(row.get("web1_sessions") or 0) + (row.get("web2_sessions") or 0) for row in samples]
            ax.plot(ts, total, color="tab:olive", linestyle="--", label="SESSIONS_ACTIVES web1 + web2")
            if trip:
                ax.axhline(2 * trip, color="tab:red", linewidth=0.8, linestyle=":", label="2 × trip")
        ax.set_ylabel("sessions")
        twin = ax.twinx()
        twin.plot(ts, [row["load1"] for row in samples], color="grey", linewidth=0.8, label="load average (1 min)")
        twin.set_ylabel("load", color="grey")
        ax.legend(fontsize=7, loc="upper left")
        # CoupeCircuit state per node, and the offered load.
        ax = axes[index * rows_per_run + 3]
        ax.plot(ts, [row["multiple"] for row in samples], color="black", linewidth=1, label="offered load (× capacity)")
        for offset, node in ((0.0, "web1"), (0.1, "web2")):
            states = [row.get(f"{node}_state") for row in samples]
            if any(s is not None for s in states):
                ax.step(ts, [(1 if s in TRIPPED else 0) * 3.2 + offset for s in states], where="post",
                        label=f"{node} tripped", linewidth=1)
        ax.set_ylabel("× capacity /\nstate")
        ax.legend(fontsize=7, loc="upper right")
        for a in axes[index * rows_per_run:index * rows_per_run + rows_per_run]:
            a.axvspan(spike_start, spike_end, color="tab:red", alpha=0.06)
            a.grid(True, linewidth=0.3)
    axes[-1].set_xlabel("seconds (shaded: offered load above the measured capacity)")
    capacity = result["capacity"]["rps"]
    fig.suptitle(f"Overload: 2 nodes, PostgreSQL max_connections = {result['db_max_connections']}, "
                 f"capacity {capacity:.0f} requests/s, spike 3× ({result['mode']} run, {result['machine']['date']})",
                 fontsize=11)
    path = out / "overload.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def read_records(path: Path, csv) -> list[loadgen.Record]:
    with open(path, encoding="utf-8") as file:
        reader = csv.reader(file)
        next(reader)
        return [loadgen.Record(float(t), cls, page, int(status), outcome, float(latency), node, degraded == "1",
                               error, int(reused), int(request_id))
                for t, cls, page, status, outcome, latency, node, degraded, error, reused, request_id in reader]


def loadgen_samples(path: Path) -> list[dict]:
    import json
    return json.loads(path.read_text())


# ---------------------------------------------------------------- markdown

def table(result: dict) -> str:
    lines = ["| run | class | requests | success | shed (503) | 5xx | timeouts | p50 | p99 | first shed after the spike began | release after it ended |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in result["runs"].items():
        first = run["first_shed_after_spike_s"]
        releases = [n.get("release_after_spike_s") for n in run["nodes"].values() if n.get("tripped")]
        release = "–" if not releases else ", ".join("not released" if r is None else f"{r:+.0f} s" for r in releases)
        for cls in CLASSES:
            c = run["classes"][cls]
            lines.append(f"| {name} | {cls} | {c['requests']} | {fmt_pct(c['success_rate'])} | {c['shed']} | "
                         f"{c['errors_5xx']} | {c['timeouts'] + c['failed']} | {fmt_ms(c['p50_ms'])} | "
                         f"{fmt_ms(c['p99_ms'])} | {'–' if first is None else f'{first:+.0f} s'} | {release} |")
    return "\n".join(lines)


def targets(result: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for run B."""
    b = result["runs"].get("B")
    a = result["runs"].get("A")
    if b is None:
        return []
    users, new = b["classes"]["logged-in"], b["classes"]["new"]
    before, spike = b["logged_in_p99_before_ms"], b["logged_in_p99_spike_ms"]
    errors = users["errors_5xx"] + new["errors_5xx"]
    timeouts = users["timeouts"] + new["timeouts"] + users["failed"] + new["failed"]
    first = b["first_shed_after_spike_s"]
    releases = [n.get("release_after_spike_s") for n in b["nodes"].values() if n.get("tripped")]
    worst_release = None if not releases or None in releases else max(releases)
    rows = [
        ("logged-in users: ≥ 99 % of requests succeed", fmt_pct(users["success_rate"]),
         users["success_rate"] is not None and users["success_rate"] >= 0.99),
        ("logged-in p99 ≤ 2 × their p99 before the spike",
         f"{fmt_ms(spike)} vs {fmt_ms(before)} before ({spike / before:.2f} ×)" if before and spike else "–",
         bool(before and spike and spike <= 2 * before)),
        ("0 HTTP 500 and 0 timeouts for anyone",
         f"{errors} 5xx, {users['timeouts'] + new['timeouts']} timeouts, "
         f"{users['failed'] + new['failed']} connection failures "
         f"({100 * timeouts / max(1, users['requests'] + new['requests']):.2f} % of all requests)",
         errors == 0 and timeouts == 0),
        ("new visitors get 503 with Retry-After, p99 ≤ 50 ms",
         f"{new['shed']} shed, p99 {fmt_ms(new['shed_p99_ms'])}",
         new["shed"] > 0 and new["shed_p99_ms"] is not None and new["shed_p99_ms"] <= 50),
        ("first shed ≤ 5 s after the spike begins", "–" if first is None else f"{first:+.1f} s",
         first is not None and first <= 5),
        (f"release ≤ CoupeCircuitHold ({b['hold']} s) + 5 s after the spike ends",
         "–" if not releases else ", ".join("not released" if r is None else f"{r:+.0f} s" for r in releases),
         worst_release is not None and worst_release <= b["hold"] + 5),
    ]
    if a is not None:
        errors = sum(a["classes"][c]["errors_5xx"] for c in CLASSES)
        silent = sum(a["classes"][c]["timeouts"] + a["classes"][c]["failed"] for c in CLASSES)
        lost = a["classes"]["logged-in"]["lost_session"]
        rows.append(("run A shows the failure (500s or timeouts)",
                     f"{errors} 5xx (PostgreSQL refused {a['pg_too_many_clients']} connections), {silent} timeouts "
                     f"or connection failures, {lost} logged-in requests sent back to the login form",
                     errors + silent > 0))
    return rows


def c_note(result: dict) -> str:
    c = result["runs"].get("C")
    if c is None:
        return "Run C (B with one helper killed during the spike) was not part of this run (`--with-c`)."
    users, new = c["classes"]["logged-in"], c["classes"]["new"]
    return (f"**Run C** is run B with web1's `coupecircuitd` killed (SIGKILL) {result.get('c_helper_killed_at')} s "
            "into the run, just after the spike began: web1's module sees its snapshot go stale after "
            "`CoupeCircuitMaxAge` (10 s) and fails open (`inconnu`: nothing refused, no 5xx because of us), "
            "while web2 keeps its state: HAProxy drains web2 and sends the new visitors to web1, seen UP. "
            "Logged-in users: "
            f"{fmt_pct(users['success_rate'])} success, {users['errors_5xx']} 5xx, p99 {fmt_ms(users['p99_ms'])}; "
            f"new visitors: {new['shed']} shed, {new['errors_5xx']} 5xx.")


def lost_note(a: dict | None) -> str:
    if a is None:
        return "–"
    lost = a["classes"]["logged-in"]["lost_session"]
    if lost:
        return (f"{lost} requests of logged-in users came back to the login form: under overload HAProxy retried "
                "their requests on the other node (`retry-on`, `redispatch`), where their PHP session does not "
                "exist — logged out in the middle of their work.")
    return ("no logged-in user was sent back to the login form (a request retried on the other node finds its "
            "session there).")


def unanswered_note(result: dict) -> str:
    """What the requests without an answer were, from the generator's and
    HAProxy's records of this run."""
    lines = []
    for name, run in result["runs"].items():
        u = run.get("unanswered")
        if not u or not u["count"]:
            continue
        errors = ", ".join(f"{count} {error}" for error, count in u["errors"].items())
        lines.append(f"- run {name}: {u['count']} ({errors}); {u['on_reused_connection']} sent on a keep-alive "
                     f"connection reused from the pool, {u['on_new_connection']} on a new one; "
                     f"{u['logged_by_haproxy']} in HAProxy's log; longest {fmt_ms(u['latency_ms_max'])}.")
        for line in u.get("haproxy_lines", []):
            lines.append(f"  HAProxy: `{line}`")
    if not lines:
        return "No request went without an answer (connection closed before any status)."
    return ("Connection failures (status 0) are requests whose connection closed before any answer. The generator "
            "records the exception and whether the request went out on a reused keep-alive connection; HAProxy "
            "logs every request it receives with the generator's `X-Request-Id`:\n\n" + "\n".join(lines))


def markdown(result: dict, figure_name: str) -> str:
    template = string.Template((HERE / "OVERLOAD.md.in").read_text())
    machine = result["machine"]
    capacity = result["capacity"]
    rows = ["| target (run B) | measured | met |", "|---|---|---|"]
    missed = []
    for target, measured, met in targets(result):
        rows.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
        if not met:
            missed.append(target)
    a, b = result["runs"].get("A"), result["runs"].get("B")
    profile = result["profile"]
    values = {
        "date": machine["date"],
        "machine": (f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']} GB, Linux "
                    f"{machine['kernel']}, load average {machine['load_at_start'][0]:.1f} at the start "
                    "(the machine is shared: other work runs at the same time)"),
        "mode": result["mode"],
        "capacity": f"{capacity['rps']:.0f}",
        "capacity_p50": fmt_ms(capacity["p50_ms"]),
        "capacity_p99": fmt_ms(capacity["p99_ms"]),
        "capacity_clients": str(capacity["clients"]),
        "think": f"{result['think']:.0f}",
        "timeout": f"{result['timeout']:.0f}",
        "hold": str(result["hold"]),
        "trip": str(result["thresholds"]["trip"]),
        "release": str(result["thresholds"]["release"]),
        "base_users": str(b["base_users"] if b else a["base_users"]),
        "phases": (f"{profile['base']:.0f} s at 0.5×, {profile['up']:.0f} s ramp to 3×, {profile['peak']:.0f} s at "
                   f"3×, {profile['down']:.0f} s ramp down, {profile['cool']:.0f} s at 0.5×"),
        "table": table(result),
        "targets": "\n".join(rows),
        "missed": ("Every target is met in this run." if not missed else
                   "Missed in this run: " + "; ".join(missed) + ". See the notes below and *Limits*."),
        "a_pg_refused": str(a["pg_too_many_clients"]) if a else "–",
        "a_lost_note": lost_note(a),
        "unanswered_note": unanswered_note(result),
        "sessions_setup": (
            "one `redis-server` for both nodes, PHP's `session.save_handler = redis` (phpredis), keyspace "
            "notifications on; each node's `coupecircuitd` counts the sessions of that Redis "
            "(`save_handler = redis` in its configuration), so both see the whole site's sessions."
            if result.get("sessions") == "redis" else
            "PHP's files handler, each node its own directory counted by its own `coupecircuitd`: a user "
            "must stay on his node (sticky sessions at the load balancer, the configuration of seed 001)."),
        "threshold_scope": ("capacity × think time: every helper counts the one Redis, so a node's threshold "
                            "is the site's" if result.get("sessions") == "redis"
                            else "capacity × think time / 2 nodes"),
        "lb_setup": (
            "cookie persistence, the health check (`DRAIN` keeps the node's logged-in users, sends new visitors "
            "elsewhere), the agent check, `retry-on 503` with redispatch, and a 503 page with `Retry-After` when "
            "no node takes new visitors. (`--lb roundrobin` gives seed 004's plain round robin.)"
            if result.get("balance", "sticky") == "sticky" else
            "plain round robin as in seed 004: no persistence, no drain and no agent (a node is down only when "
            "it does not answer), `retry-on 503` with redispatch; each node sheds new visitors itself "
            "(`refuse-new`, the application)."),
        "a_failed": str(sum(a["classes"][c]["failed"] + a["classes"][c]["timeouts"] for c in CLASSES)) if a else "–",
        "a_users_success": fmt_pct(a["classes"]["logged-in"]["success_rate"]) if a else "–",
        "b_users_success": fmt_pct(b["classes"]["logged-in"]["success_rate"]) if b else "–",
        "c_note": c_note(result),
        "a_php_failures": str(a["php_db_connection_failures"]) if a else "–",
        "b_pg_refused": str(b["pg_too_many_clients"]) if b else "–",
        "figure": figure_name,
        "elapsed": f"{result['elapsed_seconds']:.0f}",
        "fpm_children": str(result["fpm_children"]),
        "db_max_connections": str(result["db_max_connections"]),
    }
    return template.substitute(values)
