"""The WSGI application in process: routes, methods, versions, errors and the metrics it
records, called the way waitress calls it."""

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tfnn.serving import app as app_module
from tfnn.serving.app import application
from tfnn.serving.batching import Batcher
from tfnn.serving.metrics import RequestMetrics
from tfnn.serving.repository import ModelRepository


@pytest.fixture(scope="module")
def repository(linear_base):
    return ModelRepository("linear", linear_base)


def call(app, method, path, body=b""):
    """(status line, headers, parsed JSON body) of one request, `path` as a client sends it."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),  # as WSGI hands it over
        "wsgi.input": io.BytesIO(body),
    }
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    data = b"".join(app(environ, start_response))
    if seen["headers"]["Content-Type"] == "application/json":
        assert seen["headers"]["Content-Length"] == str(len(data))
        data = json.loads(data)
    return seen["status"], seen["headers"], data


def count(metrics, **labels):
    """The request count with these labels (0 if none)."""
    text = metrics.text()[0].decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == ":tensorflow:serving:request_count_total" and sample.labels == labels:
                return sample.value
    return 0


AVAILABLE = {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}


@pytest.mark.parametrize(
    "path",
    ["/v1/models/linear", "/v1/models/linear/", "/v1/models/linear/versions/1"],
)
def test_status_of_the_model_and_of_a_version(repository, path):
    status, headers, body = call(application(repository), "GET", path)
    assert (status, headers["Content-Type"], body) == ("200 OK", "application/json", AVAILABLE)


def test_a_version_with_leading_zeros_is_that_version(repository):
    assert call(application(repository), "GET", "/v1/models/linear/versions/0001")[2] == AVAILABLE


def test_metadata_names_the_model_and_the_served_version(repository):
    _, _, body = call(application(repository), "GET", "/v1/models/linear/versions/1/metadata")
    assert body["model_spec"] == {"name": "linear", "signature_name": "", "version": "1"}
    assert sorted(body["metadata"]["signature_def"]["signature_def"]) == [
        "__saved_model_init_op",
        "classes",
        "serving_default",
    ]


@pytest.mark.parametrize("batched", [False, True])
def test_predict_answers_rows_and_columns_with_or_without_the_batcher(repository, kit, batched):
    batcher = Batcher(max_batch_size=8) if batched else None
    app = application(repository, batcher=batcher)
    x = [[1, 2, 3, 4], [0, -1, 0, 2]]
    try:
        status, _, body = call(app, "POST", "/v1/models/linear:predict", {"instances": x})
        assert (status, body) == ("200 OK", {"predictions": kit.expected(x).tolist()})
        body = call(app, "POST", "/v1/models/linear/versions/1:predict", {"inputs": x})[2]
        assert body == {"outputs": kit.expected(x).tolist()}
    finally:
        if batcher is not None:
            batcher.stop()


def test_predict_runs_through_the_batcher_when_there_is_one(repository):
    rows = []
    batcher = Batcher(max_batch_size=8, on_batch=rows.append)
    app = application(repository, batcher=batcher)
    call(app, "POST", "/v1/models/linear:predict", {"instances": [[1, 2, 3, 4]] * 3})
    batcher.stop()
    assert rows == [3]


def test_predict_takes_max_request_rows_examples_and_refuses_one_more(repository):
    app = application(repository, max_request_rows=3)
    predict = "/v1/models/linear:predict"
    assert call(app, "POST", predict, {"instances": [[0, 0, 0, 1]] * 3})[0] == "200 OK"
    status, _, body = call(app, "POST", predict, {"instances": [[0, 0, 0, 1]] * 4})
    assert status == "413 Request Entity Too Large" and body == {
        "error": "4 examples in one request; at most 3"
    }


def test_the_default_row_cap_is_10000(repository):
    app = application(repository)
    predict = "/v1/models/linear:predict"
    assert call(app, "POST", predict, {"inputs": [[0, 0, 0, 1]] * 10_000})[0] == "200 OK"
    assert call(app, "POST", predict, {"inputs": [[0, 0, 0, 1]] * 10_001})[0].startswith("413")


@pytest.mark.parametrize(
    "method, path, status, error",
    [
        ("GET", "/v1/models/other", "404 Not Found", "Could not find any versions of model other"),
        ("GET", "/v1/models/other/metadata", "404 Not Found", "Latest(other)"),
        ("POST", "/v1/models/other:predict", "404 Not Found", "Latest(other)"),
        ("GET", "/v1/models/linear/versions/7", "404 Not Found", "Could not find version 7"),
        ("POST", "/v1/models/linear/versions/7:predict", "404 Not Found", "Specific(linear, 7)"),
        ("GET", "/v2/models/linear", "404 Not Found", "Malformed request: GET /v2/models/linear"),
        ("POST", "/monitoring/prometheus/metrics", "404 Not Found", "Malformed request: POST"),
        ("GET", "/v1/models/linear:predict", "405 Method Not Allowed", "GET is not allowed here; "),
        (
            "POST",
            "/v1/models/linear",
            "405 Method Not Allowed",
            "POST is not allowed here; use GET",
        ),
        ("PUT", "/v1/models/linear/metadata", "405 Method Not Allowed", "PUT is not allowed"),
        ("POST", "/v1/models/linear:classify", "400 Bad Request", "classify is not supported"),
        ("GET", "/v1/models/linear/versions/one", "400 Bad Request", "Invalid version"),
        ("GET", "/v1/models/linear/versions/-1", "400 Bad Request", "'-1' (expected ASCII digits"),
    ],
)
def test_unknown_models_versions_routes_and_methods(repository, method, path, status, error):
    got_status, headers, body = call(application(repository), method, path, b"{}")
    assert (got_status, headers["Content-Type"]) == (status, "application/json")
    assert list(body) == ["error"] and error in body["error"], body


def test_the_method_is_checked_after_the_version(repository):
    status, _, body = call(application(repository), "POST", "/v1/models/linear/versions/x")
    assert status == "400 Bad Request" and "Invalid version" in body["error"]


def test_an_invalid_version_is_quoted_up_to_40_characters(repository):
    app = application(repository)
    _, _, body = call(app, "GET", "/v1/models/linear/versions/" + "9" * 39 + "8765")
    assert f"{'9' * 39 + '8'!r} (expected" in body["error"]


def test_a_malformed_path_is_quoted_up_to_200_characters(repository):
    path = "/x" + "y" * 197 + "z" * 10
    _, _, body = call(application(repository), "GET", path)
    assert body == {"error": f"Malformed request: GET /x{'y' * 197}z"}


def test_a_path_that_is_not_utf8_is_read_with_replacement_characters(repository):
    app = application(repository)
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/models/\xff", "wsgi.input": io.BytesIO()}
    answer = {}
    body = app(environ, lambda status, headers: answer.update(status=status))
    assert answer["status"] == "404 Not Found"
    assert json.loads(b"".join(body)) == {"error": "Could not find any versions of model \ufffd"}


def test_a_request_without_a_path_is_malformed(repository):
    app = application(repository)
    environ = {"REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}  # PATH_INFO may be missing
    answer = {}
    body = app(environ, lambda status, headers: answer.update(status=status))
    assert answer["status"] == "404 Not Found"
    assert json.loads(b"".join(body)) == {"error": "Malformed request: GET "}


def test_a_utf8_path_is_read_as_utf8(repository):
    _, _, body = call(application(repository), "GET", "/v1/models/caf\u00e9")
    assert body["error"] == "Could not find any versions of model caf\u00e9"


class Failing:
    """A repository serving one version whose every run fails."""

    name = "linear"

    def __init__(self, servable):
        self.version, self.signatures, self.inputs = 1, servable.signatures, servable.inputs

    def get(self, name, version=None):
        return self

    def run(self, signature_name, arrays):
        raise OSError("the disk went away")


def test_a_failure_the_request_did_not_cause_is_500_with_its_type_and_message(repository, caplog):
    app = application(Failing(repository.get("linear")))
    with caplog.at_level(logging.ERROR, logger="tfnn.serving"):
        status, _, body = call(app, "POST", "/v1/models/linear:predict", {"inputs": [[1] * 4]})
    assert (status, body) == ("500 Internal Server Error", {"error": "OSError: the disk went away"})
    assert caplog.records[-1].getMessage() == "POST /v1/models/linear:predict failed"
    assert caplog.records[-1].exc_info[0] is OSError


def test_a_failed_requests_path_is_logged_up_to_200_characters(repository, caplog):
    app = application(Failing(repository.get("linear")))
    path = "/v1/models/" + "n" * 300 + ":predict"
    with caplog.at_level(logging.ERROR, logger="tfnn.serving"):
        assert call(app, "POST", path, {"inputs": [[1] * 4]})[0] == "500 Internal Server Error"
    assert caplog.records[-1].getMessage() == f"POST {path[:200]} failed"


def test_the_latency_recorded_is_the_time_from_the_request_to_its_answer(repository, monkeypatch):
    metrics = RequestMetrics()
    app = application(repository, metrics=metrics)
    monkeypatch.setattr(app_module.time, "perf_counter", iter([10.0, 10.25]).__next__)
    call(app, "GET", "/v1/models/linear")
    text = metrics.text()[0].decode()
    assert ':tensorflow:serving:request_latency_sum{API="GetModelStatus"' in text
    latency = [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == ":tensorflow:serving:request_latency_sum"
    ]
    assert latency == [250_000.0]  # µs


def test_the_metrics_route_answers_the_prometheus_text(repository):
    metrics = RequestMetrics()
    app = application(repository, metrics=metrics)
    call(app, "GET", "/v1/models/linear")
    status, headers, body = call(app, "GET", "/monitoring/prometheus/metrics")
    assert status == "200 OK" and headers["Content-Type"] == metrics.text()[1]
    assert body == metrics.text()[0]
    assert b":tensorflow:serving:request_count_total{" in body


def test_each_request_is_counted_by_model_version_api_and_status(repository):
    metrics = RequestMetrics()
    app = application(repository, metrics=metrics)
    predict = {"instances": [[1, 2, 3, 4]]}
    call(app, "POST", "/v1/models/linear:predict", predict)
    call(app, "POST", "/v1/models/linear/versions/1:predict", predict)
    call(app, "POST", "/v1/models/linear:predict", b"{")
    call(app, "GET", "/v1/models/linear/versions/1/metadata")
    call(app, "GET", "/v1/models/linear/versions/1")
    call(app, "GET", "/v1/models/linear/versions/5")
    call(app, "GET", "/v1/models/nope")
    call(app, "POST", "/v1/models/linear:regress", b"{}")
    call(app, "GET", "/v2/nothing")  # no route: not counted
    model = {"model_name": "linear"}
    assert count(metrics, **model, version="1", API="predict", status="OK") == 2
    assert count(metrics, **model, version="1", API="predict", status="INVALID_ARGUMENT") == 1
    assert count(metrics, **model, version="1", API="GetModelMetadata", status="OK") == 1
    assert count(metrics, **model, version="1", API="GetModelStatus", status="OK") == 1
    # the version only once it is known to be served; the name only when it is the model's
    assert count(metrics, **model, version="", API="GetModelStatus", status="NOT_FOUND") == 1
    unknown = {"model_name": "", "version": "", "API": "GetModelStatus", "status": "NOT_FOUND"}
    assert count(metrics, **unknown) == 1
    other_verb = {**model, "version": "1", "API": "unsupported", "status": "INVALID_ARGUMENT"}
    assert count(metrics, **other_verb) == 1
    text = metrics.text()[0].decode()
    assert text.count(":tensorflow:serving:request_count_total{") == 7
    latency = [
        s
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == ":tensorflow:serving:request_latency_count"
    ]
    assert sorted((s.labels["API"], s.value) for s in latency) == [
        ("GetModelMetadata", 1.0),
        ("GetModelStatus", 1.0),
        ("predict", 2.0),
    ]
    assert all(s.labels["entrypoint"] == "REST" for s in latency)


def test_an_application_without_metrics_keeps_its_own(repository):
    app = application(repository)
    call(app, "GET", "/v1/models/linear")
    _, _, body = call(app, "GET", "/monitoring/prometheus/metrics")
    assert b'API="GetModelStatus",model_name="linear",status="OK",version=""} 1.0' in body
