"""tfnn.recipe.evaluate, in this process on a tiny data set of 3 classes: the figures
against the same figures computed by hand from the model's logits."""

import dataclasses
import functools
import logging
import math

import keras
import numpy as np
import pytest

from tfnn import calibration, data, layers
from tfnn.recipe import evaluate


@pytest.fixture
def tiny_plan(tiny_plan):
    """The recipe's tiny plan (conftest.py) in batches of 4."""
    return functools.partial(tiny_plan, batch_size=4)


def linear(rate=None):
    """A fixed 4 → 3 logit model, with dropout of `rate` in front when given."""
    stack = [keras.Input((4,))]
    if rate is not None:
        stack.append(layers.Dropout(rate))
    stack.append(keras.layers.Dense(3, kernel_initializer=keras.initializers.RandomNormal(0, 2, 1)))
    return keras.Sequential(stack)


def by_hand(model, arrays):
    """(mean cross-entropy, accuracy) of `model`'s logits on `arrays`."""
    x, y = arrays
    logits = np.asarray(model(x), np.float64)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean(), (logits.argmax(axis=1) == y).mean()


def test_evaluate_gives_each_split_its_own_loss_and_accuracy(tiny_plan):
    """Catches a split measured on the other's data, or figures of another loss."""
    the_plan, model = tiny_plan(), linear()
    scores = evaluate.evaluate(the_plan, model)
    assert list(scores) == ["val", "test"]
    for name, arrays in (("val", the_plan.dataset.validation), ("test", the_plan.dataset.test)):
        loss, accuracy = by_hand(model, arrays)
        assert scores[name]["loss"] == pytest.approx(loss, rel=1e-5)
        assert scores[name]["accuracy"] == pytest.approx(accuracy)
        assert all(type(value) is float for value in scores[name].values())


def test_evaluate_prints_no_progress_bar(tiny_plan, capfd):
    evaluate.evaluate(tiny_plan(), linear())
    assert capfd.readouterr().out == ""


def test_evaluate_measures_only_the_splits_asked_for(tiny_plan):
    """A sweep's trial measures the validation split only: the test split is never read."""
    scores = evaluate.evaluate(tiny_plan(), linear(), splits=("val",))
    assert list(scores) == ["val"]


def test_summary_names_the_monitored_figure_of_both_splits_to_four_places():
    scores = {"val": {"accuracy": 0.5, "loss": 9.0}, "test": {"accuracy": 0.123456}}
    assert evaluate.summary(scores, "accuracy") == "val accuracy 0.5000, test accuracy 0.1235"


def test_logits_and_labels_are_the_models_logits_and_the_class_indices(tiny_plan):
    """Catches dropout left on (the logits of a training pass)."""
    the_plan, model = tiny_plan(), linear(rate=0.5)
    x, y = the_plan.dataset.test
    logits, labels = evaluate.logits_and_labels(the_plan, model, the_plan.dataset.test)
    np.testing.assert_allclose(logits, model(x, training=False).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(labels, y)


def test_logits_of_a_half_precision_model_come_as_float32(tiny_plan):
    the_plan = tiny_plan()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, dtype="mixed_float16")])
    x, _ = the_plan.dataset.test
    assert model(x).dtype == "float16"
    logits, _ = evaluate.logits_and_labels(the_plan, model, the_plan.dataset.test)
    assert logits.dtype == np.float32


def test_labels_given_as_a_column_come_back_flat(tiny_plan):
    """Class indices of shape [n, 1] are read as [n]."""
    the_plan = tiny_plan()
    x, y = the_plan.dataset.test
    column = data.Arrays(x, y.reshape(-1, 1))
    _, labels = evaluate.logits_and_labels(the_plan, linear(), column)
    np.testing.assert_array_equal(labels, y)


def test_logits_and_labels_read_mixups_distributions_as_their_class(tiny_plan):
    """With mixup the gold is one-hot: read back as the class index, not flattened."""
    the_plan, model = tiny_plan(mixup=0.2), linear()
    _, labels = evaluate.logits_and_labels(the_plan, model, the_plan.dataset.test)
    np.testing.assert_array_equal(labels, the_plan.dataset.test.y)


@pytest.mark.parametrize("label, expected", [(0, 0.25), (1, 0.75)])
def test_ece_of_one_example_is_its_confidence_gap(label, expected):
    """softmax([ln 3, 0]) = (0.75, 0.25): right, the gap is 1 − 0.75; wrong, 0.75 − 0."""
    logits = np.array([[math.log(3.0), 0.0]], np.float32)
    assert evaluate.ece(logits, np.array([label])) == pytest.approx(expected, abs=1e-6)


def test_without_calibrate_the_scores_are_returned_as_they_are(tiny_plan):
    scores = {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.25}}
    assert evaluate.calibrate(tiny_plan(), linear(), scores) is scores


def test_calibrate_fits_t_on_validation_and_reports_both_splits_before_and_after(tiny_plan, caplog):
    """Catches T fitted on the test split, a split's NLL of the other's logits, or the
    calibrated figures taken at T = 1."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    the_plan, model = tiny_plan(calibrate=True), linear()
    scores = evaluate.evaluate(the_plan, model)
    result = evaluate.calibrate(the_plan, model, scores)
    arrays = {"val": the_plan.dataset.validation, "test": the_plan.dataset.test}
    z = {name: model(x).numpy() for name, (x, _) in arrays.items()}
    temperature = calibration.fit_temperature(z["val"], arrays["val"].y)
    assert abs(temperature - 1) > 0.1  # a fixed random model is far from calibrated
    assert result["temperature"] == pytest.approx(temperature)
    assert list(result) == ["temperature", "val", "test"]
    for name, (_, y) in arrays.items():
        assert result[name] == {
            **scores[name],
            "nll": pytest.approx(calibration.nll(z[name], y), rel=1e-5),
            "nll_calibrated": pytest.approx(calibration.nll(z[name], y, temperature), rel=1e-5),
            "ece_calibrated": pytest.approx(evaluate.ece(z[name] / temperature, y), rel=1e-5),
        }
        assert result[name]["nll_calibrated"] < result[name]["nll"] or name == "test"
    val, test = result["val"], result["test"]
    assert (
        f"temperature T={temperature:.4f}: val ece {val['ece']:.4f} → "
        f"{val['ece_calibrated']:.4f}, test ece {test['ece']:.4f} → {test['ece_calibrated']:.4f}"
    ) in caplog.text


def test_a_validation_split_the_model_gets_all_right_keeps_t_at_1_and_says_why(tiny_plan, caplog):
    """Catches the temperature of a separable validation split other than 1.0 (None, 2.0),
    and the line saying why it was not fitted missing or worded otherwise."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    the_plan, model = tiny_plan(calibrate=True), linear()
    x, _ = the_plan.dataset.validation
    right = data.Arrays(x, model(x).numpy().argmax(axis=1))  # the model's own classes
    the_plan = dataclasses.replace(
        the_plan, dataset=dataclasses.replace(the_plan.dataset, validation=right)
    )
    result = evaluate.calibrate(the_plan, model, evaluate.evaluate(the_plan, model))
    assert result["temperature"] == 1.0
    assert result["val"]["nll_calibrated"] == pytest.approx(result["val"]["nll"], rel=1e-6)
    assert caplog.messages[0] == (
        "temperature not fitted: the model gets every validation example right, so NLL(T) "
        "falls for ever as T → 0; T = 1 (the export is not calibrated)"
    )


@pytest.mark.parametrize(
    "samples, rate", [(0, 0.5), (8, None), (8, 0.0)], ids=["no passes", "no dropout", "rate 0"]
)
def test_monte_carlo_dropout_needs_passes_and_a_dropout_that_drops(tiny_plan, samples, rate):
    assert evaluate.monte_carlo_dropout(tiny_plan(mc_dropout=samples), linear(rate)) is None


def test_monte_carlo_dropout_reports_its_passes_on_both_splits(tiny_plan):
    the_plan = tiny_plan(mc_dropout=3)
    mc = evaluate.monte_carlo_dropout(the_plan, linear(0.5))
    assert list(mc) == ["samples", "val", "test"] and mc["samples"] == 3
    assert set(mc["val"]) == {"loss", "accuracy", "ece"}


def test_monte_carlo_dropout_finds_dropout_inside_a_nested_model(tiny_plan):
    inner = linear(0.5)
    outer = keras.Sequential([keras.Input((4,)), inner])
    assert evaluate.monte_carlo_dropout(tiny_plan(mc_dropout=2), outer) is not None


def test_monte_carlo_dropout_figures_depend_on_the_seed_not_on_earlier_draws(tiny_plan):
    """Catches the run's seed not passed to the Monte-Carlo copy: its figures then depended
    on the random draws the process made before (train.py's figures with members trained
    here differed from those with members trained on pool workers)."""
    model = linear(0.5)
    first = evaluate.monte_carlo_dropout(tiny_plan(mc_dropout=3, seed=4), model)
    keras.utils.set_random_seed(123)
    _ = [keras.random.SeedGenerator() for _ in range(3)]
    assert evaluate.monte_carlo_dropout(tiny_plan(mc_dropout=3, seed=4), model) == first
    assert evaluate.monte_carlo_dropout(tiny_plan(mc_dropout=3, seed=5), model) != first
