"""Dashboards are code: the committed JSON is what the generator writes, and every
series a panel queries is one catalogflow declares or faust's sensor exposes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from catalogflow.deploy.grafana import generate
from catalogflow.deploy.grafana.names import (
    SCRAPE_SERIES,
    catalogflow_series,
    faust_series,
    label_names,
    metric_names,
    series_labels,
)

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"


@pytest.mark.parametrize("spec", generate.DASHBOARDS, ids=lambda spec: spec.uid)
def test_the_committed_dashboard_json_is_what_the_generator_writes(
    spec: generate.DashboardSpec,
) -> None:
    committed = GRAFANA / "dashboards" / f"{spec.uid}.json"
    assert committed.exists(), f"{committed} missing: python -m {generate.__name__}"
    assert committed.read_text() == generate.render(spec), (
        f"{committed.name} differs from the generator: run python -m {generate.__name__}"
    )


def test_no_dashboard_json_is_left_without_its_generator() -> None:
    files = {path.stem for path in (GRAFANA / "dashboards").glob("*.json")}
    assert files == {spec.uid for spec in generate.DASHBOARDS}


def test_the_check_command_passes_on_the_committed_json_and_fails_on_a_stale_one(
    tmp_path: Path,
) -> None:
    assert generate.main(["--check"]) == 0
    assert generate.main(["--out", str(tmp_path)]) == 0
    stale = tmp_path / f"{generate.OVERVIEW.uid}.json"
    stale.write_text(stale.read_text().replace("Throughput", "Thruput"))
    assert generate.main(["--out", str(tmp_path), "--check"]) == 1


@pytest.mark.parametrize("spec", generate.DASHBOARDS, ids=lambda spec: spec.uid)
def test_every_series_a_panel_queries_is_declared_or_a_faust_figure(
    spec: generate.DashboardSpec,
) -> None:
    known = catalogflow_series() | faust_series(generate.FAUST_PREFIX) | SCRAPE_SERIES
    unknown = {
        query.expr: sorted(metric_names(query.expr) - known) for query in generate.queries(spec)
    }
    assert {expr: names for expr, names in unknown.items() if names} == {}
    assert all(metric_names(query.expr) for query in generate.queries(spec))


@pytest.mark.parametrize("spec", generate.DASHBOARDS, ids=lambda spec: spec.uid)
def test_every_label_a_panel_matches_or_groups_by_is_one_its_series_carry(
    spec: generate.DashboardSpec,
) -> None:
    known = series_labels(generate.FAUST_PREFIX)
    wrong = {}
    for query in generate.queries(spec):
        carried = set().union(*(known.get(name, set()) for name in metric_names(query.expr)))
        if label_names(query.expr) - carried:
            wrong[query.expr] = sorted(label_names(query.expr) - carried)
    assert wrong == {}


def test_the_overview_has_the_workflow_variable_and_every_panel_uses_it_or_spans_all() -> None:
    board = json.loads(generate.render(generate.OVERVIEW))
    assert [variable["name"] for variable in board["templating"]["list"]] == ["workflow"]
    workflow_scoped = [q for q in generate.queries(generate.OVERVIEW) if "$workflow" in q.expr]
    assert len(workflow_scoped) >= 8  # progress, throughput, budget, backlog and age


def test_panels_have_unique_ids_and_name_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    uids = {source["uid"] for source in datasources}
    for spec in generate.DASHBOARDS:
        panels = json.loads(generate.render(spec))["panels"]
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), spec.uid
        for panel in panels:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] in uids, panel["title"]


def test_metric_names_leaves_out_functions_labels_keywords_and_variables() -> None:
    expr = (
        '(time() - max by (workflow, run_id) (a_b{workflow=~"$workflow"})) > 9e2 '
        'unless on (workflow) (sum by (le) (rate(c_bucket{x="y_z"}[$__rate_interval])) > 0) '
        "and d offset 5m"
    )
    assert metric_names(expr) == {"a_b", "c_bucket", "d"}
    assert label_names(expr) == {"workflow", "run_id", "le", "x"}
