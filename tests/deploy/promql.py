"""Just enough PromQL lexing to list the metric names an expression selects."""

from __future__ import annotations

import re

# Functions, aggregations and keywords that may appear in the rules and the dashboard; an
# identifier that is none of these and not a known metric fails the tests, so a typo in a
# metric name cannot hide behind an unknown function either.
FUNCTIONS = frozenset(
    {
        "abs", "absent", "absent_over_time", "avg", "avg_over_time", "ceil", "changes",
        "clamp_max", "clamp_min", "count", "count_over_time", "delta", "deriv", "floor",
        "histogram_quantile", "idelta", "increase", "irate", "label_replace", "max",
        "max_over_time", "min", "min_over_time", "predict_linear", "quantile", "rate",
        "resets", "round", "scalar", "sort", "sort_desc", "sum", "sum_over_time", "time",
        "timestamp", "topk", "bottomk", "vector",
    }
)  # fmt: skip
KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "offset", "bool", "inf", "nan"}
)  # fmt: skip

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TEMPLATE_VAR = re.compile(r"\$\{?\w+\}?")
_IDENT = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")
_DURATION = re.compile(r"\b\d+(ms|s|m|h|d|w|y)\b")


def selected_names(expr: str) -> set[str]:
    """Metric names (and any unknown identifiers) in ``expr``."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub(r"\1", text)
    text = _TEMPLATE_VAR.sub("", text)
    text = _DURATION.sub("", text)
    names = set(_IDENT.findall(text))
    return {n for n in names if n.lower() not in FUNCTIONS | KEYWORDS}
