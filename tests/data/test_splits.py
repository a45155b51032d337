"""A split in memory (`Arrays`) and one streamed from TFDS's files (`Stream`) answer the
recipe's questions through the same names, with the same answers for the same examples."""

import numpy as np
import pytest
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
