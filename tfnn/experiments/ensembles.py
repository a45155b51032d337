"""D6: ensembles of 1..N MLPs (256, 256) on 1,000 MNIST-1D training signals, of the recipe's
three kinds: members that differ by seed (init), also by a bootstrap sample of the training
split (bagging), and the last N epochs of one run with their weights averaged (checkpoints,
the recipe's default average). Distributions are averaged as `tfnn.models.ensemble` does.
"""

import tempfile

import numpy as np

from tfnn.experiments import common

ITEM = "D6"
TITLE = "ensembles"
CLAIM = (
    "Averaging the distributions of N members that differ by initialization or by bootstrap "
    "sample raises test accuracy and lowers test ECE against one member; the last N epochs "
    "of one run (weights averaged) gain less accuracy than N independent members."
)
KINDS = ("init", "bagging", "checkpoints")


def plan(seed, size):
    return common.mlp_plan(seed, size, epochs=(15, 40))


def independent(seed, size, kind, members):
    """Test logits of `members` runs with seeds 100·seed + i (bagging: each on its own
    bootstrap sample), and the test labels."""
    logits = []
    for i in range(members):
        member_seed = 100 * seed + i
        run = plan(member_seed, size)
        bootstrap = member_seed if kind == "bagging" else None
        model, _ = common.train(run, bootstrap_seed=bootstrap)
        z, labels = common.outputs(run, model)
        logits.append(z)
    return logits, labels


def checkpoints(seed, size, members):
    """Test logits of the weight averages of one run's last 1..N epochs, and the labels."""
    # TensorFlow inside the measurement, never at the top: see tfnn.experiments.common.
    from tfnn import callbacks
    from tfnn.models import ensemble

    run = plan(100 * seed, size)
    with tempfile.TemporaryDirectory() as folder:
        model, _ = common.train(run, callbacks=[callbacks.LastEpochsWeights(folder, members)])
        snapshots = callbacks.snapshots(model, folder)
    outputs = [
        common.outputs(run, ensemble.weight_averaged(model, snapshots[-k:]))
        for k in range(1, members + 1)
    ]
    return [z for z, _ in outputs], outputs[0][1]


def measure(seed, size):
    from tfnn.models import ensemble

    members = size.pick(3, 5)
    result = {}
    for kind in KINDS:
        if kind == "checkpoints":
            averaged, labels = checkpoints(seed, size, members)
        else:
            logits, labels = independent(seed, size, kind, members)
            stacked = np.stack(logits)
            averaged = [
                ensemble.average_logits(stacked[:k], "softmax").numpy()
                for k in range(1, members + 1)
            ]
        result[kind] = [common.figures_of(z, labels) for z in averaged]
    return result


def draw(runs, folder):
    figure, axes = common.subplots(2)
    values = {
        k: {f: [[r[f] for r in run[k]] for run in runs] for f in ("accuracy", "ece")} for k in KINDS
    }
    for index, kind in enumerate(KINDS):
        for axis, key in zip(axes[0], ("accuracy", "ece"), strict=True):
            sizes = np.arange(1, len(values[kind][key][0]) + 1)
            common.band(axis, sizes, values[kind][key], kind, color=f"C{index}", marker="o")
            axis.set(xlabel="members N", ylabel=f"test {key.replace('ece', 'ECE')}", xticks=sizes)
    axes[0][0].legend(fontsize="small")
    return [common.save_figure(figure, folder, "ensembles", values)]


def run(size, folder):
    runs = common.over_seeds(size, measure)
    rows = []
    for kind in KINDS:
        for n in range(len(runs[0][kind])):
            rows.append(
                {
                    "kind": kind,
                    "members": n + 1,
                    "test accuracy": [run[kind][n]["accuracy"] for run in runs],
                    "test ECE": [run[kind][n]["ece"] for run in runs],
                    "test NLL": [run[kind][n]["nll"] for run in runs],
                }
            )

    def change(kind, key):
        first, last = (common.mean([run[kind][n][key] for run in runs]) for n in (0, -1))
        return last - first

    helps = all(change(k, "accuracy") > 0 and change(k, "ece") < 0 for k in ("init", "bagging"))
    less = change("checkpoints", "accuracy") < change("init", "accuracy")
    evidence = (
        "N members minus one, test accuracy / ECE: "
        + "; ".join(f"{k} {change(k, 'accuracy'):+.3f} / {change(k, 'ece'):+.3f}" for k in KINDS)
        + f" (init and bagging: accuracy up and ECE down {helps}; checkpoints gain less accuracy "
        f"than init: {less})."
    )
    return common.Result(
        supported=helps and less,
        evidence=evidence,
        columns=list(rows[0]),
        rows=rows,
        figures=draw(runs, folder),
        notes="No dropout and no label smoothing, so that the members' differences are the "
        "kinds'. Members of seed s have seeds 100·s + i.",
    )
