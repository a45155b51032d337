import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import activations
from tfnn.testing import SEEDS, away_from_kinks, check_gradient

SHAPES = [(7,), (3, 5), (2, 3, 4)]

# Each tfnn activation and its Keras/TensorFlow twin.
TWINS = {
    "linear": keras.activations.linear,
    "relu": keras.activations.relu,
    "tanh": tf.math.tanh,
    "sigmoid": tf.math.sigmoid,
    "elu": keras.activations.elu,
    "selu": keras.activations.selu,
    "swish": keras.activations.silu,
    "softmax": tf.nn.softmax,
}


@pytest.mark.parametrize("name", activations.ALL)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_equals_keras_twin_in_value_autodiff_and_finite_differences(name, shape, seed):
    x = away_from_kinks(np.random.default_rng(seed).normal(scale=3.0, size=shape))
    check_gradient(activations.get(name), TWINS[name], [x], seed=seed, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_swish_beta_is_x_times_sigmoid_of_beta_x(beta):
    x = np.linspace(-6, 6, 25)
    check_gradient(
        lambda t: activations.swish(t, beta=beta), lambda t: t * tf.math.sigmoid(beta * t), [x]
    )


def test_elu_gradient_is_finite_where_the_unused_branch_would_overflow():
    x = tf.constant([-1e4, -50.0, 100.0, 1e4], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = activations.elu(x)
    grad = tape.gradient(y, x)
    np.testing.assert_allclose(y, [-1.0, np.expm1(-50.0), 100.0, 1e4], rtol=1e-6)
    np.testing.assert_allclose(grad, [0.0, np.exp(-50.0), 1.0, 1.0], atol=1e-20)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_softmax_is_finite_and_normalized_for_huge_logits(scale):
    z = tf.constant([[scale, 0.0, -scale], [scale, scale, 0.0]], tf.float32)
    o = activations.softmax(z)
    assert np.all(np.isfinite(o))
    np.testing.assert_allclose(tf.reduce_sum(o, -1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(o, tf.nn.softmax(z), atol=1e-7)


def test_softmax_is_invariant_to_a_constant_shift():
    z = tf.random.normal([4, 6])
    np.testing.assert_allclose(activations.softmax(z + 123.0), activations.softmax(z), atol=1e-6)


def test_softmax_of_equal_logits_is_uniform():
    np.testing.assert_allclose(activations.softmax(tf.fill([3, 5], 7.5)), np.full([3, 5], 0.2))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_softmax_of_half_logits_keeps_dtype_and_sums_to_one(dtype):
    z = tf.cast(tf.constant([[60000.0, 0.0, -60000.0], [1.0, 2.0, 3.0]]), dtype)
    o = activations.softmax(z)
    assert o.dtype == dtype
    np.testing.assert_allclose(tf.reduce_sum(tf.cast(o, tf.float32), -1), [1, 1], atol=1e-2)
    np.testing.assert_allclose(
        tf.cast(o, tf.float32), tf.nn.softmax(tf.cast(z, tf.float32)), atol=1e-2
    )


def test_saturating_activations_have_vanishing_gradients_and_relu_does_not():
    """E1: σ' and tanh' are ≈ 0 for |x| = 10; ReLU' is 1 for every x > 0."""
    x = tf.constant([10.0, -10.0])
    for fn, bound in [(activations.sigmoid, 1e-4), (activations.tanh, 1e-8)]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        assert np.all(np.abs(tape.gradient(y, x)) < bound)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = activations.relu(x)
    np.testing.assert_array_equal(tape.gradient(y, x), [1.0, 0.0])


def test_get_resolves_tfnn_names_callables_and_keras_names():
    assert activations.get("relu") is activations.relu
    assert activations.get(None) is activations.linear
    assert activations.get(activations.swish) is activations.swish
    assert activations.get("gelu") is keras.activations.gelu
    with pytest.raises(ValueError, match="nonexistent"):
        activations.get("nonexistent")


@pytest.mark.parametrize("name", activations.ALL)
def test_serialized_activation_resolves_to_the_same_function(name):
    fn = activations.get(name)
    assert keras.activations.get(activations.serialize(fn)) is fn


@pytest.mark.parametrize("axis", [2, 5, -3])
def test_softmax_refuses_an_axis_beyond_the_rank(axis):
    """Catches `reduce_max(z, axis=axis)` unchecked: InvalidArgumentError from inside."""
    with pytest.raises(ValueError, match=rf"rank 2, from -2 to 1\. Received: axis={axis}"):
        activations.softmax(np.zeros((2, 3), "float32"), axis=axis)


def test_softmax_takes_the_axes_at_the_limits():
    """The limits: axis rank − 1 and −rank."""
    z = np.zeros((2, 4), "float32")
    np.testing.assert_allclose(activations.softmax(z, axis=1), np.full((2, 4), 0.25))
    np.testing.assert_allclose(activations.softmax(z, axis=-2), np.full((2, 4), 0.5))
