"""Normalization layers (docs/lecture.md B5).

Both standardize activations and then rescale them with learned γ and β:

    y = γ · (x − μ) / √(σ² + ε) + β

and differ in what μ and σ² average over:

    BatchNormalization   per feature (channel), over the batch and every
                         spatial position. In training the batch's own μ_B,
                         σ²_B are used and running averages are updated,
                             μ̂ ← m·μ̂ + (1 − m)·μ_B,   σ̂² ← m·σ̂² + (1 − m)·σ²_B,
                         and at inference μ̂, σ̂² are used, so a prediction does
                         not depend on the rest of its batch.
    LayerNormalization   per example, over its features (the `axis`); the
                         same in training and inference.

Statistics are computed in float32 even for half-precision inputs (sums of
squares overflow float16), and the result is cast back.
"""

import keras
import tensorflow as tf

from tfnn import _dtypes, constraints, initializers, regularizers, validation


def _axes(axis):
    return list(validation.integers("axis", axis, single=True))


class _Normalization(keras.layers.Layer):
    """γ and β over the normalized axes, and the standardization shared by both layers.

    Weights are kept out of Keras's autocasting: all arithmetic runs in float32.
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.axis = _axes(axis)
        self.epsilon = validation.number("epsilon", epsilon, low=0, low_open=True)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True

    def _parameter_shape(self, input_shape):
        """The shape of γ and β: the sizes of `self.axis`, made non-negative first."""
        rank = len(input_shape)
        validation.axes("axis", self.axis, rank)  # a % rank would wrap axis=5 silently
        self.axis = sorted(a % rank for a in self.axis)
        if 0 in self.axis:
            raise ValueError(
                f"Expected `axis` not to include the batch axis 0. Received: axis={self.axis}"
            )
        shape = tuple(input_shape[a] for a in self.axis)
        if any(d is None for d in shape):
            raise ValueError(
                f"Expected known sizes on `axis` {self.axis}. Received: input_shape={input_shape}"
            )
        return shape

    def _build_gamma_beta(self, shape):
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight(
                name="gamma",
                shape=shape,
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                name="beta",
                shape=shape,
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                autocast=False,
            )

    def _broadcast(self, parameter, rank):
        """A parameter over `self.axis` reshaped to broadcast against a rank-`rank` input."""
        parameter = tf.cast(parameter, tf.float32)
        if self.axis == [rank - 1]:
            return parameter  # already broadcasts along the last axis
        shape = [1] * rank
        for a, size in zip(self.axis, parameter.shape, strict=True):
            shape[a] = size
        return tf.reshape(parameter, shape)

    def _standardize(self, x, mean, variance):
        """γ (x − μ)/√(σ² + ε) + β, in float32, as x·a + b with a = γ/√(σ² + ε), b = β − μ·a.

        For batch normalization μ and σ² hold one value per feature, so a and b
        are computed on those small vectors and only two operations touch the
        whole tensor.
        """
        rank = x.shape.rank
        a = tf.math.rsqrt(variance + self.epsilon)
        if self.scale:
            a = a * self._broadcast(self.gamma, rank)
        b = -mean * a
        if self.center:
            b = b + self._broadcast(self.beta, rank)
        return x * a + b

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": keras.initializers.serialize(self.beta_initializer),
            "gamma_initializer": keras.initializers.serialize(self.gamma_initializer),
            "beta_regularizer": keras.regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": keras.regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": keras.constraints.serialize(self.beta_constraint),
            "gamma_constraint": keras.constraints.serialize(self.gamma_constraint),
        }


@keras.saving.register_keras_serializable(package="tfnn")
class BatchNormalization(_Normalization):
    """Batch normalization: y = γ (x − μ_B)/√(σ²_B + ε) + β in training, running μ̂, σ̂² at inference.

    Weights, in Keras's order: gamma, beta, moving_mean, moving_variance. A
    layer that is not trainable (frozen) always runs in inference mode, as in
    Keras.

    Args:
        axis: the feature axis that keeps its own statistics (-1: the channels).
        momentum: m of the running averages.
        epsilon: ε > 0.
        center, scale: whether to learn β and γ.
        beta_initializer, gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer,
        beta_constraint, gamma_constraint: for the weights.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: a tensor of any rank ≥ 2.
        training: batch statistics (True) or the running ones (False).
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        **kwargs,
    ):
        validation.integer("axis", axis)  # the feature axis
        super().__init__(
            axis,
            epsilon,
            center,
            scale,
            beta_initializer,
            gamma_initializer,
            beta_regularizer,
            gamma_regularizer,
            beta_constraint,
            gamma_constraint,
            **kwargs,
        )
        self.momentum = validation.number("momentum", momentum, low=0, high=1, high_open=True)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        shape = self._parameter_shape(input_shape)
        self._build_gamma_beta(shape)
        self.moving_mean = self.add_weight(
            name="moving_mean",
            shape=shape,
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            name="moving_variance",
            shape=shape,
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )

    def call(self, inputs, training=False):
        x = _dtypes.to_compute(inputs)
        rank = x.shape.rank
        if training and self.trainable:
            reduce = [a for a in range(rank) if a not in self.axis]
            mean = tf.reduce_mean(x, axis=reduce, keepdims=True)
            variance = tf.reduce_mean(tf.square(x - mean), axis=reduce, keepdims=True)
            m = self.momentum
            self.moving_mean.assign(
                m * self.moving_mean + (1 - m) * tf.reshape(mean, self.moving_mean.shape)
            )
            self.moving_variance.assign(
                m * self.moving_variance
                + (1 - m) * tf.reshape(variance, self.moving_variance.shape)
            )
        else:
            mean = self._broadcast(self.moving_mean, rank)
            variance = self._broadcast(self.moving_variance, rank)
        return tf.cast(self._standardize(x, mean, variance), inputs.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis[0],
            "momentum": self.momentum,
            "moving_mean_initializer": keras.initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": keras.initializers.serialize(
                self.moving_variance_initializer
            ),
        }


@keras.saving.register_keras_serializable(package="tfnn")
class LayerNormalization(_Normalization):
    """Layer normalization: y = γ (x − μ)/√(σ² + ε) + β with μ, σ² over each example's `axis`.

    Args:
        axis: the axis (or axes) normalized together (-1: the features).
        epsilon: ε > 0.
        center, scale: whether to learn β and γ.
        beta_initializer, gamma_initializer, beta_regularizer,
        gamma_regularizer, beta_constraint, gamma_constraint: for the weights.
        **kwargs: base `Layer` arguments.
    """

    def build(self, input_shape):
        self._build_gamma_beta(self._parameter_shape(input_shape))

    def call(self, inputs):
        x = _dtypes.to_compute(inputs)
        mean = tf.reduce_mean(x, axis=self.axis, keepdims=True)
        variance = tf.reduce_mean(tf.square(x - mean), axis=self.axis, keepdims=True)
        return tf.cast(self._standardize(x, mean, variance), inputs.dtype)
