"""Rate-limit benchmark: does catalogflow use the model's allowed rate without bursts?

Acceptance point: with the LLM simulator limited to N requests per minute and latency
L, a run of several hundred products makes zero 429s from its own concurrency and uses
at least 90 % of the allowed rate, versus the rate of one call at a time.

Modes (``--mode``):

* ``pipeline`` — the real thing: a local Kafka broker, the simulator (in this process,
  on its own thread), a ``catalogflow worker`` subprocess with ``llm_rpm=N``; the sample
  catalog is imported and a one-action content-enrichment workflow runs over every
  "Dry Cat Food" product. Then the same with ``action_concurrency=1`` and
  ``action_batch_size=1`` (one call at a time) for the baseline rate.
* ``client`` — fast: many concurrent ``ContentEnrichment.run`` calls (so
  ``LLMClient.complete`` under its ``RateLimiter``) in this process, bounded by
  ``--concurrency``, and the same one at a time.
* ``both`` — client, then pipeline.

``--workflow seed`` runs the seed example (``examples/dry-cat-food.yaml``: extraction,
enrichment, translation to German held for review) instead of the one-action
enrichment workflow; ``--tpm T`` turns the simulator's token limit on, counted as
OpenAI counts it (prompt + requested completion budget at admission), and
``--tpm-off-run`` repeats the concurrent runs with the token limit off. The table then
also shows the token rate and the share of whichever limit binds.

The simulator records every chat request (arrival, end, HTTP status); the rate is
measured from the first to the last successful completion: ``(n - 1) / span``.
Every process started here (broker, worker, simulator) is stopped on exit, Ctrl-C and
SIGTERM included.

    .venv/bin/python -m bench.rate_limit --help
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from catalogflow.testbench.llm.simulator import LLMSimulator, SimulatorConfig, SimulatorThread

from bench.harness import interrupt as _interrupt
from bench.harness import say, start_broker

CATEGORY = "Pet Food/Cat/Dry Cat Food"  # every 4th sample product (index % 4 == 0)
WORKFLOW_ID = "bench-enrich"
WORKFLOW_YAML = f"""
id: {WORKFLOW_ID}
name: Benchmark - content enrichment of dry cat food
mode: one_time
trigger:
  all:
    - field: category
      operator: equals
      value: {CATEGORY}
actions:
  - id: enrich
    type: content_enrichment
    reads: [name, description, brand, weight_kg]
    settings:
      fields: [shopping_title, shopping_description]
"""
SEED_FILE = Path(__file__).resolve().parent.parent / "examples" / "dry-cat-food.yaml"
SEED_ACTION_TYPES = ["attribute_extraction", "content_enrichment", "translation"]
ENRICH_SETTINGS = {"fields": ["shopping_title", "shopping_description"]}
ENRICH_READS = ("name", "description", "brand", "weight_kg")


# -- an instrumented simulator -------------------------------------------------------------


#: One chat request at the simulator: (arrived, checked, ended, HTTP status, tokens).
#: ``checked`` is when its rate limiter counted the request (after reading and parsing
#: the body; 0.0 when it never got there), the time its short window uses; ``tokens``
#: what it counted against the token limit (prompt + requested budget).
Call = tuple[float, float, float, int, int]


class RecordingSimulator(LLMSimulator):
    """The real simulator, also logging every chat request (see :data:`Call`)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._checked: dict[asyncio.Task[Any] | None, tuple[float, int]] = {}
        super().__init__(config)
        self.calls: list[Call] = []

    @property  # type: ignore[override]
    def _limiter(self) -> Any:
        return self._recorded_limiter

    @_limiter.setter
    def _limiter(self, limiter: Any) -> None:
        # The simulator makes a new limiter on reset(); wrap each one's admit().
        admit = limiter.admit

        def recording_admit(cost: int, now: float) -> Any:
            self._checked[asyncio.current_task()] = (now, cost)
            return admit(cost, now)

        limiter.admit = recording_admit
        self._recorded_limiter = limiter

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        response = await super()._chat(request)
        checked, cost = self._checked.pop(asyncio.current_task(), (0.0, 0))
        self.calls.append((arrived, checked, time.monotonic(), response.status, cost))
        return response


@contextmanager
def simulator(
    rpm: int, tpm: int | None, latency_s: float, jitter_s: float = 0.0
) -> Iterator[SimulatorThread]:
    thread = SimulatorThread()
    thread.simulator = RecordingSimulator(
        SimulatorConfig(
            rpm=rpm, tpm=tpm, latency_s=latency_s, jitter_s=jitter_s, burst_window_s=1.0
        )
    )
    thread._server = thread.simulator  # the thread serves what it was given at creation
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def calls_of(sim: SimulatorThread) -> list[Call]:
    recording = sim.simulator
    assert isinstance(recording, RecordingSimulator)
    return list(sim._call(sim._in_loop(lambda: list(recording.calls))))


def clear_calls(sim: SimulatorThread) -> None:
    recording = sim.simulator
    assert isinstance(recording, RecordingSimulator)
    sim._call(sim._in_loop(recording.calls.clear))
    sim.reset()  # counters to zero, buckets full again


# -- metrics -------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    mode: str
    rpm_allowed: int
    latency_s: float
    concurrency: int
    batch_size: int | None
    products: int
    requests: int  # chat requests the simulator saw
    completions: int  # 200 answers
    rate_limited: int  # 429 answers
    other_errors: int
    span_s: float  # first to last completion
    achieved_rpm: float  # (completions - 1) / span * 60
    utilisation: float  # achieved_rpm / rpm_allowed
    peak_1s: int  # most requests arriving within any 1 s (the simulator allows ceil(N/60))
    closest_s: float  # least time between a request and the ceil(N/60)-th after it, both
    # admitted, at the simulator's check: 1 s + the margin left (under 1 s cannot happen)
    max_in_flight: int
    idle_s: float  # sum of admission gaps beyond 1.5x the ideal 60/N interval
    longest_gap_s: float
    wall_s: float  # whole run (pipeline: start_run to COMPLETED)
    notes: str = ""
    tpm_allowed: int | None = None
    achieved_tpm: float = 0.0  # tokens counted at admission per minute, same span
    token_share: float | None = None  # achieved_tpm / tpm_allowed
    binding: str = "rpm"  # the limit with the larger share
    binding_share: float = 0.0  # that share


#: Raw (arrived, ended, status) per chat request of every measured run, by label.
RAW_CALLS: dict[str, list[Call]] = {}


def measure(
    label: str,
    mode: str,
    calls: list[Call],
    *,
    rpm: int,
    latency_s: float,
    concurrency: int,
    batch_size: int | None,
    products: int,
    max_in_flight: int,
    wall_s: float,
    notes: str = "",
    tpm: int | None = None,
) -> Result:
    RAW_CALLS[label] = calls
    ok = sorted(c for c in calls if c[3] == 200)
    ends = sorted(c[2] for c in ok)
    span = ends[-1] - ends[0] if len(ends) > 1 else 0.0
    achieved = (len(ends) - 1) / span * 60 if span > 0 else 0.0
    arrivals = sorted(c[0] for c in calls)
    peak, start = 0, 0
    for i, t in enumerate(arrivals):  # sliding 1 s window, like the simulator's check
        while arrivals[start] <= t - 1.0:
            start += 1
        peak = max(peak, i - start + 1)
    allowance = max(1, math.ceil(rpm / 60))  # the simulator's limit per 1 s window
    checked = sorted(c[1] for c in ok)
    closest = min(
        (b - a for a, b in zip(checked, checked[allowance:], strict=False)), default=math.inf
    )
    ideal = 60.0 / rpm
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(ok)]
    idle = sum(g - ideal for g in gaps if g > 1.5 * ideal)
    # Tokens over the same span as the rate: all but the first completion's.
    tokens = sum(c[4] for c in ok) - (min(ok, key=lambda c: c[2])[4] if ok else 0)
    achieved_tpm = tokens / span * 60 if span > 0 else 0.0
    token_share = achieved_tpm / tpm if tpm else None
    request_share = achieved / rpm
    binding, share = (
        ("tpm", token_share)
        if token_share is not None and token_share > request_share
        else ("rpm", request_share)
    )
    return Result(
        label=label,
        mode=mode,
        rpm_allowed=rpm,
        latency_s=latency_s,
        concurrency=concurrency,
        batch_size=batch_size,
        products=products,
        requests=len(calls),
        completions=len(ok),
        rate_limited=sum(1 for c in calls if c[3] == 429),
        other_errors=sum(1 for c in calls if c[3] not in (200, 429)),
        span_s=round(span, 2),
        achieved_rpm=round(achieved, 1),
        utilisation=round(achieved / rpm, 3),
        peak_1s=peak,
        closest_s=round(closest, 3),
        max_in_flight=max_in_flight,
        idle_s=round(idle, 2),
        longest_gap_s=round(max(gaps, default=0.0), 2),
        wall_s=round(wall_s, 1),
        notes=notes,
        tpm_allowed=tpm,
        achieved_tpm=round(achieved_tpm),
        token_share=None if token_share is None else round(token_share, 3),
        binding=binding,
        binding_share=round(share, 3),
    )


# -- client mode ---------------------------------------------------------------------------

#: What-if limiter variants for client mode only — the experiments behind the limiter's
#: window slack; the pipeline always runs the shipped limiter.
VARIANTS = ("current", "margin", "margin-paced")
MARGIN_S = 0.05


def what_if_limiter(variant: str, endpoint: Any) -> Any:
    """``current``: the shipped RateLimiter. ``margin``: its request bucket without the
    spacing, a window entry counting another 50 ms. ``margin-paced``: that, and no
    request burst at all (the request bucket holds at most one request)."""
    from catalogflow.connectors.llm.ratelimit import RateLimiter, _Bucket
    from catalogflow.streams.clock import SystemClock

    class WhatIfBucket(_Bucket):
        def __init__(self, limit: int | None, cap: float | None) -> None:
            super().__init__(limit, 1.0, SystemClock().monotonic())
            self.cap = cap
            if cap is not None:
                self.level = min(self.level, cap)

        def refill(self, now: float) -> None:
            super().refill(now)
            if self.cap is not None and self.limit is not None:
                self.level = min(self.level, self.cap)

        def _window_wait(self, amount: float, now: float) -> float:
            return super()._window_wait(amount, now - MARGIN_S)

    limiter = RateLimiter(endpoint.rpm, endpoint.tpm, endpoint.max_concurrency)
    if variant != "current":
        limiter._requests = WhatIfBucket(endpoint.rpm, 1.0 if variant == "margin-paced" else None)
        limiter._tokens = WhatIfBucket(endpoint.tpm, None)
    return limiter


def run_client(
    sim: SimulatorThread,
    args: argparse.Namespace,
    concurrency: int,
    count: int,
    label: str,
    variant: str = "current",
) -> Result:
    from catalogflow.connectors.llm.provider import ClientPool, ModelEndpoint
    from catalogflow.connectors.sample_catalog import sample_changes
    from catalogflow.streams.actions import ActionInput
    from catalogflow.streams.actions.enrichment import ContentEnrichment
    from catalogflow.streams.products import apply_change

    clear_calls(sim)
    endpoint = ModelEndpoint(
        name="default",
        model="gpt-4o-mini",
        base_url=f"{sim.url}/v1",
        kind="compatible",
        rpm=args.rpm,
        tpm=args.tpm,
        max_concurrency=concurrency,
    )
    products = [
        apply_change(None, c) for c in sample_changes(count * 4) if c["categories"] == [CATEGORY]
    ][:count]

    async def main() -> float:
        pool = ClientPool()
        action = ContentEnrichment(pool, endpoint)
        pool.get(endpoint)._limiter = what_if_limiter(variant, endpoint)
        gate = asyncio.Semaphore(concurrency)
        chain = seed_chain(pool, endpoint) if args.workflow == "seed" else None

        async def one(product: dict[str, Any]) -> None:
            async with gate:
                if chain is not None:
                    await run_chain(chain, product)
                    return
                await action.run(
                    ActionInput(
                        sku=product["sku"],
                        product=product,
                        action_id="enrich",
                        settings=ENRICH_SETTINGS,
                        previous_outputs=(),
                        reads=ENRICH_READS,
                    )
                )

        started = time.monotonic()
        try:
            await asyncio.gather(*(one(p) for p in products))
        finally:
            await pool.aclose()
        return time.monotonic() - started

    wall = asyncio.run(main())
    stats = sim.stats()
    return measure(
        label,
        "client",
        calls_of(sim),
        rpm=args.rpm,
        latency_s=args.latency,
        concurrency=concurrency,
        batch_size=None,
        products=len(products),
        max_in_flight=stats["max_in_flight"],
        wall_s=wall,
        notes="" if variant == "current" else f"what-if limiter: {variant}",
        tpm=args.tpm,
    )


def seed_chain(pool: Any, endpoint: Any) -> list[tuple[Any, Any]]:
    """The seed workflow's actions, each with its action object on ``endpoint``."""
    from catalogflow.streams.actions.builtin import load_workflow
    from catalogflow.streams.actions.enrichment import ContentEnrichment
    from catalogflow.streams.actions.extraction import AttributeExtraction
    from catalogflow.streams.actions.translation import Translation

    kinds = {
        cls.type: cls(pool, endpoint)
        for cls in (AttributeExtraction, ContentEnrichment, Translation)
    }
    return [(spec, kinds[spec.type]) for spec in load_workflow(SEED_FILE).actions]


async def run_chain(chain: list[tuple[Any, Any]], product: dict[str, Any]) -> None:
    """One product through the chain as a worker runs it (the step runner), each action
    seeing the earlier outputs; a failed step raises its failure."""
    from catalogflow.streams.records import ActionOutput
    from catalogflow.streams.steps import Failed, run_step

    outputs: list[ActionOutput] = []
    for spec, action in chain:
        step = await run_step(action, spec, product, previous_outputs=outputs)
        if isinstance(step, Failed):
            raise step.failure
        outputs.append(step.output)


# -- pipeline mode -------------------------------------------------------------------------


def run_pipeline(
    sim: SimulatorThread,
    bootstrap: str,
    workdir: Path,
    args: argparse.Namespace,
    *,
    concurrency: int,
    batch_size: int,
    products: int,
    label: str,
    cleanup: ExitStack,
) -> Result:
    from catalogflow.connectors.sample_catalog import sample_changes
    from catalogflow.localbroker.launcher import free_port
    from catalogflow.streams.admin import ensure_topics
    from catalogflow.streams.control import apply_definition, start_run
    from catalogflow.streams.definitions import parse_definition
    from catalogflow.streams.producer import RecordProducer
    from catalogflow.streams.settings import Settings
    from catalogflow.testbench.workerproc import WorkerProcess

    name = f"{label}-{uuid.uuid4().hex[:6]}"
    settings = Settings.load(environ={}).replace(
        broker=bootstrap,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
        app_id="",
        partitions=args.partitions,
        store="memory://",
        data_dir=workdir / name,
        web_port=free_port(),
        llm_base_url=f"{sim.url}/v1",
        llm_kind="compatible",
        llm_rpm=args.rpm,
        llm_tpm=(args.tpm or 0) if sim.simulator.config.tpm else 0,
        action_concurrency=concurrency,
        action_batch_size=batch_size,
    )
    seed = args.workflow == "seed"
    ensure_topics(settings, action_types=SEED_ACTION_TYPES if seed else ["content_enrichment"])
    worker = WorkerProcess(settings, workdir / f"{name}.log")
    say(f"[{label}] starting a worker (concurrency {concurrency}, batch {batch_size}) …")
    worker.start(timeout=120)
    cleanup.callback(worker.stop)
    try:
        changes = list(sample_changes(products * 4))  # every 4th is Dry Cat Food
        producer = RecordProducer(settings)
        for change in changes:
            producer.send("product-changes", change["sku"], change)
        producer.flush()
        worker.wait_for("/products/", lambda a: a["count"] == len(changes), timeout=300)
        source = SEED_FILE.name if seed else "bench-enrich.yaml"
        text = SEED_FILE.read_text() if seed else WORKFLOW_YAML
        definition = parse_definition(text, source=source)
        apply_definition(settings, definition, source, "bench")
        clear_calls(sim)
        say(f"[{label}] {len(changes)} products imported; running over {products} …")
        started = time.monotonic()
        run_id = start_run(settings, definition.id, "bench")
        calls = 2 if seed else 1
        budget = 120 + calls * products * (60 / args.rpm + (args.latency + 0.5) / concurrency) * 3
        # The seed workflow holds its German texts for review: a task is done there.
        done = {"COMPLETED", "AWAITING_MODERATION"} if seed else {"COMPLETED"}
        run = worker.wait_for(
            f"/runs/{run_id}/",
            lambda r: (
                r.get("status") == "COMPLETED"
                or sum(n for k, n in r.get("counts", {}).items() if k in done) == products
            ),
            timeout=budget,
        )
        wall = time.monotonic() - started
        stats = sim.stats()
        counts = run.get("counts", {})
        ended = sum(n for k, n in counts.items() if k in done)
        notes = "" if ended == products and len(counts) <= len(done) else f"run counts {counts}"
        return measure(
            label,
            "pipeline",
            calls_of(sim),
            rpm=args.rpm,
            latency_s=args.latency,
            concurrency=concurrency,
            batch_size=batch_size,
            products=products,
            max_in_flight=stats["max_in_flight"],
            wall_s=wall,
            notes=notes,
            tpm=settings.llm_tpm or None,
        )
    finally:
        worker.stop()


# -- output --------------------------------------------------------------------------------

COLUMNS = (
    ("label", "run", "{}"),
    ("concurrency", "conc", "{}"),
    ("batch_size", "batch", "{}"),
    ("completions", "calls", "{}"),
    ("span_s", "span s", "{:.1f}"),
    ("achieved_rpm", "rpm", "{:.1f}"),
    ("utilisation", "of N", "{:.1%}"),
    ("rate_limited", "429s", "{}"),
    ("peak_1s", "peak/1s", "{}"),
    ("closest_s", "closest", "{:.3f}"),
    ("max_in_flight", "in-flight", "{}"),
    ("idle_s", "idle s", "{:.1f}"),
    ("longest_gap_s", "max gap", "{:.2f}"),
    ("achieved_tpm", "tpm", "{:.0f}"),
    ("token_share", "of T", "{:.1%}"),
    ("binding", "binds", "{}"),
    ("binding_share", "of binding", "{:.1%}"),
)


def table(results: list[Result]) -> str:
    rows = [[title for _, title, _ in COLUMNS]]
    for r in results:
        values = asdict(r)
        rows.append(
            ["-" if values[key] is None else fmt.format(values[key]) for key, _, fmt in COLUMNS]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rate_limit",
        description="Achieved model request rate vs the allowed rate, 429s and the "
        "one-call-at-a-time baseline, against the LLM simulator.",
    )
    parser.add_argument("--mode", choices=("pipeline", "client", "both"), default="both")
    parser.add_argument("--rpm", type=int, default=600, help="simulator limit N (default 600)")
    parser.add_argument("--tpm", type=int, default=None, help="simulator token limit (off)")
    parser.add_argument(
        "--latency", type=float, default=0.5, help="simulator latency L, s (default 0.5)"
    )
    parser.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        help="extra simulator latency, spread evenly from 0 to this, s (default 0)",
    )
    parser.add_argument(
        "--workflow",
        choices=("enrich", "seed"),
        default="enrich",
        help="a one-action enrichment workflow (default) or the seed example",
    )
    parser.add_argument(
        "--tpm-off-run",
        action="store_true",
        help="repeat the concurrent runs with the simulator's token limit off",
    )
    parser.add_argument(
        "--products", type=int, default=400, help="products in the run (default 400)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[16],
        help="action_concurrency (and client max_concurrency) values to try (default 16)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[64, 256],
        help="pipeline action_batch_size values to try (default 64, the worker default, and 256)",
    )
    parser.add_argument(
        "--baseline-products",
        type=int,
        default=60,
        help="products in the one-at-a-time run (0 skips it; default 60)",
    )
    parser.add_argument(
        "--client-variant",
        choices=VARIANTS,
        nargs="+",
        default=["current"],
        help="client mode: limiter what-ifs to compare (default: the shipped one)",
    )
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (4)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--dump-calls",
        type=Path,
        default=None,
        help="write every chat request (arrived, ended, status) of every run here, as JSON",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep broker data and worker logs here"
    )
    parser.add_argument(
        "--bootstrap",
        default=None,
        help="use this running Kafka broker instead of starting one (pipeline mode)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # Ctrl-C even when started in the background (where SIGINT is inherited as ignored).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    results: list[Result] = []
    try:
        with ExitStack() as cleanup:
            if args.workdir is None:
                workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            else:
                workdir = args.workdir.resolve()
                workdir.mkdir(parents=True, exist_ok=True)
            sim = cleanup.enter_context(simulator(args.rpm, args.tpm, args.latency, args.jitter))
            say(
                f"simulator at {sim.url}: rpm={args.rpm} tpm={args.tpm} "
                f"latency={args.latency}s + up to {args.jitter}s"
            )
            say(f"in flight needed to reach N: N*L/60 = {args.rpm * args.latency / 60:.1f}")
            if args.mode in ("client", "both"):
                for variant in args.client_variant:
                    for conc in args.concurrency:
                        label = f"client c={conc}" + ("" if variant == "current" else f" {variant}")
                        results.append(run_client(sim, args, conc, args.products, label, variant))
                        say(table(results[-1:]))
                if args.baseline_products:
                    results.append(
                        run_client(sim, args, 1, args.baseline_products, "client one-at-a-time")
                    )
                    say(table(results[-1:]))
                if args.tpm_off_run and args.tpm:
                    sim.configure(tpm=None)
                    off = argparse.Namespace(**{**vars(args), "tpm": None})
                    for conc in args.concurrency:
                        results.append(
                            run_client(sim, off, conc, args.products, f"client c={conc}, tpm off")
                        )
                        say(table(results[-1:]))
                    sim.configure(tpm=args.tpm)
            if args.mode in ("pipeline", "both"):
                results += run_all_pipelines(sim, workdir, args, cleanup)
    except KeyboardInterrupt:
        say("interrupted; everything started here was stopped")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    baseline = {r.mode: r.achieved_rpm for r in results if r.concurrency == 1}
    print(table(results))
    for r in results:
        if r.concurrency != 1 and baseline.get(r.mode):
            print(
                f"{r.label}: {r.achieved_rpm:.0f} rpm = {r.utilisation:.1%} of {r.rpm_allowed}, "
                f"{r.rate_limited} x 429, {r.achieved_rpm / baseline[r.mode]:.1f}x the "
                f"one-at-a-time {baseline[r.mode]:.0f} rpm"
            )
    for r in results:
        if r.tpm_allowed or r.label.endswith("tpm off"):
            print(f"{r.label}: {r.binding_share:.1%} of the binding limit ({r.binding})")
    payload = {
        "rpm": args.rpm,
        "latency_s": args.latency,
        "in_flight_needed": round(args.rpm * args.latency / 60, 2),
        "results": [asdict(r) for r in results],
    }
    text = json.dumps(payload, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    if args.dump_calls:
        args.dump_calls.write_text(json.dumps(RAW_CALLS) + "\n")
    print(text)
    return 0


def run_all_pipelines(
    sim: SimulatorThread, workdir: Path, args: argparse.Namespace, cleanup: ExitStack
) -> list[Result]:
    # A running broker (every run has its own topic prefix), or one of our own.
    bootstrap = args.bootstrap or start_broker(workdir / "kafka", cleanup, heap_mb=512)
    out: list[Result] = []

    def concurrent_runs(suffix: str) -> None:
        for conc in args.concurrency:
            for batch in args.batch_size:
                result = run_pipeline(
                    sim,
                    bootstrap,
                    workdir,
                    args,
                    concurrency=conc,
                    batch_size=batch,
                    products=args.products,
                    label=f"pipeline c={conc} b={batch}{suffix}",
                    cleanup=cleanup,
                )
                say(table([result]))
                out.append(result)

    concurrent_runs("")
    if args.baseline_products:
        result = run_pipeline(
            sim,
            bootstrap,
            workdir,
            args,
            concurrency=1,
            batch_size=1,
            products=args.baseline_products,
            label="pipeline one-at-a-time",
            cleanup=cleanup,
        )
        say(table([result]))
        out.append(result)
    if args.tpm_off_run and args.tpm:
        sim.configure(tpm=None)
        try:
            concurrent_runs(", tpm off")
        finally:
            sim.configure(tpm=args.tpm)
    return out


if __name__ == "__main__":
    sys.exit(main())
