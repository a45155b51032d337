"""train.py killed inside each stage (SIGKILL and SIGTERM) and run again, and two copies at
once: the rerun continues at the first unfinished stage and leaves one history, right
metrics, one export and nothing half-written.

A run is stopped at a precise point by the test-only hook `tfnn.recipe.run.fault_point`:
TFNN_FAULT_AT=<point>:<signal> makes the process send itself the signal there ("train":
the middle of the second epoch; "fitted": once Model.fit returned, before the trained
model is written; "evaluate": after training is recorded; "export": after
the SavedModel is written, before it is renamed into place).
"""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys

from tfnn.cli.train import argv

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMALL = {
    "dataset": "breast_cancer",
    "model": "mlp",
    "hidden_layers": (16,),
    "epochs": 4,
    "batch_size": 50,
    "mc_dropout": 0,
    "verbose": 0,
}


def command(tmp_path, **options):
    flags = argv(
        **{
            **SMALL,
            "logdir": str(tmp_path / "logs"),
            "export_dir": str(tmp_path / "out"),
            **options,
        }
    )
    return [sys.executable, str(ROOT / "train.py"), *flags]


def environment(fault=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TFNN_FAULT_AT", None)
    if fault:
        env["TFNN_FAULT_AT"] = fault
    return env


def train(tmp_path, fault=None, **options):
    """Runs train.py to its end (or its fault); returns the CompletedProcess."""
    return subprocess.run(
        command(tmp_path, **options),
        env=environment(fault),
        capture_output=True,
        text=True,
        timeout=300,
    )


def killed(result, signal_number):
    return result.returncode == -signal_number


def run_folders(tmp_path):
    return [p for p in (tmp_path / "logs").iterdir() if not p.name.startswith(".")]


def epochs(folder):
    """How many epochs history.csv holds, after checking that none appears twice (whatever
    the epochs' numbering)."""
    with (folder / "history.csv").open() as file:
        numbers = [row["epoch"] for row in csv.DictReader(file)]
    assert len(set(numbers)) == len(numbers), numbers
    return len(numbers)


def assert_finished_cleanly(tmp_path):
    """One run folder, done, with one row per epoch, metrics agreeing with it, one export and
    no resume state, staging folder or temporary file left."""
    (folder,) = run_folders(tmp_path)
    assert json.loads((folder / "lifecycle.json").read_text())["stage"] == "done"
    assert epochs(folder) == 4
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs"] == metrics["best_epoch"] == 4
    assert metrics["export_path"] == str(tmp_path / "out" / "breast_cancer" / "1")
    base = tmp_path / "out" / "breast_cancer"
    assert sorted(p.name for p in base.iterdir()) == [".highest_version", "1"]
    assert (base / "1" / "saved_model.pb").is_file()
    assert not (tmp_path / "logs" / ".resume").exists()
    leftovers = [p for p in tmp_path.rglob("*") if ".tmp" in p.name or "partial" in p.name]
    assert leftovers == []
    return metrics


def stage(tmp_path):
    (folder,) = run_folders(tmp_path)
    return json.loads((folder / "lifecycle.json").read_text())["stage"]


def test_killed_in_every_stage_the_same_command_finishes_once(tmp_path):
    """One run killed six ways in turn (a chain keeps the suite to a few processes)."""
    # 1. SIGTERM in the second epoch: one history row, the backup of epoch 1.
    stopped = train(tmp_path, fault="train:SIGTERM")
    assert killed(stopped, signal.SIGTERM), stopped.stderr
    (folder,) = run_folders(tmp_path)
    assert epochs(folder) == 1 and stage(tmp_path) == "prepared"

    # 2. SIGKILL in the same epoch again, after resuming: still one row, not two.
    stopped = train(tmp_path, fault="train:SIGKILL")
    assert killed(stopped, signal.SIGKILL), stopped.stderr
    assert epochs(folder) == 1

    # 3. The backup made unreadable (what a kill during its write leaves); killed once the
    #    fit returned, before the trained model is written.
    (backup,) = (tmp_path / "logs" / ".resume").glob("*/backup/latest.weights.h5")
    backup.write_bytes(backup.read_bytes()[:100])
    stopped = train(tmp_path, fault="fitted:SIGKILL")
    assert killed(stopped, signal.SIGKILL), stopped.stderr
    assert "unreadable; moved to" in stopped.stderr
    assert epochs(folder) == 4 and stage(tmp_path) == "prepared"
    fitted = (folder / "history.csv").stat().st_mtime_ns

    # 4. The kept backup restored, no epoch trained again (history.csv untouched); killed
    #    once trained.
    stopped = train(tmp_path, fault="evaluate:SIGKILL")
    assert killed(stopped, signal.SIGKILL), stopped.stderr
    assert (folder / "history.csv").stat().st_mtime_ns == fitted
    assert epochs(folder) == 4 and stage(tmp_path) == "trained"

    # 5. Evaluation runs on the kept model, not a new one; killed with the export written
    #    but not yet renamed into place.
    stopped = train(tmp_path, fault="export:SIGTERM")
    assert killed(stopped, signal.SIGTERM), stopped.stderr
    assert "trained earlier" in stopped.stderr and stage(tmp_path) == "evaluated"
    assert list((tmp_path / "out" / "breast_cancer").glob(".staging-*"))
    evaluated = json.loads((folder / "lifecycle.json").read_text())

    # 6. The export again, and done: version 1, the staging folder gone, no epoch twice.
    result = train(tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = assert_finished_cleanly(tmp_path)
    assert metrics["val"] == evaluated["val"] and metrics["test"] == evaluated["test"]


def test_a_second_identical_command_exits_2_naming_the_running_one(tmp_path):
    first = subprocess.Popen(
        command(tmp_path),
        env=environment("train:SIGSTOP"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _, status = os.waitpid(first.pid, os.WUNTRACED)  # returns once it has stopped itself
        assert os.WIFSTOPPED(status)
        second = train(tmp_path)
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert lines[-1].startswith("train.py: error: Expected no other process")
        assert f"held by pid {first.pid}" in lines[-1]
        assert "Traceback" not in second.stderr
        (folder,) = run_folders(tmp_path)
        assert epochs(folder) == 1  # the second wrote nothing
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert_finished_cleanly(tmp_path)
