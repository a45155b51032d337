"""`python train.py` from two source trees, interleaved: the whole-process ratio after/before
and each tree's phases (metrics.json's "seconds", where the tree writes them).

    git worktree add /tmp/before <commit>       # the tree before a change
    python benchmarks/before_after.py /tmp/before . --pairs 3             # the default run
    python benchmarks/before_after.py /tmp/before . -- --model mlp --epochs 20

Each run is `python train.py --seed S --verbose 0 FLAGS` in its tree (so that tree's tfnn is
imported), a child of this process; pairs alternate which tree goes first, pair i uses seed
i (1, 2, 3, …). Both trees share one TFDS data folder, prepared before timing. Validation and
test figures are printed beside the times: a change meant to cost nothing leaves them equal.
"""

import argparse
import statistics
import sys
import tempfile

from children import phase_table, train_py


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="the source tree before the change")
    parser.add_argument("after", help="the source tree after it")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("flags", nargs="*", help="more train.py flags, after --")
    args = parser.parse_args()
    trees = {"before": args.before, "after": args.after}
    results = {name: [] for name in trees}
    ratios = []
    with tempfile.TemporaryDirectory(prefix="before_after-") as scratch:
        flags = ["--verbose", "0", "--data_dir", f"{scratch}/tfds", *args.flags]
        train_py(args.python, args.after, [*flags, "--epochs", "1"], f"{scratch}/warm-up")
        for pair in range(1, args.pairs + 1):
            order = list(trees) if pair % 2 else list(trees)[::-1]
            for name in order:
                run = train_py(
                    args.python,
                    trees[name],
                    [*flags, "--seed", str(pair)],
                    f"{scratch}/{pair}-{name}",
                    name,
                )
                results[name].append(run)
                print(
                    f"pair {pair} {name}: {run['wall']:.1f} s, {run['rss']:.0f} MiB, "
                    f"val {run['val']}, test {run['test']}",
                    flush=True,
                )
            ratios.append(results["after"][-1]["wall"] / results["before"][-1]["wall"])
    print()
    print(phase_table(results))
    print()
    print(
        "whole process after/before per pair: "
        + ", ".join(f"{r:.3f}" for r in ratios)
        + f"; median {statistics.median(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
