"""A Keras callback that reports a trial's validation figure to Optuna after each epoch, so
that the study's pruner can stop a trial going nowhere (Optuna's own Keras integration does
the same; this one needs no extra package)."""

import math

import keras
import optuna


class ReportToTrial(keras.callbacks.Callback):
    """After each epoch: `trial.report(logs[monitor], epoch)`; raises `optuna.TrialPruned`
    when the pruner says so. An epoch whose training loss is not finite (a diverging fit) is
    not reported: Keras's TerminateOnNaN stops that fit and the trial fails as diverged, not
    pruned on the validation figure of broken weights.

    Args:
        trial: the `optuna.Trial` being run.
        monitor: the key of the validation figure in Keras's logs ("val_accuracy").
    """

    def __init__(self, trial, monitor):
        super().__init__()
        self.trial = trial
        self.monitor = monitor

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None or not all(map(math.isfinite, (value, logs.get("loss", 0.0)))):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}: {self.monitor} {value:.4f}")
