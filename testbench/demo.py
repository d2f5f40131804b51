"""``catalogflow demo``: the whole pipeline on this machine, from nothing.

It starts a local Kafka broker, the LLM and Magento simulators (test and demo
infrastructure, not a model and not a shop), a worker, the projector (a thread
folding the topics into the read model) and the HTTP API with a demo admin token,
imports a generated
pet-food catalog, applies the seed workflow (Dry Cat Food: Flavor and Lifecycle →
shopping title and description → German → review → Magento) and runs it, printing
progress from the read side. A demo reviewer approves what waits for review, and the demo prints one
product's results with reasoning and confidence, and what Magento now holds. With
``--console`` it applies the workflow and serves the web console instead, so a person
starts the run and reviews it in the browser.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from catalogflow.connectors.sample_catalog import publish_sample
from catalogflow.localbroker.launcher import BrokerConfig, LocalBroker, free_port
from catalogflow.localbroker.model import MODEL_ALIAS, LocalModel, ModelConfig
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.admin import ensure_topics
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.apithread import ApiThread
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import MagentoSimulatorThread, seed_sample
from catalogflow.testbench.workerproc import WorkerProcess

from catalogflow.api.auth import hash_token, new_token
from catalogflow.progress import display_for, follow_run
from catalogflow.readmodel.projector import Projector
from catalogflow.readmodel.store import open_read_model
from catalogflow.readside import read_side

#: The seed example, where a checkout has it.
SEED = Path(__file__).resolve().parents[1] / "examples" / "dry-cat-food.yaml"
#: The environment variable the demo puts the Magento simulator's token in.
DEMO_TOKEN_ENV = "CATALOGFLOW_DEMO_MAGENTO_TOKEN"


def add_demo_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = commands.add_parser(
        "demo",
        help="the whole pipeline locally: broker, simulator, worker, catalog, seed workflow",
        description="Start a local Kafka broker, the LLM simulator and a worker, import a "
        "sample catalog and run the seed workflow on it.",
    )
    demo.add_argument(
        "--count",
        type=int,
        help="sample products (default 1000; 20 with --model local)",
    )
    demo.add_argument(
        "--model",
        choices=("simulator", "local"),
        default="simulator",
        help="where the model answers come from: the LLM simulator (default), or a real "
        "SmolLM2-135M on llama.cpp's server (`catalogflow model`; built once, slow)",
    )
    demo.add_argument("--data-dir", type=Path, default=Path("var"), help="state (default ./var)")
    demo.add_argument("--workflow", type=Path, default=SEED, help="workflow to run (default: seed)")
    demo.add_argument(
        "--no-workflow", action="store_true", help="only import the catalog, run no workflow"
    )
    demo.add_argument(
        "--console",
        action="store_true",
        help="apply the workflow but leave running and reviewing to you in the web console; "
        "serves until Ctrl-C",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="leave the broker and worker running (the simulator stops with the demo)",
    )
    demo.set_defaults(run=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.count is None:
        args.count = 20 if args.model == "local" else 1000
    if args.count < 1:
        raise ConfigError(f"--count must be at least 1, got {args.count}")
    definition = None if args.no_workflow else load_workflow(args.workflow)
    data: Path = args.data_dir.resolve()
    broker = LocalBroker(BrokerConfig(data_dir=data / "kafka"))
    print(f"starting the local Kafka broker (data in {data / 'kafka'}) …", flush=True)
    bootstrap = broker.start()
    print(f"Kafka {broker.status().kafka_version} is running at {bootstrap}")
    with (
        _model_endpoint(args.model, data) as model,
        MagentoSimulatorThread() as shop,
    ):
        seed_sample(shop.simulator, args.count)
        for code in ("shopping_title", "shopping_description"):
            shop.simulator.add_attribute(code, "text")
        os.environ[DEMO_TOKEN_ENV] = shop.simulator.issue_integration_token("catalogflow-demo")
        print(f"Magento simulator (test infrastructure, not a shop) at {shop.url}")
        settings = Settings.load(args.config)
        settings = settings.replace(
            web_port=settings.web_port if "CATALOGFLOW_WEB_PORT" in os.environ else free_port(),
            broker=bootstrap,
            data_dir=data / "worker",
            store="rocksdb://",
            llm_base_url=model.base_url,
            llm_kind="compatible",
            llm_model=model.name,
            llm_timeout=model.timeout_s,
            llm_price_input=model.price_input,
            llm_price_output=model.price_output,
            magento_url=shop.url,
            magento_auth="integration",
            magento_token_env=DEMO_TOKEN_ENV,
        )
        token = new_token()
        settings = settings.replace(
            api_port=settings.api_port if "CATALOGFLOW_API_PORT" in os.environ else free_port(),
            api_tokens=f"demo:admin:{hash_token(token)}",
        )
        os.environ[settings.api_token_env] = token  # where the demo's own read side finds it
        created = ensure_topics(settings)
        print(f"topics: {len(created)} created with prefix {settings.topic_prefix!r}")
        worker = WorkerProcess(settings, data / "worker.log")
        print(f"starting a worker (log: {worker.log_path}) …", flush=True)
        worker.start()
        engine = open_read_model(settings)
        projector = Projector(settings, engine)
        projector.start()
        api = ApiThread(settings, engine)
        api.start()
        print(f"projector folding into {settings.read_model}; API at {api.url}/api")
        try:
            started = time.monotonic()
            print(f"publishing {args.count} sample products …", flush=True)
            publish_sample(settings, args.count, seed=7)
            summary = worker.wait_for("/products/", lambda a: a["count"] >= args.count, timeout=300)
            print(
                f"the catalog agent built the products table: {summary['count']} products in "
                f"{time.monotonic() - started:.1f}s (table digest {summary['digest'][:16]}…)"
            )
            if definition is not None and args.console:
                version, _ = apply_definition(settings, definition, str(args.workflow), "demo")
                print(f"applied {definition.id} version {version['version']}")
                _serve_console(api.url, token)
            elif definition is not None:
                version, _ = apply_definition(settings, definition, str(args.workflow), "demo")
                run_id = start_run(settings, definition.id, "demo")
                print(f"applied {definition.id} version {version['version']}; run {run_id}:")
                side = read_side(settings)
                run = follow_run(side, run_id, display_for())
                while run.status not in ("COMPLETED", "STOPPED"):
                    _review_everything(settings, run_id)
                    run = follow_run(side, run_id, display_for())
                _show_one_result(worker, run_id)
                _show_magento(shop, worker, run_id)
                print(
                    f"model calls: {model.calls()}, run cost "
                    f"{run.cost:.4f}, tokens {run.input_tokens} in / {run.output_tokens} out"
                )
                print(f"all results: catalogflow workflow results {run_id} (while it runs)")
                print(f"API: {api.url}/api (OpenAPI: {api.url}/docs); try:")
                print(f"  curl -H 'Authorization: Bearer {token}' {api.url}/api/runs/{run_id}")
        finally:
            api.stop()
            projector.stop()
            if not args.keep_running:
                worker.stop()
                broker.stop()
                print("worker and broker stopped (run with --keep-running to leave them up)")
    if args.keep_running:
        print(
            f"worker: {worker.url}   broker: {bootstrap}   stop: catalogflow broker stop "
            f"--data-dir {data / 'kafka'}"
        )
    return 0


@dataclass
class ModelEndpoint:
    base_url: str
    name: str
    timeout_s: float
    calls: Callable[[], str]
    price_input: float = 0.15  # per million tokens: gpt-4o-mini's, as the settings say
    price_output: float = 0.60


@contextlib.contextmanager
def _model_endpoint(kind: str, data: Path) -> Iterator[ModelEndpoint]:
    """The simulator in this process, or the real local model server (stopped after)."""
    if kind == "simulator":
        with SimulatorThread(SimulatorConfig(latency_s=0.05)) as simulator:
            print(f"LLM simulator (test infrastructure, not a model) at {simulator.url}/v1")
            yield ModelEndpoint(
                f"{simulator.url}/v1",
                "gpt-4o-mini",
                60.0,
                lambda: str(simulator.stats()["completions"]),
            )
        return
    server = LocalModel(ModelConfig(data_dir=data / "model"), progress=print)
    print("starting the local model server (llama.cpp, SmolLM2-135M-Instruct) …", flush=True)
    url = server.start(timeout=300)
    print(f"a real model at {url} (log: {server.log_file})")
    try:
        yield ModelEndpoint(url, MODEL_ALIAS, 300.0, lambda: "see the run's tokens", 0.0, 0.0)
    finally:
        server.stop()


def _serve_console(url: str, token: str) -> None:
    """Until Ctrl-C or SIGTERM: the person runs and reviews the workflow in the browser."""
    print(f"web console: {url}/  (sign in with the demo admin token {token})")
    print("open the workflow, click Run action, review in the moderation queue; Ctrl-C stops")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping the console demo")
    finally:
        signal.signal(signal.SIGTERM, previous)


def _show_one_result(worker: WorkerProcess, run_id: str) -> None:
    tasks = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
    if not tasks:
        print("no product matched the workflow's trigger")
        return
    task = min(tasks, key=lambda t: t["sku"])
    print(f"{task['sku']} ({task['status']}):")
    for output in task["outputs"]:
        for field in output["fields"]:
            name = field["field"] + (f"@{field['locale']}" if field["locale"] else "")
            confidence = "-" if field["confidence"] is None else f"{field['confidence']:.2f}"
            print(f"  {output['action_id']}/{name} = {field['value']!r} (confidence {confidence})")
            print(f"      why: {field['reasoning']}")


def _review_everything(settings: Settings, run_id: str) -> None:
    """The demo's stand-in for a person: approve every pending item of the run."""
    items = pending_items(settings, run_id=run_id)
    sent = send_decisions(settings, [decision(i, "APPROVE", actor="demo-reviewer") for i in items])
    print(f"demo reviewer approved {sent} items (a person would use `catalogflow moderation`)")


def _show_magento(shop: MagentoSimulatorThread, worker: WorkerProcess, run_id: str) -> None:
    tasks = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
    if not tasks:
        return
    sku = min(t["sku"] for t in tasks)
    sim = shop.simulator
    print(f"Magento now has {len(sim.writes)} writes from catalogflow; {sku}:")
    for store, attribute in (
        ("all", "flavor"),
        ("all", "lifecycle"),
        ("all", "shopping_title"),
        ("de", "shopping_title"),
    ):
        print(f"  {store}/{attribute} = {sim.value(sku, store, attribute)!r}")
