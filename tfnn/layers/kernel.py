"""The part Dense and the convolutions share: a kernel W, a bias b, and f(· + b)."""

import keras
import tensorflow as tf

from tfnn import activations, constraints, initializers, regularizers


class KernelLayer(keras.layers.Layer):
    """A layer computing f(transform(x; W) + b): holds W and b and their options.

    Subclasses create the weights with `build_kernel(kernel_shape, units)` and
    finish their `call` with `add_bias_and_activate(outputs)`.

    Args:
        activation: f; a name from `tfnn.activations` (or Keras's), a
            callable, or None for none (linear).
        use_bias: whether to add b.
        kernel_initializer, bias_initializer: names or instances; tfnn's names
            ("glorot_uniform", "fan_in_uniform", "he_normal", "lecun_normal")
            give tfnn's initializers.
        kernel_regularizer, bias_regularizer: penalties added to the loss.
        activity_regularizer: a penalty on the layer's output.
        kernel_constraint, bias_constraint: projections applied after each update.
        **kwargs: base `Layer` arguments (`name`, `dtype`, `trainable`, …).
    """

    def __init__(
        self,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def build_kernel(self, kernel_shape, units):
        """Creates W of `kernel_shape` and, with `use_bias`, b of shape (units,)."""
        self.kernel = self.add_weight(
            name="kernel",
            shape=kernel_shape,
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def add_bias_and_activate(self, outputs):
        """f(outputs + b)."""
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs)

    def get_config(self):
        return {
            **super().get_config(),
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }
