import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from tfnn import calibration


def calibrated_set(n, classes, seed, spread=2.0):
    """Logits z and labels drawn from softmax(z) itself: calibrated at T = 1 by construction."""
    rng = np.random.default_rng(seed)
    z = spread * rng.normal(size=(n, classes))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    labels = (p.cumsum(axis=1) > rng.uniform(size=(n, 1))).argmax(axis=1)
    return z, labels


def oracle_temperature(z, labels, bounds=calibration.BOUNDS):
    """SciPy's bounded scalar minimizer of NLL over log T."""
    result = scipy.optimize.minimize_scalar(
        lambda log_t: calibration.nll(z, labels, np.exp(log_t)),
        bounds=np.log(bounds),
        method="bounded",
        options={"xatol": 1e-9},
    )
    return float(np.exp(result.x))


@pytest.mark.parametrize("scale", [3.0, 0.5])
@pytest.mark.parametrize("classes", [10, 2])
def test_logits_scaled_by_c_from_a_calibrated_set_give_t_near_c(scale, classes):
    """z·c of a set calibrated at T = 1 is calibrated again at T = c (returning 1/T, or β,
    would give 1/c)."""
    z, labels = calibrated_set(20000, classes, seed=0)
    fitted = calibration.fit_temperature(scale * z, labels)
    assert fitted == pytest.approx(scale, rel=0.05)


def test_a_binary_outcomes_one_logit_is_its_two_class_softmax():
    """σ(z/T) = softmax((0, z)/T)₁: the [N, 1] logits fit the same T as the two columns."""
    z, labels = calibrated_set(5000, 2, seed=1)
    one_logit = (z[:, 1] - z[:, 0])[:, None]
    two_columns = np.concatenate([np.zeros_like(one_logit), one_logit], axis=1)
    assert calibration.fit_temperature(2.5 * one_logit, labels) == pytest.approx(
        calibration.fit_temperature(2.5 * two_columns, labels), rel=1e-9
    )
    np.testing.assert_allclose(
        calibration.probabilities(one_logit, 1.7),
        tf.sigmoid(one_logit / 1.7).numpy(),
        rtol=1e-12,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fit_is_the_minimum_of_the_validation_nll(seed):
    """NLL at the fitted T is below NLL at T = 1 and at T·1.1 and T/1.1 (a wrong sign of the
    slope walks away from the minimum), and T equals SciPy's bounded minimizer."""
    z, labels = calibrated_set(3000, 10, seed=seed)
    scale = [4.0, 0.3, 1.7][seed]
    logits = scale * z
    fitted = calibration.fit_temperature(logits, labels)
    best = calibration.nll(logits, labels, fitted)
    for other in (1.0, fitted * 1.1, fitted / 1.1):
        assert best < calibration.nll(logits, labels, other)
    assert fitted == pytest.approx(oracle_temperature(logits, labels), rel=1e-5)


def test_nll_is_the_softmax_cross_entropy_of_z_over_t():
    z, labels = calibrated_set(200, 7, seed=3)
    for t in (1.0, 0.4, 2.5):
        expected = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, z / t)
        ).numpy()
        assert calibration.nll(z, labels, t) == pytest.approx(expected, rel=1e-12)


def test_t_of_one_changes_nothing_and_no_t_changes_the_argmax():
    z, _ = calibrated_set(500, 10, seed=4)
    np.testing.assert_allclose(
        calibration.probabilities(z, 1.0), tf.nn.softmax(z).numpy(), rtol=1e-12
    )
    for t in (0.05, 0.7, 3.0, 20.0):
        p = calibration.probabilities(z, t)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_array_equal(p.argmax(axis=1), z.argmax(axis=1))


def test_the_fit_stops_at_its_bounds_where_the_nll_has_no_interior_minimum():
    """All right and separable: the NLL falls as T → 0; logits unrelated to the labels: it
    falls as T → ∞ (towards the uniform distribution)."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 300)
    separable = 5.0 * np.eye(4)[labels]
    assert calibration.fit_temperature(separable, labels) == calibration.BOUNDS[0]
    assert calibration.fit_temperature(separable, labels, bounds=(0.2, 5.0)) == 0.2
    noise = rng.normal(size=(300, 4))
    noise[np.arange(300), labels] -= 3.0  # confidently wrong
    assert calibration.fit_temperature(noise, labels) == calibration.BOUNDS[1]


@pytest.mark.parametrize(
    "logits, labels, received",
    [
        (np.zeros((0, 3)), np.zeros(0, int), "logits=(0, 3)"),
        (np.zeros((4, 1)), np.array([151.3, 75.0, 141.0, 206.0]), "labels=array"),
        (np.zeros((3, 3)), np.array([0, 1, 3]), "labels=array([0, 1, 3])"),
        (np.zeros((3, 3)), np.array([0, 1]), "labels=array([0, 1])"),
        (np.array([[0.0, np.nan]]), np.array([0]), "logits='non-finite values'"),
    ],
)
def test_refuses_what_is_not_a_classifiers_output_in_one_line(logits, labels, received):
    with pytest.raises(ValueError) as raised:
        calibration.fit_temperature(logits, labels)
    message = str(raised.value)
    assert message.startswith("Expected ") and f"Received: {received}" in message
    assert "\n" not in message


def test_refuses_a_temperature_that_is_not_positive():
    with pytest.raises(ValueError, match=r"Received: temperature=0"):
        calibration.probabilities(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match=r"Received: temperature=-1"):
        calibration.nll(np.zeros((2, 3)), np.array([0, 1]), -1)


def test_refusals_name_the_value_and_what_is_allowed():
    """Four examples of three classes: the message counts N and K apart; six labels are shown,
    seven are summarized."""
    cases = [
        (
            np.zeros((0, 3)),
            [0],
            "Expected logits of shape [N, K] or [N, 1] with N >= 1. Received: logits=(0, 3)",
        ),
        (
            np.zeros((2, 0)),
            [0, 0],
            "Expected logits of shape [N, K] or [N, 1] with N >= 1. Received: logits=(2, 0)",
        ),
        (
            np.zeros((2, 2, 2)),
            [0, 0],
            "Expected logits of shape [N, K] or [N, 1] with N >= 1. Received: logits=(2, 2, 2)",
        ),
        ([[0.0, np.inf]], [0], "Expected finite logits. Received: logits='non-finite values'"),
    ]
    allowed = (
        "Expected {} class indices in [0, 3) (a classifier's labels; temperature scaling has "
        "no meaning for a regression). Received: labels={}"
    )
    for labels in ([0, 1, 3, 0], [0, -1, 2, 0], [0.0, 0.5, 1.0, 2.0], ["0", "1", "2", "0"]):
        cases.append((np.zeros((4, 3)), labels, allowed.format(4, repr(np.asarray(labels)))))
    six, seven = [0, 1, 2, 0, 1, 3], [0, 1, 2, 0, 1, 2, 3]
    cases.append((np.zeros((6, 3)), six, allowed.format(6, "array([0, 1, 2, 0, 1, 3])")))
    cases.append((np.zeros((7, 3)), seven, allowed.format(7, "'array of shape (7,), dtype int64'")))
    cases.append(
        (
            np.zeros((4, 3)),
            np.zeros((4, 2), int),
            allowed.format(4, "'array of shape (4, 2), dtype int64'"),
        )
    )
    for logits, labels, message in cases:
        with pytest.raises(ValueError) as raised:
            calibration.fit_temperature(logits, np.asarray(labels))
        assert str(raised.value) == message


def test_labels_of_shape_n_by_1_and_one_example_are_accepted():
    z, labels = calibrated_set(50, 3, seed=6)
    assert calibration.nll(z, labels[:, None], 1.3) == calibration.nll(z, labels, 1.3)
    assert calibration.nll(z[:1], labels[:1], 1.3) == pytest.approx(
        -np.log(calibration.probabilities(z[:1], 1.3)[0, labels[0]]), rel=1e-12
    )


def test_refuses_a_temperature_or_bounds_that_are_not_positive_naming_them():
    for call in (
        lambda: calibration.probabilities(np.zeros((2, 3)), 0),
        lambda: calibration.nll(np.zeros((2, 3)), np.array([0, 1]), 0),
    ):
        with pytest.raises(ValueError) as raised:
            call()
        assert str(raised.value) == "Expected a finite number > 0. Received: temperature=0"
    z, labels = np.zeros((2, 3)), np.array([0, 1])
    for bounds, message in [
        ((0, 1.0), "Expected a finite number > 0. Received: bounds[0]=0"),
        ((2.0, 2.0), "Expected a finite number > 2.0. Received: bounds[1]=2.0"),
        ((2.0, 1.0), "Expected a finite number > 2.0. Received: bounds[1]=1.0"),
    ]:
        with pytest.raises(ValueError) as raised:
            calibration.fit_temperature(z, labels, bounds=bounds)
        assert str(raised.value) == message


def test_float32_logits_are_computed_in_float64():
    """float32 arithmetic would be off by ~1e-7 here."""
    z, labels = calibrated_set(300, 10, seed=7, spread=8.0)
    z32 = z.astype(np.float32)
    z64 = z32.astype(np.float64)
    assert calibration.nll(z32, labels, 0.7) == calibration.nll(z64, labels, 0.7)
    p = calibration.probabilities(z32, 0.7)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p, calibration.probabilities(z64, 0.7))
    assert calibration.fit_temperature(z32, labels) == calibration.fit_temperature(z64, labels)


def test_the_default_temperature_is_one_and_large_logits_do_not_overflow():
    z, labels = calibrated_set(100, 4, seed=8)
    np.testing.assert_allclose(calibration.probabilities(z), tf.nn.softmax(z).numpy(), rtol=1e-12)
    expected = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, z)).numpy()
    assert calibration.nll(z, labels) == pytest.approx(expected, rel=1e-12)
    big = np.array([[1000.0, 0.0, -1000.0]])
    np.testing.assert_array_equal(calibration.probabilities(big), [[1.0, 0.0, 0.0]])
    assert calibration.nll(big, np.array([1])) == 1000.0


def two_logits(gap, right, wrong):
    """Binary outcomes with one logit `gap`: `right` labelled 1, `wrong` labelled 0. NLL′(β) ∝
    wrong·σ(β·gap) − right·σ(−β·gap) vanishes at T = gap / ln(right / wrong)."""
    return np.full(right + wrong, gap), np.array([1] * right + [0] * wrong)


def test_the_fit_matches_the_closed_form_where_newton_meets_a_one_hot_softmax():
    """gap 800: at the first guess T = 1, softmax((0, 800)) is exactly one-hot in float64 and
    NLL″ = 0, so that step is a bisection; the minimum is T = 800 / ln 3."""
    z, labels = two_logits(800.0, 3, 1)
    fitted = calibration.fit_temperature(z, labels, bounds=(0.05, 1000.0))
    assert fitted == pytest.approx(800.0 / np.log(3.0), rel=1e-9)
    assert fitted == pytest.approx(oracle_temperature(z, labels, (0.05, 1000.0)), rel=1e-6)


def test_a_minimum_just_outside_the_bounds_returns_the_bound_exactly():
    z, labels = two_logits(np.log(3.0), 3, 1)  # T* = 1
    assert calibration.fit_temperature(z, labels, bounds=(1.5, 20.0)) == 1.5
    z, labels = two_logits(3.0, 3, 1)  # T* = 3 / ln 3 ≈ 2.73, NLL′(1/2) ≈ 0.2
    assert calibration.fit_temperature(z, labels, bounds=(0.05, 2.0)) == 2.0
    flat = np.zeros((5, 3))  # logits that say nothing: NLL′ = 0 everywhere
    assert calibration.fit_temperature(flat, np.arange(5) % 3) == calibration.BOUNDS[1]


def test_a_slope_of_exactly_zero_at_the_first_guess_returns_it(monkeypatch):
    """NLL′(1) = 0 for a gap of ln 3 (three right, one wrong), but which float near ln 3 makes
    it round to exactly 0.0 depends on the platform's exp and log: the slope at β = 1 is set
    to exactly 0.0 here (the real one elsewhere), and T = 1 must come back after one step."""
    real = calibration._slope_and_curvature

    def zero_at_one(beta, z, gold):
        slope, curvature = real(beta, z, gold)
        return (0.0 if beta == 1.0 else slope), curvature

    monkeypatch.setattr(calibration, "_slope_and_curvature", zero_at_one)
    z, labels = two_logits(np.log(3.0), 3, 1)
    assert calibration.fit_temperature(z, labels, max_steps=1) == 1.0
    assert calibration.fit_temperature(z, labels) == 1.0


@pytest.fixture
def betas(monkeypatch):
    """The β of each NLL′ evaluation: the two bracket ends, then one per step."""
    seen = []
    original = calibration._slope_and_curvature

    def recorded(beta, z, gold):
        seen.append(beta)
        return original(beta, z, gold)

    monkeypatch.setattr(calibration, "_slope_and_curvature", recorded)
    return seen


@pytest.mark.parametrize("scale, steps", [(0.1, 12), (0.5, 6)])
def test_newton_converges_in_a_few_steps(betas, scale, steps):
    """Bisection alone would need ~35 steps for 1e-10; NLL″ < 1 at scale 0.1."""
    z, labels = calibrated_set(300, 5, seed=0)
    fitted = calibration.fit_temperature(scale * z, labels)
    assert len(betas) - 2 <= steps
    assert fitted == pytest.approx(oracle_temperature(scale * z, labels), rel=1e-7)


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_tolerance_zero_runs_exactly_max_steps(betas, scale):
    z, labels = calibrated_set(300, 5, seed=0)
    fitted = calibration.fit_temperature(scale * z, labels, tolerance=0)
    assert len(betas) - 2 == 100
    assert fitted == pytest.approx(oracle_temperature(scale * z, labels), rel=1e-7)
    betas.clear()
    calibration.fit_temperature(scale * z, labels, tolerance=0, max_steps=7)
    assert len(betas) - 2 == 7


def tolerance_at(width, beta):
    """The tolerance t with t·β == width exactly in float64."""
    t = width / beta
    while t * beta > width:
        t = np.nextafter(t, 0)
    while t * beta < width:
        t = np.nextafter(t, np.inf)
    assert t * beta == width
    return float(t)


def test_a_newton_step_of_exactly_tolerance_times_beta_stops(betas):
    """T* ≈ 0.55: the first Newton step goes from β = 1 up to β₁ ≈ 1.4."""
    z, labels = calibrated_set(300, 5, seed=0)
    calibration.fit_temperature(0.5 * z, labels, tolerance=0, max_steps=2)
    beta_1 = betas[3]
    assert 1.0 < beta_1
    at_limit = tolerance_at(abs(beta_1 - 1.0), beta_1)
    betas.clear()
    assert calibration.fit_temperature(0.5 * z, labels, tolerance=at_limit) == 1.0 / beta_1
    assert len(betas) - 2 == 1
    betas.clear()
    calibration.fit_temperature(0.5 * z, labels, tolerance=np.nextafter(at_limit, 0))
    assert len(betas) - 2 > 1


def test_a_bracket_of_exactly_tolerance_times_beta_stops(betas):
    """At β = 1 the softmax is one-hot (NLL″ = 0): the step bisects [1/1000, 1] to β₁; with
    one ulp less tolerance a second bisection stops at β₂."""
    z, labels = two_logits(800.0, 3, 1)
    bounds = (0.05, 1000.0)
    beta_1 = 0.5 * (1 / 1000.0 + 1.0)
    beta_2 = 0.5 * (1 / 1000.0 + beta_1)
    at_limit = tolerance_at(1.0 - 1 / 1000.0, beta_1)
    fitted = calibration.fit_temperature(z, labels, bounds=bounds, tolerance=at_limit)
    assert (fitted, len(betas) - 2) == (1.0 / beta_1, 1)
    betas.clear()
    below = np.nextafter(at_limit, 0)
    fitted = calibration.fit_temperature(z, labels, bounds=bounds, tolerance=below)
    assert (fitted, len(betas) - 2) == (1.0 / beta_2, 2)


@pytest.mark.parametrize(
    "logits, labels, separable",
    [
        ([[3.0, 1.0], [0.0, 2.0]], [0, 1], True),  # every gold logit the largest
        ([[3.0, 1.0], [0.0, 2.0]], [0, 0], False),  # one example wrong
        ([[2.0, 2.0, 0.0]], [1], True),  # a tie at the top: NLL falls to log 2, never rises
        ([[2.0, 2.0 + 1e-9, 0.0]], [0], False),  # just below the top
        ([1.5, -0.5, 0.0], [1, 0, 1], True),  # a binary outcome's logits [N]: σ(z) ≥ 1/2
        ([[1.5], [-0.5], [-1e-9]], [1, 0, 1], False),  # one binary example on the wrong side
    ],
)
def test_separable_is_every_gold_logit_a_largest_one(logits, labels, separable):
    """Catches the test of separability reversed, strict where a tie counts (NLL(T) then has
    no minimum either), or a binary outcome's logits [N] / [N, 1] not read as (0, z)."""
    assert calibration.separable(logits, labels) is separable
    if separable:  # then the fit returns its lowest bound: NLL still falls there
        assert calibration.fit_temperature(logits, labels) == calibration.BOUNDS[0]


@pytest.mark.parametrize("logits", [[[1000.0, 0.0]], [[1000.0]]])
def test_a_certain_right_answer_has_nll_zero_not_minus_zero(logits):
    """−mean(log 1) is −0.0, which JSON and the run's lines print as "-0.0". Catches the
    sign of zero left to the negation."""
    value = calibration.nll(np.array(logits), np.array([0 if len(logits[0]) == 2 else 1]))
    assert value == 0.0 and np.copysign(1.0, value) == 1.0
