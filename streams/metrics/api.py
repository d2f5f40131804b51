"""The HTTP API: requests by route template (never the concrete path) and status."""

from catalogflow.streams.metrics.base import counter, histogram

API_REQUESTS = counter(
    "catalogflow_api_requests_total",
    "API requests by route template, method and status code.",
    "route",
    "method",
    "status",
)
API_REQUEST_SECONDS = histogram(
    "catalogflow_api_request_seconds",
    "Time the API took to answer, by route template.",
    "route",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
