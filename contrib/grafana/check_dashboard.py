#!/usr/bin/env python3
"""Checks contrib/grafana/coupecircuit.json without a Grafana: the structure
Grafana needs (unique panel ids, a 24-column grid, every query on the
${datasource} variable), and every PromQL query through promtool: each one
becomes a recording rule that `promtool check rules` parses, and the state
panel's query is evaluated by `promtool test rules` on series like the
module's exposition (ok, surcharge, coupure, inconnu -> 0, 1, 2, 3).

    check_dashboard.py [path/to/promtool]      exit 0 when valid
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$instance": ".*"}


def concrete(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def main() -> int:
    promtool = sys.argv[1] if len(sys.argv) > 1 else "promtool"
    dashboard = json.loads((HERE / "coupecircuit.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "instance"], names
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    expressions = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (panel["title"], grid)
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            expressions[f"grafana:panel{panel['id']}_{target['refId']}"] = concrete(target["expr"])
    with tempfile.TemporaryDirectory() as work:
        rules = Path(work, "dashboard.rules.yml")
        lines = ["groups:", "  - name: dashboard", "    rules:"]
        for record, expr in expressions.items():
            lines += [f"      - record: {record}", f"        expr: {json.dumps(expr)}"]
        rules.write_text("\n".join(lines) + "\n")
        subprocess.run([promtool, "check", "rules", str(rules)], check=True)
        state = expressions["grafana:panel1_A"]
        series = []
        for vhost, current in (("a", "ok"), ("b", "surcharge"), ("c", "coupure"), ("d", "inconnu")):
            for name in ("ok", "surcharge", "coupure", "inconnu"):
                value = "1x5" if name == current else "0x5"
                series.append(f"      - series: 'coupecircuit_vhost_state{{job=\"coupecircuit\",instance=\"web1:80\","
                              f"vhost=\"{vhost}\",state=\"{name}\"}}'\n        values: '{value}'")
        expected = "\n".join(f"          - labels: '{{instance=\"web1:80\",vhost=\"{v}\"}}'\n            value: {n}"
                             for v, n in (("a", 0), ("b", 1), ("c", 2), ("d", 3)))
        test = Path(work, "dashboard.test.yml")
        test.write_text(f"""rule_files: [dashboard.rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
{chr(10).join(series)}
    promql_expr_test:
      - expr: {json.dumps(state)}
        eval_time: 2m
        exp_samples:
{expected}
""")
        subprocess.run([promtool, "test", "rules", str(test)], check=True, cwd=work)
    print(f"dashboard: {len(dashboard['panels'])} panels, {len(expressions)} queries valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
