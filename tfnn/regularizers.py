"""Weight penalties (docs/lecture.md D2, D3, D4).

A regularizer adds a penalty to the training objective J:

    L2 (weight decay)   J̃ = J + λ‖θ‖² = J + λ Σ θ²
                        SGD: θ ← θ − α∂J/∂θ − 2αλθ        (shrinks θ proportionally)
    L1                  J̃ = J + λ‖θ‖₁ = J + λ Σ |θ|
                        SGD: θ ← θ − α∂J/∂θ − αλ·sign(θ)   (constant pull: exact zeros)
    L1L2                J̃ = J + λ₁‖θ‖₁ + λ₂‖θ‖²

Keras adds a layer's penalties to the loss that `Model.fit` minimizes, so the
update rules above are what any optimizer's gradient step sees.

L2 as MAP estimation (D3). With a Gaussian prior θ ~ N(0, σ²) per parameter,

    −log p(θ) = θ² / (2σ²) + log(σ√(2π)),

so maximizing the posterior p(θ | data) ∝ p(data | θ) p(θ) over N examples
minimizes  Σᵢ NLLᵢ + Σ θ²/(2σ²).  Keras's J is the *mean* NLL, i.e. the sum
divided by N; dividing the whole objective by N gives

    J + Σ θ² / (2σ²N),  that is  λ = 1 / (2σ²N).

`L2.from_gaussian_prior(stddev, num_examples)` returns that λ (num_examples=1
when J is a sum).

A name gives tfnn's object wherever tfnn has one for it (`get("l2")`: L2), Keras's
otherwise (`get("orthogonal_regularizer")`): the one rule of every tfnn `get` (tfnn._identifiers).
"""

import keras as _keras
import tensorflow as _tf

from tfnn import _identifiers, validation

__all__ = ["L1", "L1L2", "L2", "get"]

_register = _keras.saving.register_keras_serializable(package="tfnn")


def _validate_strength(name, value):
    """The penalty strength λ: a finite number >= 0."""
    return validation.number(name, value, low=0)


@_register
class L1(_keras.regularizers.Regularizer):
    """L1 penalty λ Σ |θ| (D4); its gradient λ·sign(θ) drives weights to exact zeros.

    Args:
        l1: λ ≥ 0.
    """

    def __init__(self, l1=0.01):
        self.l1 = _validate_strength("l1", l1)

    def __call__(self, x):
        return self.l1 * _tf.reduce_sum(_tf.abs(x))

    def get_config(self):
        return {"l1": self.l1}


@_register
class L2(_keras.regularizers.Regularizer):
    """L2 penalty λ Σ θ² (D2); its gradient 2λθ is weight decay.

    Args:
        l2: λ ≥ 0.
    """

    def __init__(self, l2=0.01):
        self.l2 = _validate_strength("l2", l2)

    def __call__(self, x):
        return self.l2 * _tf.reduce_sum(_tf.square(x))

    def get_config(self):
        return {"l2": self.l2}

    @classmethod
    def from_gaussian_prior(cls, stddev, num_examples=1):
        """The L2 penalty that equals MAP estimation under θ ~ N(0, stddev²) (D3).

        λ = 1 / (2 σ² N): N is the number of training examples when the loss
        is a mean over them (Keras's default reduction), 1 when it is a sum.
        """
        stddev = validation.number("stddev", stddev, low=0, low_open=True)  # the prior's σ
        validation.integer("num_examples", num_examples, low=1)
        return cls(l2=1.0 / (2.0 * stddev**2 * num_examples))


@_register
class L1L2(_keras.regularizers.Regularizer):
    """Both penalties: λ₁ Σ |θ| + λ₂ Σ θ² (elastic net).

    Args:
        l1: λ₁ ≥ 0.
        l2: λ₂ ≥ 0.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _validate_strength("l1", l1)
        self.l2 = _validate_strength("l2", l2)

    def __call__(self, x):
        return self.l1 * _tf.reduce_sum(_tf.abs(x)) + self.l2 * _tf.reduce_sum(_tf.square(x))

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


# "l1_l2" is keras.regularizers' function name for L1L2, which its `get` does not take.
_BY_NAME = {"l1": L1, "l2": L2, "l1l2": L1L2, "l1_l2": L1L2}


def get(identifier):
    """A regularizer from a name, an instance, a config or None.

    The class names and Keras's names of their twins ("l1", "l2", "l1l2") give tfnn's
    regularizers; another name Keras knows gives Keras's ("orthogonal_regularizer"); any
    other name is a ValueError listing the names allowed (the rule of every tfnn `get`,
    `tfnn._identifiers`). A config, instance or None is resolved by `keras.regularizers.get`.
    """
    return _identifiers.get(identifier, kind="regularizers", own=_BY_NAME)
