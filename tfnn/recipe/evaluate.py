"""The evaluation stage: the loss and metrics of a trained model on the validation and test
splits, the Monte-Carlo dropout figures beside them (D7), and with `calibrate` the
temperature fitted on the validation split and what it changes (D7, calibration).
"""

import numpy as np

from tfnn import calibration, layers
from tfnn.metrics import ExpectedCalibrationError
from tfnn.models import ensemble
from tfnn.recipe.fit import say


def evaluate(plan, model, splits=("val", "test")):
    """{"val": {...}, "test": {...}}: the plan's loss and metrics of `model` on the `splits`.

    Compiles `model` with new loss and metric objects (Keras metrics keep
    state; sharing them between models mixes their figures).
    """
    model.compile(loss=plan.objective.loss(), metrics=plan.objective.metrics())
    scores = {}
    data = {"val": plan.dataset.validation, "test": plan.dataset.test}
    for split in splits:
        values = model.evaluate(plan.batches(data[split]), verbose=0, return_dict=True)
        scores[split] = {name: float(value) for name, value in values.items()}
    return scores


def summary(scores, monitor):
    """The line "val <monitor> …, test <monitor> …" of {"val": {...}, "test": {...}}."""
    return ", ".join(f"{split} {monitor} {scores[split][monitor]:.4f}" for split in ("val", "test"))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def monte_carlo_dropout(plan, model):
    """{"samples": T, "val": …, "test": …} of Monte-Carlo dropout with the options' T passes
    (D7), or None when T is 0 or `model` has no dropout."""
    samples = plan.options.mc_dropout
    has_dropout = any(
        isinstance(layer, layers.Dropout) and layer.rate for layer in _all_layers(model)
    )
    if not samples or not has_dropout:
        return None
    # Seeded: the masks do not depend on what this process drew before (the members it
    # trained, or not, when they trained on pool workers).
    passes = ensemble.monte_carlo_dropout(
        model, samples, plan.output_function, seed=plan.options.seed
    )
    return {"samples": samples, **evaluate(plan, passes)}


def logits_and_labels(plan, model, split):
    """(logits [N, K] float32, class indices [N]) of `model` on `split` (the gold of mixup
    runs, a distribution, read as its most likely class)."""
    logits, labels = [], []
    for x, y in plan.batches(split):
        logits.append(np.asarray(model(x), np.float32))  # called outside fit: inference
        y = np.asarray(y)
        labels.append(y.argmax(axis=1) if plan.objective.distributions else y.reshape(-1))
    return np.concatenate(logits), np.concatenate(labels)


def ece(logits, labels):
    """The run's ECE (the metric `evaluate` reports) of `logits`."""
    metric = ExpectedCalibrationError()
    metric.update_state(labels, logits)
    return float(metric.result())


def calibrate(plan, model, scores):
    """`scores` ({"val": …, "test": …}) with, when the options ask for it, the temperature T
    fitted on the validation logits and, per split, the NLL (no label smoothing) and ECE of
    softmax(z/T) (σ for a binary outcome): `nll`, `nll_calibrated` and `ece_calibrated`
    beside the uncalibrated `ece`. Accuracy is the same at any T. A validation split the
    model gets entirely right fits no T (`tfnn.calibration.separable`): T stays 1."""
    if not plan.options.calibrate:
        return scores
    outputs = {
        split: logits_and_labels(plan, model, data)
        for split, data in (("val", plan.dataset.validation), ("test", plan.dataset.test))
    }
    if calibration.separable(*outputs["val"]):
        say(
            "temperature not fitted: the model gets every validation example right, so NLL(T) "
            "falls for ever as T → 0; T = 1 (the export is not calibrated)"
        )
        temperature = 1.0
    else:
        temperature = calibration.fit_temperature(*outputs["val"])
    result = {"temperature": temperature, **scores}
    for split, (z, y) in outputs.items():
        result[split] = {
            **scores[split],
            "nll": calibration.nll(z, y),
            "nll_calibrated": calibration.nll(z, y, temperature),
            "ece_calibrated": ece(z / np.float32(temperature), y),
        }
    say(
        f"temperature T={temperature:.4f}: "
        + ", ".join(
            f"{split} ece {result[split]['ece']:.4f} → {result[split]['ece_calibrated']:.4f}"
            for split in outputs
        )
    )
    return result
