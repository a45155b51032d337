"""SavedModel export into TensorFlow Serving's layout: <export_dir>/<model_name>/<version>/.

The exported model takes `inputs` (float32, the data set's feature shape with
a leading batch axis) and returns what a client wants rather than logits
(docs/lecture.md A1, B2). Its signatures:

    serving_default   classes      {"probabilities": softmax(z)}   float32 [B, K]
     (also "serve",
      Keras's name)   binary       {"probabilities": σ(z)}         float32 [B, 1]
                      regression   {"values": z}                   float32 [B, 1]
    classes           classes      {"classes": argmax_k p_k,       int64   [B]
     (classifiers                   "scores": max_k p_k}           float32 [B]
      only)           binary       classes 1[p > 1/2], scores max(p, 1 − p)

always in float32, whatever the training precision, and with no tfnn code
needed to load or run it. A calibrated classifier (`temperature` T, fitted by
`tfnn.calibration`) serves softmax(z/T) and σ(z/T) under the same names: the
logits pass through a `keras.layers.Rescaling(1/T)` before the output function.

Versions are integers counting up from 1 and never reused for a model name:
the highest ever issued is kept in <model_name>/.highest_version (TF Serving
ignores names that are not integers), so a deleted version's number is not given to a new model a
server might mistake for it. A version is written into a hidden staging
folder beside the versions and renamed into place when complete, so a reader
(TensorFlow Serving polls the folder) never sees half a model; exports of one
model name take turns (an flock on its folder), and each removes the staging
folders that killed exports left.
"""

import fcntl as _fcntl
import os as _os
import pathlib as _pathlib
import shutil as _shutil
import tempfile as _tempfile
import warnings as _warnings

import keras as _keras
import tensorflow as _tf

from tfnn import files, layers, tasks, validation
from tfnn.versions import MAX_VERSION as _MAX_VERSION
from tfnn.versions import parse_version as _parse_version

__all__ = [
    "HIGHEST",
    "OUTPUTS",
    "export",
    "highest_version",
    "next_version",
    "required_bytes",
    "serving_model",
    "versions",
    "write_saved_model",
]

OUTPUTS = {
    tasks.CLASSES: ("probabilities", "softmax"),
    tasks.BINARY: ("probabilities", "sigmoid"),
    tasks.REGRESSION: ("values", "linear"),
}


def serving_model(model, task, temperature=None):
    """`model` (inputs → logits) followed by the task's output function, outputs named; with
    a `temperature` T the logits are divided by T first (a classifier's calibration)."""
    output_name, function = OUTPUTS[task.kind]
    inputs = _keras.Input(model.input_shape[1:], name="inputs")
    logits = model(inputs, training=False)
    if temperature is not None:
        if task.kind == tasks.REGRESSION:
            validation.fail("temperature", temperature, "None for a regression")
        temperature = validation.number("temperature", temperature, low=0, low_open=True)
        logits = _keras.layers.Rescaling(1.0 / temperature, dtype="float32", name="temperature")(
            logits
        )
    outputs = layers.Activation(function, dtype="float32", name=output_name)(logits)
    return _keras.Model(inputs, {output_name: outputs}, name=f"{model.name}_serving")


def versions(base):
    """The versions of the folders under `base`, ascending: the names `tfnn.versions`
    reads as versions, as the server does (other names are ignored)."""
    base = _pathlib.Path(base)
    if not base.is_dir():
        return []
    found = {_parse_version(p.name) for p in base.iterdir() if p.is_dir()}
    return sorted(found - {None})


def write_saved_model(model, task, path, temperature=None):
    """Writes `model` (inputs → logits) with the signatures above to `path`."""
    serving = serving_model(model, task, temperature)
    output_name = OUTPUTS[task.kind][0]
    # float32 (TensorSpec's default), named after the endpoints' argument: inputs
    spec = _tf.TensorSpec((None, *model.input_shape[1:]))
    archive = _keras.export.ExportArchive()
    archive.track(serving)

    def predict(inputs):  # serving_model calls the model with training=False
        return serving(inputs)

    # Keras's endpoint name (what Model.export writes and TFSMLayer calls by default);
    # ExportArchive also publishes the first endpoint as TF Serving's "serving_default".
    archive.add_endpoint("serve", predict, input_signature=[spec])
    if task.kind != tasks.REGRESSION:

        def classes(inputs):
            p = serving(inputs)[output_name]
            if task.kind == tasks.BINARY:
                p = _tf.concat([1.0 - p, p], axis=-1)  # the two classes' probabilities
            return {"classes": _tf.argmax(p, axis=-1), "scores": _tf.reduce_max(p, axis=-1)}

        archive.add_endpoint("classes", classes, input_signature=[spec])
    archive.write_out(str(path), verbose=False)


HIGHEST = ".highest_version"


def required_bytes(parameters):
    """A rough bound on an export's size: float32 weights twice (variables and the optimizer-
    free graph's constants are not both written, but checkpoints may be) and 16 MB of graph."""
    return 8 * parameters + 16_000_000


def _recorded(record):
    """The number in `record`, or 0 with a warning if it holds no number (the folders decide)."""
    text = record.read_text(errors="replace").strip()
    if text.isascii() and text.isdigit() and len(text) <= 1000:  # int() refuses 4,300 digits
        return int(text)
    _warnings.warn(
        f"Ignoring {record}: {text[:40]!r} is not a version number; "
        "the version folders decide the next version.",
        stacklevel=3,
    )
    return 0


def highest_version(base):
    """The highest version ever issued under `base`: the recorded one or the highest folder.

    A record that holds no number (empty, "abc", two lines) is ignored with a warning."""
    record = _pathlib.Path(base) / HIGHEST
    recorded = _recorded(record) if record.is_file() else 0
    return max([recorded, *versions(base)])


def _next_version(highest, base):
    """highest + 1, or ValueError if TensorFlow Serving could not read it (beyond int64)."""
    number = highest + 1
    if number > _MAX_VERSION:
        raise ValueError(
            f"Expected a next version of at most {_MAX_VERSION} (TensorFlow Serving's int64). "
            f"Received: next version {number} of {base} (after {base / HIGHEST})"
        )
    return number


def next_version(export_dir, model_name):
    """The version the next export of `model_name` takes; ValueError if TensorFlow Serving
    could not read it (beyond int64), so a caller can refuse a run before training it."""
    base = _pathlib.Path(export_dir) / model_name
    return _next_version(highest_version(base), base)  # 0 where nothing is there yet


def _reserve(base, number):
    """Records `number` as the highest version issued (tfnn.files: written whole)."""
    files.write_atomically(base / HIGHEST, f"{number}\n")


def export(
    model,
    export_dir,
    model_name,
    task,
    *,
    version=None,
    on_reserved=None,
    temperature=None,
    written=None,
):
    """Exports `model` as the next version of `model_name`; returns the version's path.

    `temperature`: T > 0 of a calibrated classifier (its probabilities are softmax(z/T)).

    `written`: a folder where `write_saved_model` already wrote `model` with this task and
    temperature (written ahead, while the caller waited for other work): it is moved into
    place instead of written again, and is gone afterwards.

    `version`: a number this caller reserved earlier and never published (an export
    killed before its rename); it is used again if no one reserved a later one.
    `on_reserved(path)` is called once the model is written and its version reserved,
    before it is renamed to `path`: a caller records the path there, so a rerun after a
    kill knows whether the version was published.
    """
    base = _pathlib.Path(export_dir) / model_name
    base.mkdir(parents=True, exist_ok=True)
    lock = _os.open(base, _os.O_RDONLY)
    try:
        _fcntl.flock(lock, _fcntl.LOCK_EX)  # held until this export is renamed into place
        for stale in base.glob(".staging-*"):  # left by a killed export: no one else writes
            _shutil.rmtree(stale, ignore_errors=True)
        highest = highest_version(base)
        unused = version == highest and not (base / str(version)).exists()
        number = version if unused else _next_version(highest, base)  # before writing
        staging = _pathlib.Path(_tempfile.mkdtemp(prefix=".staging-", dir=base))
        try:
            built = staging / "model"
            if written is None:
                write_saved_model(model, task, built, temperature)
            else:  # a copy where it lies on another file system than export_dir
                _shutil.move(written, built)
            if not unused:
                _reserve(base, number)
            target = base / str(number)
            if on_reserved:
                on_reserved(target)
            _os.rename(built, target)
            return target
        finally:
            _shutil.rmtree(staging, ignore_errors=True)
    finally:
        _os.close(lock)  # releases the flock
