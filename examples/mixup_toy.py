"""The effect of mixup on a toy problem (docs/lecture.md D5), drawn.

Two interleaved moons (scikit-learn's `make_moons`), the same tfnn MLP trained
twice with the softmax NLL: once on the points, once on mixup pairs
x̃ = λx_i + (1 − λ)x_j, g̃ = λg_i + (1 − λ)g_j, λ ~ Beta(α, α). The picture shows
each network's probability of the second class over the plane with its
decision boundary (p = 0.5): without mixup the probability jumps from 0 to 1
in a thin band around the boundary; with mixup it changes gradually between
the classes (the network is less overconfident away from the data).

    python examples/mixup_toy.py [--alpha 1.0] [--epochs 200] [--output mixup_toy.png]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

from tfnn import data, losses  # noqa: E402
from tfnn.data import augment  # noqa: E402
from tfnn.layers import Dense  # noqa: E402


def train(x, y, alpha, epochs, seed):
    """A 2 → 64 → 64 → 2 MLP trained on (x, y), with mixup when alpha > 0."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((2,)), Dense(64, "relu"), Dense(64, "relu"), Dense(2)])
    model.compile(keras.optimizers.Adam(1e-2), losses.SoftmaxNLL())
    gold = np.eye(2, dtype="float32")[y]
    batches = data.batches(x, gold, 32, shuffle_seed=seed)
    if alpha:
        batches = augment.augment(batches, [augment.MixUp(alpha, 2)], seed)
    model.fit(batches, epochs=epochs, verbose=0, shuffle=False)  # the pipeline shuffles
    return model


def probability_grid(model, extent, steps=150):
    """P(class 1) of the model on a steps × steps grid over `extent` (x0, x1, y0, y1)."""
    xs, ys = np.linspace(extent[0], extent[1], steps), np.linspace(extent[2], extent[3], steps)
    points = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype("float32")
    probabilities = tf.nn.softmax(model(points)).numpy()[:, 1]
    return xs, ys, probabilities.reshape(steps, steps)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alpha", type=float, default=1.0, help="mixup's α (> 0)")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default="mixup_toy.png")
    args = parser.parse_args(argv)
    if not args.alpha > 0 or args.epochs < 1:
        parser.error("expected --alpha > 0 and --epochs >= 1")

    x, y = make_moons(300, noise=0.15, random_state=args.seed)
    x = x.astype("float32")
    extent = (x[:, 0].min() - 1, x[:, 0].max() + 1, x[:, 1].min() - 1, x[:, 1].max() + 1)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    confidence = {}
    for axis, (title, alpha) in zip(
        axes, (("without mixup", 0.0), (f"mixup α = {args.alpha:g}", args.alpha)), strict=True
    ):
        xs, ys, p = probability_grid(train(x, y, alpha, args.epochs, args.seed), extent)
        confidence[title] = float(np.mean(np.maximum(p, 1 - p)))
        image = axis.contourf(
            xs, ys, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", vmin=0, vmax=1
        )
        axis.contour(xs, ys, p, levels=[0.5], colors="k", linewidths=1.5)
        axis.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", edgecolors="k", s=14, vmin=0, vmax=1)
        axis.set_title(f"{title}: mean confidence {confidence[title]:.3f}")
    figure.colorbar(image, ax=axes, label="P(class 1)")
    figure.savefig(args.output, dpi=100)
    plt.close(figure)
    print(f"wrote {args.output}; mean confidence over the plane: {confidence}")
    return confidence


if __name__ == "__main__":
    main()
