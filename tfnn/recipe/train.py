"""The recipe, stage by stage: options → devices → data → plan → model(s) and fit →
pictures → evaluation → export → metrics.json.

    metrics = tfnn.train(dataset="digits", model="mlp", epochs=5)

returns (and writes to the run folder's metrics.json) the validation and test
figures, the epochs trained and kept, the export path and the options.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnn import data, distribute, export, files, plots
from tfnn.layers import Conv1D, Conv2D
from tfnn.recipe import process
from tfnn.recipe import run as runs
from tfnn.recipe.ensembles import train_ensemble
from tfnn.recipe.errors import OptionError, RunError
from tfnn.recipe.evaluate import calibrate, evaluate, monte_carlo_dropout, summary
from tfnn.recipe.fit import build_model, fit, say, uses_xla
from tfnn.recipe.options import Options
from tfnn.recipe.phases import Stopwatch
from tfnn.recipe.plan import make_plan


def train(*, callbacks=(), stopwatch=None, test_and_export=True, **options):
    """Runs the recipe with `options` (named as train.py's flags, same defaults); returns the
    metrics dictionary also written to metrics.json, and under "run" the run folder (None on
    a multi-worker strategy's non-chief worker, whose folders are deleted on return).

    TensorFlow's process-wide settings (threads, op determinism, logical CPU devices) are
    the process's: made where it starts (`tfnn.recipe.process.configure`; train.py does it
    from its flags), never here. Progress goes to `logging.getLogger("tfnn.recipe")`.

    `callbacks` are Keras callbacks run after the run's own (e.g. to stop it).
    The global Keras dtype policy is restored afterwards. The result's "seconds" are
    the run's phases timed on `stopwatch` (a `tfnn.recipe.phases.Stopwatch`; a new one
    by default; train.py passes one that counts the process's start-up).

    `test_and_export` False (a sweep's trial, tfnn.sweep; not a flag) stops after training:
    the result holds the validation figures only ("val"), the epochs and "run"; the test
    split is not read, nothing is exported, and the run stays unfinished with its trained
    model kept, so the same call with True later evaluates and exports that model without
    training again. An ensemble measures its members on both splits while training, so it
    refuses False.

    Raises:
        OptionError: an option that is malformed or that the data set cannot take, before
            anything is written.
        tfnn.recipe.errors.RunError: an output folder that cannot be written (before training),
            another process running the same command, or an export that cannot be written.
    """
    stopwatch = stopwatch or Stopwatch()
    known = {field.name for field in dataclasses.fields(Options)}
    for name, value in options.items():
        if name not in known:
            raise OptionError(f"Expected one of train.py's options. Received: {name}={value!r}")
    try:
        checked = Options(**options)
    except ValueError as error:
        raise OptionError(str(error)) from None
    if not test_and_export and checked.ensemble > 1:
        raise OptionError(
            "Expected ensemble 1 with test_and_export=False (an ensemble's members are "
            f"measured on the test split while training). Received: ensemble={checked.ensemble}"
        )
    previous_policy = keras.mixed_precision.dtype_policy()
    try:
        return _on_devices(checked, callbacks, stopwatch, test_and_export)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _configure(options):
    """Seeds and the dtype policy of the run; checks the options against the process-wide
    settings made where the process started (`tfnn.recipe.process.configure`): Keras does
    not XLA-compile under op determinism, and logical CPU devices exist from the start."""
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    if options.threads is not None and options.threads != threads:
        say(
            f"threads={options.threads} ignored: this process runs {threads or 'all'} "
            "(set where it starts: tfnn.recipe.process.configure)"
        )
    # Listing the logical devices starts TensorFlow's runtime, after which a multi-worker
    # strategy can no longer configure its collective ops: listed only when asked for.
    if options.cpu_devices > 1 and len(tf.config.list_logical_devices("CPU")) != (
        options.cpu_devices
    ):
        raise OptionError(
            "Expected cpu_devices 0, or as many as the process started with "
            f"(tfnn.recipe.process.configure). Received: cpu_devices={options.cpu_devices}"
        )
    if uses_xla(options) and process.deterministic():
        raise OptionError(
            "Expected jit_compile off in a process that turned op determinism on. "
            f"Received: jit_compile={options.jit_compile!r}"
        )
    keras.utils.set_random_seed(options.seed)
    keras.mixed_precision.set_dtype_policy(options.precision)


def _on_devices(options, callbacks, stopwatch, test_and_export=True):
    """Configures TensorFlow and the strategy, then runs the recipe; a non-chief worker
    writes into a temporary folder, deleted at the end."""
    _configure(options)
    try:
        strategy = distribute.make_strategy(options.strategy)
    except ValueError as error:
        raise OptionError(str(error)) from None
    chief = distribute.is_chief(strategy)
    scratch = None
    if not chief:  # a worker: the same work, written where nobody looks
        scratch = tempfile.mkdtemp(prefix="tfnn-worker-")
        options = dataclasses.replace(
            options, logdir=f"{scratch}/logs", export_dir=f"{scratch}/exports"
        )
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:
        say(
            f"{options.strategy}: {replicas} replicas, global batch {options.batch_size} = "
            f"{replicas} × {options.batch_size / replicas:g}"
        )
    try:
        return _recipe(options, callbacks, strategy, chief, stopwatch, test_and_export)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _prepare(options, strategy):
    """The data set and the plan; a data set or combination the options cannot take raises
    `OptionError` here, before the run folder exists."""
    tfds.display_progress_bar(False)
    try:
        dataset = data.load(
            options.dataset,
            seed=options.seed,
            validation_fraction=options.validation_fraction,
            data_dir=options.data_dir,
        )
        return make_plan(options, dataset, strategy)
    except ValueError as error:
        raise OptionError(str(error)) from None


def _pictures(plan, model, folder):
    """A CNN's first-layer filters (F6) and, with a penalty, the weight histogram (D4);
    returns {"zero_weights": share} when the histogram is drawn."""
    options = plan.options
    convolutions = [layer for layer in model.layers if isinstance(layer, (Conv1D, Conv2D))]
    if convolutions:
        plots.first_layer_filters(convolutions[0].kernel.numpy(), folder.path / "filters.png")
    if not (options.l1 or options.l2):
        return {}
    kernels = [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]
    penalties = [f"{n} λ={v:g}" for n, v in (("L1", options.l1), ("L2", options.l2)) if v]
    share = plots.weight_histogram(kernels, " + ".join(penalties), folder.path / "weights.png")
    return {"zero_weights": share}


def _check_paths(plan):
    """Creates the output folders and checks they are writable, with room for the export
    (four bytes a parameter, twice, and 16 MB of graph) and a next export version that
    TensorFlow Serving reads, before any training."""
    options = plan.options
    parameters = build_model(plan).count_params() * max(options.ensemble, 1)
    runs.check_writable("logdir", options.logdir)
    runs.check_writable("export_dir", options.export_dir, export.required_bytes(parameters))
    # the model's own folder, where the export writes, if something is there already (a
    # file in its place): else the export made after training would fail
    model_folder = pathlib.Path(options.export_dir) / options.model_name
    if os.path.lexists(model_folder):
        runs.check_writable("export_dir", str(model_folder))
    try:  # else the run would train and fail at its export
        export.next_version(options.export_dir, options.model_name)
    except ValueError as error:
        raise RunError(str(error)) from None


class _FaultPoint(keras.callbacks.Callback):
    """Calls the test-only `runs.fault_point("train")` inside the second epoch, after its
    first call of steps (before the epoch's backup and history row)."""

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == 1:
            runs.fault_point("train")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch


def _train(plan, folder, callbacks, stopwatch):
    """The training stage: the model and {"epochs", "best_epoch"} or {"ensemble"}."""
    options = plan.options
    # the caller's callbacks, and logical CPU devices, are in this process only
    workers = options.workers if options.pooled_members() and not callbacks else 1
    callbacks = [*callbacks, _FaultPoint()]
    result = {}
    if options.ensemble > 1:
        model, table = train_ensemble(
            plan, folder, callbacks, stopwatch, workers, meanwhile=_write_ahead(plan, folder)
        )
        files.write_atomically(folder.path / "ensemble.json", json.dumps(table, indent=2) + "\n")
        with stopwatch.phase("pictures"):
            plots.ensemble_table(table, table["metric"], folder.path / "ensemble.png")
        result["ensemble"] = table
    else:
        fitted = fit(plan, folder, seed=options.seed, callbacks=callbacks, stopwatch=stopwatch)
        model = fitted.model
        result.update(epochs=fitted.epochs, best_epoch=fitted.best_epoch)
        with stopwatch.phase("pictures"):
            result.update(_pictures(plan, model, folder))
    return model, result


def _write_ahead(plan, folder):
    """What an ensemble's parent does while its pool measures the table: writes the
    ensemble's SavedModel (`folder.written_export`), which the export stage then publishes
    (the export's heaviest part, done while this process would wait). None for a calibrated
    run: its temperature, part of the SavedModel, is fitted after."""
    if plan.options.calibrate:
        return None

    def write(model):
        partial = folder.written_export.with_name("export.partial")
        folder.record_written_export(False)
        for path in (partial, folder.written_export):  # a kill's leftovers
            shutil.rmtree(path, ignore_errors=True)
        export.write_saved_model(model, plan.dataset.task, partial)
        os.replace(partial, folder.written_export)
        folder.record_written_export(True)

    return write


def _evaluate(plan, model, stopwatch, table=None):
    """The evaluation stage: validation and test figures (and calibrated ones with
    `calibrate`), and Monte-Carlo dropout's. An ensemble's figures are the last row of its
    `table` and the table's Monte-Carlo dropout figures, where they were already measured."""
    with stopwatch.phase("evaluation"):
        if table:
            result = {split: table["ensembles"][-1][split] for split in ("val", "test")}
        else:
            result = evaluate(plan, model)  # the one look at the test split
        result = calibrate(plan, model, result)
    if table and "mc_dropout" in table:
        mc = table["mc_dropout"]  # measured with the table, on the pool's workers if any
    else:
        with stopwatch.phase("mc_dropout"):
            mc = monte_carlo_dropout(plan, model)
    if mc:
        result["mc_dropout"] = mc
        monitor = plan.objective.monitor
        say(
            f"dropout at inference: weight scaling {summary(result, monitor)}; "
            f"Monte-Carlo (T={mc['samples']}) {summary(mc, monitor)}"
        )
    return result


def _export(plan, model, folder):
    """The export stage: the next version of the model name; a write that fails (a full or
    read-only disk) is one line. The reserved version is recorded before it is published,
    so a rerun after a kill neither exports twice nor skips a number it never used."""
    options = plan.options
    earlier = folder.lifecycle().get("exporting")
    if earlier and (pathlib.Path(earlier) / "saved_model.pb").is_file():
        return {"export_path": earlier}  # published, then killed before it was recorded

    def reserved(path):
        folder.record("evaluated", exporting=str(path))
        runs.fault_point("export")

    try:
        path = export.export(
            model,
            options.export_dir,
            options.model_name,
            plan.dataset.task,
            version=int(pathlib.Path(earlier).name) if earlier else None,
            on_reserved=reserved,
            temperature=folder.lifecycle().get("temperature"),
            # the trained model's, by `_write_ahead`
            written=folder.written_export if folder.has_written_export() else None,
        )
    except OSError as error:
        runs.fail("export_dir", options.export_dir, f"a writable folder ({error})")
    runs.fault_point("published")
    return {"export_path": str(path)}


def _save_model(model, folder):
    """Keeps the trained model for the stages after training (written whole)."""
    with files.replacing(folder.model_path) as temporary:
        model.save(str(temporary))


def _recipe(options, callbacks, strategy, chief, stopwatch, test_and_export=True):
    """The stages in order, each recorded in the run's lifecycle.json when it finishes; a
    rerun of the same command starts at the first unfinished one."""
    with stopwatch.phase("data"):
        plan = _prepare(options, strategy)
    with stopwatch.phase("build"):
        _check_paths(plan)
    folder = runs.locate(options)
    try:
        if not test_and_export:
            return _trained_only(plan, folder, callbacks, stopwatch)
        return _stages(plan, folder, callbacks, chief, stopwatch)
    finally:
        runs.release(folder)


def _trained(plan, folder, callbacks, stopwatch):
    """The stages up to "trained": the trained model, loaded when an earlier process
    trained it."""
    say(f"run folder: {folder.path}")
    if not folder.done("prepared"):
        folder.record("prepared")
    if folder.done("trained"):
        say(f"trained earlier: loading {folder.model_path}")
        with stopwatch.phase("build"):
            return keras.models.load_model(str(folder.model_path), compile=False)
    model, trained = _train(plan, folder, callbacks, stopwatch)
    _save_model(model, folder)
    folder.record("trained", **trained)
    folder.drop_backup()  # only now: until here it held what the fit trained
    return model


def _trained_only(plan, folder, callbacks, stopwatch):
    """`train(test_and_export=False)`: trains (or loads), measures the validation split
    only, and leaves the run unfinished at "trained" for a later call to evaluate and export."""
    model = _trained(plan, folder, callbacks, stopwatch)
    with stopwatch.phase("evaluation"):
        scores = evaluate(plan, model, splits=("val",))
    state = folder.lifecycle()
    say(f"val {plan.objective.monitor} {scores['val'][plan.objective.monitor]:.4f}")
    return {
        "run": str(folder.path),
        "val": scores["val"],
        **{key: state[key] for key in ("epochs", "best_epoch") if key in state},
        "options": plan.options.as_dict(),
        "seconds": stopwatch.seconds,
    }


def _stages(plan, folder, callbacks, chief, stopwatch):
    options = plan.options
    model = _trained(plan, folder, callbacks, stopwatch)
    if not folder.done("evaluated"):
        runs.fault_point("evaluate")
        table = folder.lifecycle().get("ensemble")
        folder.record("evaluated", **_evaluate(plan, model, stopwatch, table))
    if not folder.done("exported"):
        with stopwatch.phase("export"):
            exported = _export(plan, model, folder)
        folder.record("exported", **exported)
    state = folder.lifecycle()
    result = {key: state[key] for key in ("val", "test")}  # first in metrics.json
    result.update({k: v for k, v in state.items() if k not in ("stage", *runs.RUN_STATE)})
    result["options"] = options.as_dict()
    result["seconds"] = stopwatch.seconds
    folder.write_metrics(result)
    folder.record("done")
    folder.finish()
    say(stopwatch.line())
    if not chief:  # its folders were scratch, deleted on return
        return {"run": None, **result, "export_path": None, "chief": False}
    return {"run": str(folder.path), **result}
