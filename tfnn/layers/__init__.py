"""tfnn's layers; each mirrors the `keras.layers` class of the same name."""

from tfnn.layers.activation import Activation, PReLU
from tfnn.layers.dense import Dense
from tfnn.layers.dropout import Dropout
from tfnn.layers.noise import GaussianNoise

__all__ = ["Activation", "Dense", "Dropout", "GaussianNoise", "PReLU"]
