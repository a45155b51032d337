"""Server-side batching in process: merged calls give each caller exactly its own rows."""

import concurrent.futures
import threading

import numpy as np
import pytest

from tfnn.serving.batching import Batcher
from tfnn.serving.repository import Servable


class Recording:
    """A servable whose `run` computes 3x + row sums and records every call's row count (and
    in `threads` the thread that made it); the first call waits for `release`, so the rest of
    the requests queue behind it."""

    def __init__(self):
        self.calls = []
        self.threads = []
        self.release = threading.Event()

    def run(self, signature_name, arrays):
        if not self.calls and not self.threads:
            self.threads.append(threading.get_ident())
            self.release.wait(timeout=30)
        else:
            self.threads.append(threading.get_ident())
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


def test_a_lone_request_runs_at_once_on_the_callers_own_thread():
    """Catches a batch thread (a hand-off to it and back for every request, ~50 µs each on
    two CPUs) or a lone request waiting for company it will not get."""
    servable, batcher = Recording(), Batcher(max_batch_size=64)
    servable.release.set()
    for rows in (1, 3):
        output = batcher.run(servable, "s", {"x": np.ones((rows, 2), "float32")})
        assert output["y"].tolist() == [[3.0, 3.0]] * rows
    assert servable.threads == [threading.get_ident()] * 2
    assert servable.calls == [("s", 1), ("s", 3)]
    batcher.stop()


def test_the_batches_queued_behind_a_running_one_are_run_by_their_callers():
    """Catches a lead never handed on (the queued requests wait forever), handed to a caller
    already answered, or a batch run by a thread that is none of the callers."""
    servable, batcher = Recording(), Batcher(max_batch_size=2)
    requests = [{"x": np.full((1, 2), i, "float32")} for i in range(5)]
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        callers = []

        def call(request):
            callers.append(threading.get_ident())
            return batcher.run(servable, "s", request)

        futures = [pool.submit(call, r) for r in requests]
        threading.Event().wait(0.5)
        servable.release.set()
        outputs = [f.result(timeout=30) for f in futures]
    batcher.stop()
    assert [o["y"][0, 0] for o in outputs] == [0.0, 3.0, 6.0, 9.0, 12.0]
    assert [rows for _, rows in servable.calls] == [1, 2, 2]  # the first alone, then pairs
    assert set(servable.threads) <= set(callers)


def test_two_batch_threads_let_a_second_caller_lead_while_the_first_batch_runs():
    """Catches `num_batch_threads` ignored: with two, a request queued behind a running
    batch runs beside it rather than after it."""
    servable, batcher = Recording(), Batcher(max_batch_size=64, num_batch_threads=2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.run, servable, "s", {"x": np.ones((1, 2), "float32")})
        threading.Event().wait(0.3)  # the first call holds its batch until released
        second = batcher.run(servable, "s", {"x": np.ones((2, 2), "float32")})
        assert second["y"].shape == (2, 2) and not first.done()
        servable.release.set()
        assert first.result(timeout=30)["y"].shape == (1, 2)
    batcher.stop()


def test_with_one_batch_thread_a_queued_request_waits_for_the_running_batch():
    """Catches a second leader admitted past `num_batch_threads` (1): the queued request is
    answered only after the first batch ends."""
    servable, batcher = Recording(), Batcher(max_batch_size=64, num_batch_threads=1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.run, servable, "s", {"x": np.ones((1, 2), "float32")})
        threading.Event().wait(0.3)
        second = pool.submit(batcher.run, servable, "s", {"x": np.ones((2, 2), "float32")})
        threading.Event().wait(0.3)
        assert not second.done()
        servable.release.set()
        assert second.result(timeout=30)["y"].shape == (2, 2) and first.result(timeout=30)
    batcher.stop()
