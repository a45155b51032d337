import math

import keras
import numpy as np
import pytest

from tfnn import initializers
from tfnn.layers import Dense
from tfnn.testing import SEEDS, check_config_round_trip, sample_moments_close

SHAPES = [(20, 30), (3, 3, 8, 16), (50,)]

TWINS = {
    # U[−1/√n, 1/√n] is VarianceScaling with Var = 1/(3n).
    initializers.FanInUniform: lambda seed: keras.initializers.VarianceScaling(
        scale=1 / 3, mode="fan_in", distribution="uniform", seed=seed
    ),
    initializers.GlorotUniform: lambda seed: keras.initializers.GlorotUniform(seed),
    initializers.HeNormal: lambda seed: keras.initializers.HeNormal(seed),
    initializers.LeCunNormal: lambda seed: keras.initializers.LecunNormal(seed),
}


@pytest.mark.parametrize("cls", list(TWINS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_equals_keras_twin_with_the_same_seed(cls, shape, seed):
    np.testing.assert_allclose(cls(seed)(shape), TWINS[cls](seed)(shape), rtol=1e-6, atol=0)


def test_fans_follow_keras_convention():
    assert initializers.compute_fans((40, 100)) == (40, 100)
    assert initializers.compute_fans((5, 3, 16)) == (5 * 3, 5 * 16)
    assert initializers.compute_fans((3, 3, 8, 16)) == (9 * 8, 9 * 16)


@pytest.mark.parametrize(
    "cls, limit",
    [
        (initializers.FanInUniform, lambda n, m: 1 / math.sqrt(n)),
        (initializers.GlorotUniform, lambda n, m: math.sqrt(6 / (m + n))),
    ],
)
@pytest.mark.parametrize("shape", [(300, 200), (5, 5, 16, 32)])
def test_uniform_initializers_fill_their_interval(cls, limit, shape):
    n, m = initializers.compute_fans(shape)
    bound = limit(n, m)
    w = np.asarray(cls(seed=3)(shape))
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # reaches the ends, so the bound is not too wide
    # Var(U[−a, a]) = a²/3; over ≥ 25,600 draws the variance's standard error is 0.6%.
    sample_moments_close(w, mean=0.0, variance=bound**2 / 3, variance_rtol=0.03)


@pytest.mark.parametrize(
    "cls, gain", [(initializers.HeNormal, 2.0), (initializers.LeCunNormal, 1.0)]
)
@pytest.mark.parametrize("shape", [(300, 200), (5, 5, 16, 32)])
def test_normal_initializers_have_variance_gain_over_fan_in(cls, gain, shape):
    n, _ = initializers.compute_fans(shape)
    w = np.asarray(cls(seed=4)(shape))
    # Over ≥ 25,600 draws the variance's standard error is under 1%.
    sample_moments_close(w, mean=0.0, variance=gain / n, variance_rtol=0.04)
    # Truncated at two standard deviations of the underlying normal.
    assert np.abs(w).max() <= 2 * math.sqrt(gain / n) / 0.87962566103423978


def test_int_seed_repeats_and_seed_generator_advances():
    assert np.array_equal(
        initializers.GlorotUniform(5)((4, 4)), initializers.GlorotUniform(5)((4, 4))
    )
    init = initializers.GlorotUniform(keras.random.SeedGenerator(5))
    assert not np.array_equal(init((4, 4)), init((4, 4)))


@pytest.mark.parametrize("cls", list(TWINS))
def test_config_round_trip(cls):
    check_config_round_trip(cls(seed=7))
    check_config_round_trip(cls())


@pytest.mark.parametrize("seed", ["7", 1.5, True])
def test_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        initializers.GlorotUniform(seed)


def test_dense_starts_with_glorot_kernel_and_zero_bias():
    """E2: biases 0, weights small random values (Glorot by default)."""
    layer = Dense(30)
    layer.build((None, 20))
    assert isinstance(layer.kernel_initializer, initializers.GlorotUniform)
    np.testing.assert_array_equal(layer.bias, np.zeros(30))
    assert np.abs(layer.kernel).max() <= math.sqrt(6 / 50)


def test_get_prefers_tfnn_names_and_falls_back_to_keras():
    assert isinstance(initializers.get("he_normal"), initializers.HeNormal)
    assert isinstance(initializers.get("fan_in_uniform"), initializers.FanInUniform)
    assert isinstance(initializers.get("zeros"), keras.initializers.Zeros)


@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform", "lecun_normal"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_an_int_dtype_is_refused_naming_it(name, dtype):
    """Catches the dtype passed on unchecked: Keras's truncated normal raised TypeError
    ("Cannot convert 0.0 to EagerTensor of dtype int32"), its uniform rounded to −1/0."""
    with pytest.raises(ValueError, match=f"floating-point dtype. Received: dtype='{dtype}'"):
        initializers.get(name)((2, 3), dtype=dtype)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64", None])
def test_float_dtypes_are_drawn_in(dtype):
    values = initializers.get("he_normal")((2, 3), dtype=dtype)
    assert values.dtype == (dtype or "float32")
