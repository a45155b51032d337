"""Where the experiments' two workers spend their time (docs/benchmarks.md, "Many runs at once").

    python benchmarks/experiments_timeline.py timeline [--quick]   # the command on two workers
    python benchmarks/experiments_timeline.py side_by_side   # one measurement alone, then two

timeline: `python -m tfnn.experiments --workers 2` in this process, with the pool's hand-overs
timed (when each measurement went to a worker and when its outcome came back); prints each
measurement's start, end and seconds, each worker's busy time and the gaps between its
items, whether this process imported TensorFlow, and the CPU time of this process and of
its workers. Busy wall time against the workers' CPU time says whether the cores idle between
the items or inside them.

side_by_side: one full-size measurement (penalties, L2 0.01) in a fresh process alone, then
in two processes started together: the wall and CPU time of each.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

# One measurement in a fresh process, configured as a pool worker is.
MEASUREMENT = """
import os, sys, time
from tfnn.recipe import pool
pool.start_training_worker()
from tfnn.experiments import common, penalties
call = common.Call(penalties.measure, False, ("l2", 0.01))
wall, cpu = time.perf_counter(), time.process_time()
common.measure_call(call=call)
print(f"wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s")
"""


def timeline(quick):
    from tfnn.experiments import __main__ as command
    from tfnn.recipe import pool

    start, events = time.perf_counter(), []
    send, collect = pool.Pool._send, pool.Pool._collect

    def timed_send(self, worker, item):
        events.append((time.perf_counter() - start, worker.process.pid, item.name, "start"))
        return send(self, worker, item)

    def timed_collect(self, worker):
        name = worker.item.name
        outcome = collect(self, worker)
        events.append((time.perf_counter() - start, worker.process.pid, name, "end"))
        return outcome

    pool.Pool._send, pool.Pool._collect = timed_send, timed_collect
    with tempfile.TemporaryDirectory() as out:
        command.main(["--workers", "2", "--out", out, *(["--quick"] if quick else [])])
    wall = time.perf_counter() - start
    began = {}
    for at, pid, name, kind in events:
        if kind == "start":
            began[name] = at
        else:
            print(f"{began[name]:7.1f} {at:7.1f} {at - began[name]:6.1f} s  worker {pid}  {name}")
    for pid in sorted({event[1] for event in events}):
        mine = [event for event in events if event[1] == pid]
        busy = sum(at - began[name] for at, _, name, kind in mine if kind == "end")
        ends = [at for at, _, _, kind in mine if kind == "end"]
        starts = [at for at, _, _, kind in mine if kind == "start"][1:]
        gaps = sum(s - e for s, e in zip(starts, ends, strict=False))
        print(
            f"worker {pid}: first item {mine[0][0]:.1f} s, last outcome {ends[-1]:.1f} s, "
            f"busy {busy:.1f} s, gaps between items {gaps:.1f} s"
        )
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"wall {wall:.1f} s; CPU: this process {own.ru_utime + own.ru_stime:.1f} s, its "
        f"workers {workers.ru_utime + workers.ru_stime:.1f} s; this process imported "
        f"TensorFlow: {'tensorflow' in sys.modules}"
    )


def side_by_side():
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def started():
        return subprocess.Popen(
            [sys.executable, "-c", MEASUREMENT],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    alone = started()
    print(f"alone:      {alone.communicate()[0].strip()}")
    pair = [started(), started()]
    for index, child in enumerate(pair, 1):
        print(f"together {index}: {child.communicate()[0].strip()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("timeline", "side_by_side"))
    parser.add_argument("--quick", action="store_true", help="timeline: the quick size")
    arguments = parser.parse_args()
    if arguments.what == "timeline":
        timeline(arguments.quick)
    else:
        side_by_side()


if __name__ == "__main__":  # the pool's spawned workers import this file as __mp_main__
    main()
