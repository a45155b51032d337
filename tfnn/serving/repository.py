"""The versions of one model under TensorFlow Serving's base path, loaded and kept current.

`<base>/<version>/saved_model.pb` with integer version folders; other names
are ignored and the highest version is served (TensorFlow Serving's default
"latest" policy). `poll()` loads a newer version when one appears and then
drops the older one, so requests never wait for a load.
"""

import pathlib
import threading

import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from tfnn.export import versions


class NotFound(LookupError):
    """No such model or version (HTTP 404)."""


class Servable:
    """One loaded version: its signatures and their metadata."""

    def __init__(self, path, version):
        self.path = pathlib.Path(path)
        self.version = version
        self.loaded = tf.saved_model.load(str(self.path))
        self.signatures = dict(self.loaded.signatures)
        self.inputs = {
            name: function.structured_input_signature[1]
            for name, function in self.signatures.items()
        }
        self.signature_defs = _signature_defs(self.path)


def _signature_defs(path):
    """The SignatureDefs of the SavedModel as TensorFlow Serving prints them in /metadata."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(path) / "saved_model.pb").read_bytes())
    signature_defs = proto.meta_graphs[0].signature_def
    return {
        name: json_format.MessageToDict(
            signature_defs[name],
            always_print_fields_with_no_presence=True,
            preserving_proto_field_name=True,
        )
        for name in sorted(signature_defs)
    }


class ModelRepository:
    """Serves the highest version of `name` found under `base_path`.

    Args:
        name: the model's name in request URLs.
        base_path: the folder holding the integer version folders.
    """

    def __init__(self, name, base_path):
        self.name = name
        self.base_path = pathlib.Path(base_path)
        self._servable = None
        self._lock = threading.Lock()
        if not self.poll():
            raise ValueError(
                f"Expected at least one version folder <integer>/saved_model.pb in "
                f"--model_base_path. Received: model_base_path={str(self.base_path)!r}"
            )

    def poll(self):
        """Loads the highest version if it is newer than the served one; returns whether
        a version is being served."""
        found = [v for v in versions(self.base_path) if self._complete(v)]
        current = self._servable
        if found and (current is None or found[-1] > current.version):
            servable = Servable(self.base_path / str(found[-1]), found[-1])
            with self._lock:
                self._servable = servable
        return self._servable is not None

    def _complete(self, version):
        return (self.base_path / str(version) / "saved_model.pb").is_file()

    def get(self, name, version=None):
        """The servable for a request on `name` (and `version`, an int, if given)."""
        with self._lock:
            servable = self._servable
        if name != self.name or servable is None:
            raise NotFound(f"Servable not found for request: Latest({name})")
        if version is not None and version != servable.version:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return servable
