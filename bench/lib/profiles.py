"""Readers of callgrind, strace -c and perf outputs."""
import os
import re
import subprocess


def callgrind_rows(path, inclusive):
    """(cost, location) of each function row of callgrind_annotate's report
    (self or inclusive cost), with the PROGRAM TOTALS row."""
    result = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100",
                             path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in result.stdout.splitlines():
        match = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\))?\s*(.*)$", line)
        if match:
            yield int(match.group(1).replace(",", "")), match.group(2).strip()


def callgrind_functions(path):
    """Self instruction cost per function of one callgrind output."""
    costs = {}
    for cost, location in callgrind_rows(path, inclusive=False):
        if ":" not in location:
            continue
        function = re.sub(r"'\d+", "", location.partition(":")[2])
        library = ""
        m = re.search(r"\[(.*)\]\s*$", function)
        if m:
            library = os.path.basename(m.group(1))
            function = function[:m.start()].strip()
        function = function.replace("(anonymous namespace)::", "")
        if "(" in function:
            function = function[:function.index("(")] + "()"
        if function.startswith("0x"):
            function = "(anonymous code)"
        key = f"{function} [{library}]" if library else function
        costs[key] = costs.get(key, 0) + cost
    return costs


def callgrind_delta(run, baseline):
    """Per-request self cost per function of `run` minus `baseline`, each
    given as (N, output with N requests, output with 2N requests)."""
    def per_request(entry):
        n, small, large = entry
        a, b = callgrind_functions(small), callgrind_functions(large)
        return {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}
    x, y = per_request(run), per_request(baseline)
    delta = {k: x.get(k, 0) - y.get(k, 0) for k in set(x) | set(y)}
    return sorted(((k, v) for k, v in delta.items() if abs(v) >= 1), key=lambda kv: -kv[1])


def parse_strace_c(path):
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                try:
                    calls[fields[-1]] = int(fields[3])
                except ValueError:
                    continue
    return calls


def callgrind_inclusive(path):
    costs = {}
    for cost, location in callgrind_rows(path, inclusive=True):
        if location.startswith("PROGRAM TOTALS"):
            costs["PROGRAM TOTALS"] = cost
            continue
        if ":" not in location:
            continue
        function = location.partition(":")[2]
        function = re.sub(r"\s*\[[^\]]*\]\s*$", "", function).replace("(anonymous namespace)::", "")
        if "(" in function:
            function = function[:function.index("(")]
        costs[function] = max(costs.get(function, 0), cost)
    return costs


def top_functions(inclusive, total):
    """The program's own functions below main, and libc/libstdc++ entry points."""
    skip = ("main", "(below main)", "__libc_start_main", "__libc_start_call_main", "PROGRAM TOTALS",
            "coupecircuit::run_daemon", "_start")
    rows = [(name, cost) for name, cost in inclusive.items()
            if name and not name.startswith("0x") and not name.startswith("_dl") and name not in skip
            and cost < total * 0.97]
    return sorted(rows, key=lambda kv: -kv[1])


def perf_tables(data):
    def report(sort):
        result = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        rows = []
        for line in result.stdout.splitlines():
            match = re.match(r"\s*([\d.]+)%\s+(.*?)\s*(?:-\s+-\s*)?$", line)
            if match:
                rows.append((float(match.group(1)), match.group(2).strip()))
        return rows
    split = ", ".join(f"{name} {pct:.1f} %" for pct, name in report("dso")[:5])
    table = ["| Symbol | Self time |", "|---|---:|"]
    for pct, name in report("symbol")[:15]:
        name = re.sub(r"\s+", " ", name).replace("(anonymous namespace)::", "")
        if len(name) > 90:
            name = name[:87] + "..."
        table.append(f"| `{name}` | {pct:.1f} % |")
    return f"By object: {split}.\n\n" + "\n".join(table)
