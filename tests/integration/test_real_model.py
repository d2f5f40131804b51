"""The seed workflow on a real model: llama.cpp's OpenAI-compatible server (built from
``llama-cpp-python``) serving SmolLM2-135M-Instruct, driven through the ``openai``
client by a worker on the real broker. A 135M model answers badly, and that is the
point: every output must still be schema-valid or a categorised failure, confidence
must come from the server's logprobs, and no Flavor the text does not state may be
approved without a person.

Products are chosen so the model is actually asked: the deterministic pre-pass
settles a flavour the text states once, so most of these name none, or two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.localbroker.model import MODEL_ALIAS, LocalModel, ModelConfig
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.engine import TERMINAL
from catalogflow.streams.records import ProductChanged
from catalogflow.streams.review import pending_items
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import import_products, sample_shop

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"
TOKEN_ENV = "CATALOGFLOW_TEST_MAGENTO_TOKEN"
FLAVORS = ("Chicken", "Salmon", "Tuna", "Beef", "Turkey", "Lamb")
#: What the text says about the flavour, per product: nothing, two flavours, or one.
TEXTS = (
    "Crunchy recipe with ocean fish for adult cats.",
    "A hearty recipe with poultry and rice for senior cats.",
    "Grain-free kibble for kittens, made with fresh meat.",
    "Recipe with tasty game meat for adult cats.",
    "Chicken and salmon recipe for adult cats.",
    "Made with tuna or beef, for senior cats.",
    "Recipe with turkey, a little lamb, for kittens.",
    "Recipe with real salmon for adult cats.",
    "Complete food for adult cats with garden vegetables.",
    "Recipe with duck for senior cats.",
)


def products() -> list[ProductChanged]:
    """Ten Dry Cat Food products of the sample catalog with the texts above."""
    chosen = [c for c in sample_changes(40) if "Dry Cat Food" in str(c["categories"])]
    out = []
    for change, text in zip(chosen, TEXTS, strict=True):
        for value in change["values"]:
            if value["attribute"] == "description":
                value["value"] = f"<p>{text}</p>"
        out.append(change)
    return out


def stated(text: str) -> set[str]:
    return {f for f in FLAVORS if f.lower() in text.lower()}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = LocalModel(ModelConfig(data_dir=tmp_path_factory.mktemp("model")))
    url = server.start(timeout=300)
    yield url
    server.stop()


def test_the_seed_workflow_on_a_real_model_never_auto_approves_an_invented_flavor(
    model: str,
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = sample_shop(40)
    try:
        monkeypatch.setenv(TOKEN_ENV, shop.simulator.issue_integration_token())
        worker = start_worker(
            llm_base_url=model,
            llm_kind="compatible",
            llm_model=MODEL_ALIAS,
            llm_timeout=300.0,
            magento_url=shop.url,
            magento_token_env=TOKEN_ENV,
            action_batch_size=4,
            action_concurrency=1,  # one model process, one request at a time
        )
        catalog = products()
        import_products(settings, worker, catalog)
        document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        definition = parse_definition(yaml.safe_dump(document), str(EXAMPLE))
        apply_definition(settings, definition, str(EXAMPLE), "test")
        run_id = start_run(settings, definition.id, "test")

        def settled(run: Any) -> bool:
            counts = run.get("counts", {})
            done = sum(n for s, n in counts.items() if s in TERMINAL or s == "AWAITING_MODERATION")
            return bool(done == len(catalog))

        run = worker.wait_for(f"/runs/{run_id}/", settled, timeout=1500)
        tasks = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
        held = pending_items(settings, run_id=run_id)
    finally:
        shop.stop()

    assert len(tasks) == len(catalog), run
    for task in tasks:
        if task["status"] == "ERROR":  # a categorised failure, never an unexplained one
            assert task["failure_category"] is not None and task["reason"], task
    assert len(held) >= len(catalog) // 2, "the model's answers should mostly reach review"

    texts = {c["sku"]: str(c["values"][1]["value"]) for c in catalog}
    extracted: list[tuple[str, dict[str, Any]]] = []
    for item in held:
        if item["action_id"] == "extract":
            fields = list(item["fields"])
        else:
            outputs = item["task"]["outputs"]
            fields = [f for o in outputs if o["action_id"] == "extract" for f in o["fields"]]
        extracted += [(item["sku"], dict(f)) for f in fields]
    invented = caught = 0
    for sku, field in extracted:
        deterministic = (field["reasoning"] or "").startswith("Deterministic")
        if deterministic:
            assert field["confidence"] == 1.0
        elif field["value"] is not None:  # the server's logprobs: exp(min logprob)
            assert field["confidence"] is not None and 0.0 <= field["confidence"] < 1.0, field
        if field["field"] != "Flavor" or field["value"] is None:
            continue
        assert field["value"] in FLAVORS  # the grammar held the schema's enum
        if field["value"] not in stated(texts[sku]):
            invented += 1
            caught += not field["approved"]
            assert not field["approved"], (sku, field)
    print(f"real model: {invented} invented Flavor values, {caught} held for a person")


def test_eval_on_the_real_model_prints_the_tables_and_approves_no_invented_flavor(
    model: str, tmp_path: Path
) -> None:
    """``catalogflow eval`` on the first products of the shipped golden file (two of
    them name no flavour, so the model is asked), through the real server."""
    saved = tmp_path / "real.json"
    golden = EXAMPLE.parent / "golden" / "dry-cat-food.jsonl"
    done = subprocess.run(
        [
            sys.executable, "-m", "catalogflow", "eval", str(EXAMPLE), "--golden", str(golden),
            "--endpoint", model, "--model", MODEL_ALIAS, "--action", "extract", "--limit", "8",
            "--save", str(saved),
        ],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "CATALOGFLOW_LLM_TIMEOUT": "300"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"on 8 golden products ({MODEL_ALIAS}" in done.stdout
    assert "reliability" in done.stdout and "expected calibration error" in done.stdout
    flavor = next(f for f in json.loads(saved.read_text())["fields"] if f["label"] == "Flavor")
    assert flavor["products"] == 8
    assert flavor["invented_auto_approved"] == 0
    assert flavor["invented"] == flavor["caught"]  # every invented value was flagged
