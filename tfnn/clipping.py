"""Gradient clipping (docs/lecture.md E3).

With threshold c, a gradient g is kept if ‖g‖ ≤ c and rescaled to length c
otherwise:

    g ← g                if ‖g‖ ≤ c
    g ← c · g / ‖g‖      otherwise

applied to one of three units:

    value        each element on its own: ‖g_i‖ = |g_i|, so g_i ← clip(g_i, −c, c)
    norm         each variable (matrix, bias vector) with its own norm
    global_norm  all variables as one vector, ‖g‖ = √(Σ_v ‖g_v‖²): the
                 direction of the whole step is kept

`ClipGradients(optimizer, mode, threshold)` wraps any Keras optimizer and
clips what it is about to apply. Under `mixed_float16` Keras wraps it in turn
in a `LossScaleOptimizer`, so the order is: unscale → clip → apply, and the
clipping sees the true (unscaled) norms. It records, for telemetry, the
global norm before clipping and whether clipping changed anything
(`tfnn.callbacks.ClipTelemetry` puts both in the training logs).

Under a tf.distribute strategy each replica computes the gradient of its
part of the batch. Keras clips those parts before adding them up (so with N
replicas the applied norm can reach N·c); `ClipGradients` adds them up first
and clips the whole batch's gradient, as one device would.
"""

import keras as _keras
import tensorflow as _tf

from tfnn import names, optimizers, validation

__all__ = ["MODES", "ClipGradients", "clip_gradients", "global_norm"]

MODES = names.CLIP_MODES


def _validate(mode, threshold):
    validation.one_of("mode", mode, MODES)
    validation.number("threshold", threshold, low=0, low_open=True)  # c > 0


def global_norm(grads):
    """‖g‖ = √(Σ_v ‖g_v‖²) over all non-None gradients, in float32."""
    return _tf.sqrt(
        _tf.add_n([_tf.reduce_sum(_tf.square(_tf.cast(g, _tf.float32))) for g in grads])
    )


def _rescale(g, norm, threshold):
    """g if ‖g‖ ≤ c else c·g/‖g‖ (norm given in float32)."""
    factor = _tf.minimum(1.0, threshold / _tf.maximum(norm, 1e-30))
    return g * _tf.cast(factor, g.dtype)


def clip_gradients(grads, mode, threshold):
    """Clips a list of gradients (Nones pass through) by E3's rule.

    Returns:
        (clipped gradients, the global norm before clipping, whether any
        gradient was changed).
    """
    _validate(mode, threshold)
    present = [g for g in grads if g is not None]
    norm = global_norm(present)
    if mode == "global_norm":
        clipped = [None if g is None else _rescale(g, norm, threshold) for g in grads]
        fired = norm > threshold
    elif mode == "norm":
        norms = [None if g is None else _tf.norm(_tf.cast(g, _tf.float32)) for g in grads]
        clipped = [
            None if g is None else _rescale(g, n, threshold)
            for g, n in zip(grads, norms, strict=True)
        ]
        fired = _tf.reduce_any(_tf.stack([n > threshold for n in norms if n is not None]))
    else:
        clipped = [
            None if g is None else _tf.clip_by_value(g, -threshold, threshold) for g in grads
        ]
        fired = _tf.reduce_any(_tf.stack([_tf.reduce_any(_tf.abs(g) > threshold) for g in present]))
    return clipped, norm, fired


def _all_reduce_sum(context, grads):
    """The replicas' gradients summed, on every replica (Nones pass through)."""
    present = [g for g in grads if g is not None]
    summed = iter(context.all_reduce(_tf.distribute.ReduceOp.SUM, present))
    return [None if g is None else next(summed) for g in grads]


@_keras.saving.register_keras_serializable(package="tfnn")
class ClipGradients(optimizers.OptimizerWrapper):
    """Wraps a Keras optimizer: clips each step's gradients (E3), then applies them.

    Args:
        inner_optimizer: any Keras optimizer (without clip arguments of its own).
        mode: "value" (per weight), "norm" (per variable) or "global_norm".
        threshold: c > 0.
        name: the optimizer's name.

    Telemetry variables, updated at every step: `last_norm` (this step's global
    norm before clipping), and, reset by `reset_telemetry()`, `norm_sum`,
    `norm_max`, `steps` and `clipped_steps` (steps where clipping changed a
    gradient).
    """

    def __init__(self, inner_optimizer, mode="global_norm", threshold=1.0, name=None, **kwargs):
        _validate(mode, threshold)
        super().__init__(inner_optimizer, name=name, **kwargs)
        inner = self.inner_optimizer
        if inner.clipnorm or inner.clipvalue or inner.global_clipnorm:
            raise ValueError(
                "Expected an inner optimizer without clipnorm, clipvalue or global_clipnorm: "
                "ClipGradients does the clipping."
            )
        self.mode = mode
        self.threshold = float(threshold)

    def build(self, var_list):
        def scalar(name, dtype):  # replicas hold equal values: the first one's is kept
            return self.add_variable(
                (), initializer="zeros", dtype=dtype, name=name, aggregation="only_first_replica"
            )

        self.last_norm = scalar("last_norm", "float32")
        self.norm_sum = scalar("norm_sum", "float32")
        self.norm_max = scalar("norm_max", "float32")
        self.steps = scalar("steps", "int64")
        self.clipped_steps = scalar("clipped_steps", "int64")
        super().build(var_list)

    def apply_wrapped(self, grads, trainable_variables, apply):
        context = _tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        if replicas > 1:
            # Each replica holds its share of the gradient, and Keras sums the shares
            # after this point. Clip the sum, the whole batch's gradient, instead: one
            # device and N replicas then take the same step.
            grads = _all_reduce_sum(context, grads)
        clipped, norm, fired = clip_gradients(grads, self.mode, self.threshold)
        self.last_norm.assign(norm)
        self.norm_sum.assign_add(norm)
        self.norm_max.assign(_tf.maximum(self.norm_max, norm))
        self.steps.assign_add(1)
        self.clipped_steps.assign_add(_tf.cast(fired, _tf.int64))
        if replicas > 1:  # Keras's sum of N equal shares gives back the clipped gradient
            clipped = [None if g is None else g / _tf.cast(replicas, g.dtype) for g in clipped]
        apply(clipped)

    def reset_telemetry(self):
        for variable in (self.norm_sum, self.norm_max, self.steps, self.clipped_steps):
            variable.assign(_tf.zeros_like(variable))

    def telemetry(self):
        """Since the last reset: {"grad_norm": mean norm, "grad_norm_max": max norm,
        "clip_rate": share of clipped steps}."""
        steps = max(int(self.steps.numpy()), 1)
        return {
            "grad_norm": float(self.norm_sum.numpy()) / steps,
            "grad_norm_max": float(self.norm_max.numpy()),
            "clip_rate": int(self.clipped_steps.numpy()) / steps,
        }

    def wrapper_config(self):
        return {"mode": self.mode, "threshold": self.threshold}
