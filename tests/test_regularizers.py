import math

import keras
import numpy as np
import pytest

from tfnn import losses, regularizers
from tfnn.layers import Dense
from tfnn.testing import SEEDS, check_config_round_trip, check_gradient

CASES = [
    (regularizers.L1(0.3), keras.regularizers.L1(0.3)),
    (regularizers.L2(0.3), keras.regularizers.L2(0.3)),
    (regularizers.L1L2(0.2, 0.05), keras.regularizers.L1L2(0.2, 0.05)),
]


@pytest.mark.parametrize("ours, theirs", CASES, ids=["L1", "L2", "L1L2"])
@pytest.mark.parametrize("shape", [(5,), (4, 3), (3, 3, 2, 4)])
@pytest.mark.parametrize("seed", SEEDS)
def test_equals_keras_twin_in_value_and_gradient(ours, theirs, shape, seed):
    theta = np.random.default_rng(seed).normal(size=shape)
    theta[np.abs(theta) < 1e-2] = 0.5  # |θ| has a kink at 0
    check_gradient(ours, theirs, [theta], seed=seed)


def one_sgd_step(regularizer, learning_rate=0.1, seed=0):
    """One Model.fit step of a bias-free Dense layer on mean MSE: (W_before, W_after, ∂J/∂W)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(8, 5)).astype("float32")
    y = rng.normal(size=(8, 3)).astype("float32")
    model = keras.Sequential(
        [keras.Input((5,)), Dense(3, use_bias=False, kernel_regularizer=regularizer)]
    )
    model.compile(keras.optimizers.SGD(learning_rate), losses.MeanSquaredError())
    before = model.get_weights()[0].astype(np.float64)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = model.get_weights()[0].astype(np.float64)
    # J = (1/(B·h)) Σ (xW − y)²  ⇒  ∂J/∂W = 2 xᵀ(xW − y) / (B·h)
    grad_j = 2 * x.T.astype(np.float64) @ (x @ before - y) / (8 * 3)
    return before, after, grad_j


def test_l2_step_is_weight_decay():
    """D2: θ ← θ − α∂J/∂θ − 2αλθ."""
    alpha, lam = 0.1, 0.25
    theta, stepped, grad_j = one_sgd_step(regularizers.L2(lam), alpha)
    np.testing.assert_allclose(stepped, theta - alpha * grad_j - 2 * alpha * lam * theta, atol=1e-6)


def test_l1_step_subtracts_a_constant_times_the_sign():
    """D4: θ ← θ − α∂J/∂θ − αλ·sign(θ)."""
    alpha, lam = 0.1, 0.25
    theta, stepped, grad_j = one_sgd_step(regularizers.L1(lam), alpha)
    np.testing.assert_allclose(
        stepped, theta - alpha * grad_j - alpha * lam * np.sign(theta), atol=1e-6
    )


def test_l1_makes_weights_sparse_and_l2_does_not():
    """D4: with 2 of 20 inputs relevant, L1 pushes the others to ≈ 0; L2 only shrinks them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 20)).astype("float32")
    y = (2.0 * x[:, :1] - 3.0 * x[:, 1:2]).astype("float32")

    def trained_kernel(regularizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((20,)), Dense(1, kernel_regularizer=regularizer)])
        model.compile(keras.optimizers.SGD(0.01), losses.MeanSquaredError())
        model.fit(x, y, batch_size=64, epochs=60, verbose=0)
        return np.abs(model.get_weights()[0][2:, 0])

    l1, l2 = trained_kernel(regularizers.L1(0.05)), trained_kernel(regularizers.L2(0.05))
    # Plain (sub)gradient steps leave L1's zeros jittering within α·λ = 5e-4 of 0.
    assert np.all(l1 < 1e-3)
    assert np.median(l2) > 10 * np.median(l1)


@pytest.mark.parametrize("stddev, n", [(0.5, 1), (2.0, 1000)])
def test_l2_from_gaussian_prior_is_the_negative_log_prior(stddev, n):
    """D3: N·λ‖θ‖² = −log N(θ; 0, σ²) + const, i.e. λ = 1/(2σ²N)."""
    reg = regularizers.L2.from_gaussian_prior(stddev, num_examples=n)
    assert reg.l2 == pytest.approx(1 / (2 * stddev**2 * n))
    rng = np.random.default_rng(0)
    offsets = []
    for _ in range(4):
        theta = rng.normal(scale=3.0, size=(7,))
        neg_log_prior = np.sum(
            theta**2 / (2 * stddev**2) + math.log(stddev * math.sqrt(2 * math.pi))
        )
        offsets.append(n * float(reg(theta)) - neg_log_prior)
    np.testing.assert_allclose(offsets, offsets[0], atol=1e-9)  # differ only by a constant


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: regularizers.L1(-0.1), "l1"),
        (lambda: regularizers.L2(-1e-3), "l2"),
        (lambda: regularizers.L1L2(0.1, float("nan")), "l2"),
        (lambda: regularizers.L2.from_gaussian_prior(0.0), "stddev"),
        (lambda: regularizers.L2.from_gaussian_prior(1.0, num_examples=0), "num_examples"),
    ],
)
def test_bad_strengths_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("reg", [c[0] for c in CASES], ids=["L1", "L2", "L1L2"])
def test_config_round_trip(reg):
    check_config_round_trip(reg)
