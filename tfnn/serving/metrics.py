"""Request metrics in the Prometheus text format, named as TensorFlow Serving exports them at
/monitoring/prometheus/metrics (its "/tensorflow/serving/…" names with "/" written ":").

    :tensorflow:serving:request_count_total{model_name, version, API, status}   counter
    :tensorflow:serving:request_latency{model_name, version, API, entrypoint}   histogram, µs
    :tensorflow:serving:batching_session:processed_batch_size                  histogram, rows

`API` is predict, GetModelStatus or GetModelMetadata; `status` is the canonical error code
(OK, INVALID_ARGUMENT, NOT_FOUND, …); `entrypoint` is REST. Latency is recorded for successful
requests only, as TensorFlow Serving does, in its buckets 10 · 1.8^k µs, k = 0 … 32. With
batching on, each model call's rows go to processed_batch_size.
The text comes from `prometheus_client`.
"""

import prometheus_client

# HTTP status → TensorFlow Serving's canonical error code name for the status label.
CODES = {
    200: "OK",
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    413: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}
BUCKETS = tuple(10 * 1.8**k for k in range(33))

prometheus_client.disable_created_metrics()


class RequestMetrics:
    """The request count and latency of one server, in their own registry."""

    def __init__(self):
        self.registry = prometheus_client.CollectorRegistry()
        self.count = prometheus_client.Counter(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            ["model_name", "version", "API", "status"],
            registry=self.registry,
        )
        self.latency = prometheus_client.Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "version", "API", "entrypoint"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.batch_size = prometheus_client.Histogram(
            ":tensorflow:serving:batching_session:processed_batch_size",
            "The rows of each batched model call.",
            buckets=tuple(2**k for k in range(15)),
            registry=self.registry,
        )

    def record(self, model_name, version, api, http_status, seconds):
        """Counts one request; adds its latency when it succeeded."""
        version = "" if version is None else str(version)
        status = CODES.get(http_status, "UNKNOWN")
        self.count.labels(model_name, version, api, status).inc()
        if http_status == 200:
            self.latency.labels(model_name, version, api, "REST").observe(1e6 * seconds)

    def text(self):
        """(the exposition as bytes, its content type)."""
        text = prometheus_client.generate_latest(self.registry)
        return text, prometheus_client.CONTENT_TYPE_LATEST
