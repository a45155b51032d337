"""Fixtures of the recipe's tests: a TFDS folder, a small in-process run, an epoch counter, the
plan of a tiny in-memory data set, the ensemble stage's pool run here."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfnn
from tfnn import data
from tfnn.recipe import ensembles, pool
from tfnn.recipe import run as runs
from tfnn.recipe.options import Options
from tfnn.recipe.plan import make_plan

# A small MLP that trains in seconds; each test names what it changes.
SMALL = {
    "model": "mlp",
    "hidden_layers": (64,),
    "init": "glorot",
    "batch_size": 50,
    "epochs": 4,
    "learning_rate": 0.01,
    "label_smoothing": 0.0,
    "verbose": 0,
    "workers": 1,  # an ensemble's members in this process (tests/recipe/test_ensembles.py: 2)
}
# SMALL for a CNN: without the MLP's options, which the CNN refuses.
CNN_SMALL = {k: v for k, v in SMALL.items() if k != "hidden_layers"}


def small(**options):
    """SMALL (or CNN_SMALL) updated by `options`, without `workers` where it has no effect."""
    base = SMALL if options.get("model", "mlp") == "mlp" else CNN_SMALL
    merged = {**base, **options}
    if merged.get("ensemble", 1) == 1 or merged.get("ensemble_kind") == "checkpoints":
        merged.pop("workers")
    return merged


@pytest.fixture
def run(tmp_path, data_dir):
    """Runs `tfnn.train` with SMALL updated by the given options; returns (metrics, run folder)."""

    def run_train(callbacks=(), logdir="logs", **options):
        metrics = tfnn.train(
            callbacks=callbacks,
            **small(
                data_dir=data_dir,
                logdir=str(tmp_path / logdir),
                export_dir=str(tmp_path / "saved_models"),
                **options,
            ),
        )
        return metrics, pathlib.Path(metrics["run"])

    return run_train


class CountEpochs(keras.callbacks.Callback):
    """Counts the epochs all the fits it is given to train (`epochs`)."""

    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


@pytest.fixture
def epoch_counter():
    """A Keras callback counting the epochs a run trains, over all its fits (`.epochs`)."""
    return CountEpochs()


@pytest.fixture
def tiny_plan():
    """Makes a plan (`make_plan`) in this process over a tiny data set drawn with seed 0: 4
    features; 20 training, 10 validation and 12 test examples (the splits' sizes differ, so one
    taken for another shows); 3 classes, or one target with `task=data.REGRESSION`. The model is
    an MLP of 4 units, batches of 10, one epoch, quiet; `options` change any of it."""

    def make(task=data.CLASSES, **options):
        rng = np.random.default_rng(0)

        def split(n):
            x = rng.normal(size=(n, 4)).astype(np.float32)
            y = rng.integers(0, 3, n) if task == data.CLASSES else rng.normal(size=n)
            return data.Arrays(x, y)

        outputs = 3 if task == data.CLASSES else 1
        dataset = data.DataSet("tiny", data.Task(task, outputs), split(20), split(10), split(12))
        defaults = {
            "model": "mlp",
            "hidden_layers": (4,),
            "batch_size": 10,
            "epochs": 1,
            "verbose": 0,
        }
        if task == data.CLASSES:
            defaults["label_smoothing"] = 0.0
        checked = Options(**{**defaults, **options})
        return make_plan(checked, dataset, tf.distribute.get_strategy())

    return make


@pytest.fixture
def run_folder():
    """Makes the run folder `base`/run with its resume folder `base`/resume (neither made)."""

    def make(base):
        return runs.RunFolder(base / "run", base / "resume")

    return make


@pytest.fixture
def pool_here(monkeypatch):
    """The pool stood in for by one that runs its items here, in order (one that raises fails
    alone, as on a worker), each with the test's plan and folder (`pool_here.plan`, set by the
    test) where a worker would prepare them from the options; `pool_here.pools` holds each
    pool's (workers, start, describe, here) and `pool_here.items` every item submitted."""

    class Here(pool.Pool):
        pools, items, plan = [], [], None

        def __init__(self, workers, *, start, describe, here):
            Here.pools.append((workers, start, describe, here))
            super().__init__(1, start=None, describe=describe, here=True)

        def submit(self, item):
            Here.items.append(item)
            super().submit(item)

        def next_outcome(self):  # an item that raises fails alone, as on a worker
            name = self._pending[0].name if self._pending else None
            try:
                return super().next_outcome()
            except Exception as error:
                return self._finished(name, pool._last_line(error), None)

    def worker_run(options, path, resume):
        assert options == Here.plan.options.as_dict()
        return Here.plan, runs.RunFolder(pathlib.Path(path), pathlib.Path(resume))

    monkeypatch.setattr(ensembles.pool, "Pool", Here)
    monkeypatch.setattr(ensembles.pool, "cpus", lambda: 2)
    monkeypatch.setattr(ensembles, "_worker_run", worker_run)
    return Here
