"""Ensembles (docs/lecture.md D6) and dropout's ensemble made explicit (D7).

An ensemble averages what its N members predict:

    classes      p̄(y|x) = 1/N Σ_i softmax(z_i)
    binary       p̄(1|x) = 1/N Σ_i σ(z_i)
    regression   ȳ(x)   = 1/N Σ_i z_i

tfnn's models output logits z, and so does an ensemble: the logits of the
averaged distribution, log p̄ (softmax(log p̄) = p̄ because p̄ sums to 1) and
logit(p̄) = log p̄ − log(1 − p̄) for a binary outcome, computed with
log-sum-exp from log-probabilities so no member's extreme logit overflows. An
ensemble is therefore a drop-in model: the same losses and metrics evaluate
it, `.keras` files hold it, and `tfnn.export` serves its probabilities.

Members differ by random initialization, by their bootstrap sample of the
training set (`tfnn.data.batches(..., bootstrap_seed=…)`), or are the weights
of one run's last epochs, averaged as weights (`weight_averaged`) or as
outputs (`ensemble`).

Monte-Carlo dropout (`monte_carlo_dropout`) averages T passes through random
dropout sub-networks, p̄(y|x) = 1/T Σ_t softmax(z(x; m_t)), where the usual
inference pass approximates that average by scaling the weights once.
"""

import itertools as _itertools
import math as _math

import keras as _keras
import numpy as _np
import tensorflow as _tf

from tfnn import layers, validation

__all__ = [
    "OUTPUT_FUNCTIONS",
    "EnsembleAverage",
    "MonteCarloAverage",
    "RepeatBatch",
    "average_logits",
    "ensemble",
    "monte_carlo_dropout",
    "weight_averaged",
]

OUTPUT_FUNCTIONS = ("softmax", "sigmoid", "linear")


def _validate_output_function(output_function):
    return validation.one_of("output_function", output_function, OUTPUT_FUNCTIONS)


def average_logits(z, output_function):
    """Members' outputs z [N, B, K] → the logits (values) of their average, [B, K]."""
    z = _tf.cast(z, _tf.float32)
    if output_function == "linear":
        return _tf.reduce_mean(z, axis=0)
    if z.shape[0] is not None:
        log_n = _math.log(z.shape[0])
    else:  # N known only when the graph runs (a tf.function traced for any N)
        log_n = _tf.math.log(_tf.cast(_tf.shape(z)[0], _tf.float32))
    if output_function == "softmax":  # log p̄ = log Σ_i exp(log softmax(z_i)) − log N
        return _tf.reduce_logsumexp(_tf.nn.log_softmax(z), axis=0) - log_n
    # log σ(z) = −softplus(−z), log(1 − σ(z)) = −softplus(z); the log N's cancel.
    log_p = _tf.reduce_logsumexp(-_tf.nn.softplus(-z), axis=0)
    log_not_p = _tf.reduce_logsumexp(-_tf.nn.softplus(z), axis=0)
    return log_p - log_not_p


@_keras.saving.register_keras_serializable(package="tfnn")
class EnsembleAverage(_keras.layers.Layer):
    """Averages a list of members' logits as distributions (or values); see the module.

    Args:
        output_function: the members' output function: "softmax" (classes),
            "sigmoid" (binary) or "linear" (regression).
        **kwargs: base `Layer` arguments; the layer computes in float32.

    Call arguments:
        inputs: a list of N tensors [B, K], one per member.
    """

    def __init__(self, output_function, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.output_function = _validate_output_function(output_function)
        self.built = True

    def call(self, inputs):
        return average_logits(_tf.stack(list(inputs)), self.output_function)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "output_function": self.output_function}


def _validate_samples(samples):
    return validation.integer("samples", samples, low=1)


@_keras.saving.register_keras_serializable(package="tfnn")
class RepeatBatch(_keras.layers.Layer):
    """[B, …] → [T·B, …]: the batch T times over, so T stochastic passes run as one."""

    def __init__(self, samples, **kwargs):
        super().__init__(**kwargs)
        self.samples = _validate_samples(samples)
        self.built = True

    def call(self, inputs):
        return _tf.tile(inputs, [self.samples] + [1] * (inputs.shape.rank - 1))

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else self.samples * input_shape[0]
        return (batch, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "samples": self.samples}


@_keras.saving.register_keras_serializable(package="tfnn")
class MonteCarloAverage(_keras.layers.Layer):
    """[T·B, …] outputs of T passes (as `RepeatBatch` lays them out) → their average [B, …].

    Args:
        samples: T.
        output_function: "softmax", "sigmoid" or "linear", as for `EnsembleAverage`.
    """

    def __init__(self, samples, output_function, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.samples = _validate_samples(samples)
        self.output_function = _validate_output_function(output_function)
        self.built = True

    def call(self, inputs):
        passes = _tf.reshape(inputs, [self.samples, -1, *inputs.shape[1:]])
        return average_logits(passes, self.output_function)

    def compute_output_shape(self, input_shape):
        batch = None if input_shape[0] is None else input_shape[0] // self.samples
        return (batch, *input_shape[1:])

    def get_config(self):
        return {
            **super().get_config(),
            "samples": self.samples,
            "output_function": self.output_function,
        }


def ensemble(members, output_function, name="ensemble"):
    """One Keras model (inputs → averaged logits) over `members`, which share an input shape.

    Members keep their weights (they are shared, not copied) and must have
    distinct names unless they are the same model.
    """
    members = list(members)
    if not members:
        raise ValueError("Expected at least one model in `members`. Received: members=[]")
    inputs = _keras.Input(members[0].input_shape[1:], name="inputs")
    average = EnsembleAverage(output_function, name="average")(
        [member(inputs) for member in members]
    )
    return _keras.Model(inputs, average, name=name)


def _copy(model, weights, clone_function=None):
    """A clone of `model` (layers through `clone_function`) holding `weights`."""
    copy = _keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    copy.set_weights(weights)
    # An adapted keras.layers.Normalization turns its mean/variance weights into the
    # tensors it computes with only on adapt() or load, not on set_weights(): without
    # this the copy would standardize with mean 0 and variance 1.
    for layer in copy._flatten_layers():  # the copy itself, a model, is no Normalization
        if isinstance(layer, _keras.layers.Normalization):
            layer.finalize_state()
    return copy


def weight_averaged(model, snapshots, name=None):
    """A copy of `model` holding the mean of `snapshots` (lists of `get_weights()` arrays)."""
    snapshots = list(snapshots)
    if not snapshots:
        raise ValueError("Expected at least one weight snapshot. Received: snapshots=[]")
    sizes = [len(weights) for weights in snapshots]
    if set(sizes) != {len(model.weights)}:
        raise ValueError(
            f"Expected snapshots of {len(model.weights)} arrays each, as model.get_weights() "
            f"gives. Received: snapshots of {sizes} arrays"
        )
    averaged = _copy(model, [_np.mean(weights, axis=0) for weights in zip(*snapshots, strict=True)])
    if name:
        averaged.name = name
    return averaged


def _with_monte_carlo_dropout(seeds):
    """A clone function: a dropout layer becomes `MonteCarloDropout`, seeded by the next of
    `seeds` (None: its own seed), any other layer a copy of itself."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, (layers.Dropout, _keras.layers.Dropout)):
            if seeds is not None:
                config["seed"] = next(seeds)
            return layers.MonteCarloDropout.from_config(config)
        return layer.__class__.from_config(config)

    return clone


def monte_carlo_dropout(model, samples, output_function, name=None, seed=None):
    """A model averaging `samples` passes of `model` with dropout on at inference.

    `model`'s dropout layers become `MonteCarloDropout` in a copy that shares
    nothing with `model`; every other layer (batch normalization included)
    keeps its inference behaviour. The T passes run as one batch of T·B.
    `seed` (an int): the copy's dropout layers are seeded `seed`, `seed` + 1, … in
    the model's order, so its masks are the same whatever the process drew before;
    None: each layer keeps its own seed (None: drawn from Keras's global state).
    """
    samples = _validate_samples(samples)
    _validate_output_function(output_function)
    if seed is not None:
        validation.integer("seed", seed, low=0)
    seeds = None if seed is None else _itertools.count(seed)
    stochastic = _copy(model, model.get_weights(), _with_monte_carlo_dropout(seeds))
    inputs = _keras.Input(model.input_shape[1:], name="inputs")
    passes = stochastic(RepeatBatch(samples, name="repeat")(inputs))
    average = MonteCarloAverage(samples, output_function, name="average")(passes)
    return _keras.Model(inputs, average, name=name or f"{model.name}_mc_dropout")
