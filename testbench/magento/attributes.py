"""EAV product attributes and their options, and how the REST API shows them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BACKEND_TYPES = {
    "text": "varchar",
    "textarea": "text",
    "texteditor": "text",
    "select": "int",
    "multiselect": "varchar",
    "boolean": "int",
    "price": "decimal",
    "weight": "decimal",
    "date": "datetime",
}
TOP_LEVEL = ("name", "price", "status", "visibility", "weight")


@dataclass
class Option:
    id: str
    label: str
    sort_order: int = 0
    is_default: bool = False
    store_labels: dict[int, str] = field(default_factory=dict)

    def label_for(self, store_id: int) -> str:
        return self.store_labels.get(store_id) or self.label


@dataclass
class Attribute:
    attribute_id: int
    code: str
    frontend_input: str
    scope: str
    is_required: bool
    label: str
    is_user_defined: bool
    options: list[Option] = field(default_factory=list)
    frontend_labels: dict[int, str] = field(default_factory=dict)

    @property
    def uses_options(self) -> bool:
        return self.frontend_input in ("select", "multiselect")

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    def option_by_label(self, label: str) -> Option | None:
        folded = label.casefold()
        return next((o for o in self.options if o.label.casefold() == folded), None)


def attribute_json(a: Attribute, store_id: int) -> dict[str, Any]:
    """``GET /V1/products/attributes/{code}`` as seen through store ``store_id``."""
    data: dict[str, Any] = {
        "attribute_id": a.attribute_id,
        "attribute_code": a.code,
        "frontend_input": a.frontend_input,
        "entity_type_id": "4",
        "is_required": a.is_required,
        "scope": a.scope,
        "is_user_defined": a.is_user_defined,
        "default_frontend_label": a.label,
        "frontend_labels": [
            {"store_id": s, "label": text} for s, text in sorted(a.frontend_labels.items())
        ],
        "backend_type": BACKEND_TYPES[a.frontend_input],
        "default_value": "",
        "is_unique": "0",
        "validation_rules": [],
        "is_html_allowed_on_front": a.frontend_input in ("textarea", "texteditor"),
        "is_wysiwyg_enabled": False,
        "is_filterable": a.uses_options,
        "is_searchable": "1",
        "apply_to": [],
    }
    if a.uses_options:
        data["source_model"] = "Magento\\Eav\\Model\\Entity\\Attribute\\Source\\Table"
        data["options"] = [{"label": " ", "value": ""}] + [
            {
                "label": o.label_for(store_id),
                "value": o.id,
                "sort_order": o.sort_order,
                "is_default": o.is_default,
                "store_labels": [
                    {"store_id": s, "label": t} for s, t in sorted(o.store_labels.items())
                ],
            }
            for o in a.options
        ]
    else:
        data["options"] = []
    return data


def options_json(a: Attribute, store_id: int) -> list[dict[str, str]]:
    """``GET /V1/products/attributes/{code}/options``: a blank first, then by sort order."""
    ordered = sorted(a.options, key=lambda o: (o.sort_order, int(o.id)))
    return [{"label": " ", "value": ""}] + [
        {"label": o.label_for(store_id), "value": o.id} for o in ordered
    ]
