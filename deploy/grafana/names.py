"""Which series names a catalogflow Prometheus can hold, and which ones a PromQL
expression reads: so a dashboard or an alert naming a metric nobody records fails in a
unit test instead of showing "No data" in production."""

from __future__ import annotations

import re

from catalogflow.streams.metrics import declared
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

__all__ = [
    "SCRAPE_SERIES",
    "TARGET_LABELS",
    "catalogflow_series",
    "faust_series",
    "label_names",
    "metric_names",
    "series_labels",
]

#: Series Prometheus adds to every target itself.
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

#: Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})

_SUFFIXES = {
    "counter": ("",),  # declared counter names already end in _total
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
}


def catalogflow_series() -> frozenset[str]:
    """The series names of every declared catalogflow metric, as exposed."""
    return frozenset(_catalogflow_labels())


def faust_series(prefix: str) -> frozenset[str]:
    """The series names faust's Prometheus sensor exposes for an app named ``prefix``
    (read from faust's own declarations, so a faust upgrade that renames one shows)."""
    return frozenset(_faust_labels(prefix))


def series_labels(prefix: str) -> dict[str, frozenset[str]]:
    """Every series name a catalogflow Prometheus can hold, with its label names
    (target labels included; ``le`` on histogram buckets)."""
    known = {name: labels | TARGET_LABELS for name, labels in _catalogflow_labels().items()}
    known.update({name: labels | TARGET_LABELS for name, labels in _faust_labels(prefix).items()})
    known.update({name: TARGET_LABELS for name in SCRAPE_SERIES})
    return known


def _exposed(name: str, kind: str, labels: frozenset[str]) -> dict[str, frozenset[str]]:
    if kind == "histogram":
        return {
            name + "_bucket": labels | {"le"},
            name + "_sum": labels,
            name + "_count": labels,
        }
    return {name: labels}


def _catalogflow_labels() -> dict[str, frozenset[str]]:
    # Declared counter names already end in _total, as exposed.
    series: dict[str, frozenset[str]] = {}
    for metric in declared():
        series.update(_exposed(metric.name, metric.kind, frozenset(metric.labels)))
    return series


def _faust_labels(prefix: str) -> dict[str, frozenset[str]]:
    registry = CollectorRegistry()
    figures = FaustMetrics.create(registry, prefix)
    series: dict[str, frozenset[str]] = {}
    for collector in figures:  # a NamedTuple of prometheus_client metrics
        # prometheus_client keeps the declared label names in `_labelnames` only.
        labels = frozenset(getattr(collector, "_labelnames", ()))
        for family in collector.describe():
            name = family.name + "_total" if family.type == "counter" else family.name
            series.update(_exposed(name, family.type, labels))
    return series


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on"})


_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def label_names(expr: str) -> set[str]:
    """The label names an expression matches on or aggregates by."""
    text = _STRING.sub('""', expr)
    names = {
        name for braces in re.findall(r"\{([^}]*)\}", text) for name in _MATCHER.findall(braces)
    }
    for listed in _LABEL_LISTS.findall(text):
        names.update(part.strip() for part in listed.split(",") if part.strip())
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, label names, keywords, string
    literals and template variables such as ``$workflow`` left out)."""
    text = _STRING.sub(" ", expr)
    text = _BRACES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = re.sub(r"\$\w+", " ", text)
    names = set()
    for match in _IDENT.finditer(text):
        start = match.start()
        if start and (text[start - 1].isalnum() or text[start - 1] in "_."):
            continue  # the tail of a number such as 1e3 or of a longer word
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function, or an operator keyword before a parenthesis
        word = match.group()
        if word not in _KEYWORDS and not re.fullmatch(r"(?i)inf|nan", word):
            names.add(word)
    return names
