"""A tfnn MLP on three interleaved spirals, trained with Keras's Model.fit.

Every component of the model and its loss is tfnn's; Keras supplies the
training loop, the optimizer and early stopping:

    python examples/quickstart.py [--seed 42] [--epochs 200]

The spirals are generated here (no download): 3 classes × 500 points in 2D,
split 60/20/20 into train, validation (early stopping) and test (reported once).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfnn import constraints, initializers, losses, regularizers  # noqa: E402
from tfnn.layers import Activation, Dense, Dropout  # noqa: E402


def spirals(classes=3, per_class=500, noise=0.15, seed=0):
    """Points on `classes` interleaved spiral arms, shuffled: (x [N, 2] float32, y [N] int)."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.25, 1.0, size=(classes, per_class))
    angle = 3 * np.pi * t + 2 * np.pi * np.arange(classes)[:, None] / classes
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=-1).reshape(-1, 2)
    x += rng.normal(scale=noise * 0.25, size=x.shape)
    y = np.repeat(np.arange(classes), per_class)
    order = rng.permutation(len(y))
    return x[order].astype("float32"), y[order]


def model(seed):
    def hidden():
        return Dense(
            128,
            activation="relu",
            kernel_initializer=initializers.HeNormal(seed=seed),
            kernel_regularizer=regularizers.L2(1e-5),
            kernel_constraint=constraints.MaxNorm(4.0),
        )

    return keras.Sequential(
        [
            keras.Input((2,)),
            hidden(),
            Dropout(0.1, seed=seed),
            hidden(),
            Dropout(0.1, seed=seed + 1),
            Dense(3, kernel_initializer=initializers.GlorotUniform(seed=seed)),
        ]
    )


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=positive_int, default=200)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    x, y = spirals(seed=args.seed)
    n_train, n_val = int(0.6 * len(y)), int(0.2 * len(y))
    train, val, test = np.split(np.arange(len(y)), [n_train, n_train + n_val])

    net = model(args.seed)
    net.compile(
        keras.optimizers.Adam(3e-3),
        losses.SoftmaxNLL(label_smoothing=0.05),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    net.summary()
    history = net.fit(
        x[train],
        y[train],
        validation_data=(x[val], y[val]),
        batch_size=64,
        epochs=args.epochs,
        callbacks=[
            keras.callbacks.EarlyStopping("val_accuracy", patience=30, restore_best_weights=True)
        ],
        verbose=2,
    )
    best = int(np.argmax(history.history["val_accuracy"]))
    _, test_accuracy = net.evaluate(x[test], y[test], verbose=0)
    print(
        f"best epoch {best + 1}: validation accuracy {history.history['val_accuracy'][best]:.4f}; "
        f"test accuracy {test_accuracy:.4f}"
    )
    probabilities = keras.Sequential([net, Activation("softmax")]).predict(x[test][:3], verbose=0)
    print("class probabilities of three test points:\n", np.round(probabilities, 3))


if __name__ == "__main__":
    main()
