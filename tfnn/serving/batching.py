"""Server-side batching as TensorFlow Serving's `--enable_batching`: concurrent requests to one
signature of one version are merged into one model call and the outputs split back.

A request's rows wait in the queue of its (servable, signature, per-example shapes). There is
no batch thread: the callers run the batches. A caller that finds fewer than
`num_batch_threads` batches being led becomes a leader. A leader takes the oldest queue whose
rows reach `max_batch_size`, or whose oldest request has waited `batch_timeout_micros`, and
runs as many whole requests as fit in `max_batch_size` (a larger request runs alone) as one
call on their inputs concatenated along axis 0; each request gets its own slice of every
output. It leads until its own request is answered, then hands the lead to the oldest request
still queued, whose caller wakes to lead (or gives it up when nothing is queued).

With a timeout of 0 a batch is whatever queued while the previous one ran, and a lone caller
(no queue, a leader's place free) runs its own request at once, on its own thread, without
entering a queue: it waits for nothing and hands nothing to another thread. What batching
costs one client and gains sixteen is measured in docs/benchmarks.md (Serving); tfnn-serve
batches by default (--enable_batching=false: off).
"""

import collections
import threading
import time

import numpy as np


class _Task:
    """One caller's request: queued, maybe handed the lead, then answered."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.rows = len(next(iter(arrays.values())))
        self.arrived = time.monotonic()
        self.wake = threading.Event()  # set when answered or handed the lead
        self.answered = False
        self.lead = False
        self.outputs = None
        self.error = None


class Batcher:
    """Runs `servable.run(signature_name, arrays)` for concurrent callers in shared batches,
    on the callers' own threads (see the module).

    Args:
        max_batch_size: the most rows in one model call (requests are not split).
        batch_timeout_micros: the longest a request waits for others to join its batch.
        num_batch_threads: how many batches run at once (callers leading at once).
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
        self._most_leaders = num_batch_threads
        self._on_batch = on_batch or (lambda rows: None)
        self._queues = collections.OrderedDict()  # key → deque of _Task, oldest first
        self._ready = threading.Condition()  # guards the state; leaders wait on it
        self._leaders = 0
        self._stopped = False

    def run(self, servable, signature_name, arrays):
        """The outputs for `arrays` alone, computed in a batch with other callers' rows."""
        if any(np.ndim(a) == 0 for a in arrays.values()):  # no batch axis to merge along
            return servable.run(signature_name, arrays)
        task = None
        with self._ready:
            if self._stopped:
                raise RuntimeError("the batcher is stopped")
            if not self.timeout and not self._queues and self._leaders < self._most_leaders:
                self._leaders += 1  # nobody to wait for: its own batch, run at once
            else:
                task = self._queued(servable, signature_name, arrays)
        if task is None:
            return self._run_alone(servable, signature_name, arrays)
        if not task.lead:
            task.wake.wait()
        if task.lead:  # led from the start, or handed the lead (maybe answered meanwhile)
            self._lead(task)
        if task.error is not None:
            raise task.error
        return task.outputs

    def _queued(self, servable, signature_name, arrays):
        """A new task for `arrays` in its queue, leading if a leader may be added (under
        the lock)."""
        task = _Task(arrays)
        shapes = tuple((name, a.shape[1:], a.dtype.str) for name, a in sorted(arrays.items()))
        self._queues.setdefault((servable, signature_name, shapes), collections.deque()).append(
            task
        )
        if self._leaders < self._most_leaders:
            self._leaders += 1
            task.lead = True
        else:
            self._ready.notify_all()  # a leader waiting for its timeout: maybe due now
        return task

    def _run_alone(self, servable, signature_name, arrays):
        """A lone caller's batch of its own request, with none queued and no wait (timeout 0):
        no task, no queue, no lead loop; then the lead to whoever queued meanwhile."""
        try:
            self._on_batch(len(next(iter(arrays.values()))))
            return servable.run(signature_name, arrays)
        finally:
            with self._ready:
                self._hand_on()

    def stop(self):
        """Lets every queued request be answered, then refuses new ones."""
        with self._ready:
            self._stopped = True
            self._ready.notify_all()  # leaders waiting for a timeout run their batch now
            while self._leaders:
                self._ready.wait()

    def _due(self, now):
        """The key of the queue to run now and the wait until one is due (None: no tasks)."""
        wait = None
        for key, queue in self._queues.items():
            left = queue[0].arrived + self.timeout - now
            if left <= 0 or self._stopped or sum(t.rows for t in queue) >= self.max_batch_size:
                return key, 0
            wait = left if wait is None else min(wait, left)
        return None, wait

    def _take(self, key):
        """The tasks of the next batch from queue `key` (under the lock)."""
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
        return tasks

    def _lead(self, own):
        """Runs due batches until `own` is answered, then hands the lead on."""
        while True:
            with self._ready:
                taken = None
                while not own.answered:
                    key, wait = self._due(time.monotonic())
                    if key is not None:
                        taken = key, self._take(key)
                        break
                    self._ready.wait(wait)  # None: another leader runs `own`; it wakes us
                if taken is None:
                    self._hand_on()
                    return
            self._run(*taken)

    def _hand_on(self):
        """Passes a finished leader's lead to the oldest queued caller that does not lead;
        with none, one leader fewer (under the lock)."""
        waiting = [task for queue in self._queues.values() for task in queue if not task.lead]
        if waiting:
            successor = min(waiting, key=lambda task: task.arrived)
            successor.lead = True
            successor.wake.set()
            return
        self._leaders -= 1
        self._ready.notify_all()  # `stop` waits for no leader

    def _run(self, key, tasks):
        servable, signature_name, _ = key
        self._on_batch(sum(task.rows for task in tasks))
        try:
            if len(tasks) == 1:
                tasks[0].outputs = servable.run(signature_name, tasks[0].arrays)
            else:
                self._run_merged(servable, signature_name, tasks)
        except Exception as error:  # noqa: BLE001 — handed to every waiting caller
            for task in tasks:
                task.error = error
        with self._ready:
            for task in tasks:
                task.answered = True
            self._ready.notify_all()  # a leader whose own request another leader ran
        for task in tasks:
            task.wake.set()

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
