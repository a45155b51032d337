"""train.py: flags → tfnn.train(**options) → exit status."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import tfnn
from tfnn.cli import train as cli_train
from tfnn.recipe import options as recipe_options

ROOT = pathlib.Path(__file__).resolve().parents[2]


# What a stand-in for the recipe returns where a test runs train.py's main without training.
STAND_IN_RESULT = {"run": "r", "val": {}, "test": {}, "export_path": "e"}


def test_every_option_is_a_flag_with_help_and_its_default():
    """The parser is made from the options: same names, same defaults, help for each."""
    parser = cli_train.parser()
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    fields = {f.name: f for f in recipe_options.fields()}
    assert actions.keys() == fields.keys()
    parsed = vars(parser.parse_args([]))
    assert recipe_options.Options(**parsed) == recipe_options.DEFAULTS
    text = parser.format_help()
    for name, action in actions.items():
        assert action.help, name
    assert len(re.findall(r"\(default:\s", text)) == len(fields)


@pytest.mark.parametrize(
    "argv, received",
    [
        (["--dropout", "1.0"], "dropout=1.0"),
        (["--epochs", "-3"], "epochs=-3"),
        (["--hidden_layers", "100", "0"], "hidden_layers=[100, 0]"),
        (["--model", "rnn"], "model='rnn'"),
        (["--augment", "rotate=200"], "augment['rotate']=200.0"),
        (["--learning_rate", "abc"], "invalid float value: 'abc'"),
        (["--no_such_flag"], "unrecognized arguments: --no_such_flag"),
        # flags without effect on the chosen model, optimizer or mode
        (["--dropout", "0.3"], "unless model='mlp'"),
        (["--max_norm", "2"], "max_norm=2.0"),
        (["--hidden_layers", "32"], "hidden_layers=(32,)"),
        (["--activation", "tanh"], "activation='tanh'"),
        (["--model", "mlp", "--cnn", "C-8-3-1-same,G"], "cnn='C-8-3-1-same,G'"),
        (["--clip", "0.5"], "unless a clip_mode other than 'none'"),
        (["--momentum", "0.5"], "momentum=0.5"),
        (["--checkpoint_average", "outputs"], "checkpoint_average='outputs'"),
    ],
)
def test_a_bad_flag_exits_2_with_one_line_naming_it(argv, received, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_train.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: ") and err.count("\n") == 1 and received in err, err


def test_flags_are_checked_without_importing_tensorflow(tmp_path):
    """Options(...) checks every flag before the recipe (and TensorFlow) is imported."""
    script = (
        "import sys\nfrom tfnn.cli import train\ntry:\n    train.main(['--dropout', '2'])\n"
        "except SystemExit as e:\n"
        "    print(e.code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.split() == ["2", "False", "False"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "flags, received",
    [
        (["--augment", "flip"], "flip applies to images"),
        (["--dataset", "diabetes", "--mixup", "0.2"], "mixup=0.2"),
        (["--dataset", "no_such_set"], "no_such_set"),
        # a CNN spec that pools the 8 × 8 digits, or the signals of length 40, below 1 position
        (
            ["--dataset", "digits", "--cnn", "C-8-3-1-same,M-8-8,M-8-8,F"],
            "layer 3 'M-8-8' maps shape (1, 1, 8) to (0, 0, 8)",
        ),
        (["--cnn", "C-8-5-4-valid,M-10-1,F"], "layer 2 'M-10-1' maps shape (9, 8) to (0, 8)"),
    ],
)
def test_a_flag_the_data_set_cannot_take_exits_2_and_leaves_nothing(
    tmp_path, data_dir, capsys, flags, received
):
    exits_2_with_one_line_leaving_nothing(tmp_path, data_dir, capsys, flags, received)


def exits_2_with_one_line_leaving_nothing(tmp_path, data_dir, capsys, flags, received):
    """train.py with `flags` exits 2, printing one line holding `received`, writing nothing."""
    argv = [
        *flags,
        *("--data_dir", data_dir, "--logdir", str(tmp_path / "logs")),
        *("--export_dir", str(tmp_path / "saved_models")),
    ]
    with pytest.raises(SystemExit) as exit_info:
        cli_train.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert received in err and err.strip().count("\n") == 0
    assert not (tmp_path / "logs").exists() and not (tmp_path / "saved_models").exists()


def test_an_image_folder_it_refuses_exits_2_naming_the_fault(
    tmp_path, data_dir, capsys, write_folder
):
    root = write_folder(tmp_path / "pets")
    (root / "test" / "fox").mkdir()
    shutil.copy(root / "test" / "cat" / "0.png", root / "test" / "fox" / "0.png")
    flags = ["--dataset", str(root)]
    exits_2_with_one_line_leaving_nothing(tmp_path, data_dir, capsys, flags, "'fox'")
    shutil.rmtree(root / "test" / "fox")
    (root / "train" / "cat" / "extra.png").mkdir()  # not an image: ignored, the run goes on
    (root / "train" / "empty").mkdir()
    exits_2_with_one_line_leaving_nothing(tmp_path, data_dir, capsys, flags, "train/empty'")


def test_train_py_equals_tfnn_train_with_the_same_options(tmp_path, data_dir):
    """The script is only a parser: the same flags give the library's metrics, to the bit."""
    flags = {
        "dataset": "breast_cancer",
        "model": "mlp",
        "epochs": 2,
        "hidden_layers": (16,),
        "seed": 3,
        "mc_dropout": 4,
        "data_dir": data_dir,
        "verbose": 0,
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *cli_train.argv(**flags)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["export_path"] == "saved_models/breast_cancer/1"
    assert (tmp_path / "saved_models" / "breast_cancer" / "1" / "saved_model.pb").is_file()
    script = json.loads((pathlib.Path(tmp_path, summary["run"]) / "metrics.json").read_text())
    # The command counts its process's start-up (imports) and says the phases last.
    assert 0 < script["seconds"]["start-up"] < script["seconds"]["total"]
    assert result.stderr.strip().splitlines()[-1].startswith("train.py: seconds: start-up ")

    library = tfnn.train(
        **flags, logdir=str(tmp_path / "library"), export_dir=str(tmp_path / "library_models")
    )
    for key in ("val", "test", "mc_dropout", "epochs", "best_epoch"):
        assert library[key] == script[key], key
    assert library["options"] == {
        **script["options"],
        "logdir": str(tmp_path / "library"),
        "export_dir": str(tmp_path / "library_models"),
    }


@pytest.mark.parametrize(
    "argv, settings",
    [
        ([], {"threads": 1, "inter_op_threads": 2, "deterministic": True, "cpu_devices": 0}),
        (
            ["--threads", "3", "--jit_compile", "on", "--cpu_devices", "2"],
            {"threads": 3, "inter_op_threads": 3, "deterministic": False, "cpu_devices": 2},
        ),
    ],
)
def test_train_py_makes_the_process_wide_settings_before_it_trains(
    monkeypatch, prestart_calls, argv, settings
):
    """Catches `process.configure` called without the thread counts (one op at a time where
    two are the default), op determinism kept on under XLA or turned off without it, the
    logical devices not asked for, or the settings made after the run started."""
    from tfnn.recipe import process, train

    calls = []
    monkeypatch.setattr(process, "configure", lambda **kwargs: calls.append(("configure", kwargs)))

    def trained(**flags):
        calls.append(("train", flags["threads"]))
        return dict(STAND_IN_RESULT)

    monkeypatch.setattr(train, "train", trained)
    cli_train.main(["--dataset", "digits", *argv])
    threads = None if not argv else 3
    assert calls == [("configure", settings), ("train", threads)]


@pytest.mark.parametrize(
    "raised, status, err",
    [
        (
            "items",
            1,
            "train.py: member 1 failed: disk full\ntrain.py: member 2 failed: killed\n",
        ),
        (
            "interrupt",
            130,
            "train.py: stopped by SIGINT; the same command again continues where it stopped\n",
        ),
    ],
)
def test_failed_items_and_a_stop_end_train_py_with_their_status_and_lines(
    monkeypatch, capsys, raised, status, err
):
    """Catches the pool's failed items printed as one line, without the program's name, or
    with another status than 1 (2 says the caller erred), and a Ctrl-C not reported as the
    program's stop with 130."""
    from tfnn.recipe import errors, process, train

    failures = {"member 1": "disk full", "member 2": "killed"}
    error = errors.ItemsFailed(failures) if raised == "items" else KeyboardInterrupt()

    def fail(**flags):
        raise error

    monkeypatch.setattr(process, "configure", lambda **kwargs: None)
    monkeypatch.setattr(train, "train", fail)
    with pytest.raises(SystemExit) as exit_info:
        cli_train.main(["--dataset", "digits"])
    assert exit_info.value.code == status
    assert capsys.readouterr().err == err


def test_train_py_times_its_run_from_the_process_start_and_prints_its_log_lines(
    monkeypatch, capsys
):
    """Catches the run given no stopwatch, or one that leaves the process's start-up out of
    the phases (metrics.json's "start-up" and total), and the recipe's log lines not
    printed as `train.py: ...` while it runs."""
    import logging

    from tfnn.recipe import phases, process, train

    given = {}

    def trained(*, stopwatch=None, **flags):
        given["stopwatch"] = stopwatch
        logging.getLogger("tfnn.recipe").info("run folder: r")
        return dict(STAND_IN_RESULT)

    monkeypatch.setattr(process, "configure", lambda **kwargs: None)
    monkeypatch.setattr(train, "train", trained)
    cli_train.main(["--dataset", "digits"])
    assert isinstance(given["stopwatch"], phases.Stopwatch)
    assert given["stopwatch"].seconds["start-up"] > 0
    assert capsys.readouterr().err == "train.py: run folder: r\n"


@pytest.mark.parametrize("before, after", [(None, "2"), ("0", "0")])
def test_train_py_quiets_tensorflows_info_lines_unless_told_otherwise(monkeypatch, before, after):
    """Catches TensorFlow's C++ info and warning lines left on (TF_CPP_MIN_LOG_LEVEL 2 by
    default), or a level the user set overridden."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", before or "")  # restored after the test
    if before is None:
        monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    result = dict(STAND_IN_RESULT)
    monkeypatch.setattr(cli_train, "_train", lambda *args, **kwargs: result)
    cli_train.main(["--dataset", "digits"])
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == after


def test_a_collapsed_ensemble_exits_1_with_one_line(monkeypatch, capsys):
    from tfnn.recipe import ensembles, train

    def collapse(**options):
        raise ensembles.EnsembleCollapsed("the ensemble of 3 (init) collapsed; nothing exported")

    monkeypatch.setattr(train, "train", collapse)
    with pytest.raises(SystemExit) as exit_info:
        cli_train.main(["--ensemble", "3", "--workers", "1"])
    assert exit_info.value.code == 1
    assert (
        capsys.readouterr().err
        == "train.py: the ensemble of 3 (init) collapsed; nothing exported\n"
    )


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({"ensemble": 4}, 2),  # one a CPU, capped by them
        ({"ensemble": 2, "ensemble_kind": "bagging"}, 2),  # at the members
        ({"ensemble": 3, "workers": 1}, 1),  # one after another, here
        ({"ensemble": 2, "ensemble_kind": "checkpoints"}, 1),  # one run
        ({}, 1),
    ],
)
def test_train_py_prestarts_the_workers_its_members_take_before_importing_tensorflow(
    monkeypatch, capsys, prestart_calls, flags, expected
):
    """Catches the workers started after this process's own start-up (nothing overlapped),
    more than the members will take (a TensorFlow process for nothing; 1 is none), or fewer
    (the rest start late): the block is entered with the pool's count before training, and
    the process's threads follow from it."""
    calls = prestart_calls

    def train(p, options, flags, *, thread_counts):
        calls.append(("train", flags["ensemble"], thread_counts))
        return dict(STAND_IN_RESULT)

    monkeypatch.setattr(cli_train, "_train", train)
    cli_train.main(["--dataset", "digits", *cli_train.argv(**flags)])
    ensemble = flags.get("ensemble", 1)
    # all where the members train on the workers; one an op, two at once where it trains
    threads = (
        {"threads": 0, "inter_op_threads": 0}
        if expected > 1
        else {"threads": 1, "inter_op_threads": 2}
    )
    assert calls == [
        ("prestarted", expected),
        ("train", ensemble, threads),
        ("stopped", expected),
    ]
    assert json.loads(capsys.readouterr().out) == {
        "run": "r",
        "val": {},
        "test": {},
        "export_path": "e",
    }


def test_argv_is_the_inverse_of_parsing():
    options = {
        "model": "mlp",
        "hidden_layers": (8, 4),
        "augment": {"rotate": 15.0, "flip": True},
        "l2": 0.5,
        "calibrate": True,
    }
    assert cli_train.argv(calibrate=True) == ["--calibrate"] and not cli_train.argv(calibrate=False)
    # a switch does not end the flags after it
    assert cli_train.argv(calibrate=False, epochs=5) == ["--epochs", "5"]
    parsed = vars(cli_train.parser().parse_args(cli_train.argv(**options)))
    assert recipe_options.Options(**parsed) == recipe_options.Options(**options)


def test_log_lines_are_printed_only_while_a_command_runs(capsys):
    """Catches the command's handler left on tfnn's logger after `main()` returns: a library
    call later in the same process (a notebook, a test) would print `train.py:` lines."""
    import logging

    from tfnn.cli.flags import print_log_lines

    recipe = logging.getLogger("tfnn.recipe")
    with print_log_lines("train.py"):
        recipe.info("inside")
    recipe.info("outside")
    assert capsys.readouterr().err == "train.py: inside\n"


# train.py run as itself (runpy, as __main__) beside an object whose finalizer says when the
# interpreter finalizes the process's objects at exit.
FINALIZED = "the interpreter finalized its objects"
WITH_PROBE = f"""
import runpy, sys
class Probe:
    def __del__(self):
        print("{FINALIZED}", file=sys.stderr, flush=True)
probe = Probe()
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


# Buffered output, as train.py has unless told otherwise: its end must flush it.
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}


def run_train_py(tmp_path, flags, probe=False):
    """train.py with `flags` in `tmp_path`/work, its temporary files in `tmp_path`/tmp."""
    work, temporary = tmp_path / "work", tmp_path / "tmp"
    work.mkdir(exist_ok=True)
    temporary.mkdir(exist_ok=True)
    command = [sys.executable, *(("-c", WITH_PROBE) if probe else ()), str(ROOT / "train.py")]
    return subprocess.run(
        [*command, *flags],
        cwd=work,
        env={**BUFFERED, "TMPDIR": str(temporary), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def temporary_files(tmp_path):
    """The temporary files train.py left (the image folder's view, autograph's modules), less
    TFDS's own: DatasetInfo.initialize_from_bucket makes a tmp…tfds folder it never removes."""
    left = (tmp_path / "tmp").iterdir()
    return [p for p in left if not (p.name.startswith("tmp") and p.name.endswith("tfds"))]


def leftovers(tmp_path):
    """What a finished train.py must not leave: temporary files, its .tmp and partial files,
    its resume state and lock."""
    work = tmp_path / "work"
    left = [*temporary_files(tmp_path), *work.rglob("*.tmp"), *work.rglob("partial-*")]
    return left + [*work.rglob(".resume/*"), *work.rglob("lock")]


def test_train_py_ends_at_once_after_its_work_leaving_it_complete_and_nothing_else(
    tmp_path, data_dir, write_folder
):
    root = write_folder(tmp_path / "pets", per_class=(4, 2))
    options = {"dataset": str(root), "model": "mlp", "hidden_layers": (8,), "epochs": 2}
    flags = cli_train.argv(**options, data_dir=data_dir, verbose=0)
    first = run_train_py(tmp_path, flags, probe=True)
    assert first.returncode == 0, first.stderr[-2000:]
    assert FINALIZED not in first.stderr  # the process ended without finalizing its objects
    assert leftovers(tmp_path) == []
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    metrics = json.loads((tmp_path / "work" / summary["run"] / "metrics.json").read_text())
    assert metrics["export_path"] == summary["export_path"] == "saved_models/pets/1"
    assert metrics["epochs"] == 2 and metrics["test"] == summary["test"]
    export = tmp_path / "work" / "saved_models" / "pets" / "1"
    assert {p.name for p in export.iterdir()} >= {"saved_model.pb", "variables"}
    assert (export / "variables" / "variables.index").is_file()
    # The same command again is a new run, not refused as running: the lock was released.
    second = run_train_py(tmp_path, flags)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout.strip().splitlines()[-1])["export_path"].endswith("pets/2")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "options, status, last_line",
    [
        ({"dataset": "no_such_set"}, 2, "train.py: error: Unknown dataset 'no_such_set'"),
        (
            {"dataset": "diabetes", "learning_rate": 1e30},
            1,
            "train.py: training diverged (loss nan); nothing exported",
        ),
    ],
)
def test_train_py_exits_with_the_status_of_a_refusal_or_a_failure(
    tmp_path, data_dir, options, status, last_line
):
    flags = {"model": "mlp", "hidden_layers": (8,), "epochs": 1, **options}
    result = run_train_py(tmp_path, cli_train.argv(**flags, data_dir=data_dir, verbose=0))
    assert result.returncode == status, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(last_line)
    assert list((tmp_path / "work" / "saved_models").rglob("*")) == []  # nothing exported
    assert temporary_files(tmp_path) == []


def test_a_default_said_in_the_help_is_not_said_twice():
    """Catches the defaults formatter appending "(default: None)" to a help that names its
    default in words or to a required flag's, and dropping the default of a help that does
    not."""
    from tfnn.cli.flags import OneLineParser

    p = OneLineParser(prog="x")
    p.add_argument("--workers", default=None, help="processes (default: one a CPU)")
    p.add_argument("--trials", type=int, default=24, help="the total")
    p.add_argument("--search", required=True, help="terms")
    text = " ".join(p.format_help().split())
    assert "processes (default: one a CPU)" in text and "(default: None)" not in text
    assert "the total (default: 24)" in text


@pytest.mark.parametrize(
    "threads, workers, cpus, expected",
    [
        (None, 2, 2, (0, 0)),  # the members train on the pool: all cores, it only evaluates
        (None, 1, 2, (1, 2)),  # it trains: one thread an op, two ops at once
        (None, 1, 3, (1, 2)),  # more CPUs: still two ops at once
        (None, 1, 1, (1, 1)),  # one CPU: one op at a time
        (3, 2, 2, (3, 3)),
        (0, 1, 2, (0, 0)),
        (1, 2, 2, (1, 1)),
        (1, 1, 2, (1, 1)),
    ],
)
def test_the_process_runs_one_thread_an_op_where_it_trains_and_all_where_it_only_evaluates(
    threads, workers, cpus, expected
):
    """Catches the parent of pool workers left at one thread (its evaluation, Monte-Carlo
    dropout and export on one core while the other idles), a process that trains run on all
    (slower, and other figures than a worker's), its second inter-op thread missing, taken
    where there is one CPU or grown with more CPUs, or the user's --threads overridden (for
    both pools: `--threads 1` is one op at a time)."""
    options = recipe_options.Options(dataset="digits", threads=threads)
    counts = cli_train.process_threads(options, workers, available_cpus=cpus)
    assert (counts["threads"], counts["inter_op_threads"]) == expected
    assert set(counts) == {"threads", "inter_op_threads"}


def test_the_process_counts_its_own_cpus(monkeypatch):
    """Catches the machine's CPU count read where the process may use fewer (its affinity)."""
    monkeypatch.setattr(cli_train.pool, "cpus", lambda: 1)
    options = recipe_options.Options(dataset="digits")
    assert cli_train.process_threads(options, 1) == {"threads": 1, "inter_op_threads": 1}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: no pool, one thread")
def test_train_py_gives_the_same_figures_with_one_worker_and_with_two(tmp_path):
    """Catches figures that depend on the process: with two workers the members train on
    the pool (one thread an op, one op at a time) and this process evaluates, runs
    Monte-Carlo dropout and exports on all its threads; with one it does everything on one
    thread an op, two ops at once. The printed figures, the ensemble table and the
    Monte-Carlo figures must be the same (under op determinism, inference does not depend on
    the threads and training not on the ops at once; training does on an op's threads, which
    is why the parent trains nothing)."""
    flags = [
        "--dataset", "digits", "--cnn", "C-8-3-1-same,M-2-2,F,D-0.2,H-32", "--epochs", "2",
        "--ensemble", "2", "--ensemble_kind", "bagging", "--mc_dropout", "4",
    ]  # fmt: skip
    runs = {}
    for workers in ("1", "2"):
        folder = tmp_path / workers
        folder.mkdir()
        finished = run_train_py(folder, [*flags, "--workers", workers])
        assert finished.returncode == 0, finished.stderr
        printed = json.loads(finished.stdout.splitlines()[-1])
        (run,) = (folder / "work" / "logs").iterdir()
        metrics = json.loads((run / "metrics.json").read_text())
        runs[workers] = (
            {key: printed[key] for key in ("val", "test")},
            json.loads((run / "ensemble.json").read_text()),
            metrics["mc_dropout"],
        )
    assert runs["1"] == runs["2"]


@pytest.mark.parametrize(
    "returned, printed",
    [
        ({"chief": False, "run": None, "export_path": None}, {"chief": False}),
        ({"chief": True}, {}),  # a chief's run has no "chief": True never prints it
        ({}, {}),
    ],
)
def test_only_a_non_chief_workers_line_says_chief_false(monkeypatch, capsys, returned, printed):
    """Catches the printed line's `result.get("chief") is False` read as falsy (every chief's
    line saying chief false) or as not None."""
    result = {**STAND_IN_RESULT, **returned}
    monkeypatch.setattr(cli_train, "_train", lambda *args, **kwargs: result)
    cli_train.main(["--dataset", "digits"])
    expected = {key: result[key] for key in ("run", "val", "test", "export_path")}
    assert json.loads(capsys.readouterr().out) == {**expected, **printed}
