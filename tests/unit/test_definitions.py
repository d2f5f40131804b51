from pathlib import Path

import pytest
import yaml
from catalogflow.streams.definitions import (
    ACTION_TYPES,
    Condition,
    DefinitionError,
    TriggerRules,
    WorkflowDefinition,
    load_definition,
    parse_definition,
    quality_parts,
)
from catalogflow.streams.errors import ConfigError

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))

GOOD = """
id: wf
mode: continuous
trigger:
  all:
    - any:
        - {field: description@de_DE, operator: is_empty}
        - {field: name, locale: de_DE, scope: de, operator: contains, value: Katze}
    - {field: status, operator: equals, value: enabled}
actions:
  - id: tr
    type: translation
    reads: [description, name@de_DE#de]
    settings: {fields: [description], locales: [de_DE]}
    scope: {categories: [Pet Food/Cat], sample: 5, only_empty: true}
    moderation: {mode: below_threshold, threshold: 0.7, auto_approve_above: 0.95}
sync: {targets: [magento, merchant_feed]}
"""


def test_examples_exist_and_load() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"dry-cat-food.yaml", "german-descriptions-continuous.yaml"} <= names
    for path in EXAMPLES:
        definition = load_definition(path)
        assert definition.actions
        assert WorkflowDefinition.from_dict(definition.to_dict()) == definition


def test_seed_example_content() -> None:
    d = load_definition(Path(__file__).parents[2] / "examples" / "dry-cat-food.yaml")
    assert d.mode == "one_time"
    assert d.trigger == TriggerRules(
        ((Condition("category", "equals", "Pet Food/Cat/Dry Cat Food"),),)
    )
    assert [(a.id, a.type) for a in d.actions] == [
        ("extract", "attribute_extraction"),
        ("enrich", "content_enrichment"),
        ("translate", "translation"),
    ]
    assert d.actions[1].reads == ("name", "description", "brand", "weight_kg")
    assert d.actions[2].moderation.mode == "always"
    assert d.sync_targets == ("magento",)


def test_good_definition_parses_shorthand_and_explicit_keys() -> None:
    d = parse_definition(GOOD, "good.yaml")
    first, second = d.trigger.groups
    assert first[0] == Condition("description", "is_empty", None, "de_DE", None)
    assert first[1] == Condition("name", "contains", "Katze", "de_DE", "de")
    assert second == (Condition("status", "equals", "enabled"),)
    action = d.actions[0]
    assert action.reads == ("description", "name@de_DE#de")
    assert action.scope.sample == 5 and action.scope.only_empty
    assert action.moderation.threshold == 0.7
    assert d.sync_targets == ("magento", "merchant_feed")
    assert d.name == "wf"


def test_round_trip_and_json_safe() -> None:
    import json

    d = parse_definition(GOOD, "good.yaml")
    data = json.loads(json.dumps(d.to_dict()))
    assert WorkflowDefinition.from_dict(data) == d
    assert WorkflowDefinition.from_dict(data).content_hash() == d.content_hash()


def test_from_dict_accepts_plugin_action_types_parse_does_not() -> None:
    text = "id: wf\nmode: one_time\nactions: [{id: a, type: plugin_step, settings: {k: 1}}]"
    data = parse_definition(text, "wf.yaml", extra_action_types=["plugin_step"]).to_dict()
    assert WorkflowDefinition.from_dict(data).actions[0].type == "plugin_step"
    with pytest.raises(DefinitionError, match="unknown action type 'plugin_step'"):
        WorkflowDefinition.from_dict(data, extra_action_types=())
    with pytest.raises(DefinitionError, match="unknown action type 'plugin_step'"):
        parse_definition(text, "wf.yaml")


def test_content_hash_ignores_key_order_and_sees_real_changes() -> None:
    data = yaml.safe_load(GOOD)
    reordered = dict(reversed(list(data.items())))
    reordered["actions"] = [dict(reversed(list(a.items()))) for a in data["actions"]]
    a = parse_definition(GOOD, "a.yaml")
    b = parse_definition(yaml.safe_dump(reordered, sort_keys=False), "b.yaml")
    assert a == b
    assert a.content_hash() == b.content_hash()
    changed = parse_definition(GOOD.replace("threshold: 0.7", "threshold: 0.8"), "c.yaml")
    assert changed.content_hash() != a.content_hash()


def test_no_trigger_means_everything() -> None:
    d = parse_definition("id: x\nmode: one_time\nactions: [{id: a, type: noop}]", "x", ["noop"])
    assert d.trigger.groups == ()


def _problems(text: str, source: str = "wf.yaml") -> str:
    with pytest.raises(DefinitionError) as caught:
        parse_definition(text, source, extra_action_types=["noop"])
    assert isinstance(caught.value, ConfigError)
    message = str(caught.value)
    assert all(line.startswith(f"{source}: ") for line in message.splitlines())
    return message


BASE = "id: wf\nmode: one_time\nactions: [{id: a, type: noop}]\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            BASE + "trigger: {all: [{any: [{field: sku, operator: equal, value: X}]}]}",
            ["wf.yaml: trigger.all[0].any[0].operator: unknown operator 'equal'", "equals"],
        ),
        (
            "id: wf\nmode: one_time\nactions: [{id: a, type: noop}, {id: b, type: translatoin}]",
            ["wf.yaml: actions[1].type: unknown action type 'translatoin'", "translation"],
        ),
        (
            "id: wf\nmode: one_time\nactions:\n  - type: noop\n",
            ["wf.yaml: actions[0].id: missing required field"],
        ),
        (
            BASE.replace("one_time", "[one_time]"),
            ["wf.yaml: mode: unknown mode list", "one_time, continuous"],
        ),
        (
            "id: wf\nmode: one_time\nactions: [{id: a, type: noop, scope: {sample: ten}}]",
            ["wf.yaml: actions[0].scope.sample: expected a whole number >= 1, got string 'ten'"],
        ),
        (
            BASE + "colour: blue\n",
            ["wf.yaml: colour: unknown key 'colour'; allowed here: id, mode, actions"],
        ),
        (
            "id: wf\nmode: one_time\nactions: [{id: a, type: noop, scope: {skuz: [X]}}]",
            ["wf.yaml: actions[0].scope.skuz: unknown key 'skuz'", "skus"],
        ),
        (
            "id: wf\nmode: one_time\nactions: [{id: a, type: noop}, {id: a, type: noop}]",
            ["wf.yaml: actions[1].id: duplicate action id 'a'"],
        ),
        (
            BASE + "trigger: {all: [{field: supplier, operator: in_list, value: acme}]}",
            ["wf.yaml: trigger.all[0].value: in_list needs a non-empty list"],
        ),
        (
            BASE + "trigger: {all: [{field: weight, operator: greater_than, value: heavy}]}",
            ["wf.yaml: trigger.all[0].value: greater_than needs a number"],
        ),
        (
            BASE + "trigger: {all: [{field: description, operator: is_empty, value: ''}]}",
            ["wf.yaml: trigger.all[0].value: operator is_empty takes no value"],
        ),
        (
            "id: wf\nmode: one_time\n"
            "actions: [{id: a, type: noop, moderation: {mode: below_threshold}}]",
            ["wf.yaml: actions[0].moderation.threshold: missing required field", "0 to 1"],
        ),
        (
            "id: wf\nmode: one_time\nactions: [{id: a, type: translation, settings: {}}]",
            [
                "wf.yaml: actions[0].settings.fields: missing required field",
                "wf.yaml: actions[0].settings.locales: missing required field",
            ],
        ),
        (
            BASE + "sync: {targets: [shopify]}",
            ["wf.yaml: sync.targets[0]: unknown sync target 'shopify'; allowed: magento"],
        ),
        (
            BASE + "trigger: {all: [{field: 'desc ription', operator: is_empty}]}",
            ["wf.yaml: trigger.all[0].field: bad field reference 'desc ription'"],
        ),
        (
            BASE + "trigger: {all: [{field: status, operator: equals, value: on}]}",
            ["wf.yaml: trigger.all[0].value:", "enabled, disabled"],
        ),
        (
            "id: Bad Id\nmode: one_time\nactions: [{id: a, type: noop}]",
            ["wf.yaml: id: 'Bad Id' is not allowed; use only [a-z0-9_-]+"],
        ),
    ],
)
def test_problems_name_file_path_and_what_is_allowed(text: str, expected: list[str]) -> None:
    message = _problems(text)
    for fragment in expected:
        assert fragment in message


def test_bad_yaml_reports_the_line() -> None:
    message = _problems("id: wf\nmode: one_time\nactions:\n  - id: a\n    type: [noop\n")
    assert message.startswith("wf.yaml: invalid YAML at line ")
    bad = _problems("id: wf\nmode: one_time\n  oops: 1\n")
    assert "line 3" in bad


def test_all_problems_are_collected() -> None:
    message = _problems(
        "id: wf\nmode: sometimes\nactions:\n"
        "  - {id: a, type: translatoin}\n"
        "  - {id: b, type: noop, moderation: {mode: below_threshold}}\n"
        "trigger: {all: [{any: [{field: sku, operator: equal, value: X}]}]}\n"
    )
    lines = message.splitlines()
    assert len(lines) == 4
    assert any(line.startswith("wf.yaml: mode: unknown mode 'sometimes'") for line in lines)


def test_extraction_settings_are_checked() -> None:
    message = _problems(
        "id: wf\nmode: one_time\nactions:\n"
        "  - id: x\n    type: attribute_extraction\n"
        "    settings: {attributes: [{name: Flavor, allowed_values: []}]}\n"
    )
    assert "actions[0].settings.attributes[0].description: missing required field" in message
    assert "actions[0].settings.attributes[0].allowed_values: expected at least one" in message


def test_load_definition_names_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DefinitionError, match=r"nope\.yaml: cannot read the file"):
        load_definition(missing)


def test_known_action_types() -> None:
    assert set(ACTION_TYPES) == {
        "attribute_extraction",
        "content_enrichment",
        "translation",
        "category_mapping",
        "validation",
        "quality_scoring",
    }
    assert set(ACTION_TYPES["translation"].required_settings) == {"fields", "locales"}
    assert set(ACTION_TYPES["quality_scoring"].required_settings) == set()


QUALITY = """
id: weak-products
mode: continuous
trigger:
  all:
    - {field: quality_score, operator: less_than, value: 60}
actions:
  - id: score
    type: quality_scoring
    settings:
      required_fields: [Flavor, Lifecycle]
      text_fields: [description, shopping_title]
      locales: [en_GB, de_DE]
      min_length: {description: 150, description@de_DE: 120}
      max_length: {description: 4000}
      banned_words: [cheap]
      rubric: Names the flavour.
      weights: {coverage: 3, rubric: 0}
"""


def test_a_quality_scoring_workflow_loads_and_a_trigger_can_select_low_scores() -> None:
    d = parse_definition(QUALITY, "q.yaml")
    assert d.trigger.groups == ((Condition("quality_score", "less_than", 60),),)
    (action,) = d.actions
    assert action.type == "quality_scoring"
    assert action.settings["weights"] == {"coverage": 3, "rubric": 0}
    assert quality_parts(action.settings) == (
        "coverage",
        "length",
        "readability",
        "banned_words",
        "duplicate_text",
    )
    assert WorkflowDefinition.from_dict(d.to_dict()) == d


def test_a_quality_scoring_action_needs_no_settings() -> None:
    d = parse_definition(
        "id: q\nmode: one_time\nactions: [{id: s, type: quality_scoring}]", "q.yaml"
    )
    assert quality_parts(d.actions[0].settings) == ("length", "readability", "duplicate_text")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("{banned_word: [cheap]}", "settings.banned_word: unknown setting 'banned_word'; allowed:"),
        ("{required_fields: []}", "settings.required_fields: expected at least one entry"),
        ("{required_fields: [Fla vor]}", "settings.required_fields[0]: bad field reference"),
        ("{text_fields: description}", "settings.text_fields: expected a list of strings"),
        ("{locales: [de DE]}", "settings.locales[0]: 'de DE' is not a locale code"),
        ("{min_length: 150}", "settings.min_length: expected a mapping of field to characters"),
        ("{max_length: {description: -1}}", "settings.max_length.description: expected a whole"),
        (
            "{min_length: {description: 900}, max_length: {description: 800}}",
            "settings.min_length.description: 900 is above max_length.description (800)",
        ),
        ("{rubric: ''}", "settings.rubric: expected a non-empty string"),
        ("{weights: {style: 1}}", "settings.weights.style: unknown part 'style'; parts: coverage"),
        ("{weights: {coverage: -1}}", "settings.weights.coverage: expected a number >= 0"),
        (
            "{weights: {length: 0, readability: 0, duplicate_text: 0}}",
            "settings.weights: no part is left to score",
        ),
    ],
)
def test_quality_scoring_settings_are_checked_naming_the_setting(
    settings: str, expected: str
) -> None:
    message = _problems(
        f"id: q\nmode: one_time\nactions: [{{id: s, type: quality_scoring, settings: {settings}}}]"
    )
    assert f"wf.yaml: actions[0].{expected}" in message
