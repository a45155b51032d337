"""The evaluation stage: the loss and metrics of a trained model on the validation and test
splits, and the Monte-Carlo dropout figures beside them (D7).
"""

from tfnn import layers
from tfnn.models import ensemble


def evaluate(plan, model):
    """{"val": {...}, "test": {...}}: the plan's loss and metrics of `model` on both splits.

    Compiles `model` with new loss and metric objects (Keras metrics keep
    state; sharing them between models mixes their figures).
    """
    model.compile(loss=plan.objective.loss(), metrics=plan.objective.metrics())
    scores = {}
    for split, data in (("val", plan.dataset.validation), ("test", plan.dataset.test)):
        values = model.evaluate(plan.batches(data), verbose=0, return_dict=True)
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
    passes = ensemble.monte_carlo_dropout(model, samples, plan.output_function)
    return {"samples": samples, **evaluate(plan, passes)}
