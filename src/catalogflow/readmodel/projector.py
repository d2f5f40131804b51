"""The projector: folds the event log into the read model, in a consumer group of its
own (``<app_id>-projector``), as a process (``catalogflow projector``) or a thread.

Where it is in each partition lives in the read model (``projector_offsets``),
written in the same transaction as the rows (``batch.py``): on every assignment it
seeks to those offsets (or the beginning), so a restart, even after SIGKILL,
resumes exactly and never relies on Kafka's committed offsets.

While it runs it serves ``/metrics`` and ``/health`` on ``projector_host`` /
``projector_port``: what it folded per topic, when it last committed, and its lag
behind the event log (measured against those same offsets, :mod:`catalogflow.streams.lag`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from catalogflow.readmodel.batch import Folded, Record, apply_batch, next_offsets
from catalogflow.readmodel.fold import FOLDS
from catalogflow.streams.admin import KAFKA_CLIENT_LOG
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.lag import LAG_INTERVAL, LagProbe
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.projector import PROJECTOR_EVENTS, PROJECTOR_LAST_COMMIT
from catalogflow.streams.metrics.server import MetricsServer
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import DeadLetter
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import TopicName

log = logging.getLogger(__name__)

BATCH_MESSAGES = 500
BATCH_WAIT_S = 0.2
PROGRESS_EVERY_S = 30.0
AGENT = "projector"


def topic_names(settings: Settings) -> dict[str, TopicName]:
    """Full topic name -> topic, for every topic the read model folds."""
    return {settings.topic(name): name for name in FOLDS}


def consumer_config(settings: Settings, group: str) -> dict[str, Any]:
    conf: dict[str, Any] = settings.confluent_config()
    conf.pop("partitioner")
    conf.update(
        {
            "group.id": group,
            "enable.auto.commit": False,  # the read model holds the offsets
            "auto.offset.reset": "earliest",
            # librdkafka heartbeats from its own thread, so a short session costs
            # nothing and a crashed projector's partitions move on sooner.
            "session.timeout.ms": 10000,
            "logger": KAFKA_CLIENT_LOG,
        }
    )
    return conf


def to_record(message: Message) -> Record:
    kind, millis = message.timestamp()
    timestamp = datetime.fromtimestamp(millis / 1000, UTC) if kind and millis >= 0 else None
    return Record(
        topic=str(message.topic()),
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        key=message.key(),
        value=message.value(),
        timestamp=timestamp,
    )


class DeadLetterSender:
    """Sends a batch's dead letters and waits for the broker before the batch commits."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: RecordProducer | None = None
        self.sent = 0

    def __call__(self, letters: list[tuple[bytes | None, DeadLetter]]) -> None:
        if self._producer is None:
            self._producer = RecordProducer(self._settings)
        schemas = SchemaStore.shipped()
        for key, letter in letters:
            self._producer.send_raw("dead-letters", key, schemas.encode("DeadLetter", letter))
            log.info(
                "dead letter for %s[%d]@%d: %s",
                letter["source_topic"],
                letter["source_partition"],
                letter["source_offset"],
                letter["reason"],
            )
        self._producer.flush()
        self.sent += len(letters)


class Projector:
    """Run it with :meth:`run_until` (blocks) or :meth:`start` / :meth:`stop` (a thread).

    Either way it serves ``/metrics`` and ``/health`` while it runs; :attr:`port` is the
    bound port (``projector_port`` 0: a free one) once :meth:`start` returns.
    """

    def __init__(self, settings: Settings, engine: sa.Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.names = topic_names(settings)
        self.folded = 0
        self.dead_letters = DeadLetterSender(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._server: MetricsServer | None = None
        self._lag = LagProbe(settings)

    @property
    def group(self) -> str:
        return f"{self.settings.app_id}-projector"

    @property
    def port(self) -> int | None:
        """The port ``/metrics`` is served on; None when not serving."""
        return self._server.port if self._server is not None else None

    def start(self) -> None:
        self._stop.clear()
        self._serve()  # bound before the thread starts, so `port` is known on return
        self._thread = threading.Thread(target=self._thread_main, name="projector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the batch in hand; raises what ended the thread, if anything did."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise CatalogflowError(f"the projector did not stop within {timeout:.0f} s")
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise CatalogflowError(f"the projector failed: {error}") from error

    def _thread_main(self) -> None:
        try:
            self.run_until(self._stop)
        except BaseException as exc:  # handed to stop(), which raises it
            self._error = exc
            log.error("projector stopped: %s", exc)

    def run_until(self, stop: threading.Event) -> None:
        self._serve()
        try:
            self._consume_until(stop)
        finally:
            self._close_server()

    def _consume_until(self, stop: threading.Event) -> None:
        conf = consumer_config(self.settings, self.group)
        if self.settings.worker_id:
            # Static membership, as the workers have: a projector restarted after a
            # crash takes its partitions straight back instead of waiting out the dead
            # member's session (45 s) for a rebalance.
            conf["group.instance.id"] = f"{self.settings.worker_id}-projector"
        consumer = Consumer(conf)
        try:
            consumer.subscribe(sorted(self.names), on_assign=self._on_assign)
            started, last_report, reported = time.monotonic(), time.monotonic(), 0
            last_lag = float("-inf")  # measured once at start, then every LAG_INTERVAL
            while not stop.is_set():
                messages = consumer.consume(BATCH_MESSAGES, BATCH_WAIT_S)
                records = [to_record(m) for m in messages if self._usable(m)]
                if records:
                    self.fold(records)
                now = time.monotonic()
                if now - last_lag >= LAG_INTERVAL:
                    self.record_lag()
                    last_lag = now
                if now - last_report >= PROGRESS_EVERY_S and self.folded > reported:
                    rate = (self.folded - reported) / (now - last_report)
                    log.info("projector: %d records folded (%.0f/s)", self.folded, rate)
                    last_report, reported = now, self.folded
            log.info(
                "projector stopping: %d records folded in %.0f s, %d dead letters",
                self.folded,
                time.monotonic() - started,
                self.dead_letters.sent,
            )
        except KafkaException as exc:
            raise CatalogflowError(f"projector: {exc.args[0]}") from exc
        finally:
            consumer.close()

    def fold(self, records: Sequence[Record]) -> Folded:
        folded = apply_batch(
            self.engine,
            records,
            self.names,
            AGENT,
            self.dead_letters,
            signing_key=self.settings.signing_key.reveal(),
        )
        self.folded += folded.records
        recorder = metrics()
        recorder.set(PROJECTOR_LAST_COMMIT, time.time())
        for topic, count in Counter(self.names[r.topic] for r in records).items():
            recorder.inc(PROJECTOR_EVENTS, count, topic=topic)
        return folded

    def record_lag(self) -> None:
        """Set the lag gauge of the projector's group: the end of each topic it folds
        minus the next offset the read model holds (where the projector really is)."""
        try:
            self._lag.record(self.group, self.names, next_offsets(self.engine))
        except CatalogflowError as exc:
            log.warning("projector: %s", exc)

    def health(self) -> dict[str, object]:
        """The ``/health`` body: it answers while the process lives."""
        return {"status": "ok", "group": self.group, "folded": self.folded}

    def _serve(self) -> None:
        if self._server is None:
            host, port = self.settings.projector_host, self.settings.projector_port
            self._server = MetricsServer(host, port, self.health).start()
            log.info("projector: /metrics and /health on %s", self._server.url)

    def _close_server(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        offsets = next_offsets(self.engine)
        for partition in partitions:
            partition.offset = offsets.get((partition.topic, partition.partition), OFFSET_BEGINNING)
        consumer.assign(partitions)
        log.info("projector assigned %d partitions", len(partitions))

    @staticmethod
    def _usable(message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal():
            raise CatalogflowError(f"projector: {error.str()}")
        if error.code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
            log.warning("projector: %s", error.str())
        return False
