"""The one exception tree. Outside errors are wrapped at the boundary
(``raise CatalogflowError(...) from exc``) so callers catch our types only."""

from __future__ import annotations

from typing import Literal

#: Why a message could not be used. Each reason is permanent: retrying the same
#: bytes gives the same answer, so the message goes to the dead-letter topic.
InvalidReason = Literal[
    "short-payload",  # fewer bytes than a single-object header
    "bad-magic",  # does not start with the Avro single-object marker C3 01
    "unknown-schema",  # the writer fingerprint matches no schema we ship
    "truncated",  # the body ended before the record did
    "malformed-body",  # the body is not a valid record of the writer schema
    "wrong-schema",  # a valid record, but not of the type this topic carries
    "invalid-record",  # decodes, but breaks a rule of the contract (e.g. empty SKU)
    "unsigned-command",  # a command or decision without a valid signature (streams/signing.py)
]


class CatalogflowError(Exception):
    """Root of every error catalogflow raises on purpose."""


class ConfigError(CatalogflowError):
    """Settings are missing or wrong; raised at start-up, never mid-stream."""


class InvalidMessage(CatalogflowError):
    """This message is bad and always will be: dead-letter it, do not retry."""

    def __init__(self, reason: InvalidReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: InvalidReason = reason
        self.detail = detail
