import argparse
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.records import ProductChanged, Value

from catalogflow.fieldmap import FieldMap, FieldMapError
from catalogflow.importer import (
    PROGRESS_EVERY,
    Encoded,
    IgnoredKeys,
    ImportContext,
    ImportFileError,
    Rejected,
    Row,
    add_import_command,
    detect_format,
    encode_rows,
    import_rows,
    load_field_map,
    open_rows,
    read_csv,
    read_jsonl,
    row_change,
)

T1 = datetime(2026, 3, 1, tzinfo=UTC)
CONTEXT = ImportContext("catalog.csv", "CREATED", T1)


class ListSink:
    """The producer's fake twin: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.flushed = 0

    def send_raw(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout: float = 60.0) -> int:
        self.flushed += 1
        return len(self.sent)


def outcomes(
    text: str,
    fmt: str = "csv",
    context: ImportContext = CONTEXT,
    field_map: FieldMap | None = None,
    ignored: IgnoredKeys | None = None,
) -> list[Any]:
    stream = io.StringIO(text, newline="")
    rows = read_csv(stream, ",", field_map) if fmt == "csv" else read_jsonl(stream)
    return list(encode_rows(rows, context, field_map, ignored))


def changes(
    text: str,
    fmt: str = "csv",
    context: ImportContext = CONTEXT,
    field_map: FieldMap | None = None,
) -> list[ProductChanged]:
    """Decoded ProductChanged records of the good rows (they went through the codec)."""
    store = SchemaStore.shipped()
    found = outcomes(text, fmt, context, field_map)
    assert all(isinstance(o, Encoded) for o in found), found
    return [store.decode(o.payload, expected=ProductChanged) for o in found]


def rejected(text: str, fmt: str = "csv") -> list[tuple[int, str]]:
    return [(o.line, o.reason) for o in outcomes(text, fmt) if isinstance(o, Rejected)]


def values(change: ProductChanged) -> dict[tuple[str, str | None], Value]:
    return {(v["attribute"], v["locale"]): v["value"] for v in change["values"]}


# --- formats --------------------------------------------------------------------------


def test_format_comes_from_the_extension_or_the_option() -> None:
    assert detect_format(Path("a.csv")) == "csv"
    assert detect_format(Path("a.JSONL")) == "jsonl"
    assert detect_format(Path("a.ndjson")) == "jsonl"
    assert detect_format(Path("a.txt"), "csv") == "csv"
    with pytest.raises(ImportFileError, match=r"extension '\.txt'.*--format"):
        detect_format(Path("a.txt"))
    with pytest.raises(ImportFileError, match="unknown format 'xml'"):
        detect_format(Path("a.csv"), "xml")


# --- CSV ------------------------------------------------------------------------------


CSV = (
    "sku,name,description,description@de_DE,categories,supplier,status,family,price,weight_kg,"
    "color\n"
    "CF-1,Salmon Dry 2 kg,<p>Real salmon.</p>,Echter Lachs.,Pet Food / Cat/Dry Cat Food|Sale,"
    "acme, Enabled ,pet_food,19.90,2,52\n"
)


def test_csv_row_becomes_a_product_change() -> None:
    (change,) = changes(CSV)
    assert change["sku"] == "CF-1"
    assert change["change_type"] == "CREATED"
    assert change["author"] == {"kind": "IMPORT", "id": "catalog.csv", "name": None}
    assert change["source"] == "import"
    assert change["source_timestamp"] == T1
    assert change["categories"] == ["Pet Food/Cat/Dry Cat Food", "Sale"]
    assert (change["supplier"], change["status"], change["family"]) == (
        "acme",
        "enabled",
        "pet_food",
    )
    assert values(change) == {
        ("name", None): "Salmon Dry 2 kg",
        ("description", None): "<p>Real salmon.</p>",
        ("description", "de_DE"): "Echter Lachs.",
        ("price", None): 19.9,
        ("weight_kg", None): 2.0,
        ("color", None): "52",  # not a known numeric attribute: stays text
    }
    assert isinstance(values(change)[("weight_kg", None)], float)
    assert change["event_id"].startswith("import:catalog.csv:2:")


def test_update_option_and_empty_cells_that_change_nothing() -> None:
    text = "sku,name,price,categories,status\nCF-1,,n/a,,\n"
    (change,) = changes(text, context=ImportContext("c.csv", "UPDATED", T1))
    assert change["change_type"] == "UPDATED"
    assert values(change) == {("price", None): "n/a"}  # not numeric: kept as text
    assert (change["categories"], change["status"]) == (None, None)


def test_event_ids_are_stable_per_file_line_and_content() -> None:
    first = changes(CSV)[0]["event_id"]
    assert changes(CSV)[0]["event_id"] == first
    assert changes(CSV.replace("19.90", "18.90"))[0]["event_id"] != first
    other = ImportContext("other.csv", "CREATED", T1)
    assert changes(CSV, context=other)[0]["event_id"] != first
    assert changes(CSV.replace("\nCF-1", "\n\nCF-1"))[0]["event_id"] != first  # line 3 now


def test_bad_csv_rows_are_rejected_with_their_line_and_the_rest_kept() -> None:
    text = (
        "sku,name,description,status\n"  # line 1
        "A-1,One,ok,enabled\n"  # 2
        ",No sku,x,enabled\n"  # 3
        "A-3,Too,few\n"  # 4
        '"A-4","Four","spans\ntwo lines",enabled\n'  # 5-6
        f"{'L' * 65},Long,x,enabled\n"  # 7
        "\n"  # 8: blank, skipped
        "A-9,Nine,x,archived\n"  # 9
        "A-10,Ten,x,disabled\n"  # 10
    )
    assert rejected(text) == [
        (3, "missing sku"),
        (4, "has 3 columns, the header has 4"),
        (7, f"sku {'L' * 20}… is 65 characters; at most 64"),
        (9, "status 'archived' is not enabled or disabled"),
    ]
    good = [o for o in outcomes(text) if isinstance(o, Encoded)]
    assert [(o.line, o.sku) for o in good] == [(2, "A-1"), (5, "A-4"), (10, "A-10")]


def test_undecodable_bytes_cost_one_row(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"sku,name\nA-1,Katzenfu\xdfball\nA-2,Hund\n")
    with open_rows(path, "csv") as rows:
        found = list(encode_rows(rows, CONTEXT))
    assert found[0] == Rejected(2, "is not valid UTF-8")
    assert isinstance(found[1], Encoded) and found[1].sku == "A-2"


def test_csv_with_a_bom_and_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffsku;name@de_DE\nA-1;Katzenfutter\n".encode())
    with open_rows(path, "csv", delimiter=";") as rows:
        (change,) = [row_change(r, CONTEXT) for r in rows if isinstance(r, Row)]
    assert change["sku"] == "A-1"
    assert values(change) == {("name", "de_DE"): "Katzenfutter"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("name,price\nA,1\n", "no sku column"),
        ("sku,name,name\n", "'name' appears twice"),
        ("sku,,name\n", "column 2 of the header has no name"),
        ("sku,description@\n", "'description@' is not ATTRIBUTE or ATTRIBUTE@LOCALE"),
        ("sku,status@de_DE\n", "status has no locale values"),
        ("sku,values\n", "values column is for JSON Lines"),
    ],
)
def test_an_unusable_header_makes_the_file_unreadable(text: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        read_csv(io.StringIO(text))


def test_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    with (
        pytest.raises(ImportFileError, match=r"cannot read .*gone\.csv"),
        open_rows(tmp_path / "gone.csv", "csv"),
    ):
        pass


# --- JSON Lines -----------------------------------------------------------------------


def test_jsonl_rows_with_flat_keys_or_a_values_list() -> None:
    lines = [
        {"sku": "J-1", "name": "Lachs", "name@de_DE": "Lachs DE", "price": 12, "in_stock": True,
         "categories": ["Pet Food/Cat"], "status": "disabled", "event_id": "ignored"},
        {"sku": "J-2", "values": [
            {"attribute": "description", "locale": "fr_FR", "scope": "fr", "value": "Saumon"},
            {"attribute": "weight_kg", "value": "1.5"},
            {"attribute": "tags", "value": ["a", "b"]},
        ], "categories": "A/B|C", "description": None},
    ]  # fmt: skip
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    one, two = changes(text, "jsonl")
    assert values(one) == {
        ("name", None): "Lachs",
        ("name", "de_DE"): "Lachs DE",
        ("price", None): 12.0,
        ("in_stock", None): True,
    }
    assert (one["categories"], one["status"]) == (["Pet Food/Cat"], "disabled")
    assert one["event_id"].startswith("import:catalog.csv:1:")
    assert values(two) == {
        ("description", None): None,  # null clears the value
        ("description", "fr_FR"): "Saumon",
        ("weight_kg", None): 1.5,
        ("tags", None): ["a", "b"],
    }
    assert next(v for v in two["values"] if v["locale"] == "fr_FR")["scope"] == "fr"
    assert two["categories"] == ["A/B", "C"]


def test_bad_jsonl_lines_are_rejected_with_their_line() -> None:
    text = "\n".join(
        [
            '{"sku": "J-1", "name": "ok"}',
            '{"sku": "J-2", "name": ',
            "[1, 2]",
            "",
            '{"name": "no sku"}',
            '{"sku": "J-6", "color": [{"r": 1}]}',
            '{"sku": "J-7", "values": [{"attribute": "name"}]}',
            '{"sku": 8, "name": "numeric sku"}',
            '{"sku": "J-9", "supplier": 3}',
        ]
    )
    found = rejected(text, "jsonl")
    assert [line for line, _ in found] == [2, 3, 5, 6, 7, 9]
    reasons = dict(found)
    assert reasons[2].startswith("is not valid JSON: Expecting value at column")
    assert reasons[3] == "is a JSON list, not an object"
    assert reasons[5] == "missing sku"
    assert reasons[6] == (
        'key "color": a list of objects cannot become an attribute '
        '(drop it with a --map entry "color: null")'
    )
    assert reasons[7] == "values[0] (name) has no value"
    assert reasons[9] == "supplier 3 is not text"
    good = [o.sku for o in outcomes(text, "jsonl") if isinstance(o, Encoded)]
    assert good == ["J-1", "8"]


# --- nested exports and field maps -----------------------------------------------------


def jsonl(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


EXPORT = jsonl(
    {"sku": "N-1", "_id": "a1", "name": "Salmon", "attributes": {"brand": "Acme", "weight": 2}},
    {"sku": "N-2", "_id": "a2", "_rev": 3, "attributes": {"brand": "Nordic", "_source": "pim",
     "tags": ["dry", "grain free", 7, True], "size": {"depth": 1.5}}},
    {"sku": "N-3", "attributes": {"brand": "Acme"}, "variants": [{"sku": "N-3a"}, {"sku": "N-3b"}]},
    {"sku": "N-4", "attributes": {"name@de_DE": "Lachs", "color": None}, "meta": {}},
)  # fmt: skip


def test_nested_objects_become_dotted_names_and_underscore_keys_are_reported_once() -> None:
    sink = ListSink()
    summary = import_rows(read_jsonl(io.StringIO(EXPORT)), sink, CONTEXT)
    assert (summary.rows, summary.imported) == (4, 3)
    assert summary.ignored == ("_id", "_rev", "attributes._source")  # once each, not per row
    store = SchemaStore.shipped()
    one, two, four = (store.decode(p, expected=ProductChanged) for _, _, p in sink.sent)
    assert values(one) == {
        ("name", None): "Salmon",
        ("attributes.brand", None): "Acme",
        ("attributes.weight", None): 2,
    }
    assert values(two) == {
        ("attributes.brand", None): "Nordic",
        ("attributes.tags", None): ["dry", "grain free", "7", "true"],  # a list stays a list
        ("attributes.size.depth", None): 1.5,
    }
    assert values(four) == {("attributes.name", "de_DE"): "Lachs", ("attributes.color", None): None}


def test_a_nested_list_of_objects_rejects_its_row_alone_with_one_line_naming_the_key() -> None:
    reported: list[Rejected] = []
    summary = import_rows(
        read_jsonl(io.StringIO(EXPORT)), ListSink(), CONTEXT, on_rejected=reported.append
    )
    assert (
        reported
        == list(summary.rejected)
        == [
            Rejected(
                3,
                'key "variants": a list of objects cannot become an attribute '
                '(drop it with a --map entry "variants: null")',
            )
        ]
    )
    assert summary.imported == 3


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"tags": ["a", {"b": 1}]}, 'key "tags": an object inside a list cannot become'),
        ({"a": {"grid": [[1], [2]]}}, 'key "a.grid": a list inside a list cannot become'),
        ({"tags": ["a", None]}, 'key "tags": item 2 of the list is null'),
        ({"n": 2**64}, f'key "n": the number {2**64} does not fit a 64-bit integer'),
        ({"values": [{"attribute": "c", "value": {"r": 1}}]}, 'values[0] (c)": an object cannot'),
        (
            {"values": [{"attribute": "c", "value": [{"r": 1}]}]},
            'key "values[0] (c)": a list of objects cannot become an attribute',
        ),
        ({"values": [{"attribute": "c", "locale": 5, "value": 1}]}, "locale 5 is not text"),
    ],
)
def test_values_no_attribute_can_hold_are_named_before_avro_sees_them(
    row: dict[str, Any], reason: str
) -> None:
    ((line, found),) = rejected(jsonl({"sku": "V-1", **row}), "jsonl")
    assert line == 1
    assert reason in found, found
    assert "\n" not in found and "io.catalogflow" not in found  # no encoder dump


def write_map(tmp_path: Path, text: str, name: str = "map.yaml") -> FieldMap:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_field_map(path)


def test_a_field_map_renames_lifts_drops_and_keeps_locales(tmp_path: Path) -> None:
    field_map = write_map(
        tmp_path,
        "attributes.weight: weight_kg\n"
        "attributes.name: title\n"
        "attributes: ''\n"
        "variants: null\n"
        "_id: external_id\n",
    )
    ignored = IgnoredKeys()
    found = outcomes(EXPORT, "jsonl", field_map=field_map, ignored=ignored)
    assert all(isinstance(o, Encoded) for o in found), found  # variants dropped: all 4 rows
    assert ignored.keys == ("_rev", "attributes._source")  # _id is named by the map
    store = SchemaStore.shipped()
    one, _, three, four = (store.decode(o.payload, expected=ProductChanged) for o in found)
    assert values(one) == {
        ("name", None): "Salmon",
        ("brand", None): "Acme",
        ("weight_kg", None): 2.0,  # a numeric attribute, by its mapped name
        ("external_id", None): "a1",
    }
    assert values(three) == {("brand", None): "Acme"}
    assert values(four) == {("title", "de_DE"): "Lachs", ("color", None): None}


def test_a_json_field_map_and_two_keys_that_become_one_field(tmp_path: Path) -> None:
    row = jsonl({"sku": "M-1", "brand": "A", "attributes": {"brand": "B"}})
    assert rejected(row, "jsonl") == []  # brand and attributes.brand: two fields
    field_map = write_map(tmp_path, '{"attributes.brand": "brand"}', "map.json")
    assert outcomes(row, "jsonl", field_map=field_map) == [
        Rejected(1, 'key "attributes.brand": it becomes "brand", and so does key "brand"')
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must be a mapping of source key: catalogflow field"),
        ("a: [1\n", "is not valid YAML"),
        ("a: 3\n", "entry 'a': the target must be a field name"),
        ("a..b: c\n", "entry 'a..b': a source is a key or dotted path"),
        ("a: event_id\n", "entry 'a': event_id is set by the import"),
        ("a: values\n", "entry 'a': values is the list form"),
        ("a: b@\n", "entry 'a': 'b@' is not ATTRIBUTE or ATTRIBUTE@LOCALE"),
    ],
)
def test_a_bad_field_map_names_its_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(FieldMapError, match=r"map\.yaml") as raised:
        write_map(tmp_path, text)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_csv_headers_are_mapped_like_json_keys(tmp_path: Path) -> None:
    field_map = write_map(tmp_path, "SKU: sku\nattributes.brand: brand\n")
    text = "SKU,attributes.brand,attributes.weight,_internal\nC-1,Acme,2,x\nC-2,Nordic,,y\n"
    ignored = IgnoredKeys()
    found = outcomes(text, field_map=field_map, ignored=ignored)
    store = SchemaStore.shipped()
    one, two = (store.decode(o.payload, expected=ProductChanged) for o in found)
    assert one["sku"] == "C-1"
    assert values(one) == {("brand", None): "Acme", ("attributes.weight", None): "2"}
    assert values(two) == {("brand", None): "Nordic"}
    assert ignored.keys == ("_internal",)
    with pytest.raises(
        ImportFileError, match=r"'brand' and 'attributes\.brand' both become 'brand'"
    ):
        read_csv(io.StringIO("SKU,brand,attributes.brand\n"), ",", field_map)
    with pytest.raises(ImportFileError, match="no sku column"):
        read_csv(io.StringIO("SKU,name\n"))  # without the map, SKU is not sku


# --- sending --------------------------------------------------------------------------


def test_import_sends_good_rows_keyed_by_sku_reports_progress_and_flushes() -> None:
    count = PROGRESS_EVERY * 2 + 5
    body = "".join(f"S-{n},Name {n}\n" if n != 7 else ",no sku\n" for n in range(count))
    sink, bad, progress = ListSink(), list[Rejected](), list[str]()
    rows = read_csv(io.StringIO("sku,name\n" + body))
    summary = import_rows(rows, sink, CONTEXT, on_rejected=bad.append, progress=progress.append)
    assert (summary.rows, summary.imported) == (count, count - 1)
    assert bad == [Rejected(9, "missing sku")] == list(summary.rejected)
    assert progress == [
        f"{PROGRESS_EVERY} rows read: {PROGRESS_EVERY - 1} imported, 1 rejected",
        f"{2 * PROGRESS_EVERY} rows read: {2 * PROGRESS_EVERY - 1} imported, 1 rejected",
    ]
    assert sink.flushed == 1
    topic, key, payload = sink.sent[0]
    assert (topic, key) == ("product-changes", b"S-0")
    assert SchemaStore.shipped().decode(payload, expected=ProductChanged)["sku"] == "S-0"


# --- the command ----------------------------------------------------------------------


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="catalogflow")
    parser.add_argument("--config", type=Path)
    add_import_command(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.run(args))


def test_unusable_files_exit_2_before_any_broker_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CATALOGFLOW_BROKER", "127.0.0.1:9")  # nothing listens there
    (tmp_path / "catalog.txt").write_text("sku\nA\n")
    (tmp_path / "noheader.csv").write_text("")
    assert run(["import", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert run(["import", str(tmp_path / "catalog.txt")]) == 2
    assert "name it with --format" in capsys.readouterr().err
    assert run(["import", str(tmp_path / "noheader.csv")]) == 2
    assert "the file is empty" in capsys.readouterr().err
    (tmp_path / "bad-map.yaml").write_text("a: [1\n")
    (tmp_path / "ok.jsonl").write_text('{"sku": "A"}\n')
    assert run(["import", str(tmp_path / "ok.jsonl"), "--map", str(tmp_path / "bad-map.yaml")]) == 2
    assert "the field map" in capsys.readouterr().err
    assert run(["import", str(tmp_path / "ok.jsonl"), "--map", str(tmp_path / "none.yaml")]) == 2
    assert "cannot read the field map" in capsys.readouterr().err
    for bad_option in (["--format", "xml"], ["--delimiter", ";;"]):
        with pytest.raises(SystemExit) as exited:
            run(["import", str(tmp_path / "catalog.txt"), *bad_option])
        assert exited.value.code == 2


def test_help_documents_nested_keys_and_the_field_map(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["import", "--help"])
    text = capsys.readouterr().out
    for promise in ("--map FILE", "attributes.brand: brand", "variants: null", "dotted", "_"):
        assert promise in text
