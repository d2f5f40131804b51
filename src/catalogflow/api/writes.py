"""The write side's one seam: what the write routes publish, and through what.

``BrokerPublisher`` calls the functions the CLI calls (``streams/control.py``,
``streams/review.py``), so an event from the API is the event the CLI would send,
signed by the same producer when the settings hold the signing key. Tests replace it
with ``app.dependency_overrides[publisher_of]`` (and the read model through
``catalogflow.api.deps.queries_of``). The routes never write the read
model: they answer once the broker has confirmed the event.
"""

from __future__ import annotations

from typing import Annotated, Protocol, cast

from fastapi import Depends, HTTPException, Request

from catalogflow.api.deps import queries_of, settings_of
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.streams.control import apply_definition, control_run, retry_failed, start_run
from catalogflow.streams.definitions import WorkflowDefinition
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import (
    CommandKind,
    DeadLetter,
    ModerationDecision,
    WorkflowVersion,
)
from catalogflow.streams.replay import replay
from catalogflow.streams.review import send_decisions
from catalogflow.streams.settings import Settings


class Publisher(Protocol):
    """Everything the write routes send. Each method returns once the broker has it."""

    def apply(
        self, definition: WorkflowDefinition, source: str, applied_by: str
    ) -> tuple[WorkflowVersion, bool]: ...

    def run(
        self, workflow_id: str, issued_by: str, budget: float | None, command_id: str
    ) -> str: ...

    def control(
        self, workflow_id: str, run_id: str, command: CommandKind, issued_by: str, command_id: str
    ) -> None: ...

    def retry(
        self,
        workflow_id: str,
        run_id: str,
        issued_by: str,
        category: str | None,
        action: str | None,
        command_id: str,
    ) -> None: ...

    def decide(self, decision: ModerationDecision) -> None: ...

    def replay(self, letter: DeadLetter) -> None: ...


class BrokerPublisher:
    """The real publisher: the CLI's functions with the API's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def apply(
        self, definition: WorkflowDefinition, source: str, applied_by: str
    ) -> tuple[WorkflowVersion, bool]:
        return apply_definition(self.settings, definition, source, applied_by)

    def run(self, workflow_id: str, issued_by: str, budget: float | None, command_id: str) -> str:
        return start_run(self.settings, workflow_id, issued_by, budget, command_id=command_id)

    def control(
        self, workflow_id: str, run_id: str, command: CommandKind, issued_by: str, command_id: str
    ) -> None:
        control_run(self.settings, workflow_id, run_id, command, issued_by, command_id=command_id)

    def retry(
        self,
        workflow_id: str,
        run_id: str,
        issued_by: str,
        category: str | None,
        action: str | None,
        command_id: str,
    ) -> None:
        retry_failed(
            self.settings, workflow_id, run_id, issued_by, category, action, command_id=command_id
        )

    def decide(self, decision: ModerationDecision) -> None:
        send_decisions(self.settings, [decision])

    def replay(self, letter: DeadLetter) -> None:
        """The original bytes, unchanged, to the topic they came from (the CLI's
        ``streams/replay.py``): a replayed unsigned command is refused again."""
        replay(self.settings, letter)


def publisher_of(request: Request) -> Publisher:
    """The app's publisher (``app.state.publisher`` when set, else the broker's)."""
    publisher = getattr(request.app.state, "publisher", None)
    if publisher is not None:
        return cast(Publisher, publisher)
    return BrokerPublisher(settings_of(request))


def unavailable(exc: CatalogflowError) -> HTTPException:
    """The broker did not confirm: the event may or may not be out; say so, no 500."""
    return HTTPException(503, f"the event was not confirmed by Kafka: {exc}")


#: Route parameters: ``publisher: Publish`` and ``queries: Queries``.
Publish = Annotated[Publisher, Depends(publisher_of)]
Queries = Annotated[ReadModelQueries, Depends(queries_of)]
