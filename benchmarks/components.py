"""tfnn components vs their Keras built-in twins: training-step and loss time ratios.

Both sides run in this one process on the same data and the same initial
weights. Each measurement is a compiled `tf.function` called `--steps` times;
repetitions interleave the two sides (alternating which goes first) and the
ratio reported is the median over repetitions of tfnn time / Keras time, with
the quartiles of those per-repetition ratios to show the noise.

    python benchmarks/components.py                 # the figures in docs/benchmarks.md
    python benchmarks/components.py --repetitions 5 --steps 20   # a quick look

Measured:
  step      one SGD-with-momentum step of an MLP 40 → 100 → 100 → 10 (ReLU, dropout
            0.2, L2 on the kernels, softmax NLL on logits): tfnn.layers.Dense,
            tfnn.layers.Dropout, tfnn.regularizers.L2, tfnn.losses.SoftmaxNLL vs
            keras.layers.Dense, keras.layers.Dropout, keras.regularizers.L2,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True).
  loss      forward + backward of the loss alone on [B, 10] logits.
  cnn step  the same step for the default CNN of train.py on MNIST-1D signals
            at --cnn_batch_size (default 100, the recipe's batch): five
            conv → BN → ReLU blocks, max pooling, global average pooling, dropout:
            tfnn's Conv1D, BatchNormalization, MaxPooling1D, Dense, Dropout and
            SoftmaxNLL vs Keras's.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfnn.layers  # noqa: E402
from tfnn import losses, regularizers  # noqa: E402

INPUTS, HIDDEN, CLASSES = 40, 100, 10


def mlp(layers, l2):
    return keras.Sequential(
        [
            keras.Input((INPUTS,)),
            layers.Dense(HIDDEN, activation="relu", kernel_regularizer=l2(1e-4)),
            layers.Dropout(0.2, seed=1),
            layers.Dense(HIDDEN, activation="relu", kernel_regularizer=l2(1e-4)),
            layers.Dropout(0.2, seed=2),
            layers.Dense(CLASSES, kernel_regularizer=l2(1e-4)),
        ]
    )


def cnn(layers):
    """The default CNN of train.py ("CB-32-5-1-same,CB-32-5-1-same,M-2-2,CB-64-3-1-same,
    CB-64-3-1-same,M-2-2,CB-64-3-1-same,G,D-0.3") from the layer classes in `layers`."""

    def block(x, filters, kernel):
        x = layers.Conv1D(filters, kernel, padding="same", use_bias=False)(x)
        return layers.Activation("relu")(layers.BatchNormalization()(x))

    x = inputs = keras.Input((INPUTS, 1))
    x = layers.MaxPooling1D(2)(block(block(x, 32, 5), 32, 5))
    x = layers.MaxPooling1D(2)(block(block(x, 64, 3), 64, 3))
    x = keras.layers.GlobalAveragePooling1D()(block(x, 64, 3))
    outputs = layers.Dense(CLASSES)(layers.Dropout(0.3, seed=3)(x))
    return keras.Model(inputs, outputs)


def step_function(model, loss):
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            total = loss(y, model(x, training=True))
            if model.losses:
                total += tf.add_n(model.losses)
        optimizer.apply(tape.gradient(total, model.trainable_variables), model.trainable_variables)
        return total

    return step


def loss_function(loss):
    @tf.function
    def forward_backward(y, logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(y, logits)
        return value, tape.gradient(value, logits)

    return forward_backward


def time_calls(fn, args, steps):
    start = time.perf_counter()
    for _ in range(steps):
        result = fn(*args)
    tf.nest.map_structure(lambda t: t.numpy(), result)  # wait for the last call
    return time.perf_counter() - start


def interleaved_ratio(ours, theirs, args, steps, repetitions):
    """Median tfnn and Keras times per call, and the quartiles (25%, 50%, 75%) of the
    per-repetition ratios tfnn/Keras."""
    for fn in (ours, theirs):  # trace and warm up
        time_calls(fn, args, 3)
    ours_times, theirs_times, ratios = [], [], []
    for rep in range(repetitions):
        pair = [(ours, ours_times), (theirs, theirs_times)]
        times = {}
        for fn, bucket in pair if rep % 2 == 0 else reversed(pair):
            times[id(bucket)] = time_calls(fn, args, steps) / steps
            bucket.append(times[id(bucket)])
        ratios.append(times[id(ours_times)] / times[id(theirs_times)])
    quartiles = statistics.quantiles(ratios, n=4)
    return statistics.median(ours_times), statistics.median(theirs_times), quartiles


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steps", type=int, default=100, help="calls per timed repetition")
    parser.add_argument("--repetitions", type=int, default=41)
    parser.add_argument("--cnn_batch_size", type=int, default=100)
    args = parser.parse_args(argv)

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    print("| measured | batch | tfnn (ms) | Keras (ms) | ratio tfnn/Keras | ratio quartiles |")
    print("|---|---:|---:|---:|---:|---|")
    rng = np.random.default_rng(0)
    for batch in args.batch_sizes:
        x = tf.constant(rng.normal(size=(batch, INPUTS)).astype("float32"))
        y = tf.constant(rng.integers(0, CLASSES, size=batch))
        logits = tf.constant(rng.normal(size=(batch, CLASSES)).astype("float32"))

        keras.utils.set_random_seed(0)
        theirs_model = mlp(keras.layers, keras.regularizers.L2)
        ours_model = mlp(tfnn.layers, regularizers.L2)
        ours_model.set_weights(theirs_model.get_weights())
        their_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        rows = [
            (
                "step",
                step_function(ours_model, losses.SoftmaxNLL()),
                step_function(theirs_model, their_loss),
                (x, y),
            ),
            ("loss", loss_function(losses.SoftmaxNLL()), loss_function(their_loss), (y, logits)),
        ]
        for name, ours, theirs, call_args in rows:
            t_ours, t_theirs, (low, ratio, high) = interleaved_ratio(
                ours, theirs, call_args, args.steps, args.repetitions
            )
            print(
                f"| {name} | {batch} | {t_ours * 1e3:.3f} | {t_theirs * 1e3:.3f} | {ratio:.3f} "
                f"| {low:.3f}–{high:.3f} |",
                flush=True,
            )

    batch = args.cnn_batch_size
    signals = tf.constant(rng.normal(size=(batch, INPUTS, 1)).astype("float32"))
    y = tf.constant(rng.integers(0, CLASSES, size=batch))
    keras.utils.set_random_seed(0)
    theirs_cnn, ours_cnn = cnn(keras.layers), cnn(tfnn.layers)
    ours_cnn.set_weights(theirs_cnn.get_weights())
    their_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    t_ours, t_theirs, (low, ratio, high) = interleaved_ratio(
        step_function(ours_cnn, losses.SoftmaxNLL()),
        step_function(theirs_cnn, their_loss),
        (signals, y),
        args.steps,
        args.repetitions,
    )
    print(
        f"| cnn step | {batch} | {t_ours * 1e3:.3f} | {t_theirs * 1e3:.3f} | {ratio:.3f} "
        f"| {low:.3f}–{high:.3f} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
