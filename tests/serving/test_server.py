"""tfnn-serve over real HTTP on loopback: the REST API, hostile clients, connections,
batching, metrics, the version lifecycle and shutdown."""

import concurrent.futures
import contextlib
import http.client
import inspect
import json
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families

from tfnn import data, export
from tfnn.serving import confinement
from tfnn.serving import server as command
from tfnn.serving.confinement import confinable_cpus
from tfnn.serving.policy import Policy
from tfnn.serving.server import serve, spawn

# The module's served models start once, on one test worker.
pytestmark = pytest.mark.xdist_group("served-models")

LIMIT = 200_000  # --max_request_bytes of the test server
ROWS = 50  # --max_request_rows of the test server


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A digits-shaped classifier exported by tfnn.export: (base path, inputs, signatures)."""
    root = tmp_path_factory.mktemp("serving")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    path = export.export(model, root, "digits", data.Task(data.CLASSES, 10))
    x = np.random.default_rng(0).uniform(size=(20, 8, 8, 1)).astype("float32")
    return path.parent, x, tf.saved_model.load(str(path)).signatures


@pytest.fixture(scope="module")
def server(exported, kit):
    flags = ["--max_request_bytes", str(LIMIT), "--max_request_rows", str(ROWS)]
    process, url = spawn("digits", exported[0], *flags, "--idle_timeout_seconds", "3")
    yield url, process
    code, _ = kit.stop(process)
    assert code == 0


def in_process(signatures, x, name="serving_default"):
    return {k: v.numpy() for k, v in signatures[name](inputs=tf.constant(x)).items()}


def test_status_of_the_model_and_its_version(server, kit):
    url, _ = server
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert kit.call(f"{url}/v1/models/digits") == (200, expected, "application/json")
    assert kit.call(f"{url}/v1/models/digits/versions/1")[:2] == (200, expected)


def test_metadata_lists_the_signature_defs(server, kit):
    url, _ = server
    code, body, _ = kit.call(f"{url}/v1/models/digits/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    inputs = default["inputs"]["inputs"]
    assert inputs["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in inputs["tensor_shape"]["dim"]] == ["-1", "8", "8", "1"]
    assert list(default["outputs"]) == ["probabilities"]
    assert signatures["classes"]["outputs"]["classes"]["dtype"] == "DT_INT64"
    assert kit.call(f"{url}/v1/models/digits/versions/1/metadata")[1] == body


def test_predict_in_rows_and_columns_equals_the_saved_model_in_process(server, exported, kit):
    url, _ = server
    _, x, signatures = exported
    expected = in_process(signatures, x)["probabilities"]
    predict = f"{url}/v1/models/digits:predict"
    code, body, _ = kit.call(predict, {"instances": x.tolist()})
    assert code == 200 and list(body) == ["predictions"]
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6, atol=1e-7)
    rows_as_objects = {"instances": [{"inputs": row} for row in x.tolist()]}
    np.testing.assert_allclose(kit.call(predict, rows_as_objects)[1]["predictions"], expected)
    code, body, _ = kit.call(predict, {"inputs": x.tolist()})
    assert code == 200 and list(body) == ["outputs"]
    np.testing.assert_allclose(body["outputs"], expected, rtol=1e-6, atol=1e-7)
    classes = in_process(signatures, x, "classes")["classes"]
    body = kit.call(predict, {"signature_name": "classes", "instances": x[:3].tolist()})[1]
    assert [row["classes"] for row in body["predictions"]] == classes[:3].tolist()
    body = kit.call(predict, {"signature_name": "classes", "inputs": x.tolist()})[1]
    assert body["outputs"]["classes"] == classes.tolist()


def image(value=0.5):
    return [[[value]] * 8] * 8


BAD_REQUESTS = [
    (b"{not json", 400, "JSON Parse error"),
    ({"signature_name": [], "instances": [image()]}, 400, "must be a string"),
    ({"instances": [image(True)]}, 400, "true or false"),
    ({"instances": [[[[1.0]] * 7 + [[True]]] + image()[1:]]}, 400, "true or false"),
    (b'{"instances": [[[[NaN]]]]}', 400, "NaN is not a number"),
    (json.dumps({"instances": [image(3e39)]}).encode(), 400, "float32's range"),
    (b"[" * 90_000 + b"]" * 90_000, 400, "nested too deeply"),
    (b'{"a":' * 10_000 + b"0" + b"}" * 10_000, 400, "nested too deeply"),
    ({"instances": [image()] * (ROWS + 1)}, 413, f"at most {ROWS}"),
    ({"instances": [[1.0, 2.0]]}, 400, "shape"),
    ({"instances": [image("x")]}, 400, "expected numbers"),
    ({"instances": []}, 400, "non-empty"),
    (b'{"instances": [' + b"0," * LIMIT + b"0]}", 413, "Request Entity Too Large"),
]


@pytest.mark.parametrize("body, code, message", BAD_REQUESTS)
def test_bad_requests_get_json_errors_and_the_server_goes_on(server, kit, body, code, message):
    url, _ = server
    status, answer, content_type = kit.call(f"{url}/v1/models/digits:predict", body, "POST")
    assert (status, content_type) == (code, "application/json")
    assert list(answer) == ["error"] and message in answer["error"], answer
    assert kit.call(f"{url}/v1/models/digits")[0] == 200


@pytest.mark.parametrize(
    "path, method, code",
    [
        ("/v1/models/other", "GET", 404),
        ("/v1/models/other:predict", "POST", 404),
        ("/v1/models/digits/versions/7", "GET", 404),
        ("/v1/models/digits/versions/7:predict", "POST", 404),
        ("/v1/models/digits/versions/one", "GET", 400),
        ("/v1/models/digits/versions/%C2%B2", "GET", 400),
        ("/v1/models/digits/versions/%D9%A1", "GET", 400),
        ("/v1/models/digits/versions/9223372036854775808", "GET", 400),
        ("/v1/models/digits/versions/" + "9" * 5000, "GET", 400),
        ("/v1/models/digits:predict", "GET", 405),
        ("/v1/models/digits", "POST", 405),
        ("/v1/models/digits:classify", "POST", 400),
        ("/v1/models/digits/labels/stable", "GET", 404),
        ("/v2/anything", "GET", 404),
    ],
)
def test_unknown_models_versions_and_routes(server, kit, path, method, code):
    url, _ = server
    body = b'{"instances": [[0]]}' if method == "POST" else None
    status, answer, content_type = kit.call(f"{url}{path}", body, method)
    assert (status, content_type) == (code, "application/json") and "error" in answer


def head(response):
    """(status code, headers block, body) of one raw HTTP response."""
    headers, _, body = response.partition(b"\r\n\r\n")
    return int(headers.split(b" ", 2)[1]), headers, body


def chunked(size):
    piece = b"x" * 2**14
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(size // len(piece) + 1))


POST = b"POST /v1/models/digits:predict HTTP/1.1\r\nHost: t\r\n"
HEADERS = b"".join(b"H%d: v\r\n" % i for i in range(2000))
CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "request_bytes, code, message",
    [
        (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 431, "max_header"),
        (b"GET / HTTP/1.1\r\n" + HEADERS + b"\r\n", 431, "max_header"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431, "max_header"),
        (
            POST + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1) + b"0" * (LIMIT + 1),
            413,
            "max_request_bytes",
        ),
        (POST + CHUNKED + chunked(LIMIT) + b"0\r\n\r\n", 413, "max_request_bytes"),
        (POST + CHUNKED + b"zz\r\nab\r\n0\r\n\r\n", 400, "Bad Request"),
        (POST + b"Content-Length: -5\r\n\r\n", 400, "Bad Request"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 404, "Malformed request"),
    ],
)
def test_protocol_errors_are_answered_in_json(server, kit, request_bytes, code, message):
    url, _ = server
    status, headers, body = head(kit.raw(url, request_bytes))
    assert status == code and b"Content-Type: application/json" in headers
    assert message in json.loads(body)["error"]
    assert kit.call(f"{url}/v1/models/digits")[0] == 200


def test_a_tls_hello_gets_no_html_and_its_connection_is_closed_when_idle(server, kit):
    url, _ = server
    hello = bytes.fromhex("16030100a5010000a10303") + bytes(32)
    assert kit.raw(url, hello) == b""  # closed by the idle timeout (3 s), not answered in HTML
    assert kit.call(f"{url}/v1/models/digits")[0] == 200


def read_response(stream):
    """One HTTP response from a socket's file: (status, headers, body of Content-Length)."""
    lines = [stream.readline()]
    while lines[-1] not in (b"\r\n", b""):
        lines.append(stream.readline())
    headers = b"".join(lines)
    length = int(headers.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return int(lines[0].split(b" ", 2)[1]), headers, stream.read(length)


def test_keep_alive_and_pipelining(server, exported, kit):
    url, _ = server
    _, x, signatures = exported
    body = json.dumps({"instances": x[:2].tolist()}).encode()
    request = POST + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    host, port = url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=20) as connection:
        stream = connection.makefile("rb")
        connection.sendall(request * 3)  # three requests before reading any answer
        answers = [read_response(stream) for _ in range(3)]
        connection.sendall(request)  # the connection is still open afterwards
        answers.append(read_response(stream))
    expected = in_process(signatures, x[:2])["probabilities"]
    for status, headers, payload in answers:
        assert status == 200 and b"Connection: close" not in headers
        np.testing.assert_allclose(json.loads(payload)["predictions"], expected, rtol=1e-6)


def threads(process):
    status = pathlib.Path(f"/proc/{process.pid}/status").read_text()
    return int(status.split("Threads:")[1].split()[0])


def test_idle_connections_cost_no_threads_and_do_not_block_requests(server, kit):
    url, process = server
    host, port = url.rsplit("/", 1)[1].split(":")
    before = threads(process)
    # more than select() can watch (1,024 descriptors)
    connections = [socket.create_connection((host, int(port)), timeout=20) for _ in range(1100)]
    try:
        assert kit.call(f"{url}/v1/models/digits")[0] == 200  # accepted, answered
        assert threads(process) <= before + 2  # not one thread per connection
    finally:
        for connection in connections:
            connection.close()


def connect(url, timeout=60):
    host, port = url.rsplit("/", 1)[1].split(":")
    return contextlib.closing(http.client.HTTPConnection(host, int(port), timeout=timeout))


def metric(url, name, **labels):
    """The value of one sample of the server's metrics (0 if absent)."""
    with connect(url) as c:
        c.request("GET", "/monitoring/prometheus/metrics")
        text = c.getresponse().read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0


def test_metrics_count_requests_by_model_version_api_and_status(server, kit):
    url, _ = server
    count = ":tensorflow:serving:request_count_total"
    ok = {"model_name": "digits", "version": "1", "API": "predict", "status": "OK"}
    bad = {**ok, "status": "INVALID_ARGUMENT"}
    missing = {"model_name": "", "version": "", "API": "GetModelStatus", "status": "NOT_FOUND"}
    no_version = {**missing, "model_name": "digits"}
    other_verb = {**bad, "API": "unsupported"}
    latency = {"model_name": "digits", "version": "1", "API": "predict", "entrypoint": "REST"}
    samples = [(count, ok), (count, bad), (count, missing), (count, no_version)]
    samples += [(count, other_verb), (":tensorflow:serving:request_latency_count", latency)]
    before = [metric(url, name, **labels) for name, labels in samples]
    for _ in range(3):
        kit.call(f"{url}/v1/models/digits:predict", {"instances": [image()]})
    for _ in range(2):
        kit.call(f"{url}/v1/models/digits:predict", b"{", "POST")
    for i in range(5):  # unknown names, versions and verbs share one label set each
        kit.call(f"{url}/v1/models/other{i}")
        kit.call(f"{url}/v1/models/digits/versions/{100 + i}")
        kit.call(f"{url}/v1/models/digits:verb{chr(97 + i)}", b"{}", "POST")
    after = [metric(url, name, **labels) for name, labels in samples]
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 2, 5, 5, 5, 3]


@pytest.fixture(scope="module")
def batching(linear_base, kit):
    flags = ["--enable_batching", "--max_batch_size", "16", "--batch_timeout_micros", "300000"]
    process, url = spawn("linear", linear_base, *flags)
    yield process, url
    assert kit.stop(process)[0] == 0


def ask(url, x):
    with connect(url) as c:
        c.request("POST", "/v1/models/linear:predict", json.dumps({"instances": x.tolist()}))
        response = c.getresponse()
        return response.status, json.loads(response.read())


def test_batched_requests_get_exactly_their_unbatched_results(batching, kit):
    process, url = batching
    rng = np.random.default_rng(2)
    requests = [rng.integers(-9, 9, size=(int(rng.integers(1, 4)), 4)) for _ in range(24)]
    calls_before = metric(url, ":tensorflow:serving:batching_session:processed_batch_size_count")
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(ask, [url] * len(requests), requests))
    for x, (status, body) in zip(requests, answers, strict=True):
        assert status == 200
        assert body["predictions"] == kit.expected(x).tolist()  # exact, float for float
    calls = metric(url, ":tensorflow:serving:batching_session:processed_batch_size_count")
    rows = metric(url, ":tensorflow:serving:batching_session:processed_batch_size_sum")
    assert rows == sum(len(x) for x in requests) and calls - calls_before < len(requests)


def test_sigterm_finishes_every_received_request_then_exits_0(linear_base, kit):
    flags = ["--enable_batching", "--batch_timeout_micros", "5000000"]  # requests wait 5 s
    process, url = spawn("linear", linear_base, *flags)
    host, port = url.rsplit("/", 1)[1].split(":")
    idle = socket.create_connection((host, int(port)), timeout=30)
    requests = [np.full((1, 4), i) for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(ask, url, x) for x in requests]
        time.sleep(2.0)  # all six are received and wait for their batch
        code, log = kit.stop(process)
        answers = [f.result(timeout=60) for f in futures]
    assert code == 0 and "draining" in log and "stopped" in log
    for x, (status, body) in zip(requests, answers, strict=True):
        assert status == 200 and body["predictions"] == kit.expected(x).tolist()
    assert idle.recv(1) == b""  # the idle keep-alive connection was closed, not left hanging
    idle.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5)


def test_pipelined_responses_larger_than_the_socket_buffers_arrive_whole_and_in_order(
    linear_base, kit
):
    # The worker thread sends a response while its request runs and the event loop sends
    # what is left once it ends: with a client that reads only after sending both requests,
    # the first answer is still unsent while the second request runs.
    rows = 200_000  # about 3.5 MB of response each
    flags = ["--max_request_rows", str(rows), "--max_request_bytes", str(2**24)]
    process, url = spawn("linear", linear_base, *flags)
    try:
        xs = [np.full((rows, 4), i) for i in (1, 2)]
        bodies = [json.dumps({"instances": x.tolist()}).encode() for x in xs]
        post = b"POST /v1/models/linear:predict HTTP/1.1\r\nHost: t\r\n"
        data = b"".join(post + b"Content-Length: %d\r\n\r\n%s" % (len(b), b) for b in bodies)
        host, port = url.rsplit("/", 1)[1].split(":")
        with (
            socket.create_connection((host, int(port)), timeout=60) as connection,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            sent = pool.submit(connection.sendall, data)
            time.sleep(2.0)  # the server answers the first while the client does not read
            stream = connection.makefile("rb")
            answers = [read_response(stream) for _ in xs]
            sent.result(timeout=60)
        for x, (status, _, payload) in zip(xs, answers, strict=True):
            assert status == 200
            assert json.loads(payload)["predictions"] == kit.expected(x).tolist()
    finally:
        assert kit.stop(process)[0] == 0


def cpus_of_threads(pid):
    """[(thread id, name, the set of CPUs it may run on)] of process `pid`."""
    found = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        fields = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines())
        cpus = set()
        for part in fields["Cpus_allowed_list"].split(","):
            low, _, high = part.partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
        found.append((int(task.name), fields["Name"], cpus))
    return found


two_cpus = pytest.mark.skipif(len(confinable_cpus()) < 2, reason="confinement needs two CPUs")


@two_cpus
@pytest.mark.parametrize("given", ["a CPU", "nothing (auto)", "-1"])
def test_python_threads_share_one_cpu_and_tensorflows_threads_keep_every_cpu(
    linear_base, kit, given
):
    """Catches the Python threads (event loop, workers, poller, and with auto the follower)
    left on every CPU, TensorFlow's pools confined with them, auto not the default, and -1
    confining anything."""
    every = set(confinable_cpus())
    flags = ["--rest_api_num_threads", "3"]
    flags += {
        "a CPU": ["--python_threads_cpu", str(min(every))],
        "-1": ["--python_threads_cpu", "-1"],
    }.get(given, [])
    process, url = spawn("linear", linear_base, *flags)
    try:
        x = np.arange(8).reshape(2, 4)
        assert ask(url, x) == (200, {"predictions": kit.expected(x).tolist()})
        threads = cpus_of_threads(process.pid)
    finally:
        assert kit.stop(process)[0] == 0
    main = next(cpus for tid, _, cpus in threads if tid == process.pid)  # the event loop
    if given == "-1":
        assert all(cpus == every for _, _, cpus in threads)
        return
    # auto: the last CPU, unless other work kept it busy and the threads moved (all together)
    assert main == {min(every)} if given == "a CPU" else len(main) == 1 and main <= every
    confined = [name for _, name, cpus in threads if cpus == main]
    followers = 1 if given == "nothing (auto)" else 0
    assert len(confined) == 1 + 3 + 1 + followers  # the workers, the poller (the follower)
    tensorflow = [cpus for _, name, cpus in threads if name.startswith("tf_")]
    assert tensorflow and all(cpus == every for cpus in tensorflow)  # started before, unconfined


@two_cpus
def test_serve_in_a_thread_gives_the_thread_its_cpus_back(linear_base, kit):
    cpu, stopping, seen = confinable_cpus()[0], threading.Event(), {}

    def run():
        serve(
            model_name="linear",
            model_base_path=linear_base,
            rest_api_port=0,
            python_threads_cpu=cpu,
            file_system_poll_wait_seconds=0,
            stopping=stopping,
        )
        seen["after"] = os.sched_getaffinity(0)

    thread = threading.Thread(target=run)
    before = set(confinable_cpus())
    thread.start()
    try:
        wait_for(
            lambda: (
                [c for t, _, c in cpus_of_threads(os.getpid()) if t == thread.native_id] == [{cpu}]
            ),
            "the serving thread confined",
        )
    finally:
        stopping.set()
        thread.join(timeout=60)
    assert seen["after"] == before


@two_cpus
def test_serve_failing_to_listen_gives_the_thread_its_cpus_back(linear_base):
    before = set(confinable_cpus())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve(
                model_name="linear",
                model_base_path=linear_base,
                rest_api_port=taken.getsockname()[1],
                python_threads_cpu=confinable_cpus()[0],
                file_system_poll_wait_seconds=0,
                stopping=threading.Event(),
            )
    assert os.sched_getaffinity(0) == before


def test_tensorflow_threads_set_after_tensorflow_started_are_refused_by_name(linear_base):
    tf.constant(1.0) + 1.0  # this process has run an op
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    with pytest.raises(ValueError, match="^tensorflow_intra_op_parallelism=.* can only be set"):
        serve(
            model_name="linear",
            model_base_path=linear_base,
            tensorflow_intra_op_parallelism=threads + 1,
            rest_api_port=0,
            stopping=threading.Event(),  # never set: without the error, the test would hang
        )


def status_of(url, kit):
    entries = kit.call(f"{url}/v1/models/linear")[1]["model_version_status"]
    return {int(e["version"]): (e["state"], e["status"]["error_code"]) for e in entries}


def wait_for(condition, what, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_versions_appear_break_disappear_and_are_logged(tmp_path, kit):
    base = tmp_path / "linear"
    kit.write_linear(base / "1", offset=1.0)
    kit.write_linear(base / "2", offset=2.0)
    pb = base / "2" / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:100])  # a corrupt highest version
    process, url = spawn("linear", base, "--file_system_poll_wait_seconds", "0.2")
    try:
        assert status_of(url, kit) == {2: ("END", "DATA_LOSS"), 1: ("AVAILABLE", "OK")}
        x = np.ones((1, 4))
        assert ask(url, x)[1]["predictions"] == kit.expected(x, 1.0).tolist()
        kit.write_linear(tmp_path / "staging", offset=3.0)
        (tmp_path / "staging").rename(base / "3")
        wait_for(lambda: status_of(url, kit).get(3) == ("AVAILABLE", "OK"), "version 3 loads")
        assert ask(url, x)[1]["predictions"] == kit.expected(x, 3.0).tolist()
        shutil.rmtree(base / "3")
        wait_for(lambda: status_of(url, kit).get(1) == ("AVAILABLE", "OK"), "falls back to 1")
        assert status_of(url, kit)[3] == ("END", "OK")
        assert ask(url, x)[1]["predictions"] == kit.expected(x, 1.0).tolist()
    finally:
        code, log = kit.stop(process)
    assert code == 0
    for line in [
        "loaded linear version 1",
        "linear version 2 failed to load (DATA_LOSS",
        "loaded linear version 3",
        "unloaded linear version 1",
        "unloaded linear version 3",
    ]:
        assert "tfnn-serve: " + line in log, line


def test_a_new_version_under_load_swaps_in_without_errors_or_mixed_answers(tmp_path, kit):
    base = tmp_path / "linear"
    kit.write_linear(base / "1", offset=1.0)
    process, url = spawn("linear", base, "--file_system_poll_wait_seconds", "0.2")
    x = np.arange(12).reshape(3, 4) % 5
    answers = {tuple(kit.expected(x, offset).ravel()): offset for offset in (1.0, 2.0)}

    def client(_):
        """Asks until it has seen version 2 five times (at most 3,000 requests or 60 s)."""
        seen, deadline = [], time.monotonic() + 60
        with connect(url) as c:
            while seen.count(2.0) < 5 and len(seen) < 3000 and time.monotonic() < deadline:
                c.request("POST", "/v1/models/linear:predict", json.dumps({"inputs": x.tolist()}))
                response = c.getresponse()
                body = json.loads(response.read())
                assert response.status == 200, body
                seen.append(answers[tuple(np.ravel(body["outputs"]))])  # KeyError if mixed
        return seen

    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            clients = pool.map(client, range(8))
            time.sleep(1.0)  # requests to version 1 are under way
            kit.write_linear(tmp_path / "staging", offset=2.0)
            (tmp_path / "staging").rename(base / "2")
            seen = list(clients)
    finally:
        code, _ = kit.stop(process)
    assert code == 0
    for answers_of_one_client in seen:
        assert answers_of_one_client.count(2.0) == 5  # the new version arrived for everyone
        switch = answers_of_one_client.index(2.0)
        assert set(answers_of_one_client[switch:]) == {2.0}  # and stayed: no way back to 1


def run_serve(*argv):
    return subprocess.run(
        [sys.executable, "-m", "tfnn.serving.server", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model_base_path", "/no/such/folder"], "--model_base_path"),
        (["--model_base_path", ".", "--rest_api_port", "70000"], "--rest_api_port"),
        (["--model_base_path", ".", "--file_system_poll_wait_seconds", "-1"], "poll"),
        (["--model_base_path", ".", "--model_version_policy", "latest:0"], "latest:N with N >= 1"),
        (["--model_base_path", ".", "--max_request_rows", "0"], "max_request_rows"),
        (["--model_base_path", ".", "--python_threads_cpu", "4096"], "python_threads_cpu=4096"),
        (
            ["--model_base_path", ".", "--python_threads_cpu", "last"],
            "argument --python_threads_cpu: Expected auto, -1 or a CPU's number. Received: 'last'",
        ),
        (["--model_base_path", ".", "--num_batch_threads", "0"], "num_batch_threads=0"),
        (["--model_base_path", ".", "--max_batch_size", "0"], "max_batch_size=0"),
        # a server that accepts no connection: every client waits for ever
        (["--model_base_path", ".", "--max_connections", "0"], "max_connections=0"),
        # names no request URL /v1/models/<name> can reach: the server answered only errors
        (["--model_base_path", ".", "--model_name", "a/b"], "model_name='a/b'"),
        (["--model_base_path", ".", "--model_name", "m:predict"], "model_name='m:predict'"),
        (["--model_base_path", ".", "--model_name", ""], "model_name=''"),
        ([], "--model_base_path"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message):
    """Catches a flag out of its range that serves anyway (--max_connections 0 started and
    accepted no connection; a --model_name with '/' or ':' served a model no URL reached),
    or refused in more than one line."""
    result = run_serve(*argv)
    ours = [line for line in result.stderr.splitlines() if line.startswith("tfnn-serve")]
    assert result.returncode == 2 and len(ours) == 1, result.stderr  # the rest is TF's import
    assert ours[0].startswith("tfnn-serve: error: ") and message in ours[0]
    assert result.stderr.endswith(ours[0] + "\n")


def test_a_base_path_without_versions_or_a_taken_port_exits_2(linear_base, tmp_path):
    result = run_serve("--model_base_path", str(tmp_path))
    assert result.returncode == 2 and "version" in result.stderr.splitlines()[-1]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve("--model_base_path", str(linear_base), "--rest_api_port", str(port))
    assert result.returncode == 2 and "cannot listen" in result.stderr.splitlines()[-1]


def test_every_flag_has_help_and_shows_its_default():
    script = pathlib.Path(sys.executable).parent / "tfnn-serve"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    text = " ".join(result.stdout.split())
    flags = [w for w in text.split() if w.startswith("--") and w != "--help"]
    assert len(set(flags)) == 21, sorted(set(flags))
    assert "(default: latest:1)" in text and "(default: 16777216)" in text
    assert text.count("(default:") == 20 and "(required)" in text  # the base path has none


# In process: tfnn-serve's flags, its checks and its wiring, each function called here (the
# tests above run the command in a process of its own).

DEFAULTS = {
    "model_name": "default",
    "model_base_path": ".",
    "model_version_policy": Policy("latest", 1),
    "rest_api_port": 8501,
    "rest_api_host": "127.0.0.1",
    "file_system_poll_wait_seconds": 1.0,
    "max_retry_seconds": 300.0,
    "rest_api_num_threads": 16,
    "max_connections": 4096,
    "idle_timeout_seconds": 30.0,
    "max_header_bytes": 16 * 2**10,
    "max_request_bytes": 16 * 2**20,
    "max_request_rows": 10_000,
    "shutdown_grace_seconds": 30.0,
    "tensorflow_intra_op_parallelism": 1,
    "tensorflow_inter_op_parallelism": 0,
    "python_threads_cpu": "auto",
    "enable_batching": True,
    "max_batch_size": 64,
    "batch_timeout_micros": 0,
    "num_batch_threads": 1,
}


def test_the_flags_defaults_and_serves_keyword_defaults_agree():
    """Catches a flag's default changed, or a keyword default of serve() other than its
    flag's (serve() is also called without the flags)."""
    assert vars(command.parser().parse_args(["--model_base_path", "."])) == DEFAULTS
    for name, parameter in inspect.signature(serve).parameters.items():
        if name in DEFAULTS and parameter.default is not inspect.Parameter.empty:
            expected = None if name == "model_version_policy" else DEFAULTS[name]
            assert parameter.default == expected, name


FLOATS = ["file_system_poll_wait_seconds", "max_retry_seconds", "idle_timeout_seconds"]
INTS = [
    "rest_api_num_threads",
    "max_connections",
    "max_header_bytes",
    "max_request_bytes",
    "max_request_rows",
    "tensorflow_intra_op_parallelism",
    "tensorflow_inter_op_parallelism",
    "max_batch_size",
    "batch_timeout_micros",
    "num_batch_threads",
]


@pytest.mark.parametrize(
    "flag, taken, refused",
    [("rest_api_port", "0", "-1"), ("rest_api_port", "65535", "65536")]
    + [(flag, "0", "-0.001") for flag in [*FLOATS, "shutdown_grace_seconds"]]
    + [(flag, "0", "-1") for flag in INTS],
)
def test_each_flags_range_is_checked_when_parsed(flag, taken, refused, capsys):
    """Catches a flag parsed without its type's range check (or as another type): the value
    at the limit is taken, as a number, and the one past it refused in one line, exit 2."""
    args = command.parser().parse_args(["--model_base_path", ".", f"--{flag}", taken])
    assert getattr(args, flag) == float(taken) and type(getattr(args, flag)) is type(DEFAULTS[flag])
    with pytest.raises(SystemExit) as exited:
        command.parser().parse_args(["--model_base_path", ".", f"--{flag}", refused])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"tfnn-serve: error: argument --{flag}: ") and error.count("\n") == 1


@pytest.mark.parametrize(
    "argv, batching",
    [
        ([], True),
        (["--enable_batching"], True),
        (["--enable_batching=true"], True),
        (["--enable_batching=TRUE"], True),
        (["--enable_batching=1"], True),
        (["--enable_batching=false"], False),
        (["--enable_batching=False"], False),
        (["--enable_batching", "0"], False),
    ],
)
def test_batching_is_on_unless_the_flag_says_false(argv, batching):
    """Catches batching off by default, the bare flag (TensorFlow Serving's spelling) read as
    false, and `--enable_batching=false` (or 0, in any case) read as true: a non-empty string
    taken for its truth."""
    parsed = command.parser().parse_args(["--model_base_path", ".", *argv])
    assert parsed.enable_batching is batching


@pytest.mark.parametrize("value", ["maybe", "", "2", "yes"])
def test_a_batching_flag_neither_true_nor_false_is_refused_in_one_line(value, capsys):
    """Catches a value other than true/false/1/0 taken (as true, for its truth) instead of
    refused in one line naming the flag and what it takes."""
    with pytest.raises(SystemExit) as exited:
        command.parser().parse_args(["--model_base_path", ".", f"--enable_batching={value}"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "tfnn-serve: error: argument --enable_batching: Expected true or false (or 1, 0). "
        f"Received: {value!r}\n"
    )


def test_the_base_path_is_required_and_the_policy_parsed(capsys):
    """Catches --model_base_path not required, and --model_version_policy not parsed by
    Policy.parse (or its error not argparse's one line)."""
    assert command.parser().parse_args(
        ["--model_base_path", "b", "--model_version_policy", "specific:2,5"]
    ).model_version_policy == Policy.parse("specific:2,5")
    for argv in [[], ["--model_base_path", ".", "--model_version_policy", "latest:0"]]:
        with pytest.raises(SystemExit) as exited:
            command.parser().parse_args(argv)
        assert exited.value.code == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors[0] == "tfnn-serve: error: the following arguments are required: --model_base_path"
    assert errors[1].startswith("tfnn-serve: error: argument --model_version_policy: Expected")


HELP = {
    "help": "show this help message and exit",
    "model_name": "the model's name in request URLs",
    "model_base_path": "the folder of integer version folders (required)",
    "model_version_policy": ("latest:N (the N highest versions that load), specific:V,V,… or all"),
    "rest_api_port": "0: any free port",
    "rest_api_host": "the address to bind",
    "file_system_poll_wait_seconds": (
        "how often to look for new, replaced and removed versions (0: never)"
    ),
    "max_retry_seconds": (
        "the longest wait before loading a failed version again (waits double from 1 s)"
    ),
    "rest_api_num_threads": "worker threads: the most requests handled at once",
    "max_connections": "the most open connections; more wait in the listen backlog",
    "idle_timeout_seconds": "a connection without activity for this long is closed",
    "max_header_bytes": "request line and headers together; more get 431",
    "max_request_bytes": "request body, Content-Length or chunked; more get 413",
    "max_request_rows": "examples in one predict request; more get 413",
    "shutdown_grace_seconds": (
        "on SIGTERM/SIGINT, the longest wait for received requests to finish"
    ),
    "tensorflow_intra_op_parallelism": (
        "threads one TensorFlow op may use (0: TensorFlow's choice, the cores). 1: a request of "
        "a few rows is answered sooner, one of thousands of rows later. See docs/serving.md"
    ),
    "tensorflow_inter_op_parallelism": (
        "TensorFlow ops that may run at once (0: TensorFlow's choice)"
    ),
    "python_threads_cpu": (
        "the one CPU for the server's Python threads, confined after the models load "
        "(TensorFlow's thread pools keep every CPU); auto: the last CPU, moved to a free one "
        "when other work keeps it busy (not confined with one CPU); -1: not confined. See "
        "docs/serving.md"
    ),
    "enable_batching": (
        "merge concurrent predict requests to one version into one model call; a lone "
        "request runs at once (--enable_batching=false: one model call per request)"
    ),
    "max_batch_size": "with batching: the most rows in one model call",
    "batch_timeout_micros": (
        "with batching: the longest a request waits for others to join (0: no wait)"
    ),
    "num_batch_threads": "with batching: how many batches run at once",
}


def test_the_help_describes_the_command_and_each_flag():
    """Catches the command's description (the docstring's first paragraph) or a flag's help
    text lost or changed, and --enable_batching's values not shown as {true,false} (the
    subprocess test of --help above counts the flags and defaults but runs no code here)."""
    parsed = command.parser()
    assert parsed.description == (
        "`tfnn-serve`: TensorFlow Serving's REST API for one model, over HTTP."
    )
    assert {action.dest: action.help for action in parsed._actions} == HELP
    text = " ".join(parsed.format_help().split())
    assert text.startswith("usage: tfnn-serve [-h] [--model_name MODEL_NAME]")
    assert "--enable_batching [{true,false}] merge concurrent" in text


@pytest.mark.parametrize("text, cpu", [("auto", "auto"), ("-1", -1), ("0", 0), ("12", 12)])
def test_python_threads_cpu_is_auto_or_a_number(text, cpu):
    """Catches --python_threads_cpu's number not read as an int (or "auto" read as one)."""
    parsed = command.parser().parse_args(["--model_base_path", ".", "--python_threads_cpu", text])
    assert parsed.python_threads_cpu == cpu and type(parsed.python_threads_cpu) is type(cpu)


def test_python_threads_cpu_neither_auto_nor_a_number_is_refused_in_one_line(capsys):
    """Catches the refusal of --python_threads_cpu's text not naming the flag, what it takes
    and the text received (the subprocess test above runs no code here)."""
    with pytest.raises(SystemExit) as exited:
        command.parser().parse_args(["--model_base_path", ".", "--python_threads_cpu", "last"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "tfnn-serve: error: argument --python_threads_cpu: Expected auto, -1 or a CPU's "
        "number. Received: 'last'\n"
    )


class Reached(Exception):
    """serve() got past its checks to loading the models."""


@pytest.fixture
def no_loading(monkeypatch):
    """serve() raises Reached where it would load the models."""

    def load(*args, **kwargs):
        raise Reached

    monkeypatch.setattr("tfnn.serving.repository.ModelRepository", load)


@pytest.mark.parametrize(
    "name, lowest",
    [
        ("max_request_rows", 1),
        ("rest_api_num_threads", 1),
        ("max_connections", 1),
        ("max_header_bytes", 1),
        ("max_request_bytes", 1),
        ("max_batch_size", 1),
        ("batch_timeout_micros", 0),
        ("num_batch_threads", 1),
        ("python_threads_cpu", -1),
    ],
)
def test_serve_checks_its_numbers_before_loading(no_loading, name, lowest):
    """Catches a check of serve() dropped, on another value, or with its limit moved: the
    lowest value allowed reaches the loading and the one below is refused by name."""
    with pytest.raises(Reached):
        serve(model_name="m", model_base_path=".", **{name: lowest})
    with pytest.raises(ValueError, match=f"Received: {name}={lowest - 1}$"):
        serve(model_name="m", model_base_path=".", **{name: lowest - 1})


@pytest.mark.parametrize("name", ["a/b", "m:predict", ""])
def test_serve_refuses_a_model_name_no_url_reaches(no_loading, name):
    """Catches a model name with '/' or ':' (each alone) or an empty one served, and the
    refusal not naming model_name, the name and what it takes (the subprocess test above runs
    no code here)."""
    with pytest.raises(Reached):
        serve(model_name="m-1.b_c", model_base_path=".")
    with pytest.raises(ValueError) as refused:
        serve(model_name=name, model_base_path=".")
    assert str(refused.value) == (
        "Expected a name without '/' or ':' (the <name> of /v1/models/<name>). "
        f"Received: model_name={name!r}"
    )


NO_COUNTS = {"tensorflow_intra_op_parallelism": 0, "tensorflow_inter_op_parallelism": 0}


def record_thread_counts(patcher):
    """TensorFlow's two thread-count setters replaced (on `patcher`, a monkeypatch) by stand-ins
    that record ("intra" or "inter", count) in the list returned."""
    calls = []
    for pool in ("intra", "inter"):
        setter = f"set_{pool}_op_parallelism_threads"
        patcher.setattr(tf.config.threading, setter, lambda n, p=pool: calls.append((p, n)))
    return calls


@pytest.mark.parametrize("which", ["intra", "inter"])
def test_tensorflows_threads_are_set_only_when_asked(no_loading, which, monkeypatch):
    """Catches a thread count set when 0 (TensorFlow's choice) or set on the other pool, and
    the refusal naming another flag."""
    tf.constant(1.0) + 1.0  # this process has run an op: setting a count now fails
    name = f"tensorflow_{which}_op_parallelism"
    with monkeypatch.context() as patched:
        calls = record_thread_counts(patched)
        for count in (0, 3):
            with pytest.raises(Reached):
                serve(model_name="m", model_base_path=".", **{**NO_COUNTS, name: count})
    assert calls == [(which, 3)]
    current = getattr(tf.config.threading, f"get_{which}_op_parallelism_threads")()
    with pytest.raises(ValueError) as refused:
        serve(model_name="m", model_base_path=".", **{name: current + 1})
    assert str(refused.value) == (
        f"{name}={current + 1} can only be set before TensorFlow runs its first op in a "
        f"process; this one runs with {current} (0 keeps it)"
    )
    with pytest.raises(Reached):  # the count the process runs with: no change, no refusal
        serve(model_name="m", model_base_path=".", **{name: current})


class StandIns:
    """A repository, a server and a batcher standing in for tfnn's in serve(), recording what
    serve() does with them; the server's loop returns once the poller has polled `polls`
    times, by the SIGTERM handler serve() installed."""

    def __init__(self, monkeypatch, polls):
        self.calls, self.handlers, self.polled = {}, {}, []
        stand_ins = self

        class Repository:
            def __init__(self, *args, **kwargs):
                stand_ins.calls["repository"] = (args, kwargs)
                stand_ins.repository = self

            def poll(self):
                stand_ins.polled.append(threading.current_thread().name)
                if len(stand_ins.polled) == 1:
                    raise RuntimeError("the folder is gone")

            def status(self, name):
                stand_ins.calls["status"] = name
                states = [("3", "AVAILABLE"), ("2", "END"), ("1", "AVAILABLE")]
                return [{"version": v, "state": s} for v, s in states]

        class Server:
            host, port = "127.0.0.9", 1234

            def __init__(self, app, **options):
                stand_ins.calls["server"] = (app, options)

            def serve_until(self, stopping):
                deadline = time.monotonic() + 5
                while len(stand_ins.polled) < polls and time.monotonic() < deadline:
                    time.sleep(0.01)
                stand_ins.calls["threads"] = [
                    t for t in threading.enumerate() if t.name == "tfnn-poll"
                ]
                stand_ins.handlers[signal.SIGTERM]()
                assert stopping.is_set()

            def drain(self, grace_seconds):
                stand_ins.calls["drain"] = grace_seconds
                return stand_ins.busy

        class Batcher:
            def __init__(self, *args):
                stand_ins.calls["batcher"] = args
                stand_ins.calls["stopped"] = False

            def stop(self):
                stand_ins.calls["stopped"] = True

        def application(*args):
            stand_ins.calls["application"] = args
            return "the application"

        def handle(number, handler):
            self.handlers[number] = lambda: handler(number, None)

        self.busy = 0
        monkeypatch.setattr("tfnn.serving.repository.ModelRepository", Repository)
        monkeypatch.setattr("tfnn.serving.wsgi.Server", Server)
        monkeypatch.setattr("tfnn.serving.batching.Batcher", Batcher)
        monkeypatch.setattr("tfnn.serving.app.application", application)
        monkeypatch.setattr(signal, "signal", handle)


def test_serve_wires_its_flags_polls_the_folder_and_logs_until_it_has_drained(monkeypatch, caplog):
    """Catches serve() passing a flag to the wrong place (the repository, the batcher, the
    application, the HTTP server, drain), the application without the repository, the poller
    not polling every file_system_poll_wait_seconds, stopping at its first failure or not a
    daemon thread (an error in serve() would leave it running), the signals not stopping
    the server, the batcher not stopped, and its log lines changed."""
    stand_ins = StandIns(monkeypatch, polls=3)
    stand_ins.busy = 3
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    stopping = threading.Event()
    options = {"rest_api_port": 0, "max_connections": 9, "rest_api_num_threads": 2}
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        serve(
            model_name="m",
            model_base_path="base",
            model_version_policy="policy",
            file_system_poll_wait_seconds=0.01,
            max_retry_seconds=7.0,
            max_request_rows=11,
            shutdown_grace_seconds=0.5,
            enable_batching=True,
            max_batch_size=5,
            batch_timeout_micros=6,
            num_batch_threads=2,
            stopping=stopping,
            **options,
        )
    calls = stand_ins.calls
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert calls["repository"] == (("m", "base", "policy"), {"max_retry_seconds": 7.0})
    batcher_args = calls["batcher"]
    assert batcher_args[:3] == (5, 6, 2) and calls["stopped"]
    repository, rows, batcher, metrics = calls["application"]
    assert rows == 11 and batcher is not None and batcher_args[3] == metrics.batch_size.observe
    assert repository is stand_ins.repository
    assert calls["server"] == ("the application", options)
    assert calls["status"] == "m" and calls["drain"] == 0.5
    assert calls["threads"] and set(stand_ins.polled) == {"tfnn-poll"}
    assert all(thread.daemon for thread in calls["threads"])  # else an error kept it running
    assert len(stand_ins.polled) >= 3  # on after its first poll failed
    stopping.clear()
    stand_ins.handlers[signal.SIGINT]()
    assert stopping.is_set()
    failed = [r for r in caplog.records if r.getMessage() == "could not poll base"]
    assert len(failed) == 1 and failed[0].exc_info[1].args == ("the folder is gone",)
    assert [r.getMessage() for r in caplog.records if r.thread == threading.get_ident()] == [
        "serving m versions [3, 1] at http://127.0.0.9:1234/v1/models/m",
        "draining: no new connections; finishing received requests",
        "stopped (3 connections still busy after the grace time)",
    ]


class Waits(threading.Event):
    """An event that records the timeouts it is waited on with."""

    def __init__(self):
        super().__init__()
        self.timeouts = []

    def wait(self, timeout=None):
        self.timeouts.append(timeout)
        return super().wait(timeout)


def test_serve_passes_its_keyword_defaults_on(monkeypatch):
    """Catches a keyword default of serve() changed where it is used: the retry limit, the
    rows a request may have, batching on with its size, timeout and threads, the grace time,
    the poll's interval and TensorFlow's thread counts (the test of the defaults above reads
    serve()'s signature, which is the original's under mutation testing)."""
    stand_ins = StandIns(monkeypatch, polls=0)
    monkeypatch.setattr(confinement, "confinable_cpus", lambda: [])  # auto: not confined
    counts = record_thread_counts(monkeypatch)
    before = set(threading.enumerate())
    stopping = Waits()
    serve(model_name="m", model_base_path="base", stopping=stopping)
    assert counts == [("intra", 1)]  # one thread an op; the inter-op pool TensorFlow's choice
    for thread in set(threading.enumerate()) - before:
        thread.join(5)
    calls = stand_ins.calls
    assert calls["repository"] == (("m", "base", None), {"max_retry_seconds": 300.0})
    assert calls["application"][1] == 10_000 and calls["application"][2] is not None
    assert calls["batcher"][:3] == (64, 0, 1) and calls["drain"] == 30.0
    assert calls["server"] == ("the application", {}) and stopping.timeouts == [1.0]


def test_serve_without_batching_polling_or_busy_connections(monkeypatch, caplog):
    """Catches a batcher made with enable_batching False, a poller started for
    file_system_poll_wait_seconds 0, and the stop's log line naming busy connections when
    there were none."""
    stand_ins = StandIns(monkeypatch, polls=0)
    pollers = [t for t in threading.enumerate() if t.name == "tfnn-poll"]  # other tests'
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        serve(
            model_name="m",
            model_base_path="base",
            file_system_poll_wait_seconds=0,
            enable_batching=False,
        )
    assert "batcher" not in stand_ins.calls and stand_ins.calls["application"][2] is None
    assert set(stand_ins.calls["threads"]) <= set(pollers) and stand_ins.polled == []
    ours = [r for r in caplog.records if r.thread == threading.get_ident()]
    assert ours[-1].getMessage() == "stopped"


def record_confinement(monkeypatch):
    """serve()'s confinement stood in for: the list of the CPUs it was asked to confine to."""
    confined = []

    @contextlib.contextmanager
    def confine(cpu):
        confined.append(cpu)
        yield

    monkeypatch.setattr(confinement, "confine_python_threads", confine)
    return confined


def thread_of_follower():
    """(name, daemon) of the thread calling it."""
    return threading.current_thread().name, threading.current_thread().daemon


def test_auto_confines_to_the_last_cpu_and_starts_the_follower_a_number_does_not(monkeypatch):
    """Catches auto passed on unresolved (confining to "auto"), the follower not started for
    auto, or started for a CPU given by number or for -1, the threads pinned there before
    (but the caller's own, which the server confines) not left alone, and the follower's
    thread not named tfnn-cpu or not a daemon (an error in serve() would leave it running)."""
    StandIns(monkeypatch, polls=0)
    confined, started = record_confinement(monkeypatch), []
    monkeypatch.setattr(confinement, "confinable_cpus", lambda: [0, 3])
    monkeypatch.setattr(
        command,
        "_follow",
        lambda f, stopping: started.append((f.cpu, f.cpus, f.others, thread_of_follower())),
    )
    pinned = {threading.get_native_id(), 77}  # this thread, and one of the program around it
    monkeypatch.setattr(confinement, "pinned", lambda cpu: pinned if cpu == 3 else set())
    for cpu in ["auto", 0, -1]:
        serve(
            model_name="m",
            model_base_path="base",
            file_system_poll_wait_seconds=0,
            python_threads_cpu=cpu,
        )
    for thread in threading.enumerate():
        if thread.name == "tfnn-cpu":
            thread.join(5)
    assert confined == [3, 0, -1] and started == [(3, [0, 3], {77}, ("tfnn-cpu", True))]


def test_auto_without_a_thread_list_confines_without_following(monkeypatch, caplog):
    """Catches a server that fails to start where /proc/self/task cannot be listed (the
    follower needs it; the confinement does not)."""
    StandIns(monkeypatch, polls=0)
    confined, started = record_confinement(monkeypatch), []

    def unlisted(cpu):
        raise FileNotFoundError(2, "No such file or directory", "/proc/self/task")

    monkeypatch.setattr(confinement, "confinable_cpus", lambda: [0, 1])
    monkeypatch.setattr(command, "_follow", lambda *args: started.append(args))
    monkeypatch.setattr(confinement, "pinned", unlisted)
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        serve(model_name="m", model_base_path="base", file_system_poll_wait_seconds=0)
    assert confined == [1] and started == []
    warning = "Python threads stay on CPU 1: [Errno 2] No such file or directory: '/proc/self/task'"
    assert warning in [r.getMessage() for r in caplog.records]


class Stepper:
    """A follower standing in: its steps return the CPUs in `steps`, then set `stopping`."""

    def __init__(self, steps, stopping):
        self.cpu, self.steps, self.stopping, self.calls = 1, list(steps), stopping, 0

    def step(self):
        self.calls += 1
        value = self.steps.pop(0)
        if not self.steps:
            self.stopping.set()
        if isinstance(value, Exception):
            raise value
        self.cpu = value
        return value


def test_follow_steps_until_stopped_and_logs_each_move_once(caplog):
    """Catches the follower's loop not stepping, not stopping with the server, or logging a
    step that moved nothing."""
    stopping = threading.Event()
    stepper = Stepper([1, 0, 0, 1], stopping)
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        command._follow(stepper, stopping, seconds=0.001)
    assert stepper.calls == 4
    assert [r.getMessage() for r in caplog.records] == [
        "Python threads moved from CPU 1 to CPU 0: other work kept it busy",
        "Python threads moved from CPU 0 to CPU 1: other work kept it busy",
    ]


def test_follow_steps_once_a_second_unless_told():
    """Catches the follower's default interval (serve() starts it without one) changed."""
    stopping = Waits()
    stopping.set()
    command._follow(Stepper([0], stopping), stopping)
    assert stopping.timeouts == [1.0]


def test_follow_stops_following_after_a_failed_step_and_says_where_the_threads_stay(caplog):
    """Catches a failed step ending the server's thread with a traceback on stderr, or the
    loop going on stepping a follower that fails."""
    stopping = threading.Event()
    stepper = Stepper([OSError("no /proc"), 0], stopping)
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        command._follow(stepper, stopping, seconds=0.001)
    assert stepper.calls == 1 and not stopping.is_set()
    [record] = caplog.records
    message = "could not read how busy the CPUs are; Python threads stay on CPU 1"
    assert record.getMessage() == message and record.exc_info[1].args == ("no /proc",)


@pytest.fixture
def main_logging():
    """Gives tfnn.serving's and waitress.queue's loggers their handlers and levels back."""
    loggers = [logging.getLogger("tfnn.serving"), logging.getLogger("waitress.queue")]
    saved = [(lg.handlers[:], lg.level) for lg in loggers]
    yield
    for lg, (handlers, level) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)


def test_main_serves_with_every_flag_and_logs_in_one_line_each(
    tmp_path, monkeypatch, capsys, main_logging
):
    """Catches main() not passing the parsed flags to serve(), and its log lines not
    "tfnn-serve: <message>" on stderr from INFO up, or waitress's queue warnings let through."""
    seen = {}

    def fake_serve(**flags):
        seen.update(flags)
        logging.getLogger("tfnn.serving").info("serving %s", "m")
        logging.getLogger("tfnn.serving").debug("not shown")

    monkeypatch.setattr(command, "serve", fake_serve)
    command.main(["--model_base_path", str(tmp_path)])
    assert seen == {**DEFAULTS, "model_base_path": str(tmp_path)}
    assert capsys.readouterr().err == "tfnn-serve: serving m\n"
    assert logging.getLogger("waitress.queue").level == logging.ERROR


@pytest.mark.parametrize(
    "error, message",
    [
        (ValueError("no version loads"), "no version loads"),
        (
            OSError(98, "Address already in use"),
            "cannot listen on 127.0.0.1:8501: Address already in use",
        ),
        (OSError("no strerror"), "cannot listen on 127.0.0.1:8501: no strerror"),
    ],
)
def test_main_reports_what_serve_refused_in_one_line_exit_2(
    tmp_path, monkeypatch, capsys, main_logging, error, message
):
    """Catches main() letting serve()'s ValueError or OSError out as a traceback, or its line
    naming another address or reason."""

    def fake_serve(**flags):
        raise error

    monkeypatch.setattr(command, "serve", fake_serve)
    with pytest.raises(SystemExit) as exited:
        command.main(["--model_base_path", str(tmp_path)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"tfnn-serve: error: {message}\n"


def test_main_refuses_a_base_path_that_is_not_a_folder(tmp_path, capsys, main_logging):
    """Catches main() serving from a base path that is not a folder."""
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exited:
        command.main(["--model_base_path", str(tmp_path / "file")])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"tfnn-serve: error: argument --model_base_path: {str(tmp_path / 'file')!r} is not a "
        "folder\n"
    )


def test_spawn_gives_up_at_its_deadline_on_a_child_that_prints_nothing(tmp_path, monkeypatch):
    """A child that never writes a line and keeps running is killed at the deadline and the
    start is a RuntimeError. Catches the deadline checked only inside `for line in stderr`,
    which waited for the child's first line (here: its exit 20 s later, status 0)."""
    children = []
    popen = subprocess.Popen

    def silent(command, **kwargs):
        children.append(popen([sys.executable, "-c", "import time; time.sleep(20)"], **kwargs))
        return children[-1]

    monkeypatch.setattr(command.subprocess, "Popen", silent)
    with pytest.raises(RuntimeError, match="tfnn-serve did not start"):
        spawn("linear", tmp_path, timeout=0.5)
    assert children[0].wait() == -signal.SIGKILL


class Child:
    """A tfnn-serve process standing in for spawn(): its stderr gives `lines`, recording
    whether the thread reading them is a daemon; kill and wait are recorded."""

    def __init__(self, lines):
        self.lines, self.calls, self.daemon = lines, [], []

    @property
    def stderr(self):
        self.daemon.append(threading.current_thread().daemon)
        yield from self.lines

    def kill(self):
        self.calls.append("kill")

    def wait(self):
        self.calls.append("wait")
        return -signal.SIGKILL


def test_spawn_reports_a_child_that_ends_without_serving_with_its_last_output(monkeypatch):
    """Catches spawn() starting another command or without a piped text stderr, reading it on
    a thread that would keep the tests' process alive, taking another model's start for its
    own, not killing and reaping the child, or its error not the output's last 2,000
    characters."""
    lines = [
        "a" * 1500 + "\n",
        "tfnn-serve: serving other versions [1] at http://127.0.0.1:5/v1/models/other\n",
        "b" * 1500 + "\n",
    ]
    child, started = Child(lines), []

    def popen(argv, **kwargs):
        started.append((argv, kwargs))
        return child

    monkeypatch.setattr(command.subprocess, "Popen", popen)
    with pytest.raises(RuntimeError) as failed:
        spawn("m", pathlib.Path("base"), "--flag")
    argv = [sys.executable, "-m", "tfnn.serving.server", "--model_name", "m"]
    argv += ["--model_base_path", "base", "--rest_api_port", "0", "--flag"]
    assert started == [(argv, {"stderr": subprocess.PIPE, "text": True})]
    assert str(failed.value) == "tfnn-serve did not start: " + "".join(lines)[-2000:]
    assert child.calls == ["kill", "wait"] and child.daemon == [True]


def test_spawn_waits_60_seconds_unless_told(monkeypatch):
    """Catches spawn()'s default deadline changed, its wait for a line not bounded by what is
    left of it, no wait with less than a second left (`> 1` for `> 0`), or a wait begun with
    nothing left (`>= 0`)."""
    waited = []

    class Lines:
        def put(self, line):
            pass

        def get(self, timeout):
            waited.append(timeout)
            raise command.queue.Empty

    monkeypatch.setattr(command.subprocess, "Popen", lambda argv, **kwargs: Child([]))
    monkeypatch.setattr(command.queue, "Queue", Lines)
    monkeypatch.setattr(command.time, "monotonic", lambda: 100.0)
    with pytest.raises(RuntimeError, match="^tfnn-serve did not start: $"):
        spawn("m", "base")
    assert waited == [60]
    for timeout in (0.5, 0):
        with pytest.raises(RuntimeError, match="^tfnn-serve did not start: $"):
            spawn("m", "base", timeout=timeout)
    assert waited == [60, 0.5]


@pytest.mark.parametrize(
    "host, url",
    [
        ("127.0.0.1", "http://127.0.0.1:8501/v1/models/m"),
        ("::1", "http://[::1]:8501/v1/models/m"),  # RFC 3986: an IPv6 address in brackets
        ("localhost", "http://localhost:8501/v1/models/m"),
    ],
)
def test_the_url_printed_at_start_is_one_a_client_can_open(host, url):
    """Catches the IPv6 address printed bare ("http://::1:8501/..."), which no client
    parses as host and port."""
    assert command.model_url(host, 8501, "m") == url
