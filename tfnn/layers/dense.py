"""The fully connected layer (LECTURE.md A2, A3)."""

import keras
import tensorflow as tf

from tfnn import activations, constraints, initializers, regularizers


@keras.saving.register_keras_serializable(package="tfnn")
class Dense(keras.layers.Layer):
    """Fully connected layer: h = f(xW + b).

    The lecture writes one layer of the network as h = f(Wx + b) with
    W ∈ ℝ^{h×d} (A2); for a batch X ∈ ℝ^{B×d} stored row by row this is
    H = f(XW + b) with the kernel W ∈ ℝ^{d×h}, which is what is stored here
    (Keras's layout, so weights move between the two layers unchanged). A layer
    has d·h + h parameters, so one hidden layer and an output layer have
    d·h + h·o + h + o (A3). Inputs of rank > 2 ([..., d]) are transformed
    along their last axis.

    Biases start at zero and the kernel at Glorot-uniform values (E2).

    Args:
        units: h > 0, the output size.
        activation: f; a name from `tfnn.activations` (or Keras's), a
            callable, or None for none (linear).
        use_bias: whether to add b.
        kernel_initializer, bias_initializer: names or instances; tfnn's names
            ("glorot_uniform", "fan_in_uniform", "he_normal", "lecun_normal")
            give tfnn's initializers.
        kernel_regularizer, bias_regularizer: penalties added to the loss
            (e.g. `tfnn.regularizers.L2`).
        activity_regularizer: a penalty on the layer's output.
        kernel_constraint, bias_constraint: projections applied after each
            update (e.g. `tfnn.constraints.MaxNorm`).
        **kwargs: base `Layer` arguments (`name`, `dtype`, `trainable`, …).
            Keras's LoRA and quantization options are not supported.

    Call arguments:
        inputs: a tensor of shape [..., d].

    Output shape: [..., units].
    """

    def __init__(
        self,
        units,
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
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"Expected `units` to be a positive int. Received: units={units!r}")
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = keras.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "Expected the last input dimension to be known. "
                f"Received: input_shape={input_shape}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs):
        if inputs.shape.rank == 2:
            outputs = tf.matmul(inputs, self.kernel)
        else:
            outputs = tf.tensordot(inputs, self.kernel, axes=[[-1], [0]])
        if self.use_bias:
            outputs = tf.nn.bias_add(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
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
