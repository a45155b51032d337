"""D7: dropout's rate p in an MLP (256, 256) on 1,000 MNIST-1D training signals, and its two
inference passes: weight scaling (the deterministic pass of inverted dropout) against
Monte-Carlo dropout, the average of T = 20 passes with random masks
(`tfnn.models.ensemble.monte_carlo_dropout`), on the test split.
"""

import numpy as np

from tfnn.experiments import common

ITEM = "D7"
TITLE = "dropout"
CLAIM = (
    "Dropout narrows the train–validation accuracy gap as p grows (the largest p's gap is "
    "below p = 0's); averaging T = 20 Monte-Carlo dropout passes matches weight scaling's test "
    "accuracy (within 0.01) and is better calibrated (lower test ECE)."
)
PASSES = 20


def measure(seed, size, rate):
    # TensorFlow inside the measurement, never at the top: see tfnn.experiments.common.
    from tfnn.models import ensemble

    plan = common.mlp_plan(seed, size, epochs=(20, 60), dropout=rate)
    model, _ = common.train(plan)
    train, val = (common.evaluate(plan, model, split)["accuracy"] for split in ("train", "val"))
    result = {"train": train, "val": val, "gap": train - val}
    if rate:
        passes = ensemble.monte_carlo_dropout(model, PASSES, "softmax")
        result["scaling"] = common.evaluate(plan, model, "test")
        result["monte_carlo"] = common.evaluate(plan, passes, "test")
    return result


def draw(table, folder):
    figure, axes = common.subplots(2)
    rates = np.array([row["p"] for row in table])
    for index, key in enumerate(("train accuracy", "val accuracy")):
        values = np.array([row[key] for row in table]).T
        common.band(axes[0][0], rates, values, key, color=f"C{index}", marker="o", markersize=3)
    axes[0][0].set(xlabel="dropout rate p", ylabel="accuracy", title="train and validation")
    axes[0][0].legend(fontsize="small")
    inference = [row for row in table if row["p"]]
    x = np.array([row["p"] for row in inference])
    for index, key in enumerate(("weight scaling", "Monte-Carlo")):
        for figure_name, style in (("accuracy", "-"), ("ECE", "--")):
            values = np.array([row[f"{key} {figure_name}"] for row in inference]).T
            label = f"{key} {figure_name}"
            common.band(axes[0][1], x, values, label, color=f"C{index + 2}", linestyle=style)
    axes[0][1].set(xlabel="dropout rate p", ylabel="test accuracy (—), ECE (- -)")
    axes[0][1].set_title(f"inference: weight scaling vs T = {PASSES} passes", fontsize="medium")
    axes[0][1].legend(fontsize="small")
    return [common.save_figure(figure, folder, "dropout", table)]


def run(size, folder):
    table = []
    for rate in size.pick((0.0, 0.5), (0.0, 0.1, 0.3, 0.5)):
        runs = common.over_seeds(size, measure, rate)
        row = {
            "p": rate,
            "train accuracy": common.gather(runs, "train"),
            "val accuracy": common.gather(runs, "val"),
            "gap": common.gather(runs, "gap"),
        }
        for key, name in (("scaling", "weight scaling"), ("monte_carlo", "Monte-Carlo")):
            for figure_name in ("accuracy", "ece"):
                values = [run[key][figure_name] for run in runs] if rate else None
                row[f"{name} {figure_name.upper() if figure_name == 'ece' else figure_name}"] = (
                    values
                )
        table.append(row)
    narrower = common.mean(table[-1]["gap"]) < common.mean(table[0]["gap"])
    dropped = [row for row in table if row["p"]]
    accuracy = [
        common.mean(row["Monte-Carlo accuracy"]) - common.mean(row["weight scaling accuracy"])
        for row in dropped
    ]
    ece = [
        common.mean(row["Monte-Carlo ECE"]) - common.mean(row["weight scaling ECE"])
        for row in dropped
    ]
    matches = all(abs(a) <= 0.01 for a in accuracy)
    calibrated = all(e < 0 for e in ece)
    evidence = (
        f"gap at p = 0: {common.mean(table[0]['gap']):.3f}, at p = {table[-1]['p']}: "
        f"{common.mean(table[-1]['gap']):.3f} (narrower: {narrower}); Monte-Carlo minus weight "
        f"scaling, by p > 0: accuracy {', '.join(f'{a:+.3f}' for a in accuracy)} (within 0.01: "
        f"{matches}), ECE {', '.join(f'{e:+.3f}' for e in ece)} (all lower: {calibrated})."
    )
    return common.Result(
        supported=narrower and matches and calibrated,
        evidence=evidence,
        columns=list(table[0]),
        rows=table,
        figures=draw(table, folder),
        notes="Accuracies of the train split are measured without dropout (the inference "
        "pass); no label smoothing, so that calibration is dropout's alone.",
    )
