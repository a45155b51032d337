"""train.py with one TensorFlow inter-op thread (as `--threads 1`) against two (its default
where it trains), one thread an op each, interleaved pairs in child processes.

    python benchmarks/inter_op.py [--pairs 3] [--epochs 15]

Each child is train.py with `--mc_dropout 0` and the epochs given, its process-wide settings
made as train.py makes them, then the inter-op count set before TensorFlow's first op. Prints
the median phases of each side, the whole process's wall and CPU time per pair, and whether
the printed figures were the same.
"""

import argparse
import pathlib
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
INTER_OP = "--with_inter_op_threads"


def train_with_inter_op(count, flags):
    """train.py's command with `count` inter-op threads (this file run as a child)."""
    from tfnn.recipe import process

    configure = process.configure

    def with_inter_op(**settings):
        configure(**settings)
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(count)

    process.configure = with_inter_op
    sys.argv = ["train.py", *flags]
    from tfnn.cli.train import command

    command()


def main():
    import children

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    flags = ["--epochs", str(args.epochs), "--mc_dropout", "0"]
    results = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as scratch:
        for pair in range(args.pairs):
            for count in (1, 2):  # interleaved: the machine's drift touches both
                script = (__file__, INTER_OP, str(count))
                results[count].append(
                    children.train_py(
                        sys.executable, ROOT, flags, f"{scratch}/{pair}-{count}", script=script
                    )
                )
    print(children.phase_table({f"{n} inter-op": results[n] for n in (1, 2)}))
    print("\n| pair | wall 2 / 1 | CPU 1 (s) | CPU 2 (s) | CPU 2 / 1 | same figures |")
    print("|---:|---:|---:|---:|---:|---|")
    for pair, (one, two) in enumerate(zip(results[1], results[2], strict=True), 1):
        same = (one["val"], one["test"]) == (two["val"], two["test"])
        print(
            f"| {pair} | {two['wall'] / one['wall']:.3f} | {one['cpu']:.1f} | {two['cpu']:.1f} "
            f"| {two['cpu'] / one['cpu']:.2f} | {same} |"
        )
    ratios = [two["wall"] / one["wall"] for one, two in zip(results[1], results[2], strict=True)]
    print(f"\nmedian wall 2 / 1: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == INTER_OP:
        train_with_inter_op(int(sys.argv[2]), sys.argv[3:])
    else:
        main()
