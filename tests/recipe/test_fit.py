"""tfnn.recipe.fit in this process, on a tiny data set (3 classes, 4 features, 20 training
examples): the callbacks a run gets, the best epoch kept (D1), XLA's choice, and one fit."""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import callbacks as tfnn_callbacks
from tfnn import data
from tfnn.recipe import errors, fit
from tfnn.recipe import run as runs
from tfnn.recipe.options import Options


@pytest.fixture
def tiny_plan(tiny_plan):
    """The recipe's tiny plan (conftest.py), trained two epochs."""
    return functools.partial(tiny_plan, epochs=2)


@pytest.fixture
def folder(tmp_path):
    return runs.RunFolder(tmp_path / "run", tmp_path / "resume")


def write_history(folder, loss, val_accuracy):
    folder.path.mkdir(parents=True, exist_ok=True)
    rows = ["epoch,loss,val_accuracy"]
    rows += [f"{i},{a},{b}" for i, (a, b) in enumerate(zip(loss, val_accuracy, strict=True), 1)]
    folder.history_path.write_text("\n".join(rows) + "\n")


def kinds(callbacks):
    return [type(callback) for callback in callbacks]


RUNS_OWN = [
    tfnn_callbacks.BackupAndRestore,
    keras.callbacks.TerminateOnNaN,
    tfnn_callbacks.EpochCSVLogger,
    keras.callbacks.TensorBoard,
]


def test_a_plain_run_gets_the_backup_nan_stop_history_and_tensorboard(tiny_plan, folder):
    """Catches a callback of every run dropped or added (clipping telemetry without
    clipping, snapshots of a single model, early stopping at --patience 0), or the backup
    deleted when the fit ends (a kill after it would train again)."""
    callbacks = fit.run_callbacks(tiny_plan(), folder)
    assert kinds(callbacks) == RUNS_OWN
    assert callbacks[0].delete_checkpoint is False
    assert callbacks[0].backup_dir == str(folder.backup)
    assert callbacks[2].filename == str(folder.history_path) and callbacks[2].append
    assert callbacks[3].log_dir == str(folder.path / "tensorboard")


@pytest.mark.parametrize(
    "options, first",
    [
        ({"clip_mode": "norm", "clip": 1.0}, [tfnn_callbacks.ClipTelemetry]),
        ({"ensemble": 2, "ensemble_kind": "checkpoints"}, [tfnn_callbacks.LastEpochsWeights]),
        ({"ensemble": 1, "ensemble_kind": "checkpoints"}, []),
        ({"ensemble": 2, "ensemble_kind": "init"}, []),
    ],
)
def test_clipping_and_a_checkpoint_ensemble_add_theirs_before_the_backup(
    tiny_plan, folder, options, first
):
    """Catches the telemetry or the snapshots missing, present for one member (ensemble 1,
    the limit) or another kind, or after the backup (an epoch killed before its snapshot
    would not train again)."""
    callbacks = fit.run_callbacks(tiny_plan(**options), folder)
    assert kinds(callbacks) == [*first, *RUNS_OWN]
    if first == [tfnn_callbacks.ClipTelemetry]:
        assert callbacks[0].log_dir == folder.path / "tensorboard" / "clipping"
    if first == [tfnn_callbacks.LastEpochsWeights]:
        assert (callbacks[0].folder, callbacks[0].last) == (folder.path / "snapshots", 2)
        assert callbacks[0].on_saved == folder.record_snapshot


@pytest.mark.parametrize(
    "task, history, monitor, mode, threshold",
    [
        (data.CLASSES, {}, "val_accuracy", "max", None),
        (data.CLASSES, {"val_accuracy": [0.5, 0.7, 0.6]}, "val_accuracy", "max", 0.7),
        (data.REGRESSION, {"val_rmse": [3.0, 1.0, 2.0]}, "val_rmse", "min", 1.0),
    ],
)
def test_patience_adds_the_best_checkpoint_and_early_stopping_from_the_best_so_far(
    tiny_plan, folder, task, history, monitor, mode, threshold
):
    """Catches early stopping at --patience 0 or without the best checkpoint, another
    patience, monitor or mode, or a resumed run that forgets the best epoch recorded before
    it was interrupted (its checkpoint would keep a worse epoch, its patience start anew)."""
    folder.path.mkdir(parents=True)
    if history:
        ((name, values),) = history.items()
        folder.history_path.write_text(
            f"epoch,{name}\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values, 1))
        )
    callbacks = fit.run_callbacks(tiny_plan(task, patience=3), folder)
    *own, checkpoint, stopping = callbacks
    assert kinds(own) == RUNS_OWN
    assert type(checkpoint) is keras.callbacks.ModelCheckpoint
    assert checkpoint.filepath == str(folder.path / "best.weights.h5")
    assert (checkpoint.monitor, checkpoint.mode, checkpoint.best) == (monitor, mode, threshold)
    assert checkpoint.save_best_only and checkpoint.save_weights_only
    assert type(stopping) is keras.callbacks.EarlyStopping
    assert (stopping.monitor, stopping.patience, stopping.mode) == (monitor, 3, mode)
    assert stopping.baseline == threshold


def test_patience_0_adds_no_early_stopping(tiny_plan, folder):
    assert kinds(fit.run_callbacks(tiny_plan(patience=0), folder)) == RUNS_OWN


@pytest.mark.parametrize(
    "epochs, said",
    [
        (3, "early stopping did not stop (3 epochs); kept epoch 2 (val_accuracy 0.9000)"),
        (2, "early stopping stopped at epoch 2 of 3; kept epoch 2 (val_accuracy 0.9000)"),
    ],
)
def test_the_best_epochs_weights_are_loaded_and_said(tiny_plan, folder, caplog, epochs, said):
    """D1. Catches the best weights not loaded, the epoch counted from 0, the last epoch
    taken for the best, or a run that trained every epoch (the limit) said to have
    stopped."""
    caplog.set_level("INFO", logger="tfnn.recipe")
    the_plan = tiny_plan(epochs=3, patience=1)
    write_history(folder, [1.0, 0.8, 0.7][:epochs], [0.5, 0.9, 0.6][:epochs])
    best = fit.build_model(the_plan)
    best.set_weights([w + 1.0 for w in best.get_weights()])
    best.save_weights(str(folder.path / "best.weights.h5"))
    model = fit.build_model(the_plan)
    assert fit._keep_best(the_plan, model, folder) == (epochs, 2)
    for mine, its in zip(model.get_weights(), best.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, its)
    assert [r.getMessage() for r in caplog.records] == [said]


@pytest.mark.parametrize("patience, saved", [(0, True), (1, False)])
def test_without_patience_or_a_best_checkpoint_the_last_epoch_is_kept(
    tiny_plan, folder, patience, saved
):
    """Catches a best checkpoint loaded at --patience 0 (one left by an earlier run with
    patience), or a missing one read (an error)."""
    the_plan = tiny_plan(epochs=3, patience=patience)
    write_history(folder, [1.0, 0.8, 0.7], [0.5, 0.9, 0.6])
    model = fit.build_model(the_plan)
    if saved:
        other = fit.build_model(the_plan)
        other.set_weights([w + 1.0 for w in other.get_weights()])
        other.save_weights(str(folder.path / "best.weights.h5"))
    before = model.get_weights()
    assert fit._keep_best(the_plan, model, folder) == (3, 3)
    for mine, its in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(mine, its)


@pytest.mark.parametrize(
    "loss",
    [
        [float("nan"), 0.5, 0.4],
        [1.0, float("nan"), 0.4],
        [1.0, 0.5, float("inf")],
        [1.0, 0.5, -np.inf],
    ],
)
def test_a_loss_not_finite_at_any_epoch_is_divergence(tiny_plan, folder, loss):
    """Catches only the last epoch checked, or only NaN (an infinite loss exported), or
    another epoch's loss than the last said."""
    write_history(folder, loss, [0.5, 0.6, 0.7])
    with pytest.raises(errors.TrainingDiverged, match=f"loss {loss[-1]}"):
        fit._keep_best(tiny_plan(), fit.build_model(tiny_plan()), folder)


@pytest.mark.parametrize(
    "jit_compile, strategy, gpus, expected",
    [
        ("on", "default", [], True),
        ("off", "default", ["GPU:0"], False),
        ("auto", "default", ["GPU:0"], True),
        ("auto", "default", [], False),
        ("auto", "mirrored", ["GPU:0"], False),
    ],
)
def test_xla_is_on_when_asked_or_auto_with_a_gpu_and_one_device(
    monkeypatch, jit_compile, strategy, gpus, expected
):
    """Catches auto compiled on the CPU (measured no faster), or on several devices."""
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind: gpus if kind == "GPU" else []
    )
    options = Options(jit_compile=jit_compile, strategy=strategy)
    assert fit.uses_xla(options) is expected


def test_a_fit_trains_its_epochs_records_them_and_draws_its_curves(tiny_plan, folder, recwarn):
    """Catches the fit's epochs, its record or its learning curves lost, the seed not
    fixing the weights, another seed giving the same, or Keras's warning that its
    `shuffle` does not apply to the run's tf.data stream."""
    fitted = fit.fit(tiny_plan(), folder, seed=3)
    assert not [w for w in recwarn if "shuffle" in str(w.message)]
    assert (fitted.epochs, fitted.best_epoch) == (2, 2)
    assert folder.fitted() == 2 and len(folder.history()["loss"]) == 2
    assert (folder.path / "learning_curves.png").stat().st_size > 0
    assert not (folder.path / "augmented.png").exists()
    again = runs.RunFolder(folder.path.parent / "again", folder.resume.parent / "again")
    other = runs.RunFolder(folder.path.parent / "other", folder.resume.parent / "other")
    same = fit.fit(tiny_plan(), again, seed=3).model.get_weights()
    different = fit.fit(tiny_plan(), other, seed=4).model.get_weights()
    for mine, its in zip(fitted.model.get_weights(), same, strict=True):
        np.testing.assert_array_equal(mine, its)
    assert any(
        not np.array_equal(mine, its)
        for mine, its in zip(fitted.model.get_weights(), different, strict=True)
    )


def test_a_rerun_after_the_fit_returned_trains_no_more_than_it_recorded(tiny_plan, folder):
    """Catches a rerun that trains the options' epochs again after its fit was recorded
    (a kill while the curves were drawn would then train anew)."""
    folder.path.mkdir(parents=True)
    folder.record_fitted(1)
    fitted = fit.fit(tiny_plan(epochs=3), folder, seed=3)
    assert fitted.epochs == 1 and folder.fitted() == 1


def recorder(calls, value):
    """A stand-in recording (args, kwargs) of each call in `calls` and returning `value`."""

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return value

    return record


def test_every_mlp_option_reaches_the_network(tiny_plan, monkeypatch):
    """Catches an option of the MLP dropped or another passed in its place (the network
    built with the default dropout, L2, max-norm, activation, init or width), the data's
    statistics or target scale not given, or the name not the one asked."""
    calls = []
    monkeypatch.setattr(fit, "mlp", recorder(calls, "network"))
    the_plan = tiny_plan(
        data.REGRESSION,
        hidden_layers=(5, 3),
        activation="tanh",
        init="he",
        dropout=0.2,
        l2=1e-3,
        max_norm=2.0,
    )
    assert fit.build_model(the_plan) == "network"
    assert fit.build_model(the_plan, name="member_2") == "network"
    for (args, kwargs), name in zip(calls, ["mlp", "member_2"], strict=True):
        assert args == ((4,), 1)
        assert kwargs.pop("statistics") is the_plan.input_statistics
        assert kwargs.pop("target_scale") is the_plan.target_scale is not None
        assert kwargs == {
            "hidden_layers": (5, 3),
            "activation": "tanh",
            "init": "he",
            "dropout": 0.2,
            "l2": 1e-3,
            "max_norm": 2.0,
            "name": name,
        }


def test_every_cnn_option_reaches_the_network(tiny_plan, monkeypatch):
    """Catches the CNN's spec, init, L2, statistics, target scale or name not passed on, or
    an MLP built for --model cnn."""
    calls = []
    monkeypatch.setattr(fit, "cnn", recorder(calls, "network"))
    monkeypatch.setattr(fit, "mlp", recorder(calls, "an mlp"))
    spec = "C-2-3-1-same,F"
    the_plan = tiny_plan(
        data.REGRESSION, model="cnn", hidden_layers=None, cnn=spec, init="glorot", l2=1e-3
    )
    assert fit.build_model(the_plan) == "network"
    assert fit.build_model(the_plan, name="member_2") == "network"
    for (args, kwargs), name in zip(calls, ["cnn", "member_2"], strict=True):
        assert args == ((4,), 1, spec)
        assert kwargs.pop("statistics") is the_plan.input_statistics
        assert kwargs.pop("target_scale") is the_plan.target_scale is not None
        assert kwargs == {"init": "glorot", "l2": 1e-3, "name": name}


class Compiled:
    """A stand-in network: records `compile`'s arguments."""

    def compile(self, *args, **kwargs):
        self.compiled = args, kwargs


@pytest.mark.parametrize(
    "jit_compile, rule",
    [
        ("off", {"optimizer": "momentum", "momentum": 0.8}),
        ("on", {"optimizer": "adamw", "weight_decay": 0.01}),
    ],
)
def test_the_model_is_compiled_with_the_options_optimizer_loss_and_steps(
    tiny_plan, monkeypatch, jit_compile, rule
):
    """Catches an optimizer option dropped or replaced (the schedule's length not the run's
    steps: steps a epoch × epochs), the loss, metrics or steps a call not the plan's, XLA
    not as asked, or the name not passed to the network."""
    optimizers, names = [], []
    monkeypatch.setattr(fit, "make_optimizer", recorder(optimizers, "optimizer"))
    monkeypatch.setattr(fit, "build_model", lambda _, name=None: names.append(name) or Compiled())
    the_plan = tiny_plan(
        epochs=3,
        learning_rate=0.05,
        decay="cosine",
        learning_rate_final=0.001,
        l1=1e-4,
        clip_mode="norm",
        clip=2.0,
        jit_compile=jit_compile,
        **rule,
    )
    model = fit.compiled_model(the_plan, name="member_3")
    assert names == ["member_3"]
    assert optimizers == [
        (
            (rule["optimizer"],),
            {
                "learning_rate": 0.05,
                "decay": "cosine",
                "learning_rate_final": 0.001,
                "total_steps": 2 * 3,
                "momentum": rule.get("momentum"),
                "weight_decay": rule.get("weight_decay"),
                "l1": 1e-4,
                "clip_mode": "norm",
                "clip": 2.0,
            },
        )
    ]
    args, kwargs = model.compiled
    assert args[0] == "optimizer"
    assert type(args[1]) is type(the_plan.objective.loss())
    assert args[1].get_config() == the_plan.objective.loss().get_config()
    assert [m.name for m in kwargs.pop("metrics")] == [m.name for m in the_plan.objective.metrics()]
    assert kwargs == {
        "steps_per_execution": the_plan.steps_per_execution,
        "jit_compile": jit_compile == "on",
    }


def test_the_fit_reads_its_seeds_shuffled_repeated_stream_from_the_resumed_epoch(
    tiny_plan, tmp_path, monkeypatch
):
    """Catches the training stream's shuffle seed, bootstrap seed, endless repeat or first
    epoch not the fit's (another data order than the seed's; the whole split, not the
    bootstrap sample; a resumed run's order restarted at epoch 0), the augmentation's seed
    or first step not the run's (a resumed run drawing epoch 0's noise again) or its
    picture not drawn, the name not given to the model (members all named "mlp"), or the
    run's folder made only where its parent exists."""
    folder = runs.RunFolder(tmp_path / "a" / "b" / "member-2", tmp_path / "resume")
    from tfnn.recipe.plan import Plan

    streams, augmented = [], []
    batches = Plan.batches

    def recorded(self, split, **kwargs):
        if split is self.dataset.train:
            streams.append(kwargs)
        return batches(self, split, **kwargs)

    def augment(dataset, transforms, seed, *, first_step=0):
        augmented.append((seed, first_step))
        return dataset

    monkeypatch.setattr(Plan, "batches", recorded)
    monkeypatch.setattr(fit.augment, "augment", augment)
    monkeypatch.setattr(
        fit.runs, "resumed_epoch", lambda run_folder: 3 if run_folder is folder else 0
    )
    fitted = fit.fit(tiny_plan(epochs=4, noise=0.1), folder, seed=5, bootstrap_seed=6, name="m_2")
    assert fitted.model.name == "m_2"
    assert streams == [{"shuffle_seed": 5, "bootstrap_seed": 6, "repeat": True, "first_epoch": 3}]
    assert augmented == [(5, 3 * 2)]  # 2 steps an epoch
    assert (folder.path / "augmented.png").stat().st_size > 0


def test_the_augmented_picture_shows_eight_examples_as_the_run_draws_them(
    tiny_plan, tmp_path, monkeypatch
):
    """Catches another number of examples drawn, their labels not given to the transforms
    (mixup mixes them), or other draws than seed (seed, 0)'s."""
    drawn = []
    monkeypatch.setattr(
        fit.plots, "augmented_samples", lambda x, after, path: drawn.append((x, after, path))
    )
    the_plan = tiny_plan(noise=0.5, mixup=0.4)
    fit._draw_augmented(the_plan, 7, tmp_path / "a.png")
    [(x, after, path)] = drawn
    expected_x, y = the_plan.sample(8)
    np.testing.assert_array_equal(x, expected_x)
    assert len(x) == 8 and path == tmp_path / "a.png"
    transforms = list(the_plan.transforms)
    twin = fit.augment.apply(transforms, tf.constant(x), tf.constant(y), [7, 0])[0]
    np.testing.assert_array_equal(after, twin.numpy())


@pytest.mark.parametrize("verbose", [0, 1])
def test_a_multi_worker_fit_hands_its_parts_to_the_loop_and_says_its_weights_digest(
    tiny_plan, folder, monkeypatch, caplog, verbose
):
    """Catches a part of the run not handed to tfnn.distribute's loop (another strategy,
    loss, metrics, stream, validation split, epochs, steps, history file), its progress
    logged when not verbose, or a digest line other than the weights' SHA-256 (the line the
    workers' equality is checked by)."""
    import hashlib

    calls = []
    monkeypatch.setattr(fit.distribute, "fit_multi_worker", recorder(calls, None))
    caplog.set_level("INFO", logger="tfnn.recipe")
    the_plan = tiny_plan(epochs=3, verbose=verbose)
    model = fit.compiled_model(the_plan)
    fit._fit_multi_worker(the_plan, model, "the stream", folder)
    [(args, kwargs)] = calls
    assert args[:5] == (
        model,
        the_plan.strategy,
        model.loss,
        the_plan.objective.metrics,
        "the stream",
    )
    validation = list(args[5].unbatch().as_numpy_iterator())
    assert len(validation) == 10  # the validation split's examples, not the training's 20
    np.testing.assert_array_equal(validation[0][0], the_plan.dataset.validation.x[0])
    assert kwargs == {
        "epochs": 3,
        "steps_per_epoch": 2,
        "history_path": folder.history_path,
        "log": fit.say if verbose else None,
    }
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    assert [r.getMessage() for r in caplog.records] == [f"final weights sha256 {digest}"]


def test_a_fit_stops_at_its_fault_point_once_its_fit_is_recorded(tiny_plan, folder, monkeypatch):
    """Catches the fault point "fitted" renamed or moved before the record (the kill tests of
    a run stopped between its fit and its saved model would stop elsewhere), or a fit with
    patience returning other weights than its best epoch's (D1)."""
    points = []

    def fault_point(name):
        points.append((name, folder.fitted()))

    monkeypatch.setattr(fit.runs, "fault_point", fault_point)
    the_plan = tiny_plan(epochs=2, patience=1)
    fitted = fit.fit(the_plan, folder, seed=1)
    assert points == [("fitted", 2)]
    best = fit.build_model(the_plan)
    best.load_weights(str(folder.path / "best.weights.h5"))
    for mine, its in zip(fitted.model.get_weights(), best.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, its)


def test_a_distributed_fit_returns_a_plain_copy_for_one_device(tiny_plan, tmp_path):
    """Catches the model trained under a distribution strategy returned as it is (the
    evaluation, ensembles and export run on one device), a copy built without the weights
    or the name, or a plain run's model copied for nothing."""
    plain = fit.fit(tiny_plan(epochs=1), runs.RunFolder(tmp_path / "p", tmp_path / "rp"), seed=1)
    assert plain.model.optimizer is not None  # the compiled model itself
    the_plan = tiny_plan(epochs=1, strategy="mirrored")  # trained here under the default
    folder = runs.RunFolder(tmp_path / "m", tmp_path / "rm")
    fitted = fit.fit(the_plan, folder, seed=1, name="member_1")
    assert fitted.model.name == "member_1"
    assert getattr(fitted.model, "optimizer", None) is None
    for mine, its in zip(fitted.model.get_weights(), plain.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, its)


class Fits:
    """A stand-in network: records `fit`'s arguments."""

    def fit(self, *args, **kwargs):
        self.fitted = args, kwargs


@pytest.mark.parametrize("verbose", [0, 2])
def test_keras_fit_gets_the_runs_stream_epochs_validation_callbacks_and_verbosity(
    tiny_plan, folder, verbose
):
    """Catches the stream, its steps an epoch, the validation split, the epochs asked, the
    callbacks (the run's, then the caller's) or the verbosity not passed to Model.fit."""
    the_plan, network, mine = tiny_plan(verbose=verbose), Fits(), keras.callbacks.History()
    folder.path.mkdir(parents=True)
    fit._fit(the_plan, network, "the stream", folder, [mine], epochs=7)
    (stream,), kwargs = network.fitted
    assert stream == "the stream"
    validation = list(kwargs.pop("validation_data").unbatch().as_numpy_iterator())
    assert len(validation) == 10  # the validation split's examples
    np.testing.assert_array_equal(validation[0][0], the_plan.dataset.validation.x[0])
    callbacks = kwargs.pop("callbacks")
    assert kinds(callbacks) == [*RUNS_OWN, keras.callbacks.History] and callbacks[-1] is mine
    assert kwargs == {"steps_per_epoch": 2, "epochs": 7, "shuffle": False, "verbose": verbose}


def test_a_multi_worker_run_fits_with_tfnn_distributes_loop(tiny_plan, folder, monkeypatch):
    """Catches --strategy multi_worker fitted by Keras's fit (which fails under that
    strategy: tfnn.distribute), or its parts not handed on."""
    calls = []
    monkeypatch.setattr(fit, "_fit_multi_worker", recorder(calls, None))
    the_plan, network = tiny_plan(strategy="multi_worker"), Fits()
    fit._fit(the_plan, network, "the stream", folder, [], epochs=7)
    assert calls == [((the_plan, network, "the stream", folder), {})]
    assert not hasattr(network, "fitted")
