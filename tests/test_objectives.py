import keras
import numpy as np
import pytest

from tfnn import losses
from tfnn.metrics import ExpectedCalibrationError
from tfnn.objectives import objective
from tfnn.tasks import BINARY, CLASSES, REGRESSION, Task
from tfnn.testing import modules_imported_by


@pytest.mark.parametrize(
    "task, loss_class, monitor, mode",
    [
        (Task(CLASSES, 10), losses.SoftmaxNLL, "accuracy", "max"),
        (Task(BINARY, 2), losses.SigmoidNLL, "accuracy", "max"),
        (Task(REGRESSION), losses.MeanSquaredError, "rmse", "min"),
    ],
)
def test_each_task_gets_its_loss_and_monitor(task, loss_class, monitor, mode):
    """A1: the output function's loss per task; early stopping's figure and direction."""
    chosen = objective(task)
    assert type(chosen.loss()) is loss_class
    assert (chosen.monitor, chosen.mode) == (monitor, mode)
    assert monitor in [metric.name for metric in chosen.metrics()]


def test_label_smoothing_defaults_to_a_tenth_for_labels_and_none_for_regression():
    assert objective(Task(CLASSES, 3)).loss().label_smoothing == 0.1
    assert objective(Task(BINARY, 2), label_smoothing=0.0).loss().label_smoothing == 0.0
    assert objective(Task(REGRESSION)).label_smoothing == 0.0
    with pytest.raises(ValueError, match="label_smoothing=0.2"):
        objective(Task(REGRESSION), label_smoothing=0.2)


def test_binary_accuracy_thresholds_the_logit_at_zero():
    """σ(z) > ½ ⇔ z > 0: the model outputs logits, so the threshold is 0, not ½."""
    accuracy = objective(Task(BINARY, 2)).metrics()[0]
    accuracy.update_state(np.array([[1.0], [0.0], [1.0]]), np.array([[0.2], [-0.3], [-0.1]]))
    assert float(accuracy.result()) == pytest.approx(2 / 3)


def test_mixup_gold_is_a_distribution_and_metrics_are_new_objects():
    chosen = objective(Task(CLASSES, 3), distributions=True)
    first, second = chosen.metrics(), chosen.metrics()
    assert type(first[0]) is keras.metrics.CategoricalAccuracy
    assert isinstance(first[1], ExpectedCalibrationError)
    assert all(a is not b for a, b in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="distributions=True"):
        objective(Task(REGRESSION), distributions=True)


def test_the_objectives_need_no_data_sets():
    """Only the task kinds: importing the objectives does not load TFDS (~0.3 s)."""
    assert "tensorflow_datasets" not in modules_imported_by("import tfnn.objectives")
