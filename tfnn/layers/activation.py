"""Activation layers (docs/lecture.md B1, B2)."""

import keras
import tensorflow as tf

from tfnn import activations, constraints, initializers, regularizers, validation


@keras.saving.register_keras_serializable(package="tfnn")
class Activation(keras.layers.Layer):
    """Applies an activation function: y = f(x).

    Give the output layer `dtype="float32"` under a mixed-precision policy so
    the model's probabilities come out in float32.

    Args:
        activation: a name from `tfnn.activations` (or Keras's) or a callable.
        **kwargs: base `Layer` arguments.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="tfnn")
class PReLU(keras.layers.Layer):
    """Parametric ReLU: f(x) = max(0, x) + a · min(0, x), with the slope a learned (B1).

    a has the input's shape without the batch axis, with size 1 along
    `shared_axes` (Keras's convention, so weights transfer unchanged); a = 0 is
    ReLU, a = 1 the identity.

    Args:
        alpha_initializer: initial slope (zeros by default, as in Keras).
        alpha_regularizer, alpha_constraint: for a.
        shared_axes: input axes (1-based, excluding batch) that share one slope,
            e.g. [1, 2] for one slope per channel of an image.
        **kwargs: base `Layer` arguments.
    """

    def __init__(
        self,
        alpha_initializer="zeros",
        alpha_regularizer=None,
        alpha_constraint=None,
        shared_axes=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            # input axes after the batch's
            axes = validation.integers("shared_axes", shared_axes, low=1, single=True)
            self.shared_axes = list(axes)
        self.supports_masking = True

    def build(self, input_shape):
        alpha_shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if axis >= len(input_shape):
                raise ValueError(
                    f"Expected `shared_axes` below the input rank {len(input_shape)}. "
                    f"Received: shared_axes={self.shared_axes}"
                )
            alpha_shape[axis - 1] = 1
        if any(d is None for d in alpha_shape):
            raise ValueError(
                "Expected known input dimensions wherever the slope is not shared. "
                f"Received: input_shape={input_shape}, shared_axes={self.shared_axes}"
            )
        self.alpha = self.add_weight(
            name="alpha",
            shape=alpha_shape,
            initializer=self.alpha_initializer,
            regularizer=self.alpha_regularizer,
            constraint=self.alpha_constraint,
        )

    def call(self, inputs):
        zeros = tf.zeros_like(inputs)
        return tf.maximum(inputs, zeros) + self.alpha * tf.minimum(inputs, zeros)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": keras.initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": keras.regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": keras.constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }
