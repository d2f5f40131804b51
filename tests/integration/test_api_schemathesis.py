"""Property-based requests against the API on a real port: no answer is a 5xx, and every
answer matches the OpenAPI document (status codes, content types, bodies).

Reads are probed over the fixture read model (no broker needed). Every route, the
write routes included, is probed against an API that publishes to the real broker,
with a worker acting on what it publishes and a projector feeding its read model:
once with what schemathesis makes up, once with the ids of a real workflow, run,
moderation item, dead letter and product in the path, so the requests reach the
publishing code rather than stopping at a 404.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
import yaml
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.settings import Settings
from catalogflow.testbench.apithread import ApiThread
from catalogflow.testbench.workerproc import WorkerProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from catalogflow.api.auth import entry_line
from catalogflow.api.server import running
from tests.integration.catalog import chain_yaml, import_catalog
from tests.integration.engine_actions import TYPES
from tests.integration.readside_fixtures import read_model, read_settings
from tests.unit.api_app import TOKENS, api, bearer

__all__ = ["read_model", "read_settings"]  # the fixtures

#: No 5xx, and each answer as documented. Not schemathesis' "a schema-valid request is
#: accepted": an opaque cursor or an id is schema-valid text the API rightly refuses.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
READ_EXAMPLES = 50  # per operation: 12 read operations in well under a minute
#: Per operation and id choice against the broker: every write waits for the broker's
#: confirmation, and each accepted RUN starts a run the worker carries out.
BROKER_EXAMPLES = 15
READ_OPERATIONS = 12
ALL_OPERATIONS = 20
CATALOG = 20  # a quarter match the chain: 5 tasks per run
MATCHING = CATALOG // 4

Fuzzed = dict[str, Counter[int]]  # "METHOD path" -> how often each status came back


def fuzz(
    url: str,
    headers: Mapping[str, str],
    examples: int,
    *,
    methods: frozenset[str] = frozenset({"GET", "POST"}),
    known: Mapping[str, str] | None = None,
    bodies: Mapping[str, Any] | None = None,
) -> Fuzzed:
    """Send ``examples`` generated requests to each operation of ``methods``, as many
    again with the ``known`` path parameters where it has them all, and as many with
    the body ``bodies`` gives its "METHOD path"; fail on the first answer that breaks
    a check. The status codes each operation answered."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    sent: Fuzzed = {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document loads as OpenAPI 3
        operation = result.ok()
        if operation.method.upper() not in methods:
            continue
        key = f"{operation.method.upper()} {operation.path}"
        names = re.findall(r"{(\w+)}", operation.path)
        strategies = [operation.as_strategy()]
        if known is not None and names and all(name in known for name in names):
            pinned = {name: known[name] for name in names}
            strategies.append(operation.as_strategy().map(_with_path(pinned)))
        if bodies is not None and key in bodies:
            strategies.append(operation.as_strategy().map(_with_body(bodies[key])))
        for strategy in strategies:
            _probe(strategy, url, headers, examples, sent, key)
    return sent


def _with_path(pinned: Mapping[str, str]) -> Callable[[Case[Any]], Case[Any]]:
    # Encoded as schemathesis encodes the path values it generates (an item id holds
    # a "#").
    encoded = {name: quote(value, safe="") for name, value in pinned.items()}

    def pin(case: Case[Any]) -> Case[Any]:
        case.path_parameters = {**(case.path_parameters or {}), **encoded}
        return case

    return pin


def _with_body(body: Any) -> Callable[[Case[Any]], Case[Any]]:
    def replace_body(case: Case[Any]) -> Case[Any]:
        case.body = body
        return case

    return replace_body


def _probe(
    strategy: st.SearchStrategy[Case[Any]],
    url: str,
    headers: Mapping[str, str],
    examples: int,
    sent: Fuzzed,
    key: str,
) -> None:
    @given(strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: Case[Any]) -> None:
        response = case.call_and_validate(base_url=url, headers=dict(headers), checks=CHECKS)
        sent.setdefault(key, Counter())[response.status_code] += 1

    check()


def test_no_read_endpoint_answers_a_5xx_or_breaks_its_schema(tmp_path: Path) -> None:
    # Driven by hand rather than through schemathesis' pytest plugin, whose lazy
    # fixture loader does not run on this pytest. Reads only: without a broker the
    # write routes' honest answer is a 503; the test below probes them with one.
    with running(api(tmp_path)) as url:
        sent = fuzz(url, bearer("admin"), READ_EXAMPLES, methods=frozenset({"GET"}))
    assert "GET /api/runs/{run_id}/tasks" in sent and len(sent) == READ_OPERATIONS


@pytest.mark.kafka
def test_no_route_answers_a_5xx_with_a_real_broker_worker_and_projector(
    read_settings: Settings,
    read_model: sa.Engine,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    settings_ = read_settings.replace(
        api_port=free_port(), api_tokens=entry_line("admin", "admin", TOKENS["admin"])
    )
    worker = start_worker()
    import_catalog(settings_, worker, CATALOG)
    producer = RecordProducer(settings_)
    producer.send_raw("product-changes", b"PF-broken", b"\x00 not an Avro record")
    producer.flush()
    document = yaml.safe_load(chain_yaml("fuzzed"))
    document["actions"][2]["moderation"] = {"mode": "always"}
    definition = parse_definition(yaml.safe_dump(document), "fuzzed.yaml", TYPES)
    apply_definition(settings_, definition, "fuzzed.yaml", "test")
    run_id = start_run(settings_, definition.id, "test")
    # The reviewed items come from a workflow of their own: the probes stop and
    # restart runs of "fuzzed", which withdraws what those runs hold for review.
    reviewed = parse_definition(
        yaml.safe_dump({**document, "id": "fuzzed-review"}), "fuzzed-review.yaml", TYPES
    )
    apply_definition(settings_, reviewed, "fuzzed-review.yaml", "test")
    review_run = start_run(settings_, reviewed.id, "test")
    valid_definition = {"definition": chain_yaml("fuzzed-applied"), "allow_types": sorted(TYPES)}

    with (
        ApiThread(settings_, read_model) as api_thread,
        httpx.Client(base_url=api_thread.url, headers=bearer("admin"), timeout=30) as client,
    ):
        known = {"workflow_id": "fuzzed", "run_id": run_id, **_review_ids(client, review_run)}
        sent = fuzz(
            api_thread.url,
            bearer("admin"),
            BROKER_EXAMPLES,
            known=known,
            bodies={"POST /api/workflows": valid_definition},
        )
        # The worker took every accepted command and decision in its stride.
        health = client.get("/api/health")
        assert health.status_code == 200, health.text
    assert len(sent) == ALL_OPERATIONS, sorted(sent)
    # Each write reached the broker: with a real id in its path, some request was accepted.
    accepted = {key for key, statuses in sent.items() if statuses[202] or statuses[200]}
    assert accepted == set(sent), {key: sent[key] for key in set(sent) - accepted}
    assert "error" not in worker.get(f"/runs/{run_id}/")


def _review_ids(client: httpx.Client, run_id: str, timeout: float = 120.0) -> dict[str, str]:
    """A pending item of the run, a dead letter and a product, once the projector has
    folded them into the read model."""
    deadline = time.monotonic() + timeout
    while True:
        page = client.get("/api/moderation", params={"workflow_id": "fuzzed-review"}).json()
        items = [item for item in page.get("items", []) if item["run_id"] == run_id]
        letters = client.get("/api/dead-letters").json().get("items", [])
        if len(items) == MATCHING and letters:
            return {
                "item_id": items[0]["item_id"],
                "dead_letter_id": letters[0]["dead_letter_id"],
                "sku": items[0]["sku"],
            }
        assert time.monotonic() < deadline, (items, letters)
        time.sleep(0.5)
