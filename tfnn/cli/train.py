"""The train command: data → model → Model.fit → evaluation → pictures → export.

    python train.py [flags]          (or the console script tfnn-train)

A run writes, under --logdir, a folder named from the time and the non-default
flags, holding metrics.json, history.csv, TensorBoard logs and PNG pictures,
and exports a SavedModel to <export_dir>/<model_name>/<version>/.

Interrupted runs resume: the same command finds the unfinished run (by its
non-default flags) and continues in the same folder from the last finished
epoch (Keras's BackupAndRestore).
"""

import argparse
import hashlib
import json
import math
import os
import pathlib
import shutil
import sys
import time
import warnings

from tfnn.cli import args as cli_args


def main(argv=None):
    args = cli_args.parse(argv)
    try:
        train(args)
    except cli_args.UsageError as error:
        cli_args.exit_with(error)


def _configure(args):
    """Threads, seeds and deterministic kernels, before any other TensorFlow work."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    except RuntimeError:  # TensorFlow already runs in this process: its pools are fixed
        warnings.warn("--threads ignored: TensorFlow was already initialized", stacklevel=2)
    if args.cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpu_devices
            )
        except RuntimeError as error:  # devices are fixed once TensorFlow has started
            raise cli_args.UsageError(
                "argument --cpu_devices: TensorFlow was already initialized in this process"
            ) from error
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_dtype_policy(args.precision)


def learning_rate_schedule(args, total_steps):
    """--learning_rate, or its --decay to --learning_rate_final over `total_steps`."""
    import keras

    if args.decay == "none":
        return args.learning_rate
    final = args.learning_rate_final or args.learning_rate / 100
    schedules = keras.optimizers.schedules
    if args.decay == "cosine":
        return schedules.CosineDecay(
            args.learning_rate, total_steps, alpha=final / args.learning_rate
        )
    if args.decay == "linear":
        return schedules.PolynomialDecay(args.learning_rate, total_steps, end_learning_rate=final)
    return schedules.ExponentialDecay(
        args.learning_rate, total_steps, decay_rate=final / args.learning_rate
    )


def make_optimizer(args, total_steps):
    """The --optimizer with its learning-rate schedule, wrapped in the proximal L1
    step (D4, exact zeros) and in tfnn's gradient clipping (E3) when asked for."""
    import keras

    from tfnn import clipping, optimizers

    rate = learning_rate_schedule(args, total_steps)
    optimizer = {
        "sgd": lambda: keras.optimizers.SGD(rate),
        "momentum": lambda: keras.optimizers.SGD(rate, momentum=args.momentum),
        "rmsprop": lambda: keras.optimizers.RMSprop(rate),
        "adam": lambda: keras.optimizers.Adam(rate),
        "adamw": lambda: keras.optimizers.AdamW(rate, weight_decay=args.weight_decay),
    }[args.optimizer]()
    if args.l1:
        optimizer = optimizers.ProximalL1(optimizer, args.l1)
    if args.clip_mode != "none":
        optimizer = clipping.ClipGradients(optimizer, args.clip_mode, args.clip)
    return optimizer


def loss_and_metrics(task, label_smoothing, distributions=False):
    """The loss, metrics and the monitored validation metric for the task (A1).

    `label_smoothing` None is the default: 0.1 for classes and binary outcomes.
    With `distributions` (mixup) the gold of classes is a distribution [B, K].

    Returns:
        (loss, metrics, monitored metric name, "max" or "min").
    """
    import keras

    from tfnn import data, losses
    from tfnn.metrics import ExpectedCalibrationError

    if task.kind == data.REGRESSION:
        if label_smoothing:  # given explicitly: the default (None) means none here
            raise cli_args.UsageError("argument --label_smoothing: the dataset is a regression")
        metrics = [
            keras.metrics.RootMeanSquaredError(name="rmse"),
            keras.metrics.MeanAbsoluteError(name="mae"),
        ]
        return losses.MeanSquaredError(), metrics, "rmse", "min"
    smoothing = 0.1 if label_smoothing is None else label_smoothing
    calibration = ExpectedCalibrationError(name="ece")  # D7: how MC dropout compares
    if task.kind == data.BINARY:
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)  # logit 0 ⇔ σ = 0.5
        return losses.SigmoidNLL(smoothing), [accuracy, calibration], "accuracy", "max"
    if distributions:
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    return losses.SoftmaxNLL(smoothing), [accuracy, calibration], "accuracy", "max"


def _run_folders(args):
    """(run folder, resume folder). An unfinished run with the same flags is resumed."""
    changed = cli_args.non_default(args)

    def text(value):
        if isinstance(value, dict):  # --augment: translate:0.1+flip
            return "+".join(k if v is True else f"{k}:{v}" for k, v in value.items())
        return "_".join(map(str, value)) if isinstance(value, list) else str(value)

    label = ",".join(f"{k}={text(v)}" for k, v in changed)
    label = "".join(c if c.isalnum() or c in "=,._-+:" else "_" for c in label)
    key = hashlib.sha256(repr(sorted((k, str(v)) for k, v in changed)).encode()).hexdigest()[:16]
    logdir = pathlib.Path(args.logdir)
    resume = logdir / ".resume" / key
    pointer = resume / "run_folder"
    if pointer.is_file() and pathlib.Path(pointer.read_text()).is_dir():
        return pathlib.Path(pointer.read_text()), resume
    name = time.strftime("%Y-%m-%d_%H%M%S") + (f"-{label[:150]}" if label else "")
    run = logdir / name
    suffix = 1
    while run.exists():
        suffix += 1
        run = logdir / f"{name}-{suffix}"
    return run, resume


def _read_history(path):
    """history.csv (Keras's CSVLogger) as {column: [floats]}."""
    import csv

    if not path.is_file():
        return {}
    with path.open() as file:
        rows = list(csv.DictReader(file))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}


def _best(values, mode):
    """(1-based epoch, value) of the best entry."""
    pick = max if mode == "max" else min
    value = pick(values)
    return values.index(value) + 1, value


def augmentations(args, dataset):
    """The training transforms the flags ask for (D5), checked against the data set's inputs."""
    from tfnn import data
    from tfnn.data import augment

    kind = "images" if len(dataset.input_shape) == 3 else "signals"
    if kind == "images" and dataset.input_shape[-1] == 3:
        kind = "rgb images"
    for name in args.augment:
        if cli_args.AUGMENTATIONS[name][0] not in (kind, kind.replace("rgb ", "")):
            raise cli_args.UsageError(
                f"argument --augment: {name} applies to {cli_args.AUGMENTATIONS[name][0]}; "
                f"the dataset {args.dataset} has {kind} of shape {dataset.input_shape}"
            )
    options = args.augment
    transforms = []
    if kind != "signals":
        transforms.append(
            augment.Affine(
                translate=options.get("translate", 0.0),
                rotate=options.get("rotate", 0.0),
                zoom=options.get("zoom", 0.0),
                flip=options.get("flip", False),
            )
        )
        transforms += [augment.Brightness(options.get("brightness", 0.0))]
        transforms += [augment.Contrast(options.get("contrast", 0.0))]
        if kind == "rgb images":
            transforms += [augment.Saturation(options.get("saturation", 0.0))]
            transforms += [augment.Hue(options.get("hue", 0.0))]
    else:
        transforms.append(augment.SignalShift(options.get("shift", 0)))
        transforms.append(augment.TimeStretch(options.get("stretch", 0.0)))
        transforms.append(augment.AmplitudeScale(options.get("scale", 0.0)))
    transforms.append(augment.Noise(args.noise))
    if args.mixup:
        if dataset.task.kind != data.CLASSES:
            raise cli_args.UsageError("argument --mixup: needs a dataset of classes")
        transforms.append(augment.MixUp(args.mixup, dataset.task.num_classes))
    active = bool(args.augment or args.noise or args.mixup)
    return transforms if active else []


def build_model(args, dataset, name=None):
    """The --model for the data set, returning logits (values for regression)."""
    import numpy as np

    from tfnn import data
    from tfnn.models.cnn import cnn
    from tfnn.models.mlp import INITIALIZERS, mlp

    x_train, y_train = dataset.train
    target_scale = None
    if dataset.task.kind == data.REGRESSION:
        target_scale = (float(np.mean(y_train)), float(np.std(y_train)))
    if args.model == "cnn":
        return cnn(
            x_train,
            dataset.task.outputs,
            args.cnn,
            init=INITIALIZERS[args.init],
            l2=args.l2,
            target_scale=target_scale,
            name=name or "cnn",
        )
    return mlp(
        x_train,
        dataset.task.outputs,
        hidden_layers=args.hidden_layers,
        activation=args.activation,
        init=args.init,
        dropout=args.dropout,
        l2=args.l2,  # L1 is the optimizer's proximal step, not a loss term
        max_norm=args.max_norm,
        target_scale=target_scale,
        name=name or args.model,
    )


def run_callbacks(args, run, resume, monitor, mode):
    """Keras's callbacks for the run, and tfnn's clipping telemetry before them.

    After a resume, early stopping and the best-epoch checkpoint start from
    the best validation figure recorded before the interruption.
    """
    import keras

    from tfnn.callbacks import ClipTelemetry

    earlier = _read_history(run / "history.csv").get(f"val_{monitor}", [])
    best_so_far = _best(earlier, mode)[1] if earlier else None
    callbacks = []
    if args.clip_mode != "none":
        callbacks.append(ClipTelemetry(run / "tensorboard" / "clipping"))
    callbacks += [
        keras.callbacks.BackupAndRestore(str(resume / "backup")),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run / "tensorboard")),
    ]
    if args.patience:
        callbacks += [
            keras.callbacks.ModelCheckpoint(
                str(run / "best.weights.h5"),
                monitor=f"val_{monitor}",
                mode=mode,
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best_so_far,
            ),
            keras.callbacks.EarlyStopping(
                f"val_{monitor}", patience=args.patience, mode=mode, baseline=best_so_far
            ),
        ]
    return callbacks


def kept_epoch(args, model, run, monitor, mode):
    """Loads the best epoch's weights when early stopping is on (D1); returns
    (epochs trained, 1-based epoch whose weights the model now holds)."""
    history = _read_history(run / "history.csv")
    if not all(map(math.isfinite, history["loss"])):
        raise SystemExit(
            f"train.py: training diverged (loss {history['loss'][-1]}); nothing exported"
        )
    epochs = len(history["loss"])
    if args.patience and (run / "best.weights.h5").is_file():
        model.load_weights(str(run / "best.weights.h5"))
        return epochs, _best(history[f"val_{monitor}"], mode)[0]
    return epochs, epochs


def steps_per_execution(args, steps_per_epoch):
    """The largest divisor of `steps_per_epoch` up to --steps_per_execution.

    Model.fit reads one endless stream of batches; a call that runs k steps
    runs all k, so k must divide the epoch or epochs would overrun. Keras 3.15
    cannot run several steps per call under MirroredStrategy ("You must feed a
    value for placeholder tensor", keras-team/keras#19246): there it is 1.
    """
    if args.strategy == "mirrored":
        return 1
    return max(k for k in range(1, args.steps_per_execution + 1) if steps_per_epoch % k == 0)


def fit_model(
    args, dataset, run, resume, *, seed, strategy, bootstrap_seed=None, callbacks=(), name=None
):
    """Builds, compiles and fits one model in `run`; returns (model, epochs, kept epoch).

    `seed` fixes initialization, data order, augmentation and dropout;
    `bootstrap_seed` trains on that bootstrap sample of the training split.
    The model, its optimizer and metrics are created in `strategy`'s scope.
    """
    import keras
    import tensorflow as tf

    from tfnn import plots
    from tfnn.data import augment

    keras.utils.set_random_seed(seed)
    transforms = augmentations(args, dataset)
    loss, metrics, monitor, mode = loss_and_metrics(
        dataset.task, args.label_smoothing, distributions=bool(args.mixup)
    )
    steps_per_epoch = math.ceil(len(dataset.train[1]) / args.batch_size)
    with strategy.scope():
        model = build_model(args, dataset, name=name)
        model.compile(
            make_optimizer(args, steps_per_epoch * args.epochs),
            loss,
            metrics=metrics,
            steps_per_execution=steps_per_execution(args, steps_per_epoch),
        )
    run.mkdir(parents=True, exist_ok=True)
    train_batches = augment.augment(
        batches(
            args,
            dataset,
            dataset.train,
            shuffle_seed=seed,
            bootstrap_seed=bootstrap_seed,
            repeat=True,
        ),
        transforms,
        seed,
    )
    if transforms:
        sample = dataset.train[0][:8]
        augmented = augment.apply(
            transforms, tf.constant(sample), tf.constant(dataset.train[1][:8]), [seed, 0]
        )
        plots.augmented_samples(sample, augmented[0].numpy(), run / "augmented.png")
    if args.strategy == "multi_worker":
        fit_multi_worker(args, dataset, model, strategy, train_batches, run, steps_per_epoch)
    else:
        model.fit(
            # One endless iterator for all epochs: tf.data builds the augmentation
            # pipeline once, not at every epoch's start (benchmarks/augment.py).
            train_batches,
            steps_per_epoch=steps_per_epoch,
            validation_data=batches(args, dataset, dataset.validation),
            epochs=args.epochs,
            shuffle=False,  # the pipeline shuffles, seeded
            callbacks=[*run_callbacks(args, run, resume, monitor, mode), *callbacks],
            verbose=args.verbose,
        )
    epochs, best_epoch = kept_epoch(args, model, run, monitor, mode)
    if args.strategy != "default":
        model = _single_device_copy(args, dataset, model, name)
    plots.learning_curves(
        _read_history(run / "history.csv"), monitor, best_epoch, run / "learning_curves.png"
    )
    return model, epochs, best_epoch


def fit_multi_worker(args, dataset, model, strategy, train_batches, run, steps_per_epoch):
    """Trains the compiled `model` under MultiWorkerMirroredStrategy with tfnn.distribute's
    loop."""
    from tfnn import distribute

    distribute.fit_multi_worker(
        model,
        strategy,
        model.loss,
        lambda: loss_and_metrics(dataset.task, args.label_smoothing, bool(args.mixup))[1],
        train_batches,
        batches(args, dataset, dataset.validation),
        epochs=args.epochs,
        steps_per_epoch=steps_per_epoch,
        history_path=run / "history.csv",
        log=say if args.verbose else None,
    )
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    say(f"final weights sha256 {digest}")  # equal on every worker


def _single_device_copy(args, dataset, model, name):
    """The distributed `model`'s weights in a model made outside any strategy, which
    evaluation, ensembles and export use like any other."""
    plain = build_model(args, dataset, name=name)
    plain.set_weights(model.get_weights())
    return plain


def batches(args, dataset, split, **kwargs):
    """A split as tf.data batches; with --mixup the gold of every split is a distribution."""
    import numpy as np

    from tfnn import data

    x, y = split
    if args.mixup:
        y = np.eye(dataset.task.num_classes, dtype=np.float32)[y]
    return data.batches(x, y, args.batch_size, **kwargs)


def evaluate(args, dataset, model):
    """{"val": {...}, "test": {...}}: the loss and metrics on both splits.

    Compiles `model` with its own loss and metric objects (Keras metrics keep
    state; sharing them between models mixes their figures).
    """
    loss, metrics, _, _ = loss_and_metrics(dataset.task, args.label_smoothing, bool(args.mixup))
    model.compile(loss=loss, metrics=metrics)
    scores = {}
    for split, data in (("val", dataset.validation), ("test", dataset.test)):
        values = model.evaluate(batches(args, dataset, data), verbose=0, return_dict=True)
        scores[split] = {name: float(value) for name, value in values.items()}
    return scores


def say(message):
    """One progress line on stderr."""
    print(f"train.py: {message}", file=sys.stderr, flush=True)


def summary(scores, monitor):
    """The line "val <metric> …, test <metric> …" of {"val": {...}, "test": {...}}."""
    return ", ".join(f"{split} {monitor} {scores[split][monitor]:.4f}" for split in ("val", "test"))


def train(args, callbacks=()):
    """Runs the recipe; returns the metrics dictionary also written to metrics.json.

    `callbacks` are appended to the run's own (tests use them to interrupt a run).
    The global Keras dtype policy is restored afterwards.
    """
    import keras

    previous_policy = keras.mixed_precision.dtype_policy()
    try:
        return _on_devices(args, callbacks)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _on_devices(args, callbacks):
    """Configures TensorFlow and the --strategy, then runs the recipe; a non-chief worker
    writes into a temporary folder, deleted at the end."""
    _configure(args)
    import tempfile

    from tfnn import distribute

    try:
        strategy = distribute.make_strategy(args.strategy)
    except ValueError as error:
        raise cli_args.UsageError(f"argument --strategy: {error}") from error
    chief = distribute.is_chief(strategy)
    scratch = None
    if not chief:  # a worker: the same work, written where nobody looks
        scratch = tempfile.mkdtemp(prefix="tfnn-worker-")
        args = argparse.Namespace(
            **{**vars(args), "logdir": f"{scratch}/logs", "export_dir": f"{scratch}/exports"}
        )
    if strategy.num_replicas_in_sync > 1:
        say(
            f"{args.strategy}: {strategy.num_replicas_in_sync} replicas, global batch "
            f"{args.batch_size} = {strategy.num_replicas_in_sync} × "
            f"{args.batch_size / strategy.num_replicas_in_sync:g}"
        )
    try:
        return _recipe(args, callbacks, strategy, chief)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _recipe(args, callbacks, strategy, chief):
    """Data → model(s) → fit → evaluation → pictures → export → metrics.json."""
    import tensorflow_datasets as tfds

    from tfnn import data, export, plots
    from tfnn.cli import ensembles
    from tfnn.layers import Conv1D, Conv2D

    tfds.display_progress_bar(False)
    try:
        dataset = data.load(
            args.dataset,
            seed=args.seed,
            validation_fraction=args.validation_fraction,
            data_dir=args.data_dir,
        )
    except ValueError as error:
        raise cli_args.UsageError(str(error)) from error
    augmentations(args, dataset)  # refuses inapplicable flags before anything is written
    monitor = loss_and_metrics(dataset.task, args.label_smoothing, bool(args.mixup))[2]

    run, resume = _run_folders(args)
    run.mkdir(parents=True, exist_ok=True)
    resume.mkdir(parents=True, exist_ok=True)
    (resume / "run_folder").write_text(str(run))
    print(f"run folder: {run}", file=sys.stderr)

    result = {}
    if args.ensemble > 1:
        model, table = ensembles.train(args, dataset, run, resume, callbacks, strategy)
        (run / "ensemble.json").write_text(json.dumps(table, indent=2) + "\n")
        plots.ensemble_table(table, table["metric"], run / "ensemble.png")
        result["ensemble"] = table
    else:
        model, epochs, best_epoch = fit_model(
            args, dataset, run, resume, seed=args.seed, strategy=strategy, callbacks=callbacks
        )
        result.update(epochs=epochs, best_epoch=best_epoch)
        convolutions = [layer for layer in model.layers if isinstance(layer, (Conv1D, Conv2D))]
        if convolutions:
            plots.first_layer_filters(convolutions[0].kernel.numpy(), run / "filters.png")  # F6
        if args.l1 or args.l2:
            kernels = [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]
            penalties = [f"{n.upper()} λ={v:g}" for n, v in (("l1", args.l1), ("l2", args.l2)) if v]
            result["zero_weights"] = plots.weight_histogram(
                kernels, " + ".join(penalties), run / "weights.png"
            )
    result = {**evaluate(args, dataset, model), **result}  # the final look at the test split
    mc = ensembles.monte_carlo_dropout(args, dataset, model)
    if mc:
        result["mc_dropout"] = mc
        say(
            f"dropout at inference: weight scaling {summary(result, monitor)}; "
            f"Monte-Carlo (T={mc['samples']}) {summary(mc, monitor)}"
        )
    result["export_path"] = str(
        export.export(model, args.export_dir, args.model_name, dataset.task)
    )
    result["args"] = vars(args)
    (run / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(resume, ignore_errors=True)
    if resume.parent.is_dir() and not any(resume.parent.iterdir()):
        resume.parent.rmdir()
    printed = {key: result[key] for key in ("val", "test", "export_path")}
    if not chief:
        printed.update(export_path=None, chief=False)
    print(json.dumps({"run": str(run) if chief else None, **printed}))
    return result
