"""Grafana dashboards as code: the panels and their PromQL, declared here once and
rendered with ``grafana-foundation-sdk`` into ``deploy/grafana/dashboards/*.json``.

The committed JSON is what Grafana provisions (``deploy/grafana/provisioning``);
``tests/unit/test_dashboards.py`` regenerates it and fails when it differs, so edit this
module, then run ``python -m catalogflow.deploy.grafana.generate``.

Metric names: ``catalogflow_*`` declared in :mod:`catalogflow.streams.metrics`, plus
faust's sensor figures, which faust names ``<app_id>_<figure>``; the dashboards assume
the production app id, :data:`FAUST_PREFIX`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from grafana_foundation_sdk.builders import common as gc
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import stat as gs
from grafana_foundation_sdk.builders import timeseries as gt
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as gm

__all__ = [
    "DASHBOARDS",
    "FAUST_PREFIX",
    "DashboardSpec",
    "PanelSpec",
    "Query",
    "main",
    "queries",
    "render",
]

#: faust's sensor prefixes its figures with the app id; ``catalogflow`` in production.
FAUST_PREFIX = "catalogflow"
#: The uid of the Prometheus data source provisioned in provisioning/datasources.
DATASOURCE = gm.DataSourceRef(type_val="prometheus", uid="prometheus")
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"

WF = 'workflow=~"$workflow"'
RI = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: Literal["timeseries", "stat"] = "timeseries"
    width: int = 12


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[PanelSpec, ...]], ...]
    workflow_variable: bool = False


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def _p95(bucket: str, by: str, selector: str = "") -> str:
    inner = f"{bucket}{{{selector}}}" if selector else bucket
    return f"histogram_quantile(0.95, sum by (le, {by}) (rate({inner}[{RI}])))"


def _faust(figure: str) -> str:
    return f"{FAUST_PREFIX}_{figure}"


OVERVIEW = DashboardSpec(
    uid="catalogflow-overview",
    title="catalogflow — workflow overview",
    description="One workflow's runs: progress, throughput, models, review backlog, sync, lag.",
    workflow_variable=True,
    rows=(
        (
            "Progress",
            (
                PanelSpec(
                    "Tasks by status entered",
                    "Task transitions applied, by the status they entered (all runs).",
                    "short",
                    (
                        _q(
                            f"sum by (status) (catalogflow_task_transitions_total{{{WF}}})",
                            "{{status}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Active runs: tasks done",
                    "Terminal tasks of each run still active (the series ends with the run).",
                    "short",
                    (
                        _q(
                            f"sum by (run_id) (catalogflow_run_tasks_done{{{WF}}})",
                            "{{run_id}}",
                        ),
                        _q(f"sum(catalogflow_runs_active{{{WF}}})", "active runs"),
                    ),
                ),
                PanelSpec(
                    "Throughput by action",
                    "Task transitions per second, by action.",
                    "ops",
                    (
                        _q(
                            "sum by (action) "
                            f"(rate(catalogflow_task_transitions_total{{{WF}}}[{RI}]))",
                            "{{action}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Action latency p95",
                    "Time one action step takes for one task, model calls included.",
                    "s",
                    (_q(_p95("catalogflow_action_seconds_bucket", "action", WF), "{{action}}"),),
                ),
                PanelSpec(
                    "Run budget used",
                    "Share of each active run's budget its model cost used (runs with a budget).",
                    "percentunit",
                    (
                        _q(
                            f"max by (run_id) (catalogflow_run_budget_used_ratio{{{WF}}})",
                            "{{run_id}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Seconds since last progress",
                    "How long each active run has had no task change state.",
                    "s",
                    (
                        _q(
                            "time() - max by (run_id) "
                            f"(catalogflow_run_last_progress_timestamp_seconds{{{WF}}})",
                            "{{run_id}}",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Models (all workflows)",
            (
                PanelSpec(
                    "Model request latency p95",
                    "One HTTP request to the model provider; retries count separately.",
                    "s",
                    (_q(_p95("catalogflow_model_request_seconds_bucket", "model"), "{{model}}"),),
                ),
                PanelSpec(
                    "Model requests by outcome, and 429s",
                    "Requests per second by outcome; rate_limited are the provider's 429s.",
                    "reqps",
                    (
                        _q(
                            f"sum by (outcome) (rate(catalogflow_model_requests_total[{RI}]))",
                            "{{outcome}}",
                        ),
                        _q(
                            "sum by (model) (rate(catalogflow_model_requests_total"
                            f'{{outcome="rate_limited"}}[{RI}]))',
                            "429 {{model}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Cost per hour",
                    "US dollars per hour at the configured prices, by model.",
                    "currencyUSD",
                    (
                        _q(
                            "sum by (model) "
                            f"(rate(catalogflow_model_cost_dollars_total[{RI}])) * 3600",
                            "{{model}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Tokens per second",
                    "Tokens the provider counted, by model and kind.",
                    "short",
                    (
                        _q(
                            f"sum by (model, kind) (rate(catalogflow_model_tokens_total[{RI}]))",
                            "{{model}} {{kind}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Rate limiter: wait and limits",
                    "Share of time callers waited for the client-side limiter; limits in force.",
                    "short",
                    (
                        _q(
                            "sum by (model) "
                            f"(rate(catalogflow_rate_limiter_wait_seconds_total[{RI}]))",
                            "wait {{model}}",
                        ),
                        _q(
                            "max by (model, unit) (catalogflow_rate_limit_per_minute)",
                            "limit {{model}} {{unit}}/min",
                        ),
                    ),
                ),
                PanelSpec(
                    "Response cache hit ratio",
                    "Model-response cache hits over lookups.",
                    "percentunit",
                    (
                        _q(
                            # `or vector(0)`: no hit yet is a ratio of 0, not "No data"
                            "(sum(rate(catalogflow_llm_cache_requests_total"
                            f'{{result="hit"}}[{RI}])) or vector(0)) / '
                            f"sum(rate(catalogflow_llm_cache_requests_total[{RI}]))",
                            "hit ratio",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Review and sync",
            (
                PanelSpec(
                    "Moderation backlog",
                    "Items waiting for review, by action.",
                    "short",
                    (
                        _q(
                            f"sum by (action) (catalogflow_moderation_pending{{{WF}}})",
                            "{{action}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Oldest item waiting",
                    "Age of the oldest item waiting for review, by action (0: none waits).",
                    "s",
                    (
                        _q(
                            f"max by (action) (catalogflow_moderation_oldest_age_seconds{{{WF}}})",
                            "{{action}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Sync outcomes",
                    "Sync results per second by target and outcome (synced, conflict, error).",
                    "ops",
                    (
                        _q(
                            "sum by (target, outcome) "
                            f"(rate(catalogflow_sync_results_total[{RI}]))",
                            "{{target}} {{outcome}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Magento request latency p95",
                    "One Magento REST request, by method.",
                    "s",
                    (
                        _q(
                            _p95("catalogflow_magento_request_seconds_bucket", "method"),
                            "{{method}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Review decisions",
                    "Decisions applied per second, by kind and role.",
                    "ops",
                    (
                        _q(
                            "sum by (kind, role) "
                            f"(rate(catalogflow_moderation_decisions_total[{RI}]))",
                            "{{kind}} {{role}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Consumer lag",
                    "Messages each consumer group trails the end of each topic it reads.",
                    "short",
                    (
                        _q(
                            "max by (group, topic) (catalogflow_consumer_lag_messages)",
                            "{{group}} {{topic}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)

OPERATOR = DashboardSpec(
    uid="catalogflow-operator",
    title="catalogflow — operator",
    description="Processes, partitions, lag, dead letters and rebalances.",
    rows=(
        (
            "Processes",
            (
                PanelSpec(
                    "Targets up",
                    "1 for each worker, projector and API Prometheus can scrape.",
                    "short",
                    (_q("sum by (job) (up)", "{{job}}"),),
                    kind="stat",
                    width=6,
                ),
                PanelSpec(
                    "Worker state",
                    "Which state each worker is in (assigned, recovering, serving).",
                    "short",
                    (
                        _q(
                            "max by (instance, state) (catalogflow_worker_state) == 1",
                            "{{instance}} {{state}}",
                        ),
                    ),
                    width=6,
                ),
                PanelSpec(
                    "Assigned partitions",
                    "Partitions each worker holds.",
                    "short",
                    (
                        _q(
                            "sum by (instance) (catalogflow_worker_assigned_partitions)",
                            "{{instance}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Events per second",
                    "Events each worker's streams took in (faust's figures).",
                    "ops",
                    (
                        _q(
                            f"sum by (instance) (rate({_faust('total_events_total')}[{RI}]))",
                            "{{instance}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Messages sent per second",
                    "Messages each worker produced (faust's figures).",
                    "ops",
                    (
                        _q(
                            "sum by (instance) "
                            f"(rate({_faust('total_sent_messages_total')}[{RI}]))",
                            "{{instance}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Table operations",
                    "Reads and writes of the faust tables per second.",
                    "ops",
                    (
                        _q(
                            "sum by (table, operation) "
                            f"(rate({_faust('table_operations_total')}[{RI}]))",
                            "{{table}} {{operation}}",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Lag and dead letters",
            (
                PanelSpec(
                    "Consumer lag by group and topic",
                    "End offset minus committed offset, summed over partitions.",
                    "short",
                    (
                        _q(
                            "max by (group, topic) (catalogflow_consumer_lag_messages)",
                            "{{group}} {{topic}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Worker lag by topic (faust)",
                    "End offset minus committed offset of the partitions each worker holds.",
                    "short",
                    (
                        _q(
                            f"sum by (topic) ({_faust('topic_partition_end_offset')}"
                            f" - {_faust('topic_partition_offset_commited')})",
                            "{{topic}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Dead letters",
                    "Records dead-lettered per interval, by agent and reason.",
                    "short",
                    (
                        _q(
                            "sum by (agent, reason) "
                            f"(increase(catalogflow_dead_letters_total[{RI}]))",
                            "{{agent}} {{reason}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Projector",
                    "Events the projector folds per second, and seconds since its last commit.",
                    "short",
                    (
                        _q(
                            f"sum by (topic) (rate(catalogflow_projector_events_total[{RI}]))",
                            "{{topic}} events/s",
                        ),
                        _q(
                            "time() - max(catalogflow_projector_last_commit_timestamp_seconds)",
                            "seconds since commit",
                        ),
                    ),
                ),
            ),
        ),
        (
            "Rebalances",
            (
                PanelSpec(
                    "Rebalances",
                    "Rebalances each worker went through, and those still recovering.",
                    "short",
                    (
                        _q(f"max by (instance) ({_faust('total_rebalances')})", "{{instance}}"),
                        _q(
                            f"max by (instance) ({_faust('total_rebalances_recovering')})",
                            "recovering {{instance}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Rebalance time p95",
                    "From rebalance start to done, faust's figure in milliseconds.",
                    "ms",
                    (
                        _q(
                            _p95(_faust("rebalance_done_latency_bucket"), "instance"),
                            "{{instance}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "Commit latency p95",
                    "Consumer offset commits, faust's figure in milliseconds.",
                    "ms",
                    (
                        _q(
                            _p95(_faust("consumer_commit_latency_bucket"), "instance"),
                            "{{instance}}",
                        ),
                    ),
                ),
                PanelSpec(
                    "API requests",
                    "API requests per second by route template and status.",
                    "reqps",
                    (
                        _q(
                            f"sum by (route, status) (rate(catalogflow_api_requests_total[{RI}]))",
                            "{{route}} {{status}}",
                        ),
                    ),
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[DashboardSpec, ...] = (OVERVIEW, OPERATOR)


def queries(spec: DashboardSpec) -> list[Query]:
    """Every PromQL expression of a dashboard, in panel order."""
    return [query for _, panels in spec.rows for panel in panels for query in panel.queries]


def _panel(spec: PanelSpec, panel_id: int) -> gt.Panel | gs.Panel:
    panel: gt.Panel | gs.Panel
    if spec.kind == "stat":
        panel = gs.Panel().reduce_options(gc.ReduceDataOptions().calcs(["lastNotNull"]))
    else:
        panel = (
            gt.Panel()
            .legend(
                gc.VizLegendOptions()
                .display_mode(cm.LegendDisplayMode.LIST)
                .placement(cm.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(gc.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI))
        )
    panel.id(panel_id).title(spec.title).description(spec.description).unit(spec.unit)
    panel.datasource(DATASOURCE).height(8).span(spec.width)
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        panel.with_target(gp.Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref))
    return panel


def _workflow_variable() -> gd.QueryVariable:
    return (
        gd.QueryVariable("workflow")
        .label("Workflow")
        .datasource(DATASOURCE)
        .query("label_values(catalogflow_task_transitions_total, workflow)")
        .refresh(gm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(gm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def build(spec: DashboardSpec) -> gm.Dashboard:
    board = (
        gd.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(["catalogflow"])
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
    )
    if spec.workflow_variable:
        board.with_variable(_workflow_variable())
    ids = iter(range(1, 1000))  # Grafana links and edits panels by a unique id
    for title, panels in spec.rows:
        board.with_row(gd.Row(title).id(next(ids)))
        for panel in panels:
            board.with_panel(_panel(panel, next(ids)))
    return board.build()


def render(spec: DashboardSpec) -> str:
    """The dashboard's JSON as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(build(spec), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def path(spec: DashboardSpec, folder: Path = DASHBOARD_DIR) -> Path:
    return folder / f"{spec.uid}.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m catalogflow.deploy.grafana.generate",
        description="Write the Grafana dashboards' JSON (or --check that it is current).",
    )
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="folder for the JSON")
    parser.add_argument("--check", action="store_true", help="fail if a file differs")
    args = parser.parse_args(argv)
    stale = []
    for spec in DASHBOARDS:
        target = path(spec, args.out)
        text = render(spec)
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {target}")
    for target in stale:
        print(f"{target} is out of date: run python -m catalogflow.deploy.grafana.generate")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
