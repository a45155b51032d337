"""D2 and D4: sweeps of the L2 and L1 strength λ for an MLP (256, 256) on 1,000 MNIST-1D
training signals (few enough that the unpenalized network overfits), trained with the
recipe's Adam and cosine decay.

L2 is the penalty λ‖θ‖² in the loss (`--l2`); L1 is the recipe's proximal step (`--l1`,
decoupled from Adam like AdamW's decay: each step shrinks weights by α·λ towards 0 and
stops there), so its λ has another scale.
"""

import numpy as np

from tfnn.experiments import common

ITEM = "D2, D4"
TITLE = "L2 and L1 penalties"
CLAIM = (
    "As λ grows, L2 and L1 narrow the train–validation accuracy gap (the largest λ's gap is "
    "below the unpenalized one's) and some λ of each raises validation accuracy; L1 sets a "
    "share of the weights exactly to 0 that grows with λ, L2 sets none."
)


def strengths(size):
    return {
        "l2": size.pick((3e-3, 3e-2), (1e-3, 3e-3, 1e-2, 3e-2)),
        "l1": size.pick((0.1, 1.0), (0.03, 0.1, 0.3, 1.0)),
    }


def measure(seed, size, penalty, strength):
    plan = common.mlp_plan(seed, size, epochs=(20, 60), **{penalty: strength})
    model, _ = common.train(plan)
    train, val = (common.evaluate(plan, model, split)["accuracy"] for split in ("train", "val"))
    weights = np.concatenate([k.ravel() for k in common.kernels(model)])
    # 101 bins over [−0.5, 0.5], larger weights in the end bins
    counts, edges = np.histogram(np.clip(weights, -0.5, 0.5), bins=101, range=(-0.5, 0.5))
    return {
        "train": train,
        "val": val,
        "gap": train - val,
        "zeros": float(np.mean(weights == 0)),
        "histogram": {"counts": counts, "edges": edges, "zeros": float(np.mean(weights == 0))},
    }


def draw(table, histograms, folder):
    figure, axes = common.subplots(3)
    for axis, penalty in zip(axes[0][:2], ("l2", "l1"), strict=True):
        rows = [row for row in table if row["penalty"] in (penalty, "none")]
        x = np.arange(len(rows))
        for index, key in enumerate(("train", "val")):
            values = np.array([row[f"{key} accuracy"] for row in rows]).T
            common.band(axis, x, values, key, color=f"C{index}", marker="o", markersize=3)
        axis.set_xticks(x, ["0", *(f"{row['λ']:g}" for row in rows[1:])])
        axis.set(xlabel=f"{penalty.upper()} λ", ylabel="accuracy", title=f"{penalty.upper()}")
        if penalty == "l1":
            share = axis.twinx()
            zeros = np.array([row["exact zeros"] for row in rows]).T
            common.band(share, x, zeros, "exact zeros", color="C2", linestyle="--")
            share.set(ylabel="share of weights exactly 0", ylim=(-0.02, 1.02))
            share.legend(loc="center right", fontsize="small")
    axes[0][0].legend(fontsize="small")
    for index, (label, counts) in enumerate(histograms.items()):
        centres = (counts["edges"][:-1] + counts["edges"][1:]) / 2
        label = f"{label}: {counts['zeros']:.0%} exactly 0"
        axes[0][2].step(centres, counts["counts"] + 0.5, color=f"C{index + 3}", label=label)
    axes[0][2].set(yscale="log", xlabel="weight (clipped to ±0.5)", ylabel="count", title="kernels")
    axes[0][2].legend(fontsize="small")
    values = {"table": table, "histograms": histograms}
    return [common.save_figure(figure, folder, "penalties", values)]


def run(size, folder):
    configurations = [("none", "l2", 0.0)]
    configurations += [(p, p, s) for p, values in strengths(size).items() for s in values]
    table, histogram_runs = [], []
    for label, penalty, strength in configurations:
        runs = common.over_seeds(size, measure, penalty, strength)
        table.append(
            {
                "penalty": label,
                "λ": strength,
                "train accuracy": common.gather(runs, "train"),
                "val accuracy": common.gather(runs, "val"),
                "gap": common.gather(runs, "gap"),
                "exact zeros": common.gather(runs, "zeros"),
            }
        )
        histogram_runs.append(runs)
    seed = size.seeds[0]
    histograms = {}
    for (label, penalty, strength), runs in zip(configurations, histogram_runs, strict=True):
        if strength in (0.0, strengths(size)[penalty][-1]):
            name = "λ = 0" if label == "none" else f"{penalty.upper()} λ = {strength:g}"
            histograms[name] = runs[0]["histogram"]
    none = table[0]
    checks = {}
    for penalty in ("l2", "l1"):
        rows = [row for row in table if row["penalty"] == penalty]
        narrower = common.mean(rows[-1]["gap"]) < common.mean(none["gap"])
        better = max(common.mean(row["val accuracy"]) for row in rows) > common.mean(
            none["val accuracy"]
        )
        checks[penalty] = (narrower, better)
    l1 = [common.mean(row["exact zeros"]) for row in table if row["penalty"] == "l1"]
    l1_zeros = l1[-1] > 0.5 and all(b >= a for a, b in zip(l1, l1[1:], strict=False))
    l2_zeros = max(max(row["exact zeros"]) for row in table if row["penalty"] != "l1") == 0.0
    evidence = (
        f"gap at λ = 0: {common.mean(none['gap']):.3f}; "
        + "; ".join(
            f"{p.upper()}: largest λ's gap narrower {checks[p][0]}, some λ raises validation "
            f"accuracy {checks[p][1]}"
            for p in checks
        )
        + f"; L1 exact zeros by λ {', '.join(f'{z:.2f}' for z in l1)} (growing, above ½ at the "
        f"largest: {l1_zeros}); L2 exact zeros 0 at every λ: {l2_zeros}."
    )
    return common.Result(
        supported=all(all(c) for c in checks.values()) and l1_zeros and l2_zeros,
        evidence=evidence,
        columns=list(table[0]),
        rows=table,
        figures=draw(table, histograms, folder),
        notes=f"The histograms are seed {seed}'s networks at λ = 0 and at each penalty's "
        "largest λ.",
    )
