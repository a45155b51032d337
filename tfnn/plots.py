"""Pictures of a run (docs/lecture.md G1): learning curves and weight histograms."""

import matplotlib as _matplotlib

_matplotlib.use("Agg")

import matplotlib.pyplot as _plt  # noqa: E402
import numpy as _np  # noqa: E402

from tfnn import files  # noqa: E402

__all__ = [
    "augmented_samples",
    "ensemble_table",
    "first_layer_filters",
    "learning_curves",
    "sweep_history",
    "weight_histogram",
]


def _save(figure, path):
    """Writes `figure` to `path` whole (tfnn.files) and closes it."""
    with files.replacing(path) as temporary:
        figure.savefig(temporary, dpi=100)
    _plt.close(figure)


def learning_curves(history, metric, best_epoch, path):
    """Train and validation loss and `metric` per epoch, the kept (best) epoch marked (D1).

    Args:
        history: {"loss": [...], "val_loss": [...], metric: [...], "val_" + metric: [...]}.
        metric: the metric's name in `history`.
        best_epoch: 1-based epoch whose weights were kept.
        path: where to write the PNG.
    """
    epochs = _np.arange(1, len(history["loss"]) + 1)
    figure, axes = _plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axis, key in zip(axes, ("loss", metric), strict=True):
        axis.plot(epochs, history[key], label="train")
        axis.plot(epochs, history[f"val_{key}"], label="validation")
        axis.axvline(best_epoch, color="grey", linestyle="--", label=f"kept: epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.legend()
    _save(figure, path)


def weight_histogram(kernels, title, path):
    """Histogram of all kernel weights; the title gives the share of exact zeros (D4).

    Args:
        kernels: a list of weight arrays.
        title: the picture's title (e.g. the penalty used).
        path: where to write the PNG.

    Returns:
        The share of weights that are exactly 0.
    """
    weights = _np.concatenate([_np.ravel(k) for k in kernels])
    zeros = _np.mean(weights == 0.0)
    figure, axis = _plt.subplots(figsize=(6, 4), constrained_layout=True)
    axis.hist(weights, bins=101, log=True)
    axis.set_xlabel("weight")
    axis.set_ylabel("count (log scale)")
    axis.set_title(f"{title}: {zeros:.1%} of {weights.size} weights are exactly 0")
    _save(figure, path)
    return float(zeros)


def first_layer_filters(kernel, path, title="first-layer filters"):
    """The trained filters of the first convolution (F6).

    Args:
        kernel: a Conv1D kernel (W, C, F), drawn as F curves (one line per
            input channel), or a Conv2D kernel (H, W, C, F), drawn as F image
            tiles (grey for C = 1, colour for C = 3, channel 0 otherwise),
            each scaled to its own range.
        path: where to write the PNG.
        title: the picture's title.
    """
    kernel = _np.asarray(kernel)
    filters = kernel.shape[-1]
    columns = min(8, filters)
    rows = -(-filters // columns)
    figure, axes = _plt.subplots(
        rows, columns, figsize=(1.6 * columns, 1.4 * rows + 0.4), squeeze=False
    )
    for index, axis in enumerate(axes.flat):
        axis.set_xticks([])
        axis.set_yticks([])
        if index >= filters:
            axis.axis("off")
            continue
        weights = kernel[..., index]
        if kernel.ndim == 3:
            axis.plot(weights)
            axis.axhline(0.0, color="grey", linewidth=0.5)
        else:
            tile = weights if weights.shape[-1] == 3 else weights[..., 0]
            low, high = tile.min(), tile.max()
            axis.imshow(
                (tile - low) / (high - low + 1e-12), cmap=None if tile.ndim == 3 else "gray"
            )
    figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path)


def augmented_samples(original, augmented, path):
    """Training examples before (top) and after (bottom) augmentation (D5).

    Signals [N, T] or [N, T, C] are drawn as curves, one panel per example
    with both versions overlaid; images [N, H, W, C] as two rows of tiles.
    """
    original, augmented = _np.asarray(original), _np.asarray(augmented)
    count = len(original)
    if original.ndim == 4:
        figure, axes = _plt.subplots(2, count, figsize=(1.5 * count, 3.4), squeeze=False)
        for row, (images, label) in enumerate(((original, "original"), (augmented, "augmented"))):
            for column in range(count):
                axis = axes[row, column]
                tile = images[column]
                tile = _np.clip(tile, 0.0, 1.0)
                axis.imshow(
                    tile if tile.shape[-1] == 3 else tile[..., 0], cmap="gray", vmin=0, vmax=1
                )
                axis.set_xticks([])
                axis.set_yticks([])
            axes[row, 0].set_ylabel(label)
    else:
        columns = min(4, count)
        rows = -(-count // columns)
        figure, axes = _plt.subplots(rows, columns, figsize=(3 * columns, 2 * rows), squeeze=False)
        for index, axis in enumerate(axes.flat):
            if index >= count:
                axis.axis("off")
                continue
            axis.plot(
                original[index].reshape(len(original[index]), -1), color="grey", label="original"
            )
            axis.plot(
                augmented[index].reshape(len(augmented[index]), -1), color="C0", label="augmented"
            )
            axis.set_xticks([])
        axes[0, 0].legend(fontsize="small")
    figure.suptitle("training examples: original and augmented")
    figure.tight_layout()
    _save(figure, path)


def ensemble_table(table, metric, path):
    """Each member's `metric` and that of the ensemble of the first n members (D6).

    Args:
        table: {"members": [{"val": {...}, "test": {...}}, …],
            "ensembles": [{"members": n, "val": {...}, "test": {...}}, …]}.
        metric: the metric to draw.
        path: where to write the PNG.
    """
    figure, axis = _plt.subplots(figsize=(6, 4), constrained_layout=True)
    for split, colour in (("val", "tab:blue"), ("test", "tab:orange")):
        members = [row[split][metric] for row in table["members"]]
        axis.plot(
            _np.arange(1, len(members) + 1), members, "o", color=colour, label=f"member ({split})"
        )
        sizes = [row["members"] for row in table["ensembles"]]
        combined = [row[split][metric] for row in table["ensembles"]]
        axis.plot(sizes, combined, "-", color=colour, label=f"ensemble of 1..n ({split})")
    axis.set_xlabel("member n / ensemble size n")
    axis.set_ylabel(metric)
    axis.set_xticks(_np.arange(1, len(table["members"]) + 1))
    axis.legend()
    _save(figure, path)


def sweep_history(trials, search, metric, maximize, path):
    """A sweep (A5): each trial's validation figure by trial number with the best so far, and
    one panel per searched option, its value against the figure (pruned trials at their last
    reported figure, hollow).

    Args:
        trials: [{"number", "params", "value", "state"}] (value None where none was reached).
        search: {option: {"low", "high", "log"} or {"choices"}} (tfnn.sweep.space).
        metric: the validation figure's name.
        maximize: whether a higher figure is better.
        path: where to write the PNG.
    """
    shown = [t for t in trials if t["value"] is not None]
    figure, axes = _plt.subplots(
        1, 1 + len(search), figsize=(4 * (1 + len(search)), 3.5), constrained_layout=True
    )
    axes = _np.atleast_1d(axes)
    complete = [t for t in shown if t["state"] == "COMPLETE"]
    pruned = [t for t in shown if t["state"] == "PRUNED"]
    for group, style in ((complete, {}), (pruned, {"facecolors": "none"})):
        axes[0].scatter(
            [t["number"] for t in group],
            [t["value"] for t in group],
            **style,
            edgecolors="C0",
            label=f"{len(group)} {'pruned' if style else 'complete'}",
        )
    if complete:
        order = sorted(complete, key=lambda t: t["number"])
        best = (_np.maximum if maximize else _np.minimum).accumulate([t["value"] for t in order])
        axes[0].step([t["number"] for t in order], best, where="post", color="C1", label="best")
    axes[0].set_xlabel("trial")
    axes[0].set_ylabel(f"val {metric}")
    axes[0].legend()
    for axis, (name, space) in zip(axes[1:], search.items(), strict=True):
        for group, style in ((complete, {}), (pruned, {"facecolors": "none"})):
            values = [t["params"].get(name) for t in group]
            if "choices" in space:  # a categorical axis: the choices' positions
                labels = [
                    "+".join(map(str, c)) if isinstance(c, list) else str(c)
                    for c in space["choices"]
                ]
                values = [labels.index(str(v)) if str(v) in labels else _np.nan for v in values]
                axis.set_xticks(range(len(labels)), labels)
            axis.scatter(values, [t["value"] for t in group], edgecolors="C0", **style)
        if space.get("log"):
            axis.set_xscale("log")
        axis.set_xlabel(name)
    _save(figure, path)
