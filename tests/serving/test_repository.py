"""The repository's version choice, failures, retries, removals and replacements, in process."""

import logging
import shutil

import keras
import numpy as np
import pytest

from tfnn import data, export
from tfnn.serving.policy import Policy
from tfnn.serving.repository import ModelRepository, NotFound


def corrupt(folder):
    """Truncates the SavedModel's saved_model.pb, as a crashed copy would."""
    pb = folder / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[:100])


def served(repository):
    return [int(e["version"]) for e in repository.status("m") if e["state"] == "AVAILABLE"]


def values(repository, version=None):
    x = np.ones((1, 4), "float32")
    return repository.get("m", version).run("serving_default", {"inputs": x})["values"]


@pytest.fixture
def base(tmp_path, kit):
    """Versions 1, 2, 3 of Linear with offsets 1, 2, 3."""
    for version in (1, 2, 3):
        kit.write_linear(tmp_path / "m" / str(version), offset=float(version))
    return tmp_path / "m"


def test_a_version_folder_with_leading_zeros_is_served_from_its_own_folder(tmp_path, kit):
    """ "0012" is version 12 (tfnn.versions): its SavedModel is loaded from 0012/, and of two
    folders naming one version, the one without leading zeros is served."""
    kit.write_linear(tmp_path / "m" / "0012", offset=12.0)
    kit.write_linear(tmp_path / "m" / "\u0661\u0663", offset=13.0)  # not a version
    repository = ModelRepository("m", tmp_path / "m", Policy.parse("all"))
    assert repository.poll() == [12]
    from_padded = values(repository, 12)
    kit.write_linear(tmp_path / "m" / "12", offset=-12.0)
    assert repository.poll() == [12]
    np.testing.assert_allclose(from_padded - values(repository, 12), 24.0)  # offset 12 vs -12


@pytest.mark.parametrize(
    "policy, versions",
    [("latest", [3]), ("latest:2", [3, 2]), ("specific:1,3", [3, 1]), ("all", [3, 2, 1])],
)
def test_the_version_policy_chooses_what_is_served(base, kit, policy, versions):
    repository = ModelRepository("m", base, Policy.parse(policy))
    assert served(repository) == versions
    assert repository.get("m").version == versions[0]
    for version in versions:
        np.testing.assert_array_equal(values(repository, version), kit.expected([[1] * 4], version))
    for version in {1, 2, 3} - set(versions):
        with pytest.raises(NotFound, match=rf"Specific\(m, {version}\)"):
            repository.get("m", version)


def test_other_folders_are_ignored_and_unfinished_versions_wait(base):
    (base / "notes").mkdir()
    shutil.copytree(base / "1", base / "\u0661\u0662")  # Arabic-Indic "12": not a version
    (base / "9").mkdir()  # no saved_model.pb yet: being written
    repository = ModelRepository("m", base)
    assert served(repository) == [3]
    assert [e["version"] for e in repository.status("m")] == ["3"]


def test_a_broken_highest_version_is_reported_and_the_next_one_served(base):
    corrupt(base / "3")
    repository = ModelRepository("m", base, Policy("latest", 2))
    assert served(repository) == [2, 1]
    broken = repository.status("m", 3)
    assert broken == [
        {
            "version": "3",
            "state": "END",
            "status": {
                "error_code": "DATA_LOSS",
                "error_message": "Can't parse saved_model.pb as binary proto",
            },
        }
    ]
    with pytest.raises(NotFound, match="version 7"):
        repository.status("m", 7)
    with pytest.raises(NotFound):
        repository.status("other")


def test_a_base_path_with_nothing_loadable_is_refused(tmp_path, base):
    (tmp_path / "empty" / "1").mkdir(parents=True)
    with pytest.raises(ValueError, match="model_base_path"):
        ModelRepository("m", tmp_path / "empty")
    for version in (1, 2, 3):
        corrupt(base / str(version))
    with pytest.raises(ValueError, match="version 3: DATA_LOSS"):
        ModelRepository("m", base)


def test_a_failed_version_is_retried_after_doubling_waits_and_at_once_when_rewritten(
    base, kit, caplog
):
    now = [0.0]
    corrupt(base / "3")
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        repository = ModelRepository("m", base, max_retry_seconds=4, clock=lambda: now[0])
        attempts = []
        for t in [0.5, 1.0, 2.5, 3.0, 6.9, 7.0, 10.9, 11.0]:
            now[0] = t
            before = sum("failed to load" in r.message for r in caplog.records)
            repository.poll()
            attempts += [t] * (sum("failed to load" in r.message for r in caplog.records) - before)
        assert attempts == [1.0, 3.0, 7.0, 11.0]  # waits 1, 2, 4, then at most 4 s
        assert served(repository) == [2]
        shutil.rmtree(base / "3")
        kit.write_linear(base / "3", offset=30.0)  # a good copy under the same number
        repository.poll()  # before the retry is due
    assert served(repository) == [3]
    np.testing.assert_array_equal(values(repository), kit.expected([[1] * 4], 30.0))
    assert repository.status("m", 2)[0]["state"] == "END"
    assert any(r.message == "loaded m version 3" for r in caplog.records)
    assert any(r.message.startswith("unloaded m version 2") for r in caplog.records)


def test_a_removed_version_falls_back_and_a_replaced_one_is_reloaded(base, kit, caplog):
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        repository = ModelRepository("m", base)
        shutil.rmtree(base / "3")
        repository.poll()
        assert served(repository) == [2]
        assert repository.status("m", 3)[0]["state"] == "END"
        shutil.rmtree(base / "2")
        kit.write_linear(base / "2", offset=20.0)  # re-exported under the same number
        repository.poll()
    assert served(repository) == [2]
    np.testing.assert_array_equal(values(repository), kit.expected([[1] * 4], 20.0))
    messages = [r.message for r in caplog.records]
    assert messages[:2] == ["loaded m version 3", "loaded m version 2"]
    assert "unloaded m version 3 (no longer wanted or removed)" in messages
    assert "reloaded m version 2" in messages and "unloaded m version 2 (replaced)" in messages


def test_metadata_is_the_signature_defs_as_tensorflow_serving_prints_them(tmp_path):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    export.export(model, tmp_path, "net", data.Task(data.CLASSES, 2))
    servable = ModelRepository("net", tmp_path / "net").get("net")
    default = servable.signature_defs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    shape = default["inputs"]["inputs"]["tensor_shape"]
    assert shape == {
        "dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}],
        "unknown_rank": False,
    }
    assert sorted(servable.signatures) == ["classes", "serve", "serving_default"]
