import itertools

import keras
import numpy as np
import pytest

from tfnn.layers import AveragePooling1D, AveragePooling2D, MaxPooling1D, MaxPooling2D
from tfnn.testing import (
    MIXED_POLICIES,
    check_config_round_trip,
    check_in_models,
    check_layer_parity,
    check_mixed_precision,
    check_save_load,
)

TWINS = [
    (MaxPooling1D, keras.layers.MaxPooling1D, (2, 13, 3)),
    (AveragePooling1D, keras.layers.AveragePooling1D, (2, 13, 3)),
    (MaxPooling2D, keras.layers.MaxPooling2D, (2, 9, 7, 3)),
    (AveragePooling2D, keras.layers.AveragePooling2D, (2, 9, 7, 3)),
]


def inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("ours, theirs, shape", TWINS, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("pool, strides", [(2, None), (3, 2), (3, 1), (2, 3)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_equals_keras_pooling(ours, theirs, shape, pool, strides, padding):
    args = dict(pool_size=pool, strides=strides, padding=padding)
    check_layer_parity(ours(**args), theirs(**args), inputs(shape))


def test_max_pooling_is_the_window_maximum():
    """F4: y_{i,j,k} = max over the P₁×P₂ window starting at (i·s₁, j·s₂)."""
    x = inputs((1, 7, 8, 2))
    y = np.asarray(MaxPooling2D((3, 2), strides=(2, 2))(x))
    for i, j in itertools.product(range(y.shape[1]), range(y.shape[2])):
        np.testing.assert_array_equal(
            y[0, i, j], x[0, 2 * i : 2 * i + 3, 2 * j : 2 * j + 2].max(axis=(0, 1))
        )


def test_same_average_pooling_does_not_count_the_padding():
    x = np.ones((1, 5, 1), "float32")
    np.testing.assert_allclose(AveragePooling1D(2, padding="same")(x), np.ones((1, 3, 1)))


def test_max_pooling_is_invariant_to_a_shift_inside_the_window():
    """F4: moving the peak within its window leaves the output unchanged."""
    x = np.zeros((1, 8, 1), "float32")
    x[0, 4] = 1.0
    shifted = np.roll(x, 1, axis=1)  # position 5: same window [4, 6)
    np.testing.assert_array_equal(MaxPooling1D(2)(x), MaxPooling1D(2)(shifted))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MaxPooling1D(0), "pool_size"),
        (lambda: AveragePooling2D((2, 2), strides=(0, 1)), "strides"),
        (lambda: MaxPooling2D(padding="causal"), "padding"),
        (lambda: AveragePooling1D(2, data_format="channels_first"), "data_format"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("ours, theirs, shape", TWINS, ids=lambda v: getattr(v, "__name__", ""))
def test_round_trips_models_and_mixed_precision(ours, theirs, shape):
    check_config_round_trip(ours(3, strides=2, padding="same", name="p"))
    check_save_load(keras.Sequential([keras.Input(shape[1:]), ours(2)]), inputs(shape))
    check_in_models(lambda: ours(2), shape[1:])
    for policy in MIXED_POLICIES:
        check_mixed_precision(lambda: ours(2), inputs(shape), policy)
