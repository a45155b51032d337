"""D5: signal augmentation, label smoothing and mixup, alone and together, for an MLP
(256, 256) on 1,000 MNIST-1D training signals (the recipe's `--augment`,
`--label_smoothing`, `--mixup`).
"""

import numpy as np

from tfnn.experiments import common

ITEM = "D5"
TITLE = "augmentation, label smoothing, mixup"
CLAIM = (
    "Each of signal augmentation (shift, stretch, scale), label smoothing and mixup raises "
    "validation accuracy over no regularization, and the three together raise it most."
)
AUGMENT = {"shift": 4, "stretch": 0.1, "scale": 0.2}
CONFIGURATIONS = {
    "none": {},
    "augmentation": {"augment": AUGMENT},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "mixup α = 0.4": {"mixup": 0.4},
    "all three": {"augment": AUGMENT, "label_smoothing": 0.1, "mixup": 0.4},
}


def measure(seed, size, name):
    plan = common.mlp_plan(seed, size, epochs=(20, 60), **CONFIGURATIONS[name])
    model, _ = common.train(plan)
    return common.evaluate(plan, model, "val")


def draw(table, folder):
    figure, axes = common.subplots(2)
    names = [row["regularization"] for row in table]
    x = np.arange(len(names))
    for axis, key in zip(axes[0], ("val accuracy", "val ECE"), strict=True):
        values = np.array([row[key] for row in table])
        axis.bar(x, values.mean(axis=1), yerr=values.std(axis=1, ddof=1), color="C0", capsize=4)
        axis.plot(np.repeat(x, values.shape[1]), values.ravel(), "k.", markersize=4)
        axis.set_xticks(x, names, rotation=20, ha="right", fontsize="small")
        axis.set(ylabel=key, title=f"{key} (bars: mean ± std; dots: seeds)")
    return [common.save_figure(figure, folder, "augmentation", table)]


def run(size, folder):
    table = []
    for name in CONFIGURATIONS:
        runs = common.over_seeds(size, measure, name)
        table.append(
            {
                "regularization": name,
                "val accuracy": common.gather(runs, "accuracy"),
                "val ECE": common.gather(runs, "ece"),
                "val NLL": common.gather(runs, "nll"),
            }
        )
    accuracy = {row["regularization"]: common.mean(row["val accuracy"]) for row in table}
    alone = [name for name in CONFIGURATIONS if name not in ("none", "all three")]
    each = all(accuracy[name] > accuracy["none"] for name in alone)
    together = accuracy["all three"] == max(accuracy.values())
    ece = {row["regularization"]: common.mean(row["val ECE"]) for row in table}
    lower = [name for name in ece if name != "none" and ece[name] < ece["none"]]
    evidence = (
        "validation accuracy "
        + ", ".join(f"{name} {value:.3f}" for name, value in accuracy.items())
        + f" (each alone above none: {each}; all three highest: {together}). Not part of the "
        f"claim: validation ECE is lower than none's ({ece['none']:.3f}) for "
        + (", ".join(lower) or "none of them")
        + "."
    )
    return common.Result(
        supported=each and together,
        evidence=evidence,
        columns=list(table[0]),
        rows=table,
        figures=draw(table, folder),
        notes=f"Augmentation: `--augment shift={AUGMENT['shift']},stretch={AUGMENT['stretch']},"
        f"scale={AUGMENT['scale']}`; the NLL is the plain one (no smoothing), on validation.",
    )
