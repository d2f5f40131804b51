"""The built-in sync targets: name → the module that registers it.

A module path rather than an import, so that the definitions can check target names
against this list without importing the targets (which plan with ``streams/sync.py``,
which reads the definitions).
"""

from __future__ import annotations

BUILTIN_TARGETS: dict[str, str] = {
    "magento": "catalogflow.connectors.magento.target",
    "merchant_feed": "catalogflow.connectors.feeds.target",
}
