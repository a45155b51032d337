import keras
import numpy as np
import pytest

from tfnn import activations, constraints, initializers, regularizers
from tfnn.layers import Dense
from tfnn.testing import (
    MIXED_POLICIES,
    SEEDS,
    check_config_round_trip,
    check_in_models,
    check_layer_parity,
    check_mixed_precision,
    check_save_load,
)

INPUT_SHAPES = [(4, 5), (2, 3, 5), (2, 2, 3, 5)]


@pytest.mark.parametrize("input_shape", INPUT_SHAPES)
@pytest.mark.parametrize("activation", [None, *activations.ALL])
@pytest.mark.parametrize("use_bias", [True, False])
def test_equals_keras_dense(input_shape, activation, use_bias):
    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    check_layer_parity(
        Dense(3, activation=activation, use_bias=use_bias),
        keras.layers.Dense(3, activation=activation, use_bias=use_bias),
        x,
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_computes_f_of_xw_plus_b(seed):
    """A2: h = f(Wx + b), batched as f(XW + b) with W stored as d×h."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, 4)).astype("float32")
    layer = Dense(3, activation="tanh")
    layer.build(x.shape)
    w, b = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    layer.set_weights([w, b])
    np.testing.assert_allclose(layer(x), np.tanh(x @ w + b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("d, h, o", [(40, 100, 10), (784, 100, 10), (3, 1, 1)])
def test_parameter_count_of_one_hidden_layer(d, h, o):
    """A3: d·h + h·o + h + o, as the model summary reports."""
    model = keras.Sequential([keras.Input((d,)), Dense(h, "relu"), Dense(o, "softmax")])
    assert model.count_params() == d * h + h * o + h + o


def configured_dense():
    return Dense(
        4,
        activation="swish",
        kernel_initializer=initializers.HeNormal(seed=1),
        bias_initializer="ones",
        kernel_regularizer=regularizers.L2(1e-3),
        bias_regularizer=regularizers.L1(1e-4),
        activity_regularizer=regularizers.L1L2(1e-5, 1e-5),
        kernel_constraint=constraints.MaxNorm(3.0),
        bias_constraint=constraints.NonNeg(),
        name="hidden",
    )


def test_config_round_trip():
    check_config_round_trip(configured_dense())
    check_config_round_trip(Dense(2))


def test_save_load_round_trip():
    model = keras.Sequential(
        [keras.Input((5,)), configured_dense(), Dense(2, activation="softmax")]
    )
    check_save_load(model, np.random.default_rng(0).normal(size=(3, 5)).astype("float32"))


def test_regularizers_reach_the_model_losses():
    model = keras.Sequential([keras.Input((5,)), Dense(4, kernel_regularizer=regularizers.L2(0.5))])
    kernel = model.layers[0].kernel
    np.testing.assert_allclose(sum(model.losses), 0.5 * np.sum(np.square(kernel)), rtol=1e-6)


@pytest.mark.parametrize("input_shape", [(5,), (3, 5)])
def test_trains_inside_every_kind_of_model(input_shape):
    check_in_models(lambda: Dense(4, activation="relu"), input_shape)


@pytest.mark.parametrize("policy", MIXED_POLICIES)
def test_mixed_precision(policy):
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    check_mixed_precision(
        lambda: Dense(3, activation="selu", kernel_regularizer=regularizers.L2(0.1)), x, policy
    )


@pytest.mark.parametrize("units", [0, -3, 2.5, "10", True])
def test_bad_units_are_refused(units):
    with pytest.raises(ValueError, match="units"):
        Dense(units)


def test_rank_one_input_is_refused():
    with pytest.raises(ValueError):
        Dense(3)(np.ones((5,), "float32"))


def test_names_give_tfnns_components():
    """The string forms Keras users write resolve to tfnn's classes, as tfnn.<kind>.get does."""
    layer = Dense(
        3,
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",  # no tfnn twin: Keras's
        kernel_regularizer="l2",
        bias_regularizer="L1",
        kernel_constraint="max_norm",
        bias_constraint="non_neg",
    )
    assert layer.activation is activations.relu
    assert type(layer.kernel_initializer) is initializers.GlorotUniform
    assert type(layer.bias_initializer) is keras.initializers.Zeros
    assert type(layer.kernel_regularizer) is regularizers.L2
    assert type(layer.bias_regularizer) is regularizers.L1
    assert type(layer.kernel_constraint) is constraints.MaxNorm
    assert type(layer.bias_constraint) is constraints.NonNeg
