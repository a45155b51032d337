import csv
import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import data
from tfnn.cli import args as cli_args
from tfnn.cli import train as cli_train

ROOT = pathlib.Path(__file__).resolve().parents[2]


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
    "dataset, flags, metric, margin",
    [
        ("mnist1d", ["--epochs", "6"], "accuracy", 0.25),
        ("digits", [], "accuracy", 0.75),
        ("breast_cancer", ["--epochs", "10"], "accuracy", 0.25),
        ("diabetes", ["--epochs", "30", "--dropout", "0"], "rmse", -10.0),
        ("digits", ["--model", "cnn", "--cnn", "CB-16-3-1-same,M-2-2,F,H-32"], "accuracy", 0.75),
        ("diabetes", ["--model", "cnn", "--cnn", "C-16-3-1-same,G", "--epochs", "30"], "rmse", 0.0),
    ],
)
def test_each_output_type_learns_and_the_run_leaves_everything(
    run, data_dir, dataset, flags, metric, margin
):
    """A1: classes → softmax NLL, binary → sigmoid NLL, regression → MSE; each learns."""
    metrics, folder = run("--dataset", dataset, *flags)
    trivial = baseline(dataset, data_dir)
    if metric == "accuracy":
        assert metrics["test"]["accuracy"] > trivial + margin
    else:
        assert metrics["test"]["rmse"] < trivial + margin
    written = json.loads((folder / "metrics.json").read_text())
    assert written["test"] == metrics["test"] and written["val"] == metrics["val"]
    assert written["epochs"] == written["best_epoch"] == len(history(folder))
    assert written["args"]["dataset"] == dataset
    assert (folder / "learning_curves.png").stat().st_size > 0
    assert (folder / "filters.png").is_file() == ("cnn" in flags)  # F6: a CNN's first-layer filters
    assert any((folder / "tensorboard").rglob("events.out.tfevents*"))
    assert pathlib.Path(written["export_path"], "saved_model.pb").is_file()
    assert pathlib.Path(written["export_path"]).name == "1"


def test_early_stopping_keeps_the_best_epoch(run):
    """D1: with --patience, the best validation epoch's weights are evaluated and exported."""
    metrics, folder = run(
        "--dataset",
        "digits",
        "--epochs",
        "40",
        "--patience",
        "3",
        "--learning_rate",
        "0.03",
        "--decay",
        "none",
    )
    accuracies = [float(row["val_accuracy"]) for row in history(folder)]
    best = int(np.argmax(accuracies)) + 1
    assert metrics["best_epoch"] == best
    assert metrics["epochs"] < 40  # it stopped
    assert metrics["epochs"] - best <= 3
    assert metrics["val"]["accuracy"] == pytest.approx(accuracies[best - 1], abs=1e-6)


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_run_resumes_where_it_stopped(run, tmp_path):
    flags = ("--dataset", "breast_cancer", "--epochs", "5")
    with pytest.raises(KeyboardInterrupt):
        run(*flags, callbacks=[Interrupt()])
    interrupted = [p for p in (tmp_path / "logs").iterdir() if not p.name.startswith(".")]
    assert [row["epoch"] for row in history(interrupted[0])] == ["0", "1"]
    assert not (interrupted[0] / "metrics.json").exists()

    metrics, folder = run(*flags)
    assert folder == interrupted[0]
    assert [row["epoch"] for row in history(folder)] == ["0", "1", "2", "3", "4"]
    assert metrics["epochs"] == 5
    assert not (tmp_path / "logs" / ".resume").exists()


def test_same_command_same_metrics(run):
    flags = ("--dataset", "digits", "--dropout", "0.3", "--seed", "7")
    first, _ = run(*flags, logdir="a")
    second, _ = run(*flags, logdir="b")
    assert first["val"] == second["val"] and first["test"] == second["test"]


def tensorboard_tags(folder):

    tags = set()
    for events in folder.rglob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(f"{events.parent.name}/{value.tag}" for value in event.summary.value)
    return tags


def test_clipping_figures_appear_in_the_logs_and_tensorboard(run):
    _, folder = run("--dataset", "digits", "--clip_mode", "global_norm", "--clip", "0.01")
    rows = history(folder)
    assert all(float(row["clip_rate"]) == 1.0 for row in rows)
    assert all(0 < float(row["grad_norm"]) <= float(row["grad_norm_max"]) for row in rows)
    tags = tensorboard_tags(folder / "tensorboard")
    assert {"clipping/grad_norm", "clipping/clip_rate"} <= tags  # per step
    assert {"train/epoch_grad_norm", "train/epoch_clip_rate", "validation/epoch_accuracy"} <= tags


def test_l1_gives_exact_zeros_and_l2_does_not(run):
    """D4 on real data: the proximal L1 step zeroes weights exactly; L2 only shrinks them."""
    common = (
        "--dataset",
        "digits",
        "--optimizer",
        "sgd",
        "--learning_rate",
        "0.1",
        "--dropout",
        "0",
    )
    l1, l1_folder = run(*common, "--epochs", "10", "--l1", "0.01", logdir="l1")
    l2, _ = run(*common, "--epochs", "10", "--l2", "0.01", logdir="l2")
    assert (l1_folder / "weights.png").stat().st_size > 0
    assert l1["zero_weights"] > 0.3  # measured: 43%
    assert l2["zero_weights"] == 0.0
    assert l1["test"]["accuracy"] > 0.7  # sparse, and still a classifier


def test_augmented_training_draws_samples_and_evaluates_unaugmented(run, data_dir):
    """D5: transforms change training batches only; validation sees the raw examples."""

    flags = ("--dataset", "digits", "--augment", "translate=0.1,rotate=10,contrast=0.2")
    metrics, folder = run(*flags, "--noise", "0.05", "--mixup", "0.3")
    assert (folder / "augmented.png").stat().st_size > 0
    ds = data.load("digits", seed=42, data_dir=data_dir)
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"]
    probabilities = served(inputs=tf.constant(ds.validation[0]))["probabilities"].numpy()
    accuracy = np.mean(probabilities.argmax(-1) == ds.validation[1])
    assert accuracy == pytest.approx(metrics["val"]["accuracy"], abs=1e-6)


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--augment", "flip"], "flip applies to images"),
        (["--dataset", "digits", "--augment", "hue=0.1"], "hue applies to rgb images"),
        (["--dataset", "diabetes", "--mixup", "0.2"], "--mixup"),
        (["--dataset", "no_such_set"], "no_such_set"),
        (["--dataset", "diabetes", "--label_smoothing", "0.1"], "--label_smoothing"),
    ],
)
def test_bad_input_found_after_parsing_exits_2_and_leaves_nothing(
    tmp_path, data_dir, capsys, flags, match
):
    argv = [
        *flags,
        "--data_dir",
        data_dir,
        "--logdir",
        str(tmp_path / "logs"),
        "--export_dir",
        str(tmp_path / "saved_models"),
    ]
    with pytest.raises(SystemExit) as exit_info:
        cli_train.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert match in err and err.strip().count("\n") == 0
    assert not (tmp_path / "logs").exists() and not (tmp_path / "saved_models").exists()


def test_train_py_runs_as_a_script(tmp_path, data_dir):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--dataset",
            "breast_cancer",
            "--epochs",
            "2",
            "--hidden_layers",
            "16",
            "--data_dir",
            data_dir,
            "--verbose",
            "0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["export_path"] == "saved_models/breast_cancer/1"
    assert (tmp_path / "saved_models" / "breast_cancer" / "1" / "saved_model.pb").is_file()


@pytest.mark.parametrize(
    "name, cls, momentum",
    [
        ("sgd", keras.optimizers.SGD, 0.0),
        ("momentum", keras.optimizers.SGD, 0.9),
        ("rmsprop", keras.optimizers.RMSprop, None),
        ("adam", keras.optimizers.Adam, None),
        ("adamw", keras.optimizers.AdamW, None),
    ],
)
def test_optimizer_flags_give_the_keras_optimizers(name, cls, momentum):
    """A4, B4: the update rules are Keras's."""
    optimizer = cli_train.make_optimizer(
        cli_args.parse(["--optimizer", name, "--decay", "none"]), 100
    )
    assert type(optimizer) is cls
    if momentum is not None:
        assert optimizer.momentum == momentum


@pytest.mark.parametrize("decay", ["linear", "cosine", "exponential"])
def test_decay_runs_from_the_learning_rate_to_the_final_rate(decay):
    args = cli_args.parse(
        ["--decay", decay, "--learning_rate", "0.1", "--learning_rate_final", "0.001"]
    )
    schedule = cli_train.learning_rate_schedule(args, 500)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(250)) < 0.1
    assert float(schedule(500)) == pytest.approx(0.001, rel=1e-4)


def test_clip_and_l1_flags_wrap_the_optimizer():
    from tfnn import optimizers
    from tfnn.clipping import ClipGradients

    args = cli_args.parse(
        ["--clip_mode", "norm", "--clip", "0.5", "--l1", "0.01", "--optimizer", "sgd"]
    )
    optimizer = cli_train.make_optimizer(args, 10)
    clip = optimizers.find(optimizer, ClipGradients)
    proximal = optimizers.find(optimizer, optimizers.ProximalL1)
    assert (clip.mode, clip.threshold, proximal.l1) == ("norm", 0.5, 0.01)
    assert type(proximal.inner_optimizer) is keras.optimizers.SGD
