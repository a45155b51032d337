"""tfnn.serving.confinement: the choice of the Python threads' CPU, its check, the
confinement, and the follower that moves them off a CPU other work keeps busy, on stand-ins
for /proc and the affinity calls."""

import logging
import os
import sys
import threading

import pytest

from tfnn.serving import confinement
from tfnn.serving.confinement import AUTO, Follower, choose, cpu_times, thread_ticks

STAT_LINE = "cpu{} {} 0 {} {} {} {} {} {} 0 0"  # user nice system idle iowait irq softirq steal


def stat(*cpus):
    """/proc/stat's text for CPUs given as (user, system, idle, iowait, irq, softirq, steal)."""
    total = [sum(column) for column in zip(*cpus, strict=True)]
    lines = [STAT_LINE.format("", *total)]
    lines += [STAT_LINE.format(i, *cpu) for i, cpu in enumerate(cpus)]
    return "\n".join([*lines, "intr 1 2 3", "ctxt 99", "btime 5"]) + "\n"


def task_stat(ticks_user, ticks_system, name="tfnn (poll) x"):
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    return f"7 ({name}) S 1 1 1 0 -1 0 0 0 0 0 {ticks_user} {ticks_system} 0 0 20 0\n"


def test_cpu_times_counts_busy_and_all_ticks_per_cpu_and_skips_the_total():
    """Catches idle or I/O wait counted as busy, steal, irq or softirq left out of busy, the
    all-CPU line read as a CPU, and the CPU numbers read from the wrong part of the name."""
    text = stat((10, 20, 30, 40, 1, 2, 3), (100, 200, 300, 400, 5, 6, 7))
    times = cpu_times(text)
    assert times == {0: (36, 106), 1: (318, 1018)}


def test_cpu_times_reads_the_nice_ticks_as_busy():
    """Catches the second field (nice) left out of busy."""
    assert cpu_times("cpu0 1 2 3 4 5 6 7 8 0 0\n") == {0: (1 + 2 + 3 + 6 + 7 + 8, 36)}


def test_thread_ticks_is_user_plus_system_after_a_name_with_spaces_and_parentheses():
    """Catches the fields counted from the first ')' (a thread name may hold one), and user or
    system time alone."""
    assert thread_ticks(task_stat(17, 5, name="a) (b c")) == 22
    assert thread_ticks(task_stat(0, 9)) == 9


def test_auto_takes_the_last_cpu_and_follows_a_number_stays():
    """Catches "auto" not resolved (or to the first CPU), a number changed, and a number
    that follows."""
    assert choose(AUTO, [0, 1, 2, 3]) == (3, True)
    assert choose(AUTO, [4, 6]) == (6, True)
    assert choose(2, [0, 1, 2]) == (2, False)
    assert choose(-1, [0, 1]) == (-1, False)


def test_auto_confines_nothing_with_one_cpu_and_two_is_enough():
    """Catches the limit of two CPUs off by one (one CPU gains nothing from confinement)."""
    assert choose(AUTO, [5]) == (-1, False)
    assert choose(AUTO, []) == (-1, False)
    assert choose(AUTO, [0, 5]) == (5, True)


def test_auto_confines_nothing_where_threads_run_python_in_parallel(monkeypatch):
    """Catches confinement chosen on a free-threaded Python (no GIL), where it costs
    parallelism."""
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert choose(AUTO, [0, 1]) == (-1, False)
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    assert choose(AUTO, [0, 1]) == (1, True)


class Machine:
    """Stand-ins for /proc and the affinity calls: `tick` advances each CPU's (busy, idle)
    ticks and the confined threads' own ticks."""

    def __init__(self, cpus=2, threads=None):
        # counters far from zero, as after a while: a sum for a difference shows
        self.busy = [70_000 + 1_000 * cpu for cpu in range(cpus)]
        self.idle = [90_000 + 3_000 * cpu for cpu in range(cpus)]
        self.affinities = threads or {11: {1}, 12: {1}, 13: {0, 1}}  # 13: a TensorFlow thread
        self.thread_ticks = {thread: 500 + 10 * thread for thread in self.affinities}
        self.offline = set()  # CPUs missing from /proc/stat's next read
        self.moves = []

    def tick(self, busy, idle, ours=0):
        for cpu, (b, i) in enumerate(zip(busy, idle, strict=True)):
            self.busy[cpu] += b
            self.idle[cpu] += i
        confined = [t for t, a in self.affinities.items() if len(a) == 1]
        for thread in confined:
            self.thread_ticks[thread] += ours / len(confined)

    def read(self, path):
        if path == "/proc/stat":
            cpus = [(b, 0, i, 0, 0, 0, 0) for b, i in zip(self.busy, self.idle, strict=True)]
            lines = stat(*cpus).splitlines(keepends=True)
            offline, self.offline = self.offline, set()
            return "".join(line for line in lines if line.split()[0][3:] not in map(str, offline))
        thread = int(path.split("/")[-2])
        if thread not in self.thread_ticks:
            raise FileNotFoundError(path)
        return task_stat(int(self.thread_ticks[thread]), 0)

    def affinity(self, thread):
        if thread not in self.affinities:
            raise ProcessLookupError(thread)
        return set(self.affinities[thread])

    def set_affinity(self, thread, cpus):
        if thread not in self.affinities:
            raise ProcessLookupError(thread)
        self.affinities[thread] = set(cpus)
        self.moves.append((thread, set(cpus)))

    def follower(self, cpu=1, cpus=(0, 1)):
        return Follower(
            cpu,
            cpus,
            read=self.read,
            threads=lambda: list(self.affinities),
            affinity=self.affinity,
            set_affinity=self.set_affinity,
        )


def test_threads_move_when_other_work_keeps_their_cpu_busy_and_another_is_free():
    """Catches a follower that never moves, moves at its first step (nothing measured yet),
    moves the unconfined TensorFlow thread, or moves to the busy CPU."""
    machine = Machine()
    follower = machine.follower()
    assert follower.step() == 1 and machine.moves == []
    machine.tick(busy=[10, 90], idle=[90, 10])  # another process takes 0.9 of CPU 1
    assert follower.step() == 0 and follower.cpu == 0
    assert machine.moves == [(11, {0}), (12, {0})]
    assert machine.affinities == {11: {0}, 12: {0}, 13: {0, 1}}


def test_the_threads_own_work_is_not_a_reason_to_move():
    """Catches the confined threads' own ticks counted as other work (a busy server would
    move at every step), or only the last thread's: the ticks of every confined thread are
    summed."""
    machine = Machine()
    follower = machine.follower()
    follower.step()
    machine.tick(busy=[10, 100], idle=[90, 0], ours=100)
    assert follower.step() == 1 and machine.moves == []


@pytest.mark.parametrize(
    "others, idle, moves",
    [(50, 50, True), (49, 50, False), (50, 49, False), (100, 100, True), (0, 100, False)],
)
def test_the_move_needs_others_at_least_busy_and_a_cpu_at_least_idle(others, idle, moves):
    """Catches BUSY or IDLE compared with > for >= (or the other way): at exactly half the
    threads move, one tick short they stay."""
    machine = Machine()
    follower = machine.follower()
    follower.step()
    machine.tick(busy=[100 - idle, others], idle=[idle, 100 - others])
    assert (follower.step() == 0) is moves


def test_after_a_move_the_next_step_measures_anew():
    """Catches the measurements kept across a move: the next step would compare CPU 0's
    ticks after the move with the old ones and move back at once."""
    machine = Machine()
    follower = machine.follower()
    follower.step()
    machine.tick(busy=[0, 100], idle=[100, 0])
    assert follower.step() == 0
    machine.tick(busy=[0, 0], idle=[100, 100])
    assert follower.step() == 0 and len(machine.moves) == 2  # measured only
    machine.tick(busy=[100, 0], idle=[0, 100])
    assert follower.step() == 1 and machine.affinities[11] == {1}


@pytest.mark.parametrize(
    "busy, target", [([40, 45, 100, 10], 3), ([10, 45, 100, 40], 0), ([45, 10, 100, 40], 1)]
)
def test_the_idlest_of_several_cpus_takes_the_threads(busy, target):
    """Catches the first or the highest free CPU taken rather than the idlest."""
    machine = Machine(cpus=4, threads={21: {2}, 22: {0, 1, 2, 3}})
    follower = machine.follower(cpu=2, cpus=(0, 1, 2, 3))
    follower.step()
    machine.tick(busy=busy, idle=[100 - b for b in busy])
    assert follower.step() == target and machine.affinities[21] == {target}


def test_the_confined_cpu_is_no_target_even_as_idle_as_the_others():
    """Catches the confined CPU counted among the candidates: at exactly half busy with other
    work and half idle it ties with a CPU half idle, and would come first in this order."""
    machine = Machine()
    follower = machine.follower(cpu=1, cpus=(1, 0))
    follower.step()
    machine.tick(busy=[50, 50], idle=[50, 50])
    assert follower.step() == 0 and machine.moves == [(11, {0}), (12, {0})]


def test_a_cpu_missing_from_either_read_is_no_target():
    """Catches a CPU that went offline (or came online) between two reads taken as a target:
    its interval cannot be measured."""
    machine = Machine(cpus=3, threads={61: {1}})
    follower = machine.follower(cpu=1, cpus=(0, 1, 2))
    machine.offline = {2}
    follower.step()
    machine.tick(busy=[80, 100, 0], idle=[20, 0, 100])
    machine.offline = {0}
    assert follower.step() == 1 and machine.moves == []


def test_a_follower_with_no_other_cpu_stays():
    """Catches a step failing (max of nothing) when the threads have nowhere to go."""
    machine = Machine(cpus=2, threads={71: {1}})
    follower = machine.follower(cpu=1, cpus=(1,))
    follower.step()
    machine.tick(busy=[0, 100], idle=[100, 0])
    assert follower.step() == 1 and machine.moves == []


def test_one_tick_in_the_interval_is_measured():
    """Catches an interval of one tick read as no interval (ticks > 1 for > 0)."""
    machine = Machine()
    follower = machine.follower()
    follower.step()
    machine.tick(busy=[0, 1], idle=[1, 0])
    assert follower.step() == 0


def test_a_cpu_outside_the_processs_set_is_never_a_target():
    """Catches a move to a CPU the process may not use (only `cpus` are candidates)."""
    machine = Machine(cpus=3, threads={31: {1}})
    follower = machine.follower(cpu=1, cpus=(1, 2))
    follower.step()
    machine.tick(busy=[0, 100, 80], idle=[100, 0, 20])
    assert follower.step() == 1 and machine.moves == []


def test_threads_that_end_meanwhile_are_skipped():
    """Catches a thread that ended between the listing and the read or the move failing the
    step (ProcessLookupError, FileNotFoundError)."""
    machine = Machine()
    follower = machine.follower()
    listed = list(machine.affinities) + [99]  # 99 ended before its affinity was read
    follower._threads = lambda: listed
    follower.step()
    machine.tick(busy=[0, 100], idle=[100, 0])
    ended = machine.set_affinity
    machine.set_affinity = lambda thread, cpus: (
        ended(thread, cpus) if thread != 12 else (_ for _ in ()).throw(ProcessLookupError())
    )
    follower._set_affinity = machine.set_affinity
    assert follower.step() == 0 and machine.affinities[11] == {0} and machine.affinities[12] == {1}


def test_a_cpu_without_ticks_in_the_interval_is_neither_busy_nor_idle():
    """Catches a division by zero when a CPU's counters did not move (a step taken twice at
    once)."""
    machine = Machine()
    follower = machine.follower()
    follower.step()
    assert follower.step() == 1


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_on_this_machine_a_step_reads_proc_and_this_threads_ticks():
    """Catches the real /proc readers (the stat's fields, the task list, a thread's stat)
    failing: two steps over this process, whose moves are recorded, not made (other tests may
    keep a CPU busy meanwhile)."""
    cpus = sorted(os.sched_getaffinity(0))
    moves = []
    follower = Follower(cpus[-1], cpus, set_affinity=lambda *move: moves.append(move))
    follower.step()
    threading.Event().wait(0.05)
    assert follower.step() in cpus
    assert cpu_times(confinement._read("/proc/stat")).keys() >= set(cpus)
    own = confinement._read(f"/proc/self/task/{threading.get_native_id()}/stat")
    assert thread_ticks(own) >= 0


def test_threads_pinned_before_the_server_confined_its_own_are_left_where_they_are():
    """Catches `others` ignored: a thread of the program around an in-process server, pinned
    to that CPU by the program, moved with the server's."""
    machine = Machine(threads={41: {1}, 42: {1}, 43: {0, 1}})
    follower = machine.follower()
    follower.others = {42}
    follower.step()
    machine.tick(busy=[0, 100], idle=[100, 0])
    assert follower.step() == 0 and machine.moves == [(41, {0})]


def test_pinned_lists_the_threads_on_that_cpu_alone_and_skips_ended_ones():
    """Catches a thread on several CPUs counted as pinned, and an ended thread failing it."""
    machine = Machine(threads={51: {1}, 52: {0, 1}, 53: {0}})
    listed = lambda: [51, 52, 53, 54]  # noqa: E731 — 54 ended before its affinity was read
    assert confinement.pinned(1, threads=listed, affinity=machine.affinity) == {51}
    assert confinement.pinned(0, threads=listed, affinity=machine.affinity) == {53}


def test_the_module_imports_where_threads_cannot_be_confined(monkeypatch):
    """Catches a Linux-only call (os.sched_getaffinity) evaluated when the module is imported:
    tfnn-serve imports it on every platform, and elsewhere auto confines nothing."""
    import importlib

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "sched_setaffinity", raising=False)
    try:
        reloaded = importlib.reload(confinement)
        assert reloaded.choose(AUTO, []) == (-1, False)
    finally:
        monkeypatch.undo()
        importlib.reload(confinement)


@pytest.mark.parametrize(
    "cpus, cpu, allowed",
    [
        ([0, 1, 2, 3, 8, 9, 10, 11], 5, "auto, -1 or one of this process's CPUs 0-3,8-11"),
        ([0, 2, 3, 5], 4, "auto, -1 or one of this process's CPUs 0,2-3,5"),
        ([7], 0, "auto, -1 or one of this process's CPUs 7"),
        ([], 0, "auto or -1: this platform cannot confine threads"),
        ([0, 1], -2, "an integer >= -1"),
    ],
)
def test_a_cpu_threads_cannot_be_confined_to_is_refused_with_the_cpus_allowed(
    monkeypatch, cpus, cpu, allowed
):
    """Catches the CPU check passing a CPU the process may not run on (or below -1), and its
    message's runs of CPUs (a single CPU, a run, the last one) drawn wrong or its text
    changed."""
    monkeypatch.setattr(confinement, "confinable_cpus", lambda: cpus)
    with pytest.raises(ValueError) as refused:
        confinement.check_cpu(cpu)
    assert str(refused.value) == f"Expected {allowed}. Received: python_threads_cpu={cpu}"


@pytest.mark.parametrize(
    "cpus, cpu",
    [([0, 1, 2], -1), ([0, 1, 2], 2), ([0, 1, 2], 0), ([], -1), ([0, 1], "auto"), ([], "auto")],
)
def test_minus_one_auto_and_the_processs_cpus_are_taken(monkeypatch, cpus, cpu):
    """Catches the CPU check refusing -1, auto (also where nothing can be confined: it then
    confines nothing) or one of the process's CPUs (the first, the last)."""
    monkeypatch.setattr(confinement, "confinable_cpus", lambda: cpus)
    assert confinement.check_cpu(cpu) == cpu


def test_the_confinable_cpus_are_the_affinity_where_it_can_be_set(monkeypatch):
    """Catches confinable_cpus() not sorted, or offering CPUs where threads cannot be
    confined (no os.sched_setaffinity)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 1, 2} if pid == 0 else None)
    assert confinement.confinable_cpus() == [1, 2, 3]
    monkeypatch.delattr(os, "sched_setaffinity")
    assert confinement.confinable_cpus() == []


def test_confining_sets_one_cpu_and_gives_the_cpus_back(monkeypatch, caplog):
    """Catches the confinement not made, made on another thread or CPU set, not undone, or
    undone to other CPUs; -1 changing nothing; and a failure to confine not a ValueError naming
    the CPU, or a failure to undo it raised instead of logged."""
    calls = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1} if pid == 0 else None)
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: calls.append((pid, cpus)))
    with confinement.confine_python_threads(-1):
        assert calls == []
    with confinement.confine_python_threads(1):
        assert calls == [(0, {1})]
    assert calls == [(0, {1}), (0, {0, 1})]

    def refuse(pid, cpus):
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    with pytest.raises(ValueError, match=r"^cannot confine threads to CPU 1: Invalid argument$"):
        with confinement.confine_python_threads(1):
            pytest.fail("confined")
    confined = []

    def undo_refused(pid, cpus):
        if confined:
            raise OSError(1, "Operation not permitted")
        confined.append(cpus)

    monkeypatch.setattr(os, "sched_setaffinity", undo_refused)
    with caplog.at_level(logging.WARNING, logger="tfnn.serving"):
        with confinement.confine_python_threads(1):
            pass
    assert [r.getMessage() for r in caplog.records] == [
        "could not give the thread its CPUs back: Operation not permitted"
    ]
