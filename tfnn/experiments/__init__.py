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
    from tfnn.experiments import common, report
    from tfnn.recipe import pool

    size = common.Size(quick=quick)
    if (workers or pool.cpus()) == 1:
        results = {}
        for name in names:
            start = time.perf_counter()
            results[name] = _write(
                name, size, out, log, lambda module, folder: module.run(size, folder), start
            )
            common.forget()
        report.write(out)
        return results
    return _run_in_pool(names, size, out, log, workers)


def _write(name, size, out, log, run, start):
    """Runs experiment `name` through `run(module, folder)` into a fresh `out`/<name>/ and
    writes its result.json; returns the result dict. `start`: the perf_counter its time
    counts from."""
    from tfnn.experiments import common

    module = importlib.import_module(f"tfnn.experiments.{name}")
    folder = pathlib.Path(out, name)
    shutil.rmtree(folder, ignore_errors=True)  # no figure of an earlier run stays behind
    folder.mkdir(parents=True)
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
    (folder / "result.json").write_text(text + "\n")
    log(f"{name}: {written['verdict']} ({seconds:.0f} s)", file=sys.stderr)
    return written


def _run_in_pool(names, size, out, log, workers):
    """The experiments in rounds: each runs as far as its measurements are there; the ones it
    needs next are measured on the pool; until none is missing. The figures are the same as
    one process's: each measurement's depend on its seed and configuration only. An
    experiment's seconds are its measurements' plus its own."""
    from tfnn.experiments import common, report
    from tfnn.recipe import errors, pool

    store = pathlib.Path(out, ".measured")
    store.mkdir(parents=True, exist_ok=True)
    measured = {path.stem: pickle.loads(path.read_bytes()) for path in store.glob("*.pickle")}
    results, failures, failed = {}, {}, set()
    while True:
        calls = {}  # key → (experiment, Call) of the measurements needed next
        for name in names:
            if name in results or name in failed:
                continue
            read = []

            def run(module, folder, read=read):
                figures = {key: value for key, (value, _) in measured.items()}
                with common.measured(figures, read=read):
                    return module.run(size, folder)

            try:
                results[name] = _write(name, size, out, log, run, time.perf_counter())
            except common.Missing as missing:
                calls.update({call.key: (name, call) for call in missing.calls})
                continue
            measuring = sum(measured[key][1] for key in set(read))
            results[name]["seconds"] = round(results[name]["seconds"] + measuring, 1)
            _rewrite(results[name], out)
        if not calls:
            break
        keys = {call.name: key for key, (_, call) in calls.items()}

        def keep(item, outcome, keys=keys):
            measured[keys[item]] = outcome
            temporary = store / f".{keys[item]}.tmp"
            temporary.write_bytes(pickle.dumps(outcome))
            os.replace(temporary, store / f"{keys[item]}.pickle")

        items = [
            pool.Item(call.name, common.measure_call, {"call": call}, log=str(store / f"{k}.log"))
            for k, (_, call) in calls.items()
        ]
        try:
            pool.run(items, workers=workers, on_result=keep, describe=lambda o: f"{o[1]:.0f} s")
        except errors.ItemsFailed as error:
            failures.update(error.failures)
            failed.update(calls[keys[item]][0] for item in error.failures)
    report.write(out)
    if failures:
        raise errors.ItemsFailed(failures)
    shutil.rmtree(store)
    return {name: results[name] for name in names}


def _rewrite(result, out):
    """Writes `result` again as its result.json (after its seconds changed)."""
    from tfnn.experiments import common

    text = json.dumps(common.jsonable(result), indent=1)
    pathlib.Path(out, result["name"], "result.json").write_text(text + "\n")
