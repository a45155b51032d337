"""Activation and output functions (docs/lecture.md B1, B2, C2, E1).

Hidden-layer non-linearities f in h = f(Wx + b):

    relu(x)    = max(0, x)
    tanh(x)    = (e^x − e^−x) / (e^x + e^−x)           saturates at ±1 (E1)
    sigmoid(x) = σ(x) = 1 / (1 + e^−x)                  saturates at 0 and 1 (E1)
    elu(x)     = x if x > 0 else α(e^x − 1)
    selu(x)    = λ · elu_α(x),  α ≈ 1.6733, λ ≈ 1.0507  (self-normalizing)
    swish(x)   = x · σ(βx)
    prelu      = max(0, x) + a · min(0, x), a learned  (`tfnn.layers.PReLU`)

Output functions (B2): `linear` (none: regression), `sigmoid` (a probability),
and `softmax` (a distribution over classes):

    softmax(z)_i = e^{z_i} / Σ_j e^{z_j} = e^{z_i − max z} / Σ_j e^{z_j − max z}   (C2)

Softmax is invariant to adding a constant to all logits, so subtracting the
maximum changes nothing mathematically and makes every exponent ≤ 0: no
overflow for any finite logits, and at least one term of the sum is exactly 1.

ReLU, tanh and σ are TensorFlow's element-wise kernels (the primitives the
other formulas are built from); ELU, SELU, swish and softmax are written out
here. ReLU in particular must be TensorFlow's `Relu` op: the graph optimizer
fuses MatMul + BiasAdd + Relu into one kernel only for that op; written as
tf.maximum(x, 0) it makes an MLP training step slower (benchmarks/ablations.py). The functions
are registered with Keras, so a layer that stores one in its config (for
example `Dense(activation=tfnn.activations.swish)`) saves and loads.

A name gives tfnn's object wherever tfnn has one for it (`get("silu")`: swish), Keras's
otherwise (`get("gelu")`): the one rule of every tfnn `get` (tfnn._identifiers).
"""

import keras as _keras
import tensorflow as _tf

from tfnn import _dtypes, _identifiers, validation

__all__ = [
    "ALL",
    "SELU_ALPHA",
    "SELU_SCALE",
    "elu",
    "get",
    "linear",
    "relu",
    "selu",
    "serialize",
    "sigmoid",
    "softmax",
    "swish",
    "tanh",
]

_register = _keras.saving.register_keras_serializable(package="tfnn")

# Klambauer et al. (2017), "Self-Normalizing Neural Networks": the fixed point
# that keeps zero mean and unit variance through layers with LeCun-normal weights.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@_register
def linear(x):
    """No output function: f(x) = x (regression outputs, B2)."""
    return _tf.convert_to_tensor(x)


@_register
def relu(x):
    """ReLU: f(x) = max(0, x); does not saturate for x > 0 (E1)."""
    return _tf.nn.relu(x)


@_register
def tanh(x):
    """Hyperbolic tangent: f(x) = (e^x − e^−x) / (e^x + e^−x), f' = 1 − f²."""
    return _tf.math.tanh(x)


@_register
def sigmoid(x):
    """Logistic sigmoid: σ(x) = 1 / (1 + e^−x), σ' = σ(1 − σ)."""
    return _tf.math.sigmoid(x)


@_register
def elu(x, alpha=1.0):
    """ELU: f(x) = x if x > 0 else α(e^x − 1).

    The exponential sees min(x, 0), so the unused branch of the select never
    overflows (an inf there would make the gradient NaN).
    """
    x = _tf.convert_to_tensor(x)
    negative_part = alpha * _tf.math.expm1(_tf.minimum(x, _tf.zeros_like(x)))
    return _tf.where(x > 0, x, negative_part)


@_register
def selu(x):
    """SELU: f(x) = λ · elu_α(x) with the self-normalizing constants α, λ."""
    return SELU_SCALE * elu(x, alpha=SELU_ALPHA)


@_register
def swish(x, beta=1.0):
    """Swish: f(x) = x · σ(βx); β = 1 is Keras's `silu`/`swish`."""
    x = _tf.convert_to_tensor(x)
    return x * _tf.math.sigmoid(beta * x)


@_register
def softmax(z, axis=-1):
    """Softmax along `axis`: o_i = e^{z_i − max z} / Σ_j e^{z_j − max z} (C2).

    Low-precision logits (float16, bfloat16) are exponentiated and summed in
    float32 and the result is cast back, so the normalizer does not lose the
    small terms. Finite for every finite input, ±1e4 included.
    """
    z = _tf.convert_to_tensor(z)
    if z.shape.rank is not None:
        validation.axes("axis", axis, z.shape.rank)
    z32 = _dtypes.to_compute(z)
    shifted = z32 - _tf.stop_gradient(_tf.reduce_max(z32, axis=axis, keepdims=True))
    exp = _tf.exp(shifted)
    return _tf.cast(exp / _tf.reduce_sum(exp, axis=axis, keepdims=True), z.dtype)


_BY_NAME = {
    "linear": linear,
    "relu": relu,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "elu": elu,
    "selu": selu,
    "swish": swish,
    "silu": swish,
    "softmax": softmax,
}

ALL = tuple(sorted(set(_BY_NAME) - {"silu"}))


def get(identifier):
    """The activation for `identifier`: a name, a callable, or None (linear).

    A name of a function above (`ALL`, or Keras's name of its twin: "silu") gives it;
    another name Keras knows gives Keras's ("gelu"); any other name is a ValueError
    listing the names allowed (the rule of every tfnn `get`, `tfnn._identifiers`).
    """
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    return _identifiers.get(identifier, kind="activations", own=_BY_NAME)


def serialize(activation):
    """The config form of an activation (the inverse of `get`)."""
    return _keras.activations.serialize(activation)
