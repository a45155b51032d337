import csv
import json
import logging
import pathlib
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnn
from tfnn import data
from tfnn.data import pipeline


def history(folder):
    with (folder / "history.csv").open() as file:
        return list(csv.DictReader(file))


def baseline(dataset, data_dir):
    """The trivial predictor's test figure: majority class, or the mean for regression."""
    ds = data.load(dataset, seed=42, data_dir=data_dir)
    y_train, y_test = ds.train[1], ds.test[1]
    if ds.task.kind == data.REGRESSION:
        return float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
    majority = np.bincount(y_train).argmax()
    return float(np.mean(y_test == majority))


@pytest.mark.parametrize(
    "dataset, options, metric, margin",
    [
        ("mnist1d", {"epochs": 6}, "accuracy", 0.25),
        ("digits", {}, "accuracy", 0.75),
        ("breast_cancer", {"epochs": 10}, "accuracy", 0.25),
        ("diabetes", {"epochs": 30, "dropout": 0.0}, "rmse", -10.0),
        ("digits", {"model": "cnn", "cnn": "CB-16-3-1-same,M-2-2,F,H-32"}, "accuracy", 0.75),
        ("diabetes", {"model": "cnn", "cnn": "C-16-3-1-same,G", "epochs": 30}, "rmse", 0.0),
    ],
)
def test_each_output_type_learns_and_the_run_leaves_everything(
    run, data_dir, dataset, options, metric, margin
):
    """A1: classes → softmax NLL, binary → sigmoid NLL, regression → MSE; each learns."""
    metrics, folder = run(dataset=dataset, **options)
    trivial = baseline(dataset, data_dir)
    if metric == "accuracy":
        assert metrics["test"]["accuracy"] > trivial + margin
    else:
        assert metrics["test"]["rmse"] < trivial + margin
    written = json.loads((folder / "metrics.json").read_text())
    assert written["test"] == metrics["test"] and written["val"] == metrics["val"]
    assert written["epochs"] == written["best_epoch"] == len(history(folder))
    assert written["options"]["dataset"] == dataset
    assert (folder / "learning_curves.png").stat().st_size > 0
    assert (folder / "filters.png").is_file() == (
        options.get("model") == "cnn"
    )  # F6: a CNN's first-layer filters
    assert any((folder / "tensorboard").rglob("events.out.tfevents*"))
    assert pathlib.Path(written["export_path"], "saved_model.pb").is_file()
    assert pathlib.Path(written["export_path"]).name == "1"


def test_early_stopping_keeps_the_best_epoch(run, caplog):
    """D1: with --patience, the best validation epoch's weights are evaluated and exported; one
    line says where training stopped and which epoch it kept, numbered as history.csv."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    metrics, folder = run(dataset="digits", epochs=40, patience=3, learning_rate=0.03, decay="none")
    rows = history(folder)
    accuracies = [float(row["val_accuracy"]) for row in rows]
    best = int(np.argmax(accuracies)) + 1
    assert [int(row["epoch"]) for row in rows] == [*range(1, len(rows) + 1)]
    assert metrics["best_epoch"] == best
    said = f"early stopping stopped at epoch {metrics['epochs']} of 40; kept epoch {best} "
    assert said in caplog.text
    assert metrics["epochs"] < 40  # it stopped
    assert metrics["epochs"] - best <= 3
    assert metrics["val"]["accuracy"] == pytest.approx(accuracies[best - 1], abs=1e-6)


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_where_it_stopped(run, tmp_path, monkeypatch):
    options = {"dataset": "breast_cancer", "epochs": 5}
    first_epochs = []  # of the training pipelines: the resumed one continues at epoch 2

    def batches(*args, first_epoch=0, **kwargs):
        if kwargs.get("repeat"):
            first_epochs.append(first_epoch)
        return endless(*args, first_epoch=first_epoch, **kwargs)

    endless = pipeline.batches
    monkeypatch.setattr(pipeline, "batches", batches)
    with pytest.raises(KeyboardInterrupt):
        run(callbacks=[Interrupt()], **options)
    interrupted = [p for p in (tmp_path / "logs").iterdir() if not p.name.startswith(".")]
    assert [row["epoch"] for row in history(interrupted[0])] == ["1", "2"]
    assert not (interrupted[0] / "metrics.json").exists()

    metrics, folder = run(**options)
    assert folder == interrupted[0]
    assert first_epochs == [0, 2]
    assert [row["epoch"] for row in history(folder)] == ["1", "2", "3", "4", "5"]
    assert metrics["epochs"] == 5
    assert not (tmp_path / "logs" / ".resume").exists()


def test_same_command_same_metrics(run):
    options = {"dataset": "digits", "dropout": 0.3, "seed": 7}
    first, _ = run(logdir="a", **options)
    second, _ = run(logdir="b", **options)
    assert first["val"] == second["val"] and first["test"] == second["test"]


def tensorboard_tags(folder):

    tags = set()
    for events in folder.rglob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(f"{events.parent.name}/{value.tag}" for value in event.summary.value)
    return tags


def test_clipping_figures_appear_in_the_logs_and_tensorboard(run):
    _, folder = run(dataset="digits", clip_mode="global_norm", clip=0.01)
    rows = history(folder)
    assert all(float(row["clip_rate"]) == 1.0 for row in rows)
    assert all(0 < float(row["grad_norm"]) <= float(row["grad_norm_max"]) for row in rows)
    tags = tensorboard_tags(folder / "tensorboard")
    assert {"clipping/grad_norm", "clipping/clip_rate"} <= tags  # per step
    assert {"train/epoch_grad_norm", "train/epoch_clip_rate", "validation/epoch_accuracy"} <= tags


def test_l1_gives_exact_zeros_and_l2_does_not(run):
    """D4 on real data: the proximal L1 step zeroes weights exactly; L2 only shrinks them."""
    common = {"dataset": "digits", "optimizer": "sgd", "learning_rate": 0.1, "dropout": 0.0}
    l1, l1_folder = run(epochs=10, l1=0.01, logdir="l1", **common)
    l2, _ = run(epochs=10, l2=0.01, logdir="l2", **common)
    assert (l1_folder / "weights.png").stat().st_size > 0
    assert l1["zero_weights"] > 0.3  # measured: 43%
    assert l2["zero_weights"] == 0.0
    assert l1["test"]["accuracy"] > 0.7  # sparse, and still a classifier


def test_augmented_training_draws_samples_and_evaluates_unaugmented(run, data_dir):
    """D5: transforms change training batches only; validation sees the raw examples."""

    augment = {"translate": 0.1, "rotate": 10.0, "contrast": 0.2}
    metrics, folder = run(dataset="digits", augment=augment, noise=0.05, mixup=0.3)
    assert (folder / "augmented.png").stat().st_size > 0
    ds = data.load("digits", seed=42, data_dir=data_dir)
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"]
    probabilities = served(inputs=tf.constant(ds.validation[0]))["probabilities"].numpy()
    accuracy = np.mean(probabilities.argmax(-1) == ds.validation[1])
    assert accuracy == pytest.approx(metrics["val"]["accuracy"], abs=1e-6)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"augment": {"flip": True}}, "flip applies to images"),
        ({"dataset": "digits", "augment": "hue=0.1"}, "hue applies to rgb images"),
        ({"dataset": "diabetes", "mixup": 0.2}, "mixup=0.2"),
        ({"dataset": "no_such_set"}, "no_such_set"),
        ({"dataset": "diabetes", "label_smoothing": 0.1}, "label_smoothing=0.1"),
        ({"epochs": 0}, "epochs=0"),
        ({"epoch": 5}, "epoch=5"),
        ({"hidden_layers": [64, 0]}, "hidden_layers=[64, 0]"),
    ],
)
def test_bad_options_raise_value_error_naming_them_before_anything_is_written(
    tmp_path, data_dir, options, match
):
    """Each bad option is refused by tfnn.train with one line; no run folder, no export."""
    with pytest.raises(ValueError, match=re.escape(match)) as raised:
        tfnn.train(
            data_dir=data_dir,
            logdir=str(tmp_path / "logs"),
            export_dir=str(tmp_path / "saved_models"),
            **options,
        )
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "logs").exists() and not (tmp_path / "saved_models").exists()


def test_the_library_returns_its_run_folder_and_prints_nothing(run, capfd, caplog):
    """Catches the run folder missing from the result (callers guessing it by modification
    time) or the recipe printing (the `train.py:` lines and the JSON line are the CLI's)."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    metrics, folder = run(dataset="breast_cancer", epochs=1)
    written = json.loads((folder / "metrics.json").read_text())
    assert {k: v for k, v in metrics.items() if k != "run"} == written
    assert folder.parent.name == "logs" and metrics["run"] == str(folder)
    out, err = capfd.readouterr()
    assert '"run"' not in out and "train.py:" not in err  # (TFDS says when it prepares data)
    assert f"run folder: {folder}" in caplog.messages


def test_trained_only_reads_no_test_split_and_a_later_call_exports_that_model(
    run, tmp_path, monkeypatch, epoch_counter
):
    """`test_and_export=False` (a sweep's trial): catches the test split read or the model
    exported by the trial, the run finished (so the later call would retrain), or the later
    call training again instead of evaluating the kept model."""
    from tfnn.recipe import evaluate as evaluation
    from tfnn.recipe import train as recipe

    looked = []

    def counting(plan, model, splits=("val", "test")):
        looked.append(tuple(splits))
        return real(plan, model, splits)

    real = evaluation.evaluate
    monkeypatch.setattr(recipe, "evaluate", counting)
    monkeypatch.setattr(evaluation, "evaluate", counting)  # Monte-Carlo dropout's
    trial, folder = run(dataset="breast_cancer", epochs=2, test_and_export=False)
    assert looked == [("val",)] and "test" not in trial
    assert not (tmp_path / "saved_models" / "breast_cancer").exists()
    assert json.loads((folder / "lifecycle.json").read_text())["stage"] == "trained"
    assert not (folder / "metrics.json").exists()
    final, again = run(dataset="breast_cancer", epochs=2, callbacks=[epoch_counter])
    assert again == folder and epoch_counter.epochs == 0
    assert final["val"] == pytest.approx(trial["val"], rel=1e-6)
    assert pathlib.Path(final["export_path"], "saved_model.pb").is_file()
    assert ("val", "test") in looked


def test_trained_only_refuses_an_ensemble(run, tmp_path):
    """Catches an ensemble trial measuring its members on the test split while training."""
    with pytest.raises(ValueError, match="ensemble=2"):
        run(dataset="breast_cancer", ensemble=2, test_and_export=False)
    assert not (tmp_path / "logs").exists()


def train_digits_into(tmp_path):
    """One epoch of the MLP on digits, its folders in `tmp_path` (logs, saved_models)."""
    return tfnn.train(
        dataset="digits",
        model="mlp",
        epochs=1,
        verbose=0,
        logdir=str(tmp_path / "logs"),
        export_dir=str(tmp_path / "saved_models"),
    )


def test_a_model_name_out_of_versions_is_refused_before_training(tmp_path):
    """A next version beyond TensorFlow Serving's int64 is a RunError (train.py: one line,
    exit 2) before a run folder exists. Catches the check made only at the export: the run
    trained, evaluated, then ended in a ValueError traceback."""
    from tfnn.recipe.errors import RunError

    base = tmp_path / "saved_models" / "digits"
    base.mkdir(parents=True)
    (base / ".highest_version").write_text(f"{2**63 - 1}\n")
    with pytest.raises(RunError, match=f"Received: next version {2**63} of "):
        train_digits_into(tmp_path)
    assert list((tmp_path / "logs").iterdir()) == []


def test_a_model_folder_that_cannot_be_made_is_refused_before_training(tmp_path):
    """export_dir/<model_name> is checked as export_dir is. Catches the model folder made only
    at the export: a file in its place (File exists) ended a run that had trained."""
    from tfnn.recipe.errors import RunError

    (tmp_path / "saved_models").mkdir()
    (tmp_path / "saved_models" / "digits").write_text("not a folder")
    with pytest.raises(RunError, match="File exists.*Received: export_dir='.*digits'"):
        train_digits_into(tmp_path)
    assert list((tmp_path / "logs").iterdir()) == []
