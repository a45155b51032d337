"""The harness fails on broken components: none of its checks passes vacuously."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import losses
from tfnn.layers import Dense, Dropout
from tfnn.testing import (
    check_config_round_trip,
    check_copies,
    check_gradient,
    check_layer_parity,
    check_loss_parity,
    check_mixed_precision,
    sample_moments_close,
)


def nll_with_gradient(rule):
    """Softmax NLL of one-hot gold whose custom gradient is rule(dy, o, g)."""

    @tf.custom_gradient
    def nll(gold, logits):
        loss = -tf.reduce_sum(gold * tf.nn.log_softmax(logits), axis=-1)

        def grad(dy):
            return None, rule(dy, tf.nn.softmax(logits), gold)

        return loss, grad

    return lambda gold, logits: nll(
        tf.one_hot(tf.cast(gold, tf.int32), logits.shape[-1], dtype=logits.dtype), logits
    )


CORRECT = nll_with_gradient(lambda dy, o, g: dy[:, None] * (o - g))
BROKEN = {
    "ignores dy": nll_with_gradient(lambda dy, o, g: o - g),
    "wrong sign": nll_with_gradient(lambda dy, o, g: dy[:, None] * (g - o)),
    "missing factor": nll_with_gradient(lambda dy, o, g: dy[:, None] * o),
}


def reference(gold, logits):
    return losses.softmax_nll(gold, logits)


def test_check_gradient_accepts_the_correct_gradient():
    logits = np.random.default_rng(0).normal(size=(5, 4))
    check_gradient(
        lambda z: CORRECT([0, 1, 2, 3, 0], z), lambda z: reference([0, 1, 2, 3, 0], z), [logits]
    )


@pytest.mark.parametrize("defect", list(BROKEN))
def test_check_gradient_catches(defect):
    logits = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(AssertionError):
        check_gradient(
            lambda z: BROKEN[defect]([0, 1, 2, 3, 0], z),
            lambda z: reference([0, 1, 2, 3, 0], z),
            [logits],
        )


class LossFrom(keras.losses.Loss):
    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


@pytest.mark.parametrize("defect", list(BROKEN))
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "none"])
def test_check_loss_parity_catches(defect, reduction):
    logits = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    gold = np.array([0, 1, 2, 0, 1, 2])
    twin = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction)
    check_loss_parity(LossFrom(CORRECT, reduction=reduction), twin, gold, logits)
    with pytest.raises(AssertionError):
        check_loss_parity(LossFrom(BROKEN[defect], reduction=reduction), twin, gold, logits)


class DenseWithoutBias(Dense):
    def call(self, inputs):
        return self.activation(tf.matmul(inputs, self.kernel))


def test_check_layer_parity_catches_a_missing_bias():
    x = np.ones((2, 3), "float32")
    theirs = keras.layers.Dense(2, bias_initializer="ones")
    with pytest.raises(AssertionError, match="output"):
        check_layer_parity(DenseWithoutBias(2), theirs, x)


def test_check_layer_parity_catches_a_different_dropout_mask():
    x = np.ones((8, 8), "float32")
    with pytest.raises(AssertionError):
        check_layer_parity(
            Dropout(0.5, seed=1), keras.layers.Dropout(0.5, seed=2), x, training=True
        )


class ForgetfulDropout(Dropout):
    def get_config(self):
        config = super().get_config()
        del config["inverted"]
        return config


def test_check_config_round_trip_catches_a_missing_argument():
    with pytest.raises(AssertionError):
        check_config_round_trip(ForgetfulDropout(0.5, inverted=False))


def test_check_copies_catches_preprocessing_left_out_of_a_copy():
    """An adapted Keras Normalization keeps its statistics outside config and weights' reach."""
    x = 50.0 + 10.0 * np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    normalization = keras.layers.Normalization()
    normalization.adapt(x)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Dense(2)(normalization(inputs)))
    with pytest.raises(AssertionError, match="clone_model"):
        check_copies(model, x)
    standardized = keras.Model(
        inputs, Dense(2)(keras.layers.Normalization(mean=x.mean(0), variance=x.var(0))(inputs))
    )
    check_copies(standardized, x, atol=1e-5)


class Float32Output(keras.layers.Layer):
    def call(self, inputs):
        return tf.cast(inputs, tf.float32)


def test_check_mixed_precision_catches_an_output_in_the_wrong_dtype():
    with pytest.raises(AssertionError, match="output"):
        check_mixed_precision(Float32Output, np.ones((2, 3), "float32"), "mixed_float16")


def test_sample_moments_close_catches_a_wrong_variance_and_a_shifted_mean():
    sample = np.random.default_rng(0).normal(size=100_000)
    sample_moments_close(sample, mean=0.0, variance=1.0, variance_rtol=0.02)
    with pytest.raises(AssertionError, match="variance"):
        sample_moments_close(sample * 1.1, mean=0.0, variance=1.0, variance_rtol=0.02)
    with pytest.raises(AssertionError, match="mean"):
        sample_moments_close(sample + 0.05, mean=0.0, variance=1.0, variance_rtol=0.02)
