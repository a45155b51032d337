"""Statistics of a split computed in one streaming pass over its batches.

`moments` gives the (mean, variance) the models standardize their inputs with
(and a regression its target), whatever the split's size: memory holds one
batch and the running statistics.
"""

import numpy as _np

__all__ = ["moments"]


def moments(x_batches, axis=0):
    """(mean, variance) of the inputs in `x_batches` (a tf.data of input batches or of
    (x, y) batches) in one streaming pass, in float64.

    `axis=0` gives one mean and variance per feature (the MLP's standardization),
    `axis=None` one over all values (the CNN's for signals). Batches are merged with
    Chan, Golub and LeVeque's pairwise update (count, mean, M2), which stays exact
    where the sum of squares would cancel; memory is one batch and the statistics.
    """
    count, mean, m2 = 0, 0.0, 0.0
    for batch in x_batches.as_numpy_iterator():
        x = _np.asarray(batch[0] if isinstance(batch, tuple) else batch, _np.float64)
        n = x.size if axis is None else x.shape[0]
        if not n:
            continue
        batch_mean = x.mean(axis=axis)
        batch_m2 = ((x - batch_mean) ** 2).sum(axis=axis)
        delta = batch_mean - mean
        total = count + n
        mean = mean + delta * n / total
        m2 = m2 + batch_m2 + delta**2 * count * n / total
        count = total
    if not count:
        raise ValueError("Expected at least one training example. Received: an empty split")
    return mean, m2 / count
