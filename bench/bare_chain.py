"""The bare faust chain the efficiency benchmark compares catalogflow with.

Four faust agents over four topics (``<prefix>bare-hop1`` … ``hop4``), raw bytes keyed
by SKU: each agent takes a record and sends one of 2.3-3.0 kB (catalogflow's task
records' sizes) on to the next topic; the last one counts it as done. The HTTP calls
(plain aiohttp, one session, one request at a time per agent) by ``variant``:

* ``hops`` — none;
* ``chat_per_hop`` — the efficiency issue's: one small plain chat completion per hop
  and a Magento ``PUT`` of the product at the last;
* ``same_calls`` — the requests catalogflow made for that product, replayed from
  ``calls_file`` (:mod:`bench.recorded_calls`): hops 1-3 the model requests of the step
  standing at that hop, hop 4 the Magento requests in order.

No tables, no Avro, no bookkeeping: what faust, Kafka and the HTTP calls cost, and
nothing else.

Run as a child process (``python -m bench.bare_chain``) configured by ``BARE_*``
variables (:meth:`ChainConfig.to_env`); ``GET /progress/`` on its web port answers
``{"done": n, "last": t}`` (``time.time()`` of the last record done).
"""

from __future__ import annotations

import os
import time
import zlib
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalogflow.streams.errors import CatalogflowError

HOPS = 4
VARIANTS = ("hops", "chat_per_hop", "same_calls")
MIN_SIZE, MAX_SIZE = 2300, 3000
MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class ChainConfig:
    app_id: str
    bootstrap: str
    topic_prefix: str
    partitions: int
    web_port: int
    variant: str = "hops"  # one of VARIANTS
    llm_url: str = ""  # the simulator's base URL, without /v1
    magento_url: str = ""
    magento_token: str = ""
    calls_file: str = ""  # same_calls: the recorded requests (bench.recorded_calls)

    def to_env(self) -> dict[str, str]:
        return {f"BARE_{k.upper()}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_env(cls) -> ChainConfig:
        def env(name: str) -> str:
            return os.environ[f"BARE_{name.upper()}"]

        return cls(
            app_id=env("app_id"),
            bootstrap=env("bootstrap"),
            topic_prefix=env("topic_prefix"),
            partitions=int(env("partitions")),
            web_port=int(env("web_port")),
            variant=env("variant"),
            llm_url=env("llm_url"),
            magento_url=env("magento_url"),
            magento_token=env("magento_token"),
            calls_file=env("calls_file"),
        )

    def topics(self) -> list[str]:
        return [f"{self.topic_prefix}bare-hop{hop}" for hop in range(1, HOPS + 1)]


def record(sku: str, hop: int) -> bytes:
    """A record of 2.3-3.0 kB, its size fixed by SKU and hop."""
    size = MIN_SIZE + zlib.crc32(f"{sku}/{hop}".encode()) % (MAX_SIZE - MIN_SIZE + 1)
    head = f'{{"sku": "{sku}", "hop": {hop}, "text": "'.encode()
    return head + b"x" * (size - len(head) - 2) + b'"}'


def chat_body(sku: str, hop: int) -> dict[str, Any]:
    """A chat completion of about the size of catalogflow's prompts."""
    product = f"sku: {sku}\nname: Whiskerly Dry Cat Food 2 kg\n" + "description: " + "tasty " * 120
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You write shopping content for pet food."},
            {"role": "user", "content": f"Step {hop}.\n<product>\n{product}\n</product>"},
        ],
        "max_tokens": 200,
    }


def build_app(config: ChainConfig) -> Any:
    """The faust app with its four agents and its ``/progress/`` page."""
    import aiohttp
    import faust
    from catalogflow.streams.shutdown import close_on_shutdown
    from yarl import URL

    from bench.recorded_calls import read as read_calls

    app = faust.App(
        config.app_id,
        broker=f"kafka://{config.bootstrap}",
        store="memory://",
        topic_partitions=config.partitions,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        web_port=config.web_port,
        web_in_thread=False,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    topics = [
        app.topic(name, key_type=bytes, value_type=bytes, partitions=config.partitions)
        for name in config.topics()
    ]
    progress = {"done": 0, "last": 0.0}
    sessions: list[aiohttp.ClientSession] = []

    def session() -> aiohttp.ClientSession:
        if not sessions:
            sessions.append(aiohttp.ClientSession())
        return sessions[0]

    async def close_sessions() -> None:
        for open_session in sessions:
            await open_session.close()

    close_on_shutdown(app, "the HTTP session", close_sessions)
    recorded = read_calls(Path(config.calls_file)) if config.variant == "same_calls" else {}
    llm_headers = {"Authorization": "Bearer sim"}  # the simulator wants a key, any key
    magento_headers = {"Authorization": f"Bearer {config.magento_token}"}

    async def chat(body: Any) -> None:
        url = f"{config.llm_url}/v1/chat/completions"
        async with session().post(url, json=body, headers=llm_headers) as response:
            response.raise_for_status()
            await response.json()

    async def magento(method: str, path: str, body: Any) -> None:
        url = URL(config.magento_url + path, encoded=True)  # the path as it was sent
        async with session().request(method, url, json=body, headers=magento_headers) as response:
            response.raise_for_status()
            await response.read()

    async def save(sku: str) -> None:
        body = {
            "product": {
                "sku": sku,
                "custom_attributes": [{"attribute_code": "shopping_title", "value": f"Bare {sku}"}],
            }
        }
        await magento("PUT", f"/rest/all/V1/products/{sku}", body)

    async def calls(sku: str, hop: int) -> None:
        if config.variant == "chat_per_hop":
            await chat(chat_body(sku, hop))
            if hop == HOPS:
                await save(sku)
        elif config.variant == "same_calls":
            product = recorded[sku]
            for request in product.model.get(hop, []):
                await chat(request["body"])
            if hop == HOPS:
                for request in product.magento:
                    await magento(request["method"], request["path"], request["body"])

    def hop_agent(hop: int) -> None:
        async def process(stream: Any) -> None:
            async for key, _value in stream.items():
                sku = key.decode()
                await calls(sku, hop)
                if hop < HOPS:
                    await topics[hop].send(key=key, value=record(sku, hop + 1))
                    continue
                progress["done"] += 1
                progress["last"] = time.time()

        app.agent(topics[hop - 1], name=f"bare-hop{hop}")(process)

    for hop in range(1, HOPS + 1):
        hop_agent(hop)

    @app.page("/progress/")
    async def progress_page(web: Any, request: Any) -> Any:
        return web.json(progress)

    return app


# -- driving it from the benchmark ---------------------------------------------------------


@dataclass(frozen=True)
class ChainResult:
    label: str
    products: int
    seconds: float  # first record published to the last one done
    products_per_s: float
    cpu_ms_per_product: float  # the chain process's CPU
    #: HTTP requests per product the simulators received while timed: ``model``, and
    #: Magento's by method.
    requests_per_product: dict[str, float] = field(default_factory=dict)


WARM_UP = 8


def run_chain(
    label: str,
    config: ChainConfig,
    skus: list[str],
    log_path: Path,
    cleanup: ExitStack,
    count_requests: Callable[[], Counter[str]],
) -> ChainResult:
    """Start the chain, put ``WARM_UP`` records through it, then time ``skus`` through
    it (from the first publish to the last record done); the chain is stopped after.
    ``count_requests``: the simulators' requests so far, by ``model`` and method."""
    from catalogflow.testbench.workerclient import WorkerClient
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    from bench.harness import ChildProcess, cpu_seconds, say, wait_until

    admin = AdminClient({"bootstrap.servers": config.bootstrap})
    created = admin.create_topics(
        [NewTopic(name, config.partitions, 1) for name in config.topics()]
    )
    for future in created.values():
        future.result()
    chain = ChildProcess("bench.bare_chain", config.to_env(), log_path)
    chain.start()
    cleanup.callback(chain.stop)
    client = WorkerClient(f"http://127.0.0.1:{config.web_port}", timeout=5)

    def done() -> int:
        if not chain.running():
            raise RuntimeError(f"the bare chain stopped; its log:\n{chain.log_tail()}")
        try:
            return int(client.get("/progress/")["done"])
        except CatalogflowError:
            return -1

    try:
        wait_until("the bare chain to serve", lambda: done() >= 0, timeout=120)
        producer = Producer({"bootstrap.servers": config.bootstrap, "linger.ms": 20})
        for sku in skus[:WARM_UP]:
            producer.produce(config.topics()[0], key=sku.encode(), value=record(sku, 1))
        producer.flush(30)
        wait_until("the warm-up records", lambda: done() >= WARM_UP, timeout=120)
        say(f"[{label}] warmed up; {len(skus)} records …")
        cpu, requests, started = cpu_seconds(chain.pid), count_requests(), time.time()
        for sku in skus:
            producer.produce(config.topics()[0], key=sku.encode(), value=record(sku, 1))
            producer.poll(0)
        producer.flush(60)
        wanted = WARM_UP + len(skus)
        wait_until(f"{len(skus)} records through the chain", lambda: done() >= wanted, 600)
        seconds = float(client.get("/progress/")["last"]) - started
        used = cpu_seconds(chain.pid) - cpu
        requests = count_requests() - requests
    finally:
        chain.stop()
    result = ChainResult(
        label,
        len(skus),
        round(seconds, 2),
        round(len(skus) / seconds, 1),
        round(used / len(skus) * 1000, 2),
        {name: round(n / len(skus), 2) for name, n in sorted(requests.items())},
    )
    say(f"[{label}] {result.products_per_s} products/s, {result.cpu_ms_per_product} ms CPU each")
    return result


def main() -> None:
    import faust

    worker = faust.Worker(build_app(ChainConfig.from_env()), loglevel="warning")
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
