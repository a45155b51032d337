import keras
import numpy as np
import pytest

from tfnn.layers import GaussianNoise
from tfnn.testing import (
    MIXED_POLICIES,
    SEEDS,
    check_config_round_trip,
    check_in_models,
    check_layer_parity,
    check_mixed_precision,
    check_save_load,
    sample_moments_close,
)


@pytest.mark.parametrize("stddev", [0.0, 0.1, 0.9])  # Keras accepts σ ≤ 1 only
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(8, 6), (2, 5, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_equals_keras_gaussian_noise_with_the_same_seed(stddev, seed, shape, training):
    x = np.random.default_rng(seed).normal(size=shape).astype("float32")
    check_layer_parity(
        GaussianNoise(stddev, seed=seed),
        keras.layers.GaussianNoise(stddev, seed=seed),
        x,
        training=training,
    )


@pytest.mark.parametrize("stddev", [0.1, 2.5])
def test_noise_has_zero_mean_and_variance_sigma_squared(stddev):
    x = np.full((200, 500), 2.0, "float32")
    noise = np.asarray(GaussianNoise(stddev, seed=0)(x, training=True)) - x
    # 100,000 normal draws: the variance's standard error is 0.45%.
    sample_moments_close(noise, mean=0.0, variance=stddev**2, variance_rtol=0.025)


def test_inference_is_the_identity():
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    np.testing.assert_array_equal(GaussianNoise(1.0)(x, training=False), x)


@pytest.mark.parametrize("stddev", [-0.5, float("nan"), "1"])
def test_bad_stddev_is_refused(stddev):
    with pytest.raises(ValueError, match="stddev"):
        GaussianNoise(stddev)


def test_round_trips_models_and_mixed_precision():
    check_config_round_trip(GaussianNoise(0.3, seed=2, name="noise"))
    check_save_load(
        keras.Sequential([keras.Input((3,)), GaussianNoise(0.3)]), np.ones((2, 3), "float32")
    )
    check_in_models(lambda: GaussianNoise(0.2, seed=1), (5,))
    for policy in MIXED_POLICIES:
        check_mixed_precision(
            lambda: GaussianNoise(0.2, seed=1), np.ones((4, 5), "float32"), policy
        )
