"""Optimizer wrappers: change what any Keras optimizer applies, without subclassing it.

`OptimizerWrapper` delegates everything (learning rate, iterations, variables,
serialization) to an inner optimizer, so a subclass only overrides
`apply_wrapped(grads, variables, apply)`. Keras's `LossScaleOptimizer`, which
`compile` puts around the whole stack under `mixed_float16`, unscales before
calling it, so wrappers always see true gradients.

`ProximalL1` is one: the proximal (soft-thresholding) form of the L1 step
(docs/lecture.md D4). The subgradient step the lecture writes,

    θ ← θ − α∂J/∂θ − αλ·sign(θ),

overshoots zero: a weight whose optimum is 0 keeps jumping across it, within
αλ of it, and is never exactly 0. The proximal step takes the same step but
stops at zero instead of crossing it:

    θ ← S_{αλ}(θ − α∂J/∂θ),   S_t(w) = sign(w) · max(|w| − t, 0),

which sets such weights to exactly 0 (for SGD it is the exact minimizer of the
linearized J plus λ‖θ‖₁: ISTA). After an adaptive optimizer's step it is the
decoupled analogue, as AdamW is for L2. With it, the penalty must not also be
in the loss.
"""

import keras as _keras
import tensorflow as _tf

__all__ = ["OptimizerWrapper", "ProximalL1", "find", "soft_threshold"]


class OptimizerWrapper(_keras.optimizers.Optimizer):
    """An optimizer that hands a changed update to `inner_optimizer`.

    Subclasses implement `apply_wrapped(grads, trainable_variables, apply)`,
    where `apply(grads)` performs the inner optimizer's update, and
    `wrapper_config()` with their own constructor arguments.
    """

    def __init__(self, inner_optimizer, name=None, **kwargs):
        if kwargs:
            raise ValueError(
                f"{type(self).__name__} takes no optimizer arguments; set them on the inner "
                f"optimizer. Received: {sorted(kwargs)}"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = _keras.optimizers.get(inner_optimizer)

    def build(self, var_list):
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            self.build(trainable_variables)
            self.built = True
        variables = (
            self._trainable_variables if trainable_variables is None else trainable_variables
        )
        self.apply_wrapped(
            list(grads),
            list(variables),
            lambda new_grads: self.inner_optimizer.apply(new_grads, trainable_variables),
        )

    def apply_wrapped(self, grads, trainable_variables, apply):
        raise NotImplementedError

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        # The base constructor sets a placeholder before the inner optimizer exists.
        if "inner_optimizer" in self.__dict__:
            self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def wrapper_config(self):
        return {}

    def get_config(self):
        return {
            "name": self.name,
            "inner_optimizer": _keras.saving.serialize_keras_object(self.inner_optimizer),
            **self.wrapper_config(),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = _keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)


def find(optimizer, cls):
    """The `cls` instance in a stack of wrapped optimizers (e.g. under a LossScaleOptimizer)."""
    while optimizer is not None:
        if isinstance(optimizer, cls):
            return optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return None


def soft_threshold(w, threshold):
    """S_t(w) = sign(w) · max(|w| − t, 0): shrink towards 0 by t, stopping at 0."""
    return _tf.sign(w) * _tf.maximum(_tf.abs(w) - threshold, _tf.zeros_like(w))


@_keras.saving.register_keras_serializable(package="tfnn")
class ProximalL1(OptimizerWrapper):
    """L1 penalty λ‖θ‖₁ as a proximal step after each update: θ ← S_{αλ}(θ) (D4).

    Args:
        inner_optimizer: any Keras optimizer.
        l1: λ ≥ 0.
        variable_names: the penalty applies to variables whose name is in
            this list (default: ["kernel"], every Dense/Conv kernel).
        name: the optimizer's name.
    """

    def __init__(self, inner_optimizer, l1=0.01, variable_names=("kernel",), name=None, **kwargs):
        l1 = float(l1)
        if not l1 >= 0.0 or l1 == float("inf"):
            raise ValueError(f"Expected a finite `l1` >= 0. Received: l1={l1}")
        super().__init__(inner_optimizer, name=name, **kwargs)
        self.l1 = l1
        self.variable_names = list(variable_names)

    def apply_wrapped(self, grads, trainable_variables, apply):
        # α of this step, read before the update advances the schedule.
        threshold = _tf.cast(self.inner_optimizer.learning_rate, _tf.float32) * self.l1
        apply(grads)
        for variable in trainable_variables:
            if variable.name in self.variable_names:
                variable.assign(soft_threshold(variable, _tf.cast(threshold, variable.dtype)))

    def wrapper_config(self):
        return {"l1": self.l1, "variable_names": self.variable_names}
