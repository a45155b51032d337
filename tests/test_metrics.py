import numpy as np
import pytest

from tfnn import metrics
from tfnn.testing import check_config_round_trip


def reference_ece(probabilities, labels, num_bins=15, weights=None):
    """ECE = Σ_b (|B_b| / N) |acc(B_b) − conf(B_b)| over equal-width confidence bins (0, 1]."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    weights = np.ones(len(labels)) if weights is None else weights
    total, ece = weights.sum(), 0.0
    for b in range(num_bins):
        low, high = b / num_bins, (b + 1) / num_bins
        in_bin = (confidence > low) & (confidence <= high)
        if weights[in_bin].sum() > 0:
            w = weights[in_bin]
            accuracy = (w * correct[in_bin]).sum() / w.sum()
            mean_confidence = (w * confidence[in_bin]).sum() / w.sum()
            ece += w.sum() / total * abs(accuracy - mean_confidence)
    return ece


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_a_hand_computed_case():
    # Four predictions of confidence 0.9, two right: |0.5 − 0.9| = 0.4 in one bin.
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    labels = np.array([0, 1, 1, 0])
    ece = metrics.ExpectedCalibrationError(num_bins=10, from_logits=False)
    ece.update_state(labels, p)
    np.testing.assert_allclose(float(ece.result()), 0.4, atol=1e-6)


def test_a_confidence_on_a_bin_edge_belongs_to_the_bin_below():
    """Bins are (b/M, (b+1)/M]: with M = 4, confidence 0.5 shares (0.25, 0.5] with 0.4, so
    ECE = |1 − (0.5 + 0.4)| / 2 = 0.05 (in [0.5, 0.75) on its own it would be 0.45)."""
    p = np.array([[0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3], [0.4, 0.2, 0.2, 0.2]], "float32")
    labels = np.array([0, 1])  # the first is right, the second wrong
    ece = metrics.ExpectedCalibrationError(num_bins=4, from_logits=False)
    ece.update_state(labels, p)
    np.testing.assert_allclose(float(ece.result()), 0.05, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("classes, num_bins", [(10, 15), (3, 5)])
def test_equals_the_formula_from_logits_and_over_batches(seed, classes, num_bins):
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.normal(size=(300, classes)).astype("float32")
    labels = rng.integers(0, classes, 300)
    weights = rng.uniform(size=300).astype("float32")
    ece = metrics.ExpectedCalibrationError(num_bins=num_bins)
    for part in np.array_split(np.arange(300), 4):  # accumulates like one batch
        ece.update_state(labels[part], logits[part], sample_weight=weights[part])
    expected = reference_ece(softmax(logits.astype(float)), labels, num_bins, weights)
    np.testing.assert_allclose(float(ece.result()), expected, atol=1e-5)
    ece.reset_state()
    ece.update_state(labels, logits)
    expected = reference_ece(softmax(logits.astype(float)), labels, num_bins)
    np.testing.assert_allclose(float(ece.result()), expected, atol=1e-5)


@pytest.mark.parametrize("classes", [2, 4])
def test_distribution_labels_count_their_most_likely_class(classes):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(50, classes)).astype("float32")
    labels = rng.integers(0, classes, 50)
    gold = 0.9 * np.eye(classes)[labels] + 0.1 / classes  # smoothed: argmax is the class
    sparse, dense = metrics.ExpectedCalibrationError(), metrics.ExpectedCalibrationError()
    sparse.update_state(labels, logits)
    dense.update_state(gold.astype("float32"), logits)
    np.testing.assert_allclose(float(dense.result()), float(sparse.result()), atol=1e-7)


def test_binary_logits_are_two_class_probabilities():
    rng = np.random.default_rng(4)
    z = rng.normal(size=(80, 1)).astype("float32")
    labels = rng.integers(0, 2, 80)
    p = 1.0 / (1.0 + np.exp(-z.astype(float)))
    ece = metrics.ExpectedCalibrationError()
    ece.update_state(labels.astype("float32")[:, None], z)
    expected = reference_ece(np.concatenate([1 - p, p], axis=1), labels)
    np.testing.assert_allclose(float(ece.result()), expected, atol=1e-6)
    ece.reset_state()
    ece.update_state(labels, z)  # integer labels too
    np.testing.assert_allclose(float(ece.result()), expected, atol=1e-6)


def test_perfectly_calibrated_predictions_score_zero_and_empty_state_is_zero():
    ece = metrics.ExpectedCalibrationError(num_bins=10, from_logits=False)
    assert float(ece.result()) == 0.0
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    ece.update_state(np.array([0, 1]), p)
    assert float(ece.result()) == 0.0


def test_works_as_a_compiled_metric_and_round_trips():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4)])
    model.compile(
        "sgd",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[metrics.ExpectedCalibrationError(num_bins=7)],
    )
    x = np.random.default_rng(5).normal(size=(64, 3)).astype("float32")
    y = np.arange(64) % 4
    result = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    expected = reference_ece(softmax(model.predict(x, verbose=0).astype(float)), y, 7)
    np.testing.assert_allclose(result["ece"], expected, atol=1e-5)
    check_config_round_trip(metrics.ExpectedCalibrationError(num_bins=7, from_logits=False))


@pytest.mark.parametrize("num_bins", [0, -1, 2.5, True])
def test_bad_bins_are_refused(num_bins):
    with pytest.raises(ValueError, match="num_bins"):
        metrics.ExpectedCalibrationError(num_bins=num_bins)
