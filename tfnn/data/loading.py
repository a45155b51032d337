"""Data sets as splits: `load` reads a TFDS data set (embedded, catalog or image folder) and
returns its train, validation and test splits.

`load(name, seed=…)` reads any TFDS data set: tfnn's embedded ones (see
`tfnn.data.embedded`, no network needed), a catalog one by name (`mnist`,
`cifar10`, …, downloaded by TFDS where the network allows; refused at once
where it cannot), or a folder of images (`tfnn.data.folder`). It returns the
train, validation and test splits (docs/lecture.md A5):

- a set whose float32 copy fits in `IN_MEMORY_BYTES` comes as `Arrays` (numpy),
  the validation split carved out of TFDS's train split by a seeded permutation;
- a larger one comes as `Stream`s read from TFDS's files batch by batch, the
  validation split a seeded block of TFDS's train split;
- test is TFDS's test split, for the one final evaluation.

Both kinds of split answer the same questions (`tfnn.data.splits`). The label
feature decides the task (A1): a real scalar is regression (no output function,
MSE); two classes are a binary outcome (σ, sigmoid NLL); more classes are a
categorical outcome (softmax, softmax NLL).
"""

import contextlib as _contextlib
import dataclasses as _dataclasses
import math as _math
import os as _os
import random as _random
import re as _re
import socket as _socket

import numpy as _np
import tensorflow as _tf
import tensorflow_datasets as _tfds

from tfnn import files as _files
from tfnn import names, tasks, validation
from tfnn.data import embedded, folder, pipeline, splits

__all__ = [
    "DOWNLOAD_HOST",
    "DOWNLOAD_PROBE_SECONDS",
    "EMBEDDED",
    "IN_MEMORY_BYTES",
    "PREPARE_LOCK",
    "DataSet",
    "load",
    "task_of",
]

EMBEDDED = embedded.NAMES


@_dataclasses.dataclass(frozen=True)
class DataSet:
    """A data set's name, task and splits (each an `Arrays` or a `Stream`)."""

    name: str
    task: tasks.Task
    train: object
    validation: object
    test: object

    @property
    def input_shape(self):
        """The shape of one example's inputs."""
        return self.train.shape


# Data sets whose float32 copy of every split is at most this many bytes are read into
# memory once (the fastest path for small sets); larger ones are streamed from TFDS's files.
IN_MEMORY_BYTES = 256 * 2**20


def task_of(label_feature):
    """The task a TFDS label feature describes (A1)."""
    if isinstance(label_feature, _tfds.features.ClassLabel):
        classes = label_feature.num_classes
        return tasks.Task(tasks.BINARY, 2) if classes == 2 else tasks.Task(tasks.CLASSES, classes)
    if _tf.as_dtype(label_feature.dtype).is_floating and label_feature.shape == ():
        return tasks.Task(tasks.REGRESSION)
    raise ValueError(
        f"Expected a ClassLabel or a float scalar label. Received: label feature {label_feature!r}"
    )


def load(name, *, seed, validation_fraction=0.1, data_dir=None, in_memory_bytes=None):
    """The train / validation / test splits of a TFDS data set: numpy arrays when the
    float32 copy of all splits fits in `in_memory_bytes` (`Arrays`), else `Stream`s read from TFDS's
    files batch by batch.

    The validation split of an in-memory set is a seeded permutation's first
    share of TFDS's train split. A streamed set's is one contiguous block of
    TFDS's train split, at an offset drawn from the seed (TFDS's split API,
    e.g. "train[3000:9000]"; TFDS stores examples shuffled by a hash of their
    keys at preparation, so the block is a fixed random-like subset); both fix
    the split by the seed, but they choose different examples for one seed.

    Args:
        name: an embedded name (`EMBEDDED`) or any TFDS catalog name.
        seed: fixes which training examples form the validation split.
        validation_fraction: the share of TFDS's train split held out, in (0, 1).
        data_dir: TFDS's data folder (default: TFDS's, ~/tensorflow_datasets).
        in_memory_bytes: the size threshold of the in-memory path (None: `IN_MEMORY_BYTES`).
    """
    validation.number(
        "validation_fraction", validation_fraction, low=0, high=1, low_open=True, high_open=True
    )
    if names.is_dataset_path(name):
        builder = folder.builder(name)
    else:
        builder = _catalog_builder(name, data_dir)
    features_key, label_key = builder.info.supervised_keys
    task = task_of(builder.info.features[label_key])
    shape = tuple(builder.info.features[features_key].shape)
    limit = IN_MEMORY_BYTES if in_memory_bytes is None else in_memory_bytes
    # TFDS's split sizes; none recorded (as under tfds.testing.mock_data): read into memory.
    sizes = {}
    if builder.info.splits:
        sizes = {split: builder.info.splits[split].num_examples for split in ("train", "test")}
    if sizes and sum(sizes.values()) * _math.prod(shape) * 4 > limit:
        return _streamed(name, builder, task, shape, sizes, seed, validation_fraction)

    def split(split_name):
        dataset = builder.as_dataset(split=split_name, as_supervised=True).batch(4096)
        parts = list(_tfds.as_numpy(dataset))
        x, y = (_np.concatenate([part[i] for part in parts]) for i in (0, 1))
        return tuple(array.numpy() for array in pipeline.converted(x, y, task))

    x, y = split("train")
    order = _np.random.default_rng(seed).permutation(len(y))
    n_validation = _held_out(len(y), validation_fraction)
    held_out, train = order[:n_validation], order[n_validation:]
    return DataSet(
        name=name,
        task=task,
        train=splits.Arrays(x[train], y[train]),
        validation=splits.Arrays(x[held_out], y[held_out]),
        test=splits.Arrays(*split("test")),
    )


def _held_out(n, validation_fraction):
    """How many of the train split's `n` examples the validation split takes (at least one);
    a fraction that would leave none to train on is refused."""
    n_validation = max(1, int(round(validation_fraction * n)))
    if n_validation >= n:
        raise ValueError(
            f"Expected a validation_fraction that leaves examples to train on: it holds out "
            f"{n_validation} of the train split's {n} examples, so training keeps "
            f"{n - n_validation} (at least 1 is needed). "
            f"Received: validation_fraction={validation_fraction!r}"
        )
    return n_validation


def _streamed(name, builder, task, shape, sizes, seed, validation_fraction):
    n = sizes["train"]
    n_validation = _held_out(n, validation_fraction)
    start = _random.Random(seed).randrange(n - n_validation + 1)
    stop = start + n_validation
    if isinstance(builder, _tfds.folder_dataset.ImageFolder):  # no sub-split API

        def piece(a, b):
            return ("train", a, b)

        test = (("test", 0, sizes["test"]),)
    else:

        def piece(a, b):
            return f"train[{a}:{b}]"

        test = ("test",)
    train = tuple(piece(a, b) for a, b in ((0, start), (stop, n)) if b > a)

    def stream(pieces, size):
        return splits.Stream(builder=builder, pieces=pieces, size=size, shape=shape, task=task)

    return DataSet(
        name=name,
        task=task,
        train=stream(train, n - n_validation),
        validation=stream((piece(start, stop),), n_validation),
        test=stream(test, sizes["test"]),
    )


# Where TFDS fetches prepared catalog data sets first; a machine that cannot reach it
# would retry for minutes before failing.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
DOWNLOAD_PROBE_SECONDS = 5.0
PREPARE_LOCK = ".tfnn-prepare.lock"  # in the data folder, held while a set is prepared


# "namespace:name" (huggingface:mnist); "name:1.2.*" is a catalog name with its version.
_COMMUNITY = _re.compile(r"[A-Za-z_][\w-]*:[A-Za-z_]")


def _unknown(name, why):
    """The one-line refusal of a --dataset that is no data set tfnn reads."""
    return ValueError(
        f"Unknown dataset {name!r} ({why}): expected one of {', '.join(EMBEDDED)}, a TFDS "
        f"catalog name (name[/config][:version]) or an image folder path. Received: "
        f"dataset={name!r}"
    )


def _catalog_builder(name, data_dir):
    """The prepared TFDS builder of an embedded or catalog name; a catalog data set that
    is not in `data_dir` and cannot be downloaded is refused at once, in one line."""
    if _COMMUNITY.match(name):  # TFDS would fetch it from a hub (and needs its client)
        raise _unknown(name, "a community data set of another hub")
    try:
        builder = _tfds.builder(name, data_dir=data_dir)
    except _tfds.core.registered.DatasetNotFoundError as error:
        raise _unknown(name, "not in TFDS's catalog") from error
    except ValueError as error:  # a malformed name: TFDS's first line says why
        raise _unknown(name, str(error).strip().splitlines()[0].rstrip(".")) from None
    if name not in EMBEDDED and not _prepared(builder):
        try:
            _socket.create_connection(DOWNLOAD_HOST, timeout=DOWNLOAD_PROBE_SECONDS).close()
        except OSError as error:
            raise ValueError(
                f"Expected dataset {name!r} in data folder {builder.data_dir_root} or a network "
                f"to download it: {DOWNLOAD_HOST[0]} is unreachable ({error}). Received: "
                f"dataset={name!r}"
            ) from None
    with _preparing(builder.data_dir_root):
        # Built again under the lock: it then reads what another process prepared meanwhile.
        builder = _tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare()
    return builder


@_contextlib.contextmanager
def _preparing(data_dir):
    """Holds an exclusive lock on `data_dir`'s PREPARE_LOCK file: one process at a time
    prepares a data set in a local data folder (two at once both write it, and the second's
    rename fails); the next one, given the lock, finds it prepared and only reads it."""
    if "://" in str(data_dir):  # a remote data folder (gs://…) has no file locks
        yield
        return
    _os.makedirs(data_dir, exist_ok=True)
    with _files.locked(_os.path.join(data_dir, PREPARE_LOCK)):
        yield


def _download_and_prepare():
    # From the class's namespace: TFDS wraps the method in a descriptor that makes a new
    # object on every attribute access.
    return vars(_tfds.core.DatasetBuilder)["download_and_prepare"]


_DOWNLOAD_AND_PREPARE = _download_and_prepare()


def _prepared(builder):
    """Whether the builder needs no download: its files are in its data folder, or TFDS's
    download is replaced (as by `tfds.testing.mock_data`)."""
    replaced = _download_and_prepare() is not _DOWNLOAD_AND_PREPARE
    return replaced or builder.is_prepared()
