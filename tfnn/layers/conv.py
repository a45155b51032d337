"""Convolution layers (docs/lecture.md F1–F3).

What a network calls convolution is the cross-correlation (F2) generalized to
C input channels, F filters of size W×H and stride s (F3):

    S_{i,j,k} = Σ_{m,n,o} I_{i·s+m, j·s+n, o} · K_{m,n,o,k} + b_k

with a kernel K of shape W×H×C×F: each filter sees only a W×H window (sparse,
local interactions) and the same K slides over every position (parameter
sharing, so a shifted input gives a shifted output: F1). With dilation d the
window's taps are d apart: I_{i·s+m·d, …}. Padding "valid" keeps only windows
inside the input, ⌊(n − k_eff)/s⌋ + 1 positions; "same" pads with zeros so
there are ⌈n/s⌉ positions (k_eff = (k − 1)·d + 1).

The sum is computed by `tf.nn.convolution` (oneDNN's kernel on CPU); the
tests prove it equal to the formula above written out position by position.
Inputs are channels-last: [B, T, C] for `Conv1D`, [B, H, W, C] for `Conv2D`.
"""

import keras
import tensorflow as tf

from tfnn import validation
from tfnn.layers.kernel import KernelLayer


def normalize_tuple(value, rank, name):
    """An int or a sequence of `rank` positive ints, as a tuple of ints."""
    return validation.integers(name, value, low=1, length=rank, single=True)


def validate_padding(padding):
    padding = padding.lower() if isinstance(padding, str) else padding
    if padding not in ("valid", "same"):
        raise ValueError(
            f"Expected `padding` to be 'valid' or 'same'. Received: padding={padding!r}"
        )
    return padding


def validate_channels_last(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(
            "tfnn's layers are channels-last: expected `data_format` None or 'channels_last'. "
            f"Received: data_format={data_format!r}"
        )
    return "channels_last"


def output_length(length, kernel, stride, padding, dilation=1):
    """Output positions along one axis (F3): ⌈n/s⌉ for "same", ⌊(n − k_eff)/s⌋ + 1 for "valid"."""
    if length is None:
        return None
    if padding == "same":
        return -(-length // stride)
    effective = (kernel - 1) * dilation + 1
    return max(0, (length - effective) // stride + 1)


class _Conv(KernelLayer):
    """The strided, multi-channel cross-correlation of F3 in `rank` spatial dimensions."""

    rank = None

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
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
        validation.integer("filters", filters, low=1)
        if groups != 1:
            raise ValueError(
                "Grouped convolutions are not supported: expected groups=1. "
                f"Received: groups={groups!r}"
            )
        self.filters = filters
        self.kernel_size = normalize_tuple(kernel_size, self.rank, "kernel_size")
        self.strides = normalize_tuple(strides, self.rank, "strides")
        self.dilation_rate = normalize_tuple(dilation_rate, self.rank, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "Expected `strides` or `dilation_rate` to be 1: both > 1 is not supported."
            )
        self.padding = validate_padding(padding)
        self.data_format = validate_channels_last(data_format)
        self.groups = 1
        self.input_spec = keras.InputSpec(ndim=self.rank + 2)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"Expected the channel dimension to be known. Received: input_shape={input_shape}"
            )
        self.build_kernel((*self.kernel_size, channels, self.filters), self.filters)
        self.input_spec = keras.InputSpec(ndim=self.rank + 2, axes={-1: channels})

    def call(self, inputs):
        outputs = tf.nn.convolution(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=self.padding.upper(),
            dilations=self.dilation_rate,
        )
        return self.add_bias_and_activate(outputs)

    def compute_output_shape(self, input_shape):
        spatial = [
            output_length(n, k, s, self.padding, d)
            for n, k, s, d in zip(
                input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate, strict=True
            )
        ]
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
        }


_CONV_ARGS = """
    Args:
        filters: F, the number of filters (output channels).
        kernel_size: the window, an int or one int per spatial axis.
        strides: s, an int or one per spatial axis.
        padding: "valid" or "same" (zeros, so the output has ⌈n/s⌉ positions).
        data_format: None or "channels_last" (the only layout).
        dilation_rate: d, spacing of the window's taps (with strides 1).
        groups: 1 (grouped convolutions are not supported).
        activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: see `tfnn.layers.kernel.KernelLayer`.
        **kwargs: base `Layer` arguments.
"""


@keras.saving.register_keras_serializable(package="tfnn")
class Conv1D(_Conv):
    __doc__ = (
        """1D convolution of signals [B, T, C] (F3):

    S_{t,k} = Σ_{m,o} I_{t·s+m·d, o} K_{m,o,k} + b_k

    Kernel shape (W, C, F), as `keras.layers.Conv1D`.
"""
        + _CONV_ARGS
    )
    rank = 1


@keras.saving.register_keras_serializable(package="tfnn")
class Conv2D(_Conv):
    __doc__ = (
        """2D convolution of images [B, H, W, C] (F3):

    S_{i,j,k} = Σ_{m,n,o} I_{i·s+m, j·s+n, o} K_{m,n,o,k} + b_k

    Kernel shape (H, W, C, F), as `keras.layers.Conv2D`.
"""
        + _CONV_ARGS
    )
    rank = 2
