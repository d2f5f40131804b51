"""What the efficiency benchmark observes from outside the worker: every request the
Magento simulator serves and every chat request the LLM simulator receives (arrival
time, method, path, JSON body: the bare chain replays them), and the Kafka traffic of a
run (messages and key + value bytes per topic, from the topics' end offsets before and
after)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from catalogflow.streams.admin import admin_client
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import LLMSimulator, SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import MagentoSimulator
from catalogflow.testbench.serverthread import ServerThread
from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class MagentoRequest:
    """One ``/rest`` request as the simulator received it (``arrived``: ``time.time()``)."""

    arrived: float
    method: str
    path: str
    status: int
    raw_path: str = ""  # as sent: still URL-encoded, with the query string
    body: Any = None  # the JSON body, None without one

    @property
    def store(self) -> str:
        """The store view code in the path (``/rest/<store>/V1/…``), ``default`` without."""
        parts = self.path.split("/")
        return parts[2] if len(parts) > 3 and parts[2] != "V1" else "default"

    @property
    def written_sku(self) -> str | None:
        """The SKU of a successful product save (``PUT …/V1/products/<sku>``), else None."""
        parts = self.path.split("/")
        if self.method != "PUT" or self.status != 200 or parts[-2:-1] != ["products"]:
            return None
        return unquote(parts[-1])


class RecordingMagento(MagentoSimulator):
    """The Magento simulator, also keeping every ``/rest`` request it served."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[MagentoRequest] = []

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        arrived = time.time()
        body = await _json_body(request)  # aiohttp keeps the body for the simulator
        response = await super()._rest(request)
        self.requests.append(
            MagentoRequest(
                arrived, request.method, request.path, response.status, request.raw_path, body
            )
        )
        return response


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    return json.loads(raw) if raw else None


def magento_thread() -> tuple[ServerThread, RecordingMagento]:
    """A recording Magento simulator to run on its own thread (not started yet)."""
    shop = RecordingMagento()
    return ServerThread(shop, "127.0.0.1", 0, "magento-simulator"), shop


def requests_since(shop: RecordingMagento, start: float) -> list[MagentoRequest]:
    return [r for r in list(shop.requests) if r.arrived >= start]


@dataclass(frozen=True)
class ModelRequest:
    """One chat request as the LLM simulator received it (``arrived``: ``time.time()``)."""

    arrived: float
    path: str
    body: Any


class RecordingLLM(LLMSimulator):
    """The LLM simulator, also keeping every chat request it received."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        super().__init__(config)
        self.requests: list[ModelRequest] = []

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(ModelRequest(time.time(), request.path, await _json_body(request)))
        return await super()._chat(request)


class RecordingLLMThread(SimulatorThread):
    """A :class:`RecordingLLM` on its own thread; ``recorder`` holds its requests."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.recorder = RecordingLLM(config)
        self.simulator = self.recorder
        ServerThread.__init__(self, self.recorder, "127.0.0.1", 0, "llm-simulator")


def model_requests_since(llm: RecordingLLMThread, start: float) -> list[ModelRequest]:
    return [r for r in list(llm.recorder.requests) if r.arrived >= start]


def by_method(requests: list[MagentoRequest]) -> dict[str, int]:
    return dict(sorted(Counter(r.method for r in requests).items()))


# -- Kafka traffic -------------------------------------------------------------------------

#: End offset of every partition of every topic of one app, by topic.
Offsets = dict[str, dict[int, int]]


@dataclass(frozen=True)
class TopicTraffic:
    topic: str
    messages: int
    bytes: int  # keys + values, as consumed


def _consumer(settings: Settings) -> Consumer:
    conf: dict[str, Any] = settings.confluent_config()
    conf.pop("partitioner")
    conf.update({"group.id": f"{settings.app_id}-bench-probe", "enable.auto.commit": False})
    return Consumer(conf)


def end_offsets(settings: Settings) -> Offsets:
    """End offsets of every topic whose name starts with the app id: the prefixed topics,
    the tables' changelogs (``<app_id>-<table>-changelog``) and faust's own topics."""
    metadata = admin_client(settings).list_topics(timeout=30).topics
    consumer = _consumer(settings)
    try:
        return {
            name: {
                p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                for p in topic.partitions
            }
            for name, topic in sorted(metadata.items())
            if name.startswith(settings.app_id)
        }
    finally:
        consumer.close()


def settled_offsets(settings: Settings, quiet_s: float = 1.0, timeout: float = 15.0) -> Offsets:
    """End offsets once they stopped moving for ``quiet_s`` (changelog writes trail the
    run's end a little), or the last ones after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = end_offsets(settings)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = end_offsets(settings)
        if now == last:
            break
        last = now
    return last


def traffic(settings: Settings, before: Offsets, after: Offsets) -> list[TopicTraffic]:
    """Messages (by offsets) and key + value bytes (by reading them) written to each
    topic between two snapshots; topics with nothing new are left out."""
    wanted = {
        (topic, p): (before.get(topic, {}).get(p, 0), end)
        for topic, ends in after.items()
        for p, end in ends.items()
        if end > before.get(topic, {}).get(p, 0)
    }
    sizes: Counter[str] = Counter()
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in wanted.items()])
        remaining = dict(wanted)
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error() is not None:
                    continue
                topic, partition = message.topic(), message.partition()
                if topic is None or partition is None or (topic, partition) not in remaining:
                    continue
                sizes[topic] += len(message.key() or b"") + len(message.value() or b"")
                offset = message.offset()
                if offset is not None and offset + 1 >= remaining[(topic, partition)][1]:
                    del remaining[(topic, partition)]
    finally:
        consumer.close()
    counts: Counter[str] = Counter()
    for (topic, _), (start, end) in wanted.items():
        counts[topic] += end - start
    return [TopicTraffic(t, counts[t], sizes[t]) for t in sorted(counts)]
