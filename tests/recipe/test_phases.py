"""Phase timings: tfnn.recipe.phases.Stopwatch, and "seconds" in a run's metrics."""

import io
import json
import os
import subprocess
import sys
import time

import keras
import pytest

import tfnn
from tfnn.recipe import phases
from tfnn.recipe import run as runs
from tfnn.recipe.train import OptionError

# The recipe's tests' small MLP (conftest.py), written out for a process of its own.
SMALL = {
    "model": "mlp",
    "hidden_layers": (64,),
    "batch_size": 50,
    "epochs": 4,
    "learning_rate": 0.01,
    "label_smoothing": 0.0,
    "verbose": 0,
}

SLEEP = 0.2  # seconds a callback sleeps at every epoch's end, inside Keras's fit


class Sleep(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        time.sleep(SLEEP)


class SeesXla(keras.callbacks.Callback):
    """Records whether the model being fitted is XLA-compiled."""

    def on_train_begin(self, logs=None):
        self.jit_compile = self.model.jit_compile


def test_a_phase_adds_up_its_blocks_and_the_total_covers_them():
    stopwatch = phases.Stopwatch()
    for _ in range(2):
        with stopwatch.phase("fit"):
            time.sleep(0.05)
    with stopwatch.phase("data"):
        pass
    seconds = stopwatch.seconds
    assert list(seconds) == ["data", "fit", "total"]  # PHASES' order, total last
    assert seconds["fit"] >= 0.1  # both blocks, not the last one alone
    assert seconds["total"] >= seconds["fit"] + seconds["data"]
    assert "start-up" not in seconds
    assert stopwatch.line().startswith("seconds: data 0.0, fit 0.1, total ")


def test_an_unknown_phase_is_refused_by_name():
    with pytest.raises(ValueError, match="Received: name='training'"):
        with phases.Stopwatch().phase("training"):
            pass


def test_start_up_is_the_age_of_the_process():
    """A process that sleeps 0.5 s before its stopwatch starts counts them as start-up (a
    wrong field of /proc/self/stat, or ticks taken for seconds, gives another figure)."""
    code = (
        "import time; time.sleep(0.5); from tfnn.recipe import phases; "
        "print(phases.Stopwatch(from_process_start=True).seconds['start-up'])"
    )
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert 0.5 <= float(result.stdout) <= elapsed


def fake_proc(monkeypatch, *, start_ticks, uptime):
    """/proc/self/stat with field 22 (start time) = `start_ticks` and a command name holding
    ") " (why the fields are counted from the last ")"), and /proc/uptime = `uptime`."""
    fields = ["S", *(str(n) for n in range(4, 22)), str(start_ticks), "8675309", "42"]
    files = {
        "/proc/self/stat": "4321 (a) b) " + " ".join(fields) + "\n",
        "/proc/uptime": uptime,
    }
    monkeypatch.setattr(phases, "open", lambda path: io.StringIO(files[path]), raising=False)


def test_start_up_is_uptime_less_the_start_field_in_seconds(monkeypatch):
    """A hand-made /proc: started at tick 100 s x CLK_TCK, uptime 100.5 s: start-up 0.5 s, in
    the total as well. Catches another field of stat or of uptime, the first ")" for the
    last, ticks multiplied instead of divided, or a floor other than 0."""
    tick = os.sysconf("SC_CLK_TCK")
    fake_proc(monkeypatch, start_ticks=100 * tick, uptime="100.50 250.00\n")
    stopwatch = phases.Stopwatch(from_process_start=True)
    assert stopwatch.seconds["start-up"] == 0.5
    assert stopwatch.seconds["total"] >= 0.5


def test_start_up_is_never_negative(monkeypatch):
    """A start a tick after the uptime (the two files read at different instants) gives 0."""
    tick = os.sysconf("SC_CLK_TCK")
    fake_proc(monkeypatch, start_ticks=100 * tick + 1, uptime="100.00 250.00\n")
    assert phases.Stopwatch(from_process_start=True).seconds["start-up"] == 0.0


def test_without_proc_there_is_no_start_up(monkeypatch):
    def missing(path):
        raise FileNotFoundError(path)

    monkeypatch.setattr(phases, "open", missing, raising=False)
    seconds = phases.Stopwatch(from_process_start=True).seconds
    assert "start-up" not in seconds and seconds["total"] < 1


def test_start_up_here_is_this_process_age_as_ps_tells_it():
    """The real /proc of this process against ps's elapsed seconds (whole seconds)."""
    elapsed = subprocess.run(
        ["ps", "-o", "etimes=", "-p", str(os.getpid())], capture_output=True, text=True
    ).stdout
    age = phases.Stopwatch(from_process_start=True).seconds["start-up"]
    assert abs(age - int(elapsed)) <= 1.5


def test_a_run_times_its_phases(run):
    """The sleeps in a callback land in fit, and the phases are what metrics.json holds."""
    metrics, folder = run(callbacks=[Sleep()], dataset="digits", dropout=0.2)
    seconds = metrics["seconds"]
    expected = ["data", "build", "fit", "evaluation", "mc_dropout", "pictures", "export", "total"]
    assert list(seconds) == expected
    assert seconds["fit"] >= 4 * SLEEP
    assert sum(v for k, v in seconds.items() if k != "total") <= seconds["total"]
    assert json.loads((folder / "metrics.json").read_text())["seconds"] == seconds


def test_an_ensemble_adds_its_members_fits(run):
    metrics, _ = run(callbacks=[Sleep()], dataset="digits", ensemble=2)
    assert metrics["seconds"]["fit"] >= 2 * 4 * SLEEP


def test_a_resumed_run_times_only_the_stages_it_ran(run, monkeypatch):
    options = {"dataset": "breast_cancer", "epochs": 2}

    def interrupted(name):  # Ctrl-C after training, before evaluation
        if name == "evaluate":
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "fault_point", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(**options)
    monkeypatch.undo()
    metrics, _ = run(**options)
    assert "fit" not in metrics["seconds"]  # trained by the interrupted process
    assert {"build", "evaluation", "export"} <= set(metrics["seconds"])  # loaded, then the rest


def test_xla_is_off_on_a_cpu_by_default_and_refused_after_op_determinism(run):
    seen = SeesXla()
    run(callbacks=[seen], dataset="breast_cancer", epochs=1)  # turns op determinism on
    assert seen.jit_compile is False
    with pytest.raises(OptionError, match="Received: jit_compile='on'"):
        tfnn.train(jit_compile="on", dataset="breast_cancer")


def test_jit_compile_on_compiles_with_xla_and_learns(tmp_path, data_dir):
    """In a process of its own: XLA needs op determinism off, which other tests turn on."""
    code = f"""
import json, keras, tfnn
class SeesXla(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.jit_compile = self.model.jit_compile
seen = SeesXla()
metrics = tfnn.train(callbacks=[seen], jit_compile="on", dataset="digits", **{SMALL!r},
    data_dir={data_dir!r},
    logdir={str(tmp_path / "logs")!r}, export_dir={str(tmp_path / "models")!r})
print(json.dumps({{"jit_compile": seen.jit_compile, "accuracy": metrics["test"]["accuracy"]}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["jit_compile"] is True
    assert seen["accuracy"] > 0.8  # ten classes: chance is 0.1
