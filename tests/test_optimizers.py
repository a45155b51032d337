import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import losses, optimizers, regularizers
from tfnn.layers import Dense
from tfnn.testing import dtype_policy


def test_soft_threshold_shrinks_towards_zero_and_stops_there():
    w = tf.constant([-3.0, -0.5, 0.0, 0.2, 2.0])
    np.testing.assert_allclose(optimizers.soft_threshold(w, 1.0), [-2.0, 0.0, 0.0, 0.0, 1.0])


def test_proximal_sgd_step_is_soft_thresholded_gradient_step():
    """D4, proximal form: θ ← S_{αλ}(θ − α∂J/∂θ); the bias has no penalty."""
    alpha, lam = 0.1, 0.5
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 5)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
    model = keras.Sequential([keras.Input((5,)), Dense(3)])
    model.compile(
        optimizers.ProximalL1(keras.optimizers.SGD(alpha), l1=lam), losses.MeanSquaredError()
    )
    w, b = (v.astype(np.float64) for v in model.get_weights())
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    residual = 2 * (x @ w + b - y) / (8 * 3)  # ∂J/∂ŷ of the mean squared error
    stepped = w - alpha * x.T @ residual
    expected = np.sign(stepped) * np.maximum(np.abs(stepped) - alpha * lam, 0.0)
    np.testing.assert_allclose(model.get_weights()[0], expected, atol=1e-6)
    np.testing.assert_allclose(model.get_weights()[1], b - alpha * residual.sum(0), atol=1e-6)


def sparse_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 20)).astype("float32")
    return x, (2.0 * x[:, :1] - 3.0 * x[:, 1:2]).astype("float32")


def trained_kernel(optimizer, regularizer=None, policy="float32"):
    x, y = sparse_problem()
    with dtype_policy(policy):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((20,)), Dense(1, kernel_regularizer=regularizer, dtype="float32")]
        )
        model.compile(optimizer, losses.MeanSquaredError())
        model.fit(x, y, batch_size=64, epochs=40, verbose=0)
    return model.get_weights()[0][:, 0]


@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_proximal_l1_sets_irrelevant_weights_to_exactly_zero(policy):
    kernel = trained_kernel(
        optimizers.ProximalL1(keras.optimizers.SGD(0.05), l1=0.05), policy=policy
    )
    assert np.all(kernel[2:] == 0.0)
    assert kernel[0] > 1.5 and kernel[1] < -2.5


def test_the_subgradient_penalty_leaves_no_exact_zeros():
    kernel = trained_kernel(keras.optimizers.SGD(0.05), regularizers.L1(0.05))
    assert np.all(kernel[2:] != 0.0) and np.all(np.abs(kernel[2:]) < 0.01)


def test_wrappers_nest_and_save(tmp_path):
    from tfnn.clipping import ClipGradients

    optimizer = ClipGradients(
        optimizers.ProximalL1(keras.optimizers.Adam(0.01), l1=1e-3), "norm", 1.0
    )
    model = keras.Sequential([keras.Input((3,)), Dense(2)])
    model.compile(optimizer, losses.SoftmaxNLL())
    model.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), verbose=0)
    assert optimizer.iterations.numpy() == 1
    assert optimizer.learning_rate.numpy() == pytest.approx(0.01)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras").optimizer
    proximal = optimizers.find(loaded, optimizers.ProximalL1)
    assert (proximal.l1, proximal.variable_names) == (1e-3, ["kernel"])
    assert isinstance(proximal.inner_optimizer, keras.optimizers.Adam)
    assert optimizers.find(loaded, ClipGradients).mode == "norm"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optimizers.ProximalL1(keras.optimizers.SGD(), l1=-1.0), "l1"),
        (lambda: optimizers.ProximalL1(keras.optimizers.SGD(), l1=0.1, clipnorm=1.0), "clipnorm"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_proximal_step_under_a_schedule_uses_the_steps_own_learning_rate():
    """θ ← S_{α_k λ}(θ − α_k g) with α_k the schedule's rate at step k (α₀ = 1, α₁ = 0.1)."""
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0], [1.0, 0.1])
    optimizer = optimizers.ProximalL1(keras.optimizers.SGD(schedule), l1=0.3)
    kernel = keras.Variable(np.array([3.0, -0.5, 0.2], "float32"), name="kernel")
    zero = tf.zeros(3)
    optimizer.apply([zero], [kernel])  # threshold α₀λ = 0.3
    np.testing.assert_allclose(kernel.numpy(), [2.7, -0.2, 0.0], rtol=1e-6)
    optimizer.apply([zero], [kernel])  # threshold α₁λ = 0.03
    np.testing.assert_allclose(kernel.numpy(), [2.67, -0.17, 0.0], rtol=1e-6)
