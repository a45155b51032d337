"""train.py killed inside each stage (SIGKILL and SIGTERM) and run again, and two copies at
once: the rerun continues at the first unfinished stage and leaves one history, right
metrics, one export and nothing half-written.

A run is stopped at a precise point by the test-only hook `tfnn.recipe.run.fault_point`:
TFNN_FAULT_AT=<point>:<signal> makes the process send itself the signal there ("train":
the middle of the second epoch; "evaluate": after training is recorded; "export": after
the SavedModel is written, before it is renamed into place).
"""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

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
    with (folder / "history.csv").open() as file:
        return [row["epoch"] for row in csv.DictReader(file)]


def assert_finished_cleanly(tmp_path):
    """One run folder, done, with one row per epoch, metrics agreeing with it, one export and
    no resume state, staging folder or temporary file left."""
    (folder,) = run_folders(tmp_path)
    assert json.loads((folder / "lifecycle.json").read_text())["stage"] == "done"
    assert epochs(folder) == ["0", "1", "2", "3"]
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


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The metrics of the same command run without a fault."""
    tmp_path = tmp_path_factory.mktemp("reference")
    result = train(tmp_path)
    assert result.returncode == 0, result.stderr
    return assert_finished_cleanly(tmp_path)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGKILL])
def test_killed_in_training_resumes_without_repeating_an_epoch(tmp_path, signal_number):
    stopped = train(tmp_path, fault=f"train:{signal_number.name}")
    assert killed(stopped, signal_number), stopped.stderr
    (folder,) = run_folders(tmp_path)
    assert epochs(folder) == ["0"]  # the second epoch was under way
    result = train(tmp_path)
    assert result.returncode == 0, result.stderr
    assert_finished_cleanly(tmp_path)


def test_an_unreadable_backup_is_moved_aside_and_the_run_restarts(tmp_path):
    stopped = train(tmp_path, fault="train:SIGKILL")
    assert killed(stopped, signal.SIGKILL)
    (backup,) = (tmp_path / "logs" / ".resume").glob("*/backup/latest.weights.h5")
    backup.write_bytes(backup.read_bytes()[:100])  # a kill during the backup's write
    result = train(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "unreadable; moved to" in result.stderr
    assert_finished_cleanly(tmp_path)


@pytest.mark.parametrize(
    "point, signal_number", [("evaluate", signal.SIGKILL), ("export", signal.SIGTERM)]
)
def test_killed_after_training_never_retrains(tmp_path, reference, point, signal_number):
    stopped = train(tmp_path, fault=f"{point}:{signal_number.name}")
    assert killed(stopped, signal_number), stopped.stderr
    (folder,) = run_folders(tmp_path)
    assert json.loads((folder / "lifecycle.json").read_text())["stage"] in ("trained", "evaluated")
    if point == "export":  # the killed export's staging folder is still there
        assert list((tmp_path / "out" / "breast_cancer").glob(".staging-*"))
    result = train(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trained earlier" in result.stderr
    metrics = assert_finished_cleanly(tmp_path)
    assert metrics["val"] == reference["val"] and metrics["test"] == reference["test"]


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
        assert epochs(folder) == ["0"]  # the second wrote nothing
    finally:
        first.kill()
        first.wait()
    result = train(tmp_path)  # the killed one's lock went with its process
    assert result.returncode == 0, result.stderr
    assert_finished_cleanly(tmp_path)


def test_unwritable_outputs_fail_before_training_in_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = train(tmp_path, logdir=str(tmp_path / "file"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "train.py: error: Expected a folder this process can write"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("saved_model.pb"))
