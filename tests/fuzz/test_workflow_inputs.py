"""Workflow files and CLI inputs that are wrong: any text, malformed or deeply nested
YAML, an alias inside its own anchor, unknown fields, wrong types, huge documents,
bytes that are not UTF-8. Each gives a ``DefinitionError`` (a ConfigError) whose
problems name the field or line, never a bare library error; the CLI exits 2 with the
problems and no traceback, for ``workflow validate`` and for ``workflow dry-run`` and
its ``--products`` file."""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.definitions import DefinitionError, WorkflowDefinition, parse_definition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalogflow.cli import EXIT_USAGE, main
from tests.fuzz.hostile import HOSTILE_TEXTS, texts

EXAMPLE = Path(__file__).parents[2] / "examples" / "dry-cat-food.yaml"
DOCUMENT: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
FEW = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: YAML that does not parse, or parses into something that is no workflow.
MALFORMED = [
    "",
    "id: [unclosed",
    "id: a\n  mode: b\n - c",
    "{{{{",
    "\tid: tab",
    "id: &a\nmode: *b\n",
    "? [a, b]\n: c\n",
    "--- !!python/object:os.system\nx: 1\n",
    "\x00",
    "id: \udc80".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
    "[" * 5_000,
    "a:\n" + "".join("  " * i + "- \n" for i in range(1, 400)),
    "- " * 3_000 + "x",
]


def problems_of(text: str) -> DefinitionError | WorkflowDefinition:
    """The definition, or the DefinitionError; anything else fails the test."""
    try:
        return parse_definition(text, "wf.yaml")
    except DefinitionError as exc:
        assert exc.problems and all(p.message.strip() for p in exc.problems)
        assert str(exc).startswith("wf.yaml")
        return exc


def cli(argv: list[str]) -> tuple[int, str]:
    """Exit code and everything printed, with the CLI run in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    return code, out.getvalue()


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_yaml_is_a_definition_error_that_says_where(text: str) -> None:
    assert isinstance(problems_of(text), DefinitionError)


def test_an_alias_inside_its_own_anchor_names_the_setting() -> None:
    text = "id: w\nmode: one_time\nactions:\n- id: e\n  type: validation\n  settings: &s {x: *s}\n"
    found = problems_of(text)
    assert isinstance(found, DefinitionError)
    assert "actions[0].settings.x" in str(found)


@FEW
@given(st.one_of(st.text(max_size=300), st.sampled_from(HOSTILE_TEXTS)))
def test_any_text_is_a_definition_or_a_definition_error(text: str) -> None:
    problems_of(text)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into the example document."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


PATHS = [p for p in _paths(DOCUMENT) if p]
#: Values of the wrong type anywhere, and absurd ones.
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    texts,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _shown(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@FEW
@given(st.sampled_from(PATHS), WRONG)
def test_a_wrong_value_anywhere_is_refused_naming_where_or_accepted(
    path: tuple[Any, ...], value: Any
) -> None:
    document = copy.deepcopy(DOCUMENT)
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    found = problems_of(yaml.safe_dump(document, allow_unicode=True))
    if isinstance(found, DefinitionError):
        shown = _shown(path)
        # Named where it is, or at the field or list around it (e.g. a missing entry).
        assert any(shown.startswith(p.path) or p.path.startswith(shown) for p in found.problems), (
            shown,
            str(found),
        )


@FEW
@given(
    st.sampled_from([p for p in PATHS if isinstance(p[-1], str)]),
    # Not line breaks or control characters: YAML itself turns those into others.
    st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1),
)
def test_an_unknown_field_is_named(path: tuple[Any, ...], key: str) -> None:
    document = copy.deepcopy(DOCUMENT)
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if key in parent:
        return
    parent[key] = "surprise"
    found = problems_of(yaml.safe_dump(document, allow_unicode=True))
    if _shown(path[:-1]).endswith("settings"):
        return  # settings of a type may carry more than the type reads
    assert isinstance(found, DefinitionError)
    assert any(repr(key) in p.message or key in p.path for p in found.problems), str(found)


def test_a_huge_document_is_checked_without_stopping() -> None:
    document = copy.deepcopy(DOCUMENT)
    document["description"] = "x" * 2_000_000
    document["actions"] = [
        {**copy.deepcopy(DOCUMENT["actions"][0]), "id": f"step-{i}"} for i in range(2_000)
    ]
    document["actions"][1_500]["type"] = "no_such_type"
    found = problems_of(yaml.safe_dump(document))
    assert isinstance(found, DefinitionError)
    assert any(p.path == "actions[1500].type" for p in found.problems)


def test_a_file_that_is_not_utf8_cannot_be_read(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"id: caf\xe9\nmode: one_time\n")
    with pytest.raises(DefinitionError, match="cannot read the file"):
        load_workflow(bad)


@pytest.mark.parametrize("text", [*MALFORMED[:8], "id: x\nmode: sometimes\nactions: 7\n"])
def test_validate_exits_2_with_the_problems_and_no_traceback(tmp_path: Path, text: str) -> None:
    file = tmp_path / "wf.yaml"
    file.write_text(text)
    code, printed = cli(["workflow", "validate", "--no-count", str(file)])
    assert code == EXIT_USAGE
    assert str(file) in printed and "Traceback" not in printed


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe not utf-8\n",
        b"{not json}\n",
        b"1\n",
        b"[]\n",
        b"{}\n",
        b'{"sku": "A", "values": "x"}\n',
        b'{"sku": 7}\n',
    ],
)
def test_dry_run_refuses_a_bad_products_file_naming_the_line(
    tmp_path: Path, content: bytes
) -> None:
    products = tmp_path / "products.jsonl"
    products.write_bytes(content)
    code, printed = cli(
        ["workflow", "dry-run", str(EXAMPLE), "--simulator", "--products", str(products)]
    )
    assert code == EXIT_USAGE, printed
    assert str(products) in printed and "Traceback" not in printed


def test_dry_run_of_a_bad_definition_exits_2(tmp_path: Path) -> None:
    file = tmp_path / "wf.yaml"
    file.write_text("id: x\nmode: one_time\nactions: [{id: a, type: translatoin}]\n")
    code, printed = cli(["workflow", "dry-run", str(file), "--simulator", "--sample-catalog", "3"])
    assert code == EXIT_USAGE and "actions[0].type" in printed


@pytest.mark.parametrize(
    "content", [b"batch_wait: soon\n", b"no_such_setting: 1\n", b"- a\n", b"broker: [\n"]
)
def test_a_bad_settings_file_exits_2_naming_it(tmp_path: Path, content: bytes) -> None:
    config = tmp_path / "settings.yaml"
    config.write_bytes(content)
    code, printed = cli(["--config", str(config), "workflow", "validate", "--no-count", "x.yaml"])
    assert code == EXIT_USAGE and "Traceback" not in printed
    assert str(config) in printed or "setting batch_wait" in printed


@pytest.mark.parametrize("content", [b"broker: caf\xe9\n", b"[" * 5_000])
def test_a_settings_file_that_is_not_utf8_or_nests_too_deep_exits_2(
    tmp_path: Path, content: bytes
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_bytes(content)
    code, printed = cli(["--config", str(config), "workflow", "validate", "--no-count", "x.yaml"])
    assert code == EXIT_USAGE and str(config) in printed
