"""Workflow definitions: the versioned YAML a user writes, parsed into frozen dataclasses.

A workflow is a trigger (which products), an ordered list of actions (what to do with
them), per-action scope and moderation, and the sync targets results go to. Parsing
collects every problem it can find and raises one :class:`DefinitionError` naming the
file, the field path and what is allowed. Pure Python: no Kafka, no faust.

The runtime numbers versions by :meth:`WorkflowDefinition.content_hash` and publishes
definitions as JSON (:meth:`WorkflowDefinition.to_dict` / :meth:`~WorkflowDefinition.from_dict`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, get_args

import yaml
from catalogflow.connectors.targets.base import unknown_target
from catalogflow.connectors.targets.builtin import BUILTIN_TARGETS
from catalogflow.streams.errors import ConfigError

Operator = Literal[
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "is_empty",
    "is_not_empty",
    "greater_than",
    "less_than",
    "in_list",
]
Mode = Literal["one_time", "continuous"]
ModerationMode = Literal["none", "always", "below_threshold"]
#: ``automatic``: approved output syncs as soon as the chain is done. ``after_approval``:
#: a person approves the values to write (one review of all of them) before any sync.
SyncMode = Literal["automatic", "after_approval"]
BuiltinField = Literal["sku", "category", "supplier", "status", "family"]
#: The parts of a ``quality_scoring`` score (``streams/actions/quality.py``), named here so
#: the definition can check ``settings.weights`` without importing the action.
QualityPart = Literal[
    "coverage", "length", "readability", "banned_words", "duplicate_text", "rubric"
]

OPERATORS: tuple[Operator, ...] = get_args(Operator)
MODES: tuple[Mode, ...] = get_args(Mode)
MODERATION_MODES: tuple[ModerationMode, ...] = get_args(ModerationMode)
SYNC_MODES: tuple[SyncMode, ...] = get_args(SyncMode)
#: Product fields that are not attribute values; they have no locale or scope.
BUILTIN_FIELDS: tuple[BuiltinField, ...] = get_args(BuiltinField)
QUALITY_PARTS: tuple[QualityPart, ...] = get_args(QualityPart)

_NO_VALUE: frozenset[str] = frozenset({"is_empty", "is_not_empty"})
_NUMERIC: frozenset[str] = frozenset({"greater_than", "less_than"})
_STATUSES = ("enabled", "disabled")
_ID = re.compile(r"[a-z0-9_-]+")
_FIELD_REF = re.compile(
    r"(?P<field>[A-Za-z0-9_]+)(?:@(?P<locale>[A-Za-z0-9_]+))?(?:#(?P<scope>[A-Za-z0-9_-]+))?"
)
_CODE = re.compile(r"[A-Za-z0-9_-]+")

JsonValue: TypeAlias = Any  # str | int | float | bool | None | list[JsonValue] | dict[str, ...]


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class FieldRef:
    """One product field: an attribute code (optionally per locale and/or store-view
    scope) or a built-in field. Written ``name``, ``description@de_DE``, ``name#de``
    or ``name@de_DE#de``; ``None`` locale/scope means the global value."""

    field: str
    locale: str | None = None
    scope: str | None = None

    def __str__(self) -> str:
        text = self.field
        if self.locale is not None:
            text += f"@{self.locale}"
        if self.scope is not None:
            text += f"#{self.scope}"
        return text


@dataclass(frozen=True)
class Condition:
    """``field`` (at ``locale``/``scope``) ``operator`` ``value``. ``value`` is ``None``
    for ``is_empty``/``is_not_empty``, a tuple for ``in_list``, a scalar otherwise."""

    field: str
    operator: Operator
    value: Any
    locale: str | None = None
    scope: str | None = None

    @property
    def ref(self) -> FieldRef:
        return FieldRef(self.field, self.locale, self.scope)


@dataclass(frozen=True)
class TriggerRules:
    """Conditions inside a group are OR-ed, groups are AND-ed.

    No groups at all means *every* (non-deleted) product matches: a workflow without
    a trigger runs over the whole catalog.
    """

    groups: tuple[tuple[Condition, ...], ...] = ()


@dataclass(frozen=True)
class ActionScope:
    """Limits one action to some products. Empty tuples mean "no limit"; ``sample`` caps
    the number of products (a small test set); ``only_empty`` writes only fields that
    are empty on the product."""

    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    store_views: tuple[str, ...] = ()
    sample: int | None = None
    only_empty: bool = False


@dataclass(frozen=True)
class ModerationPolicy:
    """When results wait for a human. ``below_threshold`` sends results whose confidence
    is below ``threshold`` (0..1) to review; ``auto_approve_above`` approves without
    review above it; ``audit_sample`` is the fraction (0..1) of auto-approved results
    still shown to a reviewer; ``second_approval`` needs a second reviewer."""

    mode: ModerationMode = "none"
    threshold: float | None = None
    second_approval: bool = False
    auto_approve_above: float | None = None
    audit_sample: float = 0.0
    #: Back-pressure: at most this many results of the action wait for review at once
    #: (spread over the partitions); products reaching the action wait (Paused) until
    #: reviews make room. None: no limit.
    queue_limit: int | None = None


@dataclass(frozen=True)
class ActionSpec:
    """One step of a workflow. ``reads`` are the source fields the action reads (as
    field references); continuous workflows re-process a product when they change."""

    id: str
    type: str
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    scope: ActionScope = ActionScope()
    moderation: ModerationPolicy = ModerationPolicy()
    reads: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkflowDefinition:
    id: str
    name: str
    mode: Mode
    trigger: TriggerRules
    actions: tuple[ActionSpec, ...]
    sync_targets: tuple[str, ...] = ()
    description: str = ""
    sync_mode: SyncMode = "automatic"

    def to_dict(self) -> dict[str, JsonValue]:
        """JSON-safe form, the same shape as the YAML (explicit locale/scope keys)."""
        return {
            "id": self.id,
            "name": self.name,
            "mode": self.mode,
            "description": self.description,
            "trigger": {
                "all": [{"any": [_condition_dict(c) for c in g]} for g in self.trigger.groups]
            },
            "actions": [_action_dict(a) for a in self.actions],
            "sync": {"targets": list(self.sync_targets), "mode": self.sync_mode},
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        source: str = "<dict>",
        extra_action_types: Collection[str] | None = None,
    ) -> WorkflowDefinition:
        """Inverse of :meth:`to_dict`; validates like :func:`parse_definition`, except
        that with ``extra_action_types=None`` (the default) any action type is accepted:
        a published definition was checked when it was written, and the worker reading
        it may run plugin action types this module does not know. Any sync target name
        is accepted for the same reason (the worker reports one it does not have)."""
        return _parse_document(data, source, extra_action_types, sync_targets=None)

    def content_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`to_dict` (sorted keys, no
        whitespace): equal for equal definitions whatever the YAML key order."""
        canonical = json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _condition_dict(c: Condition) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {
        "field": c.field,
        "locale": c.locale,
        "scope": c.scope,
        "operator": c.operator,
    }
    if c.operator not in _NO_VALUE:
        out["value"] = list(c.value) if isinstance(c.value, tuple) else c.value
    return out


def _action_dict(a: ActionSpec) -> dict[str, JsonValue]:
    return {
        "id": a.id,
        "type": a.type,
        "settings": _thaw(a.settings),
        "scope": {
            "categories": list(a.scope.categories),
            "skus": list(a.scope.skus),
            "store_views": list(a.scope.store_views),
            "sample": a.scope.sample,
            "only_empty": a.scope.only_empty,
        },
        "moderation": {
            "mode": a.moderation.mode,
            "threshold": a.moderation.threshold,
            "second_approval": a.moderation.second_approval,
            "auto_approve_above": a.moderation.auto_approve_above,
            "audit_sample": a.moderation.audit_sample,
            "queue_limit": a.moderation.queue_limit,
        },
        "reads": list(a.reads),
    }


def _thaw(value: Any) -> JsonValue:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return value


# --------------------------------------------------------------------------- action types


@dataclass(frozen=True)
class ActionTypeInfo:
    """A known action type and the settings keys it needs (``required_settings`` maps
    each key to a description of what it holds)."""

    name: str
    summary: str
    required_settings: Mapping[str, str]


ACTION_TYPES: dict[str, ActionTypeInfo] = {
    info.name: info
    for info in (
        ActionTypeInfo(
            "attribute_extraction",
            "read attribute values out of free text",
            {"attributes": "a list of {name, description, allowed_values?}"},
        ),
        ActionTypeInfo(
            "content_enrichment",
            "write new content fields (titles, descriptions)",
            {"fields": "a list of field codes to write"},
        ),
        ActionTypeInfo(
            "translation",
            "translate fields into other locales",
            {"fields": "a list of field codes", "locales": "a list of target locale codes"},
        ),
        ActionTypeInfo(
            "category_mapping",
            "map products onto a category tree",
            {"category_tree": "the category tree to map onto"},
        ),
        ActionTypeInfo(
            "validation",
            "check products against rules",
            {"rules": "a list of rules"},
        ),
        ActionTypeInfo(
            "quality_scoring",
            "score each product's content from 0 to 100, part by part, each with its reason",
            {},
        ),
    )
}


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: ``path`` is like ``actions[1].type`` (empty
    for the document as a whole); ``message`` says what is wrong and what is allowed."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.path}: {self.message}"
            if self.path
            else (f"{self.source}: {self.message}")
        )


class DefinitionError(ConfigError):
    """A workflow definition is invalid; ``problems`` lists everything found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------- parsing


def parse_field_ref(text: str) -> FieldRef:
    """Parse ``attr``, ``attr@locale``, ``attr#scope`` or ``attr@locale#scope``.

    Raises ``ValueError`` with a message saying what is allowed.
    """
    match = _FIELD_REF.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"bad field reference {text!r}; write an attribute code or one of "
            f"{', '.join(BUILTIN_FIELDS)}, optionally with @locale and/or #scope "
            "(e.g. description@de_DE, name#de, name@de_DE#de)"
        )
    ref = FieldRef(match["field"], match["locale"], match["scope"])
    if ref.field in BUILTIN_FIELDS and (ref.locale or ref.scope):
        raise ValueError(f"built-in field {ref.field!r} has no locale or scope")
    return ref


def load_definition(
    path: Path,
    extra_action_types: Collection[str] = (),
    sync_targets: Collection[str] | None = None,
) -> WorkflowDefinition:
    """Read and parse a definition file (see :func:`parse_definition`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise DefinitionError([Problem(str(path), "", f"cannot read the file: {reason}")]) from exc
    return parse_definition(text, str(path), extra_action_types, sync_targets)


def parse_definition(
    text: str,
    source: str,
    extra_action_types: Collection[str] = (),
    sync_targets: Collection[str] | None = None,
) -> WorkflowDefinition:
    """Parse one YAML workflow definition. ``source`` names it in problems (a path).

    ``extra_action_types`` are accepted as action types too, with unchecked settings.
    ``sync_targets`` are the target names ``sync.targets`` may use: by default the
    built-in ones; ``load_targets(settings).names`` adds the ``sync_plugins`` ones.
    Raises :class:`DefinitionError` listing every problem found.
    """
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        # PyYAML composes nested collections recursively; no workflow nests this deep.
        raise DefinitionError(
            [Problem(source, "", "invalid YAML: lists or mappings nested too deeply")]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise DefinitionError(
            [Problem(source, "", f"invalid YAML at {where}{what}; fix the syntax")]
        ) from exc
    if sync_targets is None:
        sync_targets = list(BUILTIN_TARGETS)
    try:
        return _parse_document(data, source, extra_action_types, sync_targets)
    except RecursionError:
        # Only a YAML anchor used inside itself (``settings: &s {x: *s}``) nests forever.
        raise DefinitionError(
            [Problem(source, "", "a YAML alias refers to its own anchor, or it nests too deeply")]
        ) from None


class _Parser:
    """Walks one document, recording problems instead of stopping at the first."""

    def __init__(
        self,
        source: str,
        extra_action_types: Collection[str] | None,
        sync_targets: Collection[str] | None,
    ) -> None:
        self.source = source
        self.any_type = extra_action_types is None
        self.extra = frozenset(extra_action_types or ())
        self.sync_targets = None if sync_targets is None else sorted(sync_targets)
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.source, path, message))

    # -- generic helpers -------------------------------------------------------

    def mapping(
        self,
        value: Any,
        path: str,
        required: Collection[str],
        optional: Collection[str],
    ) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.problem(path or "(document)", f"expected a mapping, got {_describe(value)}")
            return None
        allowed = [*required, *optional]
        for key in value:
            if key not in allowed:
                self.problem(
                    _join(path, str(key)),
                    f"unknown key {key!r}; allowed here: {', '.join(allowed)}",
                )
        for key in required:
            if key not in value:
                self.problem(_join(path, key), "missing required field")
        return {str(k): v for k, v in value.items()}

    def string(self, value: Any, path: str, pattern: re.Pattern[str] | None = None) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, f"expected a non-empty string, got {_describe(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(path, f"{value!r} is not allowed; use only {pattern.pattern}")
            return None
        return value

    def choice(self, value: Any, path: str, allowed: tuple[str, ...], what: str) -> str | None:
        if not isinstance(value, str) or value not in allowed:
            shown = repr(value) if isinstance(value, str) else _describe(value)
            self.problem(path, f"unknown {what} {shown}; allowed: {', '.join(allowed)}")
            return None
        return value

    def string_list(self, value: Any, path: str, *, non_empty: bool = False) -> tuple[str, ...]:
        if not isinstance(value, list):
            self.problem(path, f"expected a list of strings, got {_describe(value)}")
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                out.append(item)
            else:
                self.problem(f"{path}[{i}]", f"expected a non-empty string, got {_describe(item)}")
        if non_empty and not value:
            self.problem(path, "expected at least one entry, got an empty list")
        return tuple(out)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            self.problem(path, f"expected true or false, got {_describe(value)}")
            return False
        return value

    def fraction(self, value: Any, path: str) -> float | None:
        if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
            self.problem(path, f"expected a number from 0 to 1, got {_describe(value)}")
            return None
        return float(value)

    # -- document --------------------------------------------------------------

    def document(self, data: Any) -> WorkflowDefinition | None:
        if data is None:
            self.problem("", "the file is empty; expected a workflow mapping (id, mode, actions…)")
            return None
        doc = self.mapping(
            data,
            "",
            required=("id", "mode", "actions"),
            optional=("name", "description", "trigger", "sync"),
        )
        if doc is None:
            return None
        wf_id = self.string(doc["id"], "id", _ID) if "id" in doc else None
        name = doc.get("name", wf_id)
        if name is not None and not isinstance(name, str):
            self.problem("name", f"expected a string, got {_describe(name)}")
        description = doc.get("description", "") or ""
        if not isinstance(description, str):
            self.problem("description", f"expected a string, got {_describe(description)}")
            description = ""
        mode = self.choice(doc["mode"], "mode", MODES, "mode") if "mode" in doc else None
        trigger = self.trigger(doc.get("trigger"))
        actions = self.actions(doc["actions"]) if "actions" in doc else ()
        sync, sync_mode = self.sync(doc.get("sync"))
        if self.problems or wf_id is None or mode is None:
            return None
        return WorkflowDefinition(
            id=wf_id,
            name=name if isinstance(name, str) else wf_id,
            mode=_as_mode(mode),
            trigger=trigger,
            actions=actions,
            sync_targets=sync,
            description=description,
            sync_mode=sync_mode,
        )

    # -- trigger ---------------------------------------------------------------

    def trigger(self, value: Any) -> TriggerRules:
        if value is None:
            return TriggerRules()
        trigger = self.mapping(value, "trigger", required=(), optional=("all",))
        if trigger is None:
            return TriggerRules()
        items = trigger.get("all") or []
        if not isinstance(items, list):
            self.problem(
                "trigger.all",
                f"expected a list of groups ({{any: [conditions]}}) or conditions, "
                f"got {_describe(items)}",
            )
            return TriggerRules()
        groups: list[tuple[Condition, ...]] = []
        for i, item in enumerate(items):
            path = f"trigger.all[{i}]"
            if isinstance(item, Mapping) and "any" in item:
                group = self.mapping(item, path, required=("any",), optional=())
                conds = group["any"] if group else []
                if not isinstance(conds, list) or not conds:
                    self.problem(
                        f"{path}.any",
                        f"expected a non-empty list of conditions, got {_describe(conds)}",
                    )
                    continue
                parsed = [self.condition(c, f"{path}.any[{j}]") for j, c in enumerate(conds)]
                groups.append(tuple(c for c in parsed if c is not None))
            else:
                cond = self.condition(item, path)
                if cond is not None:
                    groups.append((cond,))
        return TriggerRules(tuple(groups))

    def condition(self, value: Any, path: str) -> Condition | None:
        raw = self.mapping(
            value, path, required=("field", "operator"), optional=("value", "locale", "scope")
        )
        if raw is None or "field" not in raw:
            return None
        try:
            ref = parse_field_ref(raw["field"])
        except ValueError as exc:
            self.problem(f"{path}.field", str(exc))
            return None
        locale, scope = ref.locale, ref.scope
        for key, short in (("locale", ref.locale), ("scope", ref.scope)):
            if raw.get(key) is None:
                continue
            given = self.string(raw[key], f"{path}.{key}", _CODE)
            if given is None:
                continue
            if ref.field in BUILTIN_FIELDS:
                self.problem(f"{path}.{key}", f"built-in field {ref.field!r} has no {key}")
            elif short is not None and short != given:
                self.problem(
                    f"{path}.{key}",
                    f"{given!r} contradicts {short!r} in field {raw['field']!r}; give it once",
                )
            elif key == "locale":
                locale = given
            else:
                scope = given
        if "operator" not in raw:
            return None
        op = self.choice(raw["operator"], f"{path}.operator", OPERATORS, "operator")
        if op is None:
            return None
        operator = _as_operator(op)
        value_path = f"{path}.value"
        cond_value: Any = None
        if operator in _NO_VALUE:
            if "value" in raw:
                self.problem(value_path, f"operator {operator} takes no value; remove it")
                return None
        elif "value" not in raw:
            self.problem(value_path, f"missing required field (operator {operator} needs a value)")
            return None
        elif operator == "in_list":
            items = raw["value"]
            if not isinstance(items, list) or not items or not all(map(_is_scalar, items)):
                self.problem(
                    value_path,
                    f"in_list needs a non-empty list of strings or numbers, got {_describe(items)}",
                )
                return None
            cond_value = tuple(items)
        elif operator in _NUMERIC:
            if not _is_number(raw["value"]):
                self.problem(
                    value_path, f"{operator} needs a number, got {_describe(raw['value'])}"
                )
                return None
            cond_value = raw["value"]
        else:
            if not _is_scalar(raw["value"]):
                self.problem(
                    value_path,
                    f"{operator} needs a string, number or boolean, got {_describe(raw['value'])}"
                    + ("; use is_empty for a missing value" if raw["value"] is None else ""),
                )
                return None
            cond_value = raw["value"]
        if ref.field in BUILTIN_FIELDS and operator in _NUMERIC:
            self.problem(
                f"{path}.operator",
                f"{operator} does not apply to {ref.field!r} (text); allowed: "
                + ", ".join(o for o in OPERATORS if o not in _NUMERIC),
            )
            return None
        if ref.field == "status" and operator in ("equals", "not_equals", "in_list"):
            wanted = cond_value if isinstance(cond_value, tuple) else (cond_value,)
            bad = [v for v in wanted if v not in _STATUSES]
            if bad:
                self.problem(
                    value_path,
                    f"status is never {bad[0]!r}; allowed: {', '.join(_STATUSES)}",
                )
                return None
        return Condition(ref.field, operator, cond_value, locale, scope)

    # -- actions ---------------------------------------------------------------

    def actions(self, value: Any) -> tuple[ActionSpec, ...]:
        if not isinstance(value, list) or not value:
            self.problem("actions", f"expected a non-empty list of actions, got {_describe(value)}")
            return ()
        out: list[ActionSpec] = []
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            action = self.action(item, f"actions[{i}]")
            if action is None:
                continue
            if action.id in seen:
                self.problem(
                    f"actions[{i}].id",
                    f"duplicate action id {action.id!r} (also actions[{seen[action.id]}]); "
                    "action ids must be unique within a workflow",
                )
                continue
            seen[action.id] = i
            out.append(action)
        return tuple(out)

    def action(self, value: Any, path: str) -> ActionSpec | None:
        raw = self.mapping(
            value,
            path,
            required=("id", "type"),
            optional=("settings", "scope", "moderation", "reads"),
        )
        if raw is None:
            return None
        before = len(self.problems)
        action_id = self.string(raw["id"], f"{path}.id", _ID) if "id" in raw else None
        action_type = self.action_type(raw["type"], f"{path}.type") if "type" in raw else None
        settings = self.settings(raw.get("settings", {}), f"{path}.settings", action_type)
        scope = self.scope(raw.get("scope"), f"{path}.scope")
        moderation = self.moderation(raw.get("moderation"), f"{path}.moderation")
        reads = self.reads(raw.get("reads", []), f"{path}.reads")
        if len(self.problems) > before or action_id is None or action_type is None:
            return None
        return ActionSpec(action_id, action_type, settings, scope, moderation, reads)

    def action_type(self, value: Any, path: str) -> str | None:
        known = sorted({*ACTION_TYPES, *self.extra})
        if self.any_type and isinstance(value, str) and _ID.fullmatch(value):
            return value
        if not isinstance(value, str) or value not in known:
            shown = repr(value) if isinstance(value, str) else _describe(value)
            self.problem(path, f"unknown action type {shown}; known: {', '.join(known)}")
            return None
        return value

    def settings(self, value: Any, path: str, action_type: str | None) -> Mapping[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            self.problem(path, f"expected a mapping of settings, got {_describe(value)}")
            return MappingProxyType({})
        for key in value:
            if not isinstance(key, str):
                self.problem(path, f"setting names must be strings, got {_describe(key)}")
        bad = _first_non_json(value)
        if bad is not None:
            self.problem(
                _join(path, bad[0]),
                f"{_describe(bad[1])} cannot be stored; use strings, numbers, booleans, "
                "lists and mappings",
            )
        info = ACTION_TYPES.get(action_type or "")
        if info is not None and action_type not in self.extra:
            for key, what in info.required_settings.items():
                if key not in value:
                    self.problem(
                        _join(path, key), f"missing required field ({action_type} needs {what})"
                    )
                else:
                    _SETTING_CHECKS[(info.name, key)](self, value[key], _join(path, key))
            whole = _WHOLE_SETTINGS_CHECKS.get(info.name)
            if whole is not None:
                whole(self, value, path)
        return MappingProxyType(dict(value))

    def scope(self, value: Any, path: str) -> ActionScope:
        if value is None:
            return ActionScope()
        raw = self.mapping(
            value,
            path,
            required=(),
            optional=("categories", "skus", "store_views", "sample", "only_empty"),
        )
        if raw is None:
            return ActionScope()
        sample = raw.get("sample")
        if sample is not None and (not _is_int(sample) or sample < 1):
            self.problem(f"{path}.sample", f"expected a whole number >= 1, got {_describe(sample)}")
            sample = None
        return ActionScope(
            categories=self.string_list(raw.get("categories", []), f"{path}.categories"),
            skus=self.string_list(raw.get("skus", []), f"{path}.skus"),
            store_views=self.string_list(raw.get("store_views", []), f"{path}.store_views"),
            sample=sample,
            only_empty=self.boolean(raw.get("only_empty", False), f"{path}.only_empty"),
        )

    def moderation(self, value: Any, path: str) -> ModerationPolicy:
        if value is None:
            return ModerationPolicy()
        raw = self.mapping(
            value,
            path,
            required=("mode",),
            optional=(
                "threshold",
                "second_approval",
                "auto_approve_above",
                "audit_sample",
                "queue_limit",
            ),
        )
        if raw is None or "mode" not in raw:
            return ModerationPolicy()
        mode = self.choice(raw["mode"], f"{path}.mode", MODERATION_MODES, "moderation mode")
        threshold = None
        if raw.get("threshold") is not None:
            threshold = self.fraction(raw["threshold"], f"{path}.threshold")
            if mode is not None and mode != "below_threshold":
                self.problem(
                    f"{path}.threshold",
                    f"threshold only applies to mode below_threshold, not {mode}; remove it",
                )
        elif mode == "below_threshold":
            self.problem(
                f"{path}.threshold",
                "missing required field (mode below_threshold needs a threshold from 0 to 1)",
            )
        auto = None
        if raw.get("auto_approve_above") is not None:
            auto = self.fraction(raw["auto_approve_above"], f"{path}.auto_approve_above")
            if auto is not None and threshold is not None and auto < threshold:
                self.problem(
                    f"{path}.auto_approve_above",
                    f"{auto} is below the threshold {threshold}; it must be >= the threshold",
                )
        second = self.boolean(raw.get("second_approval", False), f"{path}.second_approval")
        if second and mode == "none":
            self.problem(
                f"{path}.second_approval", "mode none has no review; use always or below_threshold"
            )
        audit = raw.get("audit_sample", 0.0)
        audit_sample = self.fraction(audit, f"{path}.audit_sample") if audit is not None else 0.0
        queue_limit = raw.get("queue_limit")
        if queue_limit is not None and (not _is_int(queue_limit) or queue_limit < 1):
            self.problem(
                f"{path}.queue_limit", f"expected a whole number >= 1, got {_describe(queue_limit)}"
            )
            queue_limit = None
        elif queue_limit is not None and mode == "none":
            self.problem(f"{path}.queue_limit", "mode none has no review queue to limit")
        return ModerationPolicy(
            mode=_as_moderation_mode(mode or "none"),
            threshold=threshold,
            second_approval=second,
            auto_approve_above=auto,
            audit_sample=audit_sample or 0.0,
            queue_limit=queue_limit,
        )

    def reads(self, value: Any, path: str) -> tuple[str, ...]:
        out: list[str] = []
        for i, text in enumerate(self.string_list(value, path)):
            try:
                out.append(str(parse_field_ref(text)))
            except ValueError as exc:
                self.problem(f"{path}[{i}]", str(exc))
        return tuple(out)

    # -- sync ------------------------------------------------------------------

    def sync(self, value: Any) -> tuple[tuple[str, ...], SyncMode]:
        if value is None:
            return (), "automatic"
        raw = self.mapping(value, "sync", required=("targets",), optional=("mode",))
        if raw is None or "targets" not in raw:
            return (), "automatic"
        mode = self.choice(raw.get("mode", "automatic"), "sync.mode", SYNC_MODES, "sync mode")
        sync_mode: SyncMode = "after_approval" if mode == "after_approval" else "automatic"
        targets = raw["targets"]
        if not isinstance(targets, list):
            self.problem(
                "sync.targets",
                f"expected a list of sync target names, got {_describe(targets)}",
            )
            return (), sync_mode
        out: list[str] = []
        for i, target in enumerate(targets):
            name = self.sync_target(target, f"sync.targets[{i}]")
            if name is not None and name not in out:
                out.append(name)
        return tuple(out), sync_mode

    def sync_target(self, value: Any, path: str) -> str | None:
        if self.sync_targets is None:
            return self.string(value, path, _ID)
        if not isinstance(value, str):
            self.problem(path, f"expected a sync target name, got {_describe(value)}")
            return None
        if value not in self.sync_targets:
            self.problem(path, unknown_target(value, self.sync_targets))
            return None
        return value


def _check_attributes(p: _Parser, value: Any, path: str) -> None:
    if not isinstance(value, list) or not value:
        p.problem(
            path,
            f"expected a non-empty list of {{name, description, allowed_values?}}, "
            f"got {_describe(value)}",
        )
        return
    for i, item in enumerate(value):
        entry = p.mapping(
            item, f"{path}[{i}]", required=("name", "description"), optional=("allowed_values",)
        )
        if entry is None:
            continue
        if "name" in entry:
            p.string(entry["name"], f"{path}[{i}].name")
        if "description" in entry:
            p.string(entry["description"], f"{path}[{i}].description")
        if "allowed_values" in entry:
            p.string_list(entry["allowed_values"], f"{path}[{i}].allowed_values", non_empty=True)


def _check_string_list(p: _Parser, value: Any, path: str) -> None:
    p.string_list(value, path, non_empty=True)


def _check_present(p: _Parser, value: Any, path: str) -> None:
    if value is None or value == "" or value == [] or value == {}:
        p.problem(path, f"expected a value, got {_describe(value)}")


def _check_list(p: _Parser, value: Any, path: str) -> None:
    if not isinstance(value, list) or not value:
        p.problem(path, f"expected a non-empty list, got {_describe(value)}")


_SETTING_CHECKS: dict[tuple[str, str], Callable[[_Parser, Any, str], None]] = {
    ("attribute_extraction", "attributes"): _check_attributes,
    ("content_enrichment", "fields"): _check_string_list,
    ("translation", "fields"): _check_string_list,
    ("translation", "locales"): _check_string_list,
    ("category_mapping", "category_tree"): _check_present,
    ("validation", "rules"): _check_list,
}


#: The setting a quality part needs before it can run; the other parts always can.
_PART_NEEDS: dict[str, str] = {
    "coverage": "required_fields",
    "banned_words": "banned_words",
    "rubric": "rubric",
}


def quality_parts(settings: Mapping[str, Any]) -> tuple[QualityPart, ...]:
    """The parts a ``quality_scoring`` action with ``settings`` scores: every part whose
    setting is given, except those ``weights`` sets to 0 (a part not named in
    ``weights`` keeps its default weight, which is above 0)."""
    weights = settings.get("weights") or {}
    return tuple(
        part
        for part in QUALITY_PARTS
        if (part not in _PART_NEEDS or settings.get(_PART_NEEDS[part]))
        and weights.get(part, 1) != 0
    )


#: Settings every model-backed type accepts (``model.py``, ``budget.py``).
_MODEL_SETTINGS = ("model", "prompt", "max_completion_tokens")
_QUALITY_SETTINGS = (
    "required_fields",
    "text_fields",
    "locales",
    "language",
    "min_length",
    "max_length",
    "banned_words",
    "rubric",
    "weights",
)


def _check_quality(p: _Parser, value: Mapping[str, Any], path: str) -> None:
    """Every ``quality_scoring`` setting is optional; each one given is checked, and a
    key it does not know (a typo such as ``banned_word``) is refused, not ignored."""
    allowed = (*_QUALITY_SETTINGS, *_MODEL_SETTINGS)
    for key in value:
        if key not in allowed:
            p.problem(
                _join(path, str(key)), f"unknown setting {key!r}; allowed: {', '.join(allowed)}"
            )
    for key in ("required_fields", "text_fields"):
        if key in value:
            for i, text in enumerate(p.string_list(value[key], _join(path, key), non_empty=True)):
                try:
                    parse_field_ref(text)
                except ValueError as exc:
                    p.problem(f"{_join(path, key)}[{i}]", str(exc))
    if "locales" in value:
        for i, code in enumerate(p.string_list(value["locales"], _join(path, "locales"))):
            if not _CODE.fullmatch(code):
                p.problem(f"{path}.locales[{i}]", f"{code!r} is not a locale code such as de_DE")
    if "language" in value:
        p.string(value["language"], _join(path, "language"), _CODE)
    if "banned_words" in value:
        p.string_list(value["banned_words"], _join(path, "banned_words"))
    if "rubric" in value:
        p.string(value["rubric"], _join(path, "rubric"))
    limits = {
        key: _lengths(p, value.get(key), _join(path, key)) for key in ("min_length", "max_length")
    }
    for name, least in limits["min_length"].items():
        most = limits["max_length"].get(name)
        if most is not None and least > most:
            p.problem(f"{path}.min_length.{name}", f"{least} is above max_length.{name} ({most})")
    if "weights" in value:
        before = len(p.problems)
        _check_weights(p, value["weights"], _join(path, "weights"))
        if len(p.problems) == before and not quality_parts(value):
            p.problem(
                _join(path, "weights"),
                "no part is left to score: give a part that can run a weight above 0 "
                "(coverage needs required_fields, banned_words its list, rubric its text)",
            )


def _lengths(p: _Parser, value: Any, path: str) -> dict[str, int]:
    """A ``{field reference: characters}`` mapping (``min_length``/``max_length``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        p.problem(
            path,
            f"expected a mapping of field to characters (description: 200), got {_describe(value)}",
        )
        return {}
    out: dict[str, int] = {}
    for name, limit in value.items():
        try:
            parse_field_ref(str(name))
        except ValueError as exc:
            p.problem(_join(path, str(name)), str(exc))
            continue
        if not _is_int(limit) or limit < 0:
            p.problem(
                _join(path, str(name)),
                f"expected a whole number of characters >= 0, got {_describe(limit)}",
            )
            continue
        out[str(name)] = limit
    return out


def _check_weights(p: _Parser, value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        p.problem(
            path, f"expected a mapping of part to weight (coverage: 2), got {_describe(value)}"
        )
        return
    for part, weight in value.items():
        if part not in QUALITY_PARTS:
            p.problem(
                _join(path, str(part)), f"unknown part {part!r}; parts: {', '.join(QUALITY_PARTS)}"
            )
        elif not _is_number(weight) or weight < 0:
            p.problem(_join(path, str(part)), f"expected a number >= 0, got {_describe(weight)}")


#: Checks of a type's settings as a whole, for types whose settings are all optional.
_WHOLE_SETTINGS_CHECKS: dict[str, Callable[[_Parser, Mapping[str, Any], str], None]] = {
    "quality_scoring": _check_quality,
}


def _parse_document(
    data: Any,
    source: str,
    extra_action_types: Collection[str] | None,
    sync_targets: Collection[str] | None,
) -> WorkflowDefinition:
    """``None`` for either: accept any well-formed name."""
    parser = _Parser(source, extra_action_types, sync_targets)
    definition = parser.document(data)
    if parser.problems or definition is None:
        raise DefinitionError(parser.problems or [Problem(source, "", "invalid definition")])
    return definition


# --------------------------------------------------------------------------- small helpers


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


def _first_non_json(
    value: Any, path: str = "", within: frozenset[int] = frozenset()
) -> tuple[str, Any] | None:
    """The first value that JSON cannot hold, with its path; ``within`` holds the
    containers around it, so a YAML alias inside its own anchor is one (not endless)."""
    if value is None or isinstance(value, str | bool) or _is_number(value):
        return None
    if id(value) in within:
        return path, value
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_non_json(item, f"{path}[{i}]", within | {id(value)})
            if found is not None:
                return found
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _first_non_json(item, _join(path, str(key)), within | {id(value)})
            if found is not None:
                return found
        return None
    return path, value


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "list"}
    kind = kinds.get(type(value), "mapping" if isinstance(value, Mapping) else type(value).__name__)
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _as_operator(value: str) -> Operator:
    for op in OPERATORS:
        if op == value:
            return op
    raise AssertionError(value)  # pragma: no cover - callers check membership first


def _as_mode(value: str) -> Mode:
    return "continuous" if value == "continuous" else "one_time"


def _as_moderation_mode(value: str) -> ModerationMode:
    for mode in MODERATION_MODES:
        if mode == value:
            return mode
    return "none"
