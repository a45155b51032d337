"""Callbacks for Model.fit that Keras does not provide."""

import json as _json
import pathlib as _pathlib
import shutil as _shutil

import keras as _keras
import tensorflow as _tf

from tfnn import clipping, files, optimizers, validation

__all__ = ["BackupAndRestore", "ClipTelemetry", "EpochCSVLogger", "LastEpochsWeights", "snapshots"]


class ClipTelemetry(_keras.callbacks.Callback):
    """Adds gradient-clipping figures (E3) to the training logs, and to TensorBoard per step.

    Each batch's logs get `grad_norm`, that step's global gradient norm before
    clipping, and `clip_rate`, the share of the epoch's steps so far whose
    gradient clipping changed; each epoch's logs get `grad_norm` (the epoch's
    mean), `grad_norm_max` and `clip_rate`. The progress bar, History,
    CSVLogger and Keras's TensorBoard callback (per epoch) show them; list this
    callback before those.

    Args:
        log_dir: if given, `grad_norm` and `clip_rate` are also written there
            as TensorBoard scalars at the end of every compiled call (every
            step when `steps_per_execution` is 1, else every call's last
            step), stepped by the optimizer's iteration count. (Keras's
            TensorBoard callback can log per step too, but with an integer
            `update_freq` it drops the epoch summaries of epochs whose last
            step is not a multiple of it, in Keras 3.15.)

    The model's optimizer must contain a `tfnn.clipping.ClipGradients`.
    """

    def __init__(self, log_dir=None):
        super().__init__()
        self.log_dir = log_dir
        self._writer = None

    def _clipper(self):
        clipper = optimizers.find(self.model.optimizer, clipping.ClipGradients)
        if clipper is None:
            raise ValueError("ClipTelemetry needs an optimizer wrapped in ClipGradients.")
        return clipper

    def on_train_begin(self, logs=None):
        self._clipper()
        if self.log_dir is not None:
            self._writer = _tf.summary.create_file_writer(str(self.log_dir))

    def on_epoch_begin(self, epoch, logs=None):
        clipper = self._clipper()
        if clipper.built:
            clipper.reset_telemetry()

    def on_train_batch_end(self, batch, logs=None):
        clipper = self._clipper()
        step = {
            "grad_norm": float(clipper.last_norm.numpy()),
            "clip_rate": clipper.telemetry()["clip_rate"],
        }
        if logs is not None:
            logs.update(step)
        if self._writer is not None:
            with self._writer.as_default(step=int(clipper.iterations.numpy())):
                for name, value in step.items():
                    _tf.summary.scalar(name, value)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self._clipper().telemetry())

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _seed_generators(model):
    """The seed generators of `model`'s layers (dropout's, noise's), in the model's order."""
    return [
        generator
        for layer in model._flatten_layers(include_self=False)
        for generator in layer._seed_generators
    ]


class BackupAndRestore(_keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, its files written whole (tfnn.files), with the state of
    the model's seed generators.

    Keras writes `latest.weights.h5` in place, then `training_metadata.json`: a kill
    during the first leaves a broken HDF5 file and the rerun trains from epoch 1. Here
    each is written under a temporary name and renamed into place, the weights first,
    then the metadata, so at every instant a complete backup exists (a kill between the
    two renames leaves the new weights with the previous epoch count: that epoch trains
    again from them). Arguments, loading and deleting are Keras's.

    Keras saves the weights and the optimizer, not the seed generators' states, so a
    resumed fit drew its first epochs' dropout masks again and ended at another model
    than the same fit uninterrupted. The states are in the metadata (`seed_states`, in
    the model's order) and restored with the weights.
    """

    def _load_model(self):
        super()._load_model()
        if not _pathlib.Path(self._training_metadata_path).exists():
            return
        states = _json.loads(_pathlib.Path(self._training_metadata_path).read_text())
        states = states.get("seed_states")
        if states is None:  # a backup of an earlier version: the weights alone
            return
        generators = _seed_generators(self.model)
        if len(states) != len(generators):
            raise ValueError(
                f"Expected a backup of this model: {len(generators)} seed generator states. "
                f"Received: {len(states)} seed generator states in "
                f"{self._training_metadata_path!r}"
            )
        for generator, state in zip(generators, states, strict=True):
            generator.state.assign(state)

    def _save_model(self):
        _pathlib.Path(self.backup_dir).mkdir(parents=True, exist_ok=True)
        if self.double_checkpoint:
            for path, previous in [
                (self._weights_path, self._prev_weights_path),
                (self._training_metadata_path, self._prev_training_metadata_path),
            ]:
                if _pathlib.Path(path).exists():
                    with files.replacing(previous) as temporary:
                        _shutil.copyfile(path, temporary)
        with files.replacing(self._weights_path) as temporary:
            self.model.save_weights(str(temporary), overwrite=True)
        metadata = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            "seed_states": [
                generator.state.numpy().tolist() for generator in _seed_generators(self.model)
            ],
        }
        files.write_atomically(self._training_metadata_path, _json.dumps(metadata))


class EpochCSVLogger(_keras.callbacks.CSVLogger):
    """Keras's CSVLogger with epochs counted from 1, as Keras prints them and as
    `best_epoch` counts."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


class LastEpochsWeights(_keras.callbacks.Callback):
    """Saves the model's weights at the end of each of the last `last` epochs (D6).

    The files, `<folder>/epoch-<NNN>.weights.h5`, are the members of a
    checkpoint ensemble: `snapshots(folder)` reads them back for
    `tfnn.models.ensemble.weight_averaged` or `ensemble`. Being files, they
    survive an interrupted run that Keras's BackupAndRestore resumes; each is
    written whole (tfnn.files).

    Args:
        folder: where to write.
        last: how many final epochs to keep (of `Model.fit`'s `epochs`).
        on_saved: called with the 1-based epoch once its file is in place (to record it).
    """

    def __init__(self, folder, last, on_saved=None):
        super().__init__()
        self.folder = _pathlib.Path(folder)
        self.last = validation.integer("last", last, low=1)
        self.on_saved = on_saved

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.params["epochs"] - self.last:
            self.folder.mkdir(parents=True, exist_ok=True)
            with files.replacing(_snapshot_path(self.folder, epoch + 1)) as temporary:
                self.model.save_weights(str(temporary))
            if self.on_saved:
                self.on_saved(epoch + 1)


def _snapshot_path(folder, epoch):
    """Where `LastEpochsWeights` writes the weights of the 1-based `epoch`."""
    return _pathlib.Path(folder) / f"epoch-{epoch:03d}.weights.h5"


def snapshots(model, folder, epochs=None):
    """The `get_weights()` lists of the files `LastEpochsWeights` wrote, oldest first: those
    of `epochs` (1-based), or every one in `folder`.

    `model` is left holding the weights it had.
    """
    if epochs is None:  # by number: a longer name is a later epoch (epoch-1000, epoch-999)
        found = _pathlib.Path(folder).glob("epoch-*.weights.h5")
        paths = sorted(found, key=lambda path: (len(path.name), path.name))
    else:
        paths = [_snapshot_path(folder, epoch) for epoch in sorted(epochs)]
    current = model.get_weights()
    weights = []
    for path in paths:
        model.load_weights(str(path))
        weights.append(model.get_weights())
    model.set_weights(current)
    return weights
