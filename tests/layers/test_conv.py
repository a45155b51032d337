import itertools
import math

import keras
import numpy as np
import pytest

from tfnn.layers import Conv1D, Conv2D
from tfnn.testing import (
    MIXED_POLICIES,
    check_config_round_trip,
    check_in_models,
    check_layer_parity,
    check_mixed_precision,
    check_save_load,
)


def cross_correlation(x, kernel, bias, strides, padding, dilation):
    """F3 written out: S[b, i…, k] = Σ_{m…, o} I[b, i·s + m·d …, o] · K[m…, o, k] + b_k."""
    sizes, window = x.shape[1:-1], kernel.shape[:-2]
    if padding == "same":
        pads = []
        for n, k, s, d in zip(sizes, window, strides, dilation, strict=True):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0), *pads, (0, 0)])
        sizes = x.shape[1:-1]
    out = [
        (n - (k - 1) * d - 1) // s + 1
        for n, k, s, d in zip(sizes, window, strides, dilation, strict=True)
    ]
    y = np.zeros((x.shape[0], *out, kernel.shape[-1]))
    for i in itertools.product(*map(range, out)):
        for m in itertools.product(*map(range, window)):
            position = tuple(
                ii * s + mm * d for ii, mm, s, d in zip(i, m, strides, dilation, strict=True)
            )
            y[(slice(None), *i)] += x[(slice(None), *position)] @ kernel[m]
    return y + bias


CASES_1D = [  # kernel, stride, padding, dilation
    (3, 1, "valid", 1),
    (5, 2, "same", 1),
    (4, 3, "valid", 1),
    (4, 2, "same", 1),
    (3, 1, "same", 2),
]
CASES_2D = [
    ((3, 3), (1, 1), "valid", (1, 1)),
    ((3, 2), (2, 1), "same", (1, 1)),
    ((5, 5), (2, 2), "same", (1, 1)),
    ((2, 3), (1, 1), "valid", (2, 1)),
    ((4, 4), (3, 2), "valid", (1, 1)),
]


def inputs(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("kernel, stride, padding, dilation", CASES_1D)
@pytest.mark.parametrize("use_bias", [True, False])
def test_conv1d_equals_keras(kernel, stride, padding, dilation, use_bias):
    args = dict(
        filters=4,
        kernel_size=kernel,
        strides=stride,
        padding=padding,
        dilation_rate=dilation,
        use_bias=use_bias,
        activation="relu",
    )
    check_layer_parity(Conv1D(**args), keras.layers.Conv1D(**args), inputs((2, 17, 3)), atol=1e-5)


@pytest.mark.parametrize("kernel, stride, padding, dilation", CASES_2D)
@pytest.mark.parametrize("use_bias", [True, False])
def test_conv2d_equals_keras(kernel, stride, padding, dilation, use_bias):
    args = dict(
        filters=5,
        kernel_size=kernel,
        strides=stride,
        padding=padding,
        dilation_rate=dilation,
        use_bias=use_bias,
    )
    check_layer_parity(
        Conv2D(**args), keras.layers.Conv2D(**args), inputs((2, 11, 9, 3)), atol=1e-5
    )


@pytest.mark.parametrize(
    "layer, shape, case",
    [(Conv1D, (2, 17, 3), c) for c in CASES_1D] + [(Conv2D, (2, 11, 9, 3), c) for c in CASES_2D],
)
def test_computes_the_lectures_cross_correlation(layer, shape, case):
    kernel, stride, padding, dilation = case
    conv = layer(
        6,
        kernel,
        strides=stride,
        padding=padding,
        dilation_rate=dilation,
        bias_initializer=keras.initializers.RandomNormal(seed=1),
    )
    x = inputs(shape, seed=2)
    y = conv(x)
    expected = cross_correlation(
        x.astype(np.float64),
        conv.kernel.numpy(),
        conv.bias.numpy(),
        conv.strides,
        padding,
        conv.dilation_rate,
    )
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    assert tuple(y.shape) == conv.compute_output_shape(shape)


@pytest.mark.parametrize("n, k, s", [(17, 3, 1), (17, 5, 2), (16, 4, 3), (10, 3, 4)])
def test_output_length_is_ceil_n_over_s_for_same_and_floor_for_valid(n, k, s):
    """F3: "same" gives ⌈n/s⌉ positions, "valid" ⌊(n − k)/s⌋ + 1."""
    x = inputs((1, n, 2))
    assert Conv1D(1, k, strides=s, padding="same")(x).shape[1] == math.ceil(n / s)
    assert Conv1D(1, k, strides=s, padding="valid")(x).shape[1] == (n - k) // s + 1


def test_shifting_the_input_shifts_the_output():
    """F1: parameter sharing makes convolution equivariant to translation."""
    conv = Conv1D(3, 4)
    x = inputs((1, 30, 2))
    shifted = np.roll(x, 5, axis=1)
    np.testing.assert_allclose(conv(shifted)[:, 5:], conv(x)[:, :-5], atol=1e-5)


def test_parameters_are_shared_across_positions():
    """F1: the weight count does not depend on the input length: W·C·F + F."""
    for length in (20, 200):
        model = keras.Sequential([keras.Input((length, 3)), Conv1D(8, 5)])
        assert model.count_params() == 5 * 3 * 8 + 8


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Conv1D(0, 3), "filters"),
        (lambda: Conv1D(4, 0), "kernel_size"),
        (lambda: Conv2D(4, (3, 3, 3)), "kernel_size"),
        (lambda: Conv2D(4, 3, strides=(1, 0)), "strides"),
        (lambda: Conv1D(4, 3, padding="full"), "padding"),
        (lambda: Conv2D(4, 3, data_format="channels_first"), "data_format"),
        (lambda: Conv2D(4, 3, groups=2), "groups"),
        (lambda: Conv1D(4, 3, strides=2, dilation_rate=2), "dilation_rate"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_round_trips_models_and_mixed_precision():
    conv = Conv2D(
        4,
        (3, 2),
        strides=(2, 1),
        padding="same",
        activation="relu",
        kernel_regularizer="l2",
        name="c",
    )
    check_config_round_trip(conv)
    check_config_round_trip(Conv1D(3, 5, dilation_rate=2))
    model = keras.Sequential(
        [keras.Input((9, 9, 2)), Conv2D(3, 3, activation="relu"), Conv2D(2, 2, strides=2)]
    )
    check_save_load(model, inputs((2, 9, 9, 2)))
    check_in_models(lambda: Conv1D(4, 3, padding="same", activation="relu"), (12, 3))
    check_in_models(lambda: Conv2D(4, 3, strides=2), (8, 8, 2))
    for policy in MIXED_POLICIES:
        check_mixed_precision(lambda: Conv2D(4, 3, activation="relu"), inputs((2, 8, 8, 2)), policy)
