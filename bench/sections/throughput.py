"""2. Throughput: wrk A/B, with and without mod_coupecircuit, side by side."""
import re

from lib.common import HardCheckFailed, PROCS, free_port, group_cpu_ns, http_get, log, med, run, spread, wait_http


def wrk(bench, port, path, seconds, server=None):
    """Requests per second, and the server's CPU time per request (all
    processes of its group) when `server` is given."""
    cpu0 = group_cpu_ns(server.pid) if server else 0
    result = run(["wrk", "-t2", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"], timeout=seconds + 60)
    cpu1 = group_cpu_ns(server.pid) if server else 0
    text = result.stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if not match or not total:
        raise HardCheckFailed(f"wrk output not understood: {text}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if bad and int(bad.group(1)) > 0:
        raise HardCheckFailed(f"wrk saw {bad.group(1)} error responses on port {port}{path}")
    return float(match.group(1)), (cpu1 - cpu0) / max(1, int(total.group(1))) / 1000.0

WORKLOADS = (  # (kind, MPM, features, path, label)
    ("static", "event", [], "/static.txt", "static file (mpm_event)"),
    ("php", "prefork", ["php"], "/server.php", "PHP page reading $_SERVER (prefork + mod_php)"),
)


def check_php_pages(port_a, port_b, path):
    """The page sees the seven values through the module, none without it."""
    _, body_a = http_get(port_a, path)
    _, body_b = http_get(port_b, path)
    fields_b = body_b.strip().split(" ")
    if len(fields_b) != 8 or "" in fields_b:
        raise HardCheckFailed(f"PHP with mod_coupecircuit does not see the values: {body_b!r}")
    if body_a.strip() != path:
        raise HardCheckFailed(f"PHP without the module sees values: {body_a!r}")


def interleaved_pairs(bench, kind, servers, path, pairs, seconds):
    """wrk on A then B, B then A, ...: requests/s and server CPU per request."""
    (port_a, a), (port_b, b) = servers
    out = {"without": [], "with": [], "ratios": [], "cpu_a": [], "cpu_b": [], "cpu_ratios": []}
    for i in range(pairs):
        order = [("a", port_a, a), ("b", port_b, b)] if i % 2 == 0 else [("b", port_b, b), ("a", port_a, a)]
        got = {}
        for label, port, server in order:
            got[label] = wrk(bench, port, path, seconds, server)
        out["without"].append(got["a"][0])
        out["with"].append(got["b"][0])
        out["ratios"].append(got["b"][0] / got["a"][0])
        out["cpu_a"].append(got["a"][1])
        out["cpu_b"].append(got["b"][1])
        out["cpu_ratios"].append(got["b"][1] / got["a"][1])
        log(f"  {kind} pair {i + 1}/{pairs}: without {got['a'][0]:.0f} req/s, with {got['b'][0]:.0f} req/s, "
            f"ratio {out['ratios'][-1]:.3f}; server CPU/request ratio {out['cpu_ratios'][-1]:.3f}")
    return out


def measure_workload(bench, kind, mpm, features, path, pairs, seconds):
    """Two servers side by side, without and with mod_coupecircuit."""
    snapshot = bench.module_helper["snapshot"]
    port_a, port_b = free_port(), free_port()
    conf_a = bench.apache_conf(f"wrk-{kind}-without", port_a, mpm, features, bench.docroot, switch_user=True)
    conf_b = bench.apache_conf(f"wrk-{kind}-with", port_b, mpm, features + ["cc"], bench.docroot,
                               switch_user=True, snapshot=snapshot)
    a = PROCS.start([bench.apache_bin, "-DFOREGROUND", "-f", conf_a], bench.path("logs", f"wrk-{kind}-a.log"))
    b = PROCS.start([bench.apache_bin, "-DFOREGROUND", "-f", conf_b], bench.path("logs", f"wrk-{kind}-b.log"))
    try:
        wait_http(port_a, path, process=a)
        wait_http(port_b, path, process=b)
        if kind == "php":
            check_php_pages(port_a, port_b, path)
        # Warm both (workers forked, opcache filled).
        wrk(bench, port_a, path, 1)
        wrk(bench, port_b, path, 1)
        return interleaved_pairs(bench, kind, ((port_a, a), (port_b, b)), path, pairs, seconds)
    finally:
        PROCS.stop(a)
        PROCS.stop(b)


def run_section(bench):
    log("2. throughput A/B (wrk -t2 -c16, keep-alive)")
    pairs = 4 if bench.quick else 12
    seconds = 2 if bench.quick else 3
    raw = {}
    table = ["| Workload | req/s without (median) | req/s with (median) | Ratio with/without (median) | min–max | "
             "Server CPU / request without / with | CPU ratio with/without (min–max) | Pairs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, mpm, features, path, label in WORKLOADS:
        m = measure_workload(bench, kind, mpm, features, path, pairs, seconds)
        ratios, cpu_ratios = m["ratios"], m["cpu_ratios"]
        raw[kind] = {"without": m["without"], "with": m["with"], "ratios": ratios, "mpm": mpm,
                     "cpu_us_per_request_without": m["cpu_a"], "cpu_us_per_request_with": m["cpu_b"],
                     "cpu_ratios": cpu_ratios}
        table.append(f"| {label} | {med(m['without']):,.0f} | {med(m['with']):,.0f} | {med(ratios):.3f} | "
                     f"{spread(ratios, '{:.3f}')} | {med(m['cpu_a']):.1f} / {med(m['cpu_b']):.1f} µs | "
                     f"{med(cpu_ratios):.3f} ({spread(cpu_ratios, '{:.3f}')}) | {pairs} |")
        bench.rows.append({"section": "2", "what": f"Throughput, {label}: with / without module",
                           "value": f"{med(ratios):.3f}", "spread": spread(ratios, "{:.3f}"), "target": "≥ 0.99",
                           "met": med(ratios) >= 0.99})
    bench.details.append(("2. Throughput A/B (wrk)",
                          f"`wrk -t2 -c16 -d{seconds}s`, keep-alive, {pairs} interleaved pairs (order alternates "
                          "A-B, B-A), both servers running side by side on 127.0.0.1, one warm-up run each. "
                          "Ratio = requests/s with mod_coupecircuit ÷ requests/s without, per pair. wrk and "
                          "Apache share the machine's CPUs. Server CPU per request: user + system time of all "
                          "the server's processes (/proc/<pid>/task/*/schedstat) during the run ÷ requests served; "
                          "less sensitive than requests/s to other load on the machine.\n\n" + "\n".join(table)))
    bench.results["sections"]["throughput"] = raw
