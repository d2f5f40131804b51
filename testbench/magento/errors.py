"""The Magento simulator's errors: misuse of the simulator, and Magento's webapi errors.

``WebapiError`` is what the simulated shop answers: the raw phrase with its ``%1``/``%name``
placeholders, plus ``parameters`` (a list for positional placeholders, an object for named
ones), rendered by ``WebapiError.body`` as Magento's ErrorProcessor does. It is not the
connector's ``catalogflow.connectors.magento.errors.MagentoError``, which is how the client
sees such an answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from catalogflow.streams.errors import CatalogflowError

MSG_UNAUTHORIZED = "The consumer isn't authorized to access %resources."
MSG_REQUIRED_FIELD = '"%fieldName" is required. Enter and try again.'
MSG_INVALID_FIELD_VALUE = 'Invalid value of "%value" provided for the %fieldName field.'
MSG_TYPE = (
    'The "%value" value\'s type is invalid. The "%type" type was expected. Verify and try again.'
)
MSG_NO_ROUTE = "Request does not match any route."
MSG_INTERNAL = "Internal Error. Details are available in Magento log file. Report ID: %1"
MSG_TOO_MANY = "Too Many Requests"


class MagentoSimulatorError(CatalogflowError):
    """The simulator was misused (bad setting, unknown SKU or store in a seeding call)."""


class WebapiError(Exception):
    """A webapi error response, as Magento's ErrorProcessor renders it."""

    def __init__(
        self,
        status: int,
        message: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        retryable: bool = False,
        headers: Mapping[str, str] | None = None,
        raw_body: dict[str, Any] | None = None,
    ) -> None:
        self.status, self.message = status, message
        self.parameters = parameters
        self.retryable = retryable
        self.headers = dict(headers or {})
        self.raw_body = raw_body
        super().__init__(self.rendered())

    def rendered(self) -> str:
        """The phrase with its placeholders filled in (what a bulk operation reports)."""
        text, params = self.message, self.parameters
        if isinstance(params, Mapping):
            for key in sorted(params, key=len, reverse=True):
                text = text.replace(f"%{key}", str(params[key]))
        elif params:
            for i in range(len(params), 0, -1):
                text = text.replace(f"%{i}", str(params[i - 1]))
        return text

    def body(self, developer_mode: bool) -> dict[str, Any]:
        if self.raw_body is not None:
            return dict(self.raw_body)
        data: dict[str, Any] = {"message": self.message}
        if self.parameters:
            data["parameters"] = (
                dict(self.parameters)
                if isinstance(self.parameters, Mapping)
                else list(self.parameters)
            )
        if developer_mode:
            data["trace"] = (
                "#0 vendor/magento/framework/Webapi/ServiceInputProcessor.php(187): "
                "catalogflow simulator\n#1 {main}"
            )
        return data


def unauthorized(resource: str) -> WebapiError:
    return WebapiError(401, MSG_UNAUTHORIZED, {"resources": resource})


def required_field(name: str) -> WebapiError:
    return WebapiError(400, MSG_REQUIRED_FIELD, {"fieldName": name})


def int_or_none(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise WebapiError(400, MSG_TYPE, {"value": value, "type": "int"}) from None
