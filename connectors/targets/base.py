"""The one small interface every sync target implements.

A sync target is a place approved values are written to: Magento, the Merchant Center
feed, or a team's own system through the ``sync_plugins`` setting. It answers two
questions and owns one resource:

- :meth:`SyncTarget.place`: where one approved value goes (the store scope its
  request is for, and the target's name for the field), or why it cannot take it.
  The router asks this when a task's last step is done and plans one SyncRequest per
  target and scope (``streams/sync.py``). Pure: no I/O.
- :meth:`SyncTarget.write`: write one SyncRequest and answer with its SyncResult.
- :meth:`SyncTarget.aclose`: close what ``write`` opened, once, when the worker stops.

A target may also say how many writes it takes at once with a ``concurrency``
attribute (Magento: ``magento_concurrency``); one that does not is handed one request
at a time (:func:`write_limit`).

The sink around it keeps the sync ledger (a field whose value hash the ledger holds is
never handed to the target again), sends the SyncResult and settles the task. It never
sees Kafka's bytes, nor does a target see Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from catalogflow.streams.clock import Clock
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.records import (
    SyncErrorCategory,
    SyncRequest,
    SyncResult,
    field_results,
    sync_result,
)
from catalogflow.streams.settings import Settings


@dataclass(frozen=True)
class Placement:
    """Where a target keeps one value: one SyncRequest per target and ``scope``;
    ``attribute`` is the field's name in the request (and in the ledger key)."""

    scope: str
    attribute: str


@dataclass(frozen=True)
class Refusal:
    """The target cannot take the value; ``note`` says why, in the task's history."""

    note: str


@dataclass(frozen=True)
class TargetContext:
    """What a target is built from: the worker's settings, its tables (a target that
    keeps state keeps it in a table declared in ``streams/topics.py``) and the clock
    its results are stamped with."""

    settings: Settings
    tables: Mapping[str, Any]
    clock: Clock


class SyncTarget(Protocol):
    """A place approved values are written to.

    ``write`` may be called again for a request it already wrote (a crash between the
    write and the ledger update): writing the same values again must change nothing.
    It answers every field with SYNCED, UNCHANGED, CONFLICT or ERROR; the sink records
    SYNCED and UNCHANGED fields in the ledger. A failure it expects (the system is down,
    a value is refused) is an ERROR result with a category; anything it raises is a
    bug, which the sink turns into an ERROR result instead of losing the request.

    The sink may call ``write`` for requests of different products at the same time, up
    to the target's ``concurrency`` (see :func:`write_limit`); requests of one product
    come one after the other, in the order they were planned.
    """

    def place(self, field: str, locale: str | None) -> Placement | Refusal: ...

    async def write(self, request: SyncRequest) -> SyncResult: ...

    async def aclose(self) -> None: ...


#: Builds a target for one worker; a class whose ``__init__`` takes the context is one.
TargetFactory = Callable[[TargetContext], SyncTarget]


def write_limit(name: str, target: SyncTarget) -> int:
    """How many requests the sink may hand ``target`` at once: its ``concurrency``
    attribute, optional so a plug-in that is not written for concurrent calls is safe
    (one at a time)."""
    limit = getattr(target, "concurrency", 1)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ConfigError(f"sync target {name!r}: concurrency must be at least 1, got {limit!r}")
    return limit


def unknown_target(name: str, known: Collection[str]) -> str:
    """The message for a target name nothing registered."""
    return (
        f"unknown sync target {name!r}; allowed: {', '.join(sorted(known))} "
        "(a plug-in target's module goes in the sync_plugins setting)"
    )


def error_result(
    request: SyncRequest, category: SyncErrorCategory, message: str, at: datetime
) -> SyncResult:
    """No field of ``request`` written, for one reason."""
    return sync_result(
        request,
        "ERROR",
        at=at,
        fields=field_results(request, "ERROR"),
        error_category=category,
        message=message,
    )
