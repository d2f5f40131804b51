"""Model calls: latency, tokens, cost, errors, rate limits, batches and the response cache."""

from catalogflow.streams.metrics.base import counter, gauge, histogram

MODEL_REQUEST_SECONDS = histogram(
    "catalogflow_model_request_seconds",
    "Time one model HTTP request took, retries counted separately.",
    "model",
)
MODEL_REQUESTS = counter(
    "catalogflow_model_requests_total",
    "Model requests by outcome: ok, or the failure category (rate_limited, timeout, ...).",
    "model",
    "outcome",
)
MODEL_TOKENS = counter(
    "catalogflow_model_tokens_total",
    "Tokens the provider counted, by kind (prompt, completion).",
    "model",
    "kind",
)
MODEL_COST = counter(
    "catalogflow_model_cost_dollars_total",
    "Model cost in US dollars from the configured prices.",
    "model",
)
MODEL_BATCHES = counter(
    "catalogflow_model_batches_total",
    "Batch API batches by how they ended (completed, expired, cancelled, failed).",
    "model",
    "status",
)
RATE_LIMITER_WAIT = counter(
    "catalogflow_rate_limiter_wait_seconds_total",
    "Time callers waited for the client-side rate limiter.",
    "model",
)
RATE_LIMIT = gauge(
    "catalogflow_rate_limit_per_minute",
    "The per-minute limit in force (configured, lowered by x-ratelimit headers), by unit.",
    "model",
    "unit",
)
CACHE_REQUESTS = counter(
    "catalogflow_llm_cache_requests_total",
    "Lookups in the model-response cache, by result (hit, miss).",
    "result",
)
