"""tfnn-serve against SavedModels exported by train.py, over real HTTP on loopback."""

import concurrent.futures
import json
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnn
from tfnn import data, export
from tfnn.serving import server as server_module

LIMIT = 200_000  # --max_request_bytes of the test server


def start_server(base_path, *flags):
    """Starts tfnn-serve on a free port; returns (process, base URL)."""
    return server_module.spawn("digits", base_path, *flags)


def stop(process):
    """SIGTERM; returns (exit code, everything the server wrote to stderr)."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    deadline = time.monotonic() + 5
    while not process.log[-1].startswith("tfnn-serve: stopped") and time.monotonic() < deadline:
        time.sleep(0.05)  # the reader thread catches up with the last lines
    return code, "".join(process.log)


def call(url, body=None, method=None):
    """(HTTP status, parsed JSON body, content type)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["Content-Type"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A digits classifier exported by train.py: (base path, inputs, in-process signatures)."""
    root = tmp_path_factory.mktemp("serving")
    metrics = tfnn.train(
        dataset="digits",
        data_dir=str(root / "tfds"),
        logdir=str(root / "logs"),
        export_dir=str(root / "saved_models"),
        model="mlp",
        hidden_layers=(32,),
        epochs=2,
        verbose=0,
        mc_dropout=0,
    )
    dataset = data.load("digits", seed=42, data_dir=str(root / "tfds"))
    loaded = tf.saved_model.load(metrics["export_path"])
    return root / "saved_models" / "digits", dataset.test[0][:20], loaded.signatures


@pytest.fixture(scope="module")
def server(exported):
    process, url = start_server(exported[0], "--max_request_bytes", str(LIMIT))
    yield url
    code, _ = stop(process)
    assert code == 0


def in_process(signatures, x, name="serving_default"):
    return {k: v.numpy() for k, v in signatures[name](inputs=tf.constant(x)).items()}


def test_status_of_the_model_and_its_version(server):
    expected = {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    assert call(f"{server}/v1/models/digits") == (200, expected, "application/json")
    assert call(f"{server}/v1/models/digits/versions/1")[:2] == (200, expected)


def test_metadata_lists_the_signature_defs(server):
    code, body, _ = call(f"{server}/v1/models/digits/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    inputs = default["inputs"]["inputs"]
    assert inputs["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in inputs["tensor_shape"]["dim"]] == ["-1", "8", "8", "1"]
    assert list(default["outputs"]) == ["probabilities"]
    assert sorted(signatures["classes"]["outputs"]) == ["classes", "scores"]
    assert signatures["classes"]["outputs"]["classes"]["dtype"] == "DT_INT64"
    assert call(f"{server}/v1/models/digits/versions/1/metadata")[1] == body


def test_predict_in_rows_and_columns_equals_the_saved_model_in_process(server, exported):
    _, x, signatures = exported
    expected = in_process(signatures, x)["probabilities"]
    url = f"{server}/v1/models/digits:predict"
    code, body, _ = call(url, {"instances": x.tolist()})
    assert code == 200 and list(body) == ["predictions"]
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-6, atol=1e-7)
    rows_as_objects = {"instances": [{"inputs": row} for row in x.tolist()]}
    np.testing.assert_allclose(call(url, rows_as_objects)[1]["predictions"], expected, rtol=1e-6)
    code, body, _ = call(url, {"inputs": x.tolist()})
    assert code == 200 and list(body) == ["outputs"]
    np.testing.assert_allclose(body["outputs"], expected, rtol=1e-6, atol=1e-7)
    named = call(
        f"{server}/v1/models/digits/versions/1:predict", {"inputs": {"inputs": x.tolist()}}
    )
    np.testing.assert_allclose(named[1]["outputs"], expected, rtol=1e-6, atol=1e-7)


def test_a_signature_with_two_outputs(server, exported):
    _, x, signatures = exported
    expected = in_process(signatures, x, "classes")
    url = f"{server}/v1/models/digits:predict"
    code, body, _ = call(url, {"signature_name": "classes", "instances": x[:3].tolist()})
    assert code == 200
    assert [row["classes"] for row in body["predictions"]] == expected["classes"][:3].tolist()
    np.testing.assert_allclose(
        [r["scores"] for r in body["predictions"]], expected["scores"][:3], rtol=1e-6
    )
    code, body, _ = call(url, {"signature_name": "classes", "inputs": x.tolist()})
    assert body["outputs"]["classes"] == expected["classes"].tolist()


BAD_REQUESTS = [
    (b"{not json", 400, "JSON Parse error"),
    (b"\xff\xfe", 400, "JSON Parse error"),
    (b"[1, 2]", 400, "JSON object"),
    ({"signature_name": "nope", "instances": [[0.0]]}, 400, "nope"),
    ({}, 400, "exactly one of"),
    ({"instances": [], "inputs": []}, 400, "exactly one of"),
    ({"instances": []}, 400, "non-empty"),
    ({"instances": [[1.0, 2.0]]}, 400, "shape"),
    ({"inputs": np.zeros((2, 8, 8)).tolist()}, 400, "shape"),
    ({"instances": [np.full((8, 8, 1), "x").tolist()]}, 400, "numbers"),
    ({"instances": [[[1.0]], [[1.0, 2.0]]]}, 400, "rectangular"),
    ({"instances": [{"pixels": np.zeros((8, 8, 1)).tolist()}]}, 400, "inputs"),
    ({"inputs": {"pixels": []}}, 400, "inputs"),
]


@pytest.mark.parametrize("body, code, message", BAD_REQUESTS)
def test_bad_requests_get_400_and_the_server_keeps_serving(server, body, code, message):
    status, answer, content_type = call(f"{server}/v1/models/digits:predict", body, "POST")
    assert (status, content_type) == (code, "application/json")
    assert list(answer) == ["error"] and message in answer["error"], answer
    assert call(f"{server}/v1/models/digits")[0] == 200


@pytest.mark.parametrize(
    "path, method, code",
    [
        ("/v1/models/other", "GET", 404),
        ("/v1/models/other:predict", "POST", 404),
        ("/v1/models/digits/versions/7", "GET", 404),
        ("/v1/models/digits/versions/7:predict", "POST", 404),
        ("/v1/models/digits/versions/one", "GET", 400),
        ("/v1/models/digits:predict", "GET", 405),
        ("/v1/models/digits", "POST", 405),
        ("/v1/models/digits:classify", "POST", 400),
        ("/v2/anything", "GET", 404),
    ],
)
def test_unknown_models_versions_and_routes(server, path, method, code):
    body = b'{"instances": [[0]]}' if method == "POST" else None
    status, answer, content_type = call(f"{server}{path}", body, method)
    assert (status, content_type) == (code, "application/json") and "error" in answer


def test_a_body_over_the_limit_is_refused_with_413(server, exported):
    _, x, _ = exported
    big = json.dumps({"instances": np.repeat(x, 40, axis=0).tolist()}).encode()
    assert len(big) > LIMIT
    status, answer, _ = call(f"{server}/v1/models/digits:predict", big)
    assert status == 413 and "error" in answer
    assert call(f"{server}/v1/models/digits:predict", {"instances": x[:1].tolist()})[0] == 200


def test_concurrent_clients_all_get_their_own_answers(server, exported):
    _, _, signatures = exported
    rng = np.random.default_rng(0)
    batches = [
        rng.uniform(size=(int(rng.integers(1, 5)), 8, 8, 1)).astype("float32") for _ in range(64)
    ]

    def ask(x):
        return call(f"{server}/v1/models/digits:predict", {"instances": x.tolist()})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, batches))
    for x, (status, body, _) in zip(batches, answers, strict=True):
        assert status == 200
        np.testing.assert_allclose(
            body["predictions"], in_process(signatures, x)["probabilities"], rtol=1e-6, atol=1e-7
        )


def test_a_new_version_is_picked_up_and_sigterm_stops_the_server(exported, tmp_path):
    base = tmp_path / "digits"
    base.mkdir()
    (base / "1").symlink_to(exported[0] / "1", target_is_directory=True)
    process, url = start_server(base, "--file_system_poll_wait_seconds", "0.2")
    try:
        keras.utils.set_random_seed(1)
        other = keras.Sequential(
            [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
        )
        path = export.export(other, tmp_path, "digits", data.Task(data.CLASSES, 10))
        assert path.name == "2"
        deadline = time.monotonic() + 30
        while call(f"{url}/v1/models/digits")[1]["model_version_status"][0]["version"] != "2":
            assert time.monotonic() < deadline, "version 2 was not picked up"
            time.sleep(0.2)
        x = exported[1][:4]
        body = call(f"{url}/v1/models/digits:predict", {"instances": x.tolist()})[1]
        np.testing.assert_allclose(body["predictions"], tf.nn.softmax(other(x)), rtol=1e-5)
        assert call(f"{url}/v1/models/digits/versions/1")[0] == 404  # only the latest is served
    finally:
        code, rest = stop(process)
    assert code == 0 and "stopped" in rest


def run_serve(*argv):
    return subprocess.run(
        [sys.executable, "-m", "tfnn.serving.server", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model_base_path", "/no/such/folder"], "--model_base_path"),
        (["--model_base_path", ".", "--rest_api_port", "70000"], "--rest_api_port"),
        (["--model_base_path", ".", "--file_system_poll_wait_seconds", "-1"], "poll"),
        ([], "--model_base_path"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message):
    result = run_serve(*argv)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_a_base_path_without_versions_or_a_taken_port_exits_2(exported, tmp_path):
    result = run_serve("--model_base_path", str(tmp_path))
    assert result.returncode == 2 and "version" in result.stderr.splitlines()[-1]
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve("--model_base_path", str(exported[0]), "--rest_api_port", str(port))
    assert result.returncode == 2 and "cannot listen" in result.stderr.splitlines()[-1]


def test_the_console_script_is_installed():
    script = pathlib.Path(sys.executable).parent / "tfnn-serve"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "--model_base_path" in result.stdout and "--rest_api_port" in result.stdout
