"""Why tfnn and train.py are written as they are: each row times a choice against its alternative.

All in one process, interleaved repetitions, median of the per-repetition ratios
alternative / chosen (above 1: the choice is faster).

    python benchmarks/ablations.py

Rows:
  relu                  MLP training step (benchmarks/components.py, batch 1000) with ReLU
                        as tf.maximum(x, 0) vs tf.nn.relu (tfnn.activations.relu)
  batch normalization   default-CNN training step (batch 100) with tfnn's BatchNormalization
                        applying γ(x − μ)/√(σ² + ε) + β term by term vs folded into x·a + b
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from components import CLASSES, INPUTS, cnn, interleaved_ratio, mlp, step_function  # noqa: E402

import tfnn.layers  # noqa: E402
from tfnn import losses, regularizers  # noqa: E402


class MaximumReLU:
    """tfnn's layers, with ReLU written as tf.maximum(x, 0)."""

    Dropout = tfnn.layers.Dropout

    @staticmethod
    def Dense(units, activation=None, **kwargs):  # noqa: N802 (a layer class's name)
        if activation == "relu":
            activation = lambda x: tf.maximum(x, tf.zeros_like(x))  # noqa: E731
        return tfnn.layers.Dense(units, activation=activation, **kwargs)


class TermByTermBatchNormalization(tfnn.layers.BatchNormalization):
    """γ(x − μ)/√(σ² + ε) + β with every term applied to the whole tensor."""

    def _standardize(self, x, mean, variance):
        rank = x.shape.rank
        y = (x - mean) * tf.math.rsqrt(variance + self.epsilon)
        return y * self._broadcast(self.gamma, rank) + self._broadcast(self.beta, rank)


class TermByTermLayers:
    Conv1D, Activation, MaxPooling1D, Dense, Dropout = (
        tfnn.layers.Conv1D,
        tfnn.layers.Activation,
        tfnn.layers.MaxPooling1D,
        tfnn.layers.Dense,
        tfnn.layers.Dropout,
    )
    BatchNormalization = TermByTermBatchNormalization


def step_ratio(alternative, chosen, args, steps, repetitions):
    loss = losses.SoftmaxNLL()
    chosen.set_weights(alternative.get_weights())
    _, _, (low, ratio, high) = interleaved_ratio(
        step_function(alternative, loss), step_function(chosen, loss), args, steps, repetitions
    )
    return low, ratio, high


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repetitions", type=int, default=21)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    print("| choice | alternative / chosen | quartiles |")
    print("|---|---:|---|")

    def row(name, quartiles):
        low, ratio, high = quartiles
        print(f"| {name} | {ratio:.3f} | {low:.3f}–{high:.3f} |", flush=True)

    x = tf.constant(rng.normal(size=(1000, INPUTS)).astype("float32"))
    y = tf.constant(rng.integers(0, CLASSES, size=1000))
    keras.utils.set_random_seed(0)
    row(
        "relu: tf.nn.relu, not tf.maximum(x, 0)",
        step_ratio(
            mlp(MaximumReLU, regularizers.L2),
            mlp(tfnn.layers, regularizers.L2),
            (x, y),
            args.steps,
            args.repetitions,
        ),
    )
    signals = tf.constant(rng.normal(size=(100, INPUTS, 1)).astype("float32"))
    y = tf.constant(rng.integers(0, CLASSES, size=100))
    keras.utils.set_random_seed(0)
    row(
        "batch normalization: folded x·a + b, not term by term",
        step_ratio(
            cnn(TermByTermLayers), cnn(tfnn.layers), (signals, y), args.steps, args.repetitions
        ),
    )


if __name__ == "__main__":
    main()
