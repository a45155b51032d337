"""What a run minimizes and watches, by the task its labels describe (docs/lecture.md A1):

    classes      softmax + SoftmaxNLL (C3)   accuracy, ECE     monitor accuracy (max)
    binary       σ + SigmoidNLL (C2)         accuracy, ECE     monitor accuracy (max)
    regression   identity + MSE (C1)         RMSE, MAE         monitor rmse (min)

Label smoothing ε (D5) defaults to 0.1 for classes and binary outcomes and has
no meaning for a regression. With `distributions` (mixup, D5) the gold of
classes is a distribution [B, K] rather than an index.
"""

import dataclasses

import keras

from tfnn import losses, validation
from tfnn.metrics import ExpectedCalibrationError
from tfnn.tasks import BINARY, CLASSES, REGRESSION, Task

DEFAULT_LABEL_SMOOTHING = 0.1


@dataclasses.dataclass(frozen=True)
class Objective:
    """The loss and metrics of a task. `loss()` and `metrics()` make new objects at each
    call: Keras metrics keep state, and two models sharing them would mix their figures."""

    task: Task
    label_smoothing: float
    distributions: bool = False

    @property
    def monitor(self):
        """The validation figure early stopping and ensembles judge by."""
        return "rmse" if self.task.kind == REGRESSION else "accuracy"

    @property
    def mode(self):
        """ "max" when a higher monitored figure is better, "min" otherwise."""
        return "min" if self.task.kind == REGRESSION else "max"

    def loss(self):
        if self.task.kind == REGRESSION:
            return losses.MeanSquaredError()
        if self.task.kind == BINARY:
            return losses.SigmoidNLL(self.label_smoothing)
        return losses.SoftmaxNLL(self.label_smoothing)

    def metrics(self):
        if self.task.kind == REGRESSION:
            return [
                keras.metrics.RootMeanSquaredError(name="rmse"),
                keras.metrics.MeanAbsoluteError(name="mae"),
            ]
        if self.task.kind == BINARY:
            accuracy = keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)  # z=0 ⇔ σ=½
        elif self.distributions:
            accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
        else:
            accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        return [accuracy, ExpectedCalibrationError(name="ece")]


def objective(task, *, label_smoothing=None, distributions=False):
    """The `Objective` of `task`; `label_smoothing` None takes the task's default."""
    if distributions and task.kind != CLASSES:
        validation.fail("distributions", distributions, "False unless the task has classes")
    if task.kind == REGRESSION:
        if label_smoothing:
            validation.fail("label_smoothing", label_smoothing, "None or 0 for a regression")
        return Objective(task, 0.0)
    if label_smoothing is None:
        label_smoothing = DEFAULT_LABEL_SMOOTHING
    smoothing = validation.number("label_smoothing", label_smoothing, low=0, high=1)
    return Objective(task, smoothing, bool(distributions))
