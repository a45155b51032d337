"""The two kinds of split a data set comes in, with one interface.

`Arrays` holds a split in memory as numpy arrays (x, y); `Stream` reads one from
TFDS's files as it is consumed. Whatever the recipe asks of a split, both
answer through the same names:

    size               how many examples
    shape              the shape of one example's inputs
    shardable_files    files tf.data's auto-sharder can hand to workers (0: none)
    batches(...)       tf.data batches for Model.fit (`tfnn.data.pipeline`)
    input_moments()    (mean, variance) of the inputs (`tfnn.data.statistics`)
    label_moments()    (mean, variance) of the labels (a regression's target)
    head(n)            the first n examples as numpy arrays
"""

import dataclasses as _dataclasses
import typing as _typing

import numpy as _np
import tensorflow_datasets as _tfds

from tfnn import tasks, validation
from tfnn.data import pipeline, statistics

__all__ = ["STATISTICS_BATCH", "Arrays", "Stream"]

STATISTICS_BATCH = 1024  # examples per batch of a streamed split's statistics pass


class Arrays(_typing.NamedTuple):
    """A split held in memory: inputs `x` [n, ...] float32 and labels `y` [n] (float32 for a
    regression, int64 class indices otherwise). A tuple: `x, y = split` and `split[0]` work,
    and `len(split)` is 2; its number of examples is `size`."""

    x: _np.ndarray
    y: _np.ndarray

    @property
    def size(self):
        """How many examples the split holds."""
        return len(self.y)

    @property
    def shape(self):
        """The shape of one example's inputs."""
        return self.x.shape[1:]

    @property
    def shardable_files(self):
        """0: no files back the split; tf.data's auto-sharder splits it by data."""
        return 0

    def batches(
        self,
        batch_size,
        *,
        shuffle_seed=None,
        bootstrap_seed=None,
        repeat=False,
        first_epoch=0,
        one_hot=None,
    ):
        """The split as tf.data batches (`tfnn.data.batches`); with `one_hot`, labels become
        one-hot rows of that many classes."""
        y = self.y if not one_hot else _np.eye(one_hot, dtype=_np.float32)[self.y]
        return pipeline.batches(
            self.x,
            y,
            batch_size,
            shuffle_seed=shuffle_seed,
            bootstrap_seed=bootstrap_seed,
            repeat=repeat,
            first_epoch=first_epoch,
        )

    def input_moments(self, *, axis=0):
        """(mean, variance) of the inputs in float64: per feature with `axis=0`, over all
        values with None."""
        values = _np.asarray(self.x, dtype=_np.float64)
        return values.mean(axis=axis), values.var(axis=axis)

    def label_moments(self):
        """(mean, variance) of the labels, in their own dtype (numpy's pairwise sums)."""
        return _np.mean(self.y), _np.var(self.y)

    def head(self, n):
        """The first `n` examples (x, y)."""
        return self.x[:n], self.y[:n]


@_dataclasses.dataclass(frozen=True)
class Stream:
    """A split read from TFDS's files as it is consumed, never held in memory whole.

    `pieces` are TFDS split strings (e.g. "train[:300]", "train[400:]") or, for an
    image folder, which has no sub-split API, (split, start, stop) triples.
    """

    builder: object
    pieces: tuple
    size: int
    shape: tuple
    task: tasks.Task

    def __len__(self):
        return self.size

    def batches(
        self,
        batch_size,
        *,
        shuffle_seed=None,
        bootstrap_seed=None,
        repeat=False,
        first_epoch=0,
        one_hot=None,
    ):
        """The split as tf.data batches (`tfnn.data.stream_batches`).

        `first_epoch` is checked but changes nothing: the order comes from a
        shuffle buffer, which starts anew in a resumed run whatever its epoch.
        """
        validation.integer("first_epoch", first_epoch, low=0)
        return pipeline.stream_batches(
            self,
            batch_size,
            shuffle_seed=shuffle_seed,
            bootstrap_seed=bootstrap_seed,
            repeat=repeat,
            one_hot=one_hot,
        )

    def input_moments(self, *, axis=0):
        """(mean, variance) of the inputs in float64, in one streaming pass
        (`tfnn.data.moments`): per feature with `axis=0`, over all values with None."""
        return statistics.moments(pipeline.stream_batches(self, STATISTICS_BATCH), axis=axis)

    def label_moments(self):
        """(mean, variance) of the labels in float64, in one streaming pass (labels [B]: over
        the batch axis is over all values)."""
        labels = pipeline.stream_batches(self, STATISTICS_BATCH).map(lambda x, y: y)
        return statistics.moments(labels)

    def head(self, n):
        """The first `n` examples (x, y) as numpy arrays, converted as the model takes them."""
        return next(pipeline.stream_batches(self, n).as_numpy_iterator())

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
                config = _tfds.ReadConfig(shuffle_seed=seed)
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
