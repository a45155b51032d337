"""SavedModels small enough to write in a test, and an HTTP client for the server's tests."""

import json
import signal
import socket
import subprocess
import time
import types
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

# Integer weights and inputs keep every product and sum exact in float32, so outputs do not
# depend on how the kernels order the arithmetic (and batched equals unbatched bit for bit).
WEIGHTS = np.array([[1, -2, 3], [0, 1, -1], [2, 0, 1], [-1, 1, 0]], dtype="float32")


class Linear(tf.Module):
    """values = x W + offset, and the index of the largest value with it."""

    def __init__(self, offset=0.0):
        super().__init__()
        self.w = tf.Variable(WEIGHTS)
        self.offset = tf.Variable(offset)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="inputs")])
    def serve(self, inputs):
        return {"values": tf.matmul(inputs, self.w) + self.offset}

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="inputs")])
    def classes(self, inputs):
        values = tf.matmul(inputs, self.w) + self.offset
        return {"classes": tf.argmax(values, axis=1), "scores": tf.reduce_max(values, axis=1)}


def expected(x, offset=0.0):
    return np.asarray(x, dtype="float32") @ WEIGHTS + np.float32(offset)


def write_linear(path, offset=0.0):
    """Saves `Linear(offset)` as a SavedModel at `path`."""
    module = Linear(offset)
    signatures = {"serving_default": module.serve, "classes": module.classes}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def call(url, body=None, method=None, headers=None):
    """(HTTP status, parsed JSON body, content type)."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers["Content-Type"]


def raw(url, data, timeout=20):
    """Everything the server sends back on a fresh connection after `data`, until it closes."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(data)
        received = b""
        while chunk := connection.recv(2**16):
            received += chunk
    return received


def stop(process):
    """SIGTERM; returns (exit code, everything the server wrote to stderr)."""
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    deadline = time.monotonic() + 5
    while not process.log[-1].startswith("tfnn-serve: stopped") and time.monotonic() < deadline:
        time.sleep(0.05)  # the reader thread catches up with the last lines
    return code, "".join(process.log)


@pytest.fixture(scope="session")
def kit():
    """The helpers above, for the test modules."""
    return types.SimpleNamespace(
        write_linear=write_linear, expected=expected, call=call, raw=raw, stop=stop
    )


@pytest.fixture(scope="session")
def linear_base(tmp_path_factory):
    """A base path with version 1 of `Linear(0)`."""
    base = tmp_path_factory.mktemp("linear") / "linear"
    write_linear(base / "1")
    return base
