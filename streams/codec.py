"""The one module that knows Avro.

Every value on every topic is framed with Avro single-object encoding::

    C3 01 | 8-byte CRC-64-AVRO fingerprint (little-endian) | schemaless Avro body

The fingerprint names the writer schema among the schemas this package ships
(``schemas/*.avsc`` and the older versions in ``schemas/history/*.avsc``); the body
is always read with the *current* schema of the same name, so bytes written by an
older version decode with the fields added since filled from their defaults.

Decoding never lets a library error escape: every way the bytes can be wrong is an
:class:`~catalogflow.streams.errors.InvalidMessage` with its own reason. Records are
plain dicts; timestamps (``timestamp-millis``) decode as timezone-aware UTC
``datetime`` objects and encode from either a ``datetime`` or epoch milliseconds.
Semantic rules (an empty SKU, an unknown attribute) are the caller's business.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, TypeVar, overload

import fastavro
import fastavro.schema
import fastavro.validation
from faust.serializers.codecs import Codec

from .errors import CatalogflowError, InvalidMessage

#: Marker that opens every single-object encoded message.
MAGIC = b"\xc3\x01"
#: Magic plus the 8-byte fingerprint.
HEADER_SIZE = len(MAGIC) + 8

_SCHEMA_PACKAGE = "catalogflow.schemas"

R = TypeVar("R")


@dataclass(frozen=True)
class _Schema:
    name: str  # short name, e.g. "ProductChanged"
    parsed: Any  # fastavro parsed schema
    fingerprint: bytes  # 8 bytes, little-endian


def _parse(source: Mapping[str, Any], origin: str) -> _Schema:
    try:
        # Each file is self-contained, so each gets its own named-type registry.
        parsed: Any = fastavro.parse_schema(dict(source), named_schemas={})
        canonical = fastavro.schema.to_parsing_canonical_form(parsed)
        fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    except Exception as exc:
        raise CatalogflowError(f"schema {origin} does not parse: {exc}") from exc
    if parsed.get("type") != "record":
        raise CatalogflowError(f"schema {origin} is not a record")
    return _Schema(str(parsed["name"]).rpartition(".")[2], parsed, fingerprint)


def _read_dir(folder: Traversable) -> list[tuple[str, Mapping[str, Any]]]:
    found = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".avsc")),
        key=lambda entry: entry.name,
    )
    return [(entry.name, json.loads(entry.read_text(encoding="utf-8"))) for entry in found]


class _Truncated(Exception):
    pass


class _NegativeLength(Exception):
    pass


class _StrictReader(io.BytesIO):
    """The body as a file that tells a short read (truncation) from a negative length
    (malformed), both of which fastavro reports as a bare ``EOFError``. Its Python
    ``read`` on every field makes decoding half again as slow, so it only reads a body
    that already failed, to say why."""

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            raise _NegativeLength(f"negative length {size}")
        chunk = super().read(size)
        if len(chunk) < size:
            raise _Truncated(f"wanted {size} bytes at body offset {self.tell() - len(chunk)}")
        return chunk


class SchemaStore:
    """The schemas a build ships, indexed by short name (current versions only) and by
    fingerprint (current and history versions)."""

    def __init__(
        self,
        current: Iterable[tuple[str, Mapping[str, Any]]],
        history: Iterable[tuple[str, Mapping[str, Any]]] = (),
    ) -> None:
        """``current`` and ``history`` are ``(origin, schema JSON)`` pairs; ``origin``
        (usually the file name) only appears in error messages."""
        self._by_name: dict[str, _Schema] = {}
        self._by_fingerprint: dict[bytes, _Schema] = {}
        for origin, source in current:
            schema = _parse(source, origin)
            if schema.name in self._by_name:
                raise CatalogflowError(f"schema {schema.name} is defined twice ({origin})")
            self._by_name[schema.name] = schema
            self._by_fingerprint[schema.fingerprint] = schema
        for origin, source in history:
            schema = _parse(source, origin)
            if schema.name not in self._by_name:
                raise CatalogflowError(f"history schema {origin} has no current {schema.name}")
            self._by_fingerprint.setdefault(schema.fingerprint, schema)

    @classmethod
    @functools.cache
    def shipped(cls) -> SchemaStore:
        """The store of every schema in the installed ``catalogflow.schemas`` package."""
        root = resources.files(_SCHEMA_PACKAGE)
        return cls(_read_dir(root), _read_dir(root.joinpath("history")))

    def names(self) -> list[str]:
        """Short names of the current schemas, sorted."""
        return sorted(self._by_name)

    def fingerprint(self, name: str) -> bytes:
        """CRC-64-AVRO fingerprint of the current schema ``name``: 8 bytes, little-endian."""
        return self._current(name).fingerprint

    def encode(self, name: str, record: Mapping[str, Any]) -> bytes:
        """Single-object encoding of ``record`` with the current schema ``name``.

        A record that does not fit the schema is a bug on our side, not a bad message:
        it raises :class:`CatalogflowError` naming the schema and the field. Missing
        fields that have a default take it; keys the schema does not know are ignored.
        """
        schema = self._current(name)
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(schema.fingerprint)
        try:
            # No validation first: the records we encode are typed where they are built
            # and checked where they entered, and fastavro's writer refuses a datum it
            # cannot write. Validating every record again (building an error object for
            # every union branch that does not match) was the larger part of encoding.
            fastavro.schemaless_writer(out, schema.parsed, record)
        except Exception as exc:
            raise _misfit(name, schema, record, exc) from exc
        return out.getvalue()

    @overload
    def decode(self, data: bytes, expected: type[R]) -> R: ...

    @overload
    def decode(self, data: bytes, expected: str | None = None) -> dict[str, Any]: ...

    def decode(self, data: bytes, expected: type[Any] | str | None = None) -> Any:
        """Decode single-object encoded ``data`` into a record of the current schema of
        the writer's name (older versions are resolved against it).

        ``expected`` as a type from :mod:`catalogflow.streams.records` (named as its
        schema) returns the record as that type: the one place a decoded dict becomes
        a typed record. As a name (or None) the record is an untyped dict.

        Raises :class:`InvalidMessage` with reason ``short-payload``, ``bad-magic``,
        ``unknown-schema``, ``wrong-schema`` (``expected`` given and the writer schema
        has another name), ``truncated`` or ``malformed-body`` (includes trailing bytes).
        ``expected`` naming no shipped schema is a bug: :class:`CatalogflowError`.
        """
        if expected is not None and not isinstance(expected, str):
            return self.decode(data, expected.__name__)
        if expected is not None:
            self._current(expected)
        writer = self._writer(data)
        if expected is not None and writer.name != expected:
            raise InvalidMessage("wrong-schema", f"expected {expected}, got {writer.name}")
        reader = self._by_name[writer.name]
        resolved = None if reader is writer else reader.parsed
        body = bytes(data[HEADER_SIZE:])
        stream = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(stream, writer.parsed, resolved)
        except Exception:
            # fastavro says EOFError both for a short body and for a negative length:
            # read again through the reader that tells them apart, only to name it.
            raise self._why_not(writer, resolved, body) from None
        if stream.tell() != len(body):
            raise InvalidMessage(
                "malformed-body",
                f"{writer.name}: {len(body) - stream.tell()} trailing bytes after the record",
            )
        if not isinstance(record, dict):  # pragma: no cover - every schema is a record
            raise InvalidMessage("malformed-body", f"{writer.name}: not a record")
        return record

    @staticmethod
    def _why_not(writer: _Schema, resolved: Any, body: bytes) -> InvalidMessage:
        """Why ``body`` does not decode, as ``truncated`` or ``malformed-body``."""
        try:
            fastavro.schemaless_reader(_StrictReader(body), writer.parsed, resolved)
        except _Truncated as exc:
            return InvalidMessage("truncated", f"{writer.name}: body ends early, {exc}")
        except Exception as exc:
            return InvalidMessage("malformed-body", f"{writer.name}: {type(exc).__name__}: {exc}")
        return InvalidMessage(  # pragma: no cover - the fast read failed, this one too
            "malformed-body", f"{writer.name}: does not decode"
        )

    def writer_name(self, data: bytes) -> str:
        """Short name of the schema the header of ``data`` names (raises like decode)."""
        return self._writer(data).name

    def _current(self, name: str) -> _Schema:
        try:
            return self._by_name[name]
        except KeyError:
            raise CatalogflowError(f"no schema named {name!r}") from None

    def _writer(self, data: bytes) -> _Schema:
        if len(data) < HEADER_SIZE:
            raise InvalidMessage(
                "short-payload", f"{len(data)} bytes, a header needs {HEADER_SIZE}"
            )
        if bytes(data[: len(MAGIC)]) != MAGIC:
            raise InvalidMessage("bad-magic", f"starts with {bytes(data[:2]).hex()}, not c301")
        fingerprint = bytes(data[len(MAGIC) : HEADER_SIZE])
        try:
            return self._by_fingerprint[fingerprint]
        except KeyError:
            raise InvalidMessage(
                "unknown-schema", f"fingerprint {fingerprint.hex()} matches no shipped schema"
            ) from None


def _misfit(
    name: str, schema: _Schema, record: Mapping[str, Any], exc: Exception
) -> CatalogflowError:
    """The error for a record the writer refused, naming the fields that do not fit
    (the validator says which; it only runs once encoding has failed)."""
    try:
        fastavro.validation.validate(dict(record), schema.parsed, raise_errors=True)
    except fastavro.validation.ValidationError as invalid:
        fields = ", ".join(str(error.field) for error in invalid.errors) or "?"
        return CatalogflowError(f"record does not fit schema {name} (field {fields}): {invalid}")
    return CatalogflowError(f"record does not fit schema {name}: {type(exc).__name__}: {exc}")


class AvroCodec(Codec):
    """Faust codec for one schema: pass as ``value_serializer=`` to topics and tables.

    ``loads`` raises :class:`InvalidMessage` like :meth:`SchemaStore.decode`.
    """

    def __init__(self, schema_name: str, children: Any = None, **kwargs: Any) -> None:
        # ``schema_name`` lives in kwargs so Codec.clone() (used by ``a | b``) keeps it.
        super().__init__(children, schema_name=schema_name, **kwargs)
        self.schema_name = schema_name
        self._store = SchemaStore.shipped()
        self._store.fingerprint(schema_name)  # fail at wiring time on a wrong name
        self._once: Any = None
        self._once_bytes: bytes | None = None

    def _dumps(self, obj: Any) -> bytes:
        if obj is self._once and self._once_bytes is not None:
            return self._once_bytes
        if not isinstance(obj, Mapping):
            raise CatalogflowError(
                f"{self.schema_name} codec needs a mapping, got {type(obj).__name__}"
            )
        data = self._store.encode(self.schema_name, obj)
        if obj is self._once:
            self._once_bytes = data
        return data

    @contextmanager
    def encoding_once(self, record: Any) -> Iterator[None]:
        """Within this block, ``record`` is encoded once however often it is asked for.

        A table write encodes its value twice, for the changelog and for the store
        (faust's ``on_key_set`` and ``SerializedStore.__setitem__``); both happen inside
        one synchronous ``__setitem__``, so nothing can change the record in between.
        """
        self._once, self._once_bytes = record, None
        try:
            yield
        finally:
            self._once, self._once_bytes = None, None

    def _loads(self, s: bytes) -> Any:
        return self._store.decode(s, expected=self.schema_name)


def avro_codec(name: str) -> AvroCodec:
    """A faust codec for the current shipped schema ``name``."""
    return AvroCodec(name)
