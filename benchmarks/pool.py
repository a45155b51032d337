"""Many runs at once: whole-process wall time of a command with --workers 1 (everything in
one process, one after another) and --workers 2 (tfnn.recipe.pool), interleaved repetitions.

    python benchmarks/pool.py [--repetitions 3] [--out /tmp/tfnn-pool-bench]
                              [--torch_python .venv-torch/bin/python] [ROW ...]

Rows:
  one_run       train.py --epochs 15 --mc_dropout 0 with --threads 1 against --threads 2: what
                a second core does inside one run
  two_runs      the same run (--threads 1) alone against two copies started together: how much
                slower each run is when two share the machine (the floor of every 2/1 ratio)
  ensemble      train.py --ensemble 4 --ensemble_kind init (default CNN on MNIST-1D)
  experiments   python -m tfnn.experiments --quick (all of them)
  experiments_full  python -m tfnn.experiments (all of them, full size: ~15 minutes for both)

The CPU time is that of the command and every worker it waited for (`os.wait4`), so
2 / 1 of it is the work that running in parallel adds.

Each command starts from nothing (a fresh logdir and export dir, or --out folder), so the
wall includes the process start-up and, with two workers, the workers' own. Run it on an
otherwise idle machine: it measures how two cores are shared.
"""

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

import children

ROOT = pathlib.Path(__file__).resolve().parent.parent


def commands(folder):
    """{row: the command, less its --workers (--threads for "one_run")}; each run writes
    under `folder`."""
    train_py = [sys.executable, str(ROOT / "train.py")]
    return {
        "one_run": [*train_py, "--epochs", "15", "--mc_dropout", "0", *outputs(folder)],
        "ensemble": [*train_py, "--ensemble", "4", "--ensemble_kind", "init", *outputs(folder)],
        "experiments": [
            sys.executable,
            "-m",
            "tfnn.experiments",
            "--quick",
            "--out",
            str(folder / "experiments"),
        ],
        "experiments_full": [
            sys.executable,
            "-m",
            "tfnn.experiments",
            "--out",
            str(folder / "experiments"),
        ],
    }


def measure(command, flag, n, folder):
    """(wall s, peak RSS MiB of the largest process, CPU s of the process and its workers,
    the printed result) of `command flag n`, from a clean `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stdout, _, wall, rss, cpu = children.run([*command, flag, str(n)], "tfnn", ROOT)
    printed = [line for line in stdout.splitlines() if line.startswith("{")]
    figures = json.loads(printed[-1]) if printed else {}
    if figures.get("run"):  # a train.py run: where its time went (its metrics.json)
        seconds = json.loads((pathlib.Path(figures["run"]) / "metrics.json").read_text())
        phases = ", ".join(f"{k} {v:.1f}" for k, v in seconds["seconds"].items())
        print(f"{'':12s} {flag} {n}: {phases}")
    return wall, rss, cpu, {key: figures.get(key) for key in ("val", "test")}


def together(command, folders):
    """Wall seconds of one copy of `command` per folder (each writing under its own),
    started at once, until the last ends."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    start = time.perf_counter()
    started = [
        subprocess.Popen(
            [*command, "--threads", "1", *outputs(folder)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for folder in folders
    ]
    if any(child.wait() for child in started):
        sys.exit(f"two_runs: a run failed: {command}")
    return time.perf_counter() - start


def outputs(folder):
    return ["--logdir", str(folder / "logs"), "--export_dir", str(folder / "exports")]


def two_runs(out, repetitions):
    """The row two_runs: median wall of one run alone and of two started together."""
    command = [sys.executable, str(ROOT / "train.py"), "--epochs", "15", "--mc_dropout", "0"]
    alone, both = [], []
    for _ in range(repetitions):  # interleaved: drift hits both alike
        alone.append(together(command, [out / "alone"]))
        both.append(together(command, [out / "first", out / "second"]))
    one, two = statistics.median(alone), statistics.median(both)
    print(
        f"{'two_runs':12s} one alone {one:7.1f} s   two together {two:7.1f} s   "
        f"each run {two / one:.2f}× slower; two runs in {two / (2 * one):.2f}× the time of two "
        "one after another"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--out", default="/tmp/tfnn-pool-bench")
    parser.add_argument(
        "--torch_python",
        default=None,
        help="an interpreter with torch: also the four members in PyTorch, one after another",
    )
    parser.add_argument(
        "rows", nargs="*", default=["one_run", "two_runs", "ensemble", "experiments"]
    )
    arguments = parser.parse_args()
    out = pathlib.Path(arguments.out)
    for row in arguments.rows:
        if row == "two_runs":
            two_runs(out / "two_runs", arguments.repetitions)
            continue
        times, rss, cpu, figures = ({1: [], 2: []} for _ in range(4))
        torch_times = []
        for _ in range(arguments.repetitions):
            for workers in (1, 2):  # interleaved: drift hits both alike
                folder = out / f"{row}-{workers}"
                flag = "--threads" if row == "one_run" else "--workers"
                wall, peak, seconds, printed = measure(commands(folder)[row], flag, workers, folder)
                times[workers].append(wall)
                rss[workers].append(peak)
                cpu[workers].append(seconds)
                figures[workers].append(printed)
            if row == "ensemble" and arguments.torch_python:
                torch_times.append(torch_members(arguments.torch_python))
        one, two = (statistics.median(times[w]) for w in (1, 2))
        same = figures[1] == figures[2] if figures[1][0]["val"] else "not printed"
        flag = "--threads" if row == "one_run" else "--workers"
        print(
            f"{row:12s} {flag} 1 {one:7.1f} s   {flag} 2 {two:7.1f} s   "
            f"2/1 = {two / one:.2f}   peak RSS of a process {max(rss[1]):.0f} / "
            f"{max(rss[2]):.0f} MiB   same figures: {same}"
        )
        busy = {w: statistics.median(cpu[w]) for w in (1, 2)}
        print(
            f"{'':12s} CPU time (user + system, the process and its workers) {busy[1]:7.1f} s / "
            f"{busy[2]:7.1f} s = {busy[2] / busy[1]:.2f}; cores busy on average "
            f"{busy[1] / one:.2f} / {busy[2] / two:.2f}"
        )
        if torch_times:
            torch = statistics.median(torch_times)
            print(
                f"{'':12s} PyTorch, 4 members one after another: {torch:7.1f} s   "
                f"tfnn --workers 2 / PyTorch = {two / torch:.2f}"
            )


def torch_members(python):
    """Whole-process seconds of benchmarks/torch_recipe.py training 4 members one after
    another with PyTorch's default threads."""
    command = [python, str(ROOT / "benchmarks" / "torch_recipe.py"), "--members", "4"]
    _, _, wall, _, _ = children.run([*command, "--threads", "0"], "torch_recipe.py", ROOT)
    return wall


if __name__ == "__main__":
    main()
