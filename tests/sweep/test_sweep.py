"""tfnn.sweep: the same trials from the same seed, the test split read for the best trial
only and its model exported once, pruning, failed trials, kill and rerun, two processes on
one study, and the command line's refusals. Tiny runs: breast_cancer, a 16-unit MLP."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import types

import numpy as np
import optuna
import pytest
import tensorflow as tf

import tfnn
from tfnn import data
from tfnn.recipe import errors
from tfnn.recipe import evaluate as evaluation
from tfnn.recipe import train as recipe
from tfnn.sweep import __main__ as cli
from tfnn.sweep import space

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = {
    "dataset": "breast_cancer",
    "model": "mlp",
    "hidden_layers": (16,),
    "epochs": 2,
    "verbose": 0,
    "mc_dropout": 0,
}


@pytest.fixture
def tiny(tmp_path, data_dir):
    """TINY with this test's folders."""
    return {**TINY, "data_dir": data_dir, "export_dir": str(tmp_path / "saved_models")}


def versions(tmp_path):
    folder = tmp_path / "saved_models" / "breast_cancer"
    return sorted(p.name for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def test_same_seed_same_trials_test_read_once_best_exported_rerun_adds_nothing(
    tmp_path, tiny, monkeypatch, data_dir
):
    """Catches an unseeded sampler, the test split read for any trial but the best (or
    twice), an export of another trial's model (or a retrained one), and a rerun of a finished
    sweep adding trials or exports."""
    looked = []

    def counting(plan, model, splits=("val", "test")):
        if "test" in splits:
            looked.append(plan.options.as_dict())
        return real(plan, model, splits)

    real = evaluation.evaluate
    monkeypatch.setattr(recipe, "evaluate", counting)
    search = {"dropout": "0:0.5", "learning_rate": "1e-3:1e-1:log"}
    first = tfnn.sweep(search=search, trials=3, workers=1, out=str(tmp_path / "a"), **tiny)
    assert [t["state"] for t in first["trials"]] == ["COMPLETE"] * 3
    values = [t["value"] for t in first["trials"]]
    best = first["best"]
    assert best["number"] == int(np.argmax(values)) and best["val"]["accuracy"] == max(values)
    assert len(looked) == 1 and looked[0]["learning_rate"] == best["params"]["learning_rate"]
    assert best["export_path"].endswith("/1") and versions(tmp_path) == ["1"]
    # the export is the best trial's model: its validation accuracy is the trial's value
    served = tf.saved_model.load(best["export_path"]).signatures["serving_default"]
    x, y = data.load("breast_cancer", seed=42, data_dir=data_dir).validation
    probabilities = served(inputs=tf.constant(x))["probabilities"].numpy().reshape(-1)
    assert np.mean((probabilities > 0.5) == y) == pytest.approx(best["val"]["accuracy"])
    written = json.loads((tmp_path / "a" / "sweep.json").read_text())
    assert written == json.loads(json.dumps(first))
    assert set(written) >= {"study", "storage", "search", "trials", "best"}
    assert (tmp_path / "a" / "sweep.png").stat().st_size > 0

    second = tfnn.sweep(search=search, trials=3, workers=1, out=str(tmp_path / "b"), **tiny)
    assert [t["params"] for t in second["trials"]] == [t["params"] for t in first["trials"]]
    assert [t["value"] for t in second["trials"]] == values

    again = tfnn.sweep(search=search, trials=3, workers=1, out=str(tmp_path / "a"), **tiny)
    assert again["trials"] == first["trials"] and again["best"] == best
    assert len(looked) == 2 and versions(tmp_path) == ["1", "2"]  # b's export, none again


def test_a_hopeless_trial_is_pruned_and_a_diverged_one_fails_alone(tmp_path, tiny):
    """Catches the callback not reporting (or not raising TrialPruned), pruning counted as
    a crash, or a diverged trial crashing the sweep."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    made = optuna.create_study(storage=url, study_name="s", direction="maximize")
    for rate in (0.05, 1e-9, 1e30):  # good, hopeless (pruned after epoch 1), diverging
        made.enqueue_trial({"learning_rate": rate})
    result = tfnn.sweep(
        search={"learning_rate": "1e-9:1e30:log"},
        trials=3,
        workers=1,
        storage=url,
        study="s",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1),
        out=str(tmp_path / "out"),
        **{**tiny, "epochs": 3},
    )
    assert [t["state"] for t in result["trials"]] == ["COMPLETE", "PRUNED", "FAIL"]
    pruned = pathlib.Path(result["trials"][1]["run"])
    assert len((pruned / "history.csv").read_text().splitlines()) == 1 + 1  # one epoch
    ended = [t.user_attrs["ended"] for t in optuna.load_study(study_name="s", storage=url).trials]
    assert ended == ["complete", "pruned", "diverged"]
    assert result["best"]["number"] == 0 and result["best"]["test"]


def command(out, *extra, **options):
    flags = [
        f"--{k}={v}" if not isinstance(v, tuple) else f"--{k}={v[0]}" for k, v in options.items()
    ]
    return [
        sys.executable,
        "-m",
        "tfnn.sweep",
        "--search",
        "dropout=0:0.5",
        "learning_rate=1e-3:1e-1:log",
        "--workers",
        "1",
        "--out",
        str(out),
        *extra,
        *flags,
    ]


def environment(fault=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    env.pop("TFNN_FAULT_AT", None)
    if fault:
        env["TFNN_FAULT_AT"] = fault
    return env


def test_killed_and_rerun_the_study_continues_and_the_interrupted_trial_runs_again(tmp_path, tiny):
    """Catches a killed trial left running (never retried, or counted toward --trials), its
    retry training from scratch in a new folder, or finished trials run again."""
    first = subprocess.run(
        command(tmp_path / "out", "--trials", "2", **tiny),
        env=environment("train:SIGKILL"),  # in the first trial's second epoch
        capture_output=True,
        timeout=300,
    )
    assert first.returncode == -signal.SIGKILL
    second = subprocess.run(
        command(tmp_path / "out", "--trials", "2", **tiny),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "sweep.json").read_text())
    trials = result["trials"]
    assert [t["state"] for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1]["params"] == trials[0]["params"] and trials[1]["run"] == trials[0]["run"]
    rows = (pathlib.Path(trials[1]["run"]) / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 2  # resumed: two epochs in all, none twice
    assert "trials 0 were interrupted" in second.stderr


def test_two_processes_on_one_storage_fill_one_study_once(tmp_path, tiny):
    """Catches each process running --trials of its own, two processes running one trial,
    or both exporting the best."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    processes = [
        subprocess.Popen(
            command(tmp_path / name, "--trials", "4", "--storage", url, "--study", "s", **tiny),
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert 4 <= len(trials) <= 5  # racing processes may each start one more
    runs = [t.user_attrs["run"] for t in trials]
    assert len(set(runs)) == len(runs)
    assert {pathlib.Path(r).parents[1].name for r in runs} == {"one", "two"}  # both worked
    assert versions(tmp_path) == ["1"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--search", "dropout=0.6:0", "--model", "mlp"], "LOW <= HIGH"),
        (["--search", "dropout=0:0.5"], "no effect"),  # the default model is the CNN
        (["--search", "dropout=0:0.5", "--model", "mlp", "--dropout", "0.2"], "dropout both"),
        (["--search", "l2=0:1:log", "--model", "mlp"], "LOW > 0 for a log range"),
        (["--search", "dropout=0:0.5", "--model", "mlp", "--trials", "0"], "--trials"),
        (["--search", "bogus=1:2"], "Received: 'bogus'"),
    ],
)
def test_the_command_refuses_in_one_line_with_status_2_and_writes_nothing(
    tmp_path, capsys, argv, message
):
    """Catches a refusal after the study or a folder was made, or a usage block."""
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


class _Planned(Exception):
    """Stops a sweep where it plans its bounds, after its folder and study are named."""


def _refused(search, fixed):
    raise _Planned


def _folder_of(monkeypatch, **arguments):
    """(the sweep's folder, its study's name) for `arguments`, nothing run or written."""
    seen = {}

    def plan(search, fixed):
        seen["logdir"] = fixed["logdir"]
        raise _Planned

    monkeypatch.setattr(tfnn.sweep, "_plan_each_bound", plan)
    monkeypatch.setattr(tfnn.sweep, "default_study", _recording(seen))
    with pytest.raises(_Planned):
        tfnn.sweep.sweep(search={"dropout": "0:0.5"}, trials=1, model="mlp", **arguments)
    return pathlib.Path(seen["logdir"]).parent, seen.get("name")


def _recording(seen, study=tfnn.sweep.default_study):
    def named(search, fixed):
        seen["name"] = study(search, fixed)
        return seen["name"]

    return named


def test_the_default_folder_is_sweeps_and_the_data_sets_own_name_one_study_for_one_folder(
    tmp_path, monkeypatch
):
    """Catches default_study's `fixed.get('dataset', ...)` taken as given (a folder path: the
    sweep written beside the data, `data/` a nested folder and a study apart from `data`)
    and the hash of the dataset as typed."""
    (tmp_path / "x" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    found = {
        given: _folder_of(monkeypatch, dataset=given)
        for given in (str(tmp_path / "x" / "data"), "x/data", "x/data/", "./x/data")
    }
    absolute, *relative = found.values()
    folder, name = relative[0]
    assert name.startswith("data-") and "/" not in name
    assert folder == pathlib.Path("sweeps") / name
    assert all(other == (folder, name) for other in relative)
    assert absolute[0] == pathlib.Path("sweeps") / absolute[1]
    assert absolute[1].startswith("data-")
    # A TFDS name is taken whole, as the model's name: cifar10/3.0.2 → cifar10_3.0.2.
    assert tfnn.sweep.default_study({}, {"dataset": "cifar10/3.0.2"}).startswith("cifar10_3.0.2-")
    assert tfnn.sweep.default_study({}, {}).startswith("mnist1d-")


@pytest.mark.parametrize("study", ["../../evil", "a/b", "/abs", ".", "..", ""])
def test_a_study_name_that_is_not_a_plain_name_is_refused_in_one_line(
    tmp_path, monkeypatch, capsys, study
):
    """Catches sweep()'s `pathlib.Path("sweeps") / name` for any --study: `../../evil`
    written outside sweeps/, `a/b` nested, `.` or `` the sweeps/ folder itself."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tfnn.sweep, "_plan_each_bound", _refused)  # here today's code fails
    with pytest.raises(SystemExit) as exited:
        cli.main(["--search", "dropout=0:0.5", "--model", "mlp", "--study", study])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and f"Received: study={study!r}" in err
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="a plain name"):
        tfnn.sweep.sweep(search={"dropout": "0:0.5"}, study=study, model="mlp")


@pytest.mark.parametrize("study", ["a", "...", "a.b", "x-1"])
def test_a_plain_study_name_is_a_folder_under_sweeps(tmp_path, monkeypatch, study):
    """The limit of the refusal above: names with dots but no '/' are plain."""
    monkeypatch.chdir(tmp_path)
    folder, _ = _folder_of(monkeypatch, study=study)
    assert folder == pathlib.Path("sweeps") / study


@pytest.mark.parametrize(
    "url, shown, reason",
    [
        ("garbage", "'garbage'", "not a database URL"),
        ("redis://127.0.0.1:1", "'redis://127.0.0.1:1'", "not a database URL SQLAlchemy knows"),
        (
            "sqlite:////nonexistent/dir/x.db",
            "'sqlite:////nonexistent/dir/x.db'",
            "cannot connect: unable to open database",
        ),
        ("mysql://u:p@127.0.0.1:1/db", "'mysql://u:***@127.0.0.1:1/db'", "driver is not installed"),
    ],
)
def test_a_storage_that_does_not_open_is_one_line_naming_it_and_why_nothing_written(
    tmp_path, monkeypatch, capsys, url, shown, reason
):
    """Catches study.storage's bare `optuna.storages.RDBStorage(url, ...)` (sqlalchemy's
    errors and the driver's ImportError were tracebacks, after the sweep's folder was made)."""
    monkeypatch.setattr(tfnn.sweep, "_plan_each_bound", _refused)
    with pytest.raises(SystemExit) as exited:
        cli.main(["--search", "dropout=0:0.5", "--model", "mlp", "--storage", url,
                  "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert reason in err and f"Received: storage={shown}" in err.replace('"', "'")
    assert "u:p@" not in err  # the password hidden
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "flags, workers", [([], 2), (["--trials", "1"], 1), (["--workers", "1"], 1)]
)
def test_the_command_prestarts_the_workers_of_its_trials_before_importing_tensorflow(
    monkeypatch, capsys, prestart_calls, flags, workers
):
    """Catches the workers started after this process's own start-up (nothing overlapped),
    or more than the trials take (one trial: none, it runs here): the block is entered with
    the pool's count before the sweep runs, and the process's threads follow from it."""
    from tfnn.sweep import report

    calls = prestart_calls
    monkeypatch.setattr(
        cli,
        "_sweep",
        lambda p, arguments, flags, threads: calls.append(("sweep", threads)) or {"best": {}},
    )
    monkeypatch.setattr(report, "table", lambda result: ["the table"])
    cli.main(["--search", "dropout=0:0.5", "--model", "mlp", *flags])
    threads = None if workers > 1 else 1  # none: with workers, no TensorFlow here
    assert calls == [("prestarted", workers), ("sweep", threads), ("stopped", workers)]
    assert capsys.readouterr().out == "the table\n"


@pytest.mark.parametrize(
    "workers, trials, pooled", [(2, 2, True), (1, 2, False), (2, 1, False), (None, 3, True)]
)
def test_a_sweep_of_workers_checks_runs_and_finishes_on_its_pool(
    tmp_path, tiny, monkeypatch, workers, trials, pooled
):
    """Catches the bounds checked, or the one trial left run, in this process when the sweep
    has workers (it would then import TensorFlow and train beside them), the pool's workers
    not capped by the trials left, and a sweep of one worker or one trial sent to a pool
    for nothing."""
    from tfnn.recipe import pool
    from tfnn.sweep import report
    from tfnn.sweep import study as studies

    calls = []
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    monkeypatch.setattr(pool, "memory_available", lambda: 64 * pool.WORKER_BYTES)
    monkeypatch.setattr(studies, "counted", lambda study: trials - 1)  # one trial left

    def run(self, items, **kwargs):
        names = [item.name for item in items]
        calls.append(("here" if self._here else "on workers", names))
        return {"bounds": ("planned", "accuracy", "max")} if names == ["bounds"] else {}

    monkeypatch.setattr(pool.Pool, "run", run)
    monkeypatch.setattr(report, "write", lambda *args, **kwargs: {})
    options = {**tiny, "workers": workers, "trials": trials, "out": str(tmp_path / "out")}
    tfnn.sweep.sweep(search={"dropout": "0:0.5"}, **options)
    where = "on workers" if pooled else "here"
    assert calls == [(where, ["bounds"]), (where, ["worker-1"])]


def test_a_refusal_reads_the_same_here_and_from_a_worker():
    """Catches a bound's refusal lost on its way from a worker (a refused outcome read as
    planned figures), or figures read as a refusal."""
    with pytest.raises(errors.OptionError, match="^search label_smoothing: Expected"):
        tfnn.sweep._planned(("refused", "search label_smoothing: Expected …"))
    assert tfnn.sweep._planned(("planned", "accuracy", "max")) == ("accuracy", "max")


def test_bounds_are_planned_or_refused_without_raising(data_dir):
    """Catches `_bounds` letting the refusal escape (a worker would report it as a failed
    item, exit 1, not the one line of status 2) or planning on another data set."""
    fixed = {"dataset": "diabetes", "model": "mlp", "data_dir": data_dir}
    refused = tfnn.sweep._bounds(space.parse({"label_smoothing": "0,0.1"}, fixed), fixed)
    assert refused[0] == "refused" and refused[1].startswith("search label_smoothing: ")
    planned = tfnn.sweep._bounds(space.parse({"dropout": "0:0.5"}, fixed), fixed)
    assert planned == ("planned", "rmse", "min")


@pytest.mark.parametrize(
    "result, line",
    [(3, "3 trials"), (0, "0 trials"), (("planned", "accuracy", "max"), None), ({"val": 1}, None)],
)
def test_a_workers_trials_are_a_line_and_the_sweeps_own_steps_none(result, line):
    """Catches a line for the sweep's own steps (the bounds, the best trial's finish: a
    refusal would no longer be one line), or none for a worker's trials."""
    assert tfnn.sweep._described(result) == line


def test_a_bound_the_data_set_cannot_take_is_refused_by_a_worker_in_one_line(
    tmp_path, capsys, data_dir
):
    """Catches the refusal of a pooled sweep's bound (checked on a worker: this process
    imports no TensorFlow) turned into a failed item (exit 1) or written after the folder."""
    out = tmp_path / "out"
    argv = ["--search", "label_smoothing=0,0.1", "--dataset", "diabetes", "--model", "mlp"]
    argv += ["--workers", "2", "--out", str(out), "--data_dir", data_dir]
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    lines = [line for line in err.splitlines() if line.startswith("python -m tfnn.sweep: error")]
    assert len(lines) == 1 and "search label_smoothing: " in lines[0]
    assert not out.exists()


def test_a_pooled_sweep_runs_no_tensorflow_in_its_own_process(tmp_path, tiny):
    """Catches this process importing TensorFlow (the bounds, the trials' start or the best
    trial's test read and export done here, ~0.8 GiB and ~4 s of CPU beside the workers), and
    the best trial not evaluated or exported when that work is on a worker."""
    script = (
        "import json, sys, tfnn.sweep\n"
        "result = tfnn.sweep.sweep(**json.loads(sys.argv[1]))\n"
        "print(json.dumps({'tensorflow': 'tensorflow' in sys.modules, 'best': result['best']}))"
    )
    options = {**tiny, "hidden_layers": [16], "search": {"dropout": "0:0.5"}, "trials": 2}
    options.update(workers=2, out=str(tmp_path / "out"))
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(options)],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout.splitlines()[-1])
    assert printed["tensorflow"] is False
    best = printed["best"]
    assert best["test"]["accuracy"] > 0 and best["export_path"].endswith("/breast_cancer/1")
    assert versions(tmp_path) == ["1"]
    assert (tmp_path / "out" / "best.log").is_file()


@pytest.mark.parametrize(
    "states, status, line",
    [
        (["FAIL", "PRUNED", "FAIL"], 1, "no trial completed (2 fail, 1 pruned)"),
        (["FAIL", "COMPLETE"], 0, None),
    ],
)
def test_a_sweep_without_a_completed_trial_exits_1_naming_its_trials(
    monkeypatch, capsys, states, status, line
):
    """Catches a sweep whose every trial failed ending with status 0, as if it had found and
    exported a best model, and one with a best trial refused."""
    from tfnn.sweep import report

    trials = [{"number": i, "state": state} for i, state in enumerate(states)]
    best = None if line else {"number": 1}
    monkeypatch.setattr(cli, "_sweep", lambda *args, **kwargs: {"best": best, "trials": trials})
    monkeypatch.setattr(report, "table", lambda result: ["the table"])
    argv = ["--search", "dropout=0:0.5", "--model", "mlp", "--workers", "1"]
    if status:
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == status
    else:
        cli.main(argv)
    captured = capsys.readouterr()
    assert captured.out == "the table\n"
    expected = f"python -m tfnn.sweep: {line}: no test figure, nothing exported\n" if line else ""
    assert captured.err == expected


def test_a_path_option_given_as_a_pathlib_path_is_its_text():
    """Catches a pathlib.Path among the fixed options failing the study's hash with a
    TypeError (train's options take one as their text)."""
    search, fixed = tfnn.sweep.check(
        search={"dropout": "0:0.5"},
        trials=2,
        workers=1,
        pruner="median",
        options={"model": "mlp", "dataset": pathlib.Path("digits"), "logdir": pathlib.Path("l")},
    )
    assert fixed == {"model": "mlp", "dataset": "digits", "logdir": "l"}
    assert tfnn.sweep.default_study(search, fixed).startswith("digits-")


@pytest.mark.parametrize("name", ["trials", "workers"])
def test_trials_and_workers_take_1_and_refuse_0(name):
    """At the limit (1 taken) and past it (0 refused, naming it): catches `low=0` or `low=2`
    in `check`, the Python call's own check (the flags have theirs)."""
    arguments = {"search": {"dropout": "0:0.5"}, "trials": 1, "workers": 1, "pruner": "median"}
    checked, fixed = tfnn.sweep.check(**arguments, options={"model": "mlp"})
    assert set(checked) == {"dropout"} and fixed == {"model": "mlp"}
    with pytest.raises(ValueError, match=f"Received: {name}=0"):
        tfnn.sweep.check(**{**arguments, name: 0}, options={"model": "mlp"})


@pytest.mark.parametrize("left, started", [(2, ["worker-1", "worker-2"]), (0, [])])
def test_each_worker_runs_with_its_own_seed_and_none_starts_when_no_trial_is_left(
    tmp_path, tiny, monkeypatch, left, started
):
    """Two workers, two trials left: worker k samples from seed + k (catches `range(1,
    count)`, one worker fewer, and one seed for both); no trial left (the limit of
    `remaining > 0`): no worker starts."""
    from tfnn.recipe import pool
    from tfnn.sweep import report
    from tfnn.sweep import study as studies

    seeds = {}
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    monkeypatch.setattr(pool, "memory_available", lambda: 64 * pool.WORKER_BYTES)
    monkeypatch.setattr(studies, "counted", lambda study: 5 - left)

    def run(self, items, **kwargs):
        items = list(items)
        names = [item.name for item in items]
        seeds.update({item.name: item.kwargs["seed"] for item in items if item.name != "bounds"})
        return {"bounds": ("planned", "accuracy", "max")} if names == ["bounds"] else {}

    monkeypatch.setattr(pool.Pool, "run", run)
    monkeypatch.setattr(report, "write", lambda *args, **kwargs: {})
    options = {**tiny, "seed": 7, "workers": 2, "trials": 5, "out": str(tmp_path / "out")}
    tfnn.sweep.sweep(search={"dropout": "0:0.5"}, **options)
    assert seeds == {name: 7 + int(name[-1]) for name in started}


class _Study:
    """A study stood in for: its best trial (None: no complete trial) and user attributes."""

    def __init__(self, best, recorded=None):
        self._best, self.user_attrs = best, {"best": recorded} if recorded else {}

    @property
    def best_trial(self):
        if self._best is None:
            raise ValueError("no complete trial")
        return self._best

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


def _trial(number, run):
    attrs = {"options": {"dataset": "digits"}} | ({"run": run} if run is not None else {})
    return types.SimpleNamespace(number=number, params={"dropout": 0.1}, user_attrs=attrs)


def _finishing(calls):
    def finish(options):
        calls.append(options)
        return {"val": {"accuracy": 0.9}, "test": {"accuracy": 0.8}, "export_path": "e/1"}

    return finish


@pytest.mark.parametrize("run", [None, "", "missing"])
def test_a_best_trial_whose_run_is_not_here_is_named_with_no_figures(tmp_path, monkeypatch, run):
    """No run recorded, an empty one (the limit: `pathlib.Path("")` is the current folder,
    a folder that exists) and one not on this machine: catches `run.is_dir()` alone, which
    takes "" as the current folder, here one holding another run's metrics.json."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"val": 1, "test": 2}))
    calls = []
    result = tfnn.sweep._final(_Study(_trial(0, run)), monitor="accuracy", finish=_finishing(calls))
    assert result == {
        "number": 0,
        "params": {"dropout": 0.1},
        "val": None,
        "test": None,
        "export_path": None,
    }
    assert calls == []


def test_no_complete_trial_has_no_best():
    assert tfnn.sweep._final(_Study(None), monitor="accuracy") is None


@pytest.mark.parametrize("recorded_number, finished", [(0, False), (1, True)])
def test_a_recorded_best_is_read_only_when_it_is_the_best_trials(
    tmp_path, monkeypatch, recorded_number, finished
):
    """Trial 0 (a number that is falsy) recorded as best is read, not finished again; a
    record of another trial is not the best's. Catches `recorded["number"]` compared by
    truth or not at all."""
    from tfnn.recipe import run as runs

    monkeypatch.setattr(runs, "unfinished_folder", lambda options: str(tmp_path))
    recorded = {"number": recorded_number, "val": "recorded"}
    calls = []
    study = _Study(_trial(0, str(tmp_path)), recorded)
    result = tfnn.sweep._final(study, monitor="accuracy", finish=_finishing(calls))
    assert (calls == [{"dataset": "digits"}]) is finished
    assert (result == recorded) is not finished
    if finished:
        assert result["test"] == {"accuracy": 0.8} and study.user_attrs["best"] == result


@pytest.mark.parametrize("metrics, unfinished", [(True, None), (False, "elsewhere")])
def test_a_best_run_finished_is_read_and_one_not_resumable_is_left(
    tmp_path, monkeypatch, metrics, unfinished
):
    """Catches a finished run (its metrics.json there) finished again, and a run that is not
    the options' unfinished one resumed (another command's folder)."""
    from tfnn.recipe import run as runs

    monkeypatch.setattr(runs, "unfinished_folder", lambda options: unfinished)
    if metrics:
        (tmp_path / "metrics.json").write_text(json.dumps({"val": 1, "test": 2}))
    calls = []
    result = tfnn.sweep._final(
        _Study(_trial(3, str(tmp_path))), monitor="accuracy", finish=_finishing(calls)
    )
    assert calls == []
    assert (result["test"], result["export_path"]) == ((2, None) if metrics else (None, None))


@pytest.mark.parametrize(
    "pruner, refused",
    [("none", False), (optuna.pruners.NopPruner(), False), (None, True), ("None", True)],
)
def test_a_pruner_is_a_name_it_knows_or_a_pruner_object(pruner, refused):
    """The word "none" and a pruner object are taken; None (not the word) and another case
    refused naming it: catches `isinstance(pruner, str)` alone (None passed on to Optuna,
    its own pruner used) and a case-blind name."""
    arguments = {"search": {"dropout": "0:0.5"}, "trials": 1, "workers": None}
    if refused:
        with pytest.raises(ValueError, match=f"Received: pruner={pruner!r}"):
            tfnn.sweep.check(**arguments, pruner=pruner, options={"model": "mlp"})
    else:
        tfnn.sweep.check(**arguments, pruner=pruner, options={"model": "mlp"})


def test_an_empty_out_is_refused_not_taken_as_the_default_folder(tmp_path, monkeypatch, capsys):
    """At the limit of `out` (None: sweeps/STUDY) and past it (""): catches `out or ...`,
    which wrote a sweep asked for at "" into sweeps/STUDY, where train.py refuses an empty
    logdir and tfnn.experiments an empty --out."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tfnn.sweep, "_plan_each_bound", _refused)
    with pytest.raises(ValueError, match=r"^Expected a non-empty path\. Received: out=''$"):
        tfnn.sweep.sweep(search={"dropout": "0:0.5"}, trials=1, model="mlp", out="")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--search", "dropout=0:0.5", "--model", "mlp", "--out", ""])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "Received: out=''" in err
    assert list(tmp_path.iterdir()) == []
    folder, _ = _folder_of(monkeypatch, out=None)  # the limit: the default folder
    assert folder.parent == pathlib.Path("sweeps")


def test_an_empty_storage_is_refused_not_taken_as_the_default_file(tmp_path, monkeypatch):
    """Past the limit of `storage` (None: an SQLite file in the sweep's folder): "" is
    refused before anything is written. Catches `if storage:` at the check (the empty URL
    then run on the default file, `storage or ...`)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tfnn.sweep, "_plan_each_bound", _refused)
    with pytest.raises(ValueError, match=r"Received: storage=''$"):
        tfnn.sweep.sweep(search={"dropout": "0:0.5"}, trials=1, model="mlp", storage="")
    assert list(tmp_path.iterdir()) == []
