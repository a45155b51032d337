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
