"""`python train.py` against the same recipe in plain PyTorch: whole-process and training time.

    python benchmarks/vs_pytorch.py --torch_python .venv-torch/bin/python   # 3 pairs, 50 epochs
    python benchmarks/vs_pytorch.py --torch_python .venv-torch/bin/python --pairs 1 --epochs 3

Compared: the default `python train.py --epochs E --seed S` (the CNN on MNIST-1D, with everything
a run does: data, model, fit, evaluation, Monte-Carlo dropout pass, pictures, export) against
benchmarks/torch_recipe.py, which trains the same network on the same splits with the same
optimizer, schedule, batch, loss and epochs, on one thread (PyTorch's intra- and inter-op
threads), and evaluates it on validation and test. tfnn runs with its default threads, one an op
and two inter-op (ops at once) where it trains; --threads N sets both sides' to N.
PyTorch is not a tfnn dependency: give its interpreter with --torch_python (the extra
`bench-torch` in pyproject.toml, best in its own virtual environment).

How:
- Before timing, each side's data is checked: tfnn.data.load and the PyTorch recipe must give
  byte-identical train / validation / test splits for every seed used. This also prepares both
  sides' data caches (TFDS's for tfnn, mnist1d's pickle for PyTorch), so no timed run makes them.
- Each side runs as its own child process of this one; each pair runs both, alternating which
  goes first. A child's wall time is measured from its start to its exit, and its peak RSS and
  CPU time come from os.wait4 on that child alone.
- Training time: PyTorch's is its training loop (all epochs with their validation passes),
  tfnn's the "fit" phase in the run's metrics.json (Model.fit, also with per-epoch validation).
- Reported: each run, then per pair the ratios tfnn / PyTorch of whole-process and training
  time, and the median of those ratios over the pairs. The ratio of whole-process CPU time
  (user + system) is printed beside them: on a machine shared with other work, wall times
  include waiting for a core and CPU time does not.
"""

import argparse
import json
import os
import pathlib
import shlex
import statistics
import sys
import tempfile
import time

from children import last_json, phase_table, run, train_py

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPE = ROOT / "benchmarks" / "torch_recipe.py"

# Prints the digest of tfnn.data.load's splits for each seed given.
TFNN_DIGEST = """
import json, sys
sys.path.insert(0, "benchmarks")
from torch_recipe import digest
from tfnn import data
for seed in map(int, sys.argv[1:]):
    d = data.load("mnist1d", seed=seed)
    print(json.dumps({"seed": seed, "digest": digest(d.train, d.validation, d.test)}))
"""


def check_data(args, seeds, cache):
    """Exits unless both interpreters give byte-identical splits for every seed."""
    tfnn_out = run([args.tfnn_python, "-c", TFNN_DIGEST, *map(str, seeds)], "tfnn data", ROOT)[0]
    # The first load of a data set prepares TFDS's copy, which may print lines of its own.
    lines = [json.loads(line) for line in tfnn_out.splitlines() if line.startswith('{"seed"')]
    tfnn = {line["seed"]: line["digest"] for line in lines}
    for seed in seeds:
        command = [args.torch_python, str(RECIPE), "--digest", "--seed", str(seed)]
        torch = last_json(run([*command, "--data_cache", cache], "PyTorch data", ROOT)[0])["digest"]
        if torch != tfnn[seed]:
            sys.exit(f"seed {seed}: the PyTorch recipe's splits differ from tfnn.data.load's")
    print(f"data: identical splits on both sides for seeds {', '.join(map(str, seeds))}")


def run_tfnn(args, seed, scratch):
    flags = ["--epochs", str(args.epochs), "--seed", str(seed)]
    flags += [] if args.threads is None else ["--threads", str(args.threads)]
    flags += shlex.split(args.tfnn_flags)
    result = train_py(args.tfnn_python, ROOT, flags, scratch)
    return {**result, "fit": result["seconds"]["fit"]}


def run_torch(args, seed, cache):
    command = [args.torch_python, str(RECIPE), "--epochs", str(args.epochs), "--seed", str(seed)]
    command += ["--threads", str(1 if args.threads is None else args.threads)]
    stdout, _, wall, rss, cpu = run([*command, "--data_cache", cache], "torch_recipe.py", ROOT)
    result = last_json(stdout)
    fit = result["fit_seconds"]
    return dict(wall=wall, fit=fit, rss=rss, cpu=cpu, val=result["val"], test=result["test"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3, help="interleaved runs of each side")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[1, 2, 3], help="pair i uses seed i mod their count"
    )
    parser.add_argument("--tfnn_python", default=sys.executable, help="interpreter with tfnn")
    parser.add_argument("--torch_python", default=sys.executable, help="interpreter with torch")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads of each side (default: PyTorch's 1, tfnn's default: one an op, two "
        "inter-op)",
    )
    parser.add_argument(
        "--tfnn_flags", default="", help='more train.py flags, e.g. "--jit_compile on"'
    )
    args = parser.parse_args()
    seeds = [args.seeds[i % len(args.seeds)] for i in range(args.pairs)]

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs")
    rows, ratios = [], []
    with tempfile.TemporaryDirectory(prefix="vs_pytorch-") as scratch:
        cache = f"{scratch}/mnist1d_data.pkl"
        check_data(args, sorted(set(seeds)), cache)
        for pair, seed in enumerate(seeds, 1):
            sides = {
                "tfnn": lambda seed=seed: run_tfnn(args, seed, scratch),
                "PyTorch": lambda seed=seed: run_torch(args, seed, cache),
            }
            order = list(sides) if pair % 2 else list(sides)[::-1]
            results = {side: sides[side]() for side in order}
            for side in order:
                rows.append((pair, seed, side, results[side]))
            tfnn, torch = results["tfnn"], results["PyTorch"]
            ratios.append([tfnn[key] / torch[key] for key in ("wall", "fit", "cpu")])
            print(f"pair {pair} (seed {seed}, {order[0]} first): done", flush=True)

    print()
    print(
        "| pair | seed | side | whole process (s) | fit (s) | per epoch (s) | CPU (s) "
        "| peak RSS (MiB) | val accuracy | test accuracy |"
    )
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for pair, seed, side, r in rows:
        print(
            f"| {pair} | {seed} | {side} | {r['wall']:.1f} | {r['fit']:.1f} "
            f"| {r['fit'] / args.epochs:.3f} | {r['cpu']:.1f} | {r['rss']:.0f} "
            f"| {r['val']['accuracy']:.4f} | {r['test']['accuracy']:.4f} |"
        )
    print()
    print("| pair | whole process tfnn/PyTorch | fit tfnn/PyTorch | CPU tfnn/PyTorch |")
    print("|---:|---:|---:|---:|")
    for pair, (whole, fit, cpu) in enumerate(ratios, 1):
        print(f"| {pair} | {whole:.3f} | {fit:.3f} | {cpu:.3f} |")
    whole, fit, cpu = (statistics.median(r[i] for r in ratios) for i in range(3))
    print(f"| median | **{whole:.3f}** | **{fit:.3f}** | {cpu:.3f} |")
    print()
    for side in ("tfnn", "PyTorch"):
        runs = [r for _, _, s, r in rows if s == side]
        accuracy = statistics.mean(r["test"]["accuracy"] for r in runs)
        per_epoch = statistics.median(r["fit"] for r in runs) / args.epochs
        rss = statistics.median(r["rss"] for r in runs)
        print(
            f"{side}: median per-epoch training {per_epoch:.3f} s, median peak RSS {rss:.0f} MiB, "
            f"mean test accuracy {accuracy:.4f}"
        )
    print()
    print(phase_table({"tfnn (median s)": [r for _, _, s, r in rows if s == "tfnn"]}))


if __name__ == "__main__":
    main()
