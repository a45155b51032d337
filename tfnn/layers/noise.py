"""Noise injection (docs/lecture.md D5)."""

import keras
import tensorflow as tf

from tfnn import validation


@keras.saving.register_keras_serializable(package="tfnn")
class GaussianNoise(keras.layers.Layer):
    """Additive Gaussian noise while training: y = x + ε, ε ~ N(0, σ²) (D5).

    Noise injection augments any input (or hidden representation) without
    knowing its structure; at inference y = x. With the same `seed`, the noise
    equals that of `keras.layers.GaussianNoise`.

    Args:
        stddev: σ ≥ 0 (Keras's layer refuses σ > 1; this one does not).
        seed: int seed for the noise.
        **kwargs: base `Layer` arguments.

    Call arguments:
        inputs: a tensor of any shape.
        training: whether to add noise.
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = validation.number("stddev", stddev, low=0)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if not training or self.stddev == 0:
            return inputs
        noise = keras.random.normal(
            tf.shape(inputs), stddev=self.stddev, dtype=inputs.dtype, seed=self.seed_generator
        )
        return inputs + noise

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
