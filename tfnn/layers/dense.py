"""The fully connected layer (docs/lecture.md A2, A3)."""

import keras
import tensorflow as tf

from tfnn import validation
from tfnn.layers.kernel import KernelLayer


@keras.saving.register_keras_serializable(package="tfnn")
class Dense(KernelLayer):
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
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: see `tfnn.layers.kernel.KernelLayer`.
        **kwargs: base `Layer` arguments. Keras's LoRA and quantization options
            are not supported.

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
        super().__init__(
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.units = validation.integer("units", units, low=1)
        self.input_spec = keras.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "Expected the last input dimension to be known. "
                f"Received: input_shape={input_shape}"
            )
        self.build_kernel((input_dim, self.units), self.units)
        self.input_spec = keras.InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs):
        if inputs.shape.rank == 2:
            outputs = tf.matmul(inputs, self.kernel)
        else:
            outputs = tf.tensordot(inputs, self.kernel, axes=[[-1], [0]])
        return self.add_bias_and_activate(outputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
