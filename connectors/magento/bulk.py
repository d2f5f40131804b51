"""Product saves as Magento async/bulk operations, for runs bound by Magento's write rate.

Magento deadlocks on parallel product saves, so single PUTs go a few at a time; a bulk
hands many saves to Magento's own queue (``PUT /rest/<store>/async/bulk/V1/products/bySku``),
which its ``async.operations.all`` consumer works through. :meth:`BulkSaver.save` has the
same contract as ``MagentoClient.save_fields`` (the writer calls either, see
:data:`~catalogflow.connectors.magento.writer.Save`): it returns once the save is done and
raises :class:`MagentoError` when it is not, so the conflict guard, the body and the field
results are the writer's, unchanged.

Saves are collected per store scope for at most ``linger`` seconds (or until ``size`` are
waiting) and submitted as one bulk; its status (``GET V1/bulk/<uuid>/status``) is polled
every ``poll`` seconds and each operation's outcome is handed to the save waiting for it:

* 1 complete: done;
* 2 failed, retriably (a deadlock): submitted again in a later bulk, at most
  ``submissions`` times in all, then a CONNECTION error;
* 3 failed, must change the request, 5 rejected: an error with the category a single
  save's refusal with that message gets (``client.error_category``);
* 4 open for longer than ``timeout``: a CONNECTION error naming the bulk and saying that no
  consumer seems to run. Such an operation is *not* submitted again: Magento applies it
  once a consumer runs. It is remembered, and a later save of the same product and scope
  asks for its status first: still open, the save is refused the same way; complete with
  the same body, nothing is sent; otherwise the new save goes out. So a value is never
  sent twice while Magento may still apply it (the ledger and the conflict guard cover the
  rest: a retried request that finds the value in Magento is UNCHANGED).

The submission itself is not re-sent when it got no answer (Magento may have queued it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from catalogflow.connectors.magento.client import MagentoClient, error_category, product_bodies
from catalogflow.connectors.magento.errors import ErrorCategory, MagentoError
from catalogflow.streams.clock import Clock, SystemClock

log = logging.getLogger(__name__)

COMPLETE, RETRIABLY_FAILED, NOT_RETRIABLY_FAILED, OPEN, REJECTED = 1, 2, 3, 4, 5
#: What runs the operations; named in the error of a bulk that stays open.
CONSUMER_COMMAND: Final = "bin/magento queue:consumers:start async.operations.all"
#: Items Magento takes in one async list when its input limits are on.
ASYNC_LIST_CAP: Final = 5000
#: How long the first save of a bulk waits for others to join it.
LINGER_S: Final = 0.05
#: Timed-out operations remembered per product and scope (the oldest are forgotten).
UNSETTLED_KEPT: Final = 10_000
#: The status endpoints are no product endpoints: asked through the default store view.
STATUS_SCOPE: Final = "default"


@dataclass(eq=False)
class _Operation:
    """One save on its way: the body, and the future its caller awaits."""

    sku: str
    store: str
    product: dict[str, Any]
    done: asyncio.Future[None]
    submissions: int = 0


@dataclass(frozen=True)
class _Unsettled:
    """An operation of ours that was still open when we stopped waiting for it."""

    bulk_uuid: str
    index: int
    product: dict[str, Any]


class BulkSaver:
    """Collects saves into bulks per store scope, submits them and follows them to the end.

    ``size`` saves at most per bulk, ``linger`` seconds at most before a partly filled one
    goes; ``poll`` seconds between status reads; ``timeout`` seconds a bulk may stay open;
    ``submissions`` tries in all of an operation Magento reports retriably failed.
    """

    def __init__(
        self,
        client: MagentoClient,
        *,
        size: int,
        timeout: float,
        poll: float,
        submissions: int,
        linger: float = LINGER_S,
        clock: Clock | None = None,
    ) -> None:
        if not 1 <= size <= ASYNC_LIST_CAP:
            raise ValueError(f"a bulk holds 1 to {ASYNC_LIST_CAP} operations, not {size}")
        self.client = client
        self.size, self.timeout, self.poll = size, timeout, poll
        self.submissions, self.linger = max(1, submissions), linger
        self._clock: Clock = clock or SystemClock()
        self._waiting: dict[str, list[_Operation]] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._unsettled: OrderedDict[tuple[str, str], _Unsettled] = OrderedDict()
        self.bulks = 0  # bulks submitted

    def holds(self, sku: str, store: str) -> bool:
        """Whether an operation of ours for this product and scope may still be applied:
        its next save must come here, not as a PUT."""
        return (sku, store) in self._unsettled

    async def save(self, sku: str, store: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Save ``values`` (Magento's form) as bulk operations and wait for their end.
        Answers ``{}``: the status endpoint does not return the saved product."""
        for product in product_bodies(sku, values):
            if await self._already_applied(sku, store, product):
                continue
            operation = _Operation(sku, store, product, asyncio.get_running_loop().create_future())
            self._enqueue(operation)
            await operation.done
        return {}

    async def aclose(self) -> None:
        """Stop following bulks (when the worker stops; the sink has none waiting then)."""
        tasks = [*self._timers.values(), *self._running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for operations in self._waiting.values():
            for operation in operations:
                if not operation.done.done():
                    operation.done.cancel()
        self._waiting.clear()

    # -- collecting ------------------------------------------------------------------------

    def _enqueue(self, operation: _Operation) -> None:
        waiting = self._waiting.setdefault(operation.store, [])
        waiting.append(operation)
        if len(waiting) >= self.size:
            self._flush(operation.store)
        elif operation.store not in self._timers:
            self._timers[operation.store] = asyncio.create_task(self._linger(operation.store))

    async def _linger(self, store: str) -> None:
        await self._clock.sleep(self.linger)
        self._timers.pop(store, None)
        self._flush(store)

    def _flush(self, store: str) -> None:
        timer = self._timers.pop(store, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        operations = self._waiting.pop(store, [])
        if operations:
            task = asyncio.create_task(self._run(store, operations))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    # -- one bulk ----------------------------------------------------------------------------

    async def _run(self, store: str, operations: list[_Operation]) -> None:
        """Submit one bulk and hand each operation its outcome; nothing escapes."""
        following = list(enumerate(operations))
        bulk_uuid = "(not submitted)"
        try:
            bulk_uuid = await self._submit(store, operations)
            await self._follow(bulk_uuid, following)
        except asyncio.CancelledError:  # the worker stops: nobody waits any more
            for _, operation in following:
                operation.done.cancel()
            raise
        except MagentoError as exc:
            submitted = bulk_uuid != "(not submitted)"
            for index, operation in following:
                if submitted:  # Magento may still apply it: a later save asks first
                    self._remember(operation, bulk_uuid, index)
                _fail(operation, exc.category, exc.message, retryable=exc.retryable)
        except Exception as exc:  # a bug here must not leave a save waiting forever
            log.exception("bulk %s at %s failed", bulk_uuid, store)
            for _, operation in following:
                _fail(operation, "OTHER", f"bulk {bulk_uuid}: {type(exc).__name__}: {exc}")

    async def _submit(self, store: str, operations: Sequence[_Operation]) -> str:
        items = [{"sku": op.sku, "product": op.product} for op in operations]
        for operation in operations:
            operation.submissions += 1
        answer = await self.client.call(
            "PUT",
            store,
            "products/bySku",
            body=items,
            api="async/bulk/V1",
            resend_unanswered=False,
        )
        bulk_uuid = answer.get("bulk_uuid") if isinstance(answer, dict) else None
        if not isinstance(bulk_uuid, str) or not bulk_uuid:
            raise MagentoError("OTHER", f"bulk save at {store}: Magento answered no bulk_uuid")
        self.bulks += 1
        log.info("bulk %s: %d saves at %s submitted", bulk_uuid, len(items), store)
        return bulk_uuid

    async def _follow(self, bulk_uuid: str, following: list[tuple[int, _Operation]]) -> None:
        """Poll until every operation of the bulk has an outcome, or the timeout."""
        deadline = self._clock.monotonic() + self.timeout
        count = max(index for index, _ in following) + 1
        problem = ""
        while following:
            left = deadline - self._clock.monotonic()
            if left <= 0:
                break
            await self._clock.sleep(min(self.poll, left))
            try:
                statuses = await self._statuses(bulk_uuid, count)
            except MagentoError as exc:
                if not exc.retryable:
                    raise
                problem = f"; its status could not be read: {exc.message}"
                continue
            problem = ""
            still: list[tuple[int, _Operation]] = []
            for index, operation in following:
                status, message = statuses[index]
                if status == OPEN:
                    still.append((index, operation))
                else:
                    self._settle(bulk_uuid, operation, status, message)
            following[:] = still
        for index, operation in following:
            self._remember(operation, bulk_uuid, index)
            _fail(operation, "CONNECTION", self._still_open(bulk_uuid, operation) + problem)
        following.clear()

    def _settle(self, bulk_uuid: str, operation: _Operation, status: int, message: str) -> None:
        what = f"bulk {bulk_uuid}: the save of {operation.sku} at {operation.store}"
        if status == COMPLETE:
            operation.done.set_result(None)
        elif status == RETRIABLY_FAILED and operation.submissions < self.submissions:
            log.info("%s failed retriably (%s); submitting it again", what, message)
            self._enqueue(operation)  # not applied, Magento says: safe to send again
        elif status == RETRIABLY_FAILED:
            _fail(
                operation,
                "CONNECTION",
                f"{what} failed {operation.submissions} times, retriably: {message}",
                retryable=True,
            )
        else:
            category, _ = error_category(400, message)
            refused = "rejected" if status == REJECTED else "refused"
            _fail(operation, category, f"{what}: Magento {refused} it: {message}")

    async def _statuses(self, bulk_uuid: str, count: int) -> list[tuple[int, str]]:
        """(status, message) of each operation, in the order they were submitted."""
        answer = await self.client.call("GET", STATUS_SCOPE, f"bulk/{bulk_uuid}/status")
        listed = answer.get("operations_list") if isinstance(answer, dict) else None
        if not isinstance(listed, list) or len(listed) < count:
            raise MagentoError(
                "OTHER", f"bulk {bulk_uuid}: Magento's status does not list its {count} operations"
            )
        ordered = sorted(
            (op for op in listed if isinstance(op, dict)), key=lambda op: int(op.get("id") or 0)
        )
        return [
            (int(op.get("status") or OPEN), self.client.scrub(str(op.get("result_message") or "")))
            for op in ordered[:count]
        ]

    # -- operations we stopped waiting for --------------------------------------------------

    def _remember(self, operation: _Operation, bulk_uuid: str, index: int) -> None:
        key = (operation.sku, operation.store)
        self._unsettled[key] = _Unsettled(bulk_uuid, index, operation.product)
        self._unsettled.move_to_end(key)
        while len(self._unsettled) > UNSETTLED_KEPT:
            self._unsettled.popitem(last=False)

    async def _already_applied(self, sku: str, store: str, product: dict[str, Any]) -> bool:
        """For a product and scope with an operation still unsettled: True when that one
        applied this very body; raises while it is open; False (send) otherwise."""
        earlier = self._unsettled.get((sku, store))
        if earlier is None:
            return False
        statuses = await self._statuses(earlier.bulk_uuid, earlier.index + 1)
        status, _ = statuses[earlier.index]
        if status == OPEN:
            raise MagentoError(
                "CONNECTION",
                f"bulk {earlier.bulk_uuid}: an earlier save of {sku} at {store} is still open, "
                f"so nothing more is sent for it; no Magento consumer seems to run (start "
                f"one: {CONSUMER_COMMAND}, or let cron run the consumers)",
                retryable=True,
            )
        del self._unsettled[(sku, store)]
        return status == COMPLETE and earlier.product == product

    def _still_open(self, bulk_uuid: str, operation: _Operation) -> str:
        return (
            f"bulk {bulk_uuid}: the save of {operation.sku} at {operation.store} is still open "
            f"after {self.timeout:g} s; no Magento consumer seems to run (start one: "
            f"{CONSUMER_COMMAND}, or let cron run the consumers). It is not sent again: "
            "Magento applies it once a consumer runs"
        )


def _fail(
    operation: _Operation,
    category: ErrorCategory,
    message: str,
    *,
    retryable: bool = False,
) -> None:
    if not operation.done.done():
        operation.done.set_exception(MagentoError(category, message, retryable=retryable))
