from pathlib import Path

import pytest
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.actions.prompts import Prompt
from catalogflow.streams.definitions import DefinitionError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_prompt_renders(path: Path) -> None:
    load_workflow(path)


def workflow(tmp_path: Path, user_prompt: str, reads: str = "[name]") -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(
        f"""
id: w
name: W
mode: one_time
actions:
  - id: extract
    type: attribute_extraction
    reads: [description]
    settings:
      attributes: [{{name: Flavor, description: Main protein}}]
  - id: enrich
    type: content_enrichment
    reads: {reads}
    settings:
      fields: [shopping_title]
      prompt:
        user: {user_prompt!r}
"""
    )
    return path


def test_a_template_may_use_its_reads_and_earlier_outputs(tmp_path: Path) -> None:
    load_workflow(workflow(tmp_path, "Title for {{ product.name }}, {{ outputs.Flavor }}"))


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ product.brand }}", "uses 'brand', which it cannot see"),
        ("{{ outputs.shopping_title }}", "uses 'shopping_title', which it cannot see"),
        ("{% if %}", "does not render"),
    ],
)
def test_bad_templates_are_invalid_prompts_naming_file_and_field(
    tmp_path: Path, template: str, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_workflow(workflow(tmp_path, template))
    text = str(caught.value)
    assert "w.yaml: actions[1].settings.prompt: invalid prompt" in text
    assert message in text


def test_prompt_version_changes_with_template_and_schema() -> None:
    prompt = Prompt(system="s", user="u")
    assert prompt.version({"a": 1}) == Prompt(system="s", user="u").version({"a": 1})
    assert prompt.version({"a": 1}) != prompt.version({"a": 2})
    assert prompt.version({"a": 1}) != Prompt(system="s", user="v").version({"a": 1})
