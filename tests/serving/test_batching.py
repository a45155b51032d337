"""Server-side batching in process: merged calls give each caller exactly its own rows."""

import concurrent.futures
import threading

import numpy as np
import pytest

from tfnn.serving.batching import Batcher
from tfnn.serving.repository import Servable


class Recording:
    """A servable whose `run` computes 3x + row sums and records every call's row count; the
    first call waits for `release`, so the rest of the requests queue behind it."""

    def __init__(self):
        self.calls = []
        self.release = threading.Event()

    def run(self, signature_name, arrays):
        if not self.calls:
            self.release.wait(timeout=30)
        x = arrays["x"]
        self.calls.append((signature_name, len(x)))
        if signature_name == "fail":
            raise RuntimeError("the model failed")
        return {"y": 3 * x, "total": x.reshape(len(x), -1).sum(axis=1)}


def run_concurrently(batcher, servable, requests, signature="s"):
    """Runs every request (a dict of arrays) from its own thread; their outputs in order.
    A `Recording` servable is released once every caller has had time to queue."""
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(batcher.run, servable, signature, r) for r in requests]
        threading.Event().wait(0.5)
        if isinstance(servable, Recording):
            servable.release.set()
        return [f.result(timeout=30) for f in futures]


def test_queued_requests_are_merged_up_to_the_batch_size_and_split_back_in_order():
    servable, batcher = Recording(), Batcher(max_batch_size=6, num_batch_threads=1)
    rng = np.random.default_rng(0)
    requests = [{"x": rng.normal(size=(n, 2)).astype("float32")} for n in [1, 2, 3, 1, 2, 4, 9]]
    outputs = run_concurrently(batcher, servable, requests)
    batcher.stop()
    for request, output in zip(requests, outputs, strict=True):
        np.testing.assert_array_equal(output["y"], 3 * request["x"])
        np.testing.assert_array_equal(output["total"], request["x"].sum(axis=1))
    sizes = [rows for _, rows in servable.calls]
    assert sum(sizes) == 22 and max(sizes) == 9  # the 9-row request runs alone, unsplit
    assert all(rows <= 6 for rows in sizes if rows != 9)
    assert len(sizes) < len(requests)  # something was merged


def test_requests_of_different_shapes_are_never_merged():
    servable, batcher = Recording(), Batcher(max_batch_size=64)
    requests = [{"x": np.ones((1, 2), "float32")}, {"x": np.ones((1, 3), "float32")}] * 3
    outputs = run_concurrently(batcher, servable, requests)
    for request, output in zip(requests, outputs, strict=True):
        np.testing.assert_array_equal(output["y"], 3 * request["x"])
    batcher.stop()


def test_a_failed_model_call_fails_every_request_in_it_and_the_batcher_goes_on():
    servable, batcher = Recording(), Batcher(max_batch_size=64)
    requests = [{"x": np.ones((1, 2), "float32")}] * 3
    with pytest.raises(RuntimeError, match="the model failed"):
        run_concurrently(batcher, servable, requests, signature="fail")
    assert batcher.run(servable, "s", requests[0])["y"].tolist() == [[3.0, 3.0]]
    batcher.stop()


def test_stop_finishes_queued_requests_and_refuses_new_ones():
    servable, batcher = Recording(), Batcher(max_batch_size=64, batch_timeout_micros=10**7)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(batcher.run, servable, "s", {"x": np.ones((2, 2), "float32")})
        servable.release.set()
        threading.Event().wait(0.2)
        batcher.stop()  # does not wait the 10 s timeout
        assert future.result(timeout=30)["y"].tolist() == [[3.0, 3.0]] * 2
    with pytest.raises(RuntimeError, match="stopped"):
        batcher.run(servable, "s", {"x": np.ones((1, 2), "float32")})


def test_batched_savedmodel_outputs_equal_unbatched_calls_bit_for_bit(linear_base, kit):
    servable = Servable(linear_base / "1", 1)
    rng = np.random.default_rng(1)
    requests = [
        {"inputs": rng.integers(-9, 9, size=(int(rng.integers(1, 5)), 4)).astype("float32")}
        for _ in range(24)
    ]
    sizes = []
    batcher = Batcher(max_batch_size=16, batch_timeout_micros=200_000, on_batch=sizes.append)
    outputs = run_concurrently(batcher, servable, requests, signature="serving_default")
    batcher.stop()
    for request, output in zip(requests, outputs, strict=True):
        alone = servable.run("serving_default", request)["values"]
        np.testing.assert_array_equal(output["values"], alone)
        np.testing.assert_array_equal(alone, kit.expected(request["inputs"]))
    assert sum(sizes) == sum(len(r["inputs"]) for r in requests) and len(sizes) < len(requests)
