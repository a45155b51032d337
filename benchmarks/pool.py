"""Many runs at once: whole-process wall time of a command with --workers 1 (everything in
one process, one after another) and --workers 2 (tfnn.recipe.pool), interleaved repetitions.

    python benchmarks/pool.py [--repetitions 3] [--out /tmp/tfnn-pool-bench]
                              [--torch_python .venv-torch/bin/python] [ROW ...]

Rows:
  one_run       train.py --epochs 15 --mc_dropout 0 with --threads 1 against --threads 2: what
                a second core does inside one run
  ensemble      train.py --ensemble 4 --ensemble_kind init (default CNN on MNIST-1D)
  experiments   python -m tfnn.experiments --quick (all of them)

Each command starts from nothing (a fresh logdir and export dir, or --out folder), so the
wall includes the process start-up and, with two workers, the workers' own. Run it on an
otherwise idle machine: it measures how two cores are shared.
"""

import argparse
import json
import pathlib
import shutil
import statistics
import sys

import children

ROOT = pathlib.Path(__file__).resolve().parent.parent


def commands(folder):
    """{row: the command, less its --workers (--threads for "one_run")}; each run writes
    under `folder`."""
    train_py = [sys.executable, str(ROOT / "train.py")]
    outputs = ["--logdir", str(folder / "logs"), "--export_dir", str(folder / "exports")]
    return {
        "one_run": [*train_py, "--epochs", "15", "--mc_dropout", "0", *outputs],
        "ensemble": [*train_py, "--ensemble", "4", "--ensemble_kind", "init", *outputs],
        "experiments": [
            sys.executable,
            "-m",
            "tfnn.experiments",
            "--quick",
            "--out",
            str(folder / "experiments"),
        ],
    }


def measure(command, flag, n, folder):
    """(wall s, peak RSS MiB of the largest process, the printed result) of `command flag
    n`, from a clean `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stdout, _, wall, rss, _ = children.run([*command, flag, str(n)], "tfnn", ROOT)
    printed = [line for line in stdout.splitlines() if line.startswith("{")]
    figures = json.loads(printed[-1]) if printed else {}
    return wall, rss, {key: figures.get(key) for key in ("val", "test")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--out", default="/tmp/tfnn-pool-bench")
    parser.add_argument(
        "--torch_python",
        default=None,
        help="an interpreter with torch: also the four members in PyTorch, one after another",
    )
    parser.add_argument("rows", nargs="*", default=["one_run", "ensemble", "experiments"])
    arguments = parser.parse_args()
    out = pathlib.Path(arguments.out)
    for row in arguments.rows:
        times, rss, figures = {1: [], 2: []}, {1: [], 2: []}, {1: [], 2: []}
        torch_times = []
        for _ in range(arguments.repetitions):
            for workers in (1, 2):  # interleaved: drift hits both alike
                folder = out / f"{row}-{workers}"
                flag = "--threads" if row == "one_run" else "--workers"
                wall, peak, printed = measure(commands(folder)[row], flag, workers, folder)
                times[workers].append(wall)
                rss[workers].append(peak)
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
