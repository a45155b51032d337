"""The model stage and the fit stage: build the options' network, compile it with the plan's
objective and optimizer, and fit it on the training stream with Keras's callbacks.

After a resume (Keras's BackupAndRestore), early stopping and the best-epoch
checkpoint start from the best validation figure recorded before the
interruption; with early stopping (D1) the model ends holding its best epoch.
"""

import dataclasses
import hashlib
import logging
import math

import keras
import tensorflow as tf

from tfnn import distribute, plots
from tfnn.callbacks import BackupAndRestore, ClipTelemetry, EpochCSVLogger, LastEpochsWeights
from tfnn.data import augment
from tfnn.models.cnn import cnn
from tfnn.models.mlp import mlp
from tfnn.optimizer_factory import make_optimizer
from tfnn.recipe import run as runs
from tfnn.recipe.errors import TrainingDiverged
from tfnn.recipe.phases import Stopwatch


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A trained model, the epochs it trained and the 1-based epoch whose weights it holds."""

    model: keras.Model
    epochs: int
    best_epoch: int


# The training pipeline's tf.data options: no autotuning. With it, Model.fit returned 1-20 s
# after its last epoch (the autotuning thread outlives the iterator); without it the pipeline
# runs at AUTOTUNE's starting parallelism, as fast here, in memory or streamed
# (docs/benchmarks.md, "Where a run's time goes"; benchmarks/data.py).
TRAINING_PIPELINE = tf.data.Options()
TRAINING_PIPELINE.autotune.enabled = False


def say(message):
    """One progress line, to the "tfnn.recipe" logger (train.py prints it on stderr)."""
    logging.getLogger("tfnn.recipe").info(message)


def build_model(plan, name=None):
    """The options' network for the plan's data set, returning logits (values for regression)."""
    options, dataset = plan.options, plan.dataset
    outputs = dataset.task.outputs
    if options.model == "cnn":
        return cnn(
            dataset.input_shape,
            outputs,
            options.cnn,
            statistics=plan.input_statistics,
            init=options.init,
            l2=options.l2,
            target_scale=plan.target_scale,
            name=name or "cnn",
        )
    return mlp(
        dataset.input_shape,
        outputs,
        statistics=plan.input_statistics,
        hidden_layers=options.hidden_layers,
        activation=options.activation,
        init=options.init,
        dropout=options.dropout,
        l2=options.l2,  # L1 is the optimizer's proximal step, not a loss term
        max_norm=options.max_norm,
        target_scale=plan.target_scale,
        name=name or "mlp",
    )


def uses_xla(options):
    """Whether the run XLA-compiles its steps: --jit_compile on, or auto with a GPU present
    and one device (Keras's own "auto" rule; on this project's CPU, XLA measured no faster)."""
    if options.jit_compile == "auto":
        return options.strategy == "default" and bool(tf.config.list_physical_devices("GPU"))
    return options.jit_compile == "on"


def compiled_model(plan, name=None):
    """`build_model` compiled with the plan's loss, metrics and optimizer, in its strategy's
    scope."""
    options = plan.options
    with plan.strategy.scope():
        model = build_model(plan, name=name)
        optimizer = make_optimizer(
            options.optimizer,
            learning_rate=options.learning_rate,
            decay=options.decay,
            learning_rate_final=options.learning_rate_final,
            total_steps=plan.steps_per_epoch * options.epochs,
            momentum=options.momentum,
            weight_decay=options.weight_decay,
            l1=options.l1,
            clip_mode=options.clip_mode,
            clip=options.clip,
        )
        model.compile(
            optimizer,
            plan.objective.loss(),
            metrics=plan.objective.metrics(),
            steps_per_execution=plan.steps_per_execution,
            jit_compile=uses_xla(options),
        )
    return model


def run_callbacks(plan, folder):
    """Keras's callbacks for a run in `folder`, with tfnn's clipping telemetry and a
    checkpoint ensemble's snapshots before them."""
    options, objective = plan.options, plan.objective
    monitor = f"val_{objective.monitor}"
    earlier = folder.history().get(monitor)
    best_so_far = runs.best(earlier, objective.mode)[1] if earlier else None
    callbacks = []
    if options.clip_mode != "none":
        callbacks.append(ClipTelemetry(folder.path / "tensorboard" / "clipping"))
    if options.ensemble > 1 and options.ensemble_kind == "checkpoints":
        # Before the backup: an epoch killed before its snapshot is recorded trains again.
        callbacks.append(
            LastEpochsWeights(
                folder.path / "snapshots", options.ensemble, on_saved=folder.record_snapshot
            )
        )
    callbacks += [
        # Kept after the fit, until what it trained is recorded (tfnn.recipe.run).
        BackupAndRestore(str(folder.backup), delete_checkpoint=False),
        keras.callbacks.TerminateOnNaN(),
        EpochCSVLogger(str(folder.history_path), append=True),
        keras.callbacks.TensorBoard(str(folder.path / "tensorboard")),
    ]
    if options.patience:
        callbacks += [
            keras.callbacks.ModelCheckpoint(
                str(folder.path / "best.weights.h5"),
                monitor=monitor,
                mode=objective.mode,
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=best_so_far,
            ),
            keras.callbacks.EarlyStopping(
                monitor, patience=options.patience, mode=objective.mode, baseline=best_so_far
            ),
        ]
    return callbacks


def fit(plan, folder, *, seed, bootstrap_seed=None, callbacks=(), name=None, stopwatch=None):
    """Builds, compiles and fits one model in `folder`; returns a `Fitted`.

    `seed` fixes initialization, data order, augmentation and dropout;
    `bootstrap_seed` trains on that bootstrap sample of the training split
    (D6, bagging). `callbacks` run after the run's own. The phases build, fit
    and pictures are timed on `stopwatch` (tfnn.recipe.phases).
    """
    options, dataset = plan.options, plan.dataset
    stopwatch = stopwatch or Stopwatch()
    keras.utils.set_random_seed(seed)
    with stopwatch.phase("build"):
        model = compiled_model(plan, name=name)
    folder.path.mkdir(parents=True, exist_ok=True)
    # A resumed fit continues the data order and augmentation draws at the epoch Keras
    # resumes at. A streamed split's order comes from a shuffle buffer, which starts anew.
    first_epoch = runs.resumed_epoch(folder)
    batches = plan.batches(
        dataset.train,
        shuffle_seed=seed,
        bootstrap_seed=bootstrap_seed,
        repeat=True,
        first_epoch=first_epoch,
    )
    train_batches = augment.augment(
        batches,
        list(plan.transforms),
        seed,
        first_step=first_epoch * plan.steps_per_epoch,
    ).with_options(TRAINING_PIPELINE)
    if plan.transforms:
        with stopwatch.phase("pictures"):
            _draw_augmented(plan, seed, folder.path / "augmented.png")
    fitted = folder.fitted()  # a rerun after the fit returned: restore it, train no more
    with stopwatch.phase("fit"):
        _fit(plan, model, train_batches, folder, callbacks, epochs=fitted or options.epochs)
    if fitted is None:
        folder.record_fitted(len(folder.history()["loss"]))
    runs.fault_point("fitted")
    epochs, best_epoch = _keep_best(plan, model, folder)
    if options.strategy != "default":  # evaluation, ensembles and export run on one device
        plain = build_model(plan, name=name)
        plain.set_weights(model.get_weights())
        model = plain
    with stopwatch.phase("pictures"):
        plots.learning_curves(
            folder.history(),
            plan.objective.monitor,
            best_epoch,
            folder.path / "learning_curves.png",
        )
    return Fitted(model, epochs, best_epoch)


def _fit(plan, model, train_batches, folder, callbacks, *, epochs):
    """Keras's fit of the compiled `model` up to `epochs` (tfnn.distribute's loop for
    multi-worker)."""
    options, dataset = plan.options, plan.dataset
    if options.strategy == "multi_worker":
        _fit_multi_worker(plan, model, train_batches, folder)
    else:
        model.fit(
            # One endless iterator for all epochs: tf.data builds the augmentation
            # pipeline once, not at every epoch's start (benchmarks/augment.py).
            train_batches,
            steps_per_epoch=plan.steps_per_epoch,
            validation_data=plan.batches(dataset.validation),
            epochs=epochs,
            # The pipeline shuffles, seeded; Keras ignores `shuffle` for a tf.data input
            # but warns at its default, True.
            shuffle=False,
            callbacks=[*run_callbacks(plan, folder), *callbacks],
            verbose=options.verbose,
        )


def _draw_augmented(plan, seed, path):
    """Eight training examples before and after the transforms."""
    x, y = plan.sample(8)
    augmented = augment.apply(list(plan.transforms), tf.constant(x), tf.constant(y), [seed, 0])
    plots.augmented_samples(x, augmented[0].numpy(), path)


def _keep_best(plan, model, folder):
    """Loads the best epoch's weights when early stopping is on (D1); returns
    (epochs trained, 1-based epoch whose weights the model now holds)."""
    history = folder.history()
    if not all(map(math.isfinite, history["loss"])):
        raise TrainingDiverged(f"training diverged (loss {history['loss'][-1]}); nothing exported")
    epochs = len(history["loss"])
    best_weights = folder.path / "best.weights.h5"
    if plan.options.patience and best_weights.is_file():
        model.load_weights(str(best_weights))
        monitor = f"val_{plan.objective.monitor}"
        best_epoch, value = runs.best(history[monitor], plan.objective.mode)
        stopped = (
            f"stopped at epoch {epochs} of {plan.options.epochs}"
            if epochs < plan.options.epochs
            else f"did not stop ({epochs} epochs)"
        )
        say(f"early stopping {stopped}; kept epoch {best_epoch} ({monitor} {value:.4f})")
        return epochs, best_epoch
    return epochs, epochs


def _fit_multi_worker(plan, model, train_batches, folder):
    """Trains the compiled `model` under MultiWorkerMirroredStrategy with tfnn.distribute's
    loop."""
    distribute.fit_multi_worker(
        model,
        plan.strategy,
        model.loss,
        plan.objective.metrics,
        train_batches,
        plan.batches(plan.dataset.validation),
        epochs=plan.options.epochs,
        steps_per_epoch=plan.steps_per_epoch,
        history_path=folder.history_path,
        log=say if plan.options.verbose else None,
    )
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    say(f"final weights sha256 {digest}")  # equal on every worker
