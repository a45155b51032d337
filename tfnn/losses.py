"""Losses and their derivatives (docs/lecture.md B3, C1–C5).

With logits z, output o and gold g (a distribution over K classes, or the
target value), the per-example losses and the gradients the lecture derives:

    C1  MSE            L = (1/K) Σ_k (ŷ_k − y_k)²        ∂L/∂ŷ = 2(ŷ − y)/K
    C3  softmax NLL    L = −log o_gold                    ∂L/∂z = o − 1_gold
    C4  softmax NLL    L = −Σ_i g_i log o_i               ∂L/∂z = o − g
    C5  sigmoid NLL    L = −g log o − (1−g) log(1−o)      ∂L/∂z = o − g     (o = σ(z))
    B3  KL divergence  D_KL(g‖o) = Σ_i g_i log(g_i/o_i) = H(g, o) − H(g)

(K = 1 for a single regression target or a single binary outcome; with K
targets, Keras averages the per-target losses, hence the 1/K.)

C1, C3–C5 are `tf.custom_gradient` functions: the forward pass and the
lecture's gradient sit side by side, and autodiff never differentiates
through them. Each returns one loss per example; its gradient function scales
the lecture's gradient by the incoming `dy` (one value per example), which
carries Keras's reduction (1/B for the mean), `sample_weight` and the
mixed-precision loss scale. Gradients come back in the input's dtype.

Log-probabilities are computed stably: log o = (z − max z) − log Σ_j e^{z_j − max z}
and log σ(z) = −softplus(−z) = −max(−z, 0) − log(1 + e^{−|z|}), finite for
any finite logits. Half-precision inputs are computed in float32.

The `Loss` classes mirror Keras's (`reduction`, `name`, `dtype`,
`sample_weight`) and are registered for saving:

    tfnn.losses.SoftmaxNLL()         ≡ keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                                       or keras.losses.CategoricalCrossentropy(from_logits=True)
    tfnn.losses.SigmoidNLL()         ≡ keras.losses.BinaryCrossentropy(from_logits=True)
    tfnn.losses.MeanSquaredError()   ≡ keras.losses.MeanSquaredError()
    tfnn.losses.KLDivergence()       ≡ keras.losses.KLDivergence()
"""

import keras as _keras
import tensorflow as _tf

from tfnn import _dtypes, validation

__all__ = [
    "KLDivergence",
    "MeanSquaredError",
    "SigmoidNLL",
    "SoftmaxNLL",
    "kl_divergence",
    "mean_squared_error",
    "sigmoid_nll",
    "softmax_nll",
]

_register = _keras.saving.register_keras_serializable(package="tfnn")


# -- C3, C4: softmax negative log-likelihood -------------------------------------------------


@_tf.custom_gradient
def _softmax_nll(gold, logits):
    """−Σ g log softmax(z) per example; gradient o − g (C4; C3 when g is one-hot)."""
    z = _dtypes.to_compute(logits)
    g = _tf.cast(gold, z.dtype)
    shifted = z - _tf.reduce_max(z, axis=-1, keepdims=True)
    exp = _tf.exp(shifted)
    normalizer = _tf.reduce_sum(exp, axis=-1, keepdims=True)
    log_o = shifted - _tf.math.log(normalizer)
    loss = -_tf.reduce_sum(g * log_o, axis=-1)

    def grad(dy):
        dy = dy[..., None]
        o = exp / normalizer
        d_logits = dy * (o - g)
        d_gold = dy * -log_o
        return _tf.cast(d_gold, gold.dtype), _tf.cast(d_logits, logits.dtype)

    return loss, grad


def _gold_is_class_index(gold, logits):
    """True for class indices ([..., ] or [..., 1]), False for distributions ([..., K])."""
    if gold.shape.rank is None or logits.shape.rank is None:
        raise ValueError(
            "Expected gold labels and logits of known rank. "
            f"Received: y_true.shape={gold.shape}, y_pred.shape={logits.shape}"
        )
    classes = logits.shape[-1]
    if gold.shape.rank == logits.shape.rank - 1 and gold.shape.is_compatible_with(
        logits.shape[:-1]
    ):
        return True
    if gold.shape.rank == logits.shape.rank:
        if (
            gold.shape[-1] == 1
            and classes != 1
            and gold.shape[:-1].is_compatible_with(logits.shape[:-1])
        ):
            return True
        if gold.shape.is_compatible_with(logits.shape):
            return False
    raise ValueError(
        "Expected gold labels as class indices of shape logits.shape[:-1] (or with a trailing 1) "
        "or as distributions of the logits' shape. "
        f"Received: y_true.shape={gold.shape}, y_pred.shape={logits.shape}"
    )


def _checked_indices(indices, classes):
    """The indices, or InvalidArgumentError for one outside [0, K) (one_hot would give 0s).

    One assertion per batch, as Keras's sparse cross-entropy refuses them; XLA drops it.
    """
    inside = (indices >= 0) & (indices < classes)
    check = _tf.debugging.Assert(
        _tf.reduce_all(inside),
        [
            f"Received a label value outside the valid range [0, {classes}). Label values:",
            indices,  # as Keras lists them; a mask of the bad ones would cost every batch
        ],
        summarize=10,
    )
    with _tf.control_dependencies([check]):
        return _tf.identity(indices)


def _smooth(distribution, label_smoothing, classes):
    """Label smoothing: g ← (1 − ε) g + ε/K."""
    if not label_smoothing:
        return distribution
    return (1.0 - label_smoothing) * distribution + label_smoothing / classes


def softmax_nll(gold, logits, label_smoothing=0.0):
    """Per-example softmax NLL −Σ_i g_i log softmax(z)_i with ∂L/∂z = o − g (C3, C4).

    Args:
        gold: class indices (shape `logits.shape[:-1]`, or with a trailing 1;
            any numeric dtype; one outside [0, K) raises InvalidArgumentError)
            or gold distributions of the logits' shape whose
            rows sum to 1 (one-hot, label-smoothed or mixup labels). The
            gradient o − g is exact for such rows.
        logits: z, shape [..., K], any float dtype.
        label_smoothing: ε ∈ [0, 1]; the gold becomes (1 − ε) g + ε/K.

    Returns:
        The losses, shape `logits.shape[:-1]`, float32 for half-precision
        logits and the logits' dtype otherwise.
    """
    logits = _tf.convert_to_tensor(logits)
    gold = _tf.convert_to_tensor(gold)
    dtype = _dtypes.compute_dtype(logits.dtype)
    classes = logits.shape[-1]
    if _gold_is_class_index(gold, logits):
        if gold.shape.rank == logits.shape.rank:
            gold = _tf.squeeze(gold, axis=-1)
        # Keras's Loss.__call__ hands y_true over as float32: indices go back to ints.
        gold = _tf.one_hot(
            _checked_indices(_tf.cast(gold, _tf.int32), classes), classes, dtype=dtype
        )
    else:
        gold = _tf.cast(gold, dtype)
    return _softmax_nll(_smooth(gold, label_smoothing, classes), logits)


# -- C5: sigmoid negative log-likelihood -----------------------------------------------------


@_tf.custom_gradient
def _sigmoid_nll(gold, logits):
    """Mean over the last axis of −g log σ(z) − (1−g) log(1−σ(z)); gradient (σ(z) − g)/K (C5)."""
    z = _dtypes.to_compute(logits)
    g = _tf.cast(gold, z.dtype)
    # −log σ(z) = softplus(−z) and −log(1 − σ(z)) = softplus(z) = z + softplus(−z), so
    # L = g·softplus(−z) + (1−g)(z + softplus(−z)) = max(z, 0) − g·z + log(1 + e^{−|z|}).
    elementwise = _tf.maximum(z, 0.0) - g * z + _tf.math.log1p(_tf.exp(-_tf.abs(z)))
    targets = _tf.cast(_tf.shape(z)[-1], z.dtype)
    loss = _tf.reduce_mean(elementwise, axis=-1)

    def grad(dy):
        dy = dy[..., None] / targets
        d_logits = dy * (_tf.math.sigmoid(z) - g)
        d_gold = dy * -z
        return _tf.cast(d_gold, gold.dtype), _tf.cast(d_logits, logits.dtype)

    return loss, grad


def _same_rank(target, prediction):
    """Keras's rule: a [..., 1] prediction may pair with a target lacking the trailing 1."""
    if target.shape.rank is None or prediction.shape.rank is None:
        raise ValueError(
            "Expected targets and predictions of known rank. "
            f"Received: y_true.shape={target.shape}, y_pred.shape={prediction.shape}"
        )
    if target.shape.rank == prediction.shape.rank - 1 and prediction.shape[-1] == 1:
        target = target[..., None]
    if not target.shape.is_compatible_with(prediction.shape):
        raise ValueError(
            "Expected targets of the predictions' shape (or without its trailing 1). "
            f"Received: y_true.shape={target.shape}, y_pred.shape={prediction.shape}"
        )
    return target


def sigmoid_nll(gold, logits, label_smoothing=0.0):
    """Per-example sigmoid NLL with ∂L/∂z = σ(z) − g per target (C5).

    Args:
        gold: probabilities g ∈ [0, 1] of the positive outcome, the logits'
            shape (or without their trailing 1).
        logits: z, shape [..., K]: K independent binary outcomes.
        label_smoothing: ε ∈ [0, 1]; the gold becomes (1 − ε) g + ε/2.

    Returns:
        The mean over the K outcomes, shape `logits.shape[:-1]`.
    """
    logits = _tf.convert_to_tensor(logits)
    dtype = _dtypes.compute_dtype(logits.dtype)
    gold = _same_rank(_tf.cast(_tf.convert_to_tensor(gold), dtype), logits)
    return _sigmoid_nll(_smooth(gold, label_smoothing, 2), logits)


# -- C1: mean squared error ------------------------------------------------------------------


@_tf.custom_gradient
def _mean_squared_error(target, prediction):
    """(1/K) Σ (ŷ − y)² per example; gradient 2(ŷ − y)/K (C1)."""
    y_hat = _dtypes.to_compute(prediction)
    error = y_hat - _tf.cast(target, y_hat.dtype)
    loss = _tf.reduce_mean(_tf.square(error), axis=-1)

    def grad(dy):
        d_prediction = dy[..., None] * 2.0 * error / _tf.cast(_tf.shape(error)[-1], error.dtype)
        return _tf.cast(-d_prediction, target.dtype), _tf.cast(d_prediction, prediction.dtype)

    return loss, grad


def mean_squared_error(target, prediction):
    """Per-example MSE (1/K) Σ_k (ŷ_k − y_k)² with ∂L/∂ŷ = 2(ŷ − y)/K (C1)."""
    prediction = _tf.convert_to_tensor(prediction)
    dtype = _dtypes.compute_dtype(prediction.dtype)
    target = _same_rank(_tf.cast(_tf.convert_to_tensor(target), dtype), prediction)
    return _mean_squared_error(target, prediction)


# -- B3: KL divergence -----------------------------------------------------------------------


def kl_divergence(gold, predicted):
    """Per-example D_KL(g‖o) = Σ_i g_i log(g_i / o_i) of two distributions (B3).

    Both are clipped to [ε, 1] (ε = `keras.config.epsilon()`) as Keras does, so
    zero probabilities give finite values. Differentiated by autodiff; for
    o = softmax(z) its gradient is o − g, the same as C4's, because
    D_KL(g‖o) = H(g, o) − H(g) and H(g) does not depend on z.
    """
    predicted = _tf.convert_to_tensor(predicted)
    dtype = _dtypes.compute_dtype(predicted.dtype)
    epsilon = _keras.config.epsilon()
    o = _tf.clip_by_value(_tf.cast(predicted, dtype), epsilon, 1.0)
    g = _tf.clip_by_value(_same_rank(_tf.cast(_tf.convert_to_tensor(gold), dtype), o), epsilon, 1.0)
    return _tf.reduce_sum(g * _tf.math.log(g / o), axis=-1)


# -- Keras Loss classes ----------------------------------------------------------------------


def _validate_label_smoothing(label_smoothing):
    return validation.number("label_smoothing", label_smoothing, low=0, high=1)


class _Loss(_keras.losses.Loss):
    """A Keras loss whose config covers every constructor argument (Keras's omits dtype)."""

    def get_config(self):
        return {**super().get_config(), "dtype": self.dtype}


class _SmoothedLoss(_Loss):
    def __init__(self, label_smoothing, reduction, name, dtype):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = _validate_label_smoothing(label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@_register
class SoftmaxNLL(_SmoothedLoss):
    """Softmax negative log-likelihood of logits (categorical cross-entropy; C3, C4).

    L = −Σ_i g_i log softmax(z)_i, with the explicit gradient ∂L/∂z = o − g.
    The gold may be class indices (C3) or distributions (C4: label smoothing,
    mixup), told apart by shape.

    Args:
        label_smoothing: ε ∈ [0, 1]; the gold becomes (1 − ε) g + ε/K.
        reduction: as in Keras ("sum_over_batch_size", "sum", "mean",
            "mean_with_sample_weight", "none" or None).
        name: the loss's name.
        dtype: the dtype the loss is computed and returned in (float32 by default).

    Call arguments:
        y_true: class indices [B] / [B, 1], or distributions [B, K].
        y_pred: logits [B, K].
        sample_weight: optional per-example weights.
    """

    def __init__(
        self, label_smoothing=0.0, reduction="sum_over_batch_size", name="softmax_nll", dtype=None
    ):
        super().__init__(label_smoothing, reduction, name, dtype)

    def call(self, y_true, y_pred):
        return softmax_nll(y_true, y_pred, self.label_smoothing)


@_register
class SigmoidNLL(_SmoothedLoss):
    """Sigmoid negative log-likelihood of logits (binary cross-entropy; C5).

    L = −g log σ(z) − (1 − g) log(1 − σ(z)), averaged over the last axis,
    with the explicit gradient ∂L/∂z = σ(z) − g per outcome.

    Args:
        label_smoothing: ε ∈ [0, 1]; the gold becomes (1 − ε) g + ε/2.
        reduction, name, dtype: as in `SoftmaxNLL`.

    Call arguments:
        y_true: probabilities of the positive outcome, [B, K] or [B] when K = 1.
        y_pred: logits [B, K].
        sample_weight: optional per-example weights.
    """

    def __init__(
        self, label_smoothing=0.0, reduction="sum_over_batch_size", name="sigmoid_nll", dtype=None
    ):
        super().__init__(label_smoothing, reduction, name, dtype)

    def call(self, y_true, y_pred):
        return sigmoid_nll(y_true, y_pred, self.label_smoothing)


@_register
class MeanSquaredError(_Loss):
    """Mean squared error (1/K) Σ (ŷ − y)², with the explicit gradient 2(ŷ − y)/K (C1).

    Args:
        reduction, name, dtype: as in `SoftmaxNLL`.
    """

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)


@_register
class KLDivergence(_Loss):
    """Kullback–Leibler divergence D_KL(g‖o) = Σ g log(g/o) of probabilities (B3).

    Args:
        reduction, name, dtype: as in `SoftmaxNLL`.

    Call arguments:
        y_true: gold distributions g [B, K].
        y_pred: predicted distributions o [B, K] (probabilities, not logits).
    """

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return kl_divergence(y_true, y_pred)
