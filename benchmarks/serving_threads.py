"""One model call of the served CNN by rows, with one thread an op (tfnn-serve's default,
`--tensorflow_intra_op_parallelism 1`) against TensorFlow's choice (0: the cores).

The default CNN of train.py (MNIST-1D inputs [40], untrained) is exported with tfnn.export
and called in process, `signatures["serving_default"]`, as benchmarks/serving.py's in-process
baseline calls it: requests of 1, 16, 64, 1,000 and 10,000 rows, each the median of its calls.
Each thread count runs in a child process of its own (TensorFlow fixes its threads at its
first op); the children alternate, `--rounds` times each.

    python benchmarks/serving_threads.py [--rounds 3]
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
from serving import export_model  # this folder's serving benchmark: the same model

ROWS = (1, 16, 64, 1_000, 10_000)

CHILD = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
served = tf.saved_model.load(sys.argv[2]).signatures["serving_default"]
rng = np.random.default_rng(0)
medians = {}
for rows in json.loads(sys.argv[3]):
    x = rng.normal(size=(rows, 40)).astype("float32")
    for _ in range(5):  # warm up
        served(inputs=tf.constant(x))["probabilities"].numpy()
    times = []
    for _ in range(max(5, min(1_000, 20_000 // rows))):
        start = time.perf_counter()
        served(inputs=tf.constant(x))["probabilities"].numpy()  # as serving.py's in_process()
        times.append(time.perf_counter() - start)
    medians[rows] = 1e3 * float(np.median(times))
print(json.dumps(medians))
"""


def call_times(path, threads):
    """{rows: median ms of one call} in a child process with `threads` intra-op threads."""
    command = [sys.executable, "-c", CHILD, str(threads), str(path), json.dumps(ROWS)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return {int(rows): ms for rows, ms in json.loads(result.stdout.splitlines()[-1]).items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = export_model(np.random.default_rng(0))
    runs = {0: [], 1: []}
    for _ in range(args.rounds):
        for threads in runs:  # alternating: the machine's drift touches both
            runs[threads].append(call_times(path, threads))
    print(f"{os.cpu_count()} CPUs; medians over {args.rounds} rounds of each round's median\n")
    print("| rows | TensorFlow's choice (ms) | one thread an op (ms) | one / choice |")
    print("|---:|---:|---:|---:|")
    for rows in ROWS:
        choice, one = (
            sorted(run[rows] for run in runs[threads])[args.rounds // 2] for threads in (0, 1)
        )
        print(f"| {rows:,} | {choice:.3f} | {one:.3f} | {one / choice:.2f} |")


if __name__ == "__main__":
    main()
