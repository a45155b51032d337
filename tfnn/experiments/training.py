"""Training and evaluating as the recipe does, for an experiment's measurements: the plan of
train.py's options on MNIST-1D, a compiled model reused over seeds, fit without the run's
folder, the figures of a classifier. This is the TensorFlow side of the experiments; the
rest (`tfnn.experiments.common`) runs without it.
"""

import dataclasses
import functools
import json

import keras
import tensorflow as tf

from tfnn import calibration, data
from tfnn.data import augment
from tfnn.experiments.common import accuracy
from tfnn.recipe.evaluate import ece, logits_and_labels
from tfnn.recipe.fit import build_model, compiled_model
from tfnn.recipe.options import Options
from tfnn.recipe.plan import make_plan


def kernels(model):
    """The model's kernels (weight matrices and convolution kernels) as numpy arrays."""
    return [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]


def dataset(name, seed, train_examples=None):
    """The data set's splits for `seed` (its validation split depends on it), the training
    split cut to its first `train_examples`."""
    loaded = _loaded(name, seed)
    if train_examples:
        x, y = loaded.train
        loaded = dataclasses.replace(
            loaded, train=data.Arrays(x[:train_examples], y[:train_examples])
        )
    return loaded


@functools.lru_cache(maxsize=16)
def _loaded(name, seed):
    """`data.load(name, seed=seed)`, read once a process (~0.3 s each for MNIST-1D): a pool
    worker measures several experiments' configurations, each over every seed, and every
    cut of the training split is a view of one loaded copy (the experiments use MNIST-1D
    with at most 5 seeds: 5 entries, ~0.7 MB each)."""
    return data.load(name, seed=seed)


def plan_of(seed, *, dataset_name="mnist1d", train_examples=None, **options):
    """The recipe's plan of `options` (train.py's names) on the data set, as tfnn.train makes
    it (no run folder, no export)."""
    checked = Options(dataset=dataset_name, seed=seed, verbose=0, **options)
    return make_plan(
        checked, dataset(dataset_name, seed, train_examples), tf.distribute.get_strategy()
    )


def mlp_plan(seed, size, *, epochs, **options):
    """The plan of the MLP most experiments vary: 256–256 on 500 (quick) or 1,000 MNIST-1D
    training signals, no dropout and no label smoothing unless `options` say otherwise;
    `epochs` = (quick, full)."""
    defaults = {"dropout": 0.0, "label_smoothing": 0.0}
    return plan_of(
        seed,
        train_examples=size.pick(500, 1000),
        model="mlp",
        hidden_layers=(256, 256),
        epochs=size.pick(*epochs),
        **{**defaults, **options},
    )


class EpochFigures(keras.callbacks.Callback):
    """Records per epoch what `measure(model)` returns (e.g. validation figures), eagerly."""

    def __init__(self, measure):
        super().__init__()
        self.measure = measure
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        self.history.append(self.measure(self.model))


_COMPILED = {}  # key → (compiled model, its optimizer's initial state)


def reused(key, make_compiled, build):
    """A compiled model, made by `make_compiled()` at the first call with `key` and restarted at
    every later one: it takes the variables of a new model from `build()` (weights, moving
    statistics, dropout's seed state) and its optimizer's initial state back, so it trains
    from scratch without Keras tracing its training step again (~1 s a model on one core).

    The model is shared: read what you need from it before the next call with `key`."""
    if key not in _COMPILED:
        model = make_compiled()
        model.optimizer.build(model.trainable_variables)
        _COMPILED[key] = (model, [v.numpy() for v in model.optimizer.variables])
        return model
    model, state = _COMPILED[key]
    fresh = build()
    for target, source in zip(model.variables, fresh.variables, strict=True):
        target.assign(source)
    for variable, value in zip(model.optimizer.variables, state, strict=True):
        variable.assign(value)
    return model


def forget():
    """Drops the models `reused` keeps (at the end of an experiment)."""
    _COMPILED.clear()
    keras.backend.clear_session()


def train(plan, *, seed=None, bootstrap_seed=None, callbacks=()):
    """Builds, compiles (the plan's loss, metrics, optimizer) and fits the options' model as
    the recipe does, without the run's folder, backups or export; returns (model, history).

    The compiled model is `reused` for every seed of the same options and training size."""
    options = plan.options
    seed = options.seed if seed is None else seed
    keras.utils.set_random_seed(seed)
    key = json.dumps({**options.as_dict(), "seed": None, "n": plan.dataset.train.size})
    model = reused(key, lambda: compiled_model(plan), lambda: build_model(plan))
    batches = augment.augment(
        plan.batches(
            plan.dataset.train, shuffle_seed=seed, bootstrap_seed=bootstrap_seed, repeat=True
        ),
        list(plan.transforms),
        seed,
    )
    history = model.fit(
        batches,
        steps_per_epoch=plan.steps_per_epoch,
        epochs=options.epochs,
        callbacks=list(callbacks),
        shuffle=False,  # the pipeline shuffles, seeded
        verbose=0,
    )
    return model, history.history


def outputs(plan, model, split="test"):
    """(logits, labels) of `model` on a split ("train", "val" or "test")."""
    splits = {
        "train": plan.dataset.train,
        "val": plan.dataset.validation,
        "test": plan.dataset.test,
    }
    return logits_and_labels(plan, model, splits[split])


def figures_of(logits, labels):
    """A classifier's accuracy, ECE and NLL from its logits ([N, K], or [N, 1] binary)."""
    return {
        "accuracy": accuracy(logits, labels),
        "ece": ece(logits, labels),
        "nll": calibration.nll(logits, labels),
    }


def evaluate(plan, model, split="test"):
    """`figures_of` the model on a split."""
    return figures_of(*outputs(plan, model, split))
