import argparse
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from catalogflow.streams.codec import SchemaStore

from catalogflow.importer import (
    PROGRESS_EVERY,
    Encoded,
    ImportContext,
    ImportFileError,
    Rejected,
    Row,
    add_import_command,
    detect_format,
    encode_rows,
    import_rows,
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


def outcomes(text: str, fmt: str = "csv", context: ImportContext = CONTEXT) -> list[Any]:
    stream = io.StringIO(text, newline="")
    rows = read_csv(stream) if fmt == "csv" else read_jsonl(stream)
    return list(encode_rows(rows, context))


def changes(text: str, fmt: str = "csv", context: ImportContext = CONTEXT) -> list[dict[str, Any]]:
    """Decoded ProductChanged records of the good rows (they went through the codec)."""
    store = SchemaStore.shipped()
    found = outcomes(text, fmt, context)
    assert all(isinstance(o, Encoded) for o in found), found
    return [store.decode(o.payload, expected="ProductChanged") for o in found]


def rejected(text: str, fmt: str = "csv") -> list[tuple[int, str]]:
    return [(o.line, o.reason) for o in outcomes(text, fmt) if isinstance(o, Rejected)]


def values(change: dict[str, Any]) -> dict[tuple[str, str | None], Any]:
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
            '{"sku": "J-6", "color": {"r": 1}}',
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
    assert "does not fit schema ProductChanged" in reasons[6]
    assert reasons[7] == "values[0] (name) has no value"
    assert reasons[9] == "supplier 3 is not text"
    good = [o.sku for o in outcomes(text, "jsonl") if isinstance(o, Encoded)]
    assert good == ["J-1", "8"]


# --- sending --------------------------------------------------------------------------


def test_import_sends_good_rows_keyed_by_sku_reports_progress_and_flushes() -> None:
    count = PROGRESS_EVERY * 2 + 5
    body = "".join(f"S-{n},Name {n}\n" if n != 7 else ",no sku\n" for n in range(count))
    sink, bad, progress = ListSink(), [], []
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
    assert SchemaStore.shipped().decode(payload, expected="ProductChanged")["sku"] == "S-0"


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
    for bad_option in (["--format", "xml"], ["--delimiter", ";;"]):
        with pytest.raises(SystemExit) as exited:
            run(["import", str(tmp_path / "catalog.txt"), *bad_option])
        assert exited.value.code == 2
