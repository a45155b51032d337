"""Pictures of a run (LECTURE.md G1): learning curves and weight histograms."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def learning_curves(history, metric, best_epoch, path):
    """Train and validation loss and `metric` per epoch, the kept (best) epoch marked (D1).

    Args:
        history: {"loss": [...], "val_loss": [...], metric: [...], "val_" + metric: [...]}.
        metric: the metric's name in `history`.
        best_epoch: 1-based epoch whose weights were kept.
        path: where to write the PNG.
    """
    epochs = np.arange(1, len(history["loss"]) + 1)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, key in zip(axes, ("loss", metric), strict=True):
        axis.plot(epochs, history[key], label="train")
        axis.plot(epochs, history[f"val_{key}"], label="validation")
        axis.axvline(best_epoch, color="grey", linestyle="--", label=f"kept: epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.legend()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def weight_histogram(kernels, title, path):
    """Histogram of all kernel weights; the title gives the share of exact zeros (D4).

    Args:
        kernels: a list of weight arrays.
        title: the picture's title (e.g. the penalty used).
        path: where to write the PNG.

    Returns:
        The share of weights that are exactly 0.
    """
    weights = np.concatenate([np.ravel(k) for k in kernels])
    zeros = np.mean(weights == 0.0)
    figure, axis = plt.subplots(figsize=(6, 4), constrained_layout=True)
    axis.hist(weights, bins=101, log=True)
    axis.set_xlabel("weight")
    axis.set_ylabel("count (log scale)")
    axis.set_title(f"{title}: {zeros:.1%} of {weights.size} weights are exactly 0")
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return float(zeros)
