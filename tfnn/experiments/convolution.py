"""F1: a 1D CNN against an MLP with as many parameters on MNIST-1D (Greydanus & Kobak report
94% against 68% for their larger models), and both on test signals shifted by s samples
(half to the left, half to the right, zeros shifted in).
"""

import math

import numpy as np

from tfnn.experiments import common

ITEM = "F1"
TITLE = "convolution vs MLP"
CLAIM = (
    "At equal parameter count a CNN is more accurate than an MLP on MNIST-1D, and loses less "
    "accuracy than the MLP when the test signals are shifted (parameter sharing, shift "
    "equivariance, pooling)."
)
CNN = "C-32-5-1-same,M-2-2,C-32-5-1-same,M-2-2,C-32-3-1-same,G"


def mlp_width(parameters):
    """h of an MLP (h, h) on 40 inputs and 10 classes with `parameters` parameters:
    40h + h + h² + h + 10h + 10 = parameters (A3)."""
    return round((-52 + math.sqrt(52**2 + 4 * (parameters - 10))) / 2)


def shifted(x, s):
    """Each signal moved by s samples, even rows right and odd rows left, zeros shifted in."""
    out = np.zeros_like(x)
    if s == 0:
        return x.copy()
    out[0::2, s:] = x[0::2, :-s]
    out[1::2, :-s] = x[1::2, s:]
    return out


def shifts(size):
    return size.pick((0, 8), (0, 3, 6, 9, 12))


def measure(seed, size, model, width=None):
    options = {"cnn": CNN} if model == "cnn" else {"hidden_layers": (width, width), "dropout": 0.0}
    plan = common.plan_of(
        seed,
        train_examples=size.pick(1000, None),
        model=model,
        label_smoothing=0.0,
        epochs=size.pick(5, 40),
        **options,
    )
    trained, _ = common.train(plan)
    x, y = plan.dataset.test
    return {
        "parameters": int(sum(np.prod(w.shape) for w in trained.trainable_weights)),
        "accuracy": [
            common.accuracy(trained(shifted(x, s), training=False), y) for s in shifts(size)
        ],
    }


def draw(runs, size, folder):
    figure, axes = common.subplots(1)
    values = {model: [run["accuracy"] for run in runs[model]] for model in runs}
    for index, (model, accuracies) in enumerate(values.items()):
        label = f"{model} ({runs[model][0]['parameters']} parameters)"
        common.band(axes[0][0], shifts(size), accuracies, label, color=f"C{index}", marker="o")
    axes[0][0].set(xlabel="shift s (samples)", ylabel="test accuracy", ylim=(0, 1))
    axes[0][0].legend(fontsize="small")
    return [common.save_figure(figure, folder, "shifts", {"shifts": shifts(size), **values})]


def run(size, folder):
    runs = {"cnn": common.over_seeds(size, measure, "cnn")}
    width = mlp_width(runs["cnn"][0]["parameters"])
    runs["mlp"] = common.over_seeds(size, measure, "mlp", width)
    rows = []
    for model, per_seed in runs.items():
        row = {"model": model, "parameters": per_seed[0]["parameters"]}
        for index, s in enumerate(shifts(size)):
            row[f"test accuracy, shift {s}"] = [run["accuracy"][index] for run in per_seed]
        rows.append(row)
    accuracy = {m: np.mean([run["accuracy"] for run in runs[m]], axis=0) for m in runs}
    drop = {m: accuracy[m][0] - accuracy[m][-1] for m in runs}
    better = accuracy["cnn"][0] > accuracy["mlp"][0]
    robust = drop["cnn"] < drop["mlp"]
    evidence = (
        f"unshifted test accuracy CNN {accuracy['cnn'][0]:.3f}, MLP {accuracy['mlp'][0]:.3f} "
        f"(CNN higher: {better}); loss at shift {shifts(size)[-1]}: CNN {drop['cnn']:.3f}, "
        f"MLP {drop['mlp']:.3f} (CNN's smaller: {robust})."
    )
    return common.Result(
        supported=better and robust,
        evidence=evidence,
        columns=list(rows[0]),
        rows=rows,
        figures=draw(runs, size, folder),
        notes=f"CNN: `{CNN}`; MLP: ({width}, {width}) without dropout; both with the "
        "recipe's Adam and cosine decay, no label smoothing.",
    )
