"""SavedModel export into TensorFlow Serving's layout: <export_dir>/<model_name>/<version>/.

The exported model takes `inputs` (float32, the data set's feature shape with
a leading batch axis) and returns what a client wants rather than logits
(LECTURE.md A1, B2):

    classes      {"probabilities": softmax(z)}   [B, K]
    binary       {"probabilities": σ(z)}         [B, 1]
    regression   {"values": z}                   [B, 1]

always in float32, whatever the training precision. Versions are integers
counting up from 1. A version is written into a hidden staging folder beside
the versions and renamed into place when complete, so a reader (TensorFlow
Serving polls the folder) never sees half a model, and a crash leaves none.
"""

import errno
import os
import pathlib
import shutil
import tempfile

import keras

from tfnn.data import BINARY, CLASSES, REGRESSION
from tfnn.layers import Activation

OUTPUTS = {
    CLASSES: ("probabilities", "softmax"),
    BINARY: ("probabilities", "sigmoid"),
    REGRESSION: ("values", "linear"),
}


def serving_model(model, task):
    """`model` (inputs → logits) followed by the task's output function, outputs named."""
    output_name, function = OUTPUTS[task.kind]
    inputs = keras.Input(model.input_shape[1:], name="inputs")
    outputs = Activation(function, dtype="float32", name=output_name)(model(inputs, training=False))
    return keras.Model(inputs, {output_name: outputs}, name=f"{model.name}_serving")


def versions(base):
    """The integer version folders under `base`, ascending (other names are ignored)."""
    base = pathlib.Path(base)
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit())


def export(model, export_dir, model_name, task):
    """Exports `model` as the next version of `model_name`; returns the version's path."""
    base = pathlib.Path(export_dir) / model_name
    base.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".staging-", dir=base))
    try:
        built = staging / "model"
        serving_model(model, task).export(str(built), format="tf_saved_model", verbose=False)
        while True:
            target = base / str((versions(base) or [0])[-1] + 1)
            try:
                os.rename(built, target)  # atomic; fails if another writer took the number
                return target
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
