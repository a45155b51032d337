"""A pool of training processes: independent items (ensemble members, an experiment's
seeds) run at once, one worker process each, each worker with one TensorFlow thread and a
runtime of its own.

    results = pool.run([pool.Item("member-1", train_member, {"index": 1}, log=path), ...])

    with pool.Pool(2) as running:           # items that come as earlier ones finish
        running.submit(item)
        while (outcome := running.next_outcome()) is not None: ...

Why processes: one training does not get faster with a second core (docs/benchmarks.md),
two trainings on two cores finish in the time of one. Workers are started with the
"spawn" method, never forked from a process where TensorFlow has run (a fork copies its
thread pools' locks in whatever state they are).

What it guarantees:

- Faults stay with their item. An item whose function raises, or whose worker dies (SIGKILL,
  the kernel's out-of-memory killer), fails alone: a new worker takes the next item, the
  others finish, and `run` then raises `ItemsFailed` naming each failed item with the last
  line of its error. The full traceback is in the item's log.
- SIGTERM or Ctrl-C to the parent stops every worker (SIGTERM, then SIGKILL after
  STOP_SECONDS) and re-raises as KeyboardInterrupt; each worker also dies with its parent
  (Linux's parent-death signal), so no worker outlives it. Items already finished were
  handed to `on_result` as they finished, so a caller that keeps them keeps them all.
- Each item's output (stdout, stderr, its logging) goes to the item's `log` file, not to
  the terminal: the user sees one progress bar over the items and one line per finished item.
- The worker count (`worker_count`): the requested count, by default the CPUs this process
  may use, capped by the CPUs, the items, and the memory available (WORKER_BYTES a worker).
  One worker runs the items in this process, one after another, as a plain loop would.
"""

import collections
import contextlib
import dataclasses
import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from multiprocessing import connection as connections

from tfnn import validation
from tfnn.recipe.errors import ItemsFailed

# One training worker's resident memory: TensorFlow, Keras and a default run's model and
# data (~0.8 GiB measured; docs/benchmarks.md).
WORKER_BYTES = int(0.8 * 2**30)
# Seconds a stopped worker gets between SIGTERM and SIGKILL.
STOP_SECONDS = 5

log = logging.getLogger("tfnn.recipe.pool")

# Workers started ahead of the pools that take them (`prestarted`), oldest first.
_spares = []


@dataclasses.dataclass(frozen=True)
class Item:
    """One independent piece of work: `function(**kwargs)` in a worker. `function` and
    `kwargs` must pickle (a module-level function, plain values); `name` is unique in a
    pool and names the item in its lines; `log` is the file its output goes to (appended;
    None: discarded)."""

    name: str
    function: object
    kwargs: dict = dataclasses.field(default_factory=dict)
    log: str = None


def memory_available(meminfo="/proc/meminfo"):
    """The bytes of memory available (`meminfo`'s MemAvailable, in KiB), None where unknown."""
    try:
        with open(meminfo) as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpus():
    """The CPUs this process may use (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


def worker_count(workers, *, items, available_cpus=None, available_bytes=None):
    """(the workers to run, a line saying why fewer than asked, or None).

    `workers` None asks for one a CPU; the count is then capped by the CPUs, the `items`
    (None: not known yet, no cap) and the memory (`available_bytes` // WORKER_BYTES, at
    least one)."""
    available_cpus = cpus() if available_cpus is None else available_cpus
    asked = available_cpus if workers is None else workers
    items = asked if items is None else max(items, 1)
    count = min(asked, available_cpus, items)
    note = None
    if workers is not None and workers > available_cpus and items > available_cpus:
        note = f"{workers} workers asked, {available_cpus} CPUs: running {count}"
    if available_bytes is None:
        available_bytes = memory_available()
    if available_bytes is not None:
        fitting = max(1, available_bytes // WORKER_BYTES)
        if fitting < count:
            note = (
                f"running {fitting} workers, not {count}: {available_bytes / 2**30:.1f} GiB of "
                f"memory available, a worker takes ~{WORKER_BYTES / 2**30:.1f} GiB"
            )
            count = fitting
    return count, note


def counted(workers, *, items):
    """`worker_count`'s count, its note (why fewer than asked) logged as a warning: the
    count a caller about to start a pool runs."""
    count, note = worker_count(workers, items=items)
    if note:
        log.warning(note)
    return count


def parent_threads(workers):
    """TensorFlow's threads for a command whose trainings run on a pool of `workers`: one
    where they run in it (`workers` 1; a second thread an op slows training at this model
    size), all (0) where they run on workers and it only evaluates and exports (inference's
    figures are the same with any number of threads under op determinism; training's are
    not)."""
    return 0 if workers > 1 else 1


def start_training_worker():
    """A training worker's process-wide settings: one TensorFlow thread, deterministic ops."""
    from tfnn.recipe import process

    process.configure(threads=1)


def run(
    items, *, workers=None, start=start_training_worker, on_result=None, describe=None, here=True
):
    """Runs the `items` (`Item`s) on `workers` processes (see `worker_count`); returns
    {name: result} in the items' order.

    `start()` runs once in each worker before its first item (picklable; None: nothing).
    `on_result(name, result)` runs here as each item finishes; `describe(result)` gives the
    text of its line. With one worker the items run here, in order, and an exception
    propagates as it would from a loop; with `here` False they run on one spawned worker
    all the same (for a process whose settings differ from a worker's).

    Raises:
        ItemsFailed: items failed (after every other item finished).
        KeyboardInterrupt: SIGTERM or Ctrl-C; the workers are stopped first.
    """
    items = list(items)
    names = [item.name for item in items]
    if len(set(names)) != len(names):
        raise ValueError(f"Expected items with distinct names. Received: names={names!r}")
    with Pool(
        counted(workers, items=len(items)), start=start, describe=describe, here=here
    ) as running:
        return running.run(items, on_result=on_result)


@contextlib.contextmanager
def prestarted(workers, *, imports=("tfnn.recipe.train",)):
    """Starts the `workers` of a pool at once (none for 1: its items run here), each
    importing the modules `imports` (TensorFlow's ~4 s) while this process goes on with its
    own start-up; the pools made in the block take them before starting workers of their
    own. Yields their process ids. The ones no pool took are stopped when the block ends,
    however it ends.

        with pool.prestarted(2):          # before this process imports TensorFlow itself
            import tensorflow ...         # the workers import theirs on the other cores
            pool.run(items, workers=2)    # runs on the two workers started above
    """
    context = multiprocessing.get_context("spawn")
    started = [_start(context, imports) for _ in range(workers if workers > 1 else 0)]
    _spares.extend(started)
    try:
        yield [worker.process.pid for worker in started]
    finally:
        left = [worker for worker in started if worker in _spares]
        for worker in left:
            _spares.remove(worker)
        _stop(left)


def _take_spare():
    """The oldest prestarted worker still alive, or None; dead ones are dropped."""
    while _spares:
        worker = _spares.pop(0)
        if worker.process.is_alive():
            return worker
        worker.process.join()
        worker.connection.close()
    return None


class Pool:
    """Up to `workers` worker processes, kept for every item submitted until the pool is
    left, so a caller whose next items depend on earlier results (the experiments'
    measurements) starts each worker, and TensorFlow in it, once:

        with pool.Pool(2, describe=...) as running:
            running.submit(pool.Item(...))
            while (outcome := running.next_outcome()) is not None:
                name, error, result = outcome      # error: None, or its last line
                ...                                 # may submit more items

    A worker starts (spawn; `start()` in it before its first item) when an item waits and
    no worker is free, a prestarted one (`prestarted`) first. With `workers` 1 and `here`
    the items run here, one at each `next_outcome`, and an exception propagates from it as
    from a loop. Each finished item is one line on the
    log ("name: describe(result)", none where that is None, or "name failed: …") and a step
    of the progress bar.
    Leaving the block tells the workers to return and waits STOP_SECONDS for them; on an
    exception, SIGTERM or Ctrl-C it stops them at once (SIGTERM, then SIGKILL).
    """

    def __init__(self, workers, *, start=start_training_worker, describe=None, here=True):
        validation.integer("workers", workers, low=1)
        self._count = workers
        self._here = here and workers == 1
        self._start = pickle.dumps(start)  # a start that does not pickle is refused here
        self._describe = describe
        self._names = set()
        self._pending = collections.deque()
        self._workers = []
        self._outcomes = collections.deque()  # (name, error, result) not returned yet
        self._exit = contextlib.ExitStack()

    def __enter__(self):
        self._bar = self._exit.enter_context(_progress(0))
        if not self._here:
            self._exit.enter_context(_stopped_by_sigterm())
            self._exit.callback(_stop, self._workers)
        return self

    def __exit__(self, kind, error, trace):
        if kind is None:
            for worker in self._workers:
                with contextlib.suppress(OSError):  # a worker that died idle
                    worker.connection.send(None)  # done: the worker returns
            for worker in self._workers:
                worker.process.join(STOP_SECONDS)
        return self._exit.__exit__(kind, error, trace)

    def run(self, items, *, on_result=None):
        """Runs `items` on this pool's workers (as `pool.run` does on a pool of its own), with
        no other item in flight, and returns {name: result} in the items' order;
        `on_result(name, result)` runs here as each finishes.

        Raises:
            ItemsFailed: items failed (after every other item finished).
        """
        items = list(items)
        for item in items:
            self.submit(item)
        return self.gather([item.name for item in items], on_result=on_result)

    def gather(self, names, *, on_result=None):
        """Waits for every item submitted and not yet returned; returns {name: result} of
        those finished among `names`, in their order; `on_result(name, result)` runs here
        as each finishes.

        Raises:
            ItemsFailed: items failed (after every other item finished).
        """
        results, failures = {}, {}
        while (outcome := self.next_outcome()) is not None:
            name, error, result = outcome
            if error is not None:
                failures[name] = error
                continue
            results[name] = result
            if on_result:
                on_result(name, result)
        if failures:
            raise ItemsFailed({name: failures[name] for name in names if name in failures})
        return {name: results[name] for name in names if name in results}

    def submit(self, item, *, first=False):
        """Queues `item` (with `first`, ahead of the items waiting); it starts at once if a
        worker is free or may be started."""
        if item.name in self._names:
            raise ValueError(
                f"Expected items with distinct names. Received: a second item {item.name!r}"
            )
        self._names.add(item.name)
        if first:
            self._pending.appendleft(item)
        else:
            self._pending.append(item)
        self._bar.total += 1
        self._bar.refresh()
        self._dispatch()

    def next_outcome(self):
        """(name, error, result) of the next item to finish, waiting for it: `error` is None
        and `result` its function's value, or `error` is the last line of what it raised or
        how its worker died. None when no item is queued or running."""
        if self._here:
            if not self._pending:
                return None
            item = self._pending.popleft()
            return self._finished(item.name, None, item.function(**item.kwargs))
        while not self._outcomes:
            busy = [worker for worker in self._workers if worker.item]
            if not busy:
                return None
            ready = connections.wait(
                [w.connection for w in busy] + [w.process.sentinel for w in busy]
            )
            for worker in busy:
                if worker.connection in ready or worker.process.sentinel in ready:
                    self._outcomes.append(self._collect(worker))
            self._dispatch()
        return self._finished(*self._outcomes.popleft())

    def _dispatch(self):
        """Hands the queued items to free workers, starting workers up to the count."""
        if self._here:
            return
        for worker in self._workers:
            if worker.item is None and self._pending:
                self._send(worker, self._pending.popleft())
        while self._pending and len(self._workers) < self._count:
            worker = _take_spare() or _start(multiprocessing.get_context("spawn"), ())
            self._workers.append(worker)
            self._send(worker, self._pending.popleft())

    def _send(self, worker, item):
        worker.item = item
        # The log apart: the worker unpickles the start and the item (imports their modules,
        # TensorFlow's start-up lines) with its output in the log.
        worker.connection.send((self._start, item.log, pickle.dumps(item)))

    def _collect(self, worker):
        """(name, error, result) of the item `worker` answered or died on; a dead worker
        leaves the pool (the next item that needs one starts a new one)."""
        name = worker.item.name
        outcome, value = _reply(worker)
        worker.item = None
        if outcome == "done":
            return name, None, value
        if outcome == "died":
            self._workers.remove(worker)
            worker.process.join()
            worker.connection.close()
        return name, value, None

    def _finished(self, name, error, result):
        if error is None:
            text = self._describe(result) if self._describe else "done"
            if text is not None:  # None: an item of the caller's own, not the user's
                log.info(f"{name}: {text}")
        else:
            log.error(f"{name} failed: {error}")
        self._bar.update()
        return name, error, result


def _progress(total):
    """A progress bar over the items on stderr, shown on a terminal only."""
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety; the lines say the same
        return contextlib.nullcontext(_NoBar())
    return tqdm(total=total, unit="item", file=sys.stderr, disable=None, leave=False)


class _NoBar:
    total = 0

    def update(self, n=1):
        pass

    def refresh(self):
        pass


@dataclasses.dataclass
class _Worker:
    process: multiprocessing.Process
    connection: connections.Connection
    item: Item = None


def _start(context, imports):
    """A new worker that imports the modules `imports` before it waits for items."""
    mine, theirs = context.Pipe()
    process = context.Process(
        target=_work,
        args=(theirs, os.getpid(), tuple(imports)),
        name="tfnn-pool-worker",
        daemon=True,
    )
    process.start()
    theirs.close()
    return _Worker(process, mine)


def _reply(worker):
    """("done", result), ("failed", last line) or ("died", how) of the worker's item."""
    try:
        if worker.connection.poll():
            return worker.connection.recv()
    except (EOFError, OSError):
        pass
    worker.process.join(STOP_SECONDS)
    code = worker.process.exitcode
    if code is None:  # its connection closed but it runs on: it would be waited on for ever
        worker.process.kill()
        worker.process.join()
        return "died", (
            f"worker killed: its connection closed, still running {STOP_SECONDS} s later"
        )
    if code < 0:
        return "died", f"worker killed by {signal.Signals(-code).name}"
    return "died", f"worker exited with status {code}"


def _stop(workers):
    """Stops every worker still running: SIGTERM, then SIGKILL after STOP_SECONDS."""
    alive = [w.process for w in workers if w.process.is_alive()]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in alive:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    for worker in workers:
        worker.connection.close()


@contextlib.contextmanager
def _stopped_by_sigterm():
    """SIGTERM raises KeyboardInterrupt here, as Ctrl-C does, so the workers are stopped on
    the way out (a signal handler can be set from the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _die_with_parent(parent):
    """Asks Linux to SIGKILL this process when its parent dies (PR_SET_PDEATHSIG), so no
    worker outlives a parent killed without warning."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the daemon flag and _stop remain
        return
    if os.getppid() != parent:  # the parent died before the request
        os._exit(1)


def _work(connection, parent, imports):
    """A worker's life: import `imports`, then take items until told to stop (None) and
    reply with each's outcome; before the first item, its `start`."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    with _output_to(None):  # their start-up lines belong to no item
        for module in imports:
            with contextlib.suppress(Exception):  # an item needing it reports it in its log
                importlib.import_module(module)
    started = False  # `start` runs before the first item only
    while (message := connection.recv()) is not None:
        start, path, payload = message
        with _output_to(path):
            try:
                if not started:  # unpickled here: its imports' output goes to the log
                    start = pickle.loads(start)
                    if start is not None:
                        start()
                started = True
                item = pickle.loads(payload)
                reply = ("done", item.function(**item.kwargs))
            except Exception as error:
                traceback.print_exc()
                reply = ("failed", _last_line(error))
        try:
            connection.send(reply)
        except Exception as error:  # a result that does not pickle
            connection.send(("failed", f"its result cannot be sent back: {_last_line(error)}"))


def _last_line(error):
    """The line "Type: message" of `error`, without the notes listed after it (`add_note`)."""
    notes = len(getattr(error, "__notes__", ()))
    return traceback.format_exception_only(error)[-1 - notes].strip()


@contextlib.contextmanager
def _output_to(path):
    """Points this process's stdout and stderr (the file descriptors, so TensorFlow's C++
    output too) at `path` (appended; None: /dev/null), and the logging of tfnn at them."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    target = os.open(path or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    tfnn_log = logging.getLogger("tfnn")
    tfnn_log.addHandler(handler)
    level, propagate = tfnn_log.level, tfnn_log.propagate
    tfnn_log.setLevel(logging.INFO)
    tfnn_log.propagate = False  # once, here, whatever the root logger does
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        tfnn_log.removeHandler(handler)
        tfnn_log.setLevel(level)
        tfnn_log.propagate = propagate
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
