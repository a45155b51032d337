"""What a run minimizes and watches, by the task its labels describe (docs/lecture.md A1):

    classes      softmax + SoftmaxNLL (C3)   accuracy, ECE     monitor accuracy (max)
    binary       σ + SigmoidNLL (C2)         accuracy, ECE     monitor accuracy (max)
    regression   identity + MSE (C1)         RMSE, MAE         monitor rmse (min)

Label smoothing ε (D5) defaults to 0.1 for classes and binary outcomes and has
no meaning for a regression. With `distributions` (mixup, D5) the gold of
classes is a distribution [B, K] rather than an index.
"""

import dataclasses as _dataclasses

import keras as _keras

from tfnn import losses, tasks, validation
from tfnn.metrics import ExpectedCalibrationError as _ExpectedCalibrationError

__all__ = ["DEFAULT_LABEL_SMOOTHING", "Objective", "objective"]

DEFAULT_LABEL_SMOOTHING = 0.1


@_dataclasses.dataclass(frozen=True)
class Objective:
    """The loss and metrics of a task. `loss()` and `metrics()` make new objects at each
    call: Keras metrics keep state, and two models sharing them would mix their figures."""

    task: tasks.Task
    label_smoothing: float
    distributions: bool = False

    @property
    def monitor(self):
        """The validation figure early stopping and ensembles judge by."""
        return "rmse" if self.task.kind == tasks.REGRESSION else "accuracy"

    @property
    def mode(self):
        """ "max" when a higher monitored figure is better, "min" otherwise."""
        return "min" if self.task.kind == tasks.REGRESSION else "max"

    def loss(self):
        if self.task.kind == tasks.REGRESSION:
            return losses.MeanSquaredError()
        if self.task.kind == tasks.BINARY:
            return losses.SigmoidNLL(self.label_smoothing)
        return losses.SoftmaxNLL(self.label_smoothing)

    def metrics(self):
        if self.task.kind == tasks.REGRESSION:
            return [
                _keras.metrics.RootMeanSquaredError(name="rmse"),
                _keras.metrics.MeanAbsoluteError(name="mae"),
            ]
        if self.task.kind == tasks.BINARY:
            accuracy = _keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)  # z=0 ⇔ σ=½
        elif self.distributions:
            accuracy = _keras.metrics.CategoricalAccuracy(name="accuracy")
        else:
            accuracy = _keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        return [accuracy, _ExpectedCalibrationError(name="ece")]


def objective(task, *, label_smoothing=None, distributions=False):
    """The `Objective` of `task`; `label_smoothing` None takes the task's default."""
    if distributions and task.kind != tasks.CLASSES:
        validation.fail("distributions", distributions, "False unless the task has classes")
    if task.kind == tasks.REGRESSION:
        if label_smoothing:
            validation.fail("label_smoothing", label_smoothing, "None or 0 for a regression")
        return Objective(task, 0.0)
    if label_smoothing is None:
        label_smoothing = DEFAULT_LABEL_SMOOTHING
    smoothing = validation.number("label_smoothing", label_smoothing, low=0, high=1)
    return Objective(task, smoothing, bool(distributions))
