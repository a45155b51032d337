"""Mixed precision on a CPU: a training step in float32 against the same step under
`mixed_bfloat16` (or `mixed_float16`), for MLPs of growing width and the default CNN.

    python benchmarks/precision.py                    # the rows of docs/benchmarks.md
    python benchmarks/precision.py --widths 256 --repetitions 5 --steps 10   # a quick look

Each row builds one tfnn model per policy with the same initial weights and times one
compiled Adam step on softmax NLL (tfnn.losses.SoftmaxNLL computes in float32 whatever the
policy) — `--steps` calls per repetition, the two sides interleaved, the median over
repetitions of mixed / float32 and its quartiles. TensorFlow's op threads: `--threads`.
Whether a mixed policy helps depends on the CPU: bfloat16 matrix products need AVX512_BF16 or
AMX to be fast, float16 ones have no fast path on most CPUs.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from components import interleaved_ratio  # noqa: E402

from tfnn import losses  # noqa: E402
from tfnn.models.cnn import cnn  # noqa: E402
from tfnn.models.mlp import mlp  # noqa: E402
from tfnn.recipe.options import DEFAULT_CNN  # noqa: E402

SIGNAL, CLASSES = 40, 10  # MNIST-1D's signal length and classes


def adam_step(model):
    """One compiled Adam step of `model` on softmax NLL (Keras's optimizer handles the
    float32 weights of a mixed model)."""
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    loss = losses.SoftmaxNLL()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)
        return value

    return step


def under(policy, build):
    """`build()` with `policy` as the global Keras dtype policy, restored afterwards."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)  # the same initial weights under both policies
        return build()
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--policy", default="mixed_bfloat16", choices=["mixed_bfloat16", "mixed_float16"]
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512, 1024, 2048, 4096])
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20, help="calls per timed repetition")
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    rng = np.random.default_rng(0)
    batch = args.batch_size
    signals = tf.constant(rng.normal(size=(batch, SIGNAL)).astype("float32"))
    y = tf.constant(rng.integers(0, CLASSES, size=batch))
    signal_statistics = (0.0, 1.0)  # the mean and variance that standardize the inputs
    feature_statistics = (np.zeros(SIGNAL, "float32"), np.ones(SIGNAL, "float32"))
    rows = [
        (
            f"MLP {width}–{width}",
            lambda width=width: mlp(
                (SIGNAL,), CLASSES, hidden_layers=(width, width), statistics=feature_statistics
            ),
            signals,
        )
        for width in args.widths
    ]
    rows.append(
        (
            "default CNN",
            lambda: cnn((SIGNAL, 1), CLASSES, DEFAULT_CNN, statistics=signal_statistics),
            tf.expand_dims(signals, -1),
        )
    )
    print(f"TensorFlow {tf.__version__}, {args.threads} thread(s), batch {batch}, {args.policy}")
    print(f"| model | float32 (ms) | {args.policy} (ms) | ratio mixed/float32 | quartiles |")
    print("|---|---:|---:|---:|---|")
    for name, build, x in rows:
        mixed = adam_step(under(args.policy, build))
        full = adam_step(under("float32", build))
        t_mixed, t_full, (low, ratio, high) = interleaved_ratio(
            mixed, full, (x, y), args.steps, args.repetitions
        )
        print(
            f"| {name} | {t_full * 1e3:.2f} | {t_mixed * 1e3:.2f} | {ratio:.3f} "
            f"| {low:.3f}–{high:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
