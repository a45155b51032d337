"""The training pipeline: splits as tf.data batches for Model.fit.

`batches` feeds arrays held in memory (a seeded shuffle, or an order that is a
stateless function of the seed and the epoch counter for an endless pipeline;
bootstrap samples for bagging); `stream_batches` feeds a split streamed from
TFDS's files (shuffled by file and in a buffer, a Poisson bootstrap). Both
convert examples to what the model takes (`converted`) and prefetch; a streamed
pipeline also says how tf.distribute's auto-sharder splits it across workers.
"""

import json as _json
import os as _os

import tensorflow as _tf

from tfnn import tasks, validation

__all__ = [
    "SHUFFLE_BUFFER",
    "batches",
    "converted",
    "shard_policy",
    "stream_batches",
    "workers",
]

SHUFFLE_BUFFER = 10_000  # examples; a streamed split is shuffled by files, then in this buffer


def workers():
    """How many workers TF_CONFIG names (1 without a cluster)."""
    cluster = _json.loads(_os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return max(1, len(cluster.get("worker", ())) + len(cluster.get("chief", ())))


def shard_policy(files, n_workers):
    """Multi-worker sharding of a split with `files` shardable files (a split's
    `shardable_files`): by files when every worker gets at least one, else by data."""
    policy = _tf.data.experimental.AutoShardPolicy
    return policy.FILE if files >= n_workers else policy.DATA


def converted(x, y, task):
    """Examples as the model takes them: float32 inputs (uint8 images in [0, 1]); float32
    labels for a regression, int64 class indices otherwise."""
    x = _tf.cast(x, _tf.float32) / 255.0 if x.dtype == _tf.uint8 else _tf.cast(x, _tf.float32)
    return x, _tf.cast(y, _tf.float32 if task.kind == tasks.REGRESSION else _tf.int64)


def stream_batches(
    stream, batch_size, *, shuffle_seed=None, bootstrap_seed=None, repeat=False, one_hot=None
):
    """Batches of a `tfnn.data.Stream`: read from TFDS's files (interleaved, shuffled by file and
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
            key = _tf.stack([_tf.constant(bootstrap_seed, _tf.int64), position])
            k = _tf.random.stateless_poisson([], key, 1.0, dtype=_tf.int64)
            return _tf.data.Dataset.from_tensors(example).repeat(k)

        examples = examples.enumerate().flat_map(repeats)
    if shuffle_seed is not None:  # tf.data reshuffles at each iteration (each epoch)
        examples = examples.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed)
    dataset = examples.batch(batch_size)
    task = stream.task

    def convert(x, y):
        x, y = converted(x, y, task)
        return (x, _tf.one_hot(y, one_hot)) if one_hot else (x, y)

    dataset = dataset.map(convert, num_parallel_calls=_tf.data.AUTOTUNE)
    if repeat:
        dataset = dataset.repeat()
    options = _tf.data.Options()
    policy = shard_policy(stream.shardable_files, workers())
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options).prefetch(_tf.data.AUTOTUNE)


def batches(
    x, y, batch_size, *, shuffle_seed=None, bootstrap_seed=None, repeat=False, first_epoch=0
):
    """A _tf.data pipeline of (x, y) batches: shuffled each epoch when seeded, prefetched.

    With `bootstrap_seed`, the pipeline serves a bootstrap sample (D6,
    bagging): n indices drawn uniformly with replacement from the n examples,
    so about (1 − 1/n)^n ≈ 37% of them are left out and others repeat. The
    sample is fixed by the seed; its order is reshuffled every epoch.

    With `repeat`, the pipeline is endless: epoch after epoch, each batched on
    its own (the last batch of an epoch may be smaller). Its order is then a
    stateless function of (shuffle_seed, epoch) rather than the state of a
    `shuffle` op, so it stays the same when _tf.distribute rewrites the
    pipeline to split batches across replicas: one device and N replicas see
    the same batches. The pipeline starts at epoch `first_epoch`: a run that
    Keras resumes at epoch k (BackupAndRestore) gets the order an uninterrupted
    run had at epoch k, not epoch 0's again.
    """
    validation.integer("first_epoch", first_epoch, low=0)
    n = len(y)
    indices = _tf.range(n, dtype=_tf.int64)
    if bootstrap_seed is not None:
        indices = _tf.random.stateless_uniform([n], [bootstrap_seed, 0], 0, n, dtype=_tf.int64)
    if repeat:

        def epoch(number):
            order = indices
            if shuffle_seed is not None:
                key = _tf.stack([_tf.constant(shuffle_seed, _tf.int64), number])
                order = _tf.gather(indices, _tf.argsort(_tf.random.stateless_uniform([n], key)))
            return _tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

        dataset = _tf.data.Dataset.counter(first_epoch).flat_map(epoch)
    else:
        dataset = _tf.data.Dataset.from_tensor_slices(indices)
        if shuffle_seed is not None:
            dataset = dataset.shuffle(n, seed=shuffle_seed)  # anew at each iteration
        dataset = dataset.batch(batch_size)
    x, y = _tf.constant(x), _tf.constant(y)
    dataset = dataset.map(
        lambda i: (_tf.gather(x, i), _tf.gather(y, i)), num_parallel_calls=_tf.data.AUTOTUNE
    )
    return dataset.prefetch(_tf.data.AUTOTUNE)
