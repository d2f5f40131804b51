"""Write-back: results per target and how long Magento takes to answer."""

from catalogflow.streams.metrics.base import counter, histogram

SYNC_RESULTS = counter(
    "catalogflow_sync_results_total",
    "Sync results by target and outcome (synced, conflict, or the error category).",
    "target",
    "outcome",
)
MAGENTO_REQUEST_SECONDS = histogram(
    "catalogflow_magento_request_seconds",
    "Time one Magento REST request took, by method (GET, PUT, POST).",
    "method",
)
