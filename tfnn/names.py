"""The names tfnn's builders and factories accept, defined once: the model builders, the
optimizer factory, the recipe's options and the command line all read them here.

No TensorFlow import: the command line checks its flags against these names first.
"""

import os

# init name → the tfnn initializer it builds (tfnn.initializers.get, E2); biases start at 0.
INITIALIZERS = {
    "fan_in": "fan_in_uniform",  # U[±1/√n_in]
    "glorot": "glorot_uniform",  # U[±√(6/(n_in + n_out))]
    "he": "he_normal",  # N(0, 2/n_in), for ReLU
    "lecun": "lecun_normal",  # N(0, 1/n_in), for SELU
}

# f of the hidden layers (B1, C2): a tfnn activation, or "prelu" (a layer with a learned slope).
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "selu", "swish", "prelu")

# Keras update rules (A4, B4); "momentum" is SGD with momentum.
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam", "adamw")

# Learning-rate schedules over all training steps.
DECAYS = ("none", "linear", "cosine", "exponential")

# Gradient clipping (E3): per weight, per variable's norm, or the whole gradient's norm.
CLIP_MODES = ("value", "norm", "global_norm")


def is_dataset_path(name):
    """Whether a --dataset value is a folder path rather than a TFDS name such as `mnist` or
    `cifar10/3.0.2`: an existing folder, or a name that starts like a path."""
    name = str(name)
    return os.path.isdir(name) or name.startswith((".", "/", "~")) or os.sep + os.sep in name
