"""The lecture's claims about effects, measured: one small module per experiment, one report.

    python -m tfnn.experiments [NAME ...] [--quick] [--out DIR]

Each module states one claim (CLAIM) about a lecture item (ITEM, docs/lecture.md's code),
runs what it needs over several seeds through the recipe's pieces or a few lines of Keras,
draws its figures (PNG, with the values drawn as JSON beside them), and decides from the
measurement whether the claim is supported. `run_experiments` writes each experiment into
`<out>/<name>/` and regenerates `<out>/README.md` from every result there.

No TensorFlow import here: the command line checks its arguments first.
"""

import importlib
import json
import os
import pathlib
import pickle
import shutil
import sys
import time

from tfnn import files, validation

# The experiments, in the report's order (the lecture's order within each part).
NAMES = (
    "init",
    "saturation",
    "clipping",
    "penalties",
    "dropout",
    "augmentation",
    "ensembles",
    "batchnorm",
    "convolution",
    "calibration",
)

# The experiments by their full-size seconds, longest first (measured on the project's 2-core
# machine, 2026-12-07: experiments/*/result.json): the order a pool starts them in. Each
# experiment's next measurement goes ahead of the others waiting, so the experiments finish
# one after another, longest first, and the last ones, the shortest, leave a worker idle
# for the least time.
LONGEST_FIRST = (
    "batchnorm",
    "penalties",
    "ensembles",
    "init",
    "dropout",
    "augmentation",
    "calibration",
    "convolution",
    "clipping",
    "saturation",
)

# In an experiment's folder from its start, holding its name: the folder is tfnn's, and
# replaced by a run, even when stopped before its result.json was written.
MARK = ".experiment"

# The first line of the report tfnn writes (tfnn.experiments.report): a README.md that
# starts otherwise is the user's, and is not overwritten.
REPORT_TITLE = "# The lecture's claims, measured"


def check_out(names, out):
    """Refuses (ValueError naming it) an empty `out`, an `out`/<name> that is not an empty
    folder or one holding that experiment's result.json (or MARK, when it was stopped), and
    an `out`/README.md that is not the report tfnn writes: running would delete or overwrite
    the user's files."""
    validation.path("out", out)
    for name in names:
        folder = pathlib.Path(out, name)
        if not folder.exists() and not folder.is_symlink():
            continue
        if folder.is_dir() and not folder.is_symlink():
            if not any(folder.iterdir()) or name in (
                _result_of(folder / "result.json"),
                _read(folder / MARK),  # one begun and stopped (a measurement missing, killed)
            ):
                continue
        raise ValueError(
            f"Expected {name}'s folder empty or holding its result.json (the run replaces "
            f"it). Received: {str(folder)!r}"
        )
    readme = pathlib.Path(out, "README.md")
    if readme.exists() or readme.is_symlink():
        try:
            with readme.open() as file:
                first = file.readline().rstrip("\n")
        except (OSError, UnicodeDecodeError):
            first = None
        if first != REPORT_TITLE:
            raise ValueError(
                f"Expected README.md the report written here (starting {REPORT_TITLE!r}): the "
                f"run rewrites it. Received: {str(readme)!r}"
            )


def _read(path):
    """The text of `path` stripped, or None."""
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _result_of(path):
    """The experiment name in the result.json at `path`, or None."""
    try:
        return json.loads(path.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def command(names, quick):
    """The command line that reruns `names` (all of them when they are all)."""
    chosen = [] if tuple(names) == NAMES else list(names)
    return " ".join(["python -m tfnn.experiments", *chosen, *(["--quick"] if quick else [])])


def run_experiments(names, *, quick=False, out="experiments", log=print, workers=None):
    """Runs the experiments `names` at the quick or full size into `out`; returns their
    results ({name: result dict}) after regenerating `out`/README.md.

    `workers`: processes measuring at once (`tfnn.recipe.pool`; None: one a CPU). Every
    (experiment, configuration, seed) is one measurement; the results are those of one
    worker, which runs everything here, one experiment after another. A measurement that
    fails fails its experiment only: the others are written, then `ItemsFailed` names it;
    the measurements finished are kept in `out`/.measured/ until every experiment is written,
    so the same call again measures only what is missing.
    """
    check_out(names, out)
    from tfnn.experiments import common, report
    from tfnn.recipe import pool

    size = common.Size(quick=quick)
    count = pool.counted(workers, items=None)
    if count == 1:
        results = {}
        for name in names:
            start = time.perf_counter()
            results[name] = _write(
                name, size, out, log, lambda module, folder: module.run(size, folder), start
            )
            common.forget()
        report.write(out)
        return results
    return _run_in_pool(names, size, out, log, count)


def _write(name, size, out, log, run, start):
    """Runs experiment `name` through `run(module, folder)` into a fresh `out`/<name>/ and
    writes its result.json; returns the result dict. `start`: the perf_counter its time
    counts from."""
    from tfnn.experiments import common

    module = importlib.import_module(f"tfnn.experiments.{name}")
    folder = pathlib.Path(out, name)
    shutil.rmtree(folder, ignore_errors=True)  # no figure of an earlier run stays behind
    folder.mkdir(parents=True)
    files.write_atomically(folder / MARK, name + "\n")
    result = run(module, folder)
    seconds = time.perf_counter() - start
    written = {
        "name": name,
        "item": module.ITEM,
        "title": module.TITLE,
        "claim": module.CLAIM,
        "verdict": "supported" if result.supported else "not supported",
        "evidence": result.evidence,
        "notes": result.notes,
        "columns": result.columns,
        "rows": result.rows,
        "figures": result.figures,
        "quick": size.quick,
        "seeds": list(size.seeds),
        "seconds": round(seconds, 1),
        "cores": len(os.sched_getaffinity(0)),
        "command": command([name], size.quick),
    }
    text = json.dumps(common.jsonable(written), indent=1)
    files.write_atomically(folder / "result.json", text + "\n")
    log(f"{name}: {written['verdict']} ({seconds:.0f} s)", file=sys.stderr)
    return written


def _run_in_pool(names, size, out, log, count):
    """The experiments on one pool whose workers stay to the end: each experiment runs as
    far as its measurements are there, the one it needs next is measured on the pool, and
    as each measurement finishes the experiments waiting for it run again, until none is
    missing. The figures are the same as one process's: each measurement's depend on its
    seed and configuration only. An experiment's seconds are its measurements' plus its own.
    """
    from tfnn.experiments import common, report
    from tfnn.recipe import errors, pool

    store = pathlib.Path(out, ".measured")
    store.mkdir(parents=True, exist_ok=True)
    files.remove_temporaries(store)  # a measurement whose write a kill interrupted
    measured = {path.stem: pickle.loads(path.read_bytes()) for path in store.glob("*.pickle")}
    results, failures = {}, {}
    waiting = {}  # key of a measurement running → the experiments that need it
    keys = {}  # pool item name → key of its measurement

    def attempt(name):
        """Writes experiment `name` if it has every measurement; else the calls it needs."""
        read = []

        def run(module, folder):
            figures = {key: value for key, (value, _) in measured.items()}
            with common.measured(figures, read=read):
                return module.run(size, folder)

        try:
            results[name] = _write(name, size, out, log, run, time.perf_counter())
        except common.Missing as missing:
            return missing.calls
        measuring = sum(measured[key][1] for key in set(read))
        results[name]["seconds"] = round(results[name]["seconds"] + measuring, 1)
        _rewrite(results[name], out)
        return []

    def keep(key, outcome):
        measured[key] = outcome
        with files.replacing(store / f"{key}.pickle") as temporary:
            temporary.write_bytes(pickle.dumps(outcome))

    with pool.Pool(count, describe=lambda outcome: f"{outcome[1]:.0f} s") as running:
        ready = sorted(names, key=_longest_first)
        first = False  # the first measurements in that order; each next one ahead of them
        while True:
            for name in ready:
                for call in attempt(name):
                    if call.key not in waiting:
                        keys[call.name] = call.key
                        item = pool.Item(
                            call.name,
                            common.measure_call,
                            {"call": call},
                            log=str(store / f"{call.key}.log"),
                        )
                        running.submit(item, first=first)
                    waiting.setdefault(call.key, []).append(name)
            first = True
            outcome = running.next_outcome()
            if outcome is None:
                break
            item_name, error, result = outcome
            needing = waiting.pop(keys[item_name])
            if error is not None:  # the experiments that need it fail; the others go on
                failures[item_name] = error
                ready = []
                continue
            keep(keys[item_name], result)
            ready = needing
    report.write(out)
    if failures:
        raise errors.ItemsFailed(failures)
    shutil.rmtree(store)
    return {name: results[name] for name in names}


def _longest_first(name):
    """`name`'s place in LONGEST_FIRST (an experiment not listed there: after them)."""
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def _rewrite(result, out):
    """Writes `result` again as its result.json (after its seconds changed)."""
    from tfnn.experiments import common

    text = json.dumps(common.jsonable(result), indent=1)
    files.write_atomically(pathlib.Path(out, result["name"], "result.json"), text + "\n")
