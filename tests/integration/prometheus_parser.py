"""A strict parser of the Prometheus text exposition format, version 0.0.4.

It accepts only what the format allows and raises PrometheusFormatError
(with the line number) on anything else:

  * lines end with "\\n", the text too; no carriage return;
  * "# HELP name text" (text escapes: \\\\ and \\n only), at most one per name;
  * "# TYPE name counter|gauge|histogram|summary|untyped", at most one per
    name, before the first sample of its family; other "# ..." lines are
    comments;
  * samples: name [{label="value",...}] value [timestamp] where names match
    [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not
    starting with "__", no duplicate in one sample), label values escape
    only \\\\, \\" and \\n; values are Go floats (or NaN, +Inf, -Inf);
    timestamps are integers (milliseconds);
  * the lines of one metric family are contiguous;
  * no two samples with the same name and label set.

Two checks go beyond the format and are enabled by default, as conventions
the CoupeCircuit status page follows: every sample's family has a TYPE line
(declared_types), and counters are named *_total (counter_total_suffix).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# strconv.ParseFloat syntax (decimal; no hex floats, no underscores), plus
# the special values the format names.
FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
SPECIAL_FLOATS = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf}
TIMESTAMP = re.compile(r"-?\d+")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


class PrometheusFormatError(ValueError):
    def __init__(self, line_number: int, message: str, line: str = ""):
        super().__init__(f"line {line_number}: {message}" + (f": {line!r}" if line else ""))
        self.line_number = line_number


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp: int | None = None

    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.name, tuple(sorted(self.labels.items()))


@dataclass
class Family:
    name: str
    type: str = "untyped"
    typed: bool = False
    help: str | None = None
    samples: list[Sample] = field(default_factory=list)


@dataclass
class Exposition:
    families: dict[str, Family]

    def family(self, name: str) -> Family:
        assert name in self.families, f"no metric family {name!r} (have {sorted(self.families)})"
        return self.families[name]

    def samples(self, name: str) -> list[Sample]:
        return [s for family in self.families.values() for s in family.samples if s.name == name]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample with exactly these labels."""
        found = [s for s in self.samples(name) if s.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {len(found)} sample(s) among {self.samples(name)}"
        return found[0].value


def _unescape_help(text: str, number: int) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "\\n":
                raise PrometheusFormatError(number, "bad escape in HELP text", text)
            out.append("\\" if text[i + 1] == "\\" else "\n")
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _parse_labels(text: str, start: int, number: int, line: str) -> tuple[dict[str, str], int]:
    """Parses from the character after "{"; returns the labels and the index
    after "}"."""
    labels: dict[str, str] = {}
    i = start
    while True:
        if i < len(text) and text[i] == "}":
            return labels, i + 1
        match = LABEL_NAME.match(text, i)
        if not match:
            raise PrometheusFormatError(number, f"bad label name at column {i + 1}", line)
        name = match.group(0)
        if name.startswith("__"):
            raise PrometheusFormatError(number, f"reserved label name {name!r}", line)
        if name in labels:
            raise PrometheusFormatError(number, f"duplicate label {name!r}", line)
        i = match.end()
        if text[i:i + 2] != '="':
            raise PrometheusFormatError(number, f'expected =" after label {name!r}', line)
        i += 2
        value = []
        while True:
            if i >= len(text):
                raise PrometheusFormatError(number, f"unterminated value of label {name!r}", line)
            c = text[i]
            if c == '"':
                i += 1
                break
            if c == "\\":
                escaped = text[i + 1:i + 2]
                if escaped not in ("\\", '"', "n"):
                    raise PrometheusFormatError(number, f"bad escape in the value of label {name!r}", line)
                value.append("\n" if escaped == "n" else escaped)
                i += 2
                continue
            if c == "\n":
                raise PrometheusFormatError(number, "raw newline in a label value", line)
            value.append(c)
            i += 1
        labels[name] = "".join(value)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i < len(text) and text[i] == "}":
            return labels, i + 1
        raise PrometheusFormatError(number, f"expected , or }} after label {name!r}", line)


def _parse_value(token: str, number: int, line: str) -> float:
    if token in SPECIAL_FLOATS:
        return SPECIAL_FLOATS[token]
    if not FLOAT.fullmatch(token):
        raise PrometheusFormatError(number, f"bad sample value {token!r}", line)
    return float(token)


def family_of(sample_name: str, families: dict[str, Family]) -> str:
    """The family a sample belongs to: its own name, or for histograms and
    summaries the name without _bucket/_sum/_count."""
    for family_type, suffixes in SUFFIXES.items():
        for suffix in suffixes:
            if sample_name.endswith(suffix):
                base = sample_name[:-len(suffix)]
                if base in families and families[base].type == family_type:
                    return base
    return sample_name


def parse(text: str, declared_types: bool = True, counter_total_suffix: bool = True) -> Exposition:
    if text == "":
        return Exposition({})
    if not text.endswith("\n"):
        raise PrometheusFormatError(text.count("\n") + 1, "the text does not end with a newline")
    if "\r" in text:
        raise PrometheusFormatError(text[:text.index("\r")].count("\n") + 1, "carriage return")
    families: dict[str, Family] = {}
    finished: set[str] = set()   # families whose lines are over
    current: str | None = None   # family of the previous line
    seen: set[tuple] = set()

    def enter(name: str, number: int, line: str) -> Family:
        nonlocal current
        if current != name:
            if name in finished:
                raise PrometheusFormatError(number, f"the lines of {name!r} are not contiguous", line)
            if current is not None:
                finished.add(current)
            current = name
        return families.setdefault(name, Family(name))

    for number, line in enumerate(text[:-1].split("\n"), start=1):
        if line.strip() == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 3 or not METRIC_NAME.fullmatch(parts[2]):
                    raise PrometheusFormatError(number, f"bad metric name in {parts[1]}", line)
                name = parts[2]
                family = enter(name, number, line)
                if parts[1] == "HELP":
                    if family.help is not None:
                        raise PrometheusFormatError(number, f"second HELP for {name!r}", line)
                    # The text is what follows "# HELP name " (may be empty).
                    prefix = re.match(r"#\s+HELP\s+\S+\s?", line)
                    family.help = _unescape_help(line[prefix.end():], number)
                else:
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise PrometheusFormatError(number, "TYPE must be one of " + ", ".join(TYPES), line)
                    if family.typed:
                        raise PrometheusFormatError(number, f"second TYPE for {name!r}", line)
                    if family.samples:
                        raise PrometheusFormatError(number, f"TYPE of {name!r} after its samples", line)
                    family.type = parts[3]
                    family.typed = True
                    if counter_total_suffix and family.type == "counter" and not name.endswith("_total"):
                        raise PrometheusFormatError(number, f"counter {name!r} does not end in _total", line)
            continue
        match = METRIC_NAME.match(line)
        if not match:
            raise PrometheusFormatError(number, "bad metric name", line)
        name = match.group(0)
        i = match.end()
        labels: dict[str, str] = {}
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i + 1, number, line)
        if i >= len(line) or line[i] not in " \t":
            raise PrometheusFormatError(number, "expected a blank before the value", line)
        tokens = line[i:].split()
        if len(tokens) not in (1, 2):
            raise PrometheusFormatError(number, "expected a value and an optional timestamp", line)
        value = _parse_value(tokens[0], number, line)
        timestamp = None
        if len(tokens) == 2:
            if not TIMESTAMP.fullmatch(tokens[1]):
                raise PrometheusFormatError(number, f"bad timestamp {tokens[1]!r}", line)
            timestamp = int(tokens[1])
        family_name = family_of(name, families)
        family = enter(family_name, number, line)
        if declared_types and not family.typed:
            raise PrometheusFormatError(number, f"sample of {family_name!r} without a TYPE line before it", line)
        sample = Sample(name, labels, value, timestamp)
        if sample.key() in seen:
            raise PrometheusFormatError(number, "duplicate series", line)
        seen.add(sample.key())
        if family.type == "counter" and (math.isnan(value) or value < 0):
            raise PrometheusFormatError(number, "a counter must be a number >= 0", line)
        family.samples.append(sample)
    return Exposition(families)
