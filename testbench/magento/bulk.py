"""Async and bulk saves: operations queued per request, run when the consumer ticks."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from catalogflow.testbench.magento.auth import Caller
from catalogflow.testbench.magento.catalog import MSG_ARRAY_LIMIT, Catalog
from catalogflow.testbench.magento.errors import WebapiError, required_field

ASYNC_ARRAY_LIMIT = 5000

STATUS_COMPLETE, STATUS_RETRIABLY_FAILED, STATUS_NOT_RETRIABLY_FAILED = 1, 2, 3
STATUS_OPEN, STATUS_REJECTED = 4, 5
SUCCESS_MESSAGE = (
    "Service execution success Magento\\Catalog\\Model\\ProductRepository\\Interceptor::save"
)
MSG_NO_BULK = "Bulk uuid %bulkUuid not exist"


@dataclass
class Operation:
    id: int
    bulk_uuid: str
    topic: str
    method: str
    path: str
    store: str
    sku: str | None
    body: dict[str, Any]
    status: int = STATUS_OPEN
    result_message: str | None = None
    error_code: int | None = None
    result_serialized_data: str | None = None


@dataclass
class Bulk:
    uuid: str
    user_type: int
    user_id: int
    description: str
    start_time: str
    operations: list[Operation]


class Bulks:
    """The bulk operations accepted so far; ``tick`` saves the open ones."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._bulks: dict[str, Bulk] = {}
        self._next_operation = 1

    def enqueue(
        self,
        *,
        method: str,
        path: str,
        store: str,
        items: list[tuple[str | None, Any]],
        caller: Caller,
    ) -> dict[str, Any]:
        with self._catalog.lock:
            if self._catalog.config.limit_mode and len(items) > ASYNC_ARRAY_LIMIT:
                raise WebapiError(
                    400, MSG_ARRAY_LIMIT, {"type": "ProductInterface", "max": ASYNC_ARRAY_LIMIT}
                )
            for _, body in items:
                if not isinstance(body, dict) or not isinstance(body.get("product"), dict):
                    raise required_field("product")
            topic = f"async.magento.catalog.api.productrepositoryinterface.save.{method.lower()}"
            bulk_uuid = str(uuid.uuid4())
            operations, request_items = [], []
            for number, (sku, body) in enumerate(items):
                operations.append(
                    Operation(
                        self._next_operation, bulk_uuid, topic, method, path, store, sku, body
                    )
                )
                self._next_operation += 1
                serialized = json.dumps(body, separators=(",", ":"), sort_keys=True)
                request_items.append(
                    {
                        "id": number,
                        "data_hash": hashlib.sha256(serialized.encode()).hexdigest(),
                        "status": "accepted",
                    }
                )
            self._bulks[bulk_uuid] = Bulk(
                bulk_uuid,
                caller.user_type,
                caller.user_id,
                f"Topic {topic}",
                self._catalog.timestamp(),
                operations,
            )
            return {"bulk_uuid": bulk_uuid, "request_items": request_items, "errors": False}

    def tick(self) -> int:
        """Run the ``async.operations.all`` consumer over every open operation."""
        done = 0
        with self._catalog.lock:
            for bulk in self._bulks.values():
                for op in bulk.operations:
                    if op.status != STATUS_OPEN:
                        continue
                    done += 1
                    try:
                        result = self._catalog.save(
                            method=op.method,
                            path=op.path,
                            store=op.store,
                            path_sku=op.sku,
                            body=op.body,
                            limit=None,
                        )
                    except WebapiError as exc:
                        op.status = (
                            STATUS_RETRIABLY_FAILED
                            if exc.retryable
                            else STATUS_NOT_RETRIABLY_FAILED
                        )
                        op.result_message, op.error_code = exc.rendered(), 0
                    else:
                        op.status, op.result_message = STATUS_COMPLETE, SUCCESS_MESSAGE
                        op.result_serialized_data = json.dumps(result)
        return done

    def operations(self) -> list[Operation]:
        """Every operation accepted so far, in the order they came (copies)."""
        with self._catalog.lock:
            return [replace(op) for bulk in self._bulks.values() for op in bulk.operations]

    def bulk(self, bulk_uuid: str) -> Bulk:
        found = self._bulks.get(bulk_uuid)
        if found is None:
            raise WebapiError(404, MSG_NO_BULK, {"bulkUuid": bulk_uuid})
        return found

    def bulk_status(self, bulk_uuid: str, detailed: bool) -> dict[str, Any]:
        with self._catalog.lock:
            bulk = self.bulk(bulk_uuid)
            operations = []
            for op in bulk.operations:
                item: dict[str, Any] = {"id": op.id}
                if detailed:
                    meta = json.dumps(op.body if op.sku is None else {"sku": op.sku, **op.body})
                    item.update(
                        bulk_uuid=op.bulk_uuid,
                        topic_name=op.topic,
                        serialized_data=json.dumps(
                            {"entity_id": None, "entity_link": "", "meta_information": meta}
                        ),
                        result_serialized_data=op.result_serialized_data,
                    )
                item.update(
                    status=op.status, result_message=op.result_message, error_code=op.error_code
                )
                operations.append(item)
            return {
                "operations_list": operations,
                "user_type": bulk.user_type,
                "bulk_id": bulk.uuid,
                "description": bulk.description,
                "start_time": bulk.start_time,
                "user_id": bulk.user_id,
                "operation_count": len(bulk.operations),
            }

    def operation_count(self, bulk_uuid: str, status: int) -> int:
        with self._catalog.lock:
            return sum(1 for op in self.bulk(bulk_uuid).operations if op.status == status)
