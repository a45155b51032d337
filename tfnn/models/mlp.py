"""The multi-layer perceptron (docs/lecture.md A2), built from tfnn components."""

import keras
import numpy as np

from tfnn import constraints, regularizers, validation
from tfnn.layers import Dense, Dropout, PReLU
from tfnn.names import ACTIVATIONS, INITIALIZERS


def _penalty(l1, l2):
    if l1 and l2:
        return regularizers.L1L2(l1, l2)
    if l1:
        return regularizers.L1(l1)
    if l2:
        return regularizers.L2(l2)
    return None


def _shape_and_statistics(inputs, statistics, axis):
    """(example shape, statistics): `inputs` is a shape, or training inputs [N, …] whose
    mean and variance (over `axis`) are the statistics unless `statistics` is given."""
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), statistics
    if statistics is None:
        values = np.asarray(inputs, dtype=np.float64)
        statistics = values.mean(axis=axis), values.var(axis=axis)
    return tuple(inputs.shape[1:]), statistics


def mlp(
    inputs,
    outputs,
    *,
    statistics=None,
    hidden_layers=(100,),
    activation="relu",
    init="glorot",
    dropout=0.0,
    l1=0.0,
    l2=0.0,
    max_norm=0.0,
    target_scale=None,
    name="mlp",
):
    """An MLP h = f(Wx + b) per hidden layer, then a linear output layer of `outputs` logits.

    Args:
        inputs: the input shape of one example, or the training inputs [N, …]
            (their shape, and their statistics when `statistics` is None).
            Vector inputs are standardized per feature, x̃ = (x − mean)/std (a
            `keras.layers.Normalization` holding mean and variance in its
            config, so every copy of the model keeps them).
        outputs: units of the output layer (classes, or 1).
        statistics: (mean, variance) per feature of the training inputs, e.g.
            from `tfnn.data.moments` (one streaming pass); needed for vector
            inputs given by their shape.
        hidden_layers: sizes of the hidden layers (none: a linear model).
        activation: f of the hidden layers: a tfnn activation name or "prelu".
        init: kernel initialization, a name of `tfnn.names.INITIALIZERS` (biases start at 0).
        dropout: p of the dropout after each hidden layer (D7).
        l1, l2: penalties on every kernel (D2, D4).
        max_norm: c > 0 caps each unit's incoming weight norm; 0 turns it off.
        target_scale: (mean, std) of a regression target: the output becomes
            mean + std · (linear output), so the network predicts values in the
            target's units while its weights work at unit scale.
        name: the model's name.

    Returns:
        A Functional `keras.Model` from inputs to logits (values for regression).
    """
    validation.one_of("activation", activation, ACTIVATIONS)
    validation.one_of("init", init, tuple(INITIALIZERS))
    shape, statistics = _shape_and_statistics(inputs, statistics, axis=0)
    inputs = keras.Input(shape, name="inputs")
    hidden = inputs
    if len(shape) > 1:
        hidden = keras.layers.Flatten()(hidden)
    else:
        # The statistics go into the config, not into adapt()'s state: Keras builds an
        # adapted layer's mean/variance once, so a clone given set_weights() would keep
        # mean 0 and variance 1, and every model copy would lose the standardization.
        # float32 under any policy: raw features' variances can pass float16's 65504.
        if statistics is None:
            raise ValueError(
                "Expected `statistics` (mean, variance) for vector inputs given by their "
                f"shape. Received: inputs={shape}, statistics=None"
            )
        mean, variance = (np.asarray(s, np.float64) for s in statistics)
        standardize = keras.layers.Normalization(mean=mean, variance=variance, dtype="float32")
        hidden = standardize(hidden)

    def dense(units, layer_activation):
        return Dense(
            units,
            activation=layer_activation,
            kernel_initializer=INITIALIZERS[init],
            kernel_regularizer=_penalty(l1, l2),
            kernel_constraint=constraints.MaxNorm(max_norm) if max_norm else None,
        )

    for units in hidden_layers:
        if activation == "prelu":
            hidden = PReLU()(dense(units, None)(hidden))
        else:
            hidden = dense(units, activation)(hidden)
        if dropout:
            hidden = Dropout(dropout)(hidden)
    logits = dense(outputs, None)(hidden)
    if target_scale is not None:
        mean, std = target_scale
        logits = keras.layers.Rescaling(scale=float(std), offset=float(mean))(logits)
    return keras.Model(inputs, logits, name=name)
