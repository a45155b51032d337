import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import data, export
from tfnn.layers import Dense
from tfnn.testing import modules_imported_by

CASES = {
    data.CLASSES: (data.Task(data.CLASSES, 4), "probabilities", tf.nn.softmax),
    data.BINARY: (data.Task(data.BINARY, 2), "probabilities", tf.math.sigmoid),
    data.REGRESSION: (data.Task(data.REGRESSION), "values", lambda z: z),
}


def logits_model(outputs):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((5,)), Dense(8, "relu"), Dense(outputs)], name="net")


@pytest.mark.parametrize("kind", list(CASES))
def test_export_returns_what_clients_want_under_a_stable_name(kind, tmp_path):
    task, output_name, function = CASES[kind]
    model = logits_model(task.outputs)
    path = export.export(model, tmp_path, "net", task)
    assert path == tmp_path / "net" / "1"
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    outputs = served(inputs=tf.constant(x))
    assert list(outputs) == [output_name]
    assert outputs[output_name].dtype == tf.float32
    np.testing.assert_allclose(outputs[output_name], function(model(x)), rtol=1e-5, atol=1e-6)
    spec = served.structured_input_signature[1]["inputs"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 5]


@pytest.mark.parametrize("kind", [data.CLASSES, data.BINARY])
def test_classifiers_also_export_class_ids_and_their_scores(kind, tmp_path):
    task, _, function = CASES[kind]
    model = logits_model(task.outputs)
    loaded = tf.saved_model.load(str(export.export(model, tmp_path, "net", task)))
    assert sorted(loaded.signatures) == ["classes", "serve", "serving_default"]
    x = np.random.default_rng(2).normal(size=(7, 5)).astype("float32")
    outputs = loaded.signatures["classes"](inputs=tf.constant(x))
    p = function(model(x)).numpy()
    if kind == data.BINARY:
        p = np.concatenate([1 - p, p], axis=1)
    assert outputs["classes"].dtype == tf.int64
    np.testing.assert_array_equal(outputs["classes"], p.argmax(axis=1))
    np.testing.assert_allclose(outputs["scores"], p.max(axis=1), rtol=1e-5)


@pytest.mark.parametrize("kind", [data.CLASSES, data.BINARY])
def test_a_calibrated_export_serves_the_output_function_of_z_over_t(kind, tmp_path):
    """Same signatures and names; probabilities softmax(z/T) (σ(z/T)), classes unchanged."""
    task, output_name, function = CASES[kind]
    model = logits_model(task.outputs)
    plain = tf.saved_model.load(str(export.export(model, tmp_path, "net", task)))
    loaded = tf.saved_model.load(str(export.export(model, tmp_path, "net", task, temperature=2.5)))
    assert sorted(loaded.signatures) == sorted(plain.signatures)
    x = np.random.default_rng(3).normal(size=(9, 5)).astype("float32")
    outputs = loaded.signatures["serving_default"](inputs=tf.constant(x))
    assert list(outputs) == [output_name]
    z = model(x).numpy()
    np.testing.assert_allclose(outputs[output_name], function(z / 2.5), rtol=1e-5, atol=1e-7)
    assert not np.allclose(outputs[output_name], function(z), atol=1e-3)
    np.testing.assert_array_equal(
        loaded.signatures["classes"](inputs=tf.constant(x))["classes"],
        plain.signatures["classes"](inputs=tf.constant(x))["classes"],
    )


def test_a_temperature_is_refused_for_a_regression_and_where_it_is_not_positive(tmp_path):
    model = logits_model(1)
    with pytest.raises(ValueError) as refused:
        export.export(model, tmp_path, "net", data.Task(data.REGRESSION), temperature=2.0)
    assert str(refused.value) == "Expected None for a regression. Received: temperature=2.0"
    with pytest.raises(ValueError, match=r"Received: temperature=0$"):
        export.export(model, tmp_path, "net", data.Task(data.CLASSES, 1), temperature=0)
    assert export.versions(tmp_path / "net") == []


def test_regression_has_no_classes_signature(tmp_path):
    task = data.Task(data.REGRESSION)
    loaded = tf.saved_model.load(str(export.export(logits_model(1), tmp_path, "net", task)))
    assert sorted(loaded.signatures) == ["serve", "serving_default"]


@pytest.mark.parametrize("kind", list(CASES))
def test_keras_tfsm_layer_loads_the_export_with_its_defaults(kind, tmp_path):
    """keras.layers.TFSMLayer(path) calls the "serve" endpoint unless told otherwise."""
    task, output_name, function = CASES[kind]
    model = logits_model(task.outputs)
    layer = keras.layers.TFSMLayer(str(export.export(model, tmp_path, "net", task)))
    x = np.random.default_rng(3).normal(size=(4, 5)).astype("float32")
    reloaded = keras.Sequential([keras.Input((5,)), layer])
    np.testing.assert_allclose(reloaded(x)[output_name], function(model(x)), rtol=1e-5, atol=1e-6)


def test_saved_model_cli_describes_the_export(tmp_path):
    path = export.export(logits_model(3), tmp_path, "net", data.Task(data.CLASSES, 3))
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run(
        [str(cli), "show", "--all", "--dir", str(path)], capture_output=True, text=True, check=True
    )
    text = result.stdout
    assert "signature_def['serving_default']" in text and "signature_def['classes']" in text
    assert "inputs['inputs'] tensor_info:" in text and "outputs['probabilities']" in text
    assert "shape: (-1, 5)" in text and "dtype: DT_FLOAT" in text and "dtype: DT_INT64" in text


def test_versions_count_up_and_ignore_other_folders(tmp_path):
    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    (tmp_path / "net" / "notes").mkdir(parents=True)
    (tmp_path / "net" / "7").mkdir()
    assert export.export(model, tmp_path, "net", task).name == "8"
    assert export.export(model, tmp_path, "net", task).name == "9"
    assert export.versions(tmp_path / "net") == [7, 8, 9]


def test_versions_are_the_folder_names_the_server_serves(tmp_path):
    """tfnn.versions.parse_version, as the server reads them: ASCII digits within int64."""
    for name in ("0", "0012", str(2**63 - 1), "\u0661\u0662", "\u00b2", "+3", str(2**63), "x"):
        (tmp_path / name).mkdir()
    (tmp_path / "15").write_text("a file, not a version folder")
    assert export.versions(tmp_path) == [0, 12, 2**63 - 1]


def test_a_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    def crash(obj, export_dir, *args, **kwargs):  # writes half a model, then fails
        pathlib.Path(export_dir).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(export_dir) / "saved_model.pb").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export(logits_model(3), tmp_path, "net", data.Task(data.CLASSES, 3))
    assert list((tmp_path / "net").iterdir()) == []


def test_export_loads_where_tfnn_is_not_importable(tmp_path):
    """The SavedModel needs neither tfnn's layers nor its losses to run."""
    task = data.Task(data.CLASSES, 3)
    model = logits_model(3)
    path = export.export(model, tmp_path, "net", task)
    x = np.random.default_rng(1).normal(size=(2, 5)).astype("float32")
    script = f"""
import json, sys
sys.modules["tfnn"] = None  # any import of tfnn now fails
import tensorflow as tf
served = tf.saved_model.load({str(path)!r}).signatures["serving_default"]
print(json.dumps(served(inputs=tf.constant({x.tolist()!r}))["probabilities"].numpy().tolist()))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    np.testing.assert_allclose(
        json.loads(result.stdout.splitlines()[-1]), tf.nn.softmax(model(x)), rtol=1e-5
    )


def test_a_deleted_version_number_is_never_issued_again(tmp_path):
    """A server that had loaded 3 must not be handed another model under 3."""
    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    for _ in range(3):
        export.export(model, tmp_path, "net", task)
    shutil.rmtree(tmp_path / "net" / "3")
    assert export.export(model, tmp_path, "net", task).name == "4"
    shutil.rmtree(tmp_path / "net" / "4")
    shutil.rmtree(tmp_path / "net" / "2")
    assert export.export(model, tmp_path, "net", task).name == "5"
    assert export.versions(tmp_path / "net") == [1, 5]


def test_staging_folders_of_killed_exports_are_removed(tmp_path):
    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    stale = tmp_path / "net" / ".staging-killed" / "model"
    stale.mkdir(parents=True)
    seen = []
    path = export.export(model, tmp_path, "net", task, on_reserved=seen.append)
    assert seen == [path] and path.name == "1"
    assert sorted(p.name for p in (tmp_path / "net").iterdir()) == [".highest_version", "1"]


def test_a_reserved_version_never_published_is_used_by_its_own_caller_only(tmp_path):
    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    reserved = []

    def stop(path):  # killed between the reservation and the rename
        reserved.append(path)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export.export(model, tmp_path, "net", task, on_reserved=stop)
    assert export.versions(tmp_path / "net") == [] and reserved[0].name == "1"
    assert export.export(model, tmp_path, "net", task, version=1).name == "1"
    with pytest.raises(KeyboardInterrupt):
        export.export(model, tmp_path, "net", task, on_reserved=stop)
    assert reserved[1].name == "2"
    assert export.export(model, tmp_path, "net", task).name == "3"  # another caller
    assert export.export(model, tmp_path, "net", task, version=2).name == "4"  # 2 is old news


def test_exporting_needs_no_data_sets():
    """Only the task kinds: a serving process that exports does not load TFDS (~0.3 s)."""
    assert "tensorflow_datasets" not in modules_imported_by("import tfnn.export")


@pytest.mark.parametrize("record", ["abc", "", "5\n7", "٣", "-4"])
def test_an_unreadable_highest_version_is_ignored_with_a_warning(tmp_path, record):
    """Catches `int(record.read_text())`: ValueError after training, on every rerun."""
    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    (tmp_path / "net" / "2").mkdir(parents=True)  # the versions on disk decide
    (tmp_path / "net" / export.HIGHEST).write_text(record)
    with pytest.warns(UserWarning, match=r"Ignoring .*\.highest_version"):
        assert export.export(model, tmp_path, "net", task).name == "3"
    assert (tmp_path / "net" / export.HIGHEST).read_text() == "3\n"  # repaired


@pytest.mark.parametrize("recorded", [" 7\n", "0007"])
def test_a_recorded_version_is_read_as_written(tmp_path, recorded):
    """Catches a reader that drops the record (the next version would be 1, reissued)."""
    (tmp_path / export.HIGHEST).write_text(recorded)
    assert export.highest_version(tmp_path) == 7


def test_the_next_version_may_be_int64s_maximum(tmp_path):
    """The limit: recorded 2^63 − 2 → version 2^63 − 1, which the server reads."""
    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / export.HIGHEST).write_text(f"{2**63 - 2}\n")
    path = export.export(model, tmp_path, "net", task)
    assert path.name == str(2**63 - 1) and export.versions(tmp_path / "net") == [2**63 - 1]


@pytest.mark.parametrize("recorded", [2**63 - 1, 99999999999999999999999])
def test_a_next_version_beyond_int64_is_refused_before_writing(tmp_path, monkeypatch, recorded):
    """Catches `highest_version(base) + 1` unchecked: version 2^63 (or 10^23), exported and
    never served, tfnn-serve refusing it."""
    monkeypatch.setattr(export, "write_saved_model", lambda *a: pytest.fail("written"))
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / export.HIGHEST).write_text(f"{recorded}\n")
    with pytest.raises(ValueError, match=f"Received: next version {recorded + 1} "):
        export.export(logits_model(3), tmp_path, "net", data.Task(data.CLASSES, 3))
    assert sorted(p.name for p in (tmp_path / "net").iterdir()) == [".highest_version"]
    assert (tmp_path / "net" / export.HIGHEST).read_text() == f"{recorded}\n"


def test_next_version_is_the_version_the_next_export_takes(tmp_path):
    """Catches next_version() not reading `model_name`'s folder under `export_dir` (1 for a
    model not exported yet, the record or the highest folder + 1 after), or not refusing a
    next version beyond int64 with the folder and its record named."""
    assert export.next_version(tmp_path, "net") == 1
    (tmp_path / "net" / "2").mkdir(parents=True)
    assert export.next_version(str(tmp_path), "net") == 3
    (tmp_path / "net" / export.HIGHEST).write_text("4\n")
    assert export.next_version(tmp_path, "net") == 5 and export.next_version(tmp_path, "o") == 1
    (tmp_path / "net" / export.HIGHEST).write_text(f"{2**63 - 1}\n")
    base = tmp_path / "net"
    with pytest.raises(ValueError) as refused:
        export.next_version(tmp_path, "net")
    assert str(refused.value) == (
        f"Expected a next version of at most {2**63 - 1} (TensorFlow Serving's int64). "
        f"Received: next version {2**63} of {base} (after {base / export.HIGHEST})"
    )


def test_a_record_of_at_most_1000_digits_is_read_and_a_longer_one_ignored(tmp_path):
    """Catches the record's length limit (`len(text) <= 1000`) moved either way, and the
    warning's text changed (its record, its first 40 characters)."""
    record = tmp_path / export.HIGHEST
    record.write_text("9" * 1000)
    assert export.highest_version(tmp_path) == int("9" * 1000)
    record.write_text("9" * 1001)
    with pytest.warns(UserWarning) as warned:
        assert export.highest_version(tmp_path) == 0
    assert [str(w.message) for w in warned] == [
        f"Ignoring {record}: {'9' * 40!r} is not a version number; "
        "the version folders decide the next version."
    ]


def test_a_record_that_is_not_utf8_is_ignored_with_a_warning(tmp_path):
    """Catches the record read without `errors="replace"`: UnicodeDecodeError, not the
    warning, for bytes that are not UTF-8."""
    (tmp_path / "4").mkdir()
    (tmp_path / export.HIGHEST).write_bytes(b"\xff\xfe7")
    with pytest.warns(UserWarning, match="is not a version number"):
        assert export.highest_version(tmp_path) == 4


def test_dropout_is_off_in_every_signature(tmp_path):
    """Catches the model or the serving model called with `training=True` in the export:
    its dropout would change every answer."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((5,)), Dense(64, "relu"), keras.layers.Dropout(0.5), Dense(3)], name="net"
    )
    loaded = tf.saved_model.load(
        str(export.export(model, tmp_path, "net", data.Task("classes", 3)))
    )
    x = tf.constant(np.random.default_rng(4).normal(size=(6, 5)).astype("float32"))
    p = tf.nn.softmax(model(x, training=False)).numpy()
    served = export.serving_model(model, data.Task("classes", 3))(x)["probabilities"]
    np.testing.assert_allclose(served, p, rtol=1e-5)
    for name in ("serving_default", "serve"):
        np.testing.assert_allclose(loaded.signatures[name](inputs=x)["probabilities"], p, rtol=1e-5)
    np.testing.assert_allclose(
        loaded.signatures["classes"](inputs=x)["scores"], p.max(1), rtol=1e-5
    )


def test_a_mixed_precision_model_is_served_in_float32(tmp_path):
    """Catches the output function or the temperature's rescaling in the global policy's
    compute dtype (float16 under mixed precision, where training exports) instead of
    float32."""
    task = data.Task(data.CLASSES, 3)
    x = tf.constant(np.random.default_rng(5).normal(size=(2, 5)).astype("float32"))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = logits_model(3)
        paths = [
            export.export(model, tmp_path, "net", task, temperature=temperature)
            for temperature in (None, 3.0)
        ]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    z = np.asarray(model(x), "float32")  # float16 logits
    for path, temperature in zip(paths, (1.0, 3.0), strict=True):
        p = tf.saved_model.load(str(path)).signatures["serving_default"](inputs=x)["probabilities"]
        assert p.dtype == tf.float32
        np.testing.assert_allclose(p, tf.nn.softmax(z / temperature), rtol=1e-5)


def test_an_export_holds_its_models_lock_and_stages_in_a_hidden_folder_beside_it(tmp_path):
    """Catches the export's flock not exclusive or not taken (another export could take the
    same number), not released after, and the staging folder elsewhere than a `.staging-*`
    folder in the model's folder (a reader could see it; a killed one would stay)."""
    base = tmp_path / "models" / "net"  # neither folder exists yet
    seen = {}

    def on_reserved(path):
        other = os.open(base, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(other)
        seen["staging"] = [p.name for p in base.iterdir() if p.name.startswith(".staging-")]

    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    assert (
        export.export(model, tmp_path / "models", "net", task, on_reserved=on_reserved).name == "1"
    )
    assert len(seen["staging"]) == 1
    other = os.open(base, os.O_RDONLY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released
    finally:
        os.close(other)


def test_the_space_an_export_needs_is_8_bytes_a_parameter_and_16_mb():
    """Catches required_bytes (train.py checks the export folder's free space with it) with
    another size per parameter or another allowance for the graph."""
    assert export.required_bytes(0) == 16_000_000
    assert export.required_bytes(1_000_000) == 24_000_000


def test_a_serving_model_and_its_output_layer_are_named_after_the_model_and_output():
    """Catches the serving model's name (`<model>_serving`) or its output layer's (the
    output's name) dropped for Keras's generated ones."""
    served = export.serving_model(logits_model(3), data.Task(data.CLASSES, 3))
    assert served.name == "net_serving" and served.layers[-1].name == "probabilities"
    served = export.serving_model(logits_model(1), data.Task(data.REGRESSION, 1))
    assert served.layers[-1].name == "values"


def test_a_serving_model_takes_inputs_by_name_and_any_temperature_above_0(tmp_path):
    """Catches the serving model's input named otherwise than `inputs` (the name its
    signatures and docs give), the temperature's lower limit other than 0 (open), and its
    Rescaling layer not named "temperature"."""
    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    x = np.random.default_rng(6).normal(size=(2, 5)).astype("float32")
    served = export.serving_model(model, task, temperature=0.001)
    assert served.inputs[0].name == "inputs"
    assert served.get_layer("temperature").scale == pytest.approx(1000.0)
    np.testing.assert_allclose(
        served(x)["probabilities"], tf.nn.softmax(model(x) / 0.001), rtol=1e-4
    )


class _TrainingByDefault(keras.layers.Layer):
    """Doubles its input unless called with training=False: its call's `training` defaults
    to True."""

    def call(self, x, training=True):
        return x * 2.0 if training else x


def test_a_layer_whose_training_defaults_to_true_is_served_in_inference_mode(tmp_path):
    """Catches serving_model calling the model without `training=False` (None, or dropped):
    a layer whose own default is training=True then ran in training mode, in the serving
    model called directly and in every signature."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), Dense(3), _TrainingByDefault()], name="net")
    task = data.Task(data.CLASSES, 3)
    x = np.random.default_rng(7).normal(size=(2, 5)).astype("float32")
    p = tf.nn.softmax(model(x, training=False)).numpy()
    np.testing.assert_allclose(export.serving_model(model, task)(x)["probabilities"], p, rtol=1e-5)
    loaded = tf.saved_model.load(str(export.export(model, tmp_path, "net", task)))
    for name in ("serving_default", "serve"):
        served = loaded.signatures[name](inputs=tf.constant(x))["probabilities"]
        np.testing.assert_allclose(served, p, rtol=1e-5)


def test_an_export_prints_nothing(tmp_path, capsys):
    """Catches the archive written with Keras's default verbose=True: a summary of every
    endpoint on stdout, in the middle of a training run's output."""
    export.export(logits_model(3), tmp_path, "net", data.Task(data.CLASSES, 3))
    assert capsys.readouterr().out == ""


def test_a_reserved_version_already_published_is_not_used_again(tmp_path):
    """Catches the check that the caller's reserved version was never published reading
    another folder: version 1, published, would be written again (the rename fails)."""
    model, task = logits_model(3), data.Task(data.CLASSES, 3)
    assert export.export(model, tmp_path, "net", task).name == "1"
    assert export.export(model, tmp_path, "net", task, version=1).name == "2"


def test_a_saved_model_written_ahead_is_published_as_it_is_and_moved(tmp_path):
    """`written`: the folder write_saved_model made is the version published (a file only
    it holds is there) and is gone after; the next version without it is written anew.
    Catches `written` ignored (the model written again) or copied and left behind."""
    task, output_name, function = CASES[data.CLASSES]
    model = logits_model(task.outputs)
    ahead = tmp_path / "ahead"
    export.write_saved_model(model, task, ahead)
    (ahead / "written-ahead").write_text("")
    path = export.export(model, tmp_path / "out", "net", task, written=ahead)
    assert path == tmp_path / "out" / "net" / "1"
    assert (path / "written-ahead").is_file() and not ahead.exists()
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = np.random.default_rng(1).normal(size=(4, 5)).astype("float32")
    np.testing.assert_allclose(
        served(inputs=tf.constant(x))[output_name], function(model(x)), rtol=1e-5, atol=1e-6
    )
    again = export.export(model, tmp_path / "out", "net", task)
    assert again.name == "2" and not (again / "written-ahead").exists()
