"""The recipe's stages (tfnn/recipe/train.py) called directly, in this process, with stand-ins
for what each hands work to (the fit, the ensemble, the evaluation, the export, the run folder's
neighbours): what each stage does with its inputs, records and returns, without training."""

import json
import logging
import pathlib
import re
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import data, distribute, export, plots
from tfnn.layers import Conv1D, Conv2D
from tfnn.recipe import process
from tfnn.recipe import run as runs
from tfnn.recipe import train as stages
from tfnn.recipe.errors import OptionError, RunError
from tfnn.recipe.options import Options
from tfnn.recipe.phases import Stopwatch


@pytest.fixture
def folder(tmp_path):
    """A run folder (its path and resume folder made), as `runs.locate` returns it."""
    made = runs.RunFolder(tmp_path / "run", tmp_path / "resume")
    made.path.mkdir()
    made.resume.mkdir()
    return made


@pytest.fixture
def said(caplog):
    """The lines the recipe says (`.messages`)."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    return caplog


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


# train: the options checked, then handed to the devices' stage


@pytest.fixture
def on_devices(monkeypatch):
    """`_on_devices` replaced by one that records its arguments and returns "metrics"."""
    given = []

    def record(options, callbacks, stopwatch, test_and_export):
        given.append((options, callbacks, stopwatch, test_and_export))
        return "metrics"

    monkeypatch.setattr(stages, "_on_devices", record)
    return given


def test_train_hands_on_the_checked_options_and_a_new_stopwatch(on_devices):
    """Catches the options not checked into `Options`, the callbacks, or test_and_export
    (True by default) not handed on, or no stopwatch made when none is given."""
    assert stages.train(dataset="digits", epochs=3) == "metrics"
    ((options, callbacks, stopwatch, test_and_export),) = on_devices
    assert options == Options(dataset="digits", epochs=3)
    assert (callbacks, test_and_export) == ((), True)
    assert isinstance(stopwatch, Stopwatch)


def test_train_hands_on_the_callers_callbacks_stopwatch_and_choice(on_devices):
    """Catches a given stopwatch replaced by a new one, or test_and_export=False (with one
    model, the limit of the ensemble check) not handed on."""
    watch, callback = Stopwatch(), keras.callbacks.Callback()
    stages.train(callbacks=(callback,), stopwatch=watch, test_and_export=False, dataset="digits")
    assert on_devices == [(Options(dataset="digits"), (callback,), watch, False)]


def test_train_refuses_an_unknown_option_naming_it(on_devices):
    """Catches an unknown option taken or named wrongly."""
    expected = "Expected one of train.py's options. Received: bogus=[1]"
    with pytest.raises(OptionError, match=exactly(expected)):
        stages.train(dataset="digits", bogus=[1])
    assert on_devices == []


def test_train_refuses_a_malformed_option_with_its_message_alone(on_devices):
    """Catches Options' ValueError passed as it is, or as an OptionError of another message
    or chained to it (a traceback of two errors for one bad flag)."""
    with pytest.raises(ValueError) as raised:
        Options(dataset="digits", epochs=0)
    with pytest.raises(OptionError, match=exactly(str(raised.value))) as refused:
        stages.train(dataset="digits", epochs=0)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    assert on_devices == []


@pytest.mark.parametrize("ensemble, test_and_export", [(2, True), (1, False)])
def test_train_takes_an_ensemble_or_a_trial_of_one_model(on_devices, ensemble, test_and_export):
    """At the limit of the ensemble check (one model, a trial) and an ensemble run in full:
    catches `ensemble >= 1` or the check without test_and_export."""
    stages.train(dataset="digits", ensemble=ensemble, test_and_export=test_and_export)
    assert [given[3] for given in on_devices] == [test_and_export]


def test_train_refuses_an_ensembles_trial(on_devices):
    """Catches the check past ensemble 2, or its message."""
    expected = (
        "Expected ensemble 1 with test_and_export=False (an ensemble's members are measured "
        "on the test split while training). Received: ensemble=2"
    )
    with pytest.raises(OptionError, match=exactly(expected)):
        stages.train(dataset="digits", ensemble=2, test_and_export=False)
    assert on_devices == []


@pytest.mark.parametrize("fails", [False, True])
def test_train_restores_the_global_dtype_policy(monkeypatch, fails):
    """Catches the policy the run set (mixed precision) left as the global one, after a run
    or an error."""

    def run(options, callbacks, stopwatch, test_and_export):
        keras.mixed_precision.set_dtype_policy("mixed_float16")
        if fails:
            raise InterruptedError

    monkeypatch.setattr(stages, "_on_devices", run)
    keras.mixed_precision.set_dtype_policy("float32")
    try:
        if fails:
            with pytest.raises(InterruptedError):
                stages.train(dataset="digits")
        else:
            stages.train(dataset="digits")
        assert keras.mixed_precision.dtype_policy().name == "float32"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


# _configure: the seed, the policy, and the checks against the process's settings


@pytest.fixture
def configured(monkeypatch):
    """The seed and the dtype policy `_configure` sets, recorded instead of set."""
    made = []
    monkeypatch.setattr(keras.utils, "set_random_seed", lambda seed: made.append(("seed", seed)))
    monkeypatch.setattr(
        keras.mixed_precision, "set_dtype_policy", lambda policy: made.append(("policy", policy))
    )
    return made


def test_configure_sets_the_runs_seed_and_dtype_policy(configured):
    """Catches the seed or the policy not set, or set to another value."""
    stages._configure(Options(dataset="digits", seed=7, precision="mixed_float16"))
    assert configured == [("seed", 7), ("policy", "mixed_float16")]


def test_configure_takes_as_many_logical_cpu_devices_as_the_process_made(monkeypatch, configured):
    """Catches 2 devices refused in a process that made 2 (`==` for `!=`)."""
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind: ["/cpu:0", "/cpu:1"])
    stages._configure(Options(dataset="digits", cpu_devices=2, strategy="mirrored"))
    assert configured == [("seed", 42), ("policy", "float32")]


@pytest.mark.parametrize(
    "jit_compile, deterministic, refused",
    [("on", True, True), ("on", False, False), ("off", True, False)],
)
def test_configure_refuses_xla_under_op_determinism(
    monkeypatch, configured, jit_compile, deterministic, refused
):
    """Catches `or` for `and` (XLA refused without op determinism, or determinism refused
    without XLA), the check dropped, or its message."""
    monkeypatch.setattr(process, "deterministic", lambda: deterministic)
    options = Options(dataset="digits", jit_compile=jit_compile)
    if refused:
        expected = (
            "Expected jit_compile off in a process that turned op determinism on. "
            "Received: jit_compile='on'"
        )
        with pytest.raises(OptionError, match=exactly(expected)):
            stages._configure(options)
        assert configured == []
    else:
        stages._configure(options)
        assert configured == [("seed", 42), ("policy", "float32")]


def test_configure_refuses_cpu_devices_naming_them_in_full(monkeypatch, configured):
    """Catches the message of logical CPU devices the process did not make."""
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind: ["/cpu:0"])
    expected = (
        "Expected cpu_devices 0, or as many as the process started with "
        "(tfnn.recipe.process.configure). Received: cpu_devices=3"
    )
    with pytest.raises(OptionError, match=exactly(expected)):
        stages._configure(Options(dataset="digits", cpu_devices=3, strategy="mirrored"))


# _on_devices: the strategy, a worker's scratch folders, the recipe


@pytest.fixture
def devices(monkeypatch):
    """`_configure` and the strategy replaced: one replica, chief unless `.chief` is False;
    `.configured` the options configured, `.made` the strategies asked for."""
    state = types.SimpleNamespace(chief=True, configured=[], made=[])
    strategy = types.SimpleNamespace(num_replicas_in_sync=1)
    state.strategy = strategy
    monkeypatch.setattr(stages, "_configure", state.configured.append)
    monkeypatch.setattr(
        distribute, "make_strategy", lambda name: state.made.append(name) or strategy
    )
    monkeypatch.setattr(distribute, "is_chief", lambda given: given is strategy and state.chief)
    return state


def test_the_chief_runs_the_recipe_with_its_own_options(monkeypatch, devices):
    """Catches the options, callbacks, strategy, chief or stopwatch handed on wrongly, or
    test_and_export not True by default."""
    given = []
    monkeypatch.setattr(stages, "_recipe", lambda *args: given.append(args) or "result")
    options, callbacks, watch = Options(dataset="digits", strategy="mirrored"), ("cb",), Stopwatch()
    assert stages._on_devices(options, callbacks, watch) == "result"
    assert given == [(options, callbacks, devices.strategy, True, watch, True)]
    assert devices.configured == [options] and devices.made == ["mirrored"]
    stages._on_devices(options, callbacks, watch, False)
    assert given[1][5] is False


def test_a_strategy_the_process_cannot_make_is_an_option_error(monkeypatch):
    """Catches the strategy's ValueError passed as it is, or chained (two tracebacks)."""

    def refuse(name):
        raise ValueError(f"Expected a strategy. Received: strategy={name!r}")

    monkeypatch.setattr(stages, "_configure", lambda options: None)
    monkeypatch.setattr(distribute, "make_strategy", refuse)
    expected = "Expected a strategy. Received: strategy='mirrored'"
    with pytest.raises(OptionError, match=exactly(expected)) as refused:
        stages._on_devices(Options(dataset="digits", strategy="mirrored"), (), None)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


@pytest.mark.parametrize("ends", ["removing its scratch", "failing"])
def test_a_workers_scratch_folder_goes_however_the_recipe_ends(monkeypatch, devices, ends):
    """Catches the scratch folder kept after an error, or its removal failing when it is
    gone already (`ignore_errors`)."""
    devices.chief = False
    seen = []

    def recipe(options, callbacks, strategy, chief, stopwatch, test_and_export):
        scratch = pathlib.Path(options.logdir).parent
        seen.append(scratch)
        if ends == "failing":
            raise InterruptedError
        scratch.rmdir()

    monkeypatch.setattr(stages, "_recipe", recipe)
    if ends == "failing":
        with pytest.raises(InterruptedError):
            stages._on_devices(Options(dataset="digits"), (), None)
    else:
        stages._on_devices(Options(dataset="digits"), (), None)
    assert len(seen) == 1 and not seen[0].exists()


# _prepare: the data set and the plan


def test_prepare_loads_the_options_data_set_and_plans_it(monkeypatch):
    """Catches the progress bar left on (its lines in a run's output), or an option of the
    load (seed, validation fraction, folder) or of the plan handed on wrongly."""
    calls = []
    monkeypatch.setattr(stages.tfds, "display_progress_bar", lambda on: calls.append(on))
    monkeypatch.setattr(data, "load", lambda *args, **kwargs: calls.append((args, kwargs)) or "ds")
    monkeypatch.setattr(stages, "make_plan", lambda *args: calls.append(args) or "plan")
    options = Options(dataset="digits", seed=5, validation_fraction=0.25, data_dir="/d")
    assert stages._prepare(options, "strategy") == "plan"
    loaded = (("digits",), {"seed": 5, "validation_fraction": 0.25, "data_dir": "/d"})
    assert calls == [False, loaded, (options, "ds", "strategy")]


@pytest.mark.parametrize("where", ["load", "make_plan"])
def test_prepare_turns_a_data_set_or_plan_it_cannot_take_into_an_option_error(monkeypatch, where):
    """Catches the load's or the plan's ValueError passed as it is, or chained."""

    def refuse(*args, **kwargs):
        raise ValueError(f"Expected what {where} takes. Received: x=1")

    monkeypatch.setattr(stages.tfds, "display_progress_bar", lambda on: None)
    monkeypatch.setattr(data, "load", refuse if where == "load" else lambda *a, **k: "ds")
    monkeypatch.setattr(stages, "make_plan", refuse)
    expected = f"Expected what {where} takes. Received: x=1"
    with pytest.raises(OptionError, match=exactly(expected)) as refused:
        stages._prepare(Options(dataset="digits"), None)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


# _pictures: the first layer's filters and the weight histogram


@pytest.fixture
def drawn(monkeypatch):
    """The filters and histograms `_pictures` draws, recorded: (kind, array(s), title, path)."""
    made = []
    monkeypatch.setattr(
        plots, "first_layer_filters", lambda kernel, path: made.append(("filters", kernel, path))
    )

    def histogram(kernels, title, path):
        made.append(("weights", kernels, title, path))
        return 0.5

    monkeypatch.setattr(plots, "weight_histogram", histogram)
    return made


@pytest.mark.parametrize("rank", [1, 2])
def test_pictures_draw_a_cnns_first_convolution(tmp_path, drawn, rank):
    """Catches a CNN's filters not drawn (1D or 2D), drawn from its second convolution, or
    written elsewhere than filters.png."""
    layer = Conv1D if rank == 1 else Conv2D
    shape = (8, 1) if rank == 1 else (6, 6, 1)
    model = keras.Sequential([keras.Input(shape), layer(2, 3), layer(3, 3)])
    plan = types.SimpleNamespace(options=Options(dataset="digits"))
    assert stages._pictures(plan, model, types.SimpleNamespace(path=tmp_path)) == {}
    ((kind, kernel, path),) = drawn
    assert (kind, path) == ("filters", tmp_path / "filters.png")
    np.testing.assert_array_equal(kernel, model.layers[0].kernel.numpy())


def test_pictures_draw_an_mlps_weights_of_every_kernel(tmp_path, drawn):
    """Catches filters drawn for a network without convolutions, a kernel left out of the
    histogram (or a layer without one put in), its title's value format, or its file."""
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dropout(0.5), keras.layers.Dense(2)]
    )
    plan = types.SimpleNamespace(options=Options(dataset="digits", l2=1e-05))
    found = stages._pictures(plan, model, types.SimpleNamespace(path=tmp_path))
    assert found == {"zero_weights": 0.5}
    ((kind, kernels, title, path),) = drawn
    assert (kind, title, path) == ("weights", "L2 λ=1e-05", tmp_path / "weights.png")
    expected = [model.layers[0].kernel.numpy(), model.layers[2].kernel.numpy()]
    assert len(kernels) == 2
    for got, want in zip(kernels, expected, strict=True):
        np.testing.assert_array_equal(got, want)


# _check_paths: the output folders before any training


@pytest.fixture
def paths_checked(monkeypatch):
    """`_check_paths`' checks recorded: check_writable's arguments and next_version's."""
    made = []
    model = types.SimpleNamespace(count_params=lambda: 1000)
    monkeypatch.setattr(stages, "build_model", lambda plan: made.append(("build", plan)) or model)
    monkeypatch.setattr(runs, "check_writable", lambda *args: made.append(args))
    monkeypatch.setattr(export, "next_version", lambda *args: made.append(("next", *args)))
    return made


def test_check_paths_checks_both_folders_and_the_next_version(tmp_path, paths_checked):
    """Catches a folder unchecked or checked under another name, the room for the export
    wrong (or of a model not the plan's), the model's own folder checked when nothing is
    there, or the version of another model."""
    logdir, export_dir = str(tmp_path / "logs"), str(tmp_path / "models")
    options = Options(dataset="digits", logdir=logdir, export_dir=export_dir, model_name="m")
    plan = types.SimpleNamespace(options=options)
    stages._check_paths(plan)
    assert paths_checked == [
        ("build", plan),
        ("logdir", logdir),
        ("export_dir", export_dir, export.required_bytes(1000)),
        ("next", export_dir, "m"),
    ]


def test_check_paths_checks_what_stands_in_the_models_folder(tmp_path, paths_checked):
    """Catches export_dir/<model_name> unchecked when something (here a dangling link) is in
    its place, or checked under another name."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m").symlink_to(tmp_path / "nowhere")
    options = Options(dataset="digits", export_dir=str(tmp_path / "models"), model_name="m")
    stages._check_paths(types.SimpleNamespace(options=options))
    assert paths_checked[3] == ("export_dir", str(tmp_path / "models" / "m"))


def test_check_paths_turns_a_version_out_of_range_into_a_run_error(tmp_path, monkeypatch):
    """Catches next_version's ValueError passed as it is, or chained."""
    model = types.SimpleNamespace(count_params=lambda: 1)
    monkeypatch.setattr(stages, "build_model", lambda plan: model)
    monkeypatch.setattr(runs, "check_writable", lambda *args: None)

    def out_of_range(export_dir, name):
        raise ValueError("Expected a version. Received: next version 9")

    monkeypatch.setattr(export, "next_version", out_of_range)
    options = Options(dataset="digits", export_dir=str(tmp_path))
    expected = "Expected a version. Received: next version 9"
    with pytest.raises(RunError, match=exactly(expected)) as refused:
        stages._check_paths(types.SimpleNamespace(options=options))
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


# _FaultPoint


def test_the_fault_point_train_is_in_the_second_epoch_only(monkeypatch):
    """Catches the point in the first or third epoch, or under another name."""
    points = []
    monkeypatch.setattr(runs, "fault_point", points.append)
    callback = stages._FaultPoint()
    for epoch in range(3):
        callback.on_epoch_begin(epoch)
        callback.on_train_batch_end(0)
        points.append(f"end {epoch}")
    assert points == ["end 0", "train", "end 1", "end 2"]


# _train: one model's fit or an ensemble


def test_train_fits_one_model_and_draws_its_pictures(monkeypatch, folder):
    """Catches the fit given another seed, the caller's callbacks dropped or after the fault
    point, the epochs or pictures' figures left out, or the pictures outside their phase."""
    fitted = []
    model = object()

    def fit(plan, folder, *, seed, callbacks, stopwatch):
        fitted.append((plan, folder, seed, callbacks, stopwatch))
        return types.SimpleNamespace(model=model, epochs=3, best_epoch=2)

    monkeypatch.setattr(stages, "fit", fit)
    pictured = []
    monkeypatch.setattr(
        stages, "_pictures", lambda *args: pictured.append(args) or {"zero_weights": 0.5}
    )
    plan = types.SimpleNamespace(options=Options(dataset="digits", seed=9))
    callback, watch = keras.callbacks.Callback(), Stopwatch()
    got, result = stages._train(plan, folder, (callback,), watch)
    assert got is model and result == {"epochs": 3, "best_epoch": 2, "zero_weights": 0.5}
    ((p, f, seed, callbacks, stopwatch),) = fitted
    assert (p, f, seed, stopwatch) == (plan, folder, 9, watch)
    assert callbacks[0] is callback and len(callbacks) == 2
    assert isinstance(callbacks[1], stages._FaultPoint)
    assert pictured == [(plan, model, folder)] and "pictures" in watch.seconds


def test_train_an_ensemble_writes_and_draws_its_table(monkeypatch, folder):
    """Catches the table unwritten (or written otherwise), undrawn or drawn for another
    metric or file, missing from the result, the ensemble given the run's callbacks without
    the fault point, or its export written ahead for another plan or folder."""
    table = {"metric": "accuracy", "ensembles": [{"members": 1}, {"members": 2}]}
    given, drawn = [], []

    def train_ensemble(plan, folder, callbacks, stopwatch, workers, meanwhile=None):
        given.append((plan, folder, callbacks, stopwatch, workers, meanwhile))
        return "ensemble model", table

    monkeypatch.setattr(stages, "train_ensemble", train_ensemble)
    monkeypatch.setattr(plots, "ensemble_table", lambda *args: drawn.append(args))
    monkeypatch.setattr(stages, "_write_ahead", lambda plan, folder: ("ahead", plan, folder))
    options = Options(dataset="digits", ensemble=2, workers=2)
    plan, watch = types.SimpleNamespace(options=options), Stopwatch()
    model, result = stages._train(plan, folder, (), watch)
    assert (model, result) == ("ensemble model", {"ensemble": table})
    ((p, f, callbacks, stopwatch, workers, meanwhile),) = given
    assert (p, f, stopwatch, workers) == (plan, folder, watch, 2)
    assert [type(callback) for callback in callbacks] == [stages._FaultPoint]
    assert meanwhile == ("ahead", plan, folder)
    written = (folder.path / "ensemble.json").read_text()
    assert written == json.dumps(table, indent=2) + "\n"
    assert drawn == [(table, "accuracy", folder.path / "ensemble.png")]
    assert "pictures" in watch.seconds


# _write_ahead: an ensemble's SavedModel written while its pool works


@pytest.mark.parametrize("leftovers", [True, False])
def test_write_ahead_writes_the_saved_model_whole_then_records_it(monkeypatch, folder, leftovers):
    """With a kill's leftovers and without (the first write): catches the leftovers kept (an
    old export taken for the new one), their removal failing when there are none, the
    record not cleared first, the SavedModel written in place (a kill would leave half of
    it recorded), for another task, or not recorded once whole."""
    calls = []
    if leftovers:
        (folder.resume / "export.partial").mkdir()
        (folder.resume / "export.partial" / "half").touch()
        (folder.resume / "export.written").mkdir()
        (folder.resume / "export.written" / "old").touch()
        folder.record_written_export(True)

    def write_saved_model(model, task, path):
        state = folder.lifecycle()["written_export"]
        calls.append((model, task, path, state, folder.written_export.exists(), path.exists()))
        path.mkdir()
        (path / "saved_model.pb").touch()

    monkeypatch.setattr(export, "write_saved_model", write_saved_model)
    plan = types.SimpleNamespace(
        options=Options(dataset="digits"), dataset=types.SimpleNamespace(task="the task")
    )
    stages._write_ahead(plan, folder)("model")
    partial = folder.resume / "export.partial"
    assert calls == [("model", "the task", partial, False, False, False)]
    assert sorted(p.name for p in folder.written_export.iterdir()) == ["saved_model.pb"]
    assert not partial.exists() and folder.lifecycle()["written_export"] is True


def test_write_ahead_writes_nothing_for_a_calibrated_run():
    """Catches an export written before the temperature it holds is fitted."""
    plan = types.SimpleNamespace(options=Options(dataset="digits", calibrate=True))
    assert stages._write_ahead(plan, None) is None


# _evaluate: the figures of one model or of an ensemble's table, and Monte-Carlo dropout's

FIGURES = {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.625}}
MC = {"samples": 7, "val": {"accuracy": 0.25}, "test": {"accuracy": 0.375}}
PLAN = types.SimpleNamespace(objective=types.SimpleNamespace(monitor="accuracy"))


@pytest.fixture
def measured(monkeypatch):
    """evaluate, calibrate and monte_carlo_dropout replaced, each checking it is given PLAN:
    `.calls` records them, `.mc` is what Monte-Carlo dropout returns (MC unless changed)."""
    state = types.SimpleNamespace(calls=[], mc=MC)

    def evaluate(plan, model):
        assert plan is PLAN
        state.calls.append(("evaluate", model))
        return FIGURES

    monkeypatch.setattr(stages, "evaluate", evaluate)

    def calibrate(plan, model, result):
        assert plan is PLAN
        state.calls.append(("calibrate", model, result))
        return {**result, "calibrated": True}

    monkeypatch.setattr(stages, "calibrate", calibrate)

    def monte_carlo_dropout(plan, model):
        assert plan is PLAN
        state.calls.append(("mc", model))
        return state.mc

    monkeypatch.setattr(stages, "monte_carlo_dropout", monte_carlo_dropout)
    return state


def test_evaluate_measures_one_model_calibrated_and_with_mc_dropout(measured, said):
    """Catches the evaluation not calibrated, Monte-Carlo dropout's figures left out, said
    wrongly, or a phase not timed."""
    watch = Stopwatch()
    result = stages._evaluate(PLAN, "model", watch)
    assert result == {**FIGURES, "calibrated": True, "mc_dropout": MC}
    assert measured.calls == [
        ("evaluate", "model"),
        ("calibrate", "model", FIGURES),
        ("mc", "model"),
    ]
    assert said.messages == [
        "dropout at inference: weight scaling val accuracy 0.5000, test accuracy 0.6250; "
        "Monte-Carlo (T=7) val accuracy 0.2500, test accuracy 0.3750"
    ]
    assert {"evaluation", "mc_dropout"} <= set(watch.seconds)


def test_evaluate_without_dropout_says_nothing_of_it(measured, said):
    """Catches empty Monte-Carlo figures recorded or said (a model without dropout)."""
    measured.mc = {}
    assert stages._evaluate(PLAN, "model", Stopwatch()) == {**FIGURES, "calibrated": True}
    assert said.messages == []


def test_evaluate_an_ensemble_takes_its_tables_last_row(measured):
    """Catches the test split read again for an ensemble, or a row other than the last (all
    the members), and Monte-Carlo dropout not measured when the table has none."""
    last = {"val": {"accuracy": 0.75}, "test": {"accuracy": 0.875}, "members": 2}
    table = {"ensembles": [{"val": {}, "test": {}}, last]}
    result = stages._evaluate(PLAN, "model", Stopwatch(), table)
    expected = {"val": last["val"], "test": last["test"]}
    assert result == {**expected, "calibrated": True, "mc_dropout": MC}
    assert measured.calls == [("calibrate", "model", expected), ("mc", "model")]


def test_evaluate_an_ensemble_takes_the_tables_mc_dropout(measured):
    """Catches the ensemble's Monte-Carlo dropout measured again (in this process, without
    the pool) when its table has it."""
    table = {"ensembles": [FIGURES], "mc_dropout": {**MC, "samples": 3}}
    watch = Stopwatch()
    result = stages._evaluate(PLAN, "model", watch, table)
    assert result["mc_dropout"] == {**MC, "samples": 3}
    assert ("mc", "model") not in measured.calls and "mc_dropout" not in watch.seconds


# _export: the next version, recorded before it is published


@pytest.fixture
def exported(monkeypatch, folder):
    """export.export replaced: reserves `<export_dir>/<name>/4` (`on_reserved`) and returns
    it; `.calls` its arguments and the run's record when reserved, `.points` the fault points,
    `.error` an OSError to raise instead."""
    state = types.SimpleNamespace(calls=[], points=[], error=None)
    monkeypatch.setattr(runs, "fault_point", state.points.append)

    def fake_export(model, export_dir, name, task, **kwargs):
        if state.error:
            raise state.error
        path = pathlib.Path(export_dir) / name / "4"
        kwargs["on_reserved"](path)
        state.calls.append((model, export_dir, name, task, kwargs, folder.lifecycle()))
        return path

    monkeypatch.setattr(export, "export", fake_export)
    return state


def export_plan(tmp_path):
    options = Options(dataset="digits", export_dir=str(tmp_path / "models"), model_name="m")
    return types.SimpleNamespace(options=options, dataset=types.SimpleNamespace(task="the task"))


def test_export_records_the_version_reserved_then_publishes(tmp_path, folder, exported):
    """Catches the reserved version unrecorded (or recorded as another stage, or without
    the earlier facts), a fault point missing or misnamed, an argument of the export wrong,
    or the path returned under another key."""
    folder.record("evaluated", val={"accuracy": 0.5})
    result = stages._export(export_plan(tmp_path), "model", folder)
    path = tmp_path / "models" / "m" / "4"
    assert result == {"export_path": str(path)}
    ((model, export_dir, name, task, kwargs, state),) = exported.calls
    assert (model, export_dir, name, task) == ("model", str(tmp_path / "models"), "m", "the task")
    assert {k: v for k, v in kwargs.items() if k != "on_reserved"} == {
        "version": None,
        "temperature": None,
        "written": None,
    }
    assert state == {"val": {"accuracy": 0.5}, "stage": "evaluated", "exporting": str(path)}
    assert exported.points == ["export", "published"]


def test_export_reuses_a_reserved_version_with_the_temperature_and_written_export(
    tmp_path, folder, exported
):
    """Catches a version reserved by a killed export not used again, the calibrated
    temperature left out, or the SavedModel written ahead written again."""
    reserved = tmp_path / "models" / "m" / "3"
    reserved.mkdir(parents=True)
    folder.record("evaluated", exporting=str(reserved), temperature=1.5)
    folder.written_export.mkdir()
    folder.record_written_export(True)
    stages._export(export_plan(tmp_path), "model", folder)
    ((*_, kwargs, state),) = exported.calls
    assert (kwargs["version"], kwargs["temperature"]) == (3, 1.5)
    assert kwargs["written"] == folder.written_export


def test_export_returns_a_version_published_before_a_kill(tmp_path, folder, exported):
    """Catches a published version (its saved_model.pb there) exported again."""
    published = tmp_path / "models" / "m" / "3"
    published.mkdir(parents=True)
    (published / "saved_model.pb").touch()
    folder.record("evaluated", exporting=str(published))
    result = stages._export(export_plan(tmp_path), "model", folder)
    assert result == {"export_path": str(published)}
    assert exported.calls == [] and exported.points == []


def test_export_that_cannot_be_written_is_a_run_error(tmp_path, folder, exported):
    """Catches an OSError of the export passed as it is (a traceback), or named wrongly."""
    exported.error = OSError("No space left on device")
    expected = (
        "Expected a writable folder (No space left on device). "
        f"Received: export_dir={str(tmp_path / 'models')!r}"
    )
    with pytest.raises(RunError, match=exactly(expected)):
        stages._export(export_plan(tmp_path), "model", folder)
    assert exported.points == []


# _save_model


def test_save_model_writes_the_model_whole_at_its_path(folder):
    """Catches the model written elsewhere, or given a path it cannot take (a Path, where
    Keras's save wants a string)."""

    class Model:
        def save(self, path):
            assert isinstance(path, str)
            pathlib.Path(path).write_text("the model")

    stages._save_model(Model(), folder)
    assert folder.model_path.read_text() == "the model"


# _recipe: the data, the paths, the run folder, then the stages


@pytest.fixture
def recipe_calls(monkeypatch):
    """The recipe's steps replaced by ones recording their arguments in order; `_stages`
    raises `.error` if set."""
    state = types.SimpleNamespace(calls=[], error=None)
    calls = state.calls
    monkeypatch.setattr(
        stages,
        "_prepare",
        lambda options, strategy: calls.append(("prepare", options, strategy)) or "plan",
    )
    monkeypatch.setattr(stages, "_check_paths", lambda plan: calls.append(("check", plan)))
    monkeypatch.setattr(
        runs, "locate", lambda options: calls.append(("locate", options)) or "folder"
    )
    monkeypatch.setattr(runs, "release", lambda folder: calls.append(("release", folder)))
    monkeypatch.setattr(
        stages, "_trained_only", lambda *args: calls.append(("trained only", *args)) or "val only"
    )

    def all_stages(*args):
        calls.append(("stages", *args))
        if state.error:
            raise state.error
        return "all"

    monkeypatch.setattr(stages, "_stages", all_stages)
    return state


def test_recipe_runs_every_stage_in_its_locked_folder(recipe_calls):
    """Catches the paths checked after the run folder is made (or not at all), the stages
    given other arguments, test_and_export not True by default, the lock kept, or the data
    and build phases untimed."""
    watch = Stopwatch()
    assert stages._recipe("options", ("cb",), "strategy", False, watch) == "all"
    assert recipe_calls.calls == [
        ("prepare", "options", "strategy"),
        ("check", "plan"),
        ("locate", "options"),
        ("stages", "plan", "folder", ("cb",), False, watch),
        ("release", "folder"),
    ]
    assert {"data", "build"} <= set(watch.seconds)


def test_recipe_trains_only_for_a_trial(recipe_calls):
    """Catches test_and_export=False running every stage (the test split read by a trial)."""
    watch = Stopwatch()
    assert stages._recipe("options", (), "strategy", True, watch, False) == "val only"
    assert recipe_calls.calls[3:] == [
        ("trained only", "plan", "folder", (), watch),
        ("release", "folder"),
    ]


def test_recipe_releases_its_folder_after_an_error(recipe_calls):
    """Catches the run's lock kept after a stage fails (the same command then refused)."""
    recipe_calls.error = InterruptedError()
    with pytest.raises(InterruptedError):
        stages._recipe("options", (), "strategy", True, Stopwatch())
    assert recipe_calls.calls[-1] == ("release", "folder")


# _trained: the trained model, trained here or loaded


@pytest.fixture
def training(monkeypatch, folder):
    """`_train` and `_save_model` replaced: `.calls` records them with the run's stage and
    whether the backup is still there when each runs."""
    state = types.SimpleNamespace(calls=[])

    def seen():
        return folder.lifecycle()["stage"], folder.backup.exists()

    def train(plan, given, callbacks, stopwatch):
        state.calls.append(("train", plan, given, callbacks, stopwatch, *seen()))
        return "model", {"epochs": 3, "best_epoch": 2}

    monkeypatch.setattr(stages, "_train", train)
    monkeypatch.setattr(
        stages,
        "_save_model",
        lambda model, given: state.calls.append(("save", model, given, *seen())),
    )
    return state


def test_trained_records_each_stage_then_drops_the_backup(folder, training, said):
    """Catches "prepared" unrecorded, the trained model unsaved, "trained" unrecorded or
    without the fit's figures, the backup dropped before the model is saved (or kept), or
    the run folder unsaid."""
    folder.backup.mkdir()
    watch = Stopwatch()
    assert stages._trained("plan", folder, ("cb",), watch) == "model"
    assert training.calls == [
        ("train", "plan", folder, ("cb",), watch, "prepared", True),
        ("save", "model", folder, "prepared", True),
    ]
    assert folder.lifecycle() == {"stage": "trained", "epochs": 3, "best_epoch": 2}
    assert not folder.backup.exists()
    assert said.messages == [f"run folder: {folder.path}"]


def test_trained_loads_the_model_an_earlier_process_trained(monkeypatch, folder, training, said):
    """Catches a trained run trained again, or its model loaded from elsewhere, compiled, or
    outside the build phase."""
    folder.record("trained", epochs=3)
    loaded = []
    monkeypatch.setattr(
        keras.models, "load_model", lambda path, **kwargs: loaded.append((path, kwargs)) or "kept"
    )
    watch = Stopwatch()
    assert stages._trained("plan", folder, (), watch) == "kept"
    assert loaded == [(str(folder.model_path), {"compile": False})]
    assert training.calls == [] and "build" in watch.seconds
    assert said.messages == [
        f"run folder: {folder.path}",
        f"trained earlier: loading {folder.model_path}",
    ]
    assert folder.lifecycle()["stage"] == "trained"


# _trained_only: a sweep's trial


@pytest.mark.parametrize("facts", [{"epochs": 3, "best_epoch": 2}, {"epochs": 3}])
def test_trained_only_returns_the_validation_figures_and_the_epochs(
    monkeypatch, folder, said, facts
):
    """Catches the model trained with other arguments, the test split measured, the
    validation figure said wrongly, a recorded epoch
    count left out (or one not recorded put in), the options, seconds or run folder missing,
    or the evaluation untimed."""
    folder.record("trained", **facts, fitted={"run": 3})
    evaluated, trained = [], []
    monkeypatch.setattr(stages, "_trained", lambda *args: trained.append(args) or "model")

    def evaluate(plan, model, splits):
        evaluated.append((plan, model, splits))
        return {"val": {"accuracy": 0.123456, "loss": 2.0}}

    monkeypatch.setattr(stages, "evaluate", evaluate)
    plan = types.SimpleNamespace(
        options=Options(dataset="digits"), objective=types.SimpleNamespace(monitor="accuracy")
    )
    watch = Stopwatch()
    result = stages._trained_only(plan, folder, ("cb",), watch)
    assert trained == [(plan, folder, ("cb",), watch)]
    assert evaluated == [(plan, "model", ("val",))]
    seconds = result.pop("seconds")
    assert result == {
        "run": str(folder.path),
        "val": {"accuracy": 0.123456, "loss": 2.0},
        **facts,
        "options": plan.options.as_dict(),
    }
    assert "evaluation" in seconds and "total" in seconds
    assert said.messages == ["val accuracy 0.1235"]


# _stages: every stage after training, each once


@pytest.fixture
def later_stages(monkeypatch, folder):
    """`_trained`, `_evaluate` and `_export` replaced, recording their calls (`.calls`), the
    fault points (`.points`), and the run's stage when the export starts and when the
    metrics are written (`.stages`)."""
    state = types.SimpleNamespace(calls=[], points=[], stages=[])
    monkeypatch.setattr(runs, "fault_point", state.points.append)
    monkeypatch.setattr(
        stages, "_trained", lambda *args: state.calls.append(("trained", *args)) or "model"
    )
    write_metrics = runs.RunFolder.write_metrics

    def recorded_then_written(given, metrics):
        state.stages.append(given.lifecycle()["stage"])
        write_metrics(given, metrics)

    monkeypatch.setattr(runs.RunFolder, "write_metrics", recorded_then_written)

    def evaluate(plan, model, stopwatch, table):
        state.calls.append(("evaluate", plan, model, stopwatch, table))
        return {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.625}}

    monkeypatch.setattr(stages, "_evaluate", evaluate)

    def export_stage(plan, model, given):
        state.stages.append(given.lifecycle()["stage"])
        state.calls.append(("export", plan, model, given))
        return {"export_path": "/models/m/1"}

    monkeypatch.setattr(stages, "_export", export_stage)
    return state


def stages_plan():
    return types.SimpleNamespace(options=Options(dataset="digits"))


def test_stages_evaluate_export_and_write_the_metrics(folder, later_stages, said):
    """Catches a stage skipped, given other arguments (the ensemble's table) or recorded
    under another name (a rerun would run it again), a fault point misnamed, the metrics
    without the figures, the kept facts, the options or the seconds, or with the stage and
    resume state; the run not recorded done and finished, or the run folder not returned."""
    table = {"metric": "accuracy"}
    folder.record("trained", epochs=3, best_epoch=2, ensemble=table, fitted={"run": 3})
    plan, watch = stages_plan(), Stopwatch()
    result = stages._stages(plan, folder, ("cb",), True, watch)
    assert later_stages.calls == [
        ("trained", plan, folder, ("cb",), watch),
        ("evaluate", plan, "model", watch, table),
        ("export", plan, "model", folder),
    ]
    assert later_stages.points == ["evaluate"]
    assert later_stages.stages == ["evaluated", "exported"]
    seconds = result.pop("seconds")
    assert "export" in seconds
    metrics = {
        "val": {"accuracy": 0.5},
        "test": {"accuracy": 0.625},
        "epochs": 3,
        "best_epoch": 2,
        "ensemble": table,
        "export_path": "/models/m/1",
        "options": plan.options.as_dict(),
    }
    assert result == {"run": str(folder.path), **metrics}
    written = json.loads((folder.path / "metrics.json").read_text())
    assert written == {**metrics, "seconds": seconds}
    assert folder.lifecycle()["stage"] == "done" and not folder.resume.exists()
    assert said.messages[-1].startswith("seconds: ") and said.messages[-1].endswith(
        f"total {seconds['total']:.1f}"
    )


def test_stages_a_workers_result_names_no_folder(folder, later_stages):
    """Catches a non-chief worker returning its scratch run folder or export path (deleted on
    return), or not saying it is not the chief."""
    folder.record("trained", epochs=3)
    result = stages._stages(stages_plan(), folder, (), False, Stopwatch())
    assert (result["run"], result["export_path"], result["chief"]) == (None, None, False)
    assert result["val"] == {"accuracy": 0.5} and result["epochs"] == 3


@pytest.mark.parametrize("stage, run", [("evaluated", ["export"]), ("exported", [])])
def test_stages_done_earlier_run_not_again(folder, later_stages, stage, run):
    """Catches a finished evaluation (its fault point too) or export run again on a rerun."""
    facts = {"val": {"accuracy": 0.25}, "test": {"accuracy": 0.25}}
    if stage == "exported":
        facts["export_path"] = "/models/m/2"
    folder.record(stage, **facts)
    result = stages._stages(stages_plan(), folder, (), True, Stopwatch())
    assert [call[0] for call in later_stages.calls] == ["trained", *run]
    assert later_stages.points == []
    assert result["val"] == {"accuracy": 0.25}
    assert result["export_path"] == ("/models/m/1" if run else "/models/m/2")
