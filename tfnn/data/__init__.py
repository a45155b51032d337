"""Data sets as numpy splits or streamed TFDS splits, and the tf.data pipelines that feed
them to Model.fit.

`load(name, seed=…)` reads any TFDS data set: tfnn's embedded ones (see
`tfnn.data.embedded`, no network needed), a catalog one by name (`mnist`,
`cifar10`, …, downloaded by TFDS where the network allows; refused at once
where it cannot), or a folder of images (`tfnn.data.folder`). It returns the
train, validation and test splits (docs/lecture.md A5):

- a set whose float32 copy fits in `IN_MEMORY_BYTES` comes as numpy arrays, the
  validation split carved out of TFDS's train split by a seeded permutation;
- a larger one comes as `Stream`s read from TFDS's files batch by batch
  (`stream_batches`), the validation split a seeded block of TFDS's train split;
- test is TFDS's test split, for the one final evaluation.

The label feature decides the task (A1): a real scalar is regression (no
output function, MSE); two classes are a binary outcome (σ, sigmoid NLL);
more classes are a categorical outcome (softmax, softmax NLL).
"""

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import random
import socket

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnn import names, validation
from tfnn.data import embedded, folder
from tfnn.tasks import BINARY, CLASSES, REGRESSION, Task

EMBEDDED = embedded.NAMES

@dataclasses.dataclass(frozen=True)
class DataSet:
    name: str
    task: Task
    train: tuple
    validation: tuple
    test: tuple

    @property
    def input_shape(self):
        if isinstance(self.train, Stream):
            return self.train.shape
        return self.train[0].shape[1:]


# Data sets whose float32 copy of every split is at most this many bytes are read into
# memory once (the fastest path for small sets); larger ones are streamed from TFDS's files.
IN_MEMORY_BYTES = 256 * 2**20
SHUFFLE_BUFFER = 10_000  # examples; a streamed split is shuffled by files, then in this buffer


@dataclasses.dataclass(frozen=True)
class Stream:
    """A split read from TFDS's files as it is consumed, never held in memory whole.

    `pieces` are TFDS split strings (e.g. "train[:300]", "train[400:]") or, for an
    image folder, which has no sub-split API, (split, start, stop) triples.
    """

    builder: object
    pieces: tuple
    size: int
    shape: tuple
    task: Task

    def __len__(self):
        return self.size

    @property
    def files(self):
        """How many files back the split (TFDS's shards, or the images of a folder)."""
        info = self.builder.info.splits
        return sum(info[p if isinstance(p, str) else p[0]].num_shards for p in self.pieces)

    @property
    def shardable_files(self):
        """How many files tf.data's auto-sharder can hand out to workers: the files of a split
        read in one TFDS read; 0 for a split read in several pieces one after another (the
        auto-sharder sees only the first piece's files and fails) or an image-folder slice."""
        if len(self.pieces) == 1 and isinstance(self.pieces[0], str):
            return self.files
        return 0

    def examples(self, *, shuffle_files=False, seed=None):
        """The split's (x, y) examples as stored (decoded, not yet converted)."""
        datasets = []
        for piece in self.pieces:
            if isinstance(piece, str):
                config = tfds.ReadConfig(shuffle_seed=seed)
                datasets.append(
                    self.builder.as_dataset(
                        split=piece,
                        as_supervised=True,
                        shuffle_files=shuffle_files,
                        read_config=config,
                    )
                )
            else:
                split, start, stop = piece
                whole = self.builder.as_dataset(split=split, as_supervised=True)
                datasets.append(whole.skip(start).take(stop - start))
        dataset = datasets[0]
        for more in datasets[1:]:
            dataset = dataset.concatenate(more)
        return dataset


def task_of(label_feature):
    """The task a TFDS label feature describes (A1)."""
    if isinstance(label_feature, tfds.features.ClassLabel):
        classes = label_feature.num_classes
        return Task(BINARY, 2) if classes == 2 else Task(CLASSES, classes)
    if tf.as_dtype(label_feature.dtype).is_floating and label_feature.shape == ():
        return Task(REGRESSION)
    raise ValueError(
        f"Expected a ClassLabel or a float scalar label. Received: label feature {label_feature!r}"
    )


def load(name, *, seed, validation_fraction=0.1, data_dir=None, in_memory_bytes=None):
    """The train / validation / test splits of a TFDS data set: numpy arrays when the
    float32 copy of all splits fits in `in_memory_bytes`, else `Stream`s read from TFDS's
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
    if sizes and sum(sizes.values()) * math.prod(shape) * 4 > limit:
        return _streamed(name, builder, task, shape, sizes, seed, validation_fraction)

    def split(split_name):
        dataset = builder.as_dataset(split=split_name, as_supervised=True).batch(4096)
        parts = list(tfds.as_numpy(dataset))
        x, y = (np.concatenate([part[i] for part in parts]) for i in (0, 1))
        return tuple(array.numpy() for array in _converted(x, y, task))

    x, y = split("train")
    order = np.random.default_rng(seed).permutation(len(y))
    n_validation = max(1, int(round(validation_fraction * len(y))))
    held_out, train = order[:n_validation], order[n_validation:]
    return DataSet(
        name=name,
        task=task,
        train=(x[train], y[train]),
        validation=(x[held_out], y[held_out]),
        test=split("test"),
    )


def _streamed(name, builder, task, shape, sizes, seed, validation_fraction):
    n = sizes["train"]
    n_validation = max(1, int(round(validation_fraction * n)))
    start = random.Random(seed).randrange(n - n_validation + 1)
    stop = start + n_validation
    if isinstance(builder, tfds.folder_dataset.ImageFolder):  # no sub-split API

        def piece(a, b):
            return ("train", a, b)

        test = (("test", 0, sizes["test"]),)
    else:

        def piece(a, b):
            return f"train[{a}:{b}]"

        test = ("test",)
    train = tuple(piece(a, b) for a, b in ((0, start), (stop, n)) if b > a)

    def stream(pieces, size):
        return Stream(builder=builder, pieces=pieces, size=size, shape=shape, task=task)

    return DataSet(
        name=name,
        task=task,
        train=stream(train, n - n_validation),
        validation=stream((piece(start, stop),), n_validation),
        test=stream(test, sizes["test"]),
    )


def size(split):
    """The number of examples of a split: (x, y) arrays or a `Stream`."""
    return len(split) if isinstance(split, Stream) else len(split[1])


def workers():
    """How many workers TF_CONFIG names (1 without a cluster)."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return max(1, len(cluster.get("worker", ())) + len(cluster.get("chief", ())))


def shard_policy(files, n_workers):
    """Multi-worker sharding of a split with `files` shardable files (`Stream.shardable_files`):
    by files when every worker gets at least one, else by data."""
    policy = tf.data.experimental.AutoShardPolicy
    return policy.FILE if files >= n_workers else policy.DATA


def _converted(x, y, task):
    """Examples as the model takes them: float32 inputs (uint8 images in [0, 1]); float32
    labels for a regression, int64 class indices otherwise."""
    x = tf.cast(x, tf.float32) / 255.0 if x.dtype == tf.uint8 else tf.cast(x, tf.float32)
    return x, tf.cast(y, tf.float32 if task.kind == REGRESSION else tf.int64)


def stream_batches(
    stream, batch_size, *, shuffle_seed=None, bootstrap_seed=None, repeat=False, one_hot=None
):
    """`batches` of a `Stream`: read from TFDS's files (interleaved, shuffled by file and
    in a buffer of `SHUFFLE_BUFFER` when seeded), batched, then decoded to float32.

    With `bootstrap_seed`, each example is repeated k ~ Poisson(1) times, k a
    stateless function of (seed, its position in the split): the Poisson
    bootstrap, whose counts approach the multinomial(n, 1/n) counts of a
    bootstrap sample as n grows (Oza & Russell, "Online bagging and boosting",
    2001; Hanley & MacGibbon, 2006); the sample's size is n on average rather
    than exactly n. Files are then read in their stored order, so positions,
    and the sample, are fixed by the seed; the buffer still reshuffles every
    epoch. With `one_hot`, labels become one-hot rows of that many classes.
    """
    examples = stream.examples(
        shuffle_files=shuffle_seed is not None and bootstrap_seed is None, seed=shuffle_seed
    )
    if bootstrap_seed is not None:

        def repeats(position, example):
            key = tf.stack([tf.constant(bootstrap_seed, tf.int64), position])
            k = tf.random.stateless_poisson([], key, 1.0, dtype=tf.int64)
            return tf.data.Dataset.from_tensors(example).repeat(k)

        examples = examples.enumerate().flat_map(repeats)
    if shuffle_seed is not None:
        examples = examples.shuffle(
            SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True
        )
    dataset = examples.batch(batch_size)
    task = stream.task

    def convert(x, y):
        x, y = _converted(x, y, task)
        return (x, tf.one_hot(y, one_hot)) if one_hot else (x, y)

    dataset = dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        dataset = dataset.repeat()
    options = tf.data.Options()
    policy = shard_policy(stream.shardable_files, workers())
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


# Where TFDS fetches prepared catalog data sets first; a machine that cannot reach it
# would retry for minutes before failing.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
DOWNLOAD_PROBE_SECONDS = 5.0
PREPARE_LOCK = ".tfnn-prepare.lock"  # in the data folder, held while a set is prepared


def _catalog_builder(name, data_dir):
    """The prepared TFDS builder of an embedded or catalog name; a catalog data set that
    is not in `data_dir` and cannot be downloaded is refused at once, in one line."""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise ValueError(
            f"Unknown dataset {name!r}: expected one of {', '.join(EMBEDDED)}, "
            "a TFDS catalog name or an image folder"
        ) from error
    if name not in EMBEDDED and not _prepared(builder):
        try:
            socket.create_connection(DOWNLOAD_HOST, timeout=DOWNLOAD_PROBE_SECONDS).close()
        except OSError as error:
            raise ValueError(
                f"Expected dataset {name!r} in data folder {builder.data_dir_root} or a network "
                f"to download it: {DOWNLOAD_HOST[0]} is unreachable ({error}). Received: "
                f"dataset={name!r}"
            ) from None
    with _preparing(builder.data_dir_root):
        # Built again under the lock: it then reads what another process prepared meanwhile.
        builder = tfds.builder(name, data_dir=data_dir)
        builder.download_and_prepare()
    return builder


@contextlib.contextmanager
def _preparing(data_dir):
    """Holds an exclusive lock on `data_dir`'s PREPARE_LOCK file: one process at a time
    prepares a data set in a local data folder (two at once both write it, and the second's
    rename fails); the next one, given the lock, finds it prepared and only reads it."""
    if "://" in str(data_dir):  # a remote data folder (gs://…) has no file locks
        yield
        return
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, PREPARE_LOCK), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def _download_and_prepare():
    # From the class's namespace: TFDS wraps the method in a descriptor that makes a new
    # object on every attribute access.
    return vars(tfds.core.DatasetBuilder)["download_and_prepare"]


_DOWNLOAD_AND_PREPARE = _download_and_prepare()


def _prepared(builder):
    """Whether the builder needs no download: its files are in its data folder, or TFDS's
    download is replaced (as by `tfds.testing.mock_data`)."""
    replaced = _download_and_prepare() is not _DOWNLOAD_AND_PREPARE
    return replaced or builder.is_prepared()


def moments(x_batches, axis=0):
    """(mean, variance) of the inputs in `x_batches` (a tf.data of input batches or of
    (x, y) batches) in one streaming pass, in float64.

    `axis=0` gives one mean and variance per feature (the MLP's standardization),
    `axis=None` one over all values (the CNN's for signals). Batches are merged with
    Chan, Golub and LeVeque's pairwise update (count, mean, M2), which stays exact
    where the sum of squares would cancel; memory is one batch and the statistics.
    """
    count, mean, m2 = 0, 0.0, 0.0
    for batch in x_batches.as_numpy_iterator():
        x = np.asarray(batch[0] if isinstance(batch, tuple) else batch, np.float64)
        x = x.reshape(-1) if axis is None else x
        n = x.size if axis is None else x.shape[0]
        if not n:
            continue
        batch_mean = x.mean(axis=axis)
        batch_m2 = ((x - batch_mean) ** 2).sum(axis=axis)
        delta = batch_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + batch_m2 + delta**2 * count * n / total
        count = total
    if not count:
        raise ValueError("Expected at least one training example. Received: an empty split")
    return mean, m2 / count


def batches(
    x, y, batch_size, *, shuffle_seed=None, bootstrap_seed=None, repeat=False, first_epoch=0
):
    """A tf.data pipeline of (x, y) batches: shuffled each epoch when seeded, prefetched.

    With `bootstrap_seed`, the pipeline serves a bootstrap sample (D6,
    bagging): n indices drawn uniformly with replacement from the n examples,
    so about (1 − 1/n)^n ≈ 37% of them are left out and others repeat. The
    sample is fixed by the seed; its order is reshuffled every epoch.

    With `repeat`, the pipeline is endless: epoch after epoch, each batched on
    its own (the last batch of an epoch may be smaller). Its order is then a
    stateless function of (shuffle_seed, epoch) rather than the state of a
    `shuffle` op, so it stays the same when tf.distribute rewrites the
    pipeline to split batches across replicas: one device and N replicas see
    the same batches. The pipeline starts at epoch `first_epoch`: a run that
    Keras resumes at epoch k (BackupAndRestore) gets the order an uninterrupted
    run had at epoch k, not epoch 0's again.
    """
    validation.integer("first_epoch", first_epoch, low=0)
    n = len(y)
    indices = tf.range(n, dtype=tf.int64)
    if bootstrap_seed is not None:
        indices = tf.random.stateless_uniform([n], [bootstrap_seed, 0], 0, n, dtype=tf.int64)
    if repeat:

        def epoch(number):
            order = indices
            if shuffle_seed is not None:
                key = tf.stack([tf.constant(shuffle_seed, tf.int64), number])
                order = tf.gather(indices, tf.argsort(tf.random.stateless_uniform([n], key)))
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

        dataset = tf.data.Dataset.counter(first_epoch).flat_map(epoch)
    else:
        dataset = tf.data.Dataset.from_tensor_slices(indices)
        if shuffle_seed is not None:
            dataset = dataset.shuffle(n, seed=shuffle_seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size)
    x, y = tf.constant(x), tf.constant(y)
    dataset = dataset.map(
        lambda i: (tf.gather(x, i), tf.gather(y, i)), num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
