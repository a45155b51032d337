"""What every experiment shares: its size, the seeds loop, training through the recipe's
pieces, the figures of a classifier, and writing figures, their data and a result.

An experiment module defines NAME, ITEM (docs/lecture.md's code), CLAIM (one line) and
`run(size, folder)`, which returns a `Result`; `tfnn.experiments.run_experiments` times it
and writes `<folder>/result.json`, from which the report is written.
"""

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import time

import keras
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfnn import calibration, data  # noqa: E402
from tfnn.data import augment  # noqa: E402
from tfnn.recipe.evaluate import ece, logits_and_labels  # noqa: E402
from tfnn.recipe.fit import build_model, compiled_model  # noqa: E402
from tfnn.recipe.options import Options  # noqa: E402
from tfnn.recipe.plan import make_plan  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Size:
    """How big an experiment runs: `quick` (the tests' size, ~10 s each on one core, 3 seeds)
    or the full one (5 seeds)."""

    quick: bool

    @property
    def seeds(self):
        return (1, 2, 3) if self.quick else (1, 2, 3, 4, 5)

    def pick(self, quick, full):
        """`quick` in the quick size, else `full`."""
        return quick if self.quick else full


@dataclasses.dataclass
class Result:
    """What an experiment found. `table` rows map column → a number, a string or the values
    over seeds (shown as mean ± std); `supported` is computed from the measurement, and
    `evidence` says from which figures."""

    supported: bool
    evidence: str
    columns: list
    rows: list
    figures: list
    notes: str = ""


def mean_std(values):
    """(mean, sample standard deviation) of the values over seeds."""
    values = np.asarray(values, dtype=np.float64)
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return float(values.mean()), std


def mean(values):
    return mean_std(values)[0]


def over_seeds(size, measure, *args):
    """[measure(seed, size, *args) for each seed]; measure returns a dict of figures.

    Inside `measured(results)` the figures are read from `results` instead, and a
    measurement not there yet is raised as `Missing`."""
    if _MEASURED is None:
        return [measure(seed, size, *args) for seed in size.seeds]
    call = Call(measure, size.quick, args)
    if call.key not in _MEASURED:
        raise Missing([call])
    _READ.append(call.key)
    return _MEASURED[call.key]


@dataclasses.dataclass(frozen=True)
class Call:
    """One configuration's measurements: `measure(seed, Size(quick), *args)` over the seeds,
    in order, as `over_seeds` makes them and a pool item repeats them.

    One item a configuration, not a seed: a compiled model `reused` for the next seed does
    not train to the same bits as a new one, so the seeds of a configuration run in one
    process, in order, from a new one, as in a plain loop."""

    measure: object
    quick: bool
    args: tuple

    @property
    def key(self):
        """The name under which its figures are kept."""
        text = json.dumps(
            [self.measure.__module__, self.measure.__qualname__, self.quick, jsonable(self.args)]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def name(self):
        """What the progress lines call it: `dropout measure(0.5)`."""
        experiment = self.measure.__module__.rpartition(".")[2]
        return f"{experiment} {self.measure.__name__}({', '.join(map(repr, self.args))})"


class Missing(Exception):
    """Measurements an experiment needs that `measured`'s results do not hold yet."""

    def __init__(self, calls):
        super().__init__(f"{len(calls)} measurements missing")
        self.calls = calls


_MEASURED = None  # inside `measured`: {Call.key: figures over the seeds} over_seeds reads
_READ = []  # inside `measured`: the keys over_seeds read


@contextlib.contextmanager
def measured(results, *, read):
    """Within it, `over_seeds` reads `results` ({Call.key: figures over the seeds}) instead of
    measuring, and appends the keys it read to the list `read`."""
    global _MEASURED, _READ
    _MEASURED, _READ = results, read
    try:
        yield
    finally:
        _MEASURED, _READ = None, []


def measure_call(*, call):
    """A pool item: the figures of `call` (a `Call`) over the seeds, and their seconds, from
    no compiled model (as at an experiment's start)."""
    forget()
    start = time.perf_counter()
    size = Size(quick=call.quick)
    figures = [call.measure(seed, size, *call.args) for seed in size.seeds]
    return figures, time.perf_counter() - start


def kernels(model):
    """The model's kernels (weight matrices and convolution kernels) as numpy arrays."""
    return [layer.kernel.numpy() for layer in model.layers if hasattr(layer, "kernel")]


def gather(runs, key):
    """The list of `key` over the runs of `over_seeds`."""
    return [run[key] for run in runs]


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


def accuracy(logits, labels):
    """The share of argmax_k z_k equal to the label ([N, K] logits; [N, 1]: z > 0 is class 1)."""
    logits = np.asarray(logits)
    if logits.shape[1] == 1:
        predicted = (logits[:, 0] > 0).astype(np.int64)
    else:
        predicted = logits.argmax(axis=1)
    return float(np.mean(predicted == np.asarray(labels).reshape(-1)))


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


def reliability(probabilities, labels, bins=10):
    """Per equal-width confidence bin (b/M, (b+1)/M]: [count, summed confidence, number
    correct], which add up over seeds; `reliability_points` turns them into a diagram."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    return [
        [
            int(np.sum(index == b)),
            float(confidence[index == b].sum()),
            int(correct[index == b].sum()),
        ]
        for b in range(bins)
    ]


def reliability_points(tables):
    """(mean confidence, accuracy, count) of each non-empty bin of the summed `tables`."""
    count, confidence, correct = np.sum(np.asarray(tables, dtype=np.float64), axis=0).T
    kept = count > 0
    return confidence[kept] / count[kept], correct[kept] / count[kept], count[kept]


def save_figure(figure, folder, name, values):
    """Writes `<name>.png` and `<name>.json` (the values drawn) into `folder`; returns the
    PNG's file name."""
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / f"{name}.png", dpi=90)
    plt.close(figure)
    (folder / f"{name}.json").write_text(json.dumps(jsonable(values), indent=1) + "\n")
    return f"{name}.png"


def jsonable(value):
    """`value` with numpy numbers as Python's and non-finite floats as strings (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else str(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def band(axis, x, runs, label, **style):
    """Draws the mean over seeds of `runs` ([seeds, len(x)]) with a ±1 std band."""
    runs = np.asarray(runs, dtype=np.float64)
    if np.all(np.isnan(runs)):
        return None
    centre = np.nanmean(runs, axis=0)
    spread = np.nanstd(runs, axis=0, ddof=1) if len(runs) > 1 else np.zeros_like(centre)
    (line,) = axis.plot(x, centre, label=label, **style)
    axis.fill_between(x, centre - spread, centre + spread, color=line.get_color(), alpha=0.2)
    return line


def subplots(columns, rows=1, width=4.2, height=3.4):
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(width * columns, height * rows),
        squeeze=False,
        constrained_layout=True,
    )
    return figure, axes
