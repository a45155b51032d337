"""Temperature scaling (docs/lecture.md D7, calibration): one scalar T > 0 divides a trained
classifier's logits so that its confidence matches its accuracy.

The network is left as it is; its logits z are rescaled before the output function,

    classes   p = softmax(z / T)
    binary    p = σ(z / T)          (the two-class softmax of (0, z))

and T is the one that minimizes the negative log-likelihood of the validation
split (Guo et al., "On Calibration of Modern Neural Networks", 2017):

    T* = argmin_T NLL(T),   NLL(T) = (1/N) Σ_i [logsumexp(z_i / T) − z_{i,y_i} / T]

T > 1 softens over-confident predictions, T < 1 sharpens under-confident ones
(label smoothing, mixup and Monte-Carlo dropout tend to produce those), and
since z/T keeps the order of the logits, argmax and accuracy never change.

With β = 1/T the NLL is convex in β (a log-sum-exp of functions linear in β,
minus a linear term), with

    NLL′(β)  = (1/N) Σ_i (E_{p_β}[z_i] − z_{i,y_i})       mean logit under p_β minus the gold's
    NLL″(β)  = (1/N) Σ_i Var_{p_β}[z_i] ≥ 0

so its minimum is the one root of NLL′. `fit_temperature` finds it by Newton's
method on β, safeguarded by bisection: each step keeps a bracket [β_lo, β_hi]
with NLL′(β_lo) < 0 < NLL′(β_hi), and a Newton step that leaves the bracket is
replaced by its midpoint. When the root lies outside the allowed range of T the
nearest bound is returned (all validation predictions right and separable: the
NLL falls forever as T → 0; predictions no better than chance: as T → ∞).

Plain NumPy in float64: the fit is a few dozen passes over N × K numbers.
"""

import numpy as _np

from tfnn import validation

__all__ = ["BOUNDS", "fit_temperature", "nll", "probabilities", "separable"]

BOUNDS = (0.05, 20.0)  # the temperatures the fit may return


def _checked(logits, labels):
    """(logits [N, K] float64 with K ≥ 2, labels [N] int): a binary outcome's logits [N] or
    [N, 1] become the two-class logits (0, z), since σ(z) = softmax((0, z))₁."""
    z = _np.asarray(logits, dtype=_np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        validation.fail("logits", _np.shape(logits), "logits of shape [N, K] or [N, 1] with N >= 1")
    if not _np.all(_np.isfinite(z)):
        validation.fail("logits", "non-finite values", "finite logits")
    if z.shape[1] == 1:
        z = _np.concatenate([_np.zeros_like(z), z], axis=1)
    y = _np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    integral = _np.issubdtype(y.dtype, _np.number) and _np.all(y == _np.round(y))
    if y.shape != (z.shape[0],) or not integral or y.min() < 0 or y.max() >= z.shape[1]:
        validation.fail(
            "labels",
            y if y.size <= 6 else f"array of shape {y.shape}, dtype {y.dtype}",
            f"{z.shape[0]} class indices in [0, {z.shape[1]}) (a classifier's labels; "
            "temperature scaling has no meaning for a regression)",
        )
    return z, y.astype(_np.int64)


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - _np.log(_np.exp(shifted).sum(axis=1, keepdims=True))


def nll(logits, labels, temperature=1.0):
    """NLL(T) = −(1/N) Σ_i log softmax(z_i / T)_{y_i} (σ for a binary outcome's one logit)."""
    temperature = validation.number("temperature", temperature, low=0, low_open=True)
    z, y = _checked(logits, labels)
    log_p = _log_softmax(z / temperature)[_np.arange(len(y)), y]
    return float(-_np.mean(log_p)) + 0.0  # + 0.0: −mean(log 1) is −0.0, printed "-0.0"


def probabilities(logits, temperature=1.0):
    """softmax(z / T) of logits [N, K]; σ(z / T) of a binary outcome's logits [N, 1]."""
    temperature = validation.number("temperature", temperature, low=0, low_open=True)
    z = _np.asarray(logits, dtype=_np.float64) / temperature
    if z.ndim == 2 and z.shape[1] == 1:
        return 1.0 / (1.0 + _np.exp(-z))
    return _np.exp(_log_softmax(z))


def _slope_and_curvature(beta, z, gold):
    """NLL′(β) and NLL″(β): the mean over examples of E_p[z] − z_gold and of Var_p[z]."""
    p = _np.exp(_log_softmax(beta * z))
    mean = (p * z).sum(axis=1)
    variance = (p * (z - mean[:, None]) ** 2).sum(axis=1)
    return float(_np.mean(mean - gold)), float(_np.mean(variance))


def separable(logits, labels):
    """Whether every example's gold logit is a largest one of its row (a binary outcome's z
    read as the logits (0, z)): then NLL(T) falls for ever as T → 0 and has no minimum (its
    slope in β = 1/T is mean(E_softmax(βz)[z] − z_gold) ≤ 0), so no temperature can be fitted
    and `fit_temperature` returns its lowest bound. One example whose gold logit is below
    another makes NLL rise again for large β.

    Raises:
        ValueError: as `fit_temperature`.
    """
    z, y = _checked(logits, labels)
    return bool(_np.all(z[_np.arange(len(y)), y] >= z.max(axis=1)))


def fit_temperature(logits, labels, *, bounds=BOUNDS, tolerance=1e-10, max_steps=100):
    """The T in `bounds` minimizing NLL(T) of (logits, labels), e.g. the validation split's.

    Args:
        logits: [N, K] logits of K classes, or [N] / [N, 1] logits of a binary outcome.
        labels: [N] class indices (0/1 for a binary outcome).
        bounds: (lowest, highest) temperature returned.
        tolerance: stop when a Newton step on β = 1/T, or the bracket around it, is
            this small relative to β (0: run all `max_steps`).
        max_steps: at most this many Newton-or-bisection steps, from β = 1 (or the
            bracket's nearest end).

    Returns:
        T as a float.

    Raises:
        ValueError: empty or non-finite logits, or labels that are not class indices.
    """
    z, y = _checked(logits, labels)
    low, high = bounds
    validation.number("bounds[0]", low, low=0, low_open=True)
    validation.number("bounds[1]", high, low=low, low_open=True)
    gold = z[_np.arange(len(y)), y]
    beta_low, beta_high = 1.0 / high, 1.0 / low
    if _slope_and_curvature(beta_low, z, gold)[0] >= 0:
        return float(high)  # NLL rises from the smallest β on: the minimum is at T = high
    if _slope_and_curvature(beta_high, z, gold)[0] <= 0:
        return float(low)  # NLL still falls at the largest β: the minimum is at T = low
    beta = min(max(1.0, beta_low), beta_high)
    for _ in range(max_steps):
        slope, curvature = _slope_and_curvature(beta, z, gold)
        if slope < 0:
            beta_low = beta
        elif slope > 0:
            beta_high = beta
        else:
            break  # β is the root
        newton = beta - slope / curvature if curvature > 0 else _np.nan
        if beta_low < newton < beta_high:
            step, beta = abs(newton - beta), newton
            if step <= tolerance * beta:
                break
        else:
            beta = 0.5 * (beta_low + beta_high)
        if beta_high - beta_low <= tolerance * beta:
            break
    return float(1.0 / beta)
