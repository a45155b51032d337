"""Dataset augmentation as batched, seeded tf.data transforms (docs/lecture.md D5).

Every transform takes a whole batch (x, y) and a seed, draws one random value
per example from stateless random ops, and returns the transformed batch:

    signals [B, T] or [B, T, C]
        SignalShift(s)      x̃_t = x_{t−k},  k ~ U{−s..s}      (whole samples; fill mode)
        TimeStretch(r)      x̃_t = x(c + (t − c)/(1 + u)),  u ~ U[−r, r]   (linear interpolation)
        AmplitudeScale(r)   x̃ = (1 + u)·x,  u ~ U[−r, r]
    images [B, H, W, C]
        Affine(translate, rotate, zoom, flip)   one projective resampling per image:
                            shift by whole pixels (a fraction of the size), rotate by
                            θ ~ U[−rotate°, rotate°], scale by 1 + u, mirror left–right
                            with probability 1/2
        Brightness(d)       x̃ = x + δ,  δ ~ U[−d, d]
        Contrast(r)         x̃ = μ + f·(x − μ),  f ~ U[1 − r, 1 + r], μ the image's channel mean
        Saturation(r)       RGB only: saturation S ← clip(f·S, 0, 1),  f ~ U[1 − r, 1 + r]
        Hue(d)              RGB only: hue H ← (H + δ) mod 1,  δ ~ U[−d, d]
    any input
        Noise(σ)            x̃ = x + ε,  ε ~ N(0, σ²)
    labels
        LabelSmoothing(ε, K)  g = (1 − ε)·onehot(y) + ε/K
        MixUp(α, K)           x̃ = λx_i + (1 − λ)x_j,  g̃ = λg_i + (1 − λ)g_j,  λ ~ Beta(α, α),
                              j a random partner in the same batch

`augment(dataset, transforms, seed)` applies them to a batched dataset on the
tf.data side (parallel map, prefetch). Its seeds come from a stream that is
the same for the same `seed` but new in every epoch, so a run repeats exactly
and each epoch sees new augmentations: for an endless dataset (train.py's),
batch k's seed is (seed, k); for a finite one, a random stream re-drawn at
each iteration. Evaluation pipelines are simply not augmented.
"""

import math

import tensorflow as tf

from tfnn import validation

FILL_MODES = ("constant", "nearest", "wrap", "reflect")


def _validate(name, value, low=0.0, high=None, low_open=False):
    """A strength: a finite number >= `low` (> with `low_open`), <= `high` if given."""
    return validation.number(name, value, low=low, high=high, low_open=low_open)


def _validate_classes(num_classes):
    return validation.integer("num_classes", num_classes, low=2)


def _validate_fill_mode(fill_mode):
    return validation.one_of("fill_mode", fill_mode, FILL_MODES)


def _uniform(seed, batch, bound):
    """One draw of U[−bound, bound] per example, shape [B]."""
    return tf.random.stateless_uniform([batch], seed, -bound, bound)


def _per_example(values, x):
    """[B] values shaped to broadcast against x."""
    return tf.reshape(tf.cast(values, x.dtype), [-1] + [1] * (x.shape.rank - 1))


def _as_signals(x):
    """[B, T] → [B, T, 1] (and back with `squeeze`)."""
    return (x[..., None], True) if x.shape.rank == 2 else (x, False)


def _resample_signals(x, positions, fill_mode):
    """x [B, T, C] read at fractional positions [B, T] by linear interpolation, with fill."""
    length = tf.shape(x)[1]
    last = tf.cast(length - 1, positions.dtype)
    if fill_mode == "wrap":
        positions = tf.math.floormod(positions, last + 1.0)
    elif fill_mode == "nearest":
        positions = tf.clip_by_value(positions, 0.0, last)
    elif fill_mode == "reflect":
        period = 2.0 * last
        positions = tf.math.floormod(positions, period)
        positions = tf.where(positions > last, period - positions, positions)
    # Folded, positions lie in [0, T − 1] (wrap: [0, T)), so 0 <= positions − low < 1;
    # low is clipped for the constant fill, whose outside positions are zeroed below.
    low = tf.clip_by_value(tf.floor(positions), 0.0, last)
    weight = (positions - low)[..., None]
    low_index = tf.cast(low, tf.int32)
    high_index = tf.minimum(low_index + 1, length - 1)
    if fill_mode == "wrap":
        high_index = tf.math.floormod(low_index + 1, length)
    below = tf.gather(x, low_index, batch_dims=1)
    above = tf.gather(x, high_index, batch_dims=1)
    values = below + tf.cast(weight, x.dtype) * (above - below)
    # Folded, every position lies on the signal (wrapped, up to between x_{T−1} and x_0):
    # only the constant fill has positions outside, read as zeros.
    if fill_mode != "constant":
        return values
    inside = (positions >= 0.0) & (positions <= last)
    return tf.where(inside[..., None], values, tf.zeros_like(values))


class SignalShift:
    """Shifts each signal by k ~ U{−max_shift, …, max_shift} whole samples: x̃_t = x_{t−k}."""

    def __init__(self, max_shift, fill_mode="constant"):
        self.max_shift = validation.integer("max_shift", max_shift, low=0)
        self.fill_mode = _validate_fill_mode(fill_mode)

    def __call__(self, x, y, seed):
        if self.max_shift == 0:
            return x, y
        signals, squeeze = _as_signals(x)
        batch, length = tf.shape(signals)[0], tf.shape(signals)[1]
        shifts = tf.random.stateless_uniform(
            [batch], seed, -self.max_shift, self.max_shift + 1, dtype=tf.int32
        )
        positions = tf.range(length)[None, :] - shifts[:, None]
        out = _resample_signals(signals, tf.cast(positions, tf.float32), self.fill_mode)
        return (out[..., 0] if squeeze else out), y


class TimeStretch:
    """Stretches each signal about its centre by 1 + u, u ~ U[−max_stretch, max_stretch]."""

    def __init__(self, max_stretch, fill_mode="constant"):
        self.max_stretch = _validate("max_stretch", max_stretch, high=0.9)
        self.fill_mode = _validate_fill_mode(fill_mode)

    def __call__(self, x, y, seed):
        if self.max_stretch == 0:
            return x, y
        signals, squeeze = _as_signals(x)
        batch, length = tf.shape(signals)[0], tf.shape(signals)[1]
        factor = 1.0 + _uniform(seed, batch, self.max_stretch)
        centre = (tf.cast(length, tf.float32) - 1.0) / 2.0
        t = tf.cast(tf.range(length), tf.float32)[None, :]
        positions = centre + (t - centre) / factor[:, None]
        out = _resample_signals(signals, positions, self.fill_mode)
        return (out[..., 0] if squeeze else out), y


class AmplitudeScale:
    """Multiplies each example by 1 + u, u ~ U[−max_scale, max_scale]."""

    def __init__(self, max_scale):
        self.max_scale = _validate("max_scale", max_scale, high=1.0)

    def __call__(self, x, y, seed):
        if self.max_scale == 0:
            return x, y
        return x * _per_example(1.0 + _uniform(seed, tf.shape(x)[0], self.max_scale), x), y


class Affine:
    """Translation, rotation, zoom and a left–right flip of images [B, H, W, C] in one resampling.

    Args:
        translate: the largest shift as a fraction of the height and width;
            shifts are rounded to whole pixels.
        rotate: the largest rotation in degrees.
        zoom: the largest relative scaling (1 + u, u ~ U[−zoom, zoom]).
        flip: mirror left–right with probability 1/2.
        fill_mode: what lies outside the image: "constant" (`fill_value`),
            "nearest", "wrap" or "reflect".
        fill_value: the constant fill.
    """

    def __init__(
        self, translate=0.0, rotate=0.0, zoom=0.0, flip=False, fill_mode="constant", fill_value=0.0
    ):
        self.translate = _validate("translate", translate, high=1.0)
        self.rotate = _validate("rotate", rotate, high=180.0)
        self.zoom = _validate("zoom", zoom, high=0.9)
        self.flip = bool(flip)
        self.fill_mode = _validate_fill_mode(fill_mode)
        self.fill_value = float(fill_value)

    def __call__(self, x, y, seed):
        if x.shape.rank != 4:
            raise ValueError(f"Expected images [B, H, W, C]. Received: shape {x.shape}")
        if not (self.translate or self.rotate or self.zoom or self.flip):
            return x, y
        seeds = tf.random.experimental.stateless_split(seed, 5)
        batch = tf.shape(x)[0]
        height, width = tf.cast(tf.shape(x)[1], tf.float32), tf.cast(tf.shape(x)[2], tf.float32)
        dx = tf.round(_uniform(seeds[0], batch, self.translate) * width)
        dy = tf.round(_uniform(seeds[1], batch, self.translate) * height)
        theta = _uniform(seeds[2], batch, self.rotate * math.pi / 180.0)
        scale = 1.0 + _uniform(seeds[3], batch, self.zoom)
        mirror = 1.0
        if self.flip:
            mirror = tf.where(tf.random.stateless_uniform([batch], seeds[4]) < 0.5, -1.0, 1.0)
        # Forward: p = R(θ)·s·F·(q − c) + c + d.  The op wants input q for output p:
        # q = A·(p − c − d) + c with A = F·R(−θ)/s, so q = A·p + (c − A·(c + d)).
        cos, sin = tf.cos(theta) / scale, tf.sin(theta) / scale
        a00, a01, a10, a11 = mirror * cos, mirror * sin, -sin, cos
        cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        ox, oy = cx + dx, cy + dy
        transforms = tf.stack(
            [
                a00,
                a01,
                cx - (a00 * ox + a01 * oy),
                a10,
                a11,
                cy - (a10 * ox + a11 * oy),
                tf.zeros_like(cos),
                tf.zeros_like(cos),
            ],
            axis=1,
        )
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=x,
            transforms=transforms,
            output_shape=tf.shape(x)[1:3],
            fill_value=self.fill_value,
            interpolation="BILINEAR",
            fill_mode=self.fill_mode.upper(),
        )
        return out, y


class Brightness:
    """Adds δ ~ U[−max_delta, max_delta] to every value of an example."""

    def __init__(self, max_delta):
        self.max_delta = _validate("max_delta", max_delta)

    def __call__(self, x, y, seed):
        if self.max_delta == 0:
            return x, y
        return x + _per_example(_uniform(seed, tf.shape(x)[0], self.max_delta), x), y


class Contrast:
    """Scales each example's deviation from its per-channel mean by f ~ U[1 − r, 1 + r]."""

    def __init__(self, max_factor):
        self.max_factor = _validate("max_factor", max_factor, high=1.0)

    def __call__(self, x, y, seed):
        if self.max_factor == 0:
            return x, y
        axes = list(range(1, x.shape.rank - 1)) or [1]
        mean = tf.reduce_mean(x, axis=axes, keepdims=True)
        factor = _per_example(1.0 + _uniform(seed, tf.shape(x)[0], self.max_factor), x)
        return mean + factor * (x - mean), y


class _HSV:
    """Adjusts RGB images [B, H, W, 3] in HSV space, one draw per image."""

    def _check(self, x):
        if x.shape.rank != 4 or x.shape[-1] != 3:
            raise ValueError(f"Expected RGB images [B, H, W, 3]. Received: shape {x.shape}")

    def _adjust(self, x, channel, change):
        hsv = tf.image.rgb_to_hsv(x)
        values = change(hsv[..., channel])
        hsv = tf.concat([hsv[..., :channel], values[..., None], hsv[..., channel + 1 :]], axis=-1)
        return tf.image.hsv_to_rgb(hsv)


class Saturation(_HSV):
    """Scales each RGB image's saturation by f ~ U[1 − r, 1 + r] (clipped to [0, 1])."""

    def __init__(self, max_factor):
        self.max_factor = _validate("max_factor", max_factor, high=1.0)

    def __call__(self, x, y, seed):
        self._check(x)
        if self.max_factor == 0:
            return x, y
        factor = _per_example(1.0 + _uniform(seed, tf.shape(x)[0], self.max_factor), x)[..., 0]
        return self._adjust(x, 1, lambda s: tf.clip_by_value(s * factor, 0.0, 1.0)), y


class Hue(_HSV):
    """Rotates each RGB image's hue by δ ~ U[−max_delta, max_delta] (a fraction of the circle)."""

    def __init__(self, max_delta):
        self.max_delta = _validate("max_delta", max_delta, high=0.5)

    def __call__(self, x, y, seed):
        self._check(x)
        if self.max_delta == 0:
            return x, y
        delta = _per_example(_uniform(seed, tf.shape(x)[0], self.max_delta), x)[..., 0]
        return self._adjust(x, 0, lambda h: tf.math.floormod(h + delta, 1.0)), y


class Noise:
    """Adds Gaussian noise ε ~ N(0, stddev²) to every value (D5: noise injection)."""

    def __init__(self, stddev):
        self.stddev = _validate("stddev", stddev)

    def __call__(self, x, y, seed):
        if self.stddev == 0:
            return x, y
        return x + tf.random.stateless_normal(
            tf.shape(x), seed, stddev=self.stddev, dtype=x.dtype
        ), y


def gold_distribution(y, num_classes):
    """Class indices [B] → one-hot rows [B, K]; distributions (float [B, K]) pass through.

    Any other labels (integer rows, rows of another width, another rank) are a ValueError:
    one-hot encoding them would make a rank-3 "distribution". A class index outside [0, K)
    is an InvalidArgumentError when the batch is computed (tf.one_hot would make it a row of
    zeros: a gold of no class, which the loss ignores).
    """
    if y.shape.rank == 2 and y.shape[1] == num_classes and y.dtype.is_floating:
        return y
    if y.shape.rank not in (1, None):
        raise ValueError(
            f"Expected class indices [B] or float distributions [B, {num_classes}]. "
            f"Received: y of shape {tuple(y.shape)} and dtype {y.dtype.name}"
        )
    indices = tf.cast(y, tf.int32)
    message = f"Expected class indices in [0, {num_classes}). Received: y ="
    checks = [
        tf.debugging.assert_non_negative(indices, message=message),
        tf.debugging.assert_less(indices, num_classes, message=message),
    ]
    with tf.control_dependencies(checks):
        return tf.one_hot(indices, num_classes)


class LabelSmoothing:
    """g = (1 − ε)·onehot(y) + ε/K: the gold becomes a distribution (C4's o − g gradient)."""

    def __init__(self, epsilon, num_classes):
        self.epsilon = _validate("epsilon", epsilon, high=1.0)
        self.num_classes = _validate_classes(num_classes)

    def __call__(self, x, y, seed):
        gold = gold_distribution(y, self.num_classes)
        return x, (1.0 - self.epsilon) * gold + self.epsilon / self.num_classes


class MixUp:
    """Mixes each example with a random partner j of the same batch, λ ~ Beta(α, α).

    x̃_i = λ_i x_i + (1 − λ_i) x_j and g̃_i = λ_i g_i + (1 − λ_i) g_j, with one λ
    per example. Labels become distributions over `num_classes`.
    """

    def __init__(self, alpha, num_classes):
        self.alpha = _validate("alpha", alpha, low_open=True)
        self.num_classes = _validate_classes(num_classes)

    def mix(self, x, y, seed):
        """(x̃, g̃, λ, partner indices): the mixed batch and how it was mixed."""
        seeds = tf.random.experimental.stateless_split(seed, 3)
        batch = tf.shape(x)[0]
        # Beta(α, α) as G₁/(G₁ + G₂) with G₁, G₂ ~ Gamma(α).
        g1 = tf.random.stateless_gamma([batch], seeds[0], alpha=self.alpha)
        g2 = tf.random.stateless_gamma([batch], seeds[1], alpha=self.alpha)
        lam = g1 / (g1 + g2)
        partner = tf.argsort(tf.random.stateless_uniform([batch], seeds[2]))
        gold = gold_distribution(y, self.num_classes)
        mixed_x = _per_example(lam, x) * x + _per_example(1.0 - lam, x) * tf.gather(x, partner)
        mixed_y = lam[:, None] * gold + (1.0 - lam[:, None]) * tf.gather(gold, partner)
        return mixed_x, mixed_y, lam, partner

    def __call__(self, x, y, seed):
        mixed_x, mixed_y, _, _ = self.mix(x, y, seed)
        return mixed_x, mixed_y


def apply(transforms, x, y, seed):
    """All `transforms` in order, each with its own seed derived from `seed`."""
    for index, transform in enumerate(transforms):
        x, y = transform(x, y, tf.random.experimental.stateless_fold_in(seed, index))
    return x, y


def augment(dataset, transforms, seed, *, first_step=0):
    """Applies `transforms` to a dataset of (x, y) batches, new draws every epoch, seeded.

    Runs on the tf.data side: a parallel, order-preserving map, then prefetch. An endless
    `dataset` starts at step `first_step` (a resumed run: the steps of the epochs done), so
    it draws what an uninterrupted run drew there.
    """
    transforms = list(transforms)
    if not transforms:
        return dataset
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        # One iterator for all epochs: step k's seed is (seed, k), stateless, so
        # it survives tf.distribute's rewriting of the pipeline.
        seeds = tf.data.Dataset.counter(first_step).map(
            lambda k: tf.stack([tf.constant(seed, tf.int64), k])
        )
    else:  # each iteration (epoch) draws a new stream of seeds
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return (
        tf.data.Dataset.zip(dataset, seeds)
        .map(
            lambda batch, pair: apply(transforms, batch[0], batch[1], pair),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
