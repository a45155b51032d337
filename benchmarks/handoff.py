"""The cost of handing work from one Python thread to another, on one CPU and across two.

Two threads pass a lock back and forth (a round trip is two hand-offs, each a wake-up of a
sleeping thread and the GIL changing hands), first both confined to one CPU, then each to its
own; rounds alternate between the two placements. This is what `tfnn-serve
--python_threads_cpu` trades on: a request passes between the server's Python threads several
times.

    python benchmarks/handoff.py [--trips 20000] [--rounds 3]
"""

import argparse
import os
import statistics
import threading
import time

from tfnn.serving.confinement import confine_python_threads


def round_trips(cpu_a, cpu_b, trips):
    """Microseconds per round trip between a thread on `cpu_a` and one on `cpu_b`."""
    ping, pong = threading.Lock(), threading.Lock()
    ping.acquire()
    pong.acquire()
    ready = threading.Barrier(2)

    def other():
        os.sched_setaffinity(0, {cpu_b})
        ready.wait()
        for _ in range(trips):
            ping.acquire()
            pong.release()

    with confine_python_threads(cpu_a):
        thread = threading.Thread(target=other)
        thread.start()
        ready.wait()
        start = time.perf_counter()
        for _ in range(trips):
            ping.release()
            pong.acquire()
        elapsed = time.perf_counter() - start
        thread.join()
    return 1e6 * elapsed / trips


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=20_000, help="round trips per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per placement")
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        parser.error("needs two CPUs")
    placements = {"one CPU": (cpus[0], cpus[0]), "two CPUs": (cpus[0], cpus[1])}
    times = {name: [] for name in placements}
    for _ in range(args.rounds):
        for name, (a, b) in placements.items():
            times[name].append(round_trips(a, b, args.trips))
    print(f"{os.cpu_count()} CPUs; {args.trips:,} round trips × {args.rounds} rounds, medians\n")
    print("| threads on | µs per round trip (two hand-offs) |")
    print("|---|---:|")
    for name, values in times.items():
        print(f"| {name} | {statistics.median(values):.1f} |")
    ratio = statistics.median(times["two CPUs"]) / statistics.median(times["one CPU"])
    print(f"\ntwo CPUs / one CPU: {ratio:.2f}")


if __name__ == "__main__":
    main()
