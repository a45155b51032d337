import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn.layers import Dropout, MonteCarloDropout
from tfnn.testing import (
    MIXED_POLICIES,
    SEEDS,
    check_config_round_trip,
    check_in_models,
    check_layer_parity,
    check_mixed_precision,
    check_save_load,
)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "shape, noise_shape", [((8, 6), None), ((4, 5, 6), (None, 1, 6)), ((4, 5, 6), (4, 5, 1))]
)
@pytest.mark.parametrize("training", [True, False])
def test_equals_keras_dropout_with_the_same_seed(rate, seed, shape, noise_shape, training):
    x = np.random.default_rng(seed).normal(size=shape).astype("float32")
    check_layer_parity(
        Dropout(rate, noise_shape=noise_shape, seed=seed),
        keras.layers.Dropout(rate, noise_shape=noise_shape, seed=seed),
        x,
        training=training,
    )


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("inverted", [True, False])
def test_drops_units_with_probability_p_and_scales_the_rest(rate, inverted):
    x = np.full((400, 250), 3.0, "float32")  # 100,000 units
    y = np.asarray(Dropout(rate, seed=0, inverted=inverted)(x, training=True))
    dropped = y == 0
    # Binomial standard error √(p(1−p)/N) ≤ 0.0016: within 5 of them.
    assert abs(dropped.mean() - rate) < 0.008
    np.testing.assert_allclose(y[~dropped], 3.0 / (1 - rate) if inverted else 3.0, rtol=1e-6)


@pytest.mark.parametrize("rate", [0.3, 0.7])
@pytest.mark.parametrize("inverted", [True, False])
def test_inference_output_is_the_expected_training_output(rate, inverted):
    """D7: both rules give inference the training pass's expectation."""
    x = np.random.default_rng(0).normal(size=(1, 50)).astype("float32")
    layer = Dropout(rate, seed=1, inverted=inverted)
    mean = np.mean([layer(x, training=True) for _ in range(4000)], axis=0)
    inference = np.asarray(layer(x, training=False))
    np.testing.assert_allclose(inference, x if inverted else (1 - rate) * x, rtol=1e-6)
    # Standard error of the mean of 4,000 masks is |x|·√(p/(1−p)/4000) ≤ 0.025·|x|.
    np.testing.assert_allclose(mean, inference, atol=0.13 * np.abs(x).max())


def test_every_call_draws_a_new_mask_and_the_seed_repeats_them():
    x = np.ones((10, 10), "float32")
    a, b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    first, second = a(x, training=True), a(x, training=True)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, b(x, training=True))


def test_gradient_flows_only_through_kept_units():
    x = tf.ones((6, 8))
    layer = Dropout(0.5, seed=0)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grad = tape.gradient(y, x)
    np.testing.assert_allclose(grad, np.where(np.asarray(y) == 0, 0.0, 2.0))


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.5", None])
def test_rate_outside_zero_one_is_refused(rate):
    with pytest.raises(ValueError, match="rate"):
        Dropout(rate)


@pytest.mark.parametrize("noise_shape", ["batch", (4, 0), (4, 1.5)])
def test_bad_noise_shape_is_refused(noise_shape):
    with pytest.raises(ValueError, match="noise_shape"):
        Dropout(0.5, noise_shape=noise_shape)


def test_config_and_save_load_round_trips():
    layer = Dropout(0.25, noise_shape=(None, 1, 4), seed=5, inverted=False, name="drop")
    check_config_round_trip(layer)
    model = keras.Sequential(
        [keras.Input((3, 4)), Dropout(0.3, seed=1, inverted=False), keras.layers.Flatten()]
    )
    check_save_load(model, np.ones((2, 3, 4), "float32"))


@pytest.mark.parametrize("inverted", [True, False])
def test_trains_inside_every_kind_of_model(inverted):
    check_in_models(lambda: Dropout(0.3, seed=0, inverted=inverted), (6,))


@pytest.mark.parametrize("policy", MIXED_POLICIES)
@pytest.mark.parametrize("inverted", [True, False])
def test_mixed_precision(policy, inverted):
    check_mixed_precision(
        lambda: Dropout(0.4, seed=0, inverted=inverted), np.ones((4, 8), "float32"), policy
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_monte_carlo_dropout_at_inference_equals_keras_dropout_in_training(seed, rate):
    x = tf.constant(np.random.default_rng(seed).normal(size=(8, 6)).astype("float32"))
    ours, theirs = MonteCarloDropout(rate, seed=seed), keras.layers.Dropout(rate, seed=seed)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        our_out, their_out = ours(x, training=False), theirs(x, training=True)
    np.testing.assert_allclose(our_out, their_out, rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(our_out, x), tape.gradient(their_out, x), rtol=1e-6)
    assert not np.allclose(ours(x, training=False), our_out)  # a new sub-network every call


def test_monte_carlo_dropout_round_trips_trains_and_runs_mixed():
    check_config_round_trip(MonteCarloDropout(0.3, noise_shape=(None, 1), seed=2, inverted=False))
    check_in_models(lambda: MonteCarloDropout(0.3, seed=0), (6,))
    for policy in MIXED_POLICIES:
        check_mixed_precision(
            lambda: MonteCarloDropout(0.4, seed=0),
            np.ones((4, 8), "float32"),
            policy,
            training=False,
        )
    with pytest.raises(ValueError, match="rate"):
        MonteCarloDropout(1.0)


@pytest.mark.parametrize("noise_shape", [(5, 5), (2, 3, 1), (1,), (2, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_a_noise_shape_that_does_not_broadcast_is_refused_at_call(noise_shape, training):
    """Catches `_mask_shape` unchecked: (5, 5) against a (2, 3) input raised
    InvalidArgumentError from inside the random op (and passed silently at inference)."""
    with pytest.raises(ValueError, match=r"noise_shape=\(.*input's shape \(2, 3\)|shape \(2, 3\)"):
        Dropout(0.5, noise_shape=noise_shape)(np.ones((2, 3), "float32"), training=training)


@pytest.mark.parametrize("noise_shape", [(2, 3), (1, 3), (None, 1), (2, None)])
def test_a_noise_shape_that_broadcasts_is_accepted(noise_shape):
    """The limits: each size equal to the input's, 1 or None."""
    y = Dropout(0.5, noise_shape=noise_shape, seed=1)(np.ones((2, 3), "float32"), training=True)
    assert set(np.unique(y.numpy())) <= {0.0, 2.0}
