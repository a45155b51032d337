"""The server's Python threads on one CPU, and with "auto" on the one other work leaves free.

The server's Python threads take turns holding the GIL, and a request passes between them
several times (the event loop, a worker, the worker leading its batch, the GIL itself). On
one CPU each of these hand-offs is a wake-up on the same CPU, several times cheaper than one
across CPUs (docs/serving.md, "Python threads on one CPU"). TensorFlow's thread pools, started
before the confinement, keep every CPU for the model's kernels.

A confined thread cannot move when another process keeps its CPU busy. With "auto" (the
default of `tfnn-serve --python_threads_cpu`) a `Follower` looks every second at how busy
each CPU was (/proc/stat) and how much of that the confined threads were themselves
(/proc/self/task/<id>/stat): when other work took at least BUSY of the confined CPU while
another of the process's CPUs was idle at least IDLE of the time, it moves every confined
thread to the idlest one. A CPU given by number stays.

`confine_python_threads(cpu)` confines the calling thread and those it starts;
`check_cpu` checks a CPU given against `confinable_cpus()`, those the process may use.
"""

import contextlib
import itertools
import logging
import os
import sys

from tfnn import validation

log = logging.getLogger(__name__)

BUSY = 0.5  # others' share of the confined CPU at or above which the threads move
IDLE = 0.5  # the idle share a CPU needs at least to take them

AUTO = "auto"


def choose(cpu, cpus):
    """The CPU to confine to and whether it follows the free one: (cpu, False) for a number
    (-1: not confined); for "auto", (the last of `cpus`, True), or (-1, False) with fewer than
    two CPUs (nothing to gain) or threads that run Python in parallel (free-threaded builds,
    where one CPU would cost parallelism)."""
    if cpu != AUTO:
        return cpu, False
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    if len(cpus) < 2 or not gil:
        return -1, False
    return cpus[-1], True


def cpu_times(text):
    """{cpu: (busy ticks, all ticks)} from /proc/stat's text: busy is user, nice, system, irq,
    softirq and steal (time another guest took); the rest of all is idle and I/O wait."""
    times = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, fields[:8])
            busy = user + nice + system + irq + softirq + steal
            times[int(name[3:])] = (busy, busy + idle + iowait)
    return times


def thread_ticks(text):
    """A thread's CPU ticks (user + system) from its /proc/<pid>/task/<id>/stat text."""
    fields = text[text.rindex(")") + 2 :].split()  # its name, in parentheses, may hold spaces
    return int(fields[11]) + int(fields[12])  # utime, stime: the stat's 14th and 15th fields


class Follower:
    """Moves the threads confined to one CPU to a free one when other work keeps theirs busy
    (see the module). Call `step()` at intervals (the server: every second); the first call
    only takes the measurements the next compares with.

    Args:
        cpu: the CPU the threads are confined to now.
        cpus: the CPUs they may move to (the process's).
        read: a function path → text (tests give stand-ins for /proc).
        threads: a function → the ids of the process's threads.
        affinity: os.sched_getaffinity; set_affinity: os.sched_setaffinity.
        others: ids of threads to leave where they are (threads of the program around an
            in-process server that were on `cpu` alone before the server confined its own).
    """

    def __init__(
        self,
        cpu,
        cpus,
        *,
        read=None,
        threads=None,
        affinity=None,
        set_affinity=None,
        others=(),
    ):
        self.cpu = cpu
        self.others = set(others)
        self.cpus = list(cpus)
        self._read = read or _read
        self._threads = threads or _threads
        self._affinity = affinity or os.sched_getaffinity  # Linux only, as the follower is
        self._set_affinity = set_affinity or os.sched_setaffinity
        self._last = None  # (cpu_times, the confined threads' ticks)

    def _confined(self):
        """The ids of the threads confined to `self.cpu`, but `others`."""
        found = pinned(self.cpu, threads=self._threads, affinity=self._affinity)
        return sorted(found - self.others)

    def _ticks(self, ids):
        total = 0
        for thread in ids:
            try:
                total += thread_ticks(self._read(f"/proc/self/task/{thread}/stat"))
            except OSError:  # ended meanwhile: its ticks leave the sum as it leaves the CPU
                pass
        return total

    def step(self):
        """Measures; moves the confined threads when other work kept their CPU busy and
        another was free. Returns the CPU they are on after the step."""
        ids = self._confined()
        now = (cpu_times(self._read("/proc/stat")), self._ticks(ids))
        last, self._last = self._last, now
        if last is None:
            return self.cpu
        (before, ours_before), (after, ours_after) = last, now

        def share(cpu, busy):  # busy (or idle) ticks of `cpu` over the interval, as a share
            ticks = after[cpu][1] - before[cpu][1]
            return busy(cpu) / ticks if ticks > 0 else 0.0

        def others(cpu):
            return after[cpu][0] - before[cpu][0] - max(ours_after - ours_before, 0)

        def idle(cpu):
            return (after[cpu][1] - before[cpu][1]) - (after[cpu][0] - before[cpu][0])

        if self.cpu not in after or share(self.cpu, others) < BUSY:
            return self.cpu
        free = [c for c in self.cpus if c != self.cpu and c in after and c in before]
        target = max(free, key=lambda c: share(c, idle), default=None)
        if target is None or share(target, idle) < IDLE:
            return self.cpu
        for thread in ids:
            try:
                self._set_affinity(thread, {target})
            except OSError:  # ended meanwhile
                pass
        self.cpu = target
        self._last = None  # the next step measures from scratch, on the new CPU
        return target


def pinned(cpu, *, threads=None, affinity=None):
    """The ids of the process's threads that may run on `cpu` alone (before a confinement:
    the `others` a `Follower` leaves alone)."""
    found = set()
    affinity = affinity or os.sched_getaffinity
    for thread in (threads or _threads)():
        try:
            if affinity(thread) == {cpu}:
                found.add(thread)
        except OSError:  # ended meanwhile
            pass
    return found


def _threads():
    return [int(thread) for thread in os.listdir("/proc/self/task")]


def _read(path):
    with open(path) as file:
        return file.read()


def confinable_cpus():
    """The CPUs the calling thread may be confined to: those it may run on, on Linux; none on
    platforms that cannot set a thread's CPUs."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else []


def check_cpu(cpu):
    """`cpu` if it is "auto", -1 or one of `confinable_cpus()`, else ValueError."""
    if cpu == AUTO:
        return cpu
    validation.integer("python_threads_cpu", cpu, low=-1)
    cpus = confinable_cpus()
    if cpu == -1 or cpu in cpus:
        return cpu
    if not cpus:
        validation.fail(
            "python_threads_cpu", cpu, "auto or -1: this platform cannot confine threads"
        )
    spans, start = [], cpus[0]  # 0-3,8-11 rather than every CPU of a large machine
    for previous, current in itertools.pairwise([*cpus, None]):
        if current != previous + 1:
            spans.append(f"{start}" if start == previous else f"{start}-{previous}")
            start = current
    validation.fail(
        "python_threads_cpu", cpu, f"auto, -1 or one of this process's CPUs {','.join(spans)}"
    )


@contextlib.contextmanager
def confine_python_threads(cpu):
    """Confines the calling thread, and every thread it starts meanwhile, to `cpu` (-1: no
    change); the caller gets its CPUs back on exit.

    A trade-off for a server whose work is mostly Python: its threads take turns holding the
    GIL, so on one CPU they lose only the overlap of what they do without it (system calls,
    TensorFlow's dispatch), while each hand-off between threads on different CPUs (a request to
    a worker, to the worker leading its batch and back, the GIL itself) is a cross-CPU wake-up.
    On Linux a thread's CPUs are its own and inherited by the threads it starts: TensorFlow's
    thread pools, started at its first op before this, keep every CPU; work a confined thread
    does itself (a version loaded later by the poller, a signature's first call) runs on `cpu`.
    Under a free-threaded Python, whose threads run in parallel, this would cost parallelism
    instead.
    """
    if cpu == -1:
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as error:  # e.g. the process's CPU set changed while the models loaded
        raise ValueError(f"cannot confine threads to CPU {cpu}: {error.strerror}") from None
    try:
        yield
    finally:
        try:
            os.sched_setaffinity(0, before)
        except OSError as error:  # do not hide what ended the block
            log.warning("could not give the thread its CPUs back: %s", error.strerror)
