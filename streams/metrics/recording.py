"""The metrics twin for tests: records every value, checks labels like the real one."""

from __future__ import annotations

from collections import defaultdict

from catalogflow.streams.metrics.base import Metric, MetricsError

__all__ = ["RecordingMetrics"]


class RecordingMetrics:
    """Counters and gauges as numbers, histograms as the list of observed values."""

    def __init__(self) -> None:
        self._values: dict[str, dict[tuple[str, ...], float]] = defaultdict(dict)
        self._observed: dict[str, dict[tuple[str, ...], list[float]]] = defaultdict(dict)
        self._declared: dict[str, Metric] = {}

    def inc(self, metric: Metric, amount: float = 1.0, **labels: str) -> None:
        self._expect(metric, "counter", "gauge")
        if metric.kind == "counter" and amount < 0:
            raise MetricsError(f"counter {metric.name!r} cannot go down ({amount})")
        key = metric.check(labels)
        series = self._values[metric.name]
        series[key] = series.get(key, 0.0) + amount

    def set(self, metric: Metric, value: float, **labels: str) -> None:
        self._expect(metric, "gauge")
        self._values[metric.name][metric.check(labels)] = value

    def observe(self, metric: Metric, value: float, **labels: str) -> None:
        self._expect(metric, "histogram")
        self._observed[metric.name].setdefault(metric.check(labels), []).append(value)

    def remove(self, metric: Metric, **labels: str) -> None:
        key = metric.check(labels)
        self._values[metric.name].pop(key, None)
        self._observed[metric.name].pop(key, None)

    # -- what tests read ------------------------------------------------------------

    def value(self, metric: Metric, **labels: str) -> float | None:
        """A counter's or gauge's value; None when never recorded (or removed)."""
        return self._values[metric.name].get(metric.check(labels))

    def observed(self, metric: Metric, **labels: str) -> list[float]:
        """Every value a histogram recorded for these labels, in order."""
        return list(self._observed[metric.name].get(metric.check(labels), []))

    def series(self, metric: Metric) -> dict[tuple[str, ...], float]:
        """Every labelled value of a counter or gauge (label values in declared order)."""
        return dict(self._values[metric.name])

    def total(self, metric: Metric) -> float:
        """A counter's sum over all its labels (or a histogram's count)."""
        if metric.kind == "histogram":
            return float(sum(len(v) for v in self._observed[metric.name].values()))
        return sum(self._values[metric.name].values())

    def _expect(self, metric: Metric, *kinds: str) -> None:
        if metric.kind not in kinds:
            raise MetricsError(f"{metric.name!r} is a {metric.kind}, not a {'/'.join(kinds)}")
        known = self._declared.setdefault(metric.name, metric)
        if known != metric:
            raise MetricsError(f"metric {metric.name!r} declared twice, differently")
