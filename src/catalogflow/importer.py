"""``catalogflow import FILE``: a catalog file becomes ProductChanged events on
``product-changes``, one per row, so the catalog agent builds the products table from it.

Two formats, chosen by the extension (``.csv``; ``.jsonl`` or ``.ndjson``) or ``--format``:

* CSV with a header row. Columns ``sku``, ``name``, ``description``, ``categories``
  (paths such as ``Pet Food/Cat/Dry Cat Food``, several separated by ``|``),
  ``supplier``, ``status`` (``enabled``/``disabled``) and ``family``; every other column
  is an attribute. ``description@de_DE`` is the ``de_DE`` value of ``description``.
  Cells are trimmed; an empty cell means "not given", so it changes nothing.
* JSON Lines: one object per line with the same keys (``null`` clears a value), and/or
  ``values`` as a list like ProductChanged's (``attribute``, ``locale``, ``scope``,
  ``value``). The event envelope keys (``event_id``, ``author``…) are set by the import
  and ignored when present. A nested object becomes dotted names
  (``{"attributes": {"brand": …}}`` → ``attributes.brand``); a list of text or numbers
  stays a list (of text, as ProductChanged keeps lists).

``--map FILE`` (YAML or JSON, :mod:`catalogflow.fieldmap`) renames or drops keys and
CSV columns alike (``attributes.brand: brand``, ``variants: null``). Keys with a segment
starting with ``_`` are left out and listed once at the end, unless the map names them.

``price`` and ``weight_kg`` become numbers when they read as one; everything else keeps
its type (text, for CSV). A row that cannot become a valid record (no sku, a sku over
64 characters, bad JSON, the wrong number of columns, a value no attribute can hold
such as a list of objects) is reported as one ``FILE:LINE: key "…": why`` line and
skipped; the other rows still go out. Values are checked before Avro sees them, so no
encoder dump reaches the user.

Each event id is ``import:FILE:LINE:HASH`` (file name, line, hash of the row), so a
re-import of the same file produces the same ids and a product whose last event it
already was does not change. Exit codes: 0 every row imported, 1 some rows rejected
(or Kafka did not confirm), 2 the file cannot be read or its format is unknown.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol, TextIO, get_args

from catalogflow.fieldmap import FieldMap, FieldMapError, attribute_value, flatten
from catalogflow.streams.errors import CatalogflowError, InvalidMessage
from catalogflow.streams.products import validate_change
from catalogflow.streams.records import AttributeValue, ProductChanged

ImportFormat = Literal["csv", "jsonl"]
FORMATS: tuple[ImportFormat, ...] = get_args(ImportFormat)
FORMAT_BY_SUFFIX: dict[str, ImportFormat] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
ChangeType = Literal["CREATED", "UPDATED"]

#: Attributes whose numeric text is sent as a number (double).
NUMERIC_ATTRIBUTES = frozenset({"price", "weight_kg"})
#: Keys that are product fields, not attribute values.
PRODUCT_FIELDS = frozenset({"sku", "categories", "supplier", "status", "family"})
#: ProductChanged envelope keys a JSON line may carry; the import sets its own.
ENVELOPE_KEYS = frozenset({"event_id", "change_type", "author", "source", "source_timestamp"})
#: The list form of values a JSON line may carry; not a field a key can be mapped to.
VALUES_KEY = "values"
STATUSES = ("enabled", "disabled")
CATEGORY_SEPARATOR = "|"
LOCALE_MARK = "@"
SOURCE = "import"
TOPIC: Final = "product-changes"
PROGRESS_EVERY = 1000
EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE = 0, 1, 2

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# Undecodable bytes, kept by the "surrogateescape" error handler so one bad byte costs
# one row rather than the whole file.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


class ImportFileError(CatalogflowError):
    """The file cannot be imported at all: unreadable, unknown format, unusable header."""


class RowError(CatalogflowError):
    """One row cannot become a product change; the reason names what is wrong."""


@dataclass(frozen=True)
class Row:
    """One record of the file as read: column (or key) → value, and where it starts."""

    line: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


@dataclass(frozen=True)
class Encoded:
    """A row turned into a checked ProductChanged, encoded for its topic."""

    line: int
    sku: str
    payload: bytes


@dataclass(frozen=True)
class ImportContext:
    """What every event of one import shares."""

    file_name: str
    change_type: ChangeType
    timestamp: datetime


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    imported: int
    rejected: tuple[Rejected, ...]
    #: ``_`` keys left out, each once, in the order first met.
    ignored: tuple[str, ...] = ()


class IgnoredKeys:
    """Collects the ``_`` keys rows left out, so they are reported once, not per row."""

    def __init__(self) -> None:
        self._keys: dict[str, None] = {}

    def add(self, keys: tuple[str, ...]) -> None:
        self._keys.update(dict.fromkeys(keys))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self._keys)


class RawSink(Protocol):
    """Where encoded events go: :class:`~catalogflow.streams.producer.RecordProducer`."""

    def send_raw(self, topic: Literal["product-changes"], key: bytes | None, value: bytes) -> None:
        """Queue one message."""

    def flush(self, timeout: float = 60.0) -> int:
        """Wait until every queued message is confirmed; raise if one is not."""


# --- reading the file -----------------------------------------------------------------


def detect_format(path: Path, given: str | None = None) -> ImportFormat:
    """The format named by ``--format``, else the one of the file's extension."""
    if given is not None:
        for fmt in FORMATS:
            if given == fmt:
                return fmt
        raise ImportFileError(f"unknown format {given!r}; use one of {', '.join(FORMATS)}")
    try:
        return FORMAT_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        known = ", ".join(FORMAT_BY_SUFFIX)
        raise ImportFileError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r} "
            f"(known: {known}); name it with --format"
        ) from None


def load_field_map(path: Path) -> FieldMap:
    """The ``--map`` file, each target checked as a catalogflow field name."""
    return FieldMap.load(path, check_target=_check_target)


def _check_target(name: str) -> None:
    if name in ENVELOPE_KEYS:
        raise RowError(f"{name} is set by the import, not by a file")
    if name == VALUES_KEY:
        raise RowError("values is the list form of JSON Lines; map to an attribute name")
    split_key(name)


@contextlib.contextmanager
def open_rows(
    path: Path, fmt: ImportFormat, *, delimiter: str = ",", field_map: FieldMap | None = None
) -> Iterator[Iterator[Row | Rejected]]:
    """Open ``path`` and check its header now (so a bad file fails before anything is
    sent); yield its rows, or the rejection of each row that cannot be read."""
    try:
        stream = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with stream:
        rows = read_csv(stream, delimiter, field_map) if fmt == "csv" else read_jsonl(stream)
        yield _reading(rows, path)


def _reading(rows: Iterator[Row | Rejected], path: Path) -> Iterator[Row | Rejected]:
    try:
        yield from rows
    except OSError as exc:
        raise ImportFileError(f"reading {path} failed: {exc.strerror or exc}") from exc


def read_csv(
    stream: TextIO, delimiter: str = ",", field_map: FieldMap | None = None
) -> Iterator[Row | Rejected]:
    """Rows of a CSV catalog, keyed by header name (:func:`encode_rows` applies the map);
    the header, as the map renames it, is checked before this returns."""
    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    try:
        header = next((row for row in reader if row), None)
    except csv.Error as exc:
        raise ImportFileError(f"the header row does not parse: {exc}") from exc
    if header is None:
        raise ImportFileError("the file is empty; a CSV catalog starts with a header row")
    columns = [name.strip() for name in header]
    _check_header(columns, field_map or FieldMap())
    return _csv_rows(reader, columns)


def _check_header(columns: list[str], field_map: FieldMap) -> None:
    became: dict[str, str] = {}
    for number, name in enumerate(columns, start=1):
        if not name:
            raise ImportFileError(f"column {number} of the header has no name")
        if columns.index(name) != number - 1:
            raise ImportFileError(f"column {name!r} appears twice in the header")
        target = field_map.resolve(name)
        if target is None:
            continue
        if target == VALUES_KEY:
            raise ImportFileError("a values column is for JSON Lines; in CSV give one column each")
        if target in became:
            raise ImportFileError(
                f"columns {became[target]!r} and {name!r} both become {target!r} (see --map)"
            )
        became[target] = name
        try:
            split_key(target)
        except RowError as exc:
            raise ImportFileError(f"header: {exc}") from None
    if "sku" not in became:
        raise ImportFileError(f"the header has no sku column (columns: {', '.join(columns)})")


def _csv_rows(reader: Any, columns: list[str]) -> Iterator[Row | Rejected]:
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejected(start, f"does not parse as CSV: {exc}")
            continue
        if not cells:  # a blank line
            continue
        if len(cells) != len(columns):
            yield Rejected(start, f"has {len(cells)} columns, the header has {len(columns)}")
            continue
        if any(_UNDECODABLE.search(cell) for cell in cells):
            yield Rejected(start, "is not valid UTF-8")
            continue
        fields = {name: cell.strip() for name, cell in zip(columns, cells, strict=True)}
        yield Row(start, {name: cell for name, cell in fields.items() if cell})


def read_jsonl(stream: TextIO) -> Iterator[Row | Rejected]:
    """Rows of a JSON Lines catalog, one object per line; blank lines are skipped."""
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        if _UNDECODABLE.search(text):
            yield Rejected(line, "is not valid UTF-8")
            continue
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Rejected(line, f"is not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(fields, dict):
            yield Rejected(line, f"is a JSON {type(fields).__name__}, not an object")
            continue
        yield Row(line, fields)


# --- rows to events -------------------------------------------------------------------


def split_key(key: str) -> tuple[str, str | None]:
    """``description@de_DE`` → ``("description", "de_DE")``; ``name`` → ``("name", None)``."""
    attribute, mark, locale = key.partition(LOCALE_MARK)
    if not mark:
        return key, None
    if not attribute or not locale or LOCALE_MARK in locale or locale != locale.strip():
        raise RowError(f"{key!r} is not ATTRIBUTE or ATTRIBUTE@LOCALE (e.g. description@de_DE)")
    if attribute in PRODUCT_FIELDS:
        raise RowError(f"{key!r}: {attribute} has no locale values")
    return attribute, locale


def row_change(row: Row, context: ImportContext) -> ProductChanged:
    """The ProductChanged record of one row (not yet checked against the schema)."""
    fields = row.fields
    sku = fields.get("sku")
    if isinstance(sku, int) and not isinstance(sku, bool):
        sku = str(sku)
    if sku is None:
        raise RowError("missing sku")
    if not isinstance(sku, str):
        raise RowError(f"sku {sku!r} is not text")
    if not sku.strip():
        raise RowError("missing sku")
    values = [
        _value(attribute, locale, None, raw)
        for key, raw in fields.items()
        if key not in PRODUCT_FIELDS and key not in ENVELOPE_KEYS and key != VALUES_KEY
        for attribute, locale in [split_key(key)]
    ]
    values += _listed_values(fields.get(VALUES_KEY))
    return {
        "event_id": event_id(context.file_name, row),
        "sku": sku.strip(),
        "change_type": context.change_type,
        "author": {"kind": "IMPORT", "id": context.file_name, "name": None},
        "source": SOURCE,
        "source_timestamp": context.timestamp,
        "values": values,
        "categories": _categories(fields.get("categories")),
        "supplier": _text_field(fields, "supplier"),
        "status": _status(fields.get("status")),
        "family": _text_field(fields, "family"),
    }


def event_id(file_name: str, row: Row) -> str:
    """Stable for the same row at the same line of the same file."""
    content = json.dumps(row.fields, sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"import:{file_name}:{row.line}:{digest}"


def _value(attribute: str, locale: str | None, scope: str | None, raw: Any) -> AttributeValue:
    value = _number(raw) if attribute in NUMERIC_ATTRIBUTES else raw
    return {"attribute": attribute, "locale": locale, "scope": scope, "value": value}


def _number(raw: Any) -> Any:
    """A double for numeric text or a JSON integer; anything else as it is."""
    if isinstance(raw, str) and _NUMBER.fullmatch(raw.strip()):
        return float(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    return raw


def _listed_values(listed: Any) -> list[AttributeValue]:
    if listed is None:
        return []
    if not isinstance(listed, list):
        raise RowError("values must be a list of {attribute, locale, scope, value} objects")
    out = []
    for position, item in enumerate(listed):
        if not isinstance(item, dict) or not isinstance(item.get("attribute"), str):
            raise RowError(f"values[{position}] is not an object with an attribute name")
        name = f"values[{position}] ({item['attribute']})"
        if "value" not in item:
            raise RowError(f"{name} has no value")
        for part in ("locale", "scope"):
            if not isinstance(item.get(part), str | None):
                raise RowError(f"{name}: {part} {item[part]!r} is not text")
        value = attribute_value(name, item["value"], mappable=False)
        out.append(_value(item["attribute"], item.get("locale"), item.get("scope"), value))
    return out


def _categories(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.split(CATEGORY_SEPARATOR)
    if not isinstance(raw, list) or not all(isinstance(path, str) for path in raw):
        raise RowError("categories must be text (paths separated by |) or a list of paths")
    paths = ("/".join(part.strip() for part in path.split("/") if part.strip()) for path in raw)
    return [path for path in paths if path]


def _text_field(fields: Mapping[str, Any], name: str) -> str | None:
    raw = fields.get(name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise RowError(f"{name} {raw!r} is not text")
    return raw.strip() or None


def _status(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    status = raw.strip().lower() if isinstance(raw, str) else raw
    if status not in STATUSES:
        raise RowError(f"status {raw!r} is not {' or '.join(STATUSES)}")
    return str(status)


def encode_rows(
    rows: Iterator[Row | Rejected],
    context: ImportContext,
    field_map: FieldMap | None = None,
    ignored: IgnoredKeys | None = None,
) -> Iterator[Encoded | Rejected]:
    """Each row as an encoded ProductChanged, or the reason it cannot be one: its keys
    flattened and mapped (:func:`~catalogflow.fieldmap.flatten`, which names a key whose
    value no attribute can hold), the catalog agent's own checks
    (:func:`validate_change`) and then the Avro schema. ``_`` keys go to ``ignored``."""
    from catalogflow.streams.codec import SchemaStore

    schemas = SchemaStore.shipped()
    for row in rows:
        if isinstance(row, Rejected):
            yield row
            continue
        try:
            flat = flatten(row.fields, field_map)
            if ignored is not None:
                ignored.add(flat.ignored)
            change = row_change(Row(row.line, flat.fields), context)
            validate_change(change)
            payload = schemas.encode("ProductChanged", change)
        except InvalidMessage as exc:
            yield Rejected(row.line, exc.detail)
        except CatalogflowError as exc:  # RowError, UnusableKey, or the schema refused it
            # The codec's message carries the encoder's multi-line dump: one line only.
            yield Rejected(row.line, str(exc).split(": [", 1)[0].splitlines()[0])
        else:
            yield Encoded(row.line, change["sku"], payload)


def import_rows(
    rows: Iterator[Row | Rejected],
    sink: RawSink,
    context: ImportContext,
    *,
    field_map: FieldMap | None = None,
    on_rejected: Callable[[Rejected], None] = lambda _: None,
    progress: Callable[[str], None] = lambda _: None,
) -> ImportSummary:
    """Send every good row to ``product-changes`` (keyed by SKU) and wait for Kafka to
    confirm them; report each bad one to ``on_rejected`` as it is met."""
    total = imported = 0
    rejected: list[Rejected] = []
    ignored = IgnoredKeys()
    try:
        for outcome in encode_rows(rows, context, field_map, ignored):
            total += 1
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
                on_rejected(outcome)
            else:
                sink.send_raw(TOPIC, outcome.sku.encode(), outcome.payload)
                imported += 1
            if total % PROGRESS_EVERY == 0:
                progress(f"{total} rows read: {imported} imported, {len(rejected)} rejected")
    finally:
        sink.flush()  # what was sent goes out even if reading failed midway
    return ImportSummary(total, imported, tuple(rejected), ignored.keys)


# --- the command ----------------------------------------------------------------------


def add_import_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``import FILE [--format csv|jsonl] [--map FILE] [--update] [--delimiter C]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "import",
        help="publish a catalog file (CSV or JSON Lines) as product changes",
        description=textwrap.dedent("""\
            Publish a catalog file (CSV or JSON Lines) as product changes, one per row.
            Nested JSON objects become dotted field names (attributes.brand); lists of text
            or numbers stay lists; keys starting with _ are left out and listed once.
            A bad row is reported as one line, FILE:LINE: key "...": why, and skipped.
            Exit codes: 0 all rows imported, 1 some rejected, 2 the file or the map
            cannot be read."""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=MAP_HELP,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="catalog file")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="file format (default: from the extension: .csv, .jsonl, .ndjson)",
    )
    parser.add_argument(
        "--map",
        type=Path,
        default=None,
        metavar="FILE",
        dest="field_map",
        help="field map (YAML or JSON): source key or dotted path → catalogflow field; "
        "applies to JSON keys and CSV headers (format below)",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="send the rows as UPDATED events (default CREATED)",
    )
    parser.add_argument(
        "--delimiter",
        type=_delimiter,
        default=",",
        metavar="C",
        help="CSV field separator (default ',')",
    )
    parser.set_defaults(run=run_import)


MAP_HELP = """\
field map (--map FILE), YAML or JSON, one entry per source key or dotted path:
  attributes.brand: brand          rename (a CSV header attributes.brand too)
  attributes.name_de: name@de_DE   a target may carry a locale
  attributes.name: title           attributes.name@fr_FR becomes title@fr_FR too
  specs: ""                        lift what is under specs: specs.color -> color
  variants: null                   drop the key and everything under it
  _id: external_id                 a _ key the map names is imported
An entry naming an object applies to everything under it; the longest entry wins.
"""


def _delimiter(text: str) -> str:
    text = "\t" if text in ("\\t", "tab") else text
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"a delimiter is one character, got {text!r}")
    return text


def run_import(args: argparse.Namespace) -> int:
    """The ``import`` command: 0 all rows imported, 1 some rejected, 2 unusable file."""
    from catalogflow.streams.admin import ensure_topics
    from catalogflow.streams.producer import RecordProducer
    from catalogflow.streams.settings import Settings

    path: Path = args.file
    context = ImportContext(
        file_name=path.name,
        change_type="UPDATED" if args.update else "CREATED",
        timestamp=datetime.now(UTC),
    )
    try:
        fmt = detect_format(path, args.format)
        map_path: Path | None = getattr(args, "field_map", None)
        field_map = load_field_map(map_path) if map_path is not None else None
        with open_rows(path, fmt, delimiter=args.delimiter, field_map=field_map) as rows:
            settings = Settings.load(getattr(args, "config", None))
            ensure_topics(settings)
            summary = import_rows(
                rows,
                RecordProducer(settings),
                context,
                field_map=field_map,
                on_rejected=lambda bad: print(
                    f"{path.name}:{bad.line}: {bad.reason}", file=sys.stderr, flush=True
                ),
                progress=lambda text: print(f"  {text}", file=sys.stderr, flush=True),
            )
    except (ImportFileError, FieldMapError) as exc:
        print(f"catalogflow import: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if summary.ignored:
        print(
            f"{path.name}: left out keys starting with _ (name them in --map to import): "
            + ", ".join(summary.ignored),
            file=sys.stderr,
        )
    print(
        f"{summary.imported} imported, {len(summary.rejected)} rejected "
        f"({summary.rows} rows of {path.name}) to {settings.topic(TOPIC)}"
    )
    return EXIT_REJECTED if summary.rejected else EXIT_OK
