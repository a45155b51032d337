"""A run's folder and the files in it.

    <logdir>/<time>-<changed options>/    the run folder
        metrics.json                      validation and test figures, epochs, export path, options
        history.csv                       one row per epoch (Keras's CSVLogger)
        tensorboard/                      TensorBoard logs
        *.png                             pictures of the run
    <logdir>/.resume/<key>/               while the run is unfinished: where its run folder is,
                                          and Keras's BackupAndRestore state

The key is a hash of the result-changing options, so the same command finds
its unfinished run and continues it in the same folder.
"""

import csv
import dataclasses
import hashlib
import json
import pathlib
import shutil
import time


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """Where a run writes (`path`) and keeps its resume state (`resume`)."""

    path: pathlib.Path
    resume: pathlib.Path

    @property
    def history_path(self):
        return self.path / "history.csv"

    def history(self):
        """history.csv as {column: [floats]} ({} before the first epoch)."""
        return read_history(self.history_path)

    def member(self, i):
        """The folder of ensemble member `i` (1-based), inside this run's."""
        return RunFolder(self.path / f"member-{i}", self.resume / f"member-{i}")

    def write_metrics(self, metrics):
        (self.path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    def finish(self):
        """Forgets the resume state: a later identical command starts a new run."""
        shutil.rmtree(self.resume, ignore_errors=True)
        parent = self.resume.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _text(value):
    if isinstance(value, dict):  # augment: translate:0.1+flip
        return "+".join(k if v is True else f"{k}:{v}" for k, v in value.items())
    return "_".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def locate(options):
    """The `RunFolder` for `options`: an unfinished run with the same options, or a new one
    named from the time and the changed options. Creates both folders."""
    changed = options.changed()
    label = ",".join(f"{k}={_text(v)}" for k, v in changed)
    label = "".join(c if c.isalnum() or c in "=,._-+:" else "_" for c in label)
    key = hashlib.sha256(repr(sorted((k, str(v)) for k, v in changed)).encode()).hexdigest()[:16]
    logdir = pathlib.Path(options.logdir)
    resume = logdir / ".resume" / key
    pointer = resume / "run_folder"
    if pointer.is_file() and pathlib.Path(pointer.read_text()).is_dir():
        return RunFolder(pathlib.Path(pointer.read_text()), resume)
    name = time.strftime("%Y-%m-%d_%H%M%S") + (f"-{label[:150]}" if label else "")
    path = logdir / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = logdir / f"{name}-{suffix}"
    path.mkdir(parents=True)
    resume.mkdir(parents=True, exist_ok=True)
    pointer.write_text(str(path))
    return RunFolder(path, resume)


def read_history(path):
    """A Keras CSVLogger file as {column: [floats]}."""
    path = pathlib.Path(path)
    if not path.is_file():
        return {}
    with path.open() as file:
        rows = list(csv.DictReader(file))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}


def best(values, mode):
    """(1-based epoch, value) of the best of `values`: the highest for mode "max"."""
    value = (max if mode == "max" else min)(values)
    return values.index(value) + 1, value
