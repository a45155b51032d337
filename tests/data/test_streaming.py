"""Splits streamed from TFDS's files: the carve-out, the statistics pass, the Poisson
bootstrap, sharding, and a whole run on the streamed path."""

import numpy as np
import pytest
import tensorflow as tf

from tfnn import data


def rows(batches):
    parts = list(batches.as_numpy_iterator())
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def sorted_rows(x):
    x = x.reshape(len(x), -1)
    return x[np.lexsort(x.T)]


def test_above_the_threshold_splits_are_streams_with_the_same_examples(data_dir):
    memory = data.load("digits", seed=0, data_dir=data_dir)
    streamed = data.load("digits", seed=0, data_dir=data_dir, in_memory_bytes=0)
    assert isinstance(streamed.train, data.Stream) and not isinstance(memory.train, data.Stream)
    assert streamed.input_shape == memory.input_shape == (8, 8, 1)
    assert data.size(streamed.train) == data.size(memory.train)
    assert data.size(streamed.validation) == data.size(memory.validation)
    x_train, y_train = rows(data.stream_batches(streamed.train, 100))
    x_val, _ = rows(data.stream_batches(streamed.validation, 100))
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert len(x_train) == data.size(streamed.train)
    # Train and validation partition TFDS's train split, as in memory.
    np.testing.assert_array_equal(
        sorted_rows(np.concatenate([x_train, x_val])),
        sorted_rows(np.concatenate([memory.train[0], memory.validation[0]])),
    )
    x_test, _ = rows(data.stream_batches(streamed.test, 100))
    np.testing.assert_array_equal(sorted_rows(x_test), sorted_rows(memory.test[0]))


def test_the_streamed_validation_block_is_fixed_by_the_seed(data_dir):
    def validation(seed):
        ds = data.load("breast_cancer", seed=seed, data_dir=data_dir, in_memory_bytes=0)
        return rows(data.stream_batches(ds.validation, 64))[0]

    np.testing.assert_array_equal(validation(3), validation(3))
    assert not np.array_equal(validation(3), validation(4))


def test_streaming_moments_equal_the_whole_array_statistics():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(1000, 5)) * [1, 10, 100, 1e-3, 1] + [880, 0, -5, 1e4, 3]).astype("f4")
    batches = tf.data.Dataset.from_tensor_slices(x).batch(97)
    mean, variance = data.moments(batches, axis=0)
    np.testing.assert_allclose(mean, x.astype("f8").mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(variance, x.astype("f8").var(axis=0), rtol=1e-6)
    mean, variance = data.moments(batches, axis=None)
    np.testing.assert_allclose([mean, variance], [x.astype("f8").mean(), x.astype("f8").var()])


def test_the_poisson_bootstrap_is_fixed_by_its_seed_and_leaves_out_about_e_to_the_minus_1(
    data_dir,
):
    ds = data.load("mnist1d", seed=0, data_dir=data_dir, in_memory_bytes=0)
    n = data.size(ds.train)

    def sample(seed, shuffle_seed=1):
        batches = data.stream_batches(ds.train, 500, shuffle_seed=shuffle_seed, bootstrap_seed=seed)
        return rows(batches)

    x1, y1 = sample(3)
    x2, _ = sample(3, shuffle_seed=2)
    x3, _ = sample(4)
    assert abs(len(x1) - n) < 4 * np.sqrt(n)  # Poisson(1) counts: n on average, sd √n
    np.testing.assert_array_equal(sorted_rows(x1), sorted_rows(x2))  # same sample, new order
    assert not np.array_equal(x1, x2)
    assert not np.array_equal(sorted_rows(x1), sorted_rows(x3))
    distinct = len(np.unique(x1, axis=0))
    assert abs(distinct / n - (1 - np.exp(-1))) < 0.03  # each example left out w.p. e^−1


def test_multi_worker_sharding_is_by_files_when_every_worker_gets_one():
    policy = tf.data.experimental.AutoShardPolicy
    assert data.shard_policy(files=8, n_workers=2) == policy.FILE
    assert data.shard_policy(files=1, n_workers=2) == policy.DATA
    assert data.shard_policy(files=2, n_workers=2) == policy.FILE


def test_a_split_read_in_pieces_is_not_sharded_by_file(data_dir):
    """The training split around a carved-out validation block is two TFDS reads one after
    the other; tf.data's file sharding sees only the first read's files, so it must not be
    chosen whatever the files add up to (tests/test_distribute.py runs two workers)."""
    ds = data.load("digits", seed=0, data_dir=data_dir, in_memory_bytes=0)
    assert len(ds.train.pieces) == 2 and ds.train.files >= 2
    assert ds.train.shardable_files == 0
    assert ds.test.shardable_files == ds.test.files >= 1  # one read: its files can be handed out


def test_mixup_labels_of_a_stream_are_one_hot(data_dir):
    ds = data.load("digits", seed=0, data_dir=data_dir, in_memory_bytes=0)
    x, y = next(iter(data.stream_batches(ds.test, 16, one_hot=10)))
    assert y.shape == (16, 10)
    np.testing.assert_allclose(tf.reduce_sum(y, axis=1), 1.0)


@pytest.mark.parametrize("limit", [data.IN_MEMORY_BYTES, 0], ids=["in memory", "streamed"])
def test_a_run_learns_on_both_paths(data_dir, small_run, limit):
    """The MLP standardizes breast cancer's raw features (means up to 880) with the streamed
    statistics as with the in-memory ones."""
    metrics = small_run("breast_cancer", limit, epochs=5, batch_size=32, data_dir=data_dir)
    assert metrics["test"]["accuracy"] > 0.9, metrics
