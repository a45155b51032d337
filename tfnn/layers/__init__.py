"""tfnn's layers; each mirrors the `keras.layers` class of the same name."""

from tfnn.layers.activation import Activation, PReLU
from tfnn.layers.conv import Conv1D, Conv2D
from tfnn.layers.dense import Dense
from tfnn.layers.dropout import Dropout, MonteCarloDropout
from tfnn.layers.noise import GaussianNoise
from tfnn.layers.normalization import BatchNormalization, LayerNormalization
from tfnn.layers.pooling import AveragePooling1D, AveragePooling2D, MaxPooling1D, MaxPooling2D

__all__ = [
    "Activation",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "GaussianNoise",
    "LayerNormalization",
    "MaxPooling1D",
    "MaxPooling2D",
    "MonteCarloDropout",
    "PReLU",
]
