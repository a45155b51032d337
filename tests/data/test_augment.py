import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import map_coordinates

from tfnn import losses
from tfnn.data import augment as A
from tfnn.testing import sample_moments_close

SEED = tf.constant([3, 4], tf.int64)


def signals(shape=(16, 40), seed=0):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype("float32"))


def images(shape=(16, 9, 11, 3), seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(size=shape).astype("float32"))


LABELS = tf.constant(np.arange(16) % 10)

SIGNAL_SHAPES = [(16, 41), (16, 41, 2)]  # [B, T], [B, T, C]; odd T: the centre is a sample
SHAPES = [*SIGNAL_SHAPES, (16, 9, 11, 3)]  # and images [B, H, W, C]


def examples(shape):
    return signals(shape) if len(shape) < 4 else images(shape)


def draws(bound, seed=SEED, batch=16):
    """The per-example u ~ U[−bound, bound] a transform draws from `seed`, as numpy [B]."""
    return tf.random.stateless_uniform([batch], seed, -bound, bound).numpy()


def per_example(values, x):
    """[B] values shaped to broadcast against x."""
    return values.reshape((-1,) + (1,) * (np.ndim(x) - 1))


@pytest.mark.parametrize("shape", SHAPES)
def test_amplitude_scale_multiplies_each_example_by_one_plus_u(shape):
    """x̃ = (1 + u)·x, u ~ U[−r, r]: the factor lies around 1, never around 0."""
    x = examples(shape)
    out, y = A.AmplitudeScale(0.3)(x, LABELS, SEED)
    np.testing.assert_allclose(out, per_example(1.0 + draws(0.3), x) * x.numpy(), rtol=1e-6)
    assert y is LABELS


def stretched(x, factors, centre):
    """x read at c + (t − c)/f by linear interpolation, zero outside, per example and channel."""
    t = np.arange(x.shape[1], dtype=np.float64)
    out = np.empty_like(x)
    for i, f in enumerate(factors):
        positions = centre + (t - centre) / f
        for c in np.ndindex(x.shape[2:]):
            column = (i, slice(None), *c)
            out[column] = np.interp(positions, t, x[column], left=0.0, right=0.0)
    return out


@pytest.mark.parametrize("shape", SIGNAL_SHAPES)
def test_time_stretch_reads_each_signal_about_its_centre(shape):
    """x̃_t = x(c + (t − c)/(1 + u)), c = (T − 1)/2: the centre sample stays where it is."""
    x = signals(shape)
    out, y = A.TimeStretch(0.2)(x, LABELS, SEED)
    centre = (shape[1] - 1) / 2
    np.testing.assert_allclose(out, stretched(x.numpy(), 1.0 + draws(0.2), centre), atol=1e-5)
    np.testing.assert_array_equal(out[:, int(centre)], x[:, int(centre)])
    assert y is LABELS


@pytest.mark.parametrize("shape", SHAPES)
def test_brightness_adds_one_delta_per_example(shape):
    """x̃ = x + δ, δ ~ U[−d, d]."""
    x = examples(shape)
    out, y = A.Brightness(0.2)(x, LABELS, SEED)
    np.testing.assert_allclose(out, x.numpy() + per_example(draws(0.2), x), atol=1e-6)
    assert y is LABELS


@pytest.mark.parametrize("shape", SHAPES)
def test_contrast_scales_the_deviation_from_each_channel_mean(shape):
    """x̃ = μ + f·(x − μ), f = 1 + u, μ the example's mean per channel (over time for a
    one-channel signal [B, T])."""
    x = examples(shape)
    out, y = A.Contrast(0.5)(x, LABELS, SEED)
    axes = (1,) if len(shape) == 2 else tuple(range(1, len(shape) - 1))
    mean = x.numpy().mean(axis=axes, keepdims=True)
    factor = per_example(1.0 + draws(0.5), x)
    np.testing.assert_allclose(out, mean + factor * (x.numpy() - mean), atol=1e-5)
    assert y is LABELS


def affine_source_points(shape, translate, rotate, zoom, seed):
    """Where each output pixel p = (x, y) reads its input q, from the forward map
    p = R(θ)·s·F·(q − c) + c + d, hence q = F·R(−θ)·(p − c − d)/s + c (F mirrors x)."""
    batch, height, width = shape[:3]
    seeds = tf.random.experimental.stateless_split(seed, 5)
    dx = np.round(draws(translate, seeds[0]) * width)
    dy = np.round(draws(translate, seeds[1]) * height)
    theta = draws(rotate * np.pi / 180, seeds[2])
    scale = 1.0 + draws(zoom, seeds[3])
    mirror = np.where(tf.random.stateless_uniform([batch], seeds[4]).numpy() < 0.5, -1.0, 1.0)
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = []
    for i in range(batch):
        cos, sin = np.cos(theta[i]), np.sin(theta[i])
        inverse = np.diag([mirror[i], 1.0]) @ np.array([[cos, sin], [-sin, cos]]) / scale[i]
        p = np.stack([xs.ravel(), ys.ravel()]) - (centre + [dx[i], dy[i]])[:, None]
        points.append((inverse @ p + centre[:, None]).reshape(2, height, width))
    return np.stack(points)  # [B, 2 (x, y), H, W]


def test_affine_resamples_each_image_at_its_transformed_points():
    """Each pixel is the bilinear interpolation of the input at q; outside, the fill (0)."""
    x = images((16, 12, 14, 2)).numpy()
    out = A.Affine(0.2, 30, 0.2, flip=True)(tf.constant(x), LABELS, SEED)[0].numpy()
    points = affine_source_points(x.shape, 0.2, 30, 0.2, SEED)
    height, width = x.shape[1:3]
    qx, qy = points[:, 0], points[:, 1]
    inside = (qx >= 0) & (qx <= width - 1) & (qy >= 0) & (qy <= height - 1)
    outside = (qx < -1) | (qx > width) | (qy < -1) | (qy > height)  # no input pixel nearby
    assert inside.mean() > 0.5 and outside.mean() > 0.05  # both rules are exercised
    for image, result, q, kept, filled in zip(x, out, points, inside, outside, strict=True):
        for channel in range(x.shape[-1]):
            expected = map_coordinates(image[..., channel], [q[1], q[0]], order=1)
            np.testing.assert_allclose(result[kept, channel], expected[kept], atol=1e-4)
            np.testing.assert_array_equal(result[filled, channel], 0.0)


@pytest.mark.parametrize("shape", SIGNAL_SHAPES)
def test_signal_shift_with_wrap_is_an_exact_roll(shape):
    """x̃_t = x_{(t−k) mod T}, one k per example, the same for every channel."""
    x = signals(shape).numpy()
    out = A.SignalShift(6, fill_mode="wrap")(tf.constant(x), LABELS, SEED)[0].numpy()
    shifts = set()
    for row, original in zip(out, x, strict=True):
        matches = [k for k in range(-6, 7) if np.array_equal(row, np.roll(original, k, axis=0))]
        assert matches, "not a roll within ±6"
        shifts.add(matches[0])
    assert len(shifts) > 3  # one draw per example


def test_signal_shift_fills_with_zeros_by_default():
    x = signals().numpy()
    out = A.SignalShift(6)(tf.constant(x), LABELS, SEED)[0].numpy()
    for row, original in zip(out, x, strict=True):
        k = next(
            k for k in range(-6, 7) if np.array_equal(row, np.roll(original, k) * _kept(k, 40))
        )
        assert np.all(row[_kept(k, 40) == 0] == 0)


def _kept(k, length):
    """1 where x_{t−k} exists, 0 where the shift pulled in the fill."""
    t = np.arange(length)
    return ((t - k >= 0) & (t - k < length)).astype("float32")


def test_flip_mirrors_exactly_about_half_of_the_images():
    x = images((64, 9, 11, 3)).numpy()
    out = A.Affine(flip=True)(tf.constant(x), tf.zeros(64), SEED)[0].numpy()
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-6) for o, i in zip(out, x, strict=True)]
    same = [np.allclose(o, i, atol=1e-6) for o, i in zip(out, x, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert 16 < sum(mirrored) < 48


def test_translation_with_wrap_is_an_exact_whole_pixel_roll():
    x = images((8, 10, 10, 1)).numpy()
    out = A.Affine(translate=0.3, fill_mode="wrap")(tf.constant(x), tf.zeros(8), SEED)[0].numpy()
    for o, i in zip(out, x, strict=True):
        assert any(
            np.allclose(o, np.roll(i, (dy, dx), axis=(0, 1)), atol=1e-5)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
        )


def test_rotation_and_zoom_keep_a_centred_round_blob_nearly_unchanged():
    grid = np.arange(21) - 10.0
    blob = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / 18.0).astype("float32")
    x = tf.constant(np.repeat(blob[None, :, :, None], 8, axis=0))
    rotated = A.Affine(rotate=40)(x, tf.zeros(8), SEED)[0]
    np.testing.assert_allclose(rotated, x, atol=0.03)
    zoomed = A.Affine(zoom=0.3)(x, tf.zeros(8), SEED)[0].numpy()
    assert not np.allclose(zoomed, x, atol=0.03)  # scaling a blob changes its width
    np.testing.assert_allclose(zoomed[:, 10, 10, 0], 1.0, atol=1e-5)  # the centre stays put


def test_saturation_and_hue_match_tf_image_per_example():
    """Each image gets tf.image's adjustment with its own draw from the seed."""
    x = images((4, 5, 6, 3))
    saturated = A.Saturation(0.5)(x, LABELS, SEED)[0]
    hued = A.Hue(0.2)(x, LABELS, SEED)[0]
    factors, deltas = 1.0 + draws(0.5, batch=4), draws(0.2, batch=4)
    for i in range(4):
        np.testing.assert_allclose(
            saturated[i], tf.image.adjust_saturation(x[i], factors[i]), atol=1e-5
        )
        np.testing.assert_allclose(hued[i], tf.image.adjust_hue(x[i], deltas[i]), atol=1e-5)


def test_colour_transforms_refuse_grey_images():
    with pytest.raises(ValueError, match="RGB"):
        A.Hue(0.1)(images((2, 4, 4, 1)), LABELS, SEED)


def test_noise_has_the_requested_variance():
    x = tf.zeros((100, 1000))
    sample_moments_close(
        A.Noise(0.5)(x, None, SEED)[0], mean=0.0, variance=0.25, variance_rtol=0.02
    )


def test_each_transform_in_apply_draws_with_its_own_seed():
    """Two Noise(σ) add independent noise, variance 2σ²; one draw added twice would give 4σ²."""
    out, _ = A.apply([A.Noise(0.5), A.Noise(0.5)], tf.zeros((100, 1000)), None, SEED)
    sample_moments_close(out, mean=0.0, variance=2 * 0.5**2, variance_rtol=0.02)


def test_label_smoothing_route_equals_softmax_nll_option():
    """Smoothing the gold in the pipeline or in SoftmaxNLL gives the same loss."""
    logits = tf.constant(np.random.default_rng(1).normal(size=(16, 10)).astype("float32"))
    _, smoothed = A.LabelSmoothing(0.1, 10)(None, LABELS, SEED)
    np.testing.assert_allclose(tf.reduce_sum(smoothed, -1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        losses.SoftmaxNLL()(smoothed, logits),
        losses.SoftmaxNLL(label_smoothing=0.1)(LABELS, logits),
        rtol=1e-6,
    )


def test_mixup_mixes_inputs_and_labels_with_the_same_lambda():
    x = signals()
    mixup = A.MixUp(0.4, 10)
    mixed_x, mixed_y, lam, partner = (t.numpy() for t in mixup.mix(x, LABELS, SEED))
    gold = np.eye(10)[LABELS.numpy()]
    np.testing.assert_allclose(mixed_y.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(
        mixed_y, lam[:, None] * gold + (1 - lam[:, None]) * gold[partner], atol=1e-6
    )
    np.testing.assert_allclose(
        mixed_x, lam[:, None] * x + (1 - lam[:, None]) * x.numpy()[partner], atol=1e-5
    )
    assert np.all((lam > 0) & (lam < 1))
    assert not np.allclose(mixed_y, gold)  # the labels actually change
    assert sorted(partner) == list(range(16))


def test_mixup_lambda_follows_beta_alpha_alpha():
    """λ ~ Beta(α, α): mean 1/2, variance 1/(4(2α + 1))."""
    alpha = 0.4
    lam = A.MixUp(alpha, 10).mix(tf.zeros((50_000, 1)), tf.zeros(50_000), SEED)[2]
    sample_moments_close(lam, mean=0.5, variance=1 / (4 * (2 * alpha + 1)), variance_rtol=0.03)


def batches_of(dataset):
    return [b[0].numpy() for b in dataset]


def test_pipeline_repeats_under_a_seed_and_draws_anew_every_epoch():
    x, y = signals((40, 40)).numpy(), np.arange(40) % 10
    base = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    transforms = [A.SignalShift(4), A.Noise(0.1), A.MixUp(0.4, 10)]
    first = A.augment(base, transforms, seed=7)
    epoch_1, epoch_2 = batches_of(first), batches_of(first)
    again = batches_of(A.augment(base, transforms, seed=7))
    other = batches_of(A.augment(base, transforms, seed=8))
    np.testing.assert_array_equal(np.concatenate(epoch_1), np.concatenate(again))
    assert not np.allclose(np.concatenate(epoch_1), np.concatenate(epoch_2))
    assert not np.allclose(np.concatenate(epoch_1), np.concatenate(other))
    labels = next(iter(first))[1]
    assert labels.shape == (8, 10)


def test_a_repeated_pipeline_draws_anew_every_epoch_of_one_iterator():
    # train.py feeds Model.fit `augment(...).repeat()` with steps_per_epoch, so one
    # iterator (one start-up) serves every epoch; each epoch must still be new.
    x, y = signals((40, 40)).numpy(), np.arange(40) % 10
    transforms = [A.SignalShift(4), A.Noise(0.1)]

    def two_epochs(shuffle):  # a new pipeline, as each run builds its own
        base = tf.data.Dataset.from_tensor_slices((x, y))
        base = (base.shuffle(40, seed=1) if shuffle else base).batch(8)
        return batches_of(A.augment(base, transforms, seed=7).repeat(2))

    in_order = two_epochs(shuffle=False)  # the same examples in both epochs
    assert not np.allclose(np.concatenate(in_order[:5]), np.concatenate(in_order[5:]))
    repeated, again = two_epochs(shuffle=True), two_epochs(shuffle=True)
    np.testing.assert_array_equal(np.concatenate(repeated), np.concatenate(again))


def test_an_endless_pipeline_started_at_step_k_draws_what_step_k_drew():
    """A resumed run continues the augmentation draws where the interrupted one was."""
    x, y = signals((8, 40)).numpy(), np.arange(8)
    endless = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    transforms = [A.SignalShift(4), A.Noise(0.1)]
    uninterrupted = batches_of(A.augment(endless, transforms, seed=7).take(6))
    resumed = batches_of(A.augment(endless, transforms, seed=7, first_step=4).take(2))
    np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate(uninterrupted[4:]))
    assert not np.allclose(uninterrupted[0], uninterrupted[2])  # the same examples, new draws


def test_no_transforms_leaves_the_dataset_alone():
    base = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4))).batch(2)
    assert A.augment(base, [], seed=1) is base


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: A.SignalShift(-1), "max_shift"),
        (lambda: A.SignalShift(2.5), "max_shift"),
        (lambda: A.SignalShift(2, fill_mode="mirror"), "fill_mode"),
        (lambda: A.TimeStretch(1.5), "max_stretch"),
        (lambda: A.AmplitudeScale(-0.1), "max_scale"),
        (lambda: A.Affine(rotate=200), "rotate"),
        (lambda: A.Affine(translate=float("nan")), "translate"),
        (lambda: A.Noise(-1.0), "stddev"),
        (lambda: A.MixUp(0.0, 10), "alpha"),
        (lambda: A.LabelSmoothing(0.1, 1), "num_classes"),
        (lambda: A.Hue(0.7), "max_delta"),
        (lambda: A.Saturation(-0.2), "max_factor"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_affine_refuses_signals():
    with pytest.raises(ValueError, match="images"):
        A.Affine(flip=True)(signals(), LABELS, SEED)


@pytest.mark.parametrize(
    "make, limit, past, name",
    [
        (A.TimeStretch, 0.9, 0.95, "max_stretch"),
        (A.AmplitudeScale, 1.0, 1.05, "max_scale"),
        (lambda v: A.Affine(translate=v), 1.0, 1.05, "translate"),
        (lambda v: A.Affine(rotate=v), 180.0, 180.5, "rotate"),
        (lambda v: A.Affine(zoom=v), 0.9, 0.95, "zoom"),
        (A.Contrast, 1.0, 1.05, "max_factor"),
        (A.Saturation, 1.0, 1.05, "max_factor"),
        (A.Hue, 0.5, 0.55, "max_delta"),
        (lambda v: A.LabelSmoothing(v, 10), 1.0, 1.05, "epsilon"),
    ],
)
def test_each_strength_is_accepted_at_its_largest_value_and_refused_past_it(
    make, limit, past, name
):
    make(limit)
    with pytest.raises(ValueError) as error:
        make(past)
    assert str(error.value).startswith("Expected a finite number") and f"{name}={past}" in str(
        error.value
    )


@pytest.mark.parametrize(
    "make, name",
    [
        (A.SignalShift, "max_shift"),
        (A.TimeStretch, "max_stretch"),
        (A.AmplitudeScale, "max_scale"),
        (lambda v: A.Affine(translate=v), "translate"),
        (lambda v: A.Affine(rotate=v), "rotate"),
        (lambda v: A.Affine(zoom=v), "zoom"),
        (A.Brightness, "max_delta"),
        (A.Contrast, "max_factor"),
        (A.Saturation, "max_factor"),
        (A.Hue, "max_delta"),
        (A.Noise, "stddev"),
        (lambda v: A.LabelSmoothing(v, 10), "epsilon"),
    ],
)
def test_each_strength_is_accepted_at_zero_and_refused_below(make, name):
    make(0)
    with pytest.raises(ValueError, match=f"{name}=-0.01|{name}=-1"):
        make(-1 if name == "max_shift" else -0.01)


def test_the_smallest_class_count_is_two():
    A.LabelSmoothing(0.1, 2)
    A.MixUp(0.4, 2)
    with pytest.raises(ValueError, match="num_classes=1"):
        A.MixUp(0.4, 1)


@pytest.mark.parametrize(
    "transform",
    [A.AmplitudeScale(1.0), A.Contrast(1.0), A.Brightness(1.0), A.Noise(1.0), A.Hue(0.5)],
    ids=["amplitude", "contrast", "brightness", "noise", "hue"],
)
def test_a_transform_at_strength_one_or_its_largest_still_changes_the_examples(transform):
    x = images((4, 5, 5, 3))
    out, _ = transform(x, LABELS[:4], SEED)
    assert not np.allclose(out, x, atol=1e-3)


def test_signal_shift_draws_both_extreme_shifts():
    """k ~ U{−s, …, s}: −s and +s are both drawn (an upper end left out would never be)."""
    x = signals((64, 20)).numpy()
    out = A.SignalShift(1, fill_mode="wrap")(tf.constant(x), tf.zeros(64), SEED)[0].numpy()
    shifts = {
        next(k for k in (-1, 0, 1) if np.array_equal(row, np.roll(original, k)))
        for row, original in zip(out, x, strict=True)
    }
    assert shifts == {-1, 0, 1}


@pytest.mark.parametrize(
    "fill_mode, padded",
    [
        ("nearest", lambda row, k: np.pad(row, k, mode="edge")),
        ("reflect", lambda row, k: np.pad(row, k, mode="reflect")),  # d c b | a b c d | c b a
        ("constant", lambda row, k: np.pad(row, k)),
    ],
)
def test_signal_shift_fills_by_its_fill_mode(fill_mode, padded):
    """x̃_t = x_{t−k} read from the signal padded as the fill mode says."""
    x = signals((32, 12)).numpy()
    out = A.SignalShift(4, fill_mode=fill_mode)(tf.constant(x), tf.zeros(32), SEED)[0].numpy()
    shifts = set()
    for row, original in zip(out, x, strict=True):
        wide = padded(original, 4)
        matches = [k for k in range(-4, 5) if np.allclose(row, wide[4 - k : 4 - k + 12])]
        assert matches, f"not a shift of the {fill_mode}-padded signal"
        shifts.add(matches[0])
    assert {-4, 4} <= shifts or len(shifts) > 4


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap"])
def test_time_stretch_fills_by_its_fill_mode(fill_mode):
    """A squeezed signal reads positions past both ends: clipped (nearest), folded back about
    the end samples (reflect), or around the circle, where x_0 follows x_{T−1} (wrap: a
    position between the two was read as a zero)."""
    length = 9
    t = np.arange(length, dtype=np.float64)
    x = t[None, :].astype("float32") + 1.0
    stretch = A.TimeStretch(0.5, fill_mode=fill_mode)
    for s in range(20):
        seed = tf.constant([s, 0], tf.int64)
        factor = 1.0 + tf.random.stateless_uniform([1], seed, -0.5, 0.5).numpy()[0]
        positions = 4.0 + (t - 4.0) / factor
        last = length - 1.0
        if fill_mode == "nearest":
            expected = np.interp(np.clip(positions, 0.0, last), t, x[0])
        elif fill_mode == "reflect":
            folded = np.mod(positions, 2 * last)
            expected = np.interp(np.where(folded > last, 2 * last - folded, folded), t, x[0])
        else:
            circle = np.append(x[0], x[0][0])  # x_0 again after x_{T−1}
            expected = np.interp(np.mod(positions, length), np.arange(length + 1), circle)
        out = stretch(tf.constant(x), None, seed)[0].numpy()[0]
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_signal_shift_moves_each_signal_by_its_drawn_shift_in_its_direction():
    """x̃_t = x_{t−k} for the k the seed draws (k > 0 delays the signal). Catches the
    positions `t + k` (a shift the other way, which a symmetric draw otherwise hides)."""
    x = signals().numpy()
    out = A.SignalShift(6, fill_mode="wrap")(tf.constant(x), LABELS, SEED)[0].numpy()
    shifts = tf.random.stateless_uniform([16], SEED, -6, 7, dtype=tf.int32).numpy()
    assert len(set(shifts)) > 3 and np.any(shifts > 0)
    for row, original, k in zip(out, x, shifts, strict=True):
        np.testing.assert_array_equal(row, np.roll(original, k))  # roll: out[t] = x[t − k]


@pytest.mark.parametrize(
    "transform",
    [
        A.SignalShift(0),
        A.TimeStretch(0.0),
        A.AmplitudeScale(0.0),
        A.Noise(0.0),
        A.Brightness(0.0),
        A.Contrast(0.0),
        A.Saturation(0.0),
        A.Hue(0.0),
        A.Affine(),
    ],
    ids=lambda t: type(t).__name__,
)
def test_zero_strength_returns_its_input_untouched(transform):
    """Strength 0 is the identity: it returns the very batch given. Catches each
    `if strength == 0` made `== 1` (TimeStretch, Saturation, Hue: the whole resampling or HSV
    round trip run at 0)."""
    x = images((4, 5, 6, 3)) if isinstance(transform, (A.Affine, A._HSV)) else signals()
    out, y = transform(x, LABELS, SEED)
    assert out is x and y is LABELS


@pytest.mark.parametrize(
    "transform",
    [A.TimeStretch(0.9), A.Saturation(1.0), A.Hue(0.5)],
    ids=lambda t: type(t).__name__,
)
def test_the_largest_strength_changes_the_examples(transform):
    """At its largest strength (1 for Saturation) a transform still transforms. Catches
    `if max_factor == 0` made `== 1` in Saturation (strength 1 returned untouched)."""
    x = images((4, 5, 6, 3)) if isinstance(transform, A._HSV) else signals()
    out, _ = transform(x, LABELS[:4] if isinstance(transform, A._HSV) else LABELS, SEED)
    assert not np.allclose(out, x, atol=1e-3)


def test_translation_alone_rolls_each_image_by_its_drawn_whole_pixels():
    """Affine(translate) alone shifts image i by (round(u·H), round(u·W)) pixels. Catches the
    identity test `translate and rotate or …` (a translation alone returned untouched)."""
    x = images((8, 10, 10, 1)).numpy()
    out = A.Affine(translate=0.3, fill_mode="wrap")(tf.constant(x), tf.zeros(8), SEED)[0].numpy()
    seeds = tf.random.experimental.stateless_split(SEED, 5)
    dx = np.round(draws(0.3, seeds[0], batch=8) * 10).astype(int)
    dy = np.round(draws(0.3, seeds[1], batch=8) * 10).astype(int)
    assert np.any((dx != 0) | (dy != 0))
    for o, i, right, down in zip(out, x, dx, dy, strict=True):
        np.testing.assert_allclose(o, np.roll(i, (down, right), axis=(0, 1)), atol=1e-5)


def test_rotation_alone_rotates():
    """Affine(rotate) alone moves the pixels of an asymmetric image. Catches the identity test
    `translate and rotate or …` (a rotation alone returned untouched)."""
    x = images((8, 12, 12, 1))
    out = A.Affine(rotate=40)(x, tf.zeros(8), SEED)[0]
    assert not np.allclose(out, x, atol=1e-2)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_noise_adds_the_seeds_normal_draws_in_the_inputs_dtype(dtype):
    """x̃ = x + ε with ε the seed's N(0, σ²) draws, in x's dtype. Catches `x − ε` (hidden by
    ε's symmetry) and the draw without `dtype=x.dtype` (float32 noise for float64 input)."""
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 50)), dtype)
    out, _ = A.Noise(0.5)(x, None, SEED)
    assert out.dtype == x.dtype
    noise = tf.random.stateless_normal([4, 50], SEED, stddev=0.5, dtype=dtype)
    np.testing.assert_array_equal(out, x + noise)


def test_gold_distribution_passes_distributions_through():
    """Float rows [B, K] are already distributions: the very tensor comes back. Catches
    `rank != 2` / `== 3`, `shape[1] != K` and `shape[0]` (B ≠ K here) or `shape[2]`."""
    y = tf.constant([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    assert A.gold_distribution(y, 3) is y


def test_gold_distribution_one_hots_float_class_indices_even_k_of_them():
    """Class indices [B] are one-hot encoded, float ones too, and when B = K. Catches either
    `and` made `or` (a float vector of K indices taken for a distribution)."""
    y = tf.constant([2.0, 0.0, 1.0])
    np.testing.assert_array_equal(A.gold_distribution(y, 3), np.eye(3)[[2, 0, 1]])
    np.testing.assert_array_equal(
        A.gold_distribution(tf.constant([1, 1, 0]), 3), np.eye(3)[[1, 1, 0]]
    )


def test_mixup_draws_lambda_and_partners_from_its_split_seed():
    """λ = G₁/(G₁ + G₂), G ~ Gamma(α) and the partners the argsort of uniforms, each from
    its own third of stateless_split(seed, 3). Catches another split count and the
    partners drawn from the seed of G₁ or G₂."""
    x = signals()
    _, _, lam, partner = A.MixUp(0.4, 10).mix(x, LABELS, SEED)
    seeds = tf.random.experimental.stateless_split(SEED, 3)
    g1 = tf.random.stateless_gamma([16], seeds[0], alpha=0.4)
    g2 = tf.random.stateless_gamma([16], seeds[1], alpha=0.4)
    np.testing.assert_allclose(lam, g1 / (g1 + g2), rtol=1e-6)
    np.testing.assert_array_equal(partner, tf.argsort(tf.random.stateless_uniform([16], seeds[2])))


def _pipeline_nodes(dataset):
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    return {node.name: node for node in graph.node}, graph


def test_the_pipeline_maps_in_parallel_in_order_and_prefetches():
    """augment is a parallel map (AUTOTUNE calls), deterministic, then an AUTOTUNE prefetch.
    Catches `num_parallel_calls` dropped or None (a serial map), `deterministic` False or
    None, and another prefetch buffer."""
    base = tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4))).batch(2)
    nodes, graph = _pipeline_nodes(A.augment(base, [A.Noise(0.1)], seed=1))

    def constant_input(node, position):
        source = nodes[node.input[position].split(":")[0]]
        return tf.make_ndarray(source.attr["value"].tensor)

    ops = {node.op: node for node in graph.node}
    mapped, prefetched = ops["ParallelMapDatasetV2"], ops["PrefetchDataset"]
    assert mapped.attr["deterministic"].s == b"true"
    assert constant_input(mapped, -1) == tf.data.AUTOTUNE
    assert constant_input(prefetched, 1) == tf.data.AUTOTUNE


@pytest.mark.parametrize(
    "make, received",
    [
        (lambda: A.SignalShift(-1), "max_shift=-1"),
        (lambda: A.SignalShift(2, fill_mode="mirror"), "fill_mode='mirror'"),
        (lambda: A.TimeStretch(-0.1), "max_stretch=-0.1"),
        (lambda: A.TimeStretch(0.1, fill_mode="edge"), "fill_mode='edge'"),
        (lambda: A.AmplitudeScale(-0.1), "max_scale=-0.1"),
        (lambda: A.Affine(translate=-0.1), "translate=-0.1"),
        (lambda: A.Affine(rotate=-1.0), "rotate=-1.0"),
        (lambda: A.Affine(zoom=-0.1), "zoom=-0.1"),
        (lambda: A.Affine(fill_mode="mirror"), "fill_mode='mirror'"),
        (lambda: A.Brightness(-0.1), "max_delta=-0.1"),
        (lambda: A.Contrast(-0.1), "max_factor=-0.1"),
        (lambda: A.Saturation(-0.1), "max_factor=-0.1"),
        (lambda: A.Hue(-0.1), "max_delta=-0.1"),
        (lambda: A.Noise(-0.1), "stddev=-0.1"),
        (lambda: A.LabelSmoothing(-0.1, 10), "epsilon=-0.1"),
        (lambda: A.LabelSmoothing(0.1, 1), "num_classes=1"),
        (lambda: A.MixUp(0.0, 10), "alpha=0.0"),
        (lambda: A.MixUp(0.4, 1), "num_classes=1"),
    ],
)
def test_a_refusal_names_the_argument_exactly(make, received):
    """The message ends `Received: <argument>=<value>`. Catches a changed argument name
    (`XXmax_shiftXX`, which a search for the name alone still finds)."""
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value).startswith("Expected ")
    assert str(error.value).endswith(f"Received: {received}")


@pytest.mark.parametrize(
    "transform, x, message",
    [
        (
            A.Affine(flip=True),
            signals(),
            "Expected images [B, H, W, C]. Received: shape (16, 40)",
        ),
        (
            A.Hue(0.1),
            images((2, 4, 4, 1)),
            "Expected RGB images [B, H, W, 3]. Received: shape (2, 4, 4, 1)",
        ),
        (
            A.Saturation(0.1),
            signals((2, 4, 3)),
            "Expected RGB images [B, H, W, 3]. Received: shape (2, 4, 3)",
        ),
    ],
    ids=["affine", "hue", "saturation"],
)
def test_a_refused_shape_is_named_in_the_message(transform, x, message):
    """Catches a changed message (a search for "images" alone finds `XX…images…XX` too)."""
    with pytest.raises(ValueError) as error:
        transform(x, LABELS, SEED)
    assert str(error.value) == message


def test_a_draw_of_exactly_one_half_does_not_mirror():
    """Mirrored when u < 1/2, u ~ U[0, 1) in steps of 2⁻²³: exactly half of the values, so
    the flip's probability is exactly 1/2. Seed (475, 0) draws u = 0.5 for image 104972.
    Catches `u <= 0.5` (one value more mirrors)."""
    seed = tf.constant([475, 0], tf.int64)
    batch = 104_973
    u = tf.random.stateless_uniform([batch], tf.random.experimental.stateless_split(seed, 5)[4])
    assert u.numpy()[-1] == 0.5
    x = np.tile(np.array([0.0, 1.0], "float32").reshape(1, 1, 2, 1), (batch, 1, 1, 1))
    out = A.Affine(flip=True)(tf.constant(x), tf.zeros(batch), seed)[0].numpy()
    mirrored = out[:, 0, 0, 0] == 1.0
    np.testing.assert_array_equal(mirrored, u.numpy() < 0.5)
    assert not mirrored[-1]


@pytest.mark.parametrize(
    "y",
    [
        tf.constant([[0, 1, 0], [1, 0, 0]]),  # integer one-hot rows [B, K]
        tf.constant([[0.5, 0.5], [1.0, 0.0]]),  # float rows of width 2, not K = 3
        tf.constant([[1], [2]]),  # class indices shaped [B, 1]
        tf.constant([[[0.2, 0.3, 0.5]]]),  # rank 3
    ],
)
def test_gold_distribution_refuses_labels_neither_indices_nor_k_wide_distributions(y):
    """Labels that are neither class indices [B] nor float rows [B, K] are a ValueError naming
    `y` and its shape. Catches the fallback `tf.one_hot(y)` for any other shape, which made
    integer [B, K] labels (or rows of the wrong width) a rank-3 "distribution"."""
    with pytest.raises(ValueError, match=r"Received: y of shape \(.*\) and dtype"):
        A.gold_distribution(y, 3)


@pytest.mark.parametrize("y, bad", [([0, 3, 1], 3), ([2, -1], -1), ([0.0, 3.0], 3)])
def test_gold_distribution_refuses_a_class_index_outside_0_to_k(y, bad):
    """Catches an index ≥ K or < 0 one-hot encoded to a row of zeros (tf.one_hot's way):
    a gold of no class, which the loss then ignores, silently."""
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"class indices in \[0, 3\)"):
        A.gold_distribution(tf.constant(y), 3)


def test_gold_distribution_takes_the_first_and_last_class():
    """Catches the limits of the index check moved: 0 and K − 1 are classes."""
    np.testing.assert_array_equal(A.gold_distribution(tf.constant([0, 2]), 3), np.eye(3)[[0, 2]])


def test_gold_distribution_checks_indices_inside_a_tf_data_map_too():
    """Catches the check skipped in graph mode, where tfnn's pipelines call it."""
    labels = tf.data.Dataset.from_tensor_slices(tf.constant([[0, 1], [1, 3]]))
    mapped = labels.map(lambda y: A.gold_distribution(y, 3))
    iterator = iter(mapped)
    np.testing.assert_array_equal(next(iterator), np.eye(3)[[0, 1]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="class indices"):
        next(iterator)
