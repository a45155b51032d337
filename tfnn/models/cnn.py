"""Convolutional networks from NPFL114's spec strings (docs/lecture.md F5), of tfnn layers."""

import keras
import numpy as np

from tfnn import layers, regularizers, validation
from tfnn.models import spec as specs
from tfnn.models.mlp import _shape_and_statistics
from tfnn.names import INITIALIZERS


def _conv(rank, item, init, l2):
    conv = layers.Conv1D if rank == 1 else layers.Conv2D
    return conv(
        item.filters,
        item.kernel,
        strides=item.stride,
        padding=item.padding,
        use_bias=not item.batch_norm,  # BN's β takes the bias's place
        activation=None if item.batch_norm else "relu",
        kernel_initializer=init,
        kernel_regularizer=regularizers.L2(l2) if l2 else None,
    )


def _apply(items, x, rank, init, l2):
    for item in items:
        if isinstance(item, specs.Conv):
            x = _conv(rank, item, init, l2)(x)
            if item.batch_norm:
                x = layers.Activation("relu")(layers.BatchNormalization()(x))
        elif isinstance(item, specs.Pool):
            pool = {
                ("max", 1): layers.MaxPooling1D,
                ("max", 2): layers.MaxPooling2D,
                ("average", 1): layers.AveragePooling1D,
                ("average", 2): layers.AveragePooling2D,
            }[item.kind, rank]
            x = pool(item.size, strides=item.stride)(x)
        elif isinstance(item, specs.Residual):  # its shape is checked by specs.output_shape
            x = keras.layers.Add()([x, _apply(item.layers, x, rank, init, l2)])
        elif isinstance(item, specs.Flatten):
            x = keras.layers.Flatten()(x)
        elif isinstance(item, specs.GlobalPool):
            pool = (
                keras.layers.GlobalAveragePooling1D
                if rank == 1
                else keras.layers.GlobalAveragePooling2D
            )
            x = pool()(x)
        elif isinstance(item, specs.Hidden):
            x = layers.Dense(
                item.units,
                activation="relu",
                kernel_initializer=init,
                kernel_regularizer=regularizers.L2(l2) if l2 else None,
            )(x)
        else:
            x = layers.Dropout(item.rate)(x)
    return x


def _signal_statistics(statistics):
    """`statistics` as (mean, variance) floats: one mean and one variance of all the signals'
    training values (their moments over axis=None), whatever the channels."""
    try:
        pair = [np.asarray(s, np.float64) for s in statistics]
    except (TypeError, ValueError):  # not a sequence, or not of numbers
        pair = []
    if len(pair) != 2:
        validation.fail("statistics", statistics, "a pair (mean, variance) of numbers")
    shapes = tuple(s.shape for s in pair)
    if shapes != ((), ()):
        raise ValueError(
            "Expected statistics (mean, variance) of shape () each: one mean and one variance "
            f"of all training values. Received: statistics of shapes {shapes}"
        )
    mean = validation.number("statistics[0]", float(pair[0]))
    return mean, validation.number("statistics[1]", float(pair[1]), low=0)


def cnn(
    inputs, outputs, spec, *, statistics=None, init="he", l2=0.0, target_scale=None, name="cnn"
):
    """A CNN: the spec's layers (F5: convolution → ReLU → pooling, …), then `outputs` logits.

    Args:
        inputs: the input shape of one example, or the training inputs: signals
            [N, T] or [N, T, C] build a 1D network, images [N, H, W, C] a 2D one.
            Signals are standardized with the mean and standard deviation of all
            their training values (in the model's config, so copies keep them).
        outputs: units of the output layer.
        spec: a spec string (see `tfnn.models.spec`).
        statistics: (mean, variance) of all training values of signals, two numbers
            (shape () each, whatever the channels), e.g. from `tfnn.data.moments` with
            axis=None; needed for signals given by their shape.
        init: kernel initialization, a name of `tfnn.names.INITIALIZERS` (he suits ReLU).
        l2: L2 penalty on every kernel.
        target_scale: (mean, std) of a regression target, as in `tfnn.models.mlp.mlp`.
        name: the model's name.

    Returns:
        A Functional `keras.Model` from inputs to logits; a final Flatten is
        added when the spec leaves spatial axes.

    Raises:
        ValueError: `statistics` that are not two numbers (a variance >= 0).
        tfnn.models.spec.SpecError: a malformed spec, or one the input shape cannot take
            (see `tfnn.models.spec.output_shape`), naming the layer.
    """
    init = INITIALIZERS[validation.one_of("init", init, tuple(INITIALIZERS))]
    items = specs.parse(spec) if isinstance(spec, str) else list(spec)
    shape, statistics = _shape_and_statistics(inputs, statistics, axis=None)
    if len(shape) not in (1, 2, 3):
        raise ValueError(
            "Expected signals [N, T], [N, T, C] or images [N, H, W, C]. "
            f"Received: example shape {shape}"
        )
    specs.output_shape(items, shape)  # a SpecError naming the layer, before Keras builds it
    inputs = keras.Input(shape, name="inputs")
    x = inputs
    if len(shape) <= 2:
        if len(shape) == 1:
            x = keras.layers.Reshape((*shape, 1))(x)
        if statistics is None:
            raise ValueError(
                "Expected `statistics` (mean, variance) for signals given by their shape. "
                f"Received: inputs={shape}, statistics=None"
            )
        mean, variance = _signal_statistics(statistics)
        # In float32 under any policy: raw values (and their variance) can exceed float16's range.
        # The scalar mean and variance apply to every value, the channels' axis (-1) included.
        x = keras.layers.Normalization(mean=mean, variance=variance, dtype="float32")(x)
    rank = len(x.shape) - 2
    x = _apply(items, x, rank, init, l2)
    if len(x.shape) > 2:
        x = keras.layers.Flatten()(x)
    logits = layers.Dense(outputs)(x)  # Glorot's initialization (the default), whatever `init`
    if target_scale is not None:
        mean, std = target_scale
        logits = keras.layers.Rescaling(scale=float(std), offset=float(mean))(logits)
    return keras.Model(inputs, logits, name=name)
