"""The versions of one model under TensorFlow Serving's base path, chosen by a version policy.

    <base>/<version>/saved_model.pb     version: ASCII digits, at most 2^63 - 1 (tfnn.versions)

Other folder names are ignored, and a version folder without `saved_model.pb` is one still
being written. A `Policy` (policy.py) says which versions to serve.

`poll()` brings the served set in line with the folder: it loads wanted versions, reloads a
version whose folder was replaced (another inode or modification time), unloads versions that
are no longer wanted or whose folder is gone (a lower version then takes the place under
latest:N), and retries a version that failed to load after 1, 2, 4, … seconds (at most
`max_retry_seconds`; at once if its folder changes). A version is loaded before it replaces
another, so requests never wait for a load. Every load, unload and failure is logged.
"""

import dataclasses
import logging
import os
import pathlib
import threading
import time

import tensorflow as tf
from google.protobuf import json_format, message
from tensorflow.core.protobuf import saved_model_pb2

from tfnn.serving.policy import Policy
from tfnn.versions import parse_version

log = logging.getLogger("tfnn.serving")

# TensorFlow's canonical error codes by number, as TensorFlow Serving names them in a status.
_CODE_NAMES = {c: n for n, c in vars(tf.errors).items() if n.isupper() and isinstance(c, int)}


class NotFound(LookupError):
    """No such model or version (HTTP 404)."""


def _fingerprint(folder):
    """What changes when a version folder is replaced: inodes and modification times."""
    pb = os.stat(folder / "saved_model.pb")
    here = os.stat(folder)
    return (here.st_ino, here.st_mtime_ns, pb.st_ino, pb.st_mtime_ns, pb.st_size)


class LoadError(Exception):
    """A version that did not load, with TensorFlow Serving's error code (e.g. DATA_LOSS)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Servable:
    """One loaded version: its signatures, their input specs and SignatureDefs.

    Raises LoadError when the SavedModel cannot be read (DATA_LOSS for a saved_model.pb that
    does not parse, TensorFlow's error code otherwise).
    """

    def __init__(self, path, version):
        self.path = pathlib.Path(path)
        self.version = version
        self.fingerprint = _fingerprint(self.path)
        self.signature_defs = _signature_defs(self.path)
        try:
            self.loaded = tf.saved_model.load(str(self.path))
        except tf.errors.OpError as error:
            text = error.message.replace(f"{self.path}{os.sep}", "")  # paths within the version
            raise LoadError(_CODE_NAMES.get(error.error_code, "UNKNOWN"), text) from None
        except Exception as error:  # noqa: BLE001 — any reason is reported, not raised
            raise LoadError("UNKNOWN", f"{type(error).__name__}: {error}") from None
        self.signatures = dict(self.loaded.signatures)
        self.inputs = {
            name: function.structured_input_signature[1]
            for name, function in self.signatures.items()
        }

    def run(self, signature_name, arrays):
        """The signature's outputs (name → NumPy array) on `arrays` (name → NumPy array)."""
        tensors = {name: tf.constant(value) for name, value in arrays.items()}
        outputs = self.signatures[signature_name](**tensors)
        return {name: value.numpy() for name, value in outputs.items()}


def _signature_defs(path):
    """The SignatureDefs of the SavedModel as TensorFlow Serving prints them in /metadata."""
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((pathlib.Path(path) / "saved_model.pb").read_bytes())
        signature_defs = proto.meta_graphs[0].signature_def
    except (message.DecodeError, IndexError):
        raise LoadError("DATA_LOSS", "Can't parse saved_model.pb as binary proto") from None
    return {
        name: json_format.MessageToDict(
            signature_defs[name],
            always_print_fields_with_no_presence=True,
            preserving_proto_field_name=True,
        )
        for name in sorted(signature_defs)
    }


@dataclasses.dataclass
class _Failure:
    """A version that did not load: why, how often, and when to try again."""

    error: LoadError
    fingerprint: tuple
    attempts: int
    retry_at: float


class ModelRepository:
    """The versions of `name` under `base_path` that `policy` wants, loaded and kept current.

    Args:
        name: the model's name in request URLs.
        base_path: the folder holding the integer version folders.
        policy: a `Policy` (default: the latest version).
        max_retry_seconds: the longest wait before loading a failed version again.
        clock: seconds as a float, for the retry schedule (`time.monotonic`).
    """

    def __init__(self, name, base_path, policy=None, max_retry_seconds=300.0, clock=time.monotonic):
        self.name = name
        self.base_path = pathlib.Path(base_path)
        self.policy = policy or Policy()
        self.max_retry_seconds = max_retry_seconds
        self._clock = clock
        self._served = {}  # version → Servable; replaced whole, never mutated
        self._failures = {}  # version → _Failure
        self._ended = set()  # versions served once (END in status() when no longer served)
        self._poll_lock = threading.Lock()
        self.poll()
        if not self._served:
            broken = "; ".join(
                f"version {v}: {f.error.code}: {f.error}" for v, f in sorted(self._failures.items())
            )
            raise ValueError(
                f"Expected a loadable version folder <integer>/saved_model.pb in "
                f"--model_base_path for policy {self.policy.kind}. Received: "
                f"model_base_path={str(self.base_path)!r}" + (f" ({broken})" if broken else "")
            )

    def _complete(self):
        """{version: folder} of the version folders holding a saved_model.pb, highest first;
        of two names of one version ("12", "0012"), the shorter."""
        if not self.base_path.is_dir():
            return {}
        found = {}
        for path in sorted(self.base_path.iterdir(), key=lambda p: (len(p.name), p.name)):
            version = parse_version(path.name)
            if version is not None and (path / "saved_model.pb").is_file():
                found.setdefault(version, path)
        return dict(sorted(found.items(), reverse=True))

    def poll(self):
        """Loads, reloads and unloads versions as the policy and the folder say; returns the
        served versions, highest first."""
        with self._poll_lock:
            served = dict(self._served)
            complete = self._complete()
            for version in set(self._failures) - set(complete):  # folder gone: stop retrying
                del self._failures[version]
            wanted = {}
            for version in self.policy.candidates(list(complete)):
                if len(wanted) >= self.policy.most:
                    break
                servable = self._current(version, complete[version], served.get(version))
                if servable is not None:
                    wanted[version] = servable
            self._served = wanted
            for version, servable in served.items():
                if wanted.get(version) is not servable:
                    reason = "replaced" if version in wanted else "no longer wanted or removed"
                    log.info("unloaded %s version %d (%s)", self.name, version, reason)
                    if version not in wanted:
                        self._ended.add(version)
            return sorted(wanted, reverse=True)

    def _current(self, version, folder, servable):
        """The servable to serve for `version` (in `folder`): the loaded one if its folder is
        unchanged, else a fresh load (None if it fails or waits for its retry)."""
        try:
            fingerprint = _fingerprint(folder)
        except OSError:  # removed since listed
            return None
        if servable is not None and servable.fingerprint == fingerprint:
            return servable
        failure = self._failures.get(version)
        now = self._clock()
        if failure and failure.fingerprint == fingerprint and now < failure.retry_at:
            return None
        try:
            loaded = Servable(folder, version)
        except OSError:  # removed while loading
            return None
        except LoadError as error:
            attempts = failure.attempts + 1 if failure and failure.fingerprint == fingerprint else 1
            wait = min(2.0 ** (attempts - 1), self.max_retry_seconds)
            self._failures[version] = _Failure(error, fingerprint, attempts, now + wait)
            log.warning(
                "%s version %d failed to load (%s: %s); next attempt in %g s",
                self.name,
                version,
                error.code,
                error,
                wait,
            )
            return None
        self._failures.pop(version, None)
        log.info("%s %s version %d", "reloaded" if servable else "loaded", self.name, version)
        return loaded

    def get(self, name, version=None):
        """The servable for a request on `name` (and `version`, an int, if given)."""
        served = self._served
        if name != self.name or not served:
            raise NotFound(f"Servable not found for request: Latest({name})")
        if version is None:
            return served[max(served)]
        if version not in served:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return served[version]

    def status(self, name, version=None):
        """TensorFlow Serving's model_version_status entries, highest version first:
        AVAILABLE for served versions, END with the load error for failed ones (also a served
        version unloaded because its replaced folder did not load), END with OK for versions
        unloaded since."""
        if name != self.name:
            raise NotFound(f"Could not find any versions of model {name}")
        entries = {v: ("AVAILABLE", "OK", "") for v in self._served}
        for v, failure in list(self._failures.items()):  # a failure is newer than an unload
            entries.setdefault(v, ("END", failure.error.code, str(failure.error)))
        for v in set(self._ended):
            entries.setdefault(v, ("END", "OK", ""))
        if version is not None:
            if version not in entries:
                raise NotFound(f"Could not find version {version} of model {name}")
            entries = {version: entries[version]}
        return [
            {
                "version": str(v),
                "state": state,
                "status": {"error_code": code, "error_message": text},
            }
            for v, (state, code, text) in sorted(entries.items(), reverse=True)
        ]
