"""A run's folder, its lifecycle and its lock.

    <logdir>/<time>-<changed options>/    the run folder
        lifecycle.json                    the last finished stage and what it produced
        metrics.json                      validation and test figures, epochs, export path, options
        history.csv                       one row per epoch (Keras's CSVLogger)
        tensorboard/                      TensorBoard logs
        *.png                             pictures of the run
    <logdir>/.resume/<key>/               while the run is unfinished: where its run folder is,
        run_folder, lock                  the lock its process holds, Keras's BackupAndRestore
        backup/, trained.keras            state and the trained model

A run goes through the stages STAGES; the same command reads lifecycle.json and
continues at the first unfinished stage, so a kill during evaluation or export
never retrains. Inside training, lifecycle.json also records each fit that
returned, each ensemble member and each checkpoint snapshot once written whole:
what is done is what is recorded, never a file's mere existence. Keras's backup
of a fit is kept until what the fit trained is written and recorded, so at every
instant the backup or the trained weights are complete. Every file is written
under a temporary name and renamed into place (tfnn.files).

The key is a hash of every option that changes what the run writes (results,
folders, model name), so only an identical command finds it. One process at a
time holds a run (an flock, released by the kernel when the process dies, even
by SIGKILL): a second identical command fails at once with `RunLocked` rather
than waiting, since waiting would only redo finished work.
"""

import csv
import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import signal
import time
import warnings

import h5py

from tfnn import names, validation
from tfnn.files import locked, remove_temporaries, write_atomically
from tfnn.recipe.errors import RunError, RunLocked  # noqa: F401 (raised here)

STAGES = ("prepared", "trained", "evaluated", "exported", "done")
# What lifecycle.json holds besides the stages' facts, to resume a run: not a result.
RUN_STATE = ("fitted", "members", "member_figures", "snapshots", "written_export", "exporting")

# Options that change neither the results nor where they go.
NEUTRAL = ("data_dir", "threads", "verbose", "workers")

FAULT_VARIABLE = "TFNN_FAULT_AT"


def fail(name, value, expected):
    """Raises `RunError` in tfnn.validation's message form."""
    validation.fail(name, value, expected, error=RunError)


def fault_point(name):
    """A test-only hook: when the environment names `name` (TFNN_FAULT_AT=name:SIGNAL), the
    calling thread raises SIGNAL here; tests use it to stop a run at a precise point.

    `signal.raise_signal`, not `os.kill` of the process: a signal sent to the process may be
    delivered to any of its threads (TensorFlow's), later, and the run goes past the point
    before Python's handler runs; raised in the calling thread it is delivered at once."""
    point, _, signal_name = os.environ.get(FAULT_VARIABLE, "").partition(":")
    if point == name:
        signal.raise_signal(getattr(signal, signal_name or "SIGKILL"))


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """Where a run writes (`path`) and keeps its resume state (`resume`); an ensemble
    member's also names its `run` folder, whose lifecycle.json records it."""

    path: pathlib.Path
    resume: pathlib.Path
    run: pathlib.Path | None = None

    @property
    def part(self):
        """This folder's name in the run's lifecycle: "run", or "member-<i>"."""
        return self.path.name if self.run else "run"

    @property
    def history_path(self):
        return self.path / "history.csv"

    @property
    def model_path(self):
        """The trained model, kept until the run is done so later stages never retrain."""
        return self.resume / "trained.keras"

    @property
    def written_export(self):
        """The SavedModel of the trained model written ahead of the export stage (an
        ensemble's, while its pool measured the table): written under another name, renamed
        to this one, then recorded (`record_written_export`)."""
        return self.resume / "export.written"

    def record_written_export(self, written):
        """Records whether `written_export` holds the trained model's SavedModel whole."""
        self._update(lambda state: state.update(written_export=written))

    def has_written_export(self):
        """Whether `written_export` was recorded whole and is still there (an export moves
        it into place)."""
        return bool(self.lifecycle().get("written_export")) and self.written_export.is_dir()

    def history(self):
        """history.csv as {column: [floats]} ({} before the first epoch)."""
        return read_history(self.history_path)

    def member(self, i):
        """The folder of ensemble member `i` (1-based), inside this run's."""
        name = f"member-{i}"
        return RunFolder(self.path / name, self.resume / name, run=self.run or self.path)

    def write_metrics(self, metrics):
        write_atomically(self.path / "metrics.json", json.dumps(metrics, indent=2) + "\n")

    @property
    def backup(self):
        """Keras's BackupAndRestore folder: the fit's last finished epoch, kept after the fit
        until what it trained is recorded (`drop_backup`)."""
        return self.resume / "backup"

    def drop_backup(self):
        """Removes the backup once what the fit trained is written and recorded."""
        shutil.rmtree(self.backup, ignore_errors=True)

    @property
    def lifecycle_path(self):
        return (self.run or self.path) / "lifecycle.json"

    def lifecycle(self):
        """{"stage": the last finished stage, **what the stages recorded}; stage None before
        the first. Besides the stages' facts it holds "fitted" ({part: epochs} of the fits
        that returned, whose backups hold their weights), "members" (the ensemble members
        written whole) and "snapshots" (the checkpoint ensemble's epochs written whole)."""
        path = self.lifecycle_path
        return json.loads(path.read_text()) if path.is_file() else {"stage": None}

    def _update(self, change):
        """Applies `change(state)` to lifecycle.json under an flock of the run folder, so
        processes recording at once (members trained in workers) lose none of each other's
        records."""
        with locked(self.lifecycle_path.parent):
            state = self.lifecycle()
            change(state)
            write_atomically(self.lifecycle_path, json.dumps(state, indent=2) + "\n")

    def record_fitted(self, epochs):
        """Records that this folder's Model.fit returned after `epochs` epochs (None: forgets
        it); a rerun restores the backup and trains no further."""
        part = self.part

        def change(state):
            fitted = state.setdefault("fitted", {})
            if epochs is None:
                fitted.pop(part, None)
            else:
                fitted[part] = epochs

        self._update(change)

    def fitted(self):
        """The epochs of this folder's fit, if it returned (`record_fitted`); else None."""
        return self.lifecycle().get("fitted", {}).get(self.part)

    def record_member(self, i):
        """Records that ensemble member `i`'s weights are written whole: only a recorded
        member is loaded rather than trained again. Call it once the write's rename is done;
        any process may, at any time."""
        self._add("members", i)

    def member_done(self, i):
        """Whether ensemble member `i` was recorded (`record_member`)."""
        return i in self.lifecycle().get("members", [])

    def record_member_figures(self, i, figures):
        """Records ensemble member `i`'s figures (JSON-ready), measured where it trained."""
        self._update(lambda state: state.setdefault("member_figures", {}).update({str(i): figures}))

    def member_figures(self, i):
        """Member `i`'s figures as `record_member_figures` recorded them, or None."""
        return self.lifecycle().get("member_figures", {}).get(str(i))

    def record_snapshot(self, epoch):
        """Records that the checkpoint ensemble's snapshot of `epoch` is written whole."""
        self._add("snapshots", epoch)

    def snapshots_done(self):
        """The epochs whose snapshots were recorded, in order."""
        return self.lifecycle().get("snapshots", [])

    def _add(self, key, item):
        self._update(lambda state: state.update({key: sorted({*state.get(key, []), item})}))

    def done(self, stage):
        """Whether `stage` has finished."""
        last = self.lifecycle()["stage"]
        return last is not None and STAGES.index(last) >= STAGES.index(stage)

    def record(self, stage, **facts):
        """Records that `stage` finished, with `facts` (JSON-ready) added to the earlier ones."""
        self._update(lambda state: state.update({**facts, "stage": stage}))

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


def identity(options):
    """The run's key: a hash of every option that changes its results or where they go
    (paths made absolute, an image folder's too), so runs differing in any of them never
    share a folder."""
    values = {k: v for k, v in options.as_dict().items() if k not in NEUTRAL}
    paths = ["logdir", "export_dir"] + (
        ["dataset"] if names.is_dataset_path(values["dataset"]) else []
    )
    for name in paths:
        values[name] = str(pathlib.Path(values[name]).resolve())
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _lock(resume):
    """Holds the flock of `resume`/lock for the life of the process; raises `RunLocked`
    naming the holder's process id when another process has it."""
    path = resume / "lock"
    while True:
        resume.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode().strip() or "?"
            os.close(fd)
            pointer = resume / "run_folder"
            run = pointer.read_text() if pointer.is_file() else str(resume)
            raise RunLocked(
                f"Expected no other process running this command. Received: "
                f"run={run!r} held by pid {holder}"
            ) from None
        try:  # the holder may have finished and removed the file between open and flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            _HELD[str(resume)] = fd
            return
        os.close(fd)


_HELD = {}  # resume folder → open lock file descriptor (closing it releases the lock)


def release(folder):
    """Releases the run's lock (the process's exit does too)."""
    fd = _HELD.pop(str(folder.resume), None)
    if fd is not None:
        os.close(fd)


def locate(options):
    """The locked `RunFolder` for `options`: the unfinished run of the same command, or a
    new one named from the time and the changed options. Creates both folders.

    Raises:
        RunLocked: another process runs the same command.
    """
    changed = options.changed()
    label = ",".join(f"{k}={_text(v)}" for k, v in changed)
    label = "".join(c if c.isalnum() or c in "=,._-+:" else "_" for c in label)
    logdir = pathlib.Path(options.logdir)
    resume = logdir / ".resume" / identity(options)
    _lock(resume)
    pointer = resume / "run_folder"
    if pointer.is_file() and pathlib.Path(pointer.read_text()).is_dir():
        folder = RunFolder(pathlib.Path(pointer.read_text()), resume)
        _recover_backups(folder)
        return folder
    name = time.strftime("%Y-%m-%d_%H%M%S") + (f"-{label[:150]}" if label else "")
    path = logdir / name
    suffix = 1
    while path.exists():
        suffix += 1
        path = logdir / f"{name}-{suffix}"
    path.mkdir()  # logdir exists: _lock made the resume folder inside it
    write_atomically(pointer, str(path))
    return RunFolder(path, resume)


def unfinished_folder(options):
    """The run folder of the unfinished run of `options` (the one `locate` would resume),
    or None."""
    pointer = pathlib.Path(options.logdir) / ".resume" / identity(options) / "run_folder"
    return pointer.read_text() if pointer.is_file() else None


def _readable(h5):
    try:
        with h5py.File(h5, "r") as file:
            file.visit(lambda name: None)
        return True
    except (OSError, RuntimeError, ValueError):
        return False


def _backup_epoch(backup):
    """The "epoch" a readable BackupAndRestore backup in `backup` records, else None: the
    count of epochs it holds (Keras saves epoch + 1 at an epoch's end and resumes there)."""
    weights = backup / "latest.weights.h5"
    metadata = backup / "training_metadata.json"
    if weights.exists() and _readable(weights) and metadata.is_file():
        try:
            return json.loads(metadata.read_text())["epoch"]
        except (ValueError, KeyError):
            return None
    return None


def resumed_epoch(folder):
    """The 0-based epoch at which Keras's BackupAndRestore resumes the fit in `folder`: the
    epochs its backup has finished (Keras records that count as "epoch"); 0 without one."""
    return _backup_epoch(folder.backup) or 0


def _recover_backups(folder):
    """Removes the temporaries of writes a kill interrupted, moves an unreadable
    BackupAndRestore backup aside (a kill during its write leaves a broken HDF5 file) and
    trims history.csv to the epochs the backup holds, so the resumed fit neither crashes
    nor writes an epoch twice. A fit recorded as returned whose backup is unusable is
    forgotten: it trains again."""
    remove_temporaries(folder.path)
    remove_temporaries(folder.resume)
    if folder.done("trained"):
        return
    members = sorted(int(p.name.removeprefix("member-")) for p in folder.path.glob("member-*"))
    unfinished = [folder.member(i) for i in members if not folder.member_done(i)]
    for each in [folder, *unfinished]:
        backup = each.backup
        epochs = _backup_epoch(backup)  # the epochs it holds, Keras's count; None: unusable
        if backup.exists() and epochs is None:
            aside = each.resume / f"unreadable-backup-{time.strftime('%Y%m%d_%H%M%S')}"
            os.replace(backup, aside)
            warnings.warn(
                f"the resume backup {backup} is unreadable; moved to {aside}, "
                "training restarts from its first epoch",
                stacklevel=3,
            )
        if not epochs and each.fitted() is not None:
            each.record_fitted(None)
        trim_history(each.history_path, epochs or 0)


def trim_history(path, epochs):
    """Keeps the header and the first `epochs` complete rows of a CSVLogger file."""
    path = pathlib.Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    complete = [line for line in lines if line.endswith("\n")]
    kept = complete[: 1 + epochs] if epochs else []
    if kept != lines:
        if kept:
            write_atomically(path, "".join(kept))
        else:
            path.unlink()


def check_writable(name, value, need_bytes=0):
    """Creates the folder `value` (option `name`) and checks that it takes a file and has
    `need_bytes` free; raises `RunError` (one line) otherwise."""
    path = pathlib.Path(value)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        fail(name, value, f"a folder this process can write ({error.strerror})")
    free = shutil.disk_usage(path).free
    if free < need_bytes:
        fail(name, value, f"{need_bytes / 1e6:.0f} MB free for the run (it has {free / 1e6:.0f})")


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
