"""Request metrics in process: TensorFlow Serving's names, labels, buckets and help texts, in the
Prometheus text format."""

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tfnn.serving.metrics import RequestMetrics

COUNT = ":tensorflow:serving:request_count"
LATENCY = ":tensorflow:serving:request_latency"
BATCH = ":tensorflow:serving:batching_session:processed_batch_size"


def families(metrics):
    text, content_type = metrics.text()
    assert content_type == prometheus_client.CONTENT_TYPE_LATEST
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def samples(metrics, name):
    """[(sample name, labels, value)] of one family."""
    return [(s.name, s.labels, s.value) for s in families(metrics)[name].samples]


def test_the_families_have_tensorflow_servings_names_types_and_help():
    found = families(RequestMetrics())
    assert {name: (f.type, f.documentation) for name, f in found.items()} == {
        COUNT: ("counter", "The total number of requests."),
        LATENCY: (
            "histogram",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
        ),
        BATCH: ("histogram", "The rows of each batched model call."),
    }


def test_no_created_timestamps_are_exported():
    # TensorFlow Serving exports none; prometheus_client adds `_created` samples unless told not
    metrics = RequestMetrics()
    metrics.record("m", 1, "predict", 200, 0.001)
    metrics.batch_size.observe(3)
    text = metrics.text()[0].decode()
    assert "_created" not in text and text.count("_total{") == 1


@pytest.mark.parametrize(
    "http_status, code",
    [
        (200, "OK"),
        (400, "INVALID_ARGUMENT"),
        (404, "NOT_FOUND"),
        (405, "INVALID_ARGUMENT"),
        (413, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (431, "UNKNOWN"),  # a status with no canonical code of its own
    ],
)
def test_a_request_is_counted_under_its_canonical_status_code(http_status, code):
    metrics = RequestMetrics()
    metrics.record("digits", 3, "predict", http_status, 0.25)
    labels = {"model_name": "digits", "version": "3", "API": "predict", "status": code}
    assert samples(metrics, COUNT) == [(COUNT + "_total", labels, 1.0)]


def test_a_request_without_a_version_is_counted_with_an_empty_version_label():
    metrics = RequestMetrics()
    metrics.record("", None, "GetModelStatus", 404, 0.0)
    metrics.record("", None, "GetModelStatus", 404, 0.0)
    labels = {"model_name": "", "version": "", "API": "GetModelStatus", "status": "NOT_FOUND"}
    assert samples(metrics, COUNT) == [(COUNT + "_total", labels, 2.0)]


def test_version_0_is_a_version_label_not_an_empty_one():
    metrics = RequestMetrics()
    metrics.record("m", 0, "predict", 200, 0.0)
    assert samples(metrics, COUNT)[0][1]["version"] == "0"


def test_latency_is_recorded_in_microseconds_for_successful_requests_only():
    metrics = RequestMetrics()
    metrics.record("m", 2, "GetModelMetadata", 200, 0.5)
    metrics.record("m", 2, "GetModelMetadata", 400, 7.0)  # a failure: counted, not timed
    metrics.record("m", 2, "GetModelMetadata", 500, 7.0)
    found = {name: (labels, value) for name, labels, value in samples(metrics, LATENCY)}
    labels = {"model_name": "m", "version": "2", "API": "GetModelMetadata", "entrypoint": "REST"}
    assert found[LATENCY + "_count"] == (labels, 1.0)
    assert found[LATENCY + "_sum"] == (labels, 500_000.0)


def test_latency_buckets_are_tensorflow_servings_10_us_times_1_8_to_the_k_for_k_up_to_32():
    metrics = RequestMetrics()
    metrics.record("m", 1, "predict", 200, 10e-6)  # exactly the first bound: in its bucket
    bounds = [s[1]["le"] for s in samples(metrics, LATENCY) if s[0].endswith("_bucket")]
    assert len(bounds) == 33 + 1  # and +Inf
    assert float(bounds[0]) == 10.0 and float(bounds[1]) == 18.0
    assert float(bounds[-2]) == pytest.approx(10 * 1.8**32) and bounds[-1] == "+Inf"
    counts = [s[2] for s in samples(metrics, LATENCY) if s[0].endswith("_bucket")]
    assert counts == [1.0] * 34


def test_batch_sizes_are_counted_in_power_of_two_buckets_up_to_16384_rows():
    metrics = RequestMetrics()
    for rows in (1, 2, 3, 16384, 16385):
        metrics.batch_size.observe(rows)
    buckets = {s[1]["le"]: s[2] for s in samples(metrics, BATCH) if s[0].endswith("_bucket")}
    assert list(buckets) == [f"{2.0**k}" for k in range(15)] + ["+Inf"]
    assert buckets["1.0"] == 1 and buckets["2.0"] == 2 and buckets["4.0"] == 3
    assert buckets["8192.0"] == 3 and buckets["16384.0"] == 4 and buckets["+Inf"] == 5


def test_each_server_counts_in_its_own_registry():
    one, two = RequestMetrics(), RequestMetrics()
    one.record("m", 1, "predict", 200, 0.0)
    assert samples(two, COUNT) == []
    assert COUNT not in {f.name for f in prometheus_client.REGISTRY.collect()}
