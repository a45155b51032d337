"""Embedded data sets × {mlp, cnn} × {Monte-Carlo dropout, each ensemble kind, both
checkpoint averages} × {members on the pool, members in this process}: one small run per
cell, several checks on it.

The cells are an all-pairs design, not the whole product: every level of each factor meets
every level of every other factor in at least one cell (data set × model, data set ×
variant, model × variant, and for the init and bagging members the worker count × each of
the others), which `test_the_cells_cross_every_pair_of_levels` checks. Twenty cells in place
of forty (eighty with the worker count), each a whole training.

The plain run is the weight-scaling figure of the Monte-Carlo cell (the same run
evaluates both). Each cell checks that the export serves the evaluated model's
figures; MC cells that Monte-Carlo dropout stays near weight scaling; ensemble cells
that the ensemble is not worse than its worst member.
"""

import itertools

import numpy as np
import pytest
import tensorflow as tf

import tfnn
from tfnn import data

DATASETS = ("mnist1d", "digits", "diabetes", "breast_cancer")
VARIANTS = {
    "mc_dropout": {"mc_dropout": 10},
    "init": {"ensemble": 2, "ensemble_kind": "init"},
    "bagging": {"ensemble": 2, "ensemble_kind": "bagging"},
    "checkpoints_weights": {
        "ensemble": 2,
        "ensemble_kind": "checkpoints",
        "checkpoint_average": "weights",
    },
    "checkpoints_outputs": {
        "ensemble": 2,
        "ensemble_kind": "checkpoints",
        "checkpoint_average": "outputs",
    },
}
# Members trained on the pool of training processes (the default workers) or in this process.
WORKERS = {"pool": {}, "here": {"workers": 1}}
MODELS = {
    "mlp": {"model": "mlp", "hidden_layers": (16,)},
    # One convolution with batch normalization (state a copy must keep), and dropout for MC.
    "cnn": {"model": "cnn", "cnn": "CB-8-3-1-same,G,D-0.2"},
}
SMALL = {"epochs": 2, "batch_size": 100, "learning_rate": 0.01, "mc_dropout": 0, "verbose": 0}

# Monte-Carlo dropout (T=10) against weight scaling: for accuracy 0.1 absolute, for RMSE 10 %.
# Both are estimates of the same predictive mean; after two epochs the models are uncertain,
# so they differ by a few points, while a copy that lost its state scores at chance (0.333
# against 0.965 on breast_cancer) or as the mean predictor.
MC_ACCURACY, MC_RMSE = 0.1, 0.1
# An ensemble against its worst member. Averaging outputs: the loss and the RMSE are convex in
# the outputs, so the ensemble's cannot exceed the members' mean (1e-4 relative: float32 sums);
# accuracy is not convex: two members that disagree may go either way, 0.03 absolute.
# Averaging weights has no such bound: the product's own limit, 5 % of the worst figure.
CONVEX, ENSEMBLE_ACCURACY, WEIGHT_AVERAGE = 1e-4, 0.03, 0.05


def monitor(dataset):
    return "rmse" if dataset.task.kind == data.REGRESSION else "accuracy"


def served_figure(export_path, dataset, split):
    """The monitored figure of the exported model's predictions on `split`."""
    x, y = split
    serve = tf.saved_model.load(export_path).signatures["serving_default"]
    outputs = serve(inputs=tf.constant(x, tf.float32))
    if dataset.task.kind == data.REGRESSION:
        values = outputs["values"].numpy().reshape(len(y))
        return float(np.sqrt(np.mean((values - y) ** 2)))
    probabilities = outputs["probabilities"].numpy()
    if dataset.task.kind == data.BINARY:
        predicted = (probabilities.reshape(len(y)) > 0.5).astype(int)
    else:
        predicted = probabilities.argmax(axis=-1)
    return float(np.mean(predicted == y))


def worse(a, b, mode):
    """How much worse figure `a` is than `b` (negative: better)."""
    return b - a if mode == "max" else a - b


def cells():
    """(data set, model, variant, workers): each data set with each variant once, the model
    alternating along both; the init and bagging members on the pool for two data sets each,
    crossed so that each kind meets both models on both sides."""
    for row, name in enumerate(DATASETS):
        for column, variant in enumerate(VARIANTS):
            model = tuple(MODELS)[(row + column) % 2]
            workers = None
            if variant in ("init", "bagging"):
                on_pool = (row < 2) == (variant == "init")
                workers = "pool" if on_pool else "here"
            yield name, model, variant, workers


CELLS = tuple(cells())


def test_the_cells_cross_every_pair_of_levels():
    """Catches a design that leaves a pair of levels out (e.g. the pool only with the cnn)."""
    levels = (DATASETS, tuple(MODELS), tuple(VARIANTS))
    for (i, first), (j, second) in itertools.combinations(enumerate(levels), 2):
        seen = {(cell[i], cell[j]) for cell in CELLS}
        assert seen == set(itertools.product(first, second)), (i, j)
    ensembles = [cell for cell in CELLS if cell[3] is not None]
    assert {cell[2] for cell in ensembles} == {"init", "bagging"}
    for i, levels_i in enumerate(levels):
        wanted = {(level, w) for level in levels_i for w in WORKERS}
        if i == 2:
            wanted = {(v, w) for v in ("init", "bagging") for w in WORKERS}
        assert {(cell[i], cell[3]) for cell in ensembles} == wanted, i
    members = {(cell[1], cell[2], cell[3]) for cell in ensembles}
    assert members == set(itertools.product(MODELS, ("init", "bagging"), WORKERS))
    assert len(CELLS) == len(DATASETS) * len(VARIANTS)


@pytest.mark.parametrize(
    ("name", "model", "variant", "workers"),
    CELLS,
    ids=["-".join(filter(None, cell)) for cell in CELLS],
)
def test_cell(tmp_path, name, model, variant, workers):
    metrics = tfnn.train(
        dataset=name,
        logdir=str(tmp_path / "logs"),
        export_dir=str(tmp_path / "saved_models"),
        **{**SMALL, **MODELS[model], **VARIANTS[variant], **WORKERS.get(workers, {})},
    )
    dataset = data.load(name, seed=42)
    figure = monitor(dataset)
    mode = "min" if figure == "rmse" else "max"

    # The export serves the evaluated model: the same figure on both splits. Accuracy may
    # differ by one example whose probability sits on the threshold within float32 rounding
    # (another graph); RMSE by float32 summation order.
    for split, arrays in (("val", dataset.validation), ("test", dataset.test)):
        served = served_figure(metrics["export_path"], dataset, arrays)
        if figure == "accuracy":
            assert served == pytest.approx(metrics[split][figure], abs=1.01 / len(arrays[1]))
        else:
            assert served == pytest.approx(metrics[split][figure], rel=1e-4)

    if variant == "mc_dropout":
        mc = metrics["mc_dropout"]
        for split in ("val", "test"):
            if figure == "accuracy":
                assert abs(mc[split][figure] - metrics[split][figure]) <= MC_ACCURACY, split
            else:
                assert mc[split][figure] == pytest.approx(metrics[split][figure], rel=MC_RMSE)
        return

    table = metrics["ensemble"]
    whole = table["ensembles"][-1]
    assert metrics["val"] == whole["val"] and metrics["test"] == whole["test"]
    for split in ("val", "test"):
        members = [member[split] for member in table["members"]]
        ours = whole[split]
        if variant == "checkpoints_weights":
            figures = [m[figure] for m in members]
            worst = min(figures) if mode == "max" else max(figures)
            assert worse(ours[figure], worst, mode) <= WEIGHT_AVERAGE * abs(worst), split
            continue
        assert ours["loss"] <= max(m["loss"] for m in members) * (1 + CONVEX), split
        if figure == "rmse":
            assert ours["rmse"] <= max(m["rmse"] for m in members) * (1 + CONVEX), split
        else:
            worst = min(m["accuracy"] for m in members)
            assert ours["accuracy"] >= worst - ENSEMBLE_ACCURACY, (split, ours, members)
