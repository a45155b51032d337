"""A split in memory (`Arrays`) and one streamed from TFDS's files (`Stream`) answer the
recipe's questions through the same names, with the same answers for the same examples."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfnn import data


@pytest.fixture(scope="module")
def test_splits(tmp_path_factory):
    """diabetes's test split both ways: the same 88 examples in the same order."""
    tfds.display_progress_bar(False)
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    memory = data.load("diabetes", seed=0, data_dir=data_dir).test
    streamed = data.load("diabetes", seed=0, data_dir=data_dir, in_memory_bytes=0).test
    assert isinstance(memory, data.Arrays) and isinstance(streamed, data.Stream)
    return memory, streamed


def rows(batches):
    parts = list(batches.as_numpy_iterator())
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_both_kinds_have_the_size_and_shape_of_their_examples(test_splits):
    memory, streamed = test_splits
    assert memory.size == streamed.size == 88  # not len(memory): a tuple (x, y) has 2
    assert memory.shape == streamed.shape == (10,)
    assert data.size(memory) == 88


def test_both_kinds_give_the_same_first_examples_and_batches(test_splits):
    memory, streamed = test_splits
    for got, expected in zip(streamed.head(5), memory.head(5), strict=True):
        np.testing.assert_array_equal(got, expected)
        assert len(got) == 5
    for got, expected in zip(rows(streamed.batches(32)), rows(memory.batches(32)), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_one_hot_batches_of_arrays_are_rows_of_the_identity():
    memory = data.Arrays(np.zeros((3, 2), np.float32), np.array([2, 0, 1]))
    _, y = rows(memory.batches(2, one_hot=3))
    np.testing.assert_array_equal(y, np.eye(3, dtype=np.float32)[[2, 0, 1]])
    assert y.dtype == np.float32  # as a stream's (tf.one_hot's): not numpy's float64


def test_both_kinds_give_the_same_moments(test_splits):
    memory, streamed = test_splits
    for axis in (0, None):
        for got, expected in zip(
            streamed.input_moments(axis=axis), memory.input_moments(axis=axis), strict=True
        ):
            np.testing.assert_allclose(got, expected, rtol=1e-10)
    y = memory.y.astype(np.float64)
    for got in (streamed.label_moments(), memory.label_moments()):
        np.testing.assert_allclose(got, (y.mean(), y.var()), rtol=1e-6)


def test_only_a_streamed_split_is_sharded_by_files(test_splits):
    memory, streamed = test_splits
    assert memory.shardable_files == 0
    assert streamed.shardable_files == streamed.files >= 1


def test_a_negative_first_epoch_is_refused_by_both_kinds(test_splits):
    for split in test_splits:
        with pytest.raises(ValueError, match="first_epoch=-1"):
            split.batches(8, repeat=True, first_epoch=-1)


def first_batches(dataset, count=20):
    """Up to `count` batches (x, y) as numpy arrays: an endless pipeline gives all `count`."""
    return [tuple(part.numpy() for part in batch) for batch in dataset.take(count)]


def assert_same_batches(got, expected):
    assert len(got) == len(expected)
    for got_batch, expected_batch in zip(got, expected, strict=True):
        for a, b in zip(got_batch, expected_batch, strict=True):
            np.testing.assert_array_equal(a, b)


ARRAYS = data.Arrays(np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10) % 3)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"shuffle_seed": 1},
        {"shuffle_seed": 1, "repeat": True},
        {"shuffle_seed": 1, "repeat": True, "first_epoch": 2},
        {"bootstrap_seed": 3},
    ],
    ids=["plain", "shuffled", "endless", "endless from epoch 2", "bootstrap"],
)
def test_the_batches_of_arrays_are_the_pipelines_with_every_option_passed_on(options):
    """Each option reaches `tfnn.data.batches` (one dropped or a default changed, e.g. an
    endless pipeline by default, an endless one starting at epoch 1, shows)."""
    x, y = ARRAYS
    expected = first_batches(data.batches(x, y, 4, **options))
    assert_same_batches(first_batches(ARRAYS.batches(4, **options)), expected)
    assert len(expected) == (20 if options.get("repeat") else 3)


def test_the_default_moments_of_both_kinds_are_per_feature(test_splits):
    memory, streamed = test_splits
    x = memory.x.astype(np.float64)
    for got in (memory.input_moments(), streamed.input_moments()):
        np.testing.assert_allclose(got[0], x.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(got[1], x.var(axis=0), rtol=1e-10)


def test_the_length_of_a_stream_is_its_number_of_examples(test_splits):
    _, streamed = test_splits
    assert len(streamed) == streamed.size == 88


@pytest.mark.parametrize(
    "options",
    [{}, {"shuffle_seed": 1}, {"bootstrap_seed": 2}, {"repeat": True}],
    ids=["plain", "shuffled", "bootstrap", "endless"],
)
def test_the_batches_of_a_stream_are_its_pipelines_with_every_option_passed_on(
    test_splits, options
):
    _, streamed = test_splits
    expected = first_batches(data.stream_batches(streamed, 16, **options))
    assert_same_batches(first_batches(streamed.batches(16, **options)), expected)
    if "bootstrap_seed" not in options:  # a Poisson bootstrap's size varies
        assert len(expected) == (20 if options.get("repeat") else 6)
    if options:  # the option shows: shuffled, resampled or repeated, not the plain batches
        plain = first_batches(streamed.batches(16))
        assert len(plain) != len(expected) or any(
            not np.array_equal(a[1], b[1]) for a, b in zip(plain, expected, strict=True)
        )


def sorted_rows(x):
    x = x.reshape(len(x), -1)
    return x[np.lexsort(x.T)]


def test_image_folder_slices_hold_their_examples_and_files(tmp_path, write_folder):
    """An image folder of 18 training and 6 test images, streamed: its splits are slices
    (split, start, stop) of the folder's splits, validation ('train', 13, 17) in the middle of
    the training images; each slice reads its own images (one read from its start to the
    folder's end would not), counts one file a piece, and none can be sharded by files."""
    root = write_folder(tmp_path / "pets")
    memory = data.load(str(root), seed=0, validation_fraction=0.25)
    streamed = data.load(str(root), seed=0, validation_fraction=0.25, in_memory_bytes=0)
    train, validation, test = streamed.train, streamed.validation, streamed.test
    assert validation.pieces == (("train", 13, 17),)
    assert train.pieces == (("train", 0, 13), ("train", 17, 18))
    for split in (train, validation, test):
        assert sum(1 for _ in split.examples()) == split.size == len(split)
    assert [s.files for s in (train, validation, test)] == [2, 1, 1]
    assert [s.shardable_files for s in (train, validation, test)] == [0, 0, 0]
    x_train, _ = rows(train.batches(32))
    x_validation, y_validation = rows(validation.batches(32))
    assert not set(map(bytes, x_train)) & set(map(bytes, x_validation))
    np.testing.assert_array_equal(
        sorted_rows(np.concatenate([x_train, x_validation])),
        sorted_rows(np.concatenate([memory.train[0], memory.validation[0]])),
    )
    x_test, labels = rows(test.batches(4))
    np.testing.assert_array_equal(sorted_rows(x_test), sorted_rows(memory.test[0]))
    # one-hot labels are rows of the identity; the head is the first examples
    _, one_hot = rows(test.batches(4, one_hot=3))
    np.testing.assert_array_equal(one_hot, np.eye(3, dtype=np.float32)[labels])
    assert sorted(labels) == [0, 0, 1, 1, 2, 2]
    for got, expected in zip(validation.head(3), (x_validation, y_validation), strict=True):
        np.testing.assert_array_equal(got, expected[:3])


class _RecordingBuilder:
    """A stand-in TFDS builder: records each as_dataset call's arguments."""

    def __init__(self):
        self.calls = []

    def as_dataset(self, **arguments):
        self.calls.append(arguments)
        return tf.data.Dataset.from_tensor_slices((np.zeros((3, 2)), np.zeros(3)))


@pytest.mark.parametrize(
    "options, shuffle_files, seed",
    [({}, False, None), ({"shuffle_files": True, "seed": 5}, True, 5)],
    ids=["stored order", "files shuffled by the seed"],
)
def test_a_stream_reads_its_split_pieces_as_told(options, shuffle_files, seed):
    """Each TFDS piece is read supervised, its files shuffled only when asked (the default
    being the stored order), with the seed in TFDS's read config. Catches shuffle_files made
    True by default, or passed as None or not at all, and the read config or its seed
    dropped (the diabetes set's one file hides file shuffling from the other tests)."""
    builder = _RecordingBuilder()
    stream = data.Stream(
        builder=builder,
        pieces=("train[:3]", "train[5:8]"),
        size=6,
        shape=(2,),
        task=data.Task(data.REGRESSION),
    )
    assert sum(1 for _ in stream.examples(**options)) == 6
    assert [set(call) for call in builder.calls] == [
        {"split", "as_supervised", "shuffle_files", "read_config"}
    ] * 2
    for call, piece in zip(builder.calls, stream.pieces, strict=True):
        assert call["split"] == piece and call["as_supervised"] is True
        assert call["shuffle_files"] is shuffle_files
        assert isinstance(call["read_config"], tfds.ReadConfig)
        assert call["read_config"].shuffle_seed == seed
