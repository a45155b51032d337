"""The task kinds are plain Python: naming a task imports neither TensorFlow nor TFDS."""

from tfnn import data, tasks
from tfnn.testing import modules_imported_by


def test_a_task_is_named_without_tensorflow():
    imported = modules_imported_by("import tfnn.tasks")
    assert not {"tensorflow", "keras", "tensorflow_datasets"} & imported


def test_the_outputs_are_k_logits_for_classes_and_one_otherwise():
    assert tasks.Task(tasks.CLASSES, 7).outputs == 7
    assert tasks.Task(tasks.BINARY, 2).outputs == 1
    assert tasks.Task(tasks.REGRESSION).outputs == 1


def test_tfnn_data_still_names_the_task_kinds():
    assert data.Task is tasks.Task
    assert (data.REGRESSION, data.BINARY, data.CLASSES) == ("regression", "binary", "classes")
