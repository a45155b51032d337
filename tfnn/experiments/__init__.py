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


def run_experiments(names, *, quick=False, out="experiments", log=print):
    """Runs the experiments `names` at the quick or full size into `out`; returns their
    results ({name: result dict}) after regenerating `out`/README.md."""
    from tfnn.experiments import common, report

    size = common.Size(quick=quick)
    results = {}
    for name in names:
        module = importlib.import_module(f"tfnn.experiments.{name}")
        folder = pathlib.Path(out, name)
        shutil.rmtree(folder, ignore_errors=True)  # no figure of an earlier run stays behind
        folder.mkdir(parents=True)
        start = time.perf_counter()
        result = module.run(size, folder)
        seconds = time.perf_counter() - start
        common.forget()
        results[name] = {
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
            "quick": quick,
            "seeds": list(size.seeds),
            "seconds": round(seconds, 1),
            "cores": len(os.sched_getaffinity(0)),
            "command": command([name], quick),
        }
        text = json.dumps(common.jsonable(results[name]), indent=1)
        (folder / "result.json").write_text(text + "\n")
        log(f"{name}: {results[name]['verdict']} ({seconds:.0f} s)", file=sys.stderr)
    report.write(out)
    return results
