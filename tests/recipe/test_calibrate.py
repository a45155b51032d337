"""train.py --calibrate: T fitted on the validation split, recorded, and served by the export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnn
from tfnn import calibration, data
from tfnn.recipe import run as runs


class Keep(keras.callbacks.Callback):
    """Keeps the trained model (the one the run evaluates and exports)."""

    def on_train_end(self, logs=None):
        self.trained = self.model


def served_probabilities(export_path, x):
    served = tf.saved_model.load(export_path).signatures["serving_default"]
    return served(inputs=tf.constant(x, tf.float32))["probabilities"].numpy()


# breast_cancer's validation split is one a 6-epoch model gets entirely right (no T to fit:
# test_a_validation_split_the_model_gets_all_right_keeps_t_1); after one epoch it is not.
@pytest.mark.parametrize("dataset, epochs", [("digits", 6), ("breast_cancer", 1)])
def test_calibrate_fits_t_on_validation_records_it_and_the_export_serves_z_over_t(
    run, data_dir, dataset, epochs
):
    kept = Keep()
    metrics, folder = run(
        callbacks=[kept], dataset=dataset, calibrate=True, label_smoothing=0.1, epochs=epochs
    )
    t = metrics["temperature"]
    assert json.loads((folder / "metrics.json").read_text())["temperature"] == t
    ds = data.load(dataset, seed=42, data_dir=data_dir)
    z_val = kept.trained(ds.validation[0], training=False).numpy()
    # Fitted on the validation split (not the test or training split), to its minimum.
    assert not calibration.separable(z_val, ds.validation[1])
    assert t == pytest.approx(calibration.fit_temperature(z_val, ds.validation[1]), rel=1e-6)
    val = metrics["val"]
    assert val["nll_calibrated"] <= val["nll"]
    assert val["nll"] == pytest.approx(calibration.nll(z_val, ds.validation[1]), rel=1e-5)
    assert {"ece", "ece_calibrated", "nll", "nll_calibrated"} <= metrics["test"].keys()
    # The export serves softmax(z/T) (σ(z/T)) of the Keras model, and T ≠ 1 makes that differ
    # from the uncalibrated softmax(z).
    z_test = kept.trained(ds.test[0], training=False).numpy()
    expected = tf.sigmoid(z_test / t) if z_test.shape[1] == 1 else tf.nn.softmax(z_test / t)
    served = served_probabilities(metrics["export_path"], ds.test[0])
    np.testing.assert_allclose(served, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert abs(t - 1.0) > 0.02
    # Accuracy is the uncalibrated model's: T keeps the argmax.
    correct = (served.argmax(-1) if served.shape[1] > 1 else served[:, 0] > 0.5) == ds.test[1]
    assert np.mean(correct) == pytest.approx(metrics["test"]["accuracy"], abs=1e-6)


class KeepAll(keras.callbacks.Callback):
    """Keeps every model trained (an ensemble's members)."""

    trained = []

    def on_train_end(self, logs=None):
        self.trained.append(self.model)


def test_an_ensemble_is_calibrated_on_its_averaged_distribution(run, data_dir):
    """T rescales log p̄, the ensemble's logits: it serves p̄^(1/T) / Σ_k p̄_k^(1/T), with p̄ the
    members' mean distribution."""
    kept = KeepAll()
    kept.trained = []
    metrics, _ = run(callbacks=[kept], dataset="digits", calibrate=True, ensemble=2, epochs=3)
    ds = data.load("digits", seed=42, data_dir=data_dir)
    members = [tf.nn.softmax(m(ds.validation[0], training=False)).numpy() for m in kept.trained]
    mean = np.mean(members, axis=0)
    t = metrics["temperature"]
    assert t == pytest.approx(calibration.fit_temperature(np.log(mean), ds.validation[1]), rel=1e-4)
    sharpened = mean ** (1 / t) / np.sum(mean ** (1 / t), axis=1, keepdims=True)
    served = served_probabilities(metrics["export_path"], ds.validation[0])
    np.testing.assert_allclose(served, sharpened, rtol=1e-4, atol=1e-6)


def test_a_run_killed_before_export_exports_the_recorded_temperature(run, monkeypatch):
    """The export reads T from lifecycle.json: a rerun that skips evaluation still serves
    softmax(z/T)."""
    kept = Keep()

    def stop_at(name):
        if name == "export":
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "fault_point", stop_at)
    options = {"dataset": "digits", "calibrate": True, "label_smoothing": 0.1}
    with pytest.raises(KeyboardInterrupt):
        run(callbacks=[kept], **options)
    monkeypatch.undo()
    metrics, _ = run(**options)
    x = np.random.default_rng(0).uniform(size=(20, 8, 8, 1)).astype("float32")
    z = kept.trained(x, training=False).numpy()
    np.testing.assert_allclose(
        served_probabilities(metrics["export_path"], x),
        tf.nn.softmax(z / metrics["temperature"]).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_regression_refuses_calibrate_before_anything_is_written(tmp_path, data_dir):
    with pytest.raises(ValueError, match=r"Received: calibrate=True$"):
        tfnn.train(
            dataset="diabetes",
            calibrate=True,
            data_dir=data_dir,
            logdir=str(tmp_path / "logs"),
            export_dir=str(tmp_path / "saved_models"),
        )
    assert not (tmp_path / "logs").exists() and not (tmp_path / "saved_models").exists()


@pytest.mark.parametrize("wrong", [0, 1])
def test_a_validation_split_the_model_gets_all_right_keeps_t_1(monkeypatch, caplog, wrong):
    """Catches T fitted where NLL has no minimum: with every validation example right it
    falls for ever as T → 0, the fit returns its lowest bound, and the export served near
    one-hot probabilities (test NLL 0.22 → 2.61 with one validation example). One wrong
    example makes T fitted again."""
    import logging
    import types

    from tfnn.recipe import evaluate as evaluation

    rng = np.random.default_rng(0)
    y_val, y_test = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
    z_val = rng.normal(size=(40, 3)) + 4 * np.eye(3)[y_val]  # every gold logit the largest
    z_val[:wrong] = z_val[:wrong, ::-1] * 0 + 4 * np.eye(3)[(y_val[:wrong] + 1) % 3]
    z_test = rng.normal(size=(40, 3)) + 2 * np.eye(3)[y_test]
    outputs = {"val": (z_val, y_val), "test": (z_test, y_test)}
    monkeypatch.setattr(evaluation, "logits_and_labels", lambda plan, model, split: outputs[split])
    plan = types.SimpleNamespace(
        options=types.SimpleNamespace(calibrate=True),
        dataset=types.SimpleNamespace(validation="val", test="test"),
    )
    scores = {"val": {"ece": 0.1}, "test": {"ece": 0.2}}
    with caplog.at_level(logging.INFO, logger="tfnn.recipe"):
        result = evaluation.calibrate(plan, None, scores)
    said = [r.getMessage() for r in caplog.records]
    if wrong:
        assert result["temperature"] == calibration.fit_temperature(z_val, y_val) != 1.0
        assert not any("not fitted" in line for line in said)
        return
    assert result["temperature"] == 1.0
    assert result["test"]["nll_calibrated"] == result["test"]["nll"]
    assert said[0] == (
        "temperature not fitted: the model gets every validation example right, so NLL(T) "
        "falls for ever as T → 0; T = 1 (the export is not calibrated)"
    )
