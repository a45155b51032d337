"""Callbacks for Model.fit that Keras does not provide."""

import keras

from tfnn import optimizers
from tfnn.clipping import ClipGradients


class ClipTelemetry(keras.callbacks.Callback):
    """Adds gradient-clipping figures (E3) to the training logs.

    Each batch's logs get `grad_norm`, that step's global gradient norm before
    clipping, and `clip_rate`, the share of the epoch's steps so far whose
    gradient clipping changed; each epoch's logs get `grad_norm` (the epoch's
    mean), `grad_norm_max` and `clip_rate`. The progress bar, History,
    CSVLogger and TensorBoard (per step with `update_freq="batch"`) show them.
    List it before those callbacks; the model's optimizer must contain a
    `tfnn.clipping.ClipGradients`.
    """

    def _clipper(self):
        clipper = optimizers.find(self.model.optimizer, ClipGradients)
        if clipper is None:
            raise ValueError("ClipTelemetry needs an optimizer wrapped in ClipGradients.")
        return clipper

    def on_epoch_begin(self, epoch, logs=None):
        clipper = self._clipper()
        if clipper.built:
            clipper.reset_telemetry()

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None:
            clipper = self._clipper()
            logs.update(
                grad_norm=float(clipper.last_norm.numpy()),
                clip_rate=clipper.telemetry()["clip_rate"],
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self._clipper().telemetry())
