"""A sweep of the MLP on MNIST-1D (A5): the best trial's validation accuracy against the
default MLP's, the wall time of --workers 2 against --workers 1, and the trials pruned.

    python benchmarks/sweep.py [--trials 24] [--out /tmp/tfnn-sweep-bench]

Each sweep is the command

    python -m tfnn.sweep --model mlp --search dropout=0:0.6 l2=1e-6:1e-2:log \\
        label_smoothing=0,0.1,0.2 learning_rate=1e-4:3e-2:log --trials 24 \\
        --pruner median --workers W --out OUT/workers-W

started from nothing (its own folder and study), so its wall includes the process start-up
and the workers'; the default MLP is `train.py --model mlp`. Where each wall went comes from
the study's records (each trial's start and end): before the first trial, the trials, after
the last (the best trial's test evaluation and export, sweep.png, the end). Run it on an
otherwise idle machine with two cores: it measures how they are shared. The goal: 2 workers
≤ 0.60× 1's.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEARCH = (
    "dropout=0:0.6",
    "l2=1e-6:1e-2:log",
    "label_smoothing=0,0.1,0.2",
    "learning_rate=1e-4:3e-2:log",
)


def sweep(out, workers, trials):
    """(wall seconds, sweep.json, where the wall went) of one sweep with `workers` in `out`."""
    command = [
        sys.executable, "-m", "tfnn.sweep", "--model", "mlp", "--search", *SEARCH,
        "--trials", str(trials), "--pruner", "median", "--workers", str(workers),
        "--out", str(out), "--export_dir", str(out / "exports"), "--verbose", "0",
    ]  # fmt: skip
    start, started = time.perf_counter(), time.time()
    subprocess.run(command, check=True, cwd=ROOT)
    wall, ended = time.perf_counter() - start, time.time()
    result = json.loads((out / "sweep.json").read_text())
    return wall, result, timeline(out, result["study"], started, ended)


def timeline(out, name, started, ended):
    """Where a sweep's wall went, from its study's records: (seconds before the first trial
    started, from the first trial's start to the last one's end, after it, the trials'
    durations summed)."""
    import optuna

    storage = f"sqlite:///{out.resolve() / 'study.db'}"
    trials = optuna.load_study(study_name=name, storage=storage).trials
    starts = [t.datetime_start.timestamp() for t in trials]
    ends = [t.datetime_complete.timestamp() for t in trials]
    durations = sum(end - begin for begin, end in zip(starts, ends, strict=True))
    return min(starts) - started, max(ends) - min(starts), ended - max(ends), durations


def default_mlp(out):
    """The default MLP's validation accuracy (train.py --model mlp)."""
    command = [
        sys.executable, str(ROOT / "train.py"), "--model", "mlp", "--verbose", "0",
        "--logdir", str(out / "logs"), "--export_dir", str(out / "exports"),
    ]  # fmt: skip
    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(printed.strip().splitlines()[-1])["val"]["accuracy"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--out", default="/tmp/tfnn-sweep-bench")
    arguments = p.parse_args()
    out = pathlib.Path(arguments.out)
    shutil.rmtree(out, ignore_errors=True)
    baseline = default_mlp(out / "default")
    walls = {}
    for workers in (1, 2):
        walls[workers], result, parts = sweep(out / f"workers-{workers}", workers, arguments.trials)
        states = [t["state"] for t in result["trials"]]
        best = result["best"]
        print(
            f"workers {workers}: {walls[workers] / 60:.1f} min, {len(states)} trials, "
            f"{states.count('PRUNED')} pruned, {states.count('FAIL')} failed; best trial "
            f"{best['number']} val accuracy {best['val']['accuracy']:.4f} (test "
            f"{best['test']['accuracy']:.4f}) {best['params']}"
        )
        print(
            "  before the first trial {:.1f} s, first trial's start to last one's end {:.1f} s, "
            "after it {:.1f} s; the trials' durations summed {:.1f} s".format(*parts)
        )
    print(f"default MLP val accuracy {baseline:.4f}")
    print(f"wall time, 2 workers / 1 worker: {walls[2] / walls[1]:.2f}")


if __name__ == "__main__":
    main()
