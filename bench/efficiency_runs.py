"""catalogflow's side of the efficiency benchmark: the seed workflow (moderation ``none``
on every step) over N imported products to Completed, with its cost; and the same
actions as a continuous workflow fed new products at a fixed rate."""

from __future__ import annotations

import math
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from catalogflow.connectors.sample_catalog import CATEGORIES, sample_changes
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.admin import ensure_topics
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import WorkflowDefinition, parse_definition
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import ProductChanged
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from bench.efficiency_probes import (
    MagentoRequest,
    RecordingLLMThread,
    RecordingMagento,
    TopicTraffic,
    by_method,
    end_offsets,
    model_requests_since,
    requests_since,
    settled_offsets,
    traffic,
)
from bench.harness import ROOT, cpu_seconds, say, wait_until
from bench.recorded_calls import RecordedCalls, group_by_sku

SEED_FILE = ROOT / "examples" / "dry-cat-food.yaml"
SEED_ACTION_TYPES = ["attribute_extraction", "content_enrichment", "translation"]
CATEGORY = CATEGORIES[0]  # Dry Cat Food: sample product numbers divisible by 4
TOKEN_ENV = "CATALOGFLOW_BENCH_MAGENTO_TOKEN"


@dataclass(frozen=True)
class Endpoints:
    """What every run here talks to: the broker, both simulators, the Magento token."""

    bootstrap: str
    llm: RecordingLLMThread
    magento_url: str
    shop: RecordingMagento
    token: str
    workdir: Path


def matching_changes(count: int, first: int = 0) -> list[ProductChanged]:
    """``count`` sample products of the trigger's category, from sample number ``first``
    (a multiple of 4) on."""
    pool = sample_changes(4 * count, start=first)
    return [c for c in pool if c["categories"] == [CATEGORY]]


def seed_definition(mode: str) -> WorkflowDefinition:
    """The seed example with moderation ``none`` on every step, as ``mode``."""
    document = yaml.safe_load(SEED_FILE.read_text(encoding="utf-8"))
    document["id"] = f"bench-seed-{mode.replace('_', '-')}"
    document["mode"] = mode
    for action in document["actions"]:
        action["moderation"] = {"mode": "none"}
    return parse_definition(yaml.safe_dump(document), source=SEED_FILE.name)


def worker_settings(ends: Endpoints) -> Settings:
    """Default settings, except where the broker, the simulators and the files are."""
    return Settings.load(environ={}).replace(
        broker=ends.bootstrap,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
        app_id="",
        data_dir=ends.workdir / f"worker-{uuid.uuid4().hex[:6]}",
        web_port=free_port(),
        llm_base_url=f"{ends.llm.url}/v1",
        llm_kind="compatible",
        magento_url=ends.magento_url,
        magento_token_env=TOKEN_ENV,
    )


def start_worker(
    ends: Endpoints, settings: Settings, name: str, cleanup: ExitStack
) -> tuple[WorkerProcess, int]:
    """A worker subprocess, stopped by ``cleanup``; it and its process id."""
    worker = WorkerProcess(settings, ends.workdir / f"{name}.log", env={TOKEN_ENV: ends.token})
    say(f"[{name}] starting a worker …")
    cleanup.callback(worker.stop)
    worker.start(timeout=180)
    return worker, int(worker.get("/health/")["pid"])


def publish(settings: Settings, changes: list[ProductChanged]) -> None:
    producer = RecordProducer(settings)
    for change in changes:
        producer.send("product-changes", change["sku"], change)
    producer.flush()


# -- throughput and cost -------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogflowResult:
    products: int
    run_counts: dict[str, int]
    seconds_to_last_write: float
    seconds_to_completed: float
    products_per_s_last_write: float
    products_per_s_completed: float
    cpu_s_per_product: float
    model_calls_per_product: float
    magento_requests_per_product: dict[str, float]
    kafka_messages_per_product: float
    kafka_bytes_per_product: float
    topics: list[dict[str, Any]] = field(default_factory=list)  # per topic, per product


def run_throughput(ends: Endpoints, count: int) -> tuple[CatalogflowResult, RecordedCalls]:
    """Import ``count`` matching products, run the seed workflow over them to Completed,
    and measure the run: rates, the worker's CPU, Kafka traffic, model and Magento calls;
    with every model and Magento request of the run, by product."""
    settings = worker_settings(ends)
    ensure_topics(settings, action_types=SEED_ACTION_TYPES)
    changes = matching_changes(count)
    with ExitStack() as stop:
        worker, pid = start_worker(ends, settings, "catalogflow", stop)
        publish(settings, changes)
        worker.wait_for("/products/", lambda a: a["count"] == count, timeout=600)
        definition = seed_definition("one_time")
        apply_definition(settings, definition, SEED_FILE.name, "bench")
        offsets, cpu, calls = end_offsets(settings), cpu_seconds(pid), _model_calls(ends)
        say(f"[catalogflow] {count} products imported; running the seed workflow …")
        started = time.time()
        run_id = start_run(settings, definition.id, "bench")
        run = worker.wait_for(
            f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=300 + count
        )
        completed = time.time()
        used = cpu_seconds(pid) - cpu
        calls = _model_calls(ends) - calls
        after = settled_offsets(settings)
    requests = requests_since(ends.shop, started)
    recorded = group_by_sku(
        model_requests_since(ends.llm, started), requests, [c["sku"] for c in changes]
    )
    writes = [r.arrived for r in requests if r.written_sku is not None]
    last_write = (max(writes) if writes else completed) - started
    moved = traffic(settings, offsets, after)
    messages = sum(t.messages for t in moved)
    size = sum(t.bytes for t in moved)
    result = CatalogflowResult(
        products=count,
        run_counts=dict(run.get("counts", {})),
        seconds_to_last_write=round(last_write, 2),
        seconds_to_completed=round(completed - started, 2),
        products_per_s_last_write=round(count / last_write, 1),
        products_per_s_completed=round(count / (completed - started), 1),
        cpu_s_per_product=round(used / count, 4),
        model_calls_per_product=round(calls / count, 2),
        magento_requests_per_product={
            m: round(n / count, 2) for m, n in by_method(requests).items()
        },
        kafka_messages_per_product=round(messages / count, 2),
        kafka_bytes_per_product=round(size / count),
        topics=[_per_product(settings, t, count) for t in moved],
    )
    say(
        f"[catalogflow] {result.products_per_s_last_write} products/s to the last write, "
        f"{result.products_per_s_completed} to Completed; {result.cpu_s_per_product * 1000:.1f}"
        f" ms CPU and {result.kafka_messages_per_product} Kafka messages per product"
    )
    return result, recorded


def _model_calls(ends: Endpoints) -> int:
    return int(ends.llm.stats()["requests"])


def _per_product(settings: Settings, moved: TopicTraffic, count: int) -> dict[str, Any]:
    name = moved.topic.removeprefix(settings.topic_prefix).removeprefix(f"{settings.app_id}-")
    return {
        "topic": name,
        "messages_per_product": round(moved.messages / count, 2),
        "bytes_per_product": round(moved.bytes / count),
        "bytes_per_message": round(moved.bytes / moved.messages) if moved.messages else 0,
    }


# -- continuous ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContinuousResult:
    workers: int
    rate: float  # changes published per second
    seconds: float
    published: int
    written: int  # products with every expected store written before the drain ended
    p50_s: float | None  # None: that share of the products was not written in time
    p99_s: float | None
    max_s: float | None
    written_per_s: float  # written while publishing, per second of publishing
    cpu_s_per_product: float  # all workers together
    stores_per_product: list[str]


WARM_UP_BATCH = 8


def run_continuous(
    ends: Endpoints, rate: float, seconds: float, workers: int, first: int
) -> ContinuousResult:
    """Run the seed actions as a continuous workflow on ``workers`` workers, publish new
    matching products (sample numbers from ``first`` on) at ``rate`` per second for
    ``seconds``, and time each from its publish to Magento receiving its last write."""
    settings = worker_settings(ends)
    ensure_topics(settings, action_types=SEED_ACTION_TYPES)
    count = math.ceil(rate * seconds)
    changes = matching_changes(count + 20 * WARM_UP_BATCH, first)
    warm, measured = changes[: 20 * WARM_UP_BATCH], changes[20 * WARM_UP_BATCH :][:count]
    with ExitStack() as stop:
        pids = []
        for number in range(1, workers + 1):
            own = settings.replace(
                web_port=free_port(), worker_id=f"w{number}" if workers > 1 else ""
            )
            pids.append(start_worker(ends, own, f"continuous-w{number}", stop)[1])
        definition = seed_definition("continuous")
        apply_definition(settings, definition, SEED_FILE.name, "bench")
        start_run(settings, definition.id, "bench")
        stores = _warm_up(ends, settings, warm)
        say(f"[continuous] warmed up; {count} new products at {rate}/s for {seconds} s …")
        producer = RecordProducer(settings)
        cpu = sum(cpu_seconds(pid) for pid in pids)
        published: dict[str, float] = {}
        started = time.time()
        for number, change in enumerate(measured):
            pause = started + number / rate - time.time()
            if pause > 0:
                time.sleep(pause)
            producer.send("product-changes", change["sku"], change)
            published[change["sku"]] = time.time()
        producer.flush()
        ended = time.time()
        drain = max(30.0, seconds)
        try:
            wait_until(
                "the continuous writes",
                lambda: len(_written(ends.shop, started, stores, published)) == len(published),
                timeout=drain,
                interval=1.0,
            )
        except TimeoutError:
            say(f"[continuous] not every product was written within {drain:.0f} s of the end")
        used = sum(cpu_seconds(pid) for pid in pids) - cpu
    done = _written(ends.shop, started, stores, published)
    latencies = sorted(done[sku] - published[sku] for sku in done)
    in_window = sum(1 for sku in done if done[sku] <= ended)
    result = ContinuousResult(
        workers=workers,
        rate=rate,
        seconds=seconds,
        published=len(published),
        written=len(done),
        p50_s=_percentile(latencies, len(published), 0.50),
        p99_s=_percentile(latencies, len(published), 0.99),
        max_s=round(latencies[-1], 3) if len(latencies) == len(published) else None,
        written_per_s=round(in_window / (ended - started), 1),
        cpu_s_per_product=round(used / len(published), 4),
        stores_per_product=sorted(stores),
    )
    say(
        f"[continuous] {result.written}/{result.published} written; p50 {result.p50_s} s, "
        f"p99 {result.p99_s} s; {result.written_per_s} written/s"
    )
    return result


def _warm_up(ends: Endpoints, settings: Settings, warm: list[ProductChanged]) -> set[str]:
    """Publish warm-up products a batch at a time until a whole batch is written (the
    run's trigger is live on the partitions); the stores one product is written to."""
    for batch in range(0, len(warm), WARM_UP_BATCH):
        since = time.time()
        changes = warm[batch : batch + WARM_UP_BATCH]
        publish(settings, changes)
        skus = {c["sku"] for c in changes}
        if _all_written(ends.shop, since, skus, timeout=20):
            time.sleep(2.0)  # the batch's later writes (other store views)
            return _stores(requests_since(ends.shop, since), skus)
    raise CatalogflowError("the continuous run wrote none of the warm-up products")


def _all_written(shop: RecordingMagento, since: float, skus: set[str], timeout: float) -> bool:
    try:
        wait_until(
            "writes",
            lambda: skus <= {r.written_sku for r in requests_since(shop, since)},
            timeout=timeout,
        )
    except TimeoutError:
        return False
    return True


def _stores(requests: list[MagentoRequest], skus: set[str]) -> set[str]:
    """The store views every one of ``skus`` was written to."""
    seen: dict[str, set[str]] = {sku: set() for sku in skus}
    for r in requests:
        if r.written_sku in seen:
            seen[r.written_sku].add(r.store)
    return set.intersection(*seen.values())


def _written(
    shop: RecordingMagento, since: float, stores: set[str], published: dict[str, float]
) -> dict[str, float]:
    """When each published SKU had its last expected store written (first write each)."""
    first: dict[str, dict[str, float]] = {}
    for r in requests_since(shop, since):
        sku = r.written_sku
        if sku in published:
            first.setdefault(sku, {}).setdefault(r.store, r.arrived)
    return {sku: max(at[s] for s in stores) for sku, at in first.items() if stores <= set(at)}


def _percentile(latencies: list[float], total: int, share: float) -> float | None:
    """The ``share`` percentile over every published product, the unwritten ones counted
    as slower than any written; None when it falls on an unwritten one."""
    rank = max(0, math.ceil(share * total) - 1)
    return round(latencies[rank], 3) if rank < len(latencies) else None
