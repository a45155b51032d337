"""Server-side batching in process: merged calls give each caller exactly its own rows."""

import collections
import concurrent.futures
import signal
import threading

import numpy as np
import pytest

from tfnn.serving.batching import Batcher, _Task
from tfnn.serving.repository import Servable

WAIT = 10  # the longest any wait here takes, so a batcher that hangs fails a test in seconds


@pytest.fixture(autouse=True)
def no_hang():
    """A test still running after 3 * WAIT seconds raises TimeoutError in the main thread, where a
    call that never returns (`Batcher.run`, `Batcher.stop`) would otherwise wait forever."""

    def hung(signum, frame):
        raise TimeoutError(f"the test was still running after {3 * WAIT} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(3 * WAIT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


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
            self.release.wait(timeout=WAIT)
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
        return [f.result(timeout=WAIT) for f in futures]


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
        assert future.result(timeout=WAIT)["y"].tolist() == [[3.0, 3.0]] * 2
    with pytest.raises(RuntimeError, match="^the batcher is stopped$"):
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


@pytest.mark.parametrize(
    "options, allowed",
    [
        ({"max_batch_size": 1}, True),
        ({"max_batch_size": 0}, False),
        ({"batch_timeout_micros": 0}, True),
        ({"batch_timeout_micros": -1}, False),
        ({"num_batch_threads": 1}, True),
        ({"num_batch_threads": 0}, False),
    ],
)
def test_each_setting_at_its_lowest_allowed_value_and_one_below(options, allowed):
    if not allowed:
        with pytest.raises(ValueError, match=r"Expected max_batch_size >= 1, .* Received: "):
            Batcher(**options)
        return
    servable, batcher = Recording(), Batcher(**options)
    servable.release.set()
    assert batcher.run(servable, "s", {"x": np.ones((1, 2), "float32")})["y"].tolist() == [[3, 3]]
    batcher.stop()


def test_the_error_names_every_value_received():
    with pytest.raises(ValueError, match=r"Received: 0, 5, 2$"):
        Batcher(max_batch_size=0, batch_timeout_micros=5, num_batch_threads=2)


def test_the_defaults_are_tensorflow_servings_and_tfnn_serves():
    batcher = Batcher()
    batcher.stop()
    assert (batcher.max_batch_size, batcher.timeout, batcher._most_leaders) == (64, 0.0, 1)


def test_two_batch_threads_run_two_batches_at_once():
    barrier = threading.Barrier(2, timeout=WAIT)

    class Meeting:
        def run(self, signature_name, arrays):
            barrier.wait()  # BrokenBarrierError unless both calls are under way at once
            return {"y": arrays["x"]}

    batcher = Batcher(num_batch_threads=2)
    requests = [{"x": np.ones((1, 2), "float32")}, {"x": np.ones((1, 3), "float32")}]
    outputs = run_concurrently(batcher, Meeting(), requests)
    batcher.stop()
    assert [o["y"].shape for o in outputs] == [(1, 2), (1, 3)]


def test_a_request_without_a_batch_axis_runs_alone_at_once():
    class Scalar:
        def run(self, signature_name, arrays):
            return {signature_name: arrays["x"] * 2}

    batcher = Batcher(batch_timeout_micros=10**8)  # a queued request would wait 100 s
    batcher.stop()  # and a stopped batcher refuses queued ones: this one is not queued
    assert batcher.run(Scalar(), "s", {"x": np.float32(4)}) == {"s": 8}  # for its signature


def test_a_queue_holding_exactly_max_batch_size_rows_runs_without_waiting_for_the_timeout():
    servable, batcher = Recording(), Batcher(max_batch_size=4, batch_timeout_micros=10**8)
    servable.release.set()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(batcher.run, servable, "s", {"x": np.ones((4, 2), "float32")})
        assert future.result(timeout=WAIT)["y"].shape == (4, 2)  # not after 100 s
    batcher.stop()


def run_in_order(batcher, servable, requests):
    """Runs (signature, request) pairs from threads started 0.1 s apart, so they queue in this
    order behind the first, which waits for `servable.release`; their outputs in order."""
    with concurrent.futures.ThreadPoolExecutor(len(requests)) as pool:
        futures = []
        for signature, request in requests:
            futures.append(pool.submit(batcher.run, servable, signature, request))
            threading.Event().wait(0.1)
        servable.release.set()
        return [future.result(timeout=WAIT) for future in futures]


def test_requests_filling_the_batch_exactly_are_merged_and_one_row_more_is_not():
    servable, batcher = Recording(), Batcher(max_batch_size=4)
    requests = [("s", {"x": np.ones((n, 2), "float32")}) for n in (1, 2, 2, 3, 2)]
    run_in_order(batcher, servable, requests)
    batcher.stop()
    # the first runs alone (while the rest queue); then 2 + 2 = 4 fit, 4 + 3 does not; 3 + 2
    assert [rows for _, rows in servable.calls] == [1, 4, 3, 2]


def test_requests_to_other_signatures_or_dtypes_are_never_merged():
    servable, batcher = Recording(), Batcher(max_batch_size=64)
    requests = [("s", {"x": np.ones((1, 2), "float32")})] * 2
    requests += [("t", {"x": np.ones((1, 2), "float32")}), ("s", {"x": np.ones((1, 2))})]
    outputs = run_in_order(batcher, servable, requests)
    batcher.stop()
    assert [rows for _, rows in servable.calls] == [1, 1, 1, 1]
    assert outputs[3]["y"].dtype == np.float64


def test_a_queue_that_still_holds_requests_after_a_batch_goes_behind_the_others():
    servable, batcher = Recording(), Batcher(max_batch_size=2)
    one_row = {"x": np.ones((1, 2), "float32")}
    run_in_order(batcher, servable, [(s, one_row) for s in ["z", "a", "a", "a", "b"]])
    batcher.stop()
    # two of the three "a" requests, then "b" (queued before the third "a" ran), then "a"
    assert servable.calls == [("z", 1), ("a", 2), ("b", 1), ("a", 1)]


class Fixed(Recording):
    """A `Recording` whose output `y` is the same three values whatever the batch size."""

    def run(self, signature_name, arrays):
        return {**super().run(signature_name, arrays), "y": np.arange(3.0)}


def test_an_output_without_the_batch_axis_is_fine_alone_and_refused_when_merged():
    servable, batcher = Fixed(), Batcher(max_batch_size=64)
    servable.release.set()
    alone = batcher.run(servable, "s", {"x": np.ones((2, 2))})  # runs alone: as it is
    assert alone["y"].tolist() == [0, 1, 2]
    requests = [{"x": np.ones((1, 2))}] * 3  # the last two are merged: 2 rows, 3 values
    with pytest.raises(
        ValueError, match="^batching needs every output to have the batch axis first$"
    ):
        run_concurrently(batcher, Fixed(), requests)
    batcher.stop()


def test_a_scalar_output_of_a_merged_call_is_refused():
    class ScalarOut:
        def __init__(self):
            self.calls = 0

        def run(self, signature_name, arrays):
            self.calls += 1
            if self.calls == 1:
                threading.Event().wait(0.5)
            return {"y": np.float32(len(arrays["x"]))}

    batcher = Batcher(max_batch_size=64)
    requests = [{"x": np.ones((1, 2))}] * 3
    with pytest.raises(ValueError, match="batch axis first"):
        run_concurrently(batcher, ScalarOut(), requests)
    batcher.stop()


class Due:
    """`Batcher._due` on queues set up by hand: no batch thread takes anything."""

    def __init__(self, max_batch_size, timeout_micros):
        self.batcher = Batcher(max_batch_size, timeout_micros)
        self.batcher.stop()
        self.batcher._stopped = False

    def queue(self, key, *arrivals_and_rows):
        tasks = []
        for arrived, rows in arrivals_and_rows:
            task = _Task({"x": np.ones((rows, 1))})
            task.arrived = arrived
            tasks.append(task)
        self.batcher._queues[key] = collections.deque(tasks)

    def __call__(self, now):
        return self.batcher._due(now)


def test_a_queue_is_due_when_its_oldest_request_has_waited_exactly_the_timeout():
    due = Due(max_batch_size=8, timeout_micros=250_000)
    due.queue("a", (10.0, 1), (10.1, 1))
    assert due(10.2) == (None, pytest.approx(0.05))
    assert due(10.25) == ("a", 0)


def test_a_queue_is_due_at_once_when_its_rows_reach_max_batch_size():
    due = Due(max_batch_size=4, timeout_micros=10**6)
    due.queue("a", (10.0, 1), (10.0, 2))
    assert due(10.0) == (None, pytest.approx(1.0))
    due.queue("a", (10.0, 1), (10.0, 3))
    assert due(10.0) == ("a", 0)


def test_the_wait_is_until_the_earliest_queue_is_due():
    due = Due(max_batch_size=8, timeout_micros=10**6)
    due.queue("late", (10.5, 1))
    due.queue("early", (10.2, 1))
    assert due(10.4) == (None, pytest.approx(0.8))
    due.queue("earliest", (10.0, 1))
    assert due(10.4) == (None, pytest.approx(0.6))
    assert due(11.0) == ("earliest", 0)


def test_every_queue_is_due_once_the_batcher_stops():
    due = Due(max_batch_size=8, timeout_micros=10**6)
    due.queue("a", (10.0, 1))
    due.batcher._stopped = True
    assert due(10.0) == ("a", 0)


def test_no_queue_no_wait():
    assert Due(max_batch_size=8, timeout_micros=0)(10.0) == (None, None)


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


def test_a_lone_request_is_neither_queued_nor_led_but_counted(monkeypatch):
    """Catches a lone caller sent through the queue and the lead loop (a task, its key, a
    condition and an event for a request nobody can join: one client's overhead rose by
    ~0.08 ms over HTTP), its batch not recorded, or its lead not given up (`stop` waits)."""
    made, rows = [], []
    monkeypatch.setattr("tfnn.serving.batching._Task", lambda arrays: made.append(arrays))
    servable, batcher = Recording(), Batcher(max_batch_size=64, on_batch=rows.append)
    servable.release.set()
    output = batcher.run(servable, "s", {"x": np.ones((3, 2), "float32")})
    assert output["y"].shape == (3, 2) and made == [] and rows == [3]
    batcher.stop()  # returns: no leader left


def test_a_lone_request_that_fails_raises_and_leaves_the_batcher_working():
    """Catches the lead kept after a lone call failed: the next caller would wait forever."""
    servable, batcher = Recording(), Batcher(max_batch_size=64)
    servable.release.set()
    with pytest.raises(RuntimeError, match="the model failed"):
        batcher.run(servable, "fail", {"x": np.ones((1, 2), "float32")})
    assert batcher.run(servable, "s", {"x": np.ones((1, 2), "float32")})["y"].shape == (1, 2)
    batcher.stop()


def test_with_a_timeout_a_lone_request_waits_for_company():
    """Catches the lone caller's shortcut taken with a timeout above 0, where a request waits
    up to it for others to join."""
    servable, batcher = Recording(), Batcher(max_batch_size=64, batch_timeout_micros=300_000)
    servable.release.set()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.run, servable, "s", {"x": np.ones((1, 2), "float32")})
        threading.Event().wait(0.1)
        second = pool.submit(batcher.run, servable, "s", {"x": np.ones((2, 2), "float32")})
        assert first.result(timeout=WAIT)["y"].shape == (1, 2) and second.result(timeout=WAIT)
    assert [rows for _, rows in servable.calls] == [3]  # joined in one call
    batcher.stop()


def test_a_request_arriving_while_a_lone_one_runs_is_led_after_it():
    """Catches the lead not handed from a lone caller to the one that queued meanwhile."""
    servable, batcher = Recording(), Batcher(max_batch_size=64)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher.run, servable, "s", {"x": np.ones((1, 2), "float32")})
        threading.Event().wait(0.3)  # the first, alone, runs and holds until released
        second = pool.submit(batcher.run, servable, "s", {"x": np.ones((2, 2), "float32")})
        threading.Event().wait(0.3)
        assert not second.done()
        servable.release.set()
        assert second.result(timeout=WAIT)["y"].shape == (2, 2) and first.result(timeout=WAIT)
    assert [rows for _, rows in servable.calls] == [1, 2]
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
        outputs = [f.result(timeout=WAIT) for f in futures]
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
        assert first.result(timeout=WAIT)["y"].shape == (1, 2)
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
        assert second.result(timeout=WAIT)["y"].shape == (2, 2) and first.result(timeout=WAIT)
    batcher.stop()


def test_the_refusal_of_settings_is_the_whole_message():
    """Catches the message's words changed ("XXExpected max_batch_size >= 1, …XX"): it is
    matched whole, not searched for."""
    with pytest.raises(ValueError) as error:
        Batcher(max_batch_size=0)
    assert str(error.value) == (
        "Expected max_batch_size >= 1, batch_timeout_micros >= 0 and num_batch_threads >= 1. "
        "Received: 0, 0, 1"
    )


def test_the_wait_is_until_the_earliest_queue_is_due_whatever_the_queues_order():
    """Catches `wait = left if wait is None or True else …`: the wait is the least over the
    queues, not the last queue's (here the earliest queue is first)."""
    due = Due(max_batch_size=8, timeout_micros=10**6)
    due.queue("early", (10.2, 1))
    due.queue("late", (10.5, 1))
    assert due(10.4) == (None, pytest.approx(0.8))


def test_leaders_are_counted_up_to_the_batch_threads_and_no_further():
    """Three requests queued for three batches with two batch threads: the first two lead,
    the third waits for a lead. Catches the leaders' count set to 1 instead of raised by 1
    (a third leader past the cap, and a count that reaches 0 while one still leads)."""
    batcher = Batcher(batch_timeout_micros=1000, num_batch_threads=2)
    with batcher._ready:
        tasks = [
            batcher._queued(f"servable-{i}", "serving_default", {"x": np.zeros((1, 2))})
            for i in range(3)
        ]
    assert [task.lead for task in tasks] == [True, True, False]
    assert batcher._leaders == 2
