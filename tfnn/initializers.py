"""Weight initialization (docs/lecture.md E2).

Biases start at 0; weights start as small random values whose scale depends on
the layer's fan-in n (inputs per unit) and fan-out m (outputs per unit):

    FanInUniform    W ~ U[−1/√n, 1/√n]                     the original heuristic
    GlorotUniform   W ~ U[−√(6/(m+n)), √(6/(m+n))]         Glorot & Bengio (2010)
    HeNormal        W ~ N(0, 2/n), truncated at ±2σ         for ReLU (He et al., 2015)
    LeCunNormal     W ~ N(0, 1/n), truncated at ±2σ         for SELU (Klambauer et al., 2017)

Glorot's bound makes Var(W) = (√(6/(m+n)))² / 3 = 2/(m+n): the harmonic
compromise between keeping activation variance (Var = 1/n) and gradient
variance (Var = 1/m) constant through the layers.

Fans follow Keras's convention for a kernel of shape (..., n_in, n_out): a
Dense kernel (d, h) has n = d, m = h; a convolution kernel (k₁, …, C, F) has
n = k₁⋯C and m = k₁⋯F. (The lecture writes W ∈ ℝ^{h×d} acting as Wx; Keras
stores the transpose and computes xW.)

Seeding is Keras's: an int seed gives the same values on every call and the
same values as the Keras twin with that seed; a `keras.random.SeedGenerator`
gives fresh values per call; None draws a seed once.

A name gives tfnn's object wherever tfnn has one for it (`get("LecunNormal")`: LeCunNormal), Keras's
otherwise (`get("zeros")`): the one rule of every tfnn `get` (tfnn._identifiers).
"""

import math as _math
import random as _random

import keras as _keras

from tfnn import _identifiers, validation

__all__ = ["FanInUniform", "GlorotUniform", "HeNormal", "LeCunNormal", "compute_fans", "get"]

_register = _keras.saving.register_keras_serializable(package="tfnn")

# Standard deviation of a standard normal truncated to [−2, 2]: dividing by it
# makes the truncated distribution's variance the requested one.
_TRUNCATED_NORMAL_STDDEV = 0.87962566103423978


def compute_fans(shape):
    """(fan_in n, fan_out m) of a kernel shape, in Keras's convention."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = _math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


class _SeededInitializer(_keras.initializers.Initializer):
    """Holds a seed exactly as Keras's random initializers do."""

    def __init__(self, seed=None):
        self._init_seed = seed
        if seed is None:
            seed = _random.randint(1, int(1e9))
        elif isinstance(seed, dict):
            seed = _keras.saving.deserialize_keras_object(seed)
        elif not isinstance(seed, (int, _keras.random.SeedGenerator)) or isinstance(seed, bool):
            validation.fail("seed", seed, "an int, a keras.random.SeedGenerator or None")
        self.seed = seed

    def get_config(self):
        return {"seed": _keras.saving.serialize_keras_object(self._init_seed)}

    @staticmethod
    def _float_dtype(dtype):
        """`dtype` (None: floatx) if a float: values drawn from a continuous distribution do
        not fit an int (Keras's normal initializers raise TypeError, its uniform ones round)."""
        dtype = _keras.backend.standardize_dtype(dtype)
        if not _keras.backend.is_float_dtype(dtype):
            validation.fail("dtype", dtype, "a floating-point dtype")
        return dtype


@_register
class FanInUniform(_SeededInitializer):
    """W ~ U[−1/√n, 1/√n], n = fan-in: the pre-2010 default (E2).

    Var(W) = 1/(3n): activations shrink by a factor ≈ 1/3 per layer, the
    problem Glorot & Bengio set out to fix.

    Args:
        seed: int, `keras.random.SeedGenerator` or None (see module docstring).
    """

    def __call__(self, shape, dtype=None):
        fan_in, _ = compute_fans(shape)
        limit = 1.0 / _math.sqrt(max(1, fan_in))
        return _keras.random.uniform(
            shape, -limit, limit, dtype=self._float_dtype(dtype), seed=self.seed
        )


@_register
class GlorotUniform(_SeededInitializer):
    """W ~ U[−√(6/(m+n)), √(6/(m+n))] (Glorot & Bengio, 2010; E2).

    Equal in values to `keras.initializers.GlorotUniform` with the same seed.

    Args:
        seed: int, `keras.random.SeedGenerator` or None (see module docstring).
    """

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = compute_fans(shape)
        limit = _math.sqrt(6.0 / max(1, fan_in + fan_out))
        return _keras.random.uniform(
            shape, -limit, limit, dtype=self._float_dtype(dtype), seed=self.seed
        )


class _TruncatedNormalFanIn(_SeededInitializer):
    """W ~ N(0, gain/n) truncated at two standard deviations."""

    gain = None

    def __call__(self, shape, dtype=None):
        fan_in, _ = compute_fans(shape)
        stddev = _math.sqrt(self.gain / max(1, fan_in)) / _TRUNCATED_NORMAL_STDDEV
        dtype = self._float_dtype(dtype)
        return _keras.random.truncated_normal(shape, 0.0, stddev, dtype=dtype, seed=self.seed)


@_register
class HeNormal(_TruncatedNormalFanIn):
    """W ~ N(0, 2/n) truncated at ±2σ (He et al., 2015): for ReLU layers.

    ReLU zeroes half of its inputs, halving the variance; the factor 2 restores
    it. Equal in values to `keras.initializers.HeNormal` with the same seed.

    Args:
        seed: int, `keras.random.SeedGenerator` or None (see module docstring).
    """

    gain = 2.0


@_register
class LeCunNormal(_TruncatedNormalFanIn):
    """W ~ N(0, 1/n) truncated at ±2σ: for SELU's self-normalizing networks.

    Equal in values to `keras.initializers.LecunNormal` with the same seed.

    Args:
        seed: int, `keras.random.SeedGenerator` or None (see module docstring).
    """

    gain = 1.0


_BY_NAME = {
    "fan_in_uniform": FanInUniform,
    "glorot_uniform": GlorotUniform,
    "he_normal": HeNormal,
    "lecun_normal": LeCunNormal,
}


def get(identifier):
    """The initializer for `identifier`.

    tfnn's names (`fan_in_uniform`, `glorot_uniform`, `he_normal`, `lecun_normal`), the
    class names and Keras's names of their twins ("LecunNormal") give tfnn's initializers;
    another name Keras knows gives Keras's ("zeros", "ones", …); any other name is a
    ValueError listing the names allowed (the rule of every tfnn `get`,
    `tfnn._identifiers`). A config or instance is resolved by `keras.initializers.get`.
    """
    return _identifiers.get(identifier, kind="initializers", own=_BY_NAME)
