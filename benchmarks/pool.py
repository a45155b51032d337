"""Many runs at once: whole-process wall time of a command with --workers 1 (everything in
one process, one after another) and --workers 2 (tfnn.recipe.pool), interleaved repetitions.

    python benchmarks/pool.py [--repetitions 3] [--out /tmp/tfnn-pool-bench]

Rows:
  ensemble      train.py --ensemble 4 --ensemble_kind init (default CNN on MNIST-1D)
  experiments   python -m tfnn.experiments --quick (all of them)

Each command starts from nothing (a fresh logdir and export dir, or --out folder), so the
wall includes the process start-up and, with two workers, the workers' own. Run it on an
otherwise idle machine: it measures how two cores are shared.
"""

import argparse
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def commands(folder):
    """{row: (the command, less its --workers)}; each run writes under `folder`."""
    return {
        "ensemble": [
            sys.executable,
            str(ROOT / "train.py"),
            "--ensemble",
            "4",
            "--ensemble_kind",
            "init",
            "--logdir",
            str(folder / "logs"),
            "--export_dir",
            str(folder / "exports"),
        ],
        "experiments": [
            sys.executable,
            "-m",
            "tfnn.experiments",
            "--quick",
            "--out",
            str(folder / "experiments"),
        ],
    }


def wall(command, workers, folder):
    """Seconds of `command --workers N`, from a clean `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run(
        [*command, "--workers", str(workers)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--out", default="/tmp/tfnn-pool-bench")
    parser.add_argument("rows", nargs="*", default=["ensemble", "experiments"])
    arguments = parser.parse_args()
    out = pathlib.Path(arguments.out)
    for row in arguments.rows:
        times = {1: [], 2: []}
        for _ in range(arguments.repetitions):
            for workers in (1, 2):  # interleaved: drift hits both alike
                folder = out / f"{row}-{workers}"
                times[workers].append(wall(commands(folder)[row], workers, folder))
        one, two = (statistics.median(times[w]) for w in (1, 2))
        print(f"{row:12s} --workers 1 {one:7.1f} s   --workers 2 {two:7.1f} s   ×{one / two:.2f}")


if __name__ == "__main__":
    main()
