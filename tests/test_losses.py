import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import losses
from tfnn.layers import Dense
from tfnn.testing import (
    SEEDS,
    assert_close,
    check_config_round_trip,
    check_gradient,
    check_loss_parity,
    check_save_load,
    dtype_policy,
)

SHAPES = [(4, 3), (16, 10), (2, 3, 5)]  # [..., K]
REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean_with_sample_weight"]


def logits_and_gold(shape, seed):
    """Random logits, class indices, and gold distributions (rows sum to 1)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=shape)
    indices = rng.integers(0, shape[-1], size=shape[:-1])
    gold = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    return logits, indices, gold


# -- the lecture's gradients, literally ------------------------------------------------------


def grad_of_sum(fn, gold, logits):
    logits = tf.convert_to_tensor(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = tf.reduce_sum(fn(gold, logits))
    return tape.gradient(loss, logits)


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_nll_gradient_is_o_minus_one_hot(shape):
    """C3: ∂(−log o_gold)/∂z = o − 1_gold."""
    logits, indices, _ = logits_and_gold(shape, 0)
    expected = tf.nn.softmax(logits) - tf.one_hot(indices, shape[-1], dtype=tf.float64)
    assert_close(grad_of_sum(losses.softmax_nll, indices, logits), expected, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_softmax_nll_gradient_is_o_minus_g(shape):
    """C4: ∂(−Σ g log o)/∂z = o − g."""
    logits, _, gold = logits_and_gold(shape, 1)
    expected = tf.nn.softmax(logits) - gold
    assert_close(grad_of_sum(losses.softmax_nll, gold, logits), expected, atol=1e-12)


def test_sigmoid_nll_gradient_is_o_minus_g():
    """C5: ∂L/∂z = σ(z) − g for one outcome per example."""
    rng = np.random.default_rng(2)
    logits, gold = rng.normal(size=(8, 1)), rng.uniform(size=(8, 1))
    expected = tf.math.sigmoid(logits) - gold
    assert_close(grad_of_sum(losses.sigmoid_nll, gold, logits), expected, atol=1e-12)


def test_mean_squared_error_gradient_is_two_times_the_error():
    """C1: ∂(ŷ − y)²/∂ŷ = 2(ŷ − y) for one target per example."""
    rng = np.random.default_rng(3)
    prediction, target = rng.normal(size=(8, 1)), rng.normal(size=(8, 1))
    assert_close(
        grad_of_sum(losses.mean_squared_error, target, prediction),
        2 * (prediction - target),
        atol=1e-12,
    )


# -- explicit gradients vs autodiff and finite differences -----------------------------------


def reference_softmax_nll(gold, logits):
    return -tf.reduce_sum(gold * tf.nn.log_softmax(logits), axis=-1)


def reference_sigmoid_nll(gold, logits):
    per_target = gold * tf.math.softplus(-logits) + (1 - gold) * tf.math.softplus(logits)
    return tf.reduce_mean(per_target, axis=-1)


def reference_mean_squared_error(target, prediction):
    return tf.reduce_mean(tf.square(prediction - target), axis=-1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_nll_of_indices_matches_autodiff_and_finite_differences(shape, seed):
    logits, indices, _ = logits_and_gold(shape, seed)
    one_hot = tf.one_hot(indices, shape[-1], dtype=tf.float64)
    check_gradient(
        lambda z: losses.softmax_nll(indices, z),
        lambda z: reference_softmax_nll(one_hot, z),
        [logits],
        seed=seed,
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_softmax_nll_of_distributions_matches_autodiff_and_finite_differences(
    shape, seed, label_smoothing
):
    logits, _, gold = logits_and_gold(shape, seed)
    k = shape[-1]
    check_gradient(
        lambda g, z: losses.softmax_nll(g, z, label_smoothing),
        lambda g, z: reference_softmax_nll((1 - label_smoothing) * g + label_smoothing / k, z),
        [gold, logits],
        seed=seed,
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_sigmoid_nll_matches_autodiff_and_finite_differences(shape, seed, label_smoothing):
    rng = np.random.default_rng(seed)
    logits, gold = rng.normal(scale=3.0, size=shape), rng.uniform(size=shape)
    check_gradient(
        lambda g, z: losses.sigmoid_nll(g, z, label_smoothing),
        lambda g, z: reference_sigmoid_nll((1 - label_smoothing) * g + label_smoothing / 2, z),
        [gold, logits],
        seed=seed,
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_mean_squared_error_matches_autodiff_and_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    check_gradient(
        losses.mean_squared_error,
        reference_mean_squared_error,
        [rng.normal(size=shape), rng.normal(size=shape)],
        seed=seed,
    )


def test_kl_divergence_is_nll_minus_gold_entropy_with_gradient_o_minus_g():
    """B3: D_KL(g‖softmax z) = H(g, o) − H(g), so it shares C4's gradient o − g."""
    logits, _, gold = logits_and_gold((6, 5), 4)
    entropy = -np.sum(gold * np.log(gold), axis=-1)
    kl = losses.kl_divergence(gold, tf.nn.softmax(logits))
    assert_close(kl, losses.softmax_nll(gold, logits) - entropy, atol=1e-12)
    expected = tf.nn.softmax(logits) - gold
    assert_close(
        grad_of_sum(lambda g, z: losses.kl_divergence(g, tf.nn.softmax(z)), gold, logits),
        expected,
        atol=1e-12,
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_kl_divergence_of_one_hot_gold_and_zero_probabilities_equals_keras(reduction):
    """B3 with Keras's clipping of g and o to [ε, 1]: 0·log 0 counts as 0 and o = 0 under
    g > 0 costs log(1/ε), finite, as keras.losses.KLDivergence gives (value and gradient)."""
    gold = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    predicted = np.array(
        [[0.7, 0.3, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], "float32"
    )
    check_loss_parity(
        losses.KLDivergence(reduction=reduction),
        keras.losses.KLDivergence(reduction=reduction),
        gold,
        predicted,
    )
    epsilon = keras.config.epsilon()
    by_hand = [-np.log(0.7), 0.0, np.log(1 / epsilon), 0.0]  # Σ over the gold class only
    assert_close(losses.kl_divergence(gold, predicted), by_hand, rtol=1e-4, atol=1e-5)


# -- equal to the Keras losses, under every reduction and with sample weights ----------------


def parity_cases(shape, seed):
    """(tfnn loss, Keras twin, y_true, y_pred) for every loss and kind of gold."""
    logits, indices, gold = logits_and_gold(shape, seed)
    logits = logits.astype("float32")
    rng = np.random.default_rng(seed)
    binary_gold = rng.integers(0, 2, size=shape).astype("float32")
    targets = rng.normal(size=shape).astype("float32")
    one_hot = np.eye(shape[-1], dtype="float32")[indices]
    return {
        "indices": (
            losses.SoftmaxNLL,
            keras.losses.SparseCategoricalCrossentropy,
            {"from_logits": True},
            indices,
            logits,
        ),
        "indices_column": (
            losses.SoftmaxNLL,
            keras.losses.SparseCategoricalCrossentropy,
            {"from_logits": True},
            indices[..., None],
            logits,
        ),
        "distribution": (
            losses.SoftmaxNLL,
            keras.losses.CategoricalCrossentropy,
            {"from_logits": True},
            gold,
            logits,
        ),
        "smoothed_indices": (
            lambda **kw: losses.SoftmaxNLL(0.1, **kw),
            keras.losses.CategoricalCrossentropy,
            {"from_logits": True, "label_smoothing": 0.1},
            (indices, one_hot),
            logits,
        ),
        "smoothed_distribution": (
            lambda **kw: losses.SoftmaxNLL(0.2, **kw),
            keras.losses.CategoricalCrossentropy,
            {"from_logits": True, "label_smoothing": 0.2},
            gold,
            logits,
        ),
        "sigmoid": (
            losses.SigmoidNLL,
            keras.losses.BinaryCrossentropy,
            {"from_logits": True},
            binary_gold,
            logits,
        ),
        "smoothed_sigmoid": (
            lambda **kw: losses.SigmoidNLL(0.1, **kw),
            keras.losses.BinaryCrossentropy,
            {"from_logits": True, "label_smoothing": 0.1},
            binary_gold,
            logits,
        ),
        "mse": (losses.MeanSquaredError, keras.losses.MeanSquaredError, {}, targets, logits),
        "kl": (
            losses.KLDivergence,
            keras.losses.KLDivergence,
            {},
            gold.astype("float32"),
            tf.nn.softmax(logits),
        ),
    }


@pytest.mark.parametrize("case", list(parity_cases((2, 3), 0)))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_equals_keras_loss_in_value_and_gradient(case, reduction, shape, weighted):
    ours, theirs, their_kwargs, y_true, y_pred = parity_cases(shape, SEEDS[1])[case]
    our_true, their_true = y_true if isinstance(y_true, tuple) else (y_true, y_true)
    weights = (
        np.random.default_rng(5).uniform(size=shape[:-1]).astype("float32") if weighted else None
    )
    check_loss_parity(
        ours(reduction=reduction),
        theirs(reduction=reduction, **their_kwargs),
        our_true,
        y_pred,
        sample_weight=weights,
        their_y_true=their_true,
        rtol=1e-5,
        atol=1e-6,
    )


def test_label_smoothing_option_equals_smoothing_the_gold_by_hand():
    logits, indices, _ = logits_and_gold((8, 5), 6)
    smoothed = 0.9 * np.eye(5)[indices] + 0.1 / 5
    assert_close(
        losses.SoftmaxNLL(0.1)(indices, logits), losses.SoftmaxNLL()(smoothed, logits), rtol=1e-6
    )


# -- mixed precision -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "fn, gold",
    [
        (losses.softmax_nll, np.array([0, 2, 1])),
        (losses.softmax_nll, np.eye(3)[[2, 0, 1]]),
        (losses.sigmoid_nll, np.array([[1.0, 0.0, 1.0]] * 3)),
        (losses.mean_squared_error, np.ones((3, 3))),
    ],
)
def test_half_precision_inputs_give_float32_loss_and_gradient_in_their_own_dtype(dtype, fn, gold):
    logits = tf.constant([[1.0, 2.0, 3.0], [1e4, -1e4, 0.0], [0.5, 0.5, 0.5]], dtype)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = fn(gold, logits)
    grad = tape.gradient(loss, logits)
    assert loss.dtype == tf.float32
    assert grad.dtype == dtype
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(tf.cast(grad, tf.float32)))


def first_sgd_step(policy, weights, x, y):
    """The weight change of one SGD step of a softmax classifier trained with SoftmaxNLL."""
    with dtype_policy(policy):
        model = keras.Sequential(
            [
                keras.Input((x.shape[1],)),
                Dense(16, "relu"),
                Dense(4),
                keras.layers.Activation("linear", dtype="float32"),
            ]
        )
        model.set_weights(weights)
        model.compile(keras.optimizers.SGD(0.5), losses.SoftmaxNLL())
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        return [after - before for after, before in zip(model.get_weights(), weights, strict=True)]


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_step_equals_the_float32_step(policy):
    """The gradient honours dy: the loss scale (float16) and the mean's 1/B cancel exactly."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32")
    y = rng.integers(0, 4, size=32)
    weights = [
        w.astype("float32")
        for w in (
            rng.normal(scale=0.3, size=(8, 16)),
            np.zeros(16),
            rng.normal(scale=0.3, size=(16, 4)),
            np.zeros(4),
        )
    ]
    reference = first_sgd_step("float32", weights, x, y)
    for ours, expected in zip(first_sgd_step(policy, weights, x, y), reference, strict=True):
        # Half-precision forward passes: agreement to 3% of the step's largest entry.
        assert_close(ours, expected, rtol=0, atol=0.03 * np.abs(expected).max() + 1e-7, what=policy)


def test_fit_with_jit_compile_equals_fit_without():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 4, size=64)
    histories = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), Dense(4)])
        model.compile(keras.optimizers.SGD(0.1), losses.SoftmaxNLL(0.1), jit_compile=jit)
        histories.append(model.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-5)


# -- extreme inputs --------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_huge_logits_give_finite_losses_and_gradients(scale):
    logits = tf.constant([[scale, 0.0, -scale], [0.0, scale, 0.0]], tf.float32)
    for fn, gold in [
        (losses.softmax_nll, [2, 1]),
        (losses.sigmoid_nll, [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]),
    ]:
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = fn(gold, logits)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(tape.gradient(loss, logits)))
    # Class 2 (logit −scale) lies 2·scale below the best logit if scale > 0, else it is the best.
    expected = 2 * scale if scale > 0 else 0.0
    assert float(losses.softmax_nll([2], logits[:1])[0]) == pytest.approx(expected, abs=1e-3)


def test_equal_logits_give_log_k():
    np.testing.assert_allclose(
        losses.softmax_nll([0, 3], tf.zeros([2, 5])), [np.log(5)] * 2, rtol=1e-6
    )


# -- bad input, configuration, saving --------------------------------------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.softmax_nll(np.zeros((4, 3)), np.zeros((4, 5))), "y_true.shape"),
        (lambda: losses.softmax_nll(np.zeros((4, 2, 1)), np.zeros((4, 5))), "y_true.shape"),
        (lambda: losses.sigmoid_nll(np.zeros((4, 2)), np.zeros((4, 3))), "y_true.shape"),
        (lambda: losses.mean_squared_error(np.zeros((5, 1)), np.zeros((4, 1))), "y_true.shape"),
        (lambda: losses.SoftmaxNLL(label_smoothing=1.5), "label_smoothing"),
        (lambda: losses.SigmoidNLL(label_smoothing=-0.1), "label_smoothing"),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "loss",
    [
        losses.SoftmaxNLL(0.1, reduction="sum", name="nll"),
        losses.SigmoidNLL(0.05),
        losses.MeanSquaredError(reduction="none"),
        losses.KLDivergence(dtype="float64"),
    ],
)
def test_config_round_trip(loss):
    check_config_round_trip(loss)


def test_a_saved_model_keeps_its_tfnn_loss():
    model = keras.Sequential([keras.Input((3,)), Dense(4)])
    model.compile("sgd", losses.SoftmaxNLL(label_smoothing=0.1))
    model.fit(np.ones((4, 3)), np.array([0, 1, 2, 3]), verbose=0)
    loaded = check_save_load(model, np.ones((2, 3), "float32"))
    assert isinstance(loaded.loss, losses.SoftmaxNLL)
    assert loaded.loss.label_smoothing == 0.1


@pytest.mark.parametrize("labels", [[0, 5], [-1, 0], [3, 1], [[0], [3]]])
def test_a_class_index_outside_the_classes_is_refused_like_keras(labels):
    """Catches `one_hot(cast(gold, int32), classes)` unchecked: an out-of-range label is a
    row of zeros, its loss 0 (0.404 for [0, 5]), where Keras raises InvalidArgumentError."""
    logits = tf.constant(np.random.default_rng(0).normal(size=(2, 3)), tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside the valid range \[0, 3\)"):
        losses.SoftmaxNLL()(np.array(labels), logits)
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the valid range"):
        with tf.GradientTape() as tape:  # the explicit gradient path: never reached with 0s
            tape.watch(logits)
            loss = losses.softmax_nll(np.array(labels, "float32"), logits)
        tape.gradient(loss, logits)


def test_fit_with_an_out_of_range_label_fails_like_keras():
    """Catches the unchecked one_hot inside a compiled train step (a tf.function): fit
    trained on with the bad example's loss 0."""
    model = keras.Sequential([keras.Input((2,)), Dense(3)])
    model.compile("sgd", losses.SoftmaxNLL())
    with pytest.raises(tf.errors.InvalidArgumentError, match="Label values:"):
        model.fit(np.ones((4, 2)), np.array([0, 1, 2, 3]), batch_size=4, verbose=0)


def test_the_last_class_index_is_accepted():
    """The limit: K − 1 is a class (catches `indices < classes - 1` or `<=`)."""
    logits = tf.zeros([2, 3])
    np.testing.assert_allclose(losses.softmax_nll([2, 0], logits), [np.log(3)] * 2, rtol=1e-6)


def test_sigmoid_nll_refuses_no_target_keras_accepts():
    """Keras's BinaryCrossentropy(from_logits=True) takes any target (even −1 or 5): the
    formula max(z, 0) − g·z + log(1 + e^{−|z|}) is applied as written; so is ours."""
    gold, logits = np.array([[-1.0], [5.0]]), np.array([[0.3], [-0.7]], "float32")
    expected = keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")(gold, logits)
    assert_close(losses.SigmoidNLL(reduction="none")(gold, logits), expected, rtol=1e-6)
