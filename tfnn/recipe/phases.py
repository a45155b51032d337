"""Where a run's wall time goes: seconds per phase, for metrics.json's "seconds" and the line a
run prints last.

    start-up     the process's start to the recipe's first call (interpreter, imports, flags);
                 a process's later runs have none
    data         loading the data set and settling the plan (statistics, target scale)
    build        building and compiling the model(s)
    fit          Keras's fit (every epoch with its validation pass)
    evaluation   validation and test figures of the trained model (an ensemble's table; on a
                 pool, waiting for the workers measuring it and its Monte-Carlo dropout)
    mc_dropout   the Monte-Carlo dropout passes (here)
    pictures     learning curves, filters, histograms, augmented examples, the ensemble table
    export       writing the SavedModel (an ensemble on a pool: while its workers measure)
    total        the process's start (or the call) to the end of the run

A phase that runs several times (an ensemble's members) adds up. A resumed run
reports the phases it ran, not those an earlier process finished. The phases
do not cover everything (run-folder bookkeeping, saving the trained model):
their sum is at most the total.
"""

import contextlib
import os
import time

PHASES = ("start-up", "data", "build", "fit", "evaluation", "mc_dropout", "pictures", "export")


def _process_age():
    """Seconds since this process started (Linux's /proc), or None where unknown."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        with open("/proc/uptime") as uptime:
            up = float(uptime.read().split()[0])
    except OSError:
        return None
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start, in ticks
    return max(up - started, 0.0)


class Stopwatch:
    """Seconds per phase of one run (`seconds`), in PHASES' order, and the total."""

    def __init__(self, *, from_process_start=False):
        """`from_process_start`: count the time since the process started as start-up (and in
        the total), where the system tells it."""
        self._start = time.perf_counter()
        self._seconds = {}
        age = _process_age() if from_process_start else None
        if age is not None:
            self._start -= age
            self._seconds["start-up"] = age

    @contextlib.contextmanager
    def phase(self, name):
        """Times the block as `name` (one of PHASES), adding to earlier blocks of that name."""
        if name not in PHASES:
            raise ValueError(f"Expected a phase in {PHASES}. Received: name={name!r}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - start

    @property
    def seconds(self):
        """{phase: s} of the phases run so far, rounded to ms, and "total" up to now."""
        ordered = {name: round(self._seconds[name], 3) for name in PHASES if name in self._seconds}
        return {**ordered, "total": round(time.perf_counter() - self._start, 3)}

    def line(self):
        """ "seconds: start-up 4.1, data 0.9, …, total 31.2": the phases in one line."""
        return "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())
