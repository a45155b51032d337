"""Dropout (docs/lecture.md D7)."""

import keras
import tensorflow as tf

from tfnn import validation


def validate_noise_shape(noise_shape):
    """None, or a tuple of positive ints and Nones (None: the input's size on that axis)."""
    if noise_shape is None:
        return None
    expected = "None or a tuple of positive ints and Nones"
    if isinstance(noise_shape, str) or not hasattr(noise_shape, "__iter__"):
        validation.fail("noise_shape", noise_shape, expected)
    for dim in noise_shape:
        if dim is not None:
            try:
                validation.integer("noise_shape", dim, low=1)
            except ValueError:
                validation.fail("noise_shape", noise_shape, expected)
    return tuple(noise_shape)


def _check_broadcasts(noise_shape, input_shape):
    """ValueError unless a mask of `noise_shape` broadcasts against inputs of `input_shape`:
    the input's rank, each size None, 1 or the input's (where known)."""
    if input_shape.rank is None:
        return
    if len(noise_shape) != input_shape.rank or any(
        d not in (None, 1) and s is not None and d != s
        for d, s in zip(noise_shape, input_shape, strict=False)
    ):
        validation.fail(
            "noise_shape",
            noise_shape,
            f"a mask shape that broadcasts against the input's shape {tuple(input_shape)}: "
            "its rank, each size None, 1 or the input's",
        )


@keras.saving.register_keras_serializable(package="tfnn")
class Dropout(keras.layers.Layer):
    """Dropout: while training, each unit is zeroed with probability p (D7).

    With a keep mask m ~ Bernoulli(1 − p) drawn afresh at every step:

        inverted=True  (default)   training: y = x ⊙ m / (1 − p)    inference: y = x
        inverted=False             training: y = x ⊙ m              inference: y = (1 − p) x

    Both give the inference output the training output's expectation,
    E[x ⊙ m / (1 − p)] = x and E[x ⊙ m] = (1 − p) x; the inverted form moves
    the scaling into training so inference is free. Each mask picks one
    sub-network; training with random masks trains the ensemble of all
    2^units sub-networks that share weights, and the deterministic inference
    pass approximates its average (the weight-scaling rule).

    With the same `seed`, the masks equal those of `keras.layers.Dropout`.

    Args:
        rate: p ∈ [0, 1), the fraction of units to drop.
        noise_shape: the mask's shape, broadcast against the input (None
            entries take the input's size), e.g. (B, 1, F) to drop whole
            features at every time step.
        seed: int seed for the masks.
        inverted: scale by 1/(1 − p) in training (True) or by (1 − p) at
            inference (False).
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: a tensor of any shape.
        training: whether to drop (True) or run the inference rule.
    """

    def __init__(self, rate, noise_shape=None, seed=None, inverted=True, **kwargs):
        super().__init__(**kwargs)
        self.rate = validation.number("rate", rate, low=0, high=1, high_open=True)
        self.noise_shape = validate_noise_shape(noise_shape)
        self.seed = seed
        self.inverted = bool(inverted)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def _mask_shape(self, inputs):
        if self.noise_shape is None:
            return tf.shape(inputs)
        input_shape = tf.unstack(tf.shape(inputs), num=len(self.noise_shape))
        return tf.stack(
            [input_shape[i] if d is None else d for i, d in enumerate(self.noise_shape)]
        )

    def call(self, inputs, training=False):
        if self.noise_shape is not None:  # at inference too: the shapes are known here
            _check_broadcasts(self.noise_shape, inputs.shape)
        keep = 1.0 - self.rate
        if not training or self.rate == 0:
            return inputs if self.inverted else inputs * tf.cast(keep, inputs.dtype)
        kept = keras.random.uniform(
            self._mask_shape(inputs), seed=self.seed_generator, dtype=inputs.dtype
        ) >= tf.cast(self.rate, inputs.dtype)
        scale = 1.0 / keep if self.inverted else 1.0
        return tf.where(kept, inputs * tf.cast(scale, inputs.dtype), tf.zeros_like(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
            "inverted": self.inverted,
        }


@keras.saving.register_keras_serializable(package="tfnn")
class MonteCarloDropout(Dropout):
    """Dropout that drops at inference too: every call samples one sub-network (D7).

    Averaging T calls, p̄(y|x) = 1/T Σ_t p(y|x, m_t) with masks m_t, is
    Monte-Carlo dropout (Gal & Ghahramani 2016): an explicit average over the
    ensemble of sub-networks that `Dropout`'s deterministic inference pass
    approximates by weight scaling. `tfnn.models.ensemble.monte_carlo_dropout`
    builds that average for a trained model. Arguments are `Dropout`'s.
    """

    def call(self, inputs, training=False):
        return super().call(inputs, training=True)
