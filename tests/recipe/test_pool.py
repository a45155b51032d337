"""tfnn.recipe.pool: items on spawned workers, their faults, the parent's stop, the worker
count. The work functions are tests/recipe/pool_work.py's (no TensorFlow: each worker starts
in a fraction of a second)."""

import contextlib
import ctypes
import functools
import logging
import multiprocessing
import os
import pathlib
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import traceback

import pytest

from tfnn.recipe import errors, pool

HERE = pathlib.Path(__file__).parent


@pytest.fixture
def work(monkeypatch):
    """tests/recipe/pool_work.py, importable here and in the spawned workers; two CPUs and
    memory for many workers, whatever the machine has."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    monkeypatch.setattr(pool, "memory_available", lambda: 64 * pool.WORKER_BYTES)
    import pool_work

    return pool_work


def test_items_run_on_two_workers_and_results_come_back_by_name(work):
    """Catches results paired with the wrong item, or every item sent to one worker."""
    items = [pool.Item(f"item-{i}", work.pid, {"value": i * i}) for i in range(4)]
    results = pool.run(items, workers=2, start=None)
    assert list(results) == [f"item-{i}" for i in range(4)]
    assert [value for value, _ in results.values()] == [0, 1, 4, 9]
    pids = {pid for _, pid in results.values()}
    assert len(pids) == 2 and os.getpid() not in pids


def test_one_worker_runs_the_items_here_in_order(work):
    """Catches `--workers 1` starting a process instead of today's in-process loop."""
    results = pool.run(
        [pool.Item(f"item-{i}", work.pid, {"value": i}) for i in range(2)], workers=1
    )
    assert [pid for _, pid in results.values()] == [os.getpid()] * 2


def test_a_failed_or_killed_item_fails_alone_and_the_others_finish(work, tmp_path):
    """Catches a dead worker breaking the whole pool (concurrent.futures' BrokenProcessPool),
    a lost item after a death (no new worker), or a failure without the error's last line."""
    kept = []
    items = [
        pool.Item("killed", work.die),
        pool.Item("raises", work.fail, {"message": "bad thing"}, log=str(tmp_path / "raises.log")),
        *(pool.Item(f"item-{i}", work.pid, {"value": i}) for i in range(3)),
    ]
    with pytest.raises(errors.ItemsFailed) as caught:
        pool.run(items, workers=2, start=None, on_result=lambda name, _: kept.append(name))
    assert caught.value.failures == {
        "killed": "worker killed by SIGKILL",
        "raises": "ValueError: bad thing",
    }
    assert str(caught.value).splitlines() == [
        "killed failed: worker killed by SIGKILL",
        "raises failed: ValueError: bad thing",
    ]
    assert sorted(kept) == ["item-0", "item-1", "item-2"]
    assert "Traceback" in (tmp_path / "raises.log").read_text()


def test_an_items_output_goes_to_its_log_not_the_terminal(work, tmp_path, capfd):
    """Catches workers printing into the terminal (N workers' lines interleaved)."""
    items = [
        pool.Item(f"say-{i}", work.say, {"text": f"line {i}"}, log=str(tmp_path / f"{i}.log"))
        for i in range(2)
    ]
    pool.run(items, workers=2, start=None)
    assert "line" not in capfd.readouterr().err + capfd.readouterr().out
    assert [(tmp_path / f"{i}.log").read_text() for i in range(2)] == ["line 0\n", "line 1\n"]


def test_one_line_per_finished_item(work, caplog):
    """Catches finished items not reported, or reported without their figure."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe.pool")
    items = [pool.Item(f"item-{i}", work.pid, {"value": i}) for i in range(2)]
    pool.run(items, workers=2, start=None, describe=lambda result: f"value {result[0]}")
    assert sorted(caplog.messages) == ["item-0: value 0", "item-1: value 1"]


def test_a_pool_keeps_its_workers_for_items_submitted_later(work):
    """Catches a worker started for every item or every round (each a TensorFlow import in
    real use), or an item submitted while another runs left waiting for it: the second round
    runs on the first round's two processes."""
    with pool.Pool(2, start=None) as running:
        for i in range(2):
            running.submit(pool.Item(f"first-{i}", work.pid, {"value": i}))
        first = {running.next_outcome()[2][1] for _ in range(2)}
        assert running.next_outcome() is None  # nothing queued or running
        for i in range(2):
            running.submit(pool.Item(f"second-{i}", work.pid, {"value": i}))
        second = {running.next_outcome()[2][1] for _ in range(2)}
    assert len(first) == 2 and second == first


def test_an_item_submitted_while_one_runs_starts_a_second_worker(work):
    """Catches workers started only for the items queued at once: an item submitted while
    the first runs gets a worker of its own (the two overlap), up to the pool's count."""
    with pool.Pool(2, start=None) as running:
        running.submit(pool.Item("a", work.pid, {"value": 0}))
        running.submit(pool.Item("b", work.pid, {"value": 1}))
        running.submit(pool.Item("c", work.pid, {"value": 2}))
        outcomes = {}
        while (outcome := running.next_outcome()) is not None:
            name, error, (value, pid) = outcome
            outcomes[name] = (error, value, pid)
    assert {name: (error, value) for name, (error, value, _) in outcomes.items()} == {
        "a": (None, 0),
        "b": (None, 1),
        "c": (None, 2),
    }
    assert len({pid for _, _, pid in outcomes.values()}) == 2  # two workers: the count, no more


def test_a_failed_item_is_an_outcome_and_the_pool_goes_on(work):
    """Catches a failure raised out of the pool (the other items lost) or a dead worker's
    item never answered: each failure is (name, last line, None), and a later item runs."""
    with pool.Pool(2, start=None) as running:
        running.submit(pool.Item("killed", work.die))
        running.submit(pool.Item("raises", work.fail, {"message": "bad thing"}))
        failed = sorted(running.next_outcome() for _ in range(2))
        running.submit(pool.Item("after", work.pid, {"value": 7}))
        name, error, (value, _) = running.next_outcome()
    assert failed == [
        ("killed", "worker killed by SIGKILL", None),
        ("raises", "ValueError: bad thing", None),
    ]
    assert (name, error, value) == ("after", None, 7)


def test_a_pool_refuses_a_second_item_of_one_name_and_a_count_below_one(work):
    """Catches two items of one name (their results would overwrite each other) accepted
    across submits, and a pool of zero workers that would never run anything (or its refusal
    naming another value than `workers`)."""
    with pool.Pool(1, start=None) as running:
        running.submit(pool.Item("same", work.say, {"text": "x"}))
        with pytest.raises(ValueError, match="a second item 'same'"):
            running.submit(pool.Item("same", work.say, {"text": "y"}))
        assert running.next_outcome() == ("same", None, "x")
        assert running.next_outcome() is None
    with pytest.raises(ValueError, match=r"Received: workers=0$"):
        pool.Pool(0)


@pytest.mark.parametrize(
    "workers, items, expected",
    [
        (None, 2, 2),  # one a CPU: at the CPUs
        (None, 3, 2),  # past them
        (None, 1, 1),  # capped by the items
        (2, 2, 2),
        (3, 2, 2),  # more workers than items
        (4, 8, 2),  # more than the CPUs
        (1, 8, 1),
    ],
)
def test_workers_are_capped_by_the_cpus_and_the_items(workers, items, expected):
    """Catches the default ignoring the CPUs, or a count above the items or CPUs."""
    count, _ = pool.worker_count(workers, items=items, available_cpus=2, available_bytes=2**40)
    assert count == expected


@pytest.mark.parametrize("workers, expected", [(None, 2), (1, 1), (3, 2)])
def test_items_not_known_yet_cap_nothing_but_the_cpus(workers, expected):
    """Catches `items=None` (a pool whose items come as it runs) read as zero items (one
    worker) or as a cap of its own."""
    count, note = pool.worker_count(workers, items=None, available_cpus=2, available_bytes=2**40)
    assert count == expected
    assert (note is not None) == (workers == 3)


def test_asking_for_more_workers_than_cpus_says_so_in_one_line():
    """At the limit (as many items as CPUs) the items cap the count anyway: nothing to say.
    Catches `items > available_cpus` made `>=`."""
    assert pool.worker_count(4, items=8, available_cpus=2, available_bytes=2**40) == (
        2,
        "4 workers asked, 2 CPUs: running 2",
    )
    assert pool.worker_count(2, items=8, available_cpus=2, available_bytes=2**40) == (2, None)
    assert pool.worker_count(4, items=2, available_cpus=2, available_bytes=2**40) == (2, None)


@pytest.mark.parametrize(
    "available, expected",
    [
        (3 * pool.WORKER_BYTES, 3),  # at the limit: three fit
        (3 * pool.WORKER_BYTES - 1, 2),  # past it
        (pool.WORKER_BYTES // 2, 1),  # never none
    ],
)
def test_the_workers_fit_in_the_memory_available(available, expected):
    """Catches the memory cap ignored, off by one, or down to zero workers."""
    count, note = pool.worker_count(None, items=8, available_cpus=3, available_bytes=available)
    assert count == expected
    assert (note is None) == (expected == 3)
    if note:
        gib = available / 2**30
        assert note == (
            f"running {expected} workers, not 3: {gib:.1f} GiB of memory available, a worker "
            "takes ~0.8 GiB"
        )


def test_the_memory_cap_is_read_and_applied_by_run(work, monkeypatch, caplog):
    """Catches `run` not reading the memory available: room for one worker runs the items
    here, one after another, and says so."""
    monkeypatch.setattr(pool, "memory_available", lambda: pool.WORKER_BYTES + 1)
    results = pool.run(
        [pool.Item(f"item-{i}", work.pid, {"value": i}) for i in range(2)], workers=2, start=None
    )
    assert {pid for _, pid in results.values()} == {os.getpid()}
    assert any(m.startswith("running 1 workers, not 2") for m in caplog.messages)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("MemTotal:  4096 kB\nMemFree:  1 kB\nMemAvailable:  2048 kB\n", 2048 * 1024),
        ("MemTotal:  4096 kB\nmemavailable:  2048 kB\n", None),  # the name as the kernel spells it
        ("MemTotal:  4096 kB\n", None),
    ],
)
def test_memory_available_reads_meminfos_line_in_kib(tmp_path, text, expected):
    """Catches another line read (its name in other case), KiB taken for bytes or for 1,025
    bytes, or a file without the line read as no memory at all."""
    (tmp_path / "meminfo").write_text(text)
    assert pool.memory_available(str(tmp_path / "meminfo")) == expected
    assert pool.memory_available(str(tmp_path / "missing")) is None


@pytest.mark.skipif(not pathlib.Path("/proc/meminfo").is_file(), reason="Linux's /proc")
def test_memory_available_reads_this_machines_meminfo_by_default():
    """Catches the default path changed: on Linux the figure is there."""
    assert pool.memory_available() > 0


def _alive(pid):
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not pathlib.Path("/proc").is_dir(), reason="reads /proc")
def test_sigterm_to_the_parent_stops_every_worker_and_keeps_finished_items(tmp_path):
    """Catches workers left running after the parent is stopped (no SIGTERM handler, or
    workers not terminated on the way out), or finished items not handed over before."""
    script = textwrap.dedent(
        f"""
        import pathlib, sys
        sys.path.insert(0, {str(HERE)!r})
        import pool_work
        from tfnn.recipe import pool
        pool.cpus = lambda: 2
        folder = {str(tmp_path)!r}
        items = [pool.Item("quick", pool_work.sleep, {{"seconds": 0, "folder": folder}})]
        items += [pool.Item(f"slow-{{i}}", pool_work.sleep, {{"seconds": 120, "folder": folder}})
                  for i in range(3)]
        keep = lambda name, _: pathlib.Path(folder, "kept-" + name).write_text("")
        pool.run(items, workers=2, start=None, on_result=keep)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = list(tmp_path.glob("*.started"))
        if (tmp_path / "kept-quick").exists() and len(started) == 2:
            break
        time.sleep(0.1)
    else:
        parent.kill()
        pytest.fail("the workers did not start")
    time.sleep(0.5)  # the quick item's worker takes a slow item
    workers = [int(path.stem) for path in started]
    parent.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    parent.wait(timeout=15)
    assert time.monotonic() - stopped < 10
    time.sleep(0.2)  # the kernel reaps the orphans' ends
    assert not [pid for pid in workers if _alive(pid)]
    assert (tmp_path / "kept-quick").exists() and not list(tmp_path.glob("*.finished"))[1:]


def _wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.05)


def test_prestarted_workers_import_at_once_and_run_the_next_pools_items(
    work, tmp_path, monkeypatch, capfd
):
    """Catches prestarted workers that import nothing until their first item (the start-up
    they exist to overlap), print their imports' output on the terminal, or are left unused
    while the pool starts workers of its own."""
    monkeypatch.setenv("POOL_WARM_FOLDER", str(tmp_path))
    with pool.prestarted(2, imports=("pool_warm",)) as pids:
        assert len(set(pids)) == 2 and os.getpid() not in pids
        _wait_for(lambda: {p.stem for p in tmp_path.glob("*.imported")} == set(map(str, pids)))
        results = pool.run(
            [pool.Item(f"item-{i}", work.pid, {"value": i}) for i in range(4)],
            workers=2,
            start=None,
        )
    assert {pid for _, pid in results.values()} == set(pids)
    assert "pool_warm imported" not in capfd.readouterr().out


def test_a_prestarted_worker_runs_its_start_once_before_its_first_item(work, tmp_path):
    """Catches `start` skipped on a prestarted worker (its TensorFlow threads never set), or
    run again for each item: two prestarted workers and one the pool starts, each started
    once for six items."""
    start = functools.partial(work.started, str(tmp_path))
    with pool.prestarted(2, imports=()) as spares:
        with pool.Pool(3, start=start) as running:
            for i in range(6):
                running.submit(pool.Item(f"item-{i}", work.pid, {"value": i}))
            pids = {running.next_outcome()[2][1] for _ in range(6)}
    assert set(spares) < pids and len(pids) == 3
    assert {p.stem: p.read_text() for p in tmp_path.glob("*.start")} == {
        str(pid): "x" for pid in pids
    }


def test_a_prestarted_worker_that_died_or_failed_its_import_is_not_lost_work(work, tmp_path):
    """Catches a dead spare handed an item (the item fails as "worker killed"), and a spare
    whose import failed dropped: it still runs items (their own imports report errors)."""
    with pool.prestarted(2, imports=("no_such_module_here",)) as (dead, alive):
        os.kill(dead, signal.SIGKILL)
        _wait_for(lambda: not _alive(dead))
        results = pool.run(
            [pool.Item(f"item-{i}", work.pid, {"value": i}) for i in range(2)],
            workers=2,
            start=None,
        )
    pids = {pid for _, pid in results.values()}
    assert alive in pids and dead not in pids and len(pids) == 2


@pytest.mark.skipif(not pathlib.Path("/proc").is_dir(), reason="reads /proc")
def test_prestarted_workers_no_pool_took_stop_with_the_block(work):
    """Catches spares left running (each a TensorFlow process, ~0.8 GiB) after the command
    that started them ends, on its way out or by an exception; and spares for a pool of one
    worker, which runs its items here."""
    for workers in (0, 1):
        with pool.prestarted(workers) as pids:
            assert pids == []
    with pytest.raises(RuntimeError):
        with pool.prestarted(2, imports=()) as pids:
            assert len(pids) == 2 and all(_alive(pid) for pid in pids)
            raise RuntimeError("the command failed")
    assert not [pid for pid in pids if _alive(pid)]
    with pool.prestarted(2, imports=()) as pids:
        pass
    assert not [pid for pid in pids if _alive(pid)]


def test_one_worker_not_here_runs_its_items_on_a_spawned_process(work):
    """Catches `here=False` ignored at one worker: the items would run in this process, with
    its threads, not a worker's (an ensemble's last member after a resume)."""
    results = pool.run(
        [pool.Item(f"item-{i}", work.pid, {"value": i}) for i in range(2)],
        workers=1,
        start=None,
        here=False,
    )
    pids = {pid for _, pid in results.values()}
    assert len(pids) == 1 and os.getpid() not in pids


def test_run_refuses_two_items_of_one_name_naming_them(work):
    with pytest.raises(ValueError) as error:
        pool.run([pool.Item("a", work.say), pool.Item("a", work.say)], workers=2)
    assert str(error.value) == "Expected items with distinct names. Received: names=['a', 'a']"


def test_run_caps_the_workers_by_its_items_and_starts_them_and_hands_on_results(work, tmp_path):
    """Catches `run` not capping the workers by its items (one item on a spawned worker, not
    here), its `start` not passed to the workers, or `on_result` given something else than
    the item's result."""
    results = pool.run([pool.Item("one", work.pid, {"value": 1})], workers=None, start=None)
    assert results["one"] == (1, os.getpid())
    kept = {}
    start = functools.partial(work.started, str(tmp_path))
    results = pool.run(
        [pool.Item(f"item-{i}", work.pid, {"value": i}) for i in range(2)],
        workers=2,
        start=start,
        on_result=kept.__setitem__,
    )
    assert kept == results
    assert sorted(p.stem for p in tmp_path.glob("*.start")) == sorted(
        str(pid) for _, pid in results.values()
    )


@pytest.mark.parametrize("status", [0, 3])
def test_a_worker_that_exits_is_named_with_its_status_and_replaced(work, status):
    """Catches an exit status read as a signal (0 is not one), or a dead worker kept in the
    pool (the next item sent to it): with one spawned worker, the next item runs on a new one."""
    with pool.Pool(1, start=None, here=False) as running:
        running.submit(pool.Item("exits", work.exit_with, {"status": status}))
        assert running.next_outcome() == (
            "exits",
            f"worker exited with status {status}",
            None,
        )
        running.submit(pool.Item("after", work.pid, {"value": 5}))
        name, error, (value, pid) = running.next_outcome()
    assert (name, error, value) == ("after", None, 5) and pid != os.getpid()


@pytest.mark.skipif(not pathlib.Path("/proc").is_dir(), reason="reads /proc")
def test_workers_are_daemons_named_as_the_pools(work):
    """Catches workers that are not daemons (an interpreter exiting without the pool's stop
    would wait for them) or nameless in `ps`-like listings of this process's children."""
    import multiprocessing

    with pool.prestarted(2, imports=()) as pids:
        children = {c.pid: c for c in multiprocessing.active_children() if c.pid in pids}
        assert len(children) == 2
        assert all(c.daemon and c.name == "tfnn-pool-worker" for c in children.values())


@pytest.mark.parametrize("workers, threads", [(1, 1), (2, 0), (3, 0)])
def test_a_parent_runs_one_thread_where_it_trains_and_all_where_its_workers_do(workers, threads):
    """At the limit (one worker: the trainings run in the parent) one thread; past it all.
    Catches `workers > 1` made `>= 1` (a training parent on all threads: other figures)."""
    assert pool.parent_threads(workers) == threads


def test_an_item_whose_description_is_none_finishes_without_a_line(work, caplog):
    """Catches a line logged for an item its caller describes as None (the caller's own
    step), or none for the others."""
    items = [pool.Item("own", work.say, {"text": ""}), pool.Item("user", work.say, {"text": "2"})]
    with caplog.at_level(logging.INFO, logger="tfnn.recipe.pool"):
        pool.run(items, workers=1, describe=lambda text: f"got {text}" if text else None)
    lines = [r.getMessage() for r in caplog.records if r.name == "tfnn.recipe.pool"]
    assert lines == ["user: got 2"]


def test_a_worker_that_closes_its_connection_and_hangs_is_killed_and_replaced(work, monkeypatch):
    """Catches the join's timeout dropped from `_reply` (the pool waits for the hung worker),
    a worker still running after it read as exited ("exited with status None", then waited on
    for ever in `_collect`), and the hung worker not killed or not reaped."""
    monkeypatch.setattr(pool, "STOP_SECONDS", 0.2)
    with pool.Pool(1, start=None, here=False) as running:
        running.submit(pool.Item("hangs", work.hang, {"seconds": 60}))
        (hung,) = [worker.process for worker in running._workers]
        name, error, result = running.next_outcome()
        assert (name, result) == ("hangs", None)
        assert error == "worker killed: its connection closed, still running 0.2 s later"
        assert hung.exitcode == -signal.SIGKILL  # killed and reaped, not left to sleep
        running.submit(pool.Item("after", work.pid, {"value": 5}))
        name, error, (value, pid) = running.next_outcome()
    assert (name, error, value) == ("after", None, 5) and pid != os.getpid()


def test_a_pool_of_one_runs_its_items_here_by_default(work):
    """Catches Pool's `here` defaulting to False (one worker spawned for items a plain loop
    would run in this process)."""
    with pool.Pool(1, start=None) as running:
        running.submit(pool.Item("one", work.pid, {"value": 1}))
        assert running.next_outcome() == ("one", None, (1, os.getpid()))


class StandInProcess:
    """A worker's process for `_stop`: alive until SIGTERM if `obeys`, else until SIGKILL;
    records the calls made on it."""

    def __init__(self, obeys):
        self.obeys, self.alive, self.calls = obeys, True, []

    def is_alive(self):
        return self.alive

    def terminate(self):
        self.calls.append("terminate")

    def kill(self):
        self.calls.append("kill")
        self.alive = False

    def join(self, timeout=None):
        self.calls.append(("join", timeout))
        if self.obeys and "terminate" in self.calls:
            self.alive = False
        assert not self.alive or timeout is not None, "waited for ever on a running process"


class StandInConnection:
    closed = False

    def close(self):
        self.closed = True


def test_stop_waits_stop_seconds_after_sigterm_then_kills_only_the_workers_still_running(
    monkeypatch,
):
    """Catches `_stop` not waiting after SIGTERM (`deadline = monotonic() - STOP_SECONDS`:
    every worker SIGKILLed at once), waiting without end (`join(None)`) or past the deadline
    (`max(1.0, …)`, `deadline + monotonic()`), or killing a worker that had stopped."""
    monkeypatch.setattr(pool, "STOP_SECONDS", 0.5)
    obeys, stubborn, dead = StandInProcess(True), StandInProcess(False), StandInProcess(True)
    dead.alive = False
    workers = [pool._Worker(p, StandInConnection()) for p in (obeys, stubborn, dead)]
    pool._stop(workers)
    (first,) = [call[1] for call in obeys.calls if call[0] == "join"]
    assert obeys.calls == ["terminate", ("join", first)] and 0 < first <= 0.5
    terminated, (join, waited), *then = stubborn.calls
    assert (terminated, join) == ("terminate", "join") and 0 <= waited <= 0.5
    assert then == ["kill", ("join", None)]
    assert dead.calls == [] and all(w.connection.closed for w in workers)


class Boom(Exception):
    """An error whose class needs its argument."""

    def __init__(self, where):
        super().__init__(where)


def boom():
    raise Boom("in the block")


def test_an_error_in_the_block_stops_the_workers_at_once_and_propagates_whole(work, tmp_path):
    """Catches a spawning pool's workers left running when its block raises (no `_stop` on the
    way out: `if self._here` in `__enter__`), and the error that reaches the caller changed:
    made again without its argument (`error` None in the exit stack's call) or without the
    frames it came through (`trace` None)."""
    with pytest.raises(Boom) as raised:
        with pool.Pool(2, start=None) as running:
            for i in range(2):
                sleep = {"seconds": 60, "folder": str(tmp_path)}
                running.submit(pool.Item(f"sleeps-{i}", work.sleep, sleep))
            processes = [worker.process for worker in running._workers]
            boom()
    assert raised.value.args == ("in the block",)
    assert "boom" in [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert [process.exitcode for process in processes] == [-signal.SIGTERM] * 2


def test_leaving_the_block_lets_idle_workers_return_and_stops_a_busy_one(
    work, tmp_path, monkeypatch
):
    """Catches the workers not told to return when the block ends (`kind is not None`: each
    SIGTERMed, none exiting 0), a busy worker waited on without end (`join(None)`, not
    STOP_SECONDS) and a worker that died idle failing the exit (`suppress(None)`)."""
    monkeypatch.setattr(pool, "STOP_SECONDS", 2)
    with pool.Pool(3, start=None) as running:
        running.submit(pool.Item("idle", work.pid, {"value": 0}))
        running.submit(pool.Item("dies", work.pid, {"value": 1}))
        running.submit(pool.Item("busy", work.sleep, {"seconds": 60, "folder": str(tmp_path)}))
        idle, dies, busy = [worker.process for worker in running._workers]
        assert {running.next_outcome()[0] for _ in range(2)} == {"idle", "dies"}
        dies.kill()
        dies.join()
    assert (idle.exitcode, dies.exitcode, busy.exitcode) == (0, -signal.SIGKILL, -signal.SIGTERM)


def test_the_progress_bar_counts_the_items_submitted_and_finished(work, monkeypatch):
    """Catches the bar's total other than the items submitted (`_progress(1)`, `total = 1`,
    `total -= 1`), not redrawn with it, or a finished item not a step."""
    bars = []

    class Bar:
        def __init__(self, total):
            self.total, self.shown, self.n = total, None, 0
            bars.append(self)

        def update(self):
            self.n += 1

        def refresh(self):
            self.shown = self.total

    monkeypatch.setattr(pool, "_progress", lambda total: contextlib.nullcontext(Bar(total)))
    with pool.Pool(1, start=None) as running:
        for i in range(3):
            running.submit(pool.Item(f"item-{i}", work.say, {"text": str(i)}))
        (bar,) = bars
        assert (bar.total, bar.shown, bar.n) == (3, 3, 0)
        while running.next_outcome() is not None:
            pass
    assert bar.n == 3


def test_the_progress_bar_is_tqdms_on_stderr_shown_on_a_terminal_only(monkeypatch):
    """Catches the bar's settings changed (its unit, stderr, shown only on a terminal, not left
    behind) and a missing tqdm failing the pool instead of leaving it without a bar."""
    made = []
    monkeypatch.setattr("tqdm.tqdm", lambda **settings: made.append(settings) or "bar")
    assert pool._progress(4) == "bar"
    assert made == [
        {"total": 4, "unit": "item", "file": sys.stderr, "disable": None, "leave": False}
    ]
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `from tqdm import tqdm` fails
    with pool._progress(4) as bar:
        bar.refresh()
        bar.update()
        assert bar.total == 0


def test_each_finished_item_is_one_line_done_or_failed(work, caplog):
    """Catches an item's line without `describe` other than "<name>: done", and a failed
    item's other than "<name> failed: <its last line>" at ERROR."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe.pool")
    with pool.Pool(1, start=None, here=False) as running:
        running.submit(pool.Item("ok", work.say, {"text": "x"}))
        running.submit(pool.Item("bad", work.fail, {"message": "no"}))
        while running.next_outcome() is not None:
            pass
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == pool.log.name] == [
        (logging.INFO, "ok: done"),
        (logging.ERROR, "bad failed: ValueError: no"),
    ]


def test_an_item_submitted_first_goes_ahead_of_those_waiting(work):
    """Catches `first` ignored (the item queued last), taken as the default (every item
    ahead: the order reversed), or the wrong item put ahead."""
    with pool.Pool(1, start=None) as running:
        for name in ("a", "b"):
            running.submit(pool.Item(name, work.pid, {"value": name}))
        running.submit(pool.Item("c", work.pid, {"value": "c"}), first=True)
        running.submit(pool.Item("d", work.pid, {"value": "d"}))
        order = [running.next_outcome()[2][0] for _ in range(4)]
    assert order == ["c", "a", "b", "d"]


def test_counted_logs_why_fewer_workers_run_and_returns_the_count(monkeypatch, caplog):
    """Catches the note dropped (the user not told why one worker runs), or a line logged
    where all the workers asked for run."""
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    monkeypatch.setattr(pool, "memory_available", lambda: pool.WORKER_BYTES)
    caplog.set_level(logging.WARNING, logger="tfnn.recipe.pool")
    assert pool.counted(2, items=4) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "running 1 workers, not 2: 0.8 GiB of memory available, a worker takes ~0.8 GiB"
    ]
    caplog.clear()
    monkeypatch.setattr(pool, "memory_available", lambda: 64 * pool.WORKER_BYTES)
    assert pool.counted(2, items=4) == 2 and not caplog.records


# A worker's own functions (`_work`, `_die_with_parent`, `_last_line`), run here: in a spawned
# worker they run out of sight of coverage and of mutation testing.


def _work_here(monkeypatch, messages, *, imports=(), parent=4321):
    """Runs `pool._work` in this process on `messages` (start, log, item), sent ahead into its
    pipe and then None; returns (its replies, the parents `_die_with_parent` was given, the
    SIGINT handler it left). stdout and stderr are the file descriptors' streams, as in a
    worker (pytest's stand-ins write elsewhere); SIGINT's handler is restored after."""
    parents = []
    monkeypatch.setattr(pool, "_die_with_parent", parents.append)
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    mine, theirs = multiprocessing.Pipe()
    for start, log, item in messages:
        mine.send((pickle.dumps(start), log, pickle.dumps(item)))
    mine.send(None)
    previous = signal.getsignal(signal.SIGINT)
    try:
        pool._work(theirs, parent, imports)
        handler = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    replies = []
    while mine.poll():  # `_work` has returned: every reply is in the pipe
        replies.append(mine.recv())
    mine.close()
    theirs.close()
    return replies, parents, handler


def test_a_worker_dies_with_its_parent_ignores_ctrl_c_and_imports_quietly(
    work, monkeypatch, tmp_path, capfd
):
    """Catches the parent's id not handed to `_die_with_parent` (`_die_with_parent(None)`),
    SIGINT not ignored (a Ctrl-C on the terminal would kill the workers before the parent
    stops them) or its call broken, a module not imported (`import_module(None)`), a failed
    import failing the worker (`suppress(None)`), and the imports' output on the terminal."""
    monkeypatch.setenv("POOL_WARM_FOLDER", str(tmp_path))
    monkeypatch.delitem(sys.modules, "pool_warm", raising=False)
    try:
        replies, parents, handler = _work_here(
            monkeypatch, [], imports=("no_such_module_here", "pool_warm"), parent=4321
        )
    finally:
        sys.modules.pop("pool_warm", None)
    assert (replies, parents, handler) == ([], [4321], signal.SIG_IGN)
    assert (tmp_path / f"{os.getpid()}.imported").exists()
    assert "pool_warm imported" not in capfd.readouterr().out


def test_a_worker_runs_its_start_once_into_its_first_items_log_then_each_item(
    work, monkeypatch, tmp_path
):
    """Catches the start skipped (`started = True` at first, `if started`, `start = None`, `if
    start is None`), run again for a later item (`started = None` or `False` after the first),
    unpickled wrong (`pickle.loads(None)`), or run with its output outside the item's log; an
    item's output not in its log (`_output_to(None)`), its reply other than ("done", its
    value), and the items not taken until None (`is None`)."""
    start = functools.partial(work.say, "started")
    logs = {name: str(tmp_path / f"{name}.log") for name in ("one", "two")}
    messages = [
        (start, log, pool.Item(name, work.say, {"text": name}, log=log))
        for name, log in logs.items()
    ]
    replies, _, _ = _work_here(monkeypatch, messages)
    assert replies == [("done", "one"), ("done", "two")]
    assert [pathlib.Path(log).read_text() for log in logs.values()] == ["started\none\n", "two\n"]


def test_a_worker_without_a_start_replies_a_failure_by_its_last_line_and_goes_on(
    work, monkeypatch, tmp_path
):
    """Catches a start of None called (`if start is None`), a failed item's reply other than
    ("failed", its error's last line) (`reply = None`, another word, `_last_line(None)`), its
    traceback not in its log, and the item unpickled wrong (`pickle.loads(None)`)."""
    log = str(tmp_path / "fails.log")
    replies, _, _ = _work_here(
        monkeypatch,
        [
            (None, log, pool.Item("fails", work.fail, {"message": "bad thing"})),
            (None, None, pool.Item("after", work.say, {"text": "after"})),
        ],
    )
    assert replies == [("failed", "ValueError: bad thing"), ("done", "after")]
    text = pathlib.Path(log).read_text()
    assert text.startswith("Traceback") and text.endswith("ValueError: bad thing\n")


def test_a_result_that_does_not_pickle_is_a_failure_saying_so(work, monkeypatch):
    """Catches a result that cannot be sent back answered otherwise than ("failed", "its result
    cannot be sent back: <why>") (None, another word, `_last_line(None)`): the pool would wait
    for the item for ever or read a wrong outcome."""
    replies, _, _ = _work_here(
        monkeypatch,
        [
            (None, None, pool.Item("unsendable", work.unsendable)),
            (None, None, pool.Item("after", work.say, {"text": "after"})),
        ],
    )
    assert replies == [
        ("failed", "its result cannot be sent back: TypeError: no way back"),
        ("done", "after"),
    ]


class Exited(Exception):
    """os._exit's stand-in raises it: the process would end there."""


def _no_prctl_here(monkeypatch, library=None):
    """Stand-ins for `ctypes.CDLL` (`library`, by default one whose prctl is recorded) and
    `os._exit` (recorded, then raises Exited): prctl(PR_SET_PDEATHSIG) must never reach this
    process. Returns the calls."""
    calls = []

    class Library:
        def __init__(self, name):
            calls.append(("CDLL", name))

        def prctl(self, *arguments):
            calls.append(("prctl", *arguments))
            return 0

    def exit_(status):
        calls.append(("exit", status))
        raise Exited

    monkeypatch.setattr(ctypes, "CDLL", library or Library)
    monkeypatch.setattr(os, "_exit", exit_)
    return calls


def test_die_with_parent_asks_for_sigkill_when_the_parent_dies(monkeypatch):
    """Catches the request other than prctl(1, SIGKILL) on this process's C library
    (PR_SET_PDEATHSIG: an argument dropped or changed, `CDLL()`), and a worker whose parent
    is alive ended (`os.getppid() == parent`)."""
    calls = _no_prctl_here(monkeypatch)
    pool._die_with_parent(os.getppid())
    assert calls == [("CDLL", None), ("prctl", 1, signal.SIGKILL)]


def test_die_with_parent_exits_with_status_1_when_the_parent_died_already(monkeypatch):
    """The parent died before the request (the worker was adopted: another parent). Catches
    the worker not exiting (`os.getppid() == parent`) or with another status than 1."""
    calls = _no_prctl_here(monkeypatch)
    with pytest.raises(Exited):
        pool._die_with_parent(os.getppid() + 1)
    assert calls[-1] == ("exit", 1)


class NoLibrary:
    """No C library by that name."""

    def __init__(self, name):
        raise OSError(f"{name}: cannot open shared object file")


class NoPrctl:
    """A C library without prctl."""

    def __init__(self, name):
        pass


@pytest.mark.parametrize("library", [NoLibrary, NoPrctl])
def test_die_with_parent_without_prctl_lets_the_worker_run(monkeypatch, library):
    """Catches a system without prctl (no C library to load, or no prctl in it: not Linux)
    failing the worker or ending it."""
    calls = _no_prctl_here(monkeypatch, library=library)
    pool._die_with_parent(os.getppid() + 1)
    assert calls == []


@pytest.mark.parametrize(
    "error, expected",
    [
        (ValueError("no"), "ValueError: no"),
        (KeyError("two\nlines"), "KeyError: 'two\\nlines'"),
        (ValueError("two\nlines"), "ValueError: two\nlines"),
    ],
)
def test_last_line_is_the_errors_type_and_message(error, expected):
    """Catches another line than the error's (`[+1]`, `[-2]`: there is one) or the error not
    the one given (`_last_line` of None reads "NoneType: None")."""
    assert pool._last_line(error) == expected


def noted(error, *notes):
    for note in notes:
        error.add_note(note)
    return error


@pytest.mark.parametrize("notes", [("a note",), ("one", "two")])
def test_last_line_leaves_the_errors_notes_out(notes):
    """Catches a failed item reported by the last note added to its error (Python 3.11's
    `add_note`, listed after the error's line) instead of by the error."""
    assert pool._last_line(noted(ValueError("bad"), *notes)) == "ValueError: bad"


def test_a_training_workers_start_sets_one_thread(monkeypatch):
    """Catches a training worker on other than one TensorFlow thread (`threads=2`, `None`)."""
    from tfnn.recipe import process

    calls = []
    monkeypatch.setattr(process, "configure", lambda **settings: calls.append(settings))
    pool.start_training_worker()
    assert calls == [{"threads": 1}]
