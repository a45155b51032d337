"""Callbacks for Model.fit that Keras does not provide."""

import keras

from tfnn import optimizers
from tfnn.clipping import ClipGradients


class ClipTelemetry(keras.callbacks.Callback):
    """Adds gradient-clipping figures (E3) to the training logs.

    Each epoch's logs get `grad_norm` (the mean global gradient norm before
    clipping), `grad_norm_max` and `clip_rate` (the share of steps whose
    gradient clipping changed), and each batch's logs get the running values,
    so the progress bar, History, CSVLogger and TensorBoard show them. List it
    before those callbacks; it needs the model's optimizer to contain a
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
            logs.update(self._clipper().telemetry())

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self._clipper().telemetry())
