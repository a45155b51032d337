import keras
import pytest

from tfnn import data, export
from tfnn.serving.repository import ModelRepository, NotFound


def model(units):
    keras.utils.set_random_seed(units)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


TASK = data.Task(data.CLASSES, 2)


def test_serves_the_highest_complete_version_and_moves_to_newer_ones(tmp_path):
    export.export(model(2), tmp_path, "net", TASK)  # version 1
    (tmp_path / "net" / "notes").mkdir()  # not a version
    (tmp_path / "net" / "9").mkdir()  # a version folder without a model yet
    repository = ModelRepository("net", tmp_path / "net")
    assert repository.get("net").version == 1
    assert repository.get("net", 1).version == 1
    export.export(model(2), tmp_path, "net", TASK)  # version 10 (after the empty 9)
    assert repository.get("net").version == 1  # until polled
    repository.poll()
    assert repository.get("net").version == 10
    with pytest.raises(NotFound, match=r"Specific\(net, 1\)"):
        repository.get("net", 1)
    with pytest.raises(NotFound, match=r"Latest\(other\)"):
        repository.get("other")


def test_metadata_is_the_signature_defs_as_tensorflow_serving_prints_them(tmp_path):
    export.export(model(2), tmp_path, "net", TASK)
    servable = ModelRepository("net", tmp_path / "net").get("net")
    default = servable.signature_defs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    shape = default["inputs"]["inputs"]["tensor_shape"]
    assert shape == {
        "dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}],
        "unknown_rank": False,
    }
    assert sorted(servable.signatures) == ["classes", "serve", "serving_default"]


def test_a_base_path_without_a_version_is_refused(tmp_path):
    (tmp_path / "net" / "1").mkdir(parents=True)  # empty: no saved_model.pb
    with pytest.raises(ValueError, match="model_base_path"):
        ModelRepository("net", tmp_path / "net")
