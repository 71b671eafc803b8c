"""Just enough PromQL reading to list the metrics and labels an expression refers to.

Not a parser: it removes what cannot name a metric (strings, label lists of ``by``/``on``/...,
range and offset durations, Grafana variables) and reports the identifiers left that are not
functions, aggregations or keywords. Syntax itself is checked by promtool where it is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Functions, aggregation operators and keywords of PromQL (Prometheus 2.x/3.x).
FUNCTIONS = frozenset(
    {
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "double_exponential_smoothing",
        "exp",
        "floor",
        "histogram_avg",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_sum",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "mad_over_time",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_by_label",
        "sort_by_label_desc",
        "sort_desc",
        "sqrt",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
    }
)
AGGREGATIONS = frozenset(
    {
        "avg",
        "bottomk",
        "count",
        "count_values",
        "group",
        "limit_ratio",
        "limitk",
        "max",
        "min",
        "quantile",
        "stddev",
        "stdvar",
        "sum",
        "topk",
    }
)
KEYWORDS = frozenset(
    {
        "and",
        "atan2",
        "bool",
        "by",
        "group_left",
        "group_right",
        "ignoring",
        "inf",
        "nan",
        "offset",
        "on",
        "or",
        "unless",
        "without",
    }
)
# Grafana's template functions that wrap a metric name.
GRAFANA_FUNCTIONS = frozenset({"label_values", "metrics", "query_result", "label_names"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)")
_NUMBER_SUFFIX = re.compile(r"(?<=\d)[eE][+-]?\d+")


@dataclass
class Expression:
    """What one expression refers to."""

    metrics: set[str] = field(default_factory=set)
    # metric name -> label names used in its selector's matchers
    matchers: dict[str, set[str]] = field(default_factory=dict)
    # label names of every by/without/on/ignoring/group_* clause
    grouping: set[str] = field(default_factory=set)


def parse(expr: str) -> Expression:
    """Metrics, their matcher labels and the grouping labels of ``expr``."""
    found = Expression()
    label_values = re.fullmatch(r"\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*", expr, re.S)
    if label_values:  # Grafana: label_values(<selector>, <label>)
        expr = label_values.group(1)
        found.grouping.add(label_values.group(2))
    text = _VARIABLE.sub("0", expr)
    for match in _SELECTOR.finditer(text):
        name = match.group(1)
        labels = {m.group(1) for m in _MATCHER.finditer(_STRING.sub('""', match.group(2)))}
        if name is None:  # {__name__="..."} style: the name is a matcher
            continue
        if name in FUNCTIONS | AGGREGATIONS | KEYWORDS:
            continue
        found.matchers.setdefault(name, set()).update(labels)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    for match in _LABEL_LIST.finditer(text):
        found.grouping.update(p.strip() for p in match.group(2).split(",") if p.strip())
    text = _LABEL_LIST.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    text = _NUMBER_SUFFIX.sub("", text)
    for match in _IDENTIFIER.finditer(text):
        name = match.group(1)
        following = text[match.end() :].lstrip()
        if name in KEYWORDS or name in GRAFANA_FUNCTIONS:
            continue
        if following.startswith("(") and (name in FUNCTIONS or name in AGGREGATIONS):
            continue
        if name in AGGREGATIONS:  # "sum by (x) (...)" once the label list is removed
            continue
        found.metrics.add(name)
    for name in found.matchers:
        found.metrics.add(name)
    return found
