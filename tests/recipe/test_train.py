import csv
import json
import logging
import pathlib
import re
import types

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


def test_an_ensemble_on_logical_cpu_devices_trains_its_members_in_this_process(monkeypatch):
    """--cpu_devices N > 1 exist only in the process that made them, so its members train
    there (workers=1), not on pool workers, where every member failed. Catches `_train`
    passing the unset --workers (one a CPU) to `train_ensemble`."""
    from tfnn.recipe import train as stages
    from tfnn.recipe.options import Options

    given = []

    def train_ensemble(plan, folder, callbacks, stopwatch, workers, meanwhile=None):
        given.append(workers)
        raise InterruptedError

    monkeypatch.setattr(stages, "train_ensemble", train_ensemble)
    options = Options(dataset="digits", ensemble=2, strategy="mirrored", cpu_devices=2)
    with pytest.raises(InterruptedError):
        stages._train(types.SimpleNamespace(options=options), None, (), None)
    assert given == [1]


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


@pytest.mark.parametrize(
    "penalties, title",
    [
        ({"l1": 0.0, "l2": 0.0}, None),
        ({"l1": 0.01, "l2": 0.0}, "L1 λ=0.01"),
        ({"l1": 0.0, "l2": 0.001}, "L2 λ=0.001"),
        ({"l1": 0.01, "l2": 0.001}, "L1 λ=0.01 + L2 λ=0.001"),
    ],
)
def test_the_weight_histogram_is_drawn_with_a_penalty_and_names_those_above_0(
    tmp_path, monkeypatch, penalties, title
):
    """At the limit of each penalty (0: off, not named) and past it: catches `l1 and l2`
    (one penalty alone drawing nothing) and a penalty of 0 named in the title."""
    from tfnn import plots
    from tfnn.recipe import train as stages
    from tfnn.recipe.options import Options

    drawn = []
    monkeypatch.setattr(plots, "weight_histogram", lambda k, t, p: drawn.append(t) or 0.25)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    the_plan = types.SimpleNamespace(options=Options(dataset="digits", **penalties))
    found = stages._pictures(the_plan, model, types.SimpleNamespace(path=tmp_path))
    assert drawn == ([title] if title else [])
    assert found == ({"zero_weights": 0.25} if title else {})


@pytest.mark.parametrize("cpu_devices, listed", [(1, []), (2, ["CPU"])])
def test_logical_cpu_devices_past_1_must_be_the_processs(monkeypatch, cpu_devices, listed):
    """In a process of one logical CPU: 1 (the limit: the CPU as it is) runs without listing
    the devices (which starts TensorFlow's runtime, after which a multi-worker strategy cannot
    configure itself), 2 is refused naming it. Catches `cpu_devices >= 1` and 2 taken in a
    process that did not make them."""
    from tfnn.recipe import train as stages
    from tfnn.recipe.errors import OptionError
    from tfnn.recipe.options import Options

    asked = []
    monkeypatch.setattr(
        tf.config, "list_logical_devices", lambda kind: asked.append(kind) or ["/cpu:0"]
    )
    monkeypatch.setattr(keras.mixed_precision, "set_dtype_policy", lambda policy: None)
    options = Options(dataset="digits", cpu_devices=cpu_devices, strategy="mirrored")
    if listed:
        with pytest.raises(OptionError, match="Received: cpu_devices=2"):
            stages._configure(options)
    else:
        stages._configure(options)
    assert asked == listed


@pytest.mark.parametrize("ensemble, parameters", [(1, 1000), (3, 3000)])
def test_the_export_folder_is_checked_for_room_for_every_member(
    tmp_path, monkeypatch, ensemble, parameters
):
    """One model (the limit) and past it (3 members, exported as one SavedModel): catches
    the room checked for one member's parameters, so a full disk fails the export after
    every member trained."""
    from tfnn import export
    from tfnn.recipe import run as runs
    from tfnn.recipe import train as stages
    from tfnn.recipe.options import Options

    checked = []
    model = types.SimpleNamespace(count_params=lambda: 1000)
    monkeypatch.setattr(stages, "build_model", lambda plan: model)
    monkeypatch.setattr(runs, "check_writable", lambda *args: checked.append(args))
    options = Options(dataset="digits", ensemble=ensemble, export_dir=str(tmp_path / "models"))
    stages._check_paths(types.SimpleNamespace(options=options))
    assert ("export_dir", str(tmp_path / "models"), export.required_bytes(parameters)) in checked


@pytest.mark.parametrize("replicas, said", [(1, False), (2, True)])
def test_the_global_batch_is_said_past_one_replica(monkeypatch, caplog, replicas, said):
    """At the limit (one replica: nothing to split) and past it: catches `replicas >= 1`
    (the line on every run) and `replicas > 2`."""
    from tfnn import distribute
    from tfnn.recipe import train as stages
    from tfnn.recipe.options import Options

    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    strategy = types.SimpleNamespace(num_replicas_in_sync=replicas)
    monkeypatch.setattr(stages, "_configure", lambda options: None)
    monkeypatch.setattr(distribute, "make_strategy", lambda name: strategy)
    monkeypatch.setattr(distribute, "is_chief", lambda strategy: True)
    monkeypatch.setattr(stages, "_recipe", lambda *args: "result")
    options = Options(dataset="digits", batch_size=64)
    assert stages._on_devices(options, (), None) == "result"
    lines = [message for message in caplog.messages if "replicas" in message]
    assert lines == (["default: 2 replicas, global batch 64 = 2 × 32"] if said else [])


def test_a_non_chief_worker_writes_into_a_scratch_folder_deleted_on_return(monkeypatch):
    """Catches a worker writing into the chief's logdir or export_dir (two writers of one
    run), or its scratch folder left behind."""
    from tfnn import distribute
    from tfnn.recipe import train as stages
    from tfnn.recipe.options import Options

    seen = []
    strategy = types.SimpleNamespace(num_replicas_in_sync=1)
    monkeypatch.setattr(stages, "_configure", lambda options: None)
    monkeypatch.setattr(distribute, "make_strategy", lambda name: strategy)
    monkeypatch.setattr(distribute, "is_chief", lambda strategy: False)

    def recipe(options, callbacks, strategy, chief, stopwatch, test_and_export):
        folder = pathlib.Path(options.logdir).parent
        assert folder.is_dir() and folder.name.startswith("tfnn-worker-") and chief is False
        seen.append((folder, options.logdir, options.export_dir))

    monkeypatch.setattr(stages, "_recipe", recipe)
    stages._on_devices(Options(dataset="digits"), (), None)
    ((folder, logdir, export_dir),) = seen
    assert (logdir, export_dir) == (f"{folder}/logs", f"{folder}/exports")
    assert not folder.exists()


@pytest.mark.parametrize(
    "asked, runs, said",
    [
        (None, 1, None),
        (1, 1, None),
        (0, 0, None),  # 0: all, as the process runs
        (0, 1, "threads=0 ignored: this process runs 1"),
        (2, 0, "threads=2 ignored: this process runs all"),
    ],
)
def test_threads_other_than_the_processs_are_said_ignored(monkeypatch, caplog, asked, runs, said):
    """At the limit of `threads` (0, all; None, unset) and past it: catches `if
    options.threads` (0 asked in a one-thread process taken silently) and `runs or 'all'`
    dropped (`runs 0`)."""
    from tfnn.recipe import train as stages
    from tfnn.recipe.options import Options

    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    monkeypatch.setattr(tf.config.threading, "get_intra_op_parallelism_threads", lambda: runs)
    monkeypatch.setattr(keras.mixed_precision, "set_dtype_policy", lambda policy: None)
    stages._configure(Options(dataset="digits", threads=asked))
    lines = [message for message in caplog.messages if "ignored" in message]
    where = "(set where it starts: tfnn.recipe.process.configure)"
    assert lines == ([f"{said} {where}"] if said else [])


@pytest.mark.parametrize("callbacks, workers", [((), 2), ((keras.callbacks.Callback(),), 1)])
def test_an_ensemble_with_callbacks_of_this_process_trains_here(monkeypatch, callbacks, workers):
    """Catches the caller's callbacks (objects of this process) given to members trained on
    pool workers, where they would never run: with one, workers is 1."""
    from tfnn.recipe import train as stages
    from tfnn.recipe.options import Options

    given = []

    def train_ensemble(plan, folder, callbacks, stopwatch, workers, meanwhile=None):
        given.append(workers)
        raise InterruptedError

    monkeypatch.setattr(stages, "train_ensemble", train_ensemble)
    options = Options(dataset="digits", ensemble=2, workers=2)
    with pytest.raises(InterruptedError):
        stages._train(types.SimpleNamespace(options=options), None, callbacks, None)
    assert given == [workers]
