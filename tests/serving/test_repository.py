"""The repository's version choice, failures, retries, removals and replacements, in process."""

import logging
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import data, export
from tfnn.serving.policy import Policy
from tfnn.serving.repository import LoadError, ModelRepository, NotFound, Servable


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


def test_a_base_path_without_any_version_is_refused_with_no_failures_listed(tmp_path):
    """Catches the refusal's list of failures, `(f" ({broken})" if broken else "")`, added
    (empty parentheses, or other text) when no version failed: the folder holds none."""
    (tmp_path / "empty" / "1").mkdir(parents=True)  # still being written: no saved_model.pb
    with pytest.raises(ValueError) as raised:
        ModelRepository("m", tmp_path / "empty")
    assert str(raised.value) == (
        "Expected a loadable version folder <integer>/saved_model.pb in --model_base_path for "
        f"policy latest. Received: model_base_path={str(tmp_path / 'empty')!r}"
    )


def test_a_poll_that_changes_nothing_loads_and_logs_nothing(base, caplog):
    """Catches poll's `wanted.get(version) is not servable` reading another key: every kept
    version logged "unloaded (replaced)" on every poll, though it is still served."""
    repository = ModelRepository("m", base, Policy.parse("latest:2"))
    kept = {v: repository.get("m", v) for v in (3, 2)}
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        assert repository.poll() == [3, 2]
    assert [r.message for r in caplog.records] == []
    assert {v: repository.get("m", v) for v in (3, 2)} == kept


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


def test_tensorflows_error_code_is_reported_without_the_versions_path(base, monkeypatch):
    def load(path):
        raise tf.errors.NotFoundError(None, None, f"{path}{os.sep}variables/v: no such file")

    monkeypatch.setattr(tf.saved_model, "load", load)
    with pytest.raises(LoadError) as raised:
        Servable(base / "1", 1)
    assert (raised.value.code, str(raised.value)) == ("NOT_FOUND", "variables/v: no such file")


def test_any_other_failure_to_load_is_unknown_with_its_type(base, monkeypatch):
    def load(path):
        raise RuntimeError("the loader broke")

    monkeypatch.setattr(tf.saved_model, "load", load)
    with pytest.raises(LoadError) as raised:
        Servable(base / "1", 1)
    assert (raised.value.code, str(raised.value)) == ("UNKNOWN", "RuntimeError: the loader broke")


def test_an_empty_saved_model_pb_is_data_loss(tmp_path, kit):
    kit.write_linear(tmp_path / "m" / "1")
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"")  # parses: no meta graph
    with pytest.raises(LoadError) as raised:
        Servable(tmp_path / "m" / "1", 1)
    assert raised.value.code == "DATA_LOSS"


def test_nothing_loadable_names_the_policy_the_path_and_every_failure(base):
    for version in (1, 3):
        corrupt(base / str(version))
    shutil.rmtree(base / "2")
    with pytest.raises(ValueError) as raised:
        ModelRepository("m", base, Policy.parse("all"))
    reason = "DATA_LOSS: Can't parse saved_model.pb as binary proto"
    assert str(raised.value) == (
        "Expected a loadable version folder <integer>/saved_model.pb in --model_base_path for "
        f"policy all. Received: model_base_path={str(base)!r} (version 1: {reason}; "
        f"version 3: {reason})"
    )


def test_a_removed_base_path_unloads_every_version_and_a_new_one_is_served(base, kit):
    repository = ModelRepository("m", base)
    shutil.rmtree(base)
    assert repository.poll() == []
    with pytest.raises(NotFound, match=r"^Servable not found for request: Latest\(m\)$"):
        repository.get("m")
    kit.write_linear(base / "4", offset=4.0)
    assert repository.poll() == [4]
    assert [(e["version"], e["state"]) for e in repository.status("m")] == [
        ("4", "AVAILABLE"),
        ("3", "END"),
    ]


def test_a_failed_version_whose_folder_is_removed_is_forgotten(base):
    corrupt(base / "3")
    repository = ModelRepository("m", base)
    assert repository.status("m", 3)[0]["status"]["error_code"] == "DATA_LOSS"
    shutil.rmtree(base / "3")
    repository.poll()
    with pytest.raises(NotFound, match="^Could not find version 3 of model m$"):
        repository.status("m", 3)


def failures(caplog):
    return [r.message for r in caplog.records if "failed to load" in r.message]


def test_a_version_rewritten_but_still_broken_starts_its_waits_again(base, caplog):
    now = [0.0]
    corrupt(base / "3")
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        repository = ModelRepository("m", base, clock=lambda: now[0])
        now[0] = 1.0
        repository.poll()  # second failure: the next wait is 2 s
        shutil.rmtree(base / "3")
        shutil.copytree(base / "2", base / "3")
        corrupt(base / "3")
        now[0] = 1.5
        repository.poll()  # a new folder: tried at once, as a first failure
    waits = [m.rsplit("next attempt in ", 1)[1] for m in failures(caplog)]
    assert waits == ["1 s", "2 s", "1 s"]
    assert failures(caplog)[0] == (
        "m version 3 failed to load (DATA_LOSS: Can't parse saved_model.pb as binary proto); "
        "next attempt in 1 s"
    )


def test_the_waits_double_up_to_300_s_by_default(base, caplog):
    now = [0.0]
    corrupt(base / "3")
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        repository = ModelRepository("m", base, clock=lambda: now[0])
        for _ in range(10):
            now[0] = repository._failures[3].retry_at
            repository.poll()
    waits = [float(m.rsplit("next attempt in ", 1)[1][:-2]) for m in failures(caplog)]
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_a_version_is_asked_for_by_its_models_name(base):
    repository = ModelRepository("m", base)
    with pytest.raises(NotFound, match=r"^Servable not found for request: Latest\(other\)$"):
        repository.get("other")
    with pytest.raises(NotFound, match=r"^Servable not found for request: Specific\(m, 1\)$"):
        repository.get("m", 1)
    with pytest.raises(NotFound, match="^Could not find any versions of model other$"):
        repository.status("other", 3)
    assert repository.get("m", 3) is repository.get("m")


def test_served_and_unloaded_versions_have_status_ok_with_no_message(base):
    repository = ModelRepository("m", base, Policy.parse("latest:2"))
    shutil.rmtree(base / "3")
    repository.poll()
    ok = {"error_code": "OK", "error_message": ""}
    assert repository.status("m") == [
        {"version": "3", "state": "END", "status": ok},
        {"version": "2", "state": "AVAILABLE", "status": ok},
        {"version": "1", "state": "AVAILABLE", "status": ok},
    ]


def test_an_error_code_tensorflow_does_not_name_is_unknown(base, monkeypatch):
    """Catches `_CODE_NAMES.get(error.error_code, "UNKNOWN")` with another default or none:
    an OpError whose code TensorFlow does not name is reported as UNKNOWN."""

    def load(path):
        raise tf.errors.OpError(None, None, "an error of code 99", 99)

    monkeypatch.setattr(tf.saved_model, "load", load)
    with pytest.raises(LoadError) as raised:
        Servable(base / "1", 1)
    assert (raised.value.code, str(raised.value)) == ("UNKNOWN", "an error of code 99")


def test_a_servable_lists_each_signatures_input_specs(base):
    """Catches `self.inputs` set to anything but each signature's keyword input specs."""
    servable = Servable(base / "1", 1)
    spec = {"inputs": tf.TensorSpec([None, 4], tf.float32, name="inputs")}
    assert servable.inputs == {"serving_default": spec, "classes": spec}


def test_a_version_that_loaded_after_failing_starts_its_waits_again_when_it_next_fails(
    base, kit, monkeypatch, caplog
):
    """Catches `self._failures.pop(version, None)` after a load forgetting nothing: a version
    that failed once, then loaded, then failed again from its unchanged folder, waited 2 s
    (a second failure) instead of 1 s (a first)."""
    now = [0.0]
    broken = [True]
    real_load = tf.saved_model.load

    def load(path):
        if broken[0] and path.endswith(f"{os.sep}3"):
            raise tf.errors.UnavailableError(None, None, "not now")
        return real_load(path)

    monkeypatch.setattr(tf.saved_model, "load", load)
    with caplog.at_level(logging.INFO, logger="tfnn.serving"):
        repository = ModelRepository("m", base, clock=lambda: now[0])
        assert served(repository) == [2]
        broken[0] = False
        now[0] = 1.0
        assert repository.poll() == [3]
        kit.write_linear(base / "4", offset=4.0)
        assert repository.poll() == [4]  # 3 unloaded, its folder unchanged
        broken[0] = True
        shutil.rmtree(base / "4")
        assert repository.poll() == [2]  # 3 wanted again, and fails again
    assert [m.rsplit("next attempt in ", 1)[1] for m in failures(caplog)] == ["1 s", "1 s"]


def test_a_served_version_replaced_by_a_broken_copy_reports_its_load_error(base):
    """Catches status() reporting a version unloaded since as END with OK before its load
    error: a served version whose folder was replaced by one that does not load is unloaded
    and failed at once, and its status is the failure."""
    repository = ModelRepository("m", base)
    shutil.rmtree(base / "3")
    shutil.copytree(base / "2", base / "3")
    corrupt(base / "3")
    assert repository.poll() == [2]
    assert repository.status("m", 3) == [
        {
            "version": "3",
            "state": "END",
            "status": {
                "error_code": "DATA_LOSS",
                "error_message": "Can't parse saved_model.pb as binary proto",
            },
        }
    ]
