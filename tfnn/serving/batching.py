"""Server-side batching as TensorFlow Serving's `--enable_batching`: concurrent requests to one
signature of one version are merged into one model call and the outputs split back.

A request's rows wait in the queue of its (servable, signature, per-example shapes). A batch
thread takes the oldest queue whose rows reach `max_batch_size`, or whose oldest request has
waited `batch_timeout_micros`, and runs as many whole requests as fit in `max_batch_size` (a
larger request runs alone) as one call on their inputs concatenated along axis 0; each request
gets its own slice of every output. With a timeout of 0 a batch is whatever queued while the
previous one ran, so a lone client waits for nothing.
"""

import collections
import threading
import time

import numpy as np


class _Task:
    """One caller's request, waiting for its batch."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.rows = len(next(iter(arrays.values())))
        self.arrived = time.monotonic()
        self.done = threading.Event()
        self.outputs = None
        self.error = None


class Batcher:
    """Runs `servable.run(signature_name, arrays)` for concurrent callers in shared batches.

    Args:
        max_batch_size: the most rows in one model call (requests are not split).
        batch_timeout_micros: the longest a request waits for others to join its batch.
        num_batch_threads: how many batches run at once.
        on_batch: called with the rows of each model call it makes (e.g. to record them).
    """

    def __init__(
        self, max_batch_size=64, batch_timeout_micros=0, num_batch_threads=1, on_batch=None
    ):
        if max_batch_size < 1 or batch_timeout_micros < 0 or num_batch_threads < 1:
            raise ValueError(
                "Expected max_batch_size >= 1, batch_timeout_micros >= 0 and "
                f"num_batch_threads >= 1. Received: {max_batch_size}, {batch_timeout_micros}, "
                f"{num_batch_threads}"
            )
        self.max_batch_size = max_batch_size
        self.timeout = batch_timeout_micros / 1e6
        self._on_batch = on_batch or (lambda rows: None)
        self._queues = collections.OrderedDict()  # key → deque of _Task, oldest first
        self._ready = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"tfnn-batch-{i}", daemon=True)
            for i in range(num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, servable, signature_name, arrays):
        """The outputs for `arrays` alone, computed in a batch with other callers' rows."""
        if any(np.ndim(a) == 0 for a in arrays.values()):  # no batch axis to merge along
            return servable.run(signature_name, arrays)
        task = _Task(arrays)
        shapes = tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(arrays.items()))
        key = (servable, signature_name, shapes)
        with self._ready:
            if self._stopped:
                raise RuntimeError("the batcher is stopped")
            self._queues.setdefault(key, collections.deque()).append(task)
            self._ready.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def stop(self):
        """Lets queued batches finish, then ends the batch threads."""
        with self._ready:
            self._stopped = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _due(self, now):
        """The key of the queue to run now and the wait until one is due (None: no tasks)."""
        wait = None
        for key, queue in self._queues.items():
            left = queue[0].arrived + self.timeout - now
            if left <= 0 or self._stopped or sum(t.rows for t in queue) >= self.max_batch_size:
                return key, 0
            wait = left if wait is None else min(wait, left)
        return None, wait

    def _take(self):
        """Blocks until a batch is due; its tasks (None once stopped and empty)."""
        with self._ready:
            while True:
                key, wait = self._due(time.monotonic())
                if key is not None:
                    break
                if self._stopped:
                    return None
                self._ready.wait(wait)
            queue = self._queues[key]
            tasks = [queue.popleft()]
            rows = tasks[0].rows
            while queue and rows + queue[0].rows <= self.max_batch_size:
                rows += queue[0].rows
                tasks.append(queue.popleft())
            if not queue:
                del self._queues[key]
            else:
                self._queues.move_to_end(key)
            return key, tasks

    def _work(self):
        while (taken := self._take()) is not None:
            (servable, signature_name, _), tasks = taken
            self._on_batch(sum(task.rows for task in tasks))
            try:
                if len(tasks) == 1:
                    tasks[0].outputs = servable.run(signature_name, tasks[0].arrays)
                else:
                    self._run_merged(servable, signature_name, tasks)
            except Exception as error:  # noqa: BLE001 — handed to every waiting caller
                for task in tasks:
                    task.error = error
            for task in tasks:
                task.done.set()

    @staticmethod
    def _run_merged(servable, signature_name, tasks):
        merged = {
            name: np.concatenate([task.arrays[name] for task in tasks]) for name in tasks[0].arrays
        }
        outputs = servable.run(signature_name, merged)
        total = sum(task.rows for task in tasks)
        if any(np.ndim(v) == 0 or len(v) != total for v in outputs.values()):
            raise ValueError("batching needs every output to have the batch axis first")
        bounds = np.cumsum([task.rows for task in tasks])[:-1]
        for name, value in outputs.items():
            for task, part in zip(tasks, np.split(value, bounds), strict=True):
                if task.outputs is None:
                    task.outputs = {}
                task.outputs[name] = part
