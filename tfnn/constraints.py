"""Weight constraints, applied by the optimizer after every update.

    MaxNorm(c)   w ← w · min(‖w‖, c) / (ε + ‖w‖)   each unit's incoming weight
                 vector is projected back into the ball of radius c; with
                 dropout (D7) this keeps large learning rates stable
                 (Srivastava et al., 2014).
    NonNeg       w ← max(w, 0)
    UnitNorm     w ← w / (ε + ‖w‖)

Norms run over `axis`: for a Dense kernel (d, h), axis=0 is one norm per unit
(over its d incoming weights); for a Conv2D kernel (k₁, k₂, C, F), use
axis=[0, 1, 2]. ε = `keras.config.epsilon()` guards against division by zero.

A name gives tfnn's object wherever tfnn has one for it (`get("max_norm")`: MaxNorm), Keras's
otherwise (`get("min_max_norm")`): the one rule of every tfnn `get` (tfnn._identifiers).
"""

import keras as _keras
import tensorflow as _tf

from tfnn import _identifiers, validation

__all__ = ["MaxNorm", "NonNeg", "UnitNorm", "get"]

_register = _keras.saving.register_keras_serializable(package="tfnn")


def _norms(w, axis):
    if w.shape.rank is not None:
        validation.axes("axis", axis, w.shape.rank)
    return _tf.sqrt(_tf.reduce_sum(_tf.square(w), axis=axis, keepdims=True))


def _validate_axis(axis):
    """An int axis stays an int (as Keras's configs keep it); a sequence becomes a list."""
    if isinstance(axis, int) and not isinstance(axis, bool):
        return axis
    return list(validation.integers("axis", axis))


@_register
class MaxNorm(_keras.constraints.Constraint):
    """Caps each unit's weight-vector norm at `max_value`: w · min(‖w‖, c)/(ε + ‖w‖).

    Args:
        max_value: c > 0, the largest allowed norm.
        axis: axis or axes the norm runs over (0 for a Dense kernel).
    """

    def __init__(self, max_value=2, axis=0):
        max_value = float(max_value)
        if not max_value > 0.0:
            raise ValueError(
                "Expected `max_value` > 0 (the largest allowed norm). "
                f"Received: max_value={max_value}"
            )
        self.max_value = max_value
        self.axis = _validate_axis(axis)

    def __call__(self, w):
        w = _tf.convert_to_tensor(w)
        norms = _norms(w, self.axis)
        desired = _tf.clip_by_value(norms, 0.0, self.max_value)
        return w * desired / (_keras.config.epsilon() + norms)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@_register
class NonNeg(_keras.constraints.Constraint):
    """Keeps weights non-negative: w ← max(w, 0)."""

    def __call__(self, w):
        w = _tf.convert_to_tensor(w)
        return _tf.maximum(w, _tf.zeros_like(w))

    def get_config(self):
        return {}


@_register
class UnitNorm(_keras.constraints.Constraint):
    """Projects each unit's weight vector onto the unit sphere: w / (ε + ‖w‖).

    Args:
        axis: axis or axes the norm runs over (0 for a Dense kernel).
    """

    def __init__(self, axis=0):
        self.axis = _validate_axis(axis)

    def __call__(self, w):
        w = _tf.convert_to_tensor(w)
        return w / (_keras.config.epsilon() + _norms(w, self.axis))

    def get_config(self):
        return {"axis": self.axis}


_BY_NAME = {"max_norm": MaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm}


def get(identifier):
    """A constraint from a name, an instance, a config or None.

    The class names and Keras's names of their twins ("max_norm", "non_neg", "unit_norm")
    give tfnn's constraints; another name Keras knows gives Keras's ("min_max_norm"); any
    other name is a ValueError listing the names allowed (the rule of every tfnn `get`,
    `tfnn._identifiers`). A config, instance or None is resolved by `keras.constraints.get`.
    """
    return _identifiers.get(identifier, kind="constraints", own=_BY_NAME)
