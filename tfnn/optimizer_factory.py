"""The recipe's optimizer from keyword arguments: a Keras update rule (A4, B4) with its
learning-rate schedule, wrapped in the proximal L1 step (D4) and gradient clipping (E3).

    optimizer = make_optimizer("adam", learning_rate=3e-3, decay="cosine", total_steps=1800,
                               l1=1e-4, clip_mode="global_norm", clip=1.0)
"""

import functools as _functools

import keras as _keras

from tfnn import clipping, names, optimizers, validation

__all__ = ["learning_rate_schedule", "make_optimizer"]


def learning_rate_schedule(learning_rate, *, decay="none", final=None, total_steps=1):
    """α, or α decayed over `total_steps` to `final` (default α/100):

    linear       α_t = α + (final − α)·t/T
    cosine       α_t = final + (α − final)·(1 + cos(πt/T))/2
    exponential  α_t = α·(final/α)^(t/T)
    """
    learning_rate = validation.number("learning_rate", learning_rate, low=0, low_open=True)
    validation.one_of("decay", decay, names.DECAYS)
    if decay == "none":
        return learning_rate
    final = learning_rate / 100 if final is None else final
    final = validation.number("final", final, low=0, high=learning_rate, low_open=True)
    total_steps = validation.integer("total_steps", total_steps, low=1)
    schedules = _keras.optimizers.schedules
    if decay == "cosine":
        return schedules.CosineDecay(learning_rate, total_steps, alpha=final / learning_rate)
    if decay == "linear":
        return schedules.PolynomialDecay(learning_rate, total_steps, end_learning_rate=final)
    return schedules.ExponentialDecay(learning_rate, total_steps, decay_rate=final / learning_rate)


def make_optimizer(
    name="adam",
    *,
    learning_rate=1e-3,
    decay="none",
    learning_rate_final=None,
    total_steps=1,
    momentum=0.9,
    weight_decay=0.004,
    l1=0.0,
    clip_mode="none",
    clip=1.0,
):
    """A new optimizer: `name` ∈ {sgd, momentum, rmsprop, adam, adamw} at the scheduled rate;
    `momentum` is β of "momentum", `weight_decay` AdamW's; `l1` > 0 adds the proximal step
    (weights reach exact zeros; the penalty must not also be in the loss); `clip_mode` ≠
    "none" clips the gradients at `clip`."""
    validation.one_of("name", name, names.OPTIMIZERS)
    rate = learning_rate_schedule(
        learning_rate, decay=decay, final=learning_rate_final, total_steps=total_steps
    )
    rule = {
        "sgd": _keras.optimizers.SGD,
        "momentum": _functools.partial(_keras.optimizers.SGD, momentum=momentum),
        "rmsprop": _keras.optimizers.RMSprop,
        "adam": _keras.optimizers.Adam,
        "adamw": _functools.partial(_keras.optimizers.AdamW, weight_decay=weight_decay),
    }[name]
    optimizer = rule(rate)
    if validation.number("l1", l1, low=0):
        optimizer = optimizers.ProximalL1(optimizer, l1)
    validation.one_of("clip_mode", clip_mode, ("none", *names.CLIP_MODES))
    if clip_mode != "none":
        optimizer = clipping.ClipGradients(optimizer, clip_mode, clip)
    return optimizer
