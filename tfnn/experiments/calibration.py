"""D7, calibration: temperature scaling (`tfnn.calibration`, `train.py --calibrate`), one T
fitted on the validation split's logits, judged on the test split: ECE and NLL before and
after, and reliability diagrams (accuracy against confidence per confidence bin).

Two networks that miss calibration in opposite directions: a CNN trained with label
smoothing 0.1 (the recipe's default, under-confident) and an MLP fitted without it to
1,000 training signals (over-confident).
"""

import numpy as np

from tfnn import calibration
from tfnn.experiments import common

ITEM = "D7"
TITLE = "calibration by temperature scaling"
CLAIM = (
    "One temperature T fitted on the validation split lowers the test ECE and NLL of an "
    "under-confident network (label smoothing, T < 1) and of an over-confident one (T > 1), "
    "and leaves every test prediction's class unchanged."
)
# setting → (options, whether the claim expects T > 1)
SETTINGS = {
    "CNN, label smoothing 0.1": (
        {
            "model": "cnn",
            "cnn": "CB-32-5-1-same,M-2-2,CB-32-5-1-same,M-2-2,CB-32-3-1-same,G,D-0.3",
            "label_smoothing": 0.1,
        },
        False,
    ),
    "MLP, no label smoothing": (
        {"model": "mlp", "hidden_layers": (256, 256), "dropout": 0.0, "label_smoothing": 0.0},
        True,
    ),
}
BINS = 10


def measure(seed, size, setting):
    options = SETTINGS[setting][0]
    examples = size.pick(1000, None) if options["model"] == "cnn" else size.pick(500, 1000)
    plan = common.plan_of(seed, train_examples=examples, epochs=size.pick(4, 30), **options)
    model, _ = common.train(plan)
    z_val, y_val = common.outputs(plan, model, "val")
    z, y = common.outputs(plan, model, "test")
    t = calibration.fit_temperature(z_val, y_val)
    before, after = common.figures_of(z, y), common.figures_of(z / np.float32(t), y)
    validation = [calibration.nll(z_val, y_val, temperature) for temperature in (1.0, t)]
    p_before, p_after = calibration.probabilities(z), calibration.probabilities(z, t)
    return {
        "temperature": t,
        "val NLL": validation,
        "before": before,
        "after": after,
        "same classes": bool(np.all(p_before.argmax(1) == p_after.argmax(1))),
        "reliability": {
            "before": common.reliability(p_before, y, BINS),
            "after": common.reliability(p_after, y, BINS),
        },
    }


def draw(runs, folder):
    figure, axes = common.subplots(len(runs), width=4.0, height=4.0)
    values = {}
    for axis, (setting, per_seed) in zip(axes[0], runs.items(), strict=True):
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
        values[setting] = {}
        for index, when in enumerate(("before", "after")):
            tables = [run["reliability"][when] for run in per_seed]
            values[setting][when] = tables
            confidence, accuracy, count = common.reliability_points(tables)
            t = common.mean([run["temperature"] for run in per_seed])
            label = "softmax(z)" if when == "before" else f"softmax(z/T), mean T {t:.2f}"
            axis.plot(confidence, accuracy, "-", color=f"C{index}", linewidth=1)
            axis.scatter(confidence, accuracy, s=6 + count / 10, color=f"C{index}", label=label)
        axis.set(xlabel="confidence (bin mean)", ylabel="accuracy in the bin", xlim=(0, 1))
        axis.set(ylim=(0, 1), title=setting)
        axis.legend(fontsize="small", loc="upper left")
    return [common.save_figure(figure, folder, "reliability", values)]


def run(size, folder):
    runs = {setting: common.over_seeds(size, measure, setting) for setting in SETTINGS}
    rows, checks = [], []
    for setting, per_seed in runs.items():
        row = {"network": setting, "T": [run["temperature"] for run in per_seed]}
        for index, when in enumerate(("before", "after")):
            row[f"val NLL {when}"] = [run["val NLL"][index] for run in per_seed]
        for key in ("accuracy", "ece", "nll"):
            name = "ECE" if key == "ece" else key.upper() if key == "nll" else key
            row[f"test {name} before"] = [run["before"][key] for run in per_seed]
            row[f"test {name} after"] = [run["after"][key] for run in per_seed]
        rows.append(row)
        lower = all(
            common.mean(row[f"test {k} after"]) < common.mean(row[f"test {k} before"])
            for k in ("ECE", "NLL")
        )
        direction = (common.mean(row["T"]) > 1) == SETTINGS[setting][1]
        same = all(run["same classes"] for run in per_seed)
        checks.append((setting, lower, direction, same))
    evidence = []
    for (setting, lower, direction, same), row in zip(checks, rows, strict=True):
        ece, nll = (
            [common.mean(row[f"test {k} {w}"]) for w in ("before", "after")] for k in ("ECE", "NLL")
        )
        evidence.append(
            f"{setting}: T {common.mean(row['T']):.3f}, test ECE {ece[0]:.3f} → {ece[1]:.3f}, "
            f"NLL {nll[0]:.3f} → {nll[1]:.3f} (both lower: {lower}; T on the predicted side of "
            f"1: {direction}; classes unchanged: {same})"
        )
    return common.Result(
        supported=all(all(check[1:]) for check in checks),
        evidence="; ".join(evidence) + ".",
        columns=list(rows[0]),
        rows=rows,
        figures=draw(runs, folder),
        notes=f"Reliability diagrams pool the seeds' test predictions in {BINS} equal-width "
        "confidence bins ([count, summed confidence, number correct] per bin and seed in the "
        "JSON); a point's area grows with its bin's count.",
    )
