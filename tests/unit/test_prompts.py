from pathlib import Path
from typing import Any

import pytest
from catalogflow.streams.actions import prompts
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.actions.prompts import Prompt, PromptError, product_block
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


def test_lists_and_mappings_render_as_readable_text_not_python_reprs() -> None:
    prompt = Prompt(
        system="{{ product.categories }}",
        user="{{ settings.glossary }} / {{ settings.tone }} / {{ product.brand }}",
    )
    context: dict[str, Any] = {
        "product": {"categories": ["Pets/Cat/Dry", "Pets/Cat"], "brand": None},
        "settings": {"glossary": {"kitten": "Kätzchen", "dry": ["trocken", "Trocken-"]}},
    }
    context["settings"]["tone"] = "warm"
    system, user = prompt.render(context)
    assert system == "Pets/Cat/Dry, Pets/Cat"
    assert user == "kitten: Kätzchen; dry: trocken, Trocken- / warm / "


def test_the_readable_filter_chooses_other_separators() -> None:
    prompt = Prompt(system="", user='{{ product.categories | readable(" > ") }}')
    _, user = prompt.render({"product": {"categories": ["Pets", "Cat", "Dry"]}})
    assert user == "Pets > Cat > Dry"


def test_a_name_a_template_cannot_see_is_still_an_error() -> None:
    with pytest.raises(PromptError, match="'brand'"):
        Prompt(system="", user="{{ product.brand }}").render({"product": {}})


def test_the_product_block_lists_categories_readably() -> None:
    block = product_block({"product": {"categories": ["Pet Food/Cat/Dry Cat Food"]}, "outputs": {}})
    assert "categories: Pet Food/Cat/Dry Cat Food\n" in block
    assert "[" not in block


def test_a_template_text_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    compile_text = prompts._ENV.from_string

    def counting(text: str) -> Any:
        compiled.append(text)
        return compile_text(text)

    monkeypatch.setattr(prompts._ENV, "from_string", counting)
    prompt = Prompt(system="Compiled once: {{ settings.tone }}", user="For {{ product.sku }}")
    first = prompt.render({"product": {"sku": "A-1"}, "settings": {"tone": "warm"}})
    second = prompt.render({"product": {"sku": "B-2"}, "settings": {"tone": "dry"}})
    assert (first, second) == (
        ("Compiled once: warm", "For A-1"),
        ("Compiled once: dry", "For B-2"),
    )
    assert compiled == [prompt.system, prompt.user]
