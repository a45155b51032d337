"""B5: batch normalization in a small 1D CNN on MNIST-1D, with and without it (the recipe's
spec strings CB- and C-), trained by SGD with momentum 0.9 at several constant learning
rates; the validation accuracy after every epoch.
"""

import numpy as np

from tfnn.experiments import common

ITEM = "B5"
TITLE = "batch normalization"
CLAIM = (
    "Batch normalization allows higher learning rates: with it the CNN reaches at least the "
    "validation accuracy it reaches without (within 0.02) at every rate tried, and at the "
    "highest rate it trains (above 0.5) where the network without it does not (below 0.2)."
)
SPEC = "{c}-16-5-1-same,M-2-2,{c}-32-5-1-same,M-2-2,{c}-32-3-1-same,G"
VARIANTS = {"without": "C", "with batch norm": "CB"}


def rates(size):
    return size.pick((0.01, 0.5), (0.01, 0.1, 0.5))


def measure(seed, size, rate, variant):
    plan = common.plan_of(
        seed,
        train_examples=size.pick(1000, None),
        model="cnn",
        cnn=SPEC.format(c=VARIANTS[variant]),
        label_smoothing=0.0,
        optimizer="momentum",
        learning_rate=rate,
        decay="none",
        epochs=size.pick(3, 15),
    )
    curve = common.EpochFigures(lambda model: common.accuracy(*common.outputs(plan, model, "val")))
    common.train(plan, callbacks=[curve])
    return curve.history


def draw(curves, folder):
    figure, axes = common.subplots(len(curves))
    for axis, (rate, variants) in zip(axes[0], curves.items(), strict=True):
        for index, (variant, values) in enumerate(variants.items()):
            epochs = np.arange(1, len(values[0]) + 1)
            common.band(axis, epochs, values, variant, color=f"C{index}")
        axis.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1), title=f"α = {rate:g}")
    axes[0][0].legend(fontsize="small")
    return [common.save_figure(figure, folder, "batchnorm", curves)]


def run(size, folder):
    curves = {
        rate: {variant: common.over_seeds(size, measure, rate, variant) for variant in VARIANTS}
        for rate in rates(size)
    }
    rows = []
    for rate, variants in curves.items():
        row = {"learning rate": rate}
        for variant, values in variants.items():
            row[f"final, {variant}"] = [curve[-1] for curve in values]
            row[f"mean over epochs, {variant}"] = [float(np.mean(curve)) for curve in values]
        rows.append(row)
    final = {
        (row["learning rate"], variant): common.mean(row[f"final, {variant}"])
        for row in rows
        for variant in VARIANTS
    }
    at_least = all(
        final[rate, "with batch norm"] >= final[rate, "without"] - 0.02 for rate in curves
    )
    highest = max(curves)
    trains = final[highest, "with batch norm"] > 0.5 and final[highest, "without"] < 0.2
    evidence = (
        "final validation accuracy without / with batch norm: "
        + ", ".join(
            f"α {rate:g} {final[rate, 'without']:.3f} / {final[rate, 'with batch norm']:.3f}"
            for rate in curves
        )
        + f" (with ≥ without − 0.02 at every α: {at_least}; at α {highest:g} with > 0.5 and "
        f"without < 0.2: {trains})."
    )
    return common.Result(
        supported=at_least and trains,
        evidence=evidence,
        columns=list(rows[0]),
        rows=rows,
        figures=draw(curves, folder),
        notes=f"The spec: `{SPEC.format(c='C')}` and its CB- twin; no learning-rate decay.",
    )
