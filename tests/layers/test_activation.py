import keras
import numpy as np
import pytest

from tfnn import activations
from tfnn.layers import Activation, PReLU
from tfnn.testing import (
    MIXED_POLICIES,
    SEEDS,
    check_config_round_trip,
    check_in_models,
    check_layer_parity,
    check_mixed_precision,
    check_save_load,
)


@pytest.mark.parametrize("name", activations.ALL)
def test_activation_layer_equals_keras(name):
    x = np.random.default_rng(0).normal(scale=3.0, size=(4, 6)).astype("float32")
    keras_name = "silu" if name == "swish" else name
    check_layer_parity(Activation(name), keras.layers.Activation(keras_name), x)


@pytest.mark.parametrize(
    "shape, shared_axes", [((4, 6), None), ((2, 5, 5, 3), [1, 2]), ((3, 7, 4), 1)]
)
@pytest.mark.parametrize("seed", SEEDS)
def test_prelu_equals_keras_with_the_same_slopes(shape, shared_axes, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype("float32")
    theirs = keras.layers.PReLU(shared_axes=shared_axes)
    theirs.build(shape)
    theirs.set_weights([rng.uniform(-0.5, 0.5, size=theirs.alpha.shape).astype("float32")])
    check_layer_parity(PReLU(shared_axes=shared_axes), theirs, x)


def test_prelu_is_relu_at_zero_slope_and_identity_at_one():
    x = np.array([[-2.0, -0.5, 0.0, 1.5]], "float32")
    np.testing.assert_array_equal(PReLU()(x), [[0.0, 0.0, 0.0, 1.5]])
    np.testing.assert_array_equal(PReLU(alpha_initializer="ones")(x), x)


def test_prelu_learns_its_slope():
    """Data y = 0.3·x for x < 0 and y = x otherwise: the slope moves from 0 towards 0.3."""
    x = np.linspace(-3, 3, 256, dtype="float32")[:, None]
    y = np.where(x < 0, 0.3 * x, x)
    model = keras.Sequential([keras.Input((1,)), PReLU()])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(x, y, batch_size=32, epochs=10, verbose=0)
    assert model.layers[0].get_weights()[0].item() == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("shared_axes", ["1", [0], [1.5]])
def test_bad_shared_axes_are_refused(shared_axes):
    with pytest.raises(ValueError, match="shared_axes"):
        PReLU(shared_axes=shared_axes)


def test_round_trips_models_and_mixed_precision():
    prelu = PReLU(alpha_initializer="ones", alpha_constraint="non_neg", shared_axes=[1], name="p")
    check_config_round_trip(prelu)
    check_config_round_trip(Activation("swish", name="a"))
    model = keras.Sequential([keras.Input((3, 4)), PReLU(shared_axes=[1]), Activation("elu")])
    check_save_load(model, np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32"))
    for make in (lambda: PReLU(alpha_initializer="ones"), lambda: Activation("selu")):
        check_in_models(make, (5,))
        for policy in MIXED_POLICIES:
            check_mixed_precision(make, np.ones((4, 5), "float32"), policy)
