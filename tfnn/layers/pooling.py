"""Pooling layers (docs/lecture.md F4).

Pooling summarizes each window of P positions (stride s) per channel:

    max pooling       y_{i,k} = max_{m < P} x_{i·s+m, k}
    average pooling   y_{i,k} = (1/|W_i|) Σ_{m ∈ W_i} x_{i·s+m, k}

Max pooling makes the output invariant to small translations inside a
window. With padding "same", windows at the border are partial and the
average runs over the |W_i| positions inside the input (padding is not
counted), as in Keras. Computed by `tf.nn.max_pool` / `tf.nn.avg_pool`.
"""

import keras
import tensorflow as tf

from tfnn.layers.conv import (
    normalize_tuple,
    output_length,
    validate_channels_last,
    validate_padding,
)


class _Pooling(keras.layers.Layer):
    rank = None
    reduce = None  # tf.nn.max_pool or tf.nn.avg_pool

    def __init__(
        self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size")
        self.strides = (
            self.pool_size if strides is None else normalize_tuple(strides, self.rank, "strides")
        )
        self.padding = validate_padding(padding)
        self.data_format = validate_channels_last(data_format)
        self.input_spec = keras.InputSpec(ndim=self.rank + 2)
        self.built = True

    def call(self, inputs):
        return type(self).reduce(inputs, self.pool_size, self.strides, self.padding.upper())

    def compute_output_shape(self, input_shape):
        spatial = [
            output_length(n, p, s, self.padding)
            for n, p, s in zip(input_shape[1:-1], self.pool_size, self.strides, strict=True)
        ]
        return (input_shape[0], *spatial, input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
        }


_POOL_ARGS = """
    Args:
        pool_size: P, an int or one per spatial axis.
        strides: s (default: the pool size, so windows do not overlap).
        padding: "valid" or "same".
        data_format: None or "channels_last".
"""


@keras.saving.register_keras_serializable(package="tfnn")
class MaxPooling1D(_Pooling):
    __doc__ = "Max pooling of signals [B, T, C]: y_{t,k} = max_m x_{t·s+m, k} (F4).\n" + _POOL_ARGS
    rank = 1
    reduce = staticmethod(tf.nn.max_pool)


@keras.saving.register_keras_serializable(package="tfnn")
class MaxPooling2D(_Pooling):
    __doc__ = "Max pooling of images [B, H, W, C] over P₁×P₂ windows (F4).\n" + _POOL_ARGS
    rank = 2
    reduce = staticmethod(tf.nn.max_pool)


@keras.saving.register_keras_serializable(package="tfnn")
class AveragePooling1D(_Pooling):
    __doc__ = "Average pooling of signals [B, T, C] (F4).\n" + _POOL_ARGS
    rank = 1
    reduce = staticmethod(tf.nn.avg_pool)


@keras.saving.register_keras_serializable(package="tfnn")
class AveragePooling2D(_Pooling):
    __doc__ = "Average pooling of images [B, H, W, C] over P₁×P₂ windows (F4).\n" + _POOL_ARGS
    rank = 2
    reduce = staticmethod(tf.nn.avg_pool)
