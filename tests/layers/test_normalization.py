import keras
import numpy as np
import pytest

from tfnn.layers import BatchNormalization, LayerNormalization
from tfnn.testing import (
    MIXED_POLICIES,
    assert_close,
    check_config_round_trip,
    check_in_models,
    check_layer_parity,
    check_mixed_precision,
    check_save_load,
)

SHAPES_AND_AXES = [((16, 6), -1), ((4, 7, 5), -1), ((4, 5, 6, 3), -1), ((4, 5, 6, 3), 1)]


def inputs(shape, seed=0):
    return (3.0 + 2.0 * np.random.default_rng(seed).normal(size=shape)).astype("float32")


def randomized(layer, seed):
    """Weights away from their 1/0 initial values, so γ, β and the moving statistics matter."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.uniform(0.5, 1.5, size=w.shape).astype("float32") for w in layer.get_weights()]
    )
    return layer


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_equals_keras_and_updates_the_same_moving_statistics(
    shape, axis, training
):
    theirs = keras.layers.BatchNormalization(axis=axis, momentum=0.9)
    theirs.build(shape)
    randomized(theirs, 1)
    ours = BatchNormalization(axis=axis, momentum=0.9)
    # γ's gradient sums up to 120 terms of size ~6: float32 summation order differs by ~3e-5.
    check_layer_parity(ours, theirs, inputs(shape), training=training, rtol=1e-5, atol=1e-4)
    for _ in range(3):
        x = inputs(shape, seed=_ + 3)
        ours(x, training=training)
        theirs(x, training=training)
    for our_weight, their_weight in zip(ours.weights, theirs.weights, strict=True):
        assert_close(our_weight, their_weight, rtol=1e-5, atol=1e-6, what=their_weight.path)


def test_batch_normalization_formula_in_training_and_inference():
    """B5: (x − μ_B)/√(σ²_B + ε) per feature in training; running statistics with momentum m."""
    x = inputs((32, 4))
    layer = BatchNormalization(momentum=0.8, epsilon=1e-3)
    y = np.asarray(layer(x, training=True))
    mean, variance = x.mean(0), x.var(0)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(variance + 1e-3), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean, 0.2 * mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance, 0.8 + 0.2 * variance, rtol=1e-5)
    inference = np.asarray(layer(x, training=False))
    expected = (x - layer.moving_mean.numpy()) / np.sqrt(layer.moving_variance.numpy() + 1e-3)
    np.testing.assert_allclose(inference, expected, rtol=1e-4, atol=1e-5)


def test_frozen_batch_normalization_uses_its_moving_statistics():
    layer = BatchNormalization()
    x = inputs((8, 3))
    layer(x, training=False)
    layer.trainable = False
    np.testing.assert_allclose(layer(x, training=True), layer(x, training=False))


@pytest.mark.parametrize(
    "shape, axis", [*SHAPES_AND_AXES, ((4, 5, 6, 3), [1, 3]), ((4, 5, 6, 3), [1, 2, 3])]
)
def test_layer_normalization_equals_keras(shape, axis):
    theirs = keras.layers.LayerNormalization(axis=axis)
    theirs.build(shape)
    check_layer_parity(
        LayerNormalization(axis=axis), randomized(theirs, 2), inputs(shape), atol=1e-5
    )


def test_layer_normalization_standardizes_each_example():
    y = np.asarray(LayerNormalization(epsilon=1e-6)(inputs((5, 40))))
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(-1), 1.0, rtol=1e-4)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: BatchNormalization(momentum=1.0), "momentum"),
        (lambda: BatchNormalization(epsilon=0.0), "epsilon"),
        (lambda: BatchNormalization(axis=[1, 2]), "axis"),
        (lambda: LayerNormalization(axis="last"), "axis"),
        (lambda: LayerNormalization(epsilon=-1.0), "epsilon"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "make", [lambda: BatchNormalization(momentum=0.9), lambda: LayerNormalization()]
)
def test_round_trips_models_and_mixed_precision(make):
    check_config_round_trip(make())
    model = keras.Sequential([keras.Input((6, 4)), make()])
    model(inputs((8, 6, 4)), training=True)
    check_save_load(model, inputs((3, 6, 4)), atol=1e-5)
    check_in_models(make, (6, 4))
    for policy in MIXED_POLICIES:
        check_mixed_precision(make, inputs((8, 6, 4)), policy)


@pytest.mark.parametrize(
    "layer, axis",
    [(layer, axis) for layer in (BatchNormalization, LayerNormalization) for axis in (2, 5, -3)]
    + [(LayerNormalization, [1, 3])],  # BatchNormalization takes one axis
)
def test_an_axis_beyond_the_inputs_rank_is_refused_at_build(layer, axis):
    """Catches `sorted(a % rank for a in self.axis)` unchecked: axis=5 on a 2-D input
    wrapped to axis 1 and was accepted silently (Keras fails at build)."""
    with pytest.raises(ValueError, match=r"input's rank 2, from -2 to 1\. Received: axis="):
        layer(axis=axis)(np.ones((2, 3), "float32"))


@pytest.mark.parametrize("layer", [BatchNormalization, LayerNormalization])
def test_the_last_and_the_first_negative_axis_are_accepted(layer):
    """The limits: axis rank − 1 and −(rank − 1) on a rank-3 input (−rank is the batch)."""
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    assert layer(axis=2)(x).shape == layer(axis=-2)(x).shape == (2, 3, 4)
    assert layer(axis=2)(x).numpy() == pytest.approx(layer(axis=-1)(x).numpy())
