"""What every experiment shares: its size, the seeds loop, the measurements' keys, the
figures of a classifier, and writing figures, their data and a result.

An experiment module defines NAME, ITEM (docs/lecture.md's code), CLAIM (one line) and
`run(size, folder)`, which returns a `Result`; `tfnn.experiments.run_experiments` times it
and writes `<folder>/result.json`, from which the report is written.

No TensorFlow here, nor at the top of an experiment module: the parent of a pool's workers
imports them to replay the experiments (`measured`) and draw their figures, and imports no
TensorFlow. Training and evaluating through the recipe's pieces are in
`tfnn.experiments.training`, which `common.train`, `common.plan_of`, … reach (module
`__getattr__`, PEP 562) and import on first use, where a measurement runs; an experiment's
measurement functions import what else they need of TensorFlow (keras, tfnn's layers) inside.
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# The names of `tfnn.experiments.training` read through this module.
TRAINING = frozenset(
    {
        "dataset",
        "evaluate",
        "EpochFigures",
        "figures_of",
        "forget",
        "kernels",
        "mlp_plan",
        "outputs",
        "plan_of",
        "reused",
        "train",
    }
)


def __getattr__(name):
    """`tfnn.experiments.training`'s `name` (TensorFlow imported then), for the names in
    TRAINING."""
    if name in TRAINING:
        from tfnn.experiments import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    from tfnn.experiments import training

    training.forget()
    start = time.perf_counter()
    size = Size(quick=call.quick)
    figures = [call.measure(seed, size, *call.args) for seed in size.seeds]
    return figures, time.perf_counter() - start


def gather(runs, key):
    """The list of `key` over the runs of `over_seeds`."""
    return [run[key] for run in runs]


def accuracy(logits, labels):
    """The share of argmax_k z_k equal to the label ([N, K] logits; [N, 1]: z > 0 is class 1)."""
    logits = np.asarray(logits)
    if logits.shape[1] == 1:
        predicted = (logits[:, 0] > 0).astype(np.int64)
    else:
        predicted = logits.argmax(axis=1)
    return float(np.mean(predicted == np.asarray(labels).reshape(-1)))


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
