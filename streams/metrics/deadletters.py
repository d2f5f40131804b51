"""Dead letters: what could not be processed, by the agent and reason."""

from catalogflow.streams.metrics.base import counter

DEAD_LETTERS = counter(
    "catalogflow_dead_letters_total",
    "Records written to the dead-letter topic, by agent and reason.",
    "agent",
    "reason",
)
