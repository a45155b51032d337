"""The precision rule shared by softmax and the losses.

Half-precision inputs (float16, bfloat16) are computed in float32: exponentials
and sums over classes lose too much in 10 or 7 mantissa bits. float32 and
float64 inputs are computed in their own precision, so finite-difference
checks can run in float64.
"""

import tensorflow as tf

_HALF = (tf.float16, tf.bfloat16)


def compute_dtype(dtype):
    """float32 for half-precision dtypes, the dtype itself otherwise."""
    dtype = tf.as_dtype(dtype)
    return tf.float32 if dtype in _HALF else dtype


def to_compute(x):
    """`x` cast to its compute dtype (a no-op unless it is half precision)."""
    return tf.cast(x, compute_dtype(x.dtype))
