"""Data sets, as splits, and the tf.data pipelines that feed them to Model.fit.

One module per job; this package re-exports their public names:

    loading       `load`: a data set (embedded, TFDS catalog or image folder) → its
                  train, validation and test splits, and the task its label describes
    splits        the two kinds of split, with one interface: `Arrays` in memory,
                  `Stream` read from TFDS's files
    pipeline      `batches`, `stream_batches`: a split as tf.data batches (shuffling,
                  bootstrap samples, the epoch counter of an endless pipeline, sharding)
    statistics    `moments`: mean and variance in one streaming pass
    augment       the training transforms (D5)
    embedded      the small data sets shipped with tfnn
    folder        a folder of images as a TFDS data set

The task kinds (`Task`, `REGRESSION`, `BINARY`, `CLASSES`) are `tfnn.tasks`'s. A
setting is read where it is defined: set `tfnn.data.loading.IN_MEMORY_BYTES`, not
the copy of its value here.
"""

from tfnn.data.loading import (
    DOWNLOAD_HOST,
    DOWNLOAD_PROBE_SECONDS,
    EMBEDDED,
    IN_MEMORY_BYTES,
    PREPARE_LOCK,
    DataSet,
    load,
    task_of,
)
from tfnn.data.pipeline import SHUFFLE_BUFFER, batches, shard_policy, stream_batches, workers
from tfnn.data.splits import Arrays, Stream
from tfnn.data.statistics import moments
from tfnn.tasks import BINARY, CLASSES, REGRESSION, Task

__all__ = [
    "BINARY",
    "CLASSES",
    "DOWNLOAD_HOST",
    "DOWNLOAD_PROBE_SECONDS",
    "EMBEDDED",
    "IN_MEMORY_BYTES",
    "PREPARE_LOCK",
    "REGRESSION",
    "SHUFFLE_BUFFER",
    "Arrays",
    "DataSet",
    "Stream",
    "Task",
    "batches",
    "load",
    "moments",
    "shard_policy",
    "size",
    "stream_batches",
    "task_of",
    "workers",
]


def size(split):
    """The number of examples of a split (`Arrays` or `Stream`): its `size`."""
    return split.size
