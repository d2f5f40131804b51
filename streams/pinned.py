"""The workflow definition a run pins: the JSON text on its RUN command and on every
task of the run.

Every step of every task needs it, so it is parsed once per definition text, not once
per step; the parsed definition is frozen, so sharing it is safe.
"""

from __future__ import annotations

import functools
import json

from catalogflow.streams.definitions import WorkflowDefinition

#: Definitions kept parsed: a worker runs a handful of workflow versions at a time.
_PARSED_VERSIONS = 64


@functools.lru_cache(maxsize=_PARSED_VERSIONS)
def pinned_definition(text: str) -> WorkflowDefinition:
    """The definition in ``text`` (a task's ``definition``, a command's
    ``arguments["definition"]``, a WorkflowVersion's ``definition``)."""
    return WorkflowDefinition.from_dict(json.loads(text))
