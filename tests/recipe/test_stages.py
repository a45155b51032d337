"""The recipe's stages (tfnn/recipe/train.py) called directly, in this process, with stand-ins
for what each hands work to (the fit, the ensemble, the evaluation, the export, the run folder's
neighbours): what each stage does with its inputs, records and returns, without training."""

import logging
import pathlib
import re
import types

import keras
import pytest
import tensorflow as tf

from tfnn import distribute, export, plots
from tfnn.recipe import run as runs
from tfnn.recipe import train as stages
from tfnn.recipe.errors import OptionError
from tfnn.recipe.options import Options


@pytest.fixture
def folder(tmp_path):
    """A run folder (its path and resume folder made), as `runs.locate` returns it."""
    made = runs.RunFolder(tmp_path / "run", tmp_path / "resume")
    made.path.mkdir()
    made.resume.mkdir()
    return made


@pytest.fixture
def said(caplog):
    """The lines the recipe says, as a list that grows."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    return caplog.messages


def exactly(text):
    """A pattern matching `text` whole."""
    return f"^{re.escape(text)}$"


def test_an_ensemble_on_logical_cpu_devices_trains_its_members_in_this_process(monkeypatch):
    """--cpu_devices N > 1 exist only in the process that made them, so its members train
    there (workers=1), not on pool workers, where every member failed. Catches `_train`
    passing the unset --workers (one a CPU) to `train_ensemble`."""

    given = []

    def train_ensemble(plan, folder, callbacks, stopwatch, workers, meanwhile=None):
        given.append(workers)
        raise InterruptedError

    monkeypatch.setattr(stages, "train_ensemble", train_ensemble)
    options = Options(dataset="digits", ensemble=2, strategy="mirrored", cpu_devices=2)
    with pytest.raises(InterruptedError):
        stages._train(types.SimpleNamespace(options=options), None, (), None)
    assert given == [1]


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

    given = []

    def train_ensemble(plan, folder, callbacks, stopwatch, workers, meanwhile=None):
        given.append(workers)
        raise InterruptedError

    monkeypatch.setattr(stages, "train_ensemble", train_ensemble)
    options = Options(dataset="digits", ensemble=2, workers=2)
    with pytest.raises(InterruptedError):
        stages._train(types.SimpleNamespace(options=options), None, callbacks, None)
    assert given == [workers]
