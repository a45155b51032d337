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


def mlp(
    train_x,
    outputs,
    *,
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
        train_x: the training inputs; their shape sets the input, and vector
            inputs are standardized per feature, x̃ = (x − mean)/std with the
            mean and std of these examples (a `keras.layers.Normalization`
            holding them in its config, so every copy of the model keeps them).
        outputs: units of the output layer (classes, or 1).
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
    inputs = keras.Input(train_x.shape[1:], name="inputs")
    hidden = inputs
    if len(train_x.shape) > 2:
        hidden = keras.layers.Flatten()(hidden)
    else:
        # The statistics go into the config, not into adapt()'s state: Keras builds an
        # adapted layer's mean/variance once, so a clone given set_weights() would keep
        # mean 0 and variance 1, and every model copy would lose the standardization.
        # float32 under any policy: raw features' variances can pass float16's 65504.
        values = np.asarray(train_x, dtype=np.float64)
        mean, variance = values.mean(axis=0), values.var(axis=0)
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
