"""`moments`: the mean and variance of a split's inputs in one streaming pass, checked against
numpy's over the whole array."""

import numpy as np
import pytest
import tensorflow as tf

from tfnn import data


def batched(*arrays, size):
    return tf.data.Dataset.from_tensor_slices(arrays if len(arrays) > 1 else arrays[0]).batch(size)


def test_per_feature_moments_are_one_per_feature_and_all_values_one_in_all():
    """axis=0 (the default): one (mean, variance) per column; axis=None: one over every value,
    each batch counting its values, not its rows (a variance 2x too large)."""
    x = np.array([[1.0, 10.0], [3.0, 30.0], [5.0, 20.0]], np.float32)
    for moments in (data.moments(batched(x, size=2), axis=0), data.moments(batched(x, size=2))):
        np.testing.assert_allclose(moments[0], [3.0, 20.0])
        np.testing.assert_allclose(moments[1], [8 / 3, 200 / 3])
    mean, variance = data.moments(batched(x, size=2), axis=None)
    np.testing.assert_allclose([mean, variance], [11.5, 1283 / 12], rtol=1e-12)


def test_the_moments_of_x_y_batches_are_the_inputs_not_the_labels():
    x = np.array([1.0, 2.0, 3.0, 6.0], np.float32)
    y = np.array([100, 200, 300, 400])
    mean, variance = data.moments(batched(x, y, size=3), axis=None)
    np.testing.assert_allclose([mean, variance], [3.0, 3.5])


def test_one_batch_of_one_example_has_its_value_as_mean_and_zero_variance():
    """The merge starts from count 0, mean 0 and M2 0: a start of 1 in any of them shows."""
    mean, variance = data.moments(batched(np.array([[7.0, -2.0]]), size=1), axis=0)
    np.testing.assert_array_equal(mean, [7.0, -2.0])
    np.testing.assert_array_equal(variance, [0.0, 0.0])


def test_values_far_below_one_keep_their_mean_exactly():
    """A first mean of 1 instead of 0 would round 1e-20 away: (1e-20 − 1) + 1 = 0."""
    x = np.full((4, 1), 1e-20)
    mean, variance = data.moments(batched(x, size=2), axis=0)
    np.testing.assert_array_equal(mean, [1e-20])
    np.testing.assert_array_equal(variance, [0.0])


def test_the_pass_is_in_float64():
    """float32 values around 1e4 differing by 1e-3: float32 sums and squares would lose them."""
    x = (1e4 + np.arange(1000) % 7 * 1e-3).astype(np.float32)
    mean, variance = data.moments(batched(x, size=1000), axis=None)
    expected = x.astype(np.float64)
    np.testing.assert_allclose([mean, variance], [expected.mean(), expected.var()], rtol=1e-12)


def test_batches_of_unequal_sizes_merge_to_the_whole_array_statistics():
    """Chan's update weights each batch by its count: batches of 1, 4 and 2 examples."""
    x = np.array([0.5, 4.0, -1.0, 2.0, 9.0, 3.0, 3.5])
    pieces = [x[:1], x[1:5], x[5:]]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(pieces), output_signature=tf.TensorSpec([None], tf.float64)
    )
    mean, variance = data.moments(dataset, axis=None)
    np.testing.assert_allclose([mean, variance], [x.mean(), x.var()], rtol=1e-12)


def test_empty_batches_are_skipped_first_and_between_others():
    """An empty batch adds nothing (no 0/0 before the first example, no stop after it)."""
    x = np.array([[1.0], [2.0], [4.0], [9.0]])
    pieces = [x[:0], x[:2], x[:0], x[2:]]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(pieces), output_signature=tf.TensorSpec([None, 1], tf.float64)
    )
    for axis in (0, None):
        mean, variance = data.moments(dataset, axis=axis)
        np.testing.assert_allclose(np.ravel([mean, variance]), [4.0, 9.5], rtol=1e-12)


@pytest.mark.parametrize("pieces", [[], [np.zeros((0, 3))]], ids=["no batch", "one empty batch"])
def test_an_empty_split_is_refused_with_a_message(pieces):
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(pieces), output_signature=tf.TensorSpec([None, 3], tf.float64)
    )
    with pytest.raises(
        ValueError,
        match=r"^Expected at least one training example\. Received: an empty split$",
    ):
        data.moments(dataset)
