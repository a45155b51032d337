"""python -m tfnn.experiments: arguments are checked before TensorFlow is imported."""

import subprocess
import sys

import pytest

from tfnn import experiments
from tfnn.experiments import NAMES, REPORT_TITLE, __main__, command


def test_an_unknown_name_is_one_line_and_exit_2_without_importing_tensorflow(tmp_path):
    script = (
        "import sys\nfrom tfnn.experiments import __main__\ntry:\n"
        "    __main__.main(['init', 'no_such_experiment', '--out', 'out'])\n"
        "except SystemExit as e:\n    print(e.code, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert result.stdout.split() == ["2", "False"]
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("python -m tfnn.experiments: error: Expected one of 'init'")
    assert result.stderr.rstrip().endswith("Received: name='no_such_experiment'")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_experiments_replay_and_draw_without_tensorflow():
    """Catches TensorFlow imported at the top of an experiment module, of common or of the
    report: the parent of the pool's workers, which replays the experiments and draws them,
    would import it (~4 s of CPU beside the workers' own imports, ~0.6 GiB), and a helper of
    `training` not reached through common (common.TRAINING short of one)."""
    script = (
        "import importlib, sys\n"
        "from tfnn.experiments import NAMES, __main__, common, report\n"
        "for name in NAMES:\n"
        "    importlib.import_module(f'tfnn.experiments.{name}')\n"
        "before = 'tensorflow' in sys.modules\n"
        "from tfnn.experiments import training\n"
        "own = {n for n, v in vars(training).items() if not n.startswith('_')\n"
        "       and getattr(v, '__module__', None) == training.__name__}\n"
        "reached = all(getattr(common, n) is getattr(training, n) for n in own)\n"
        "print(before, own == common.TRAINING and reached, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "True", "True"]


def test_the_module_runs_as_a_script_and_exits_2_on_a_bad_flag(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tfnn.experiments", "--fast"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unrecognized arguments: --fast" in result.stderr


def test_help_lists_every_experiment(capsys):
    with pytest.raises(SystemExit) as exit_info:
        __main__.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in NAMES)


def test_the_command_of_every_experiment_is_the_bare_command():
    assert command(NAMES, quick=False) == "python -m tfnn.experiments"
    assert command(["init"], quick=True) == "python -m tfnn.experiments init --quick"


@pytest.mark.parametrize(
    "out",
    [
        pytest.param(lambda tmp: tmp / "file", id="a file"),
        pytest.param(lambda tmp: tmp / "file" / "sub", id="below a file"),
        pytest.param(lambda tmp: "/sys/tfnn-experiments", id="a read-only file system"),
    ],
)
def test_an_output_folder_that_cannot_be_written_is_one_line_and_exit_2_before_any_run(
    tmp_path, monkeypatch, capsys, out
):
    (tmp_path / "file").write_text("kept\n")
    out = str(out(tmp_path))
    if out.startswith("/sys") and not sys.platform.startswith("linux"):
        pytest.skip("sysfs is Linux's")
    ran = []
    monkeypatch.setattr(__main__.experiments, "run_experiments", lambda *a, **k: ran.append(a))
    with pytest.raises(SystemExit) as exit_info:
        __main__.main(["init", "--quick", "--out", out])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m tfnn.experiments: error: Expected a folder this process")
    assert err.count("\n") == 1 and err.rstrip().endswith(f"Received: out={out!r}")
    assert ran == []
    assert (tmp_path / "file").read_text() == "kept\n"


@pytest.mark.parametrize("flags, workers", [([], 2), (["--workers", "1"], 1)])
def test_a_writable_output_folder_is_created_and_the_experiments_run_into_it(
    tmp_path, monkeypatch, prestart_calls, flags, workers
):
    """Catches the checked output folder not passed on, the pool's workers started after
    this process's own start-up (nothing overlapped) or not as many as the pool takes (1 is
    none: everything runs here), and this process's TensorFlow configured where its workers
    measure (it would import TensorFlow beside them for nothing: ~4 s of CPU, ~0.6 GiB) or
    left unconfigured where it measures itself (threads, determinism)."""
    from tfnn.recipe import process

    ran = prestart_calls
    monkeypatch.setattr(process, "configure", lambda **k: ran.append(("configured", k)))
    monkeypatch.setattr(
        __main__.experiments, "run_experiments", lambda names, **k: ran.append((names, k))
    )
    __main__.main(["init", "--quick", "--out", str(tmp_path / "new" / "out"), *flags])
    out = str(tmp_path / "new" / "out")
    configured = [("configured", {"threads": 1, "deterministic": True})] if workers == 1 else []
    assert ran == [
        ("prestarted", workers),
        *configured,
        (("init",), {"quick": True, "out": out, "workers": None if workers == 2 else 1}),
        ("stopped", workers),
    ]
    assert list((tmp_path / "new" / "out").iterdir()) == []  # the probe file is gone


def _put(out, entries):
    """Makes each (path, text) under `out`: a file, or a folder when text is None."""
    for path, text in entries:
        if text is None:
            (out / path).mkdir()
        else:
            (out / path).write_text(text)


@pytest.mark.parametrize(
    "entries, named",
    [
        ([("init", None), ("init/my_notes.txt", "x")], "init"),
        ([("init", "a file")], "init"),
        ([("init", None), ("init/result.json", '{"name": "dropout"}')], "init"),
        ([("init", None), ("init/.experiment", "dropout\n")], "init"),
        ([("README.md", "# My project\n")], "README.md"),
        ([("README.md", "")], "README.md"),
    ],
)
def test_a_folder_or_readme_of_the_users_is_one_line_and_exit_2_nothing_replaced(
    tmp_path, monkeypatch, capsys, entries, named
):
    """Catches _write's `shutil.rmtree(folder, ignore_errors=True)` and report.write's
    README.md taken as tfnn's whatever they hold (the user's files deleted, overwritten)."""
    _put(tmp_path, entries)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    ran = []
    monkeypatch.setattr(__main__.experiments, "_write", lambda *a: ran.append(a))
    monkeypatch.setattr(__main__.experiments, "_run_in_pool", lambda *a: ran.append(a))
    with pytest.raises(SystemExit) as exit_info:
        __main__.main(["init", "--quick", "--workers", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and named in err
    assert ran == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [("init", None)],  # empty
        [("init", None), ("init/result.json", '{"name": "init"}')],
        [("README.md", "# The lecture's claims, measured\n\nold\n")],
        [("dropout", None), ("dropout/notes", "x")],  # not run: left alone
        [("init", None), ("init/.experiment", "init\n"), ("init/a.png", "")],  # stopped
    ],
)
def test_tfnns_own_folder_and_report_are_replaced(tmp_path, entries):
    """The limit of the refusal above: an empty folder, the experiment's own result.json,
    the report's first line, and another experiment's folder (not run) pass."""
    _put(tmp_path, entries)
    experiments.check_out(("init",), tmp_path)


def test_an_empty_out_is_refused_in_one_line(monkeypatch, capsys):
    """Catches `--out ""` taken as the current folder ("see /README.md")."""
    monkeypatch.setattr(__main__.experiments, "run_experiments", lambda *a, **k: None)
    with pytest.raises(SystemExit) as exit_info:
        __main__.main(["init", "--quick", "--out", ""])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "Expected a non-empty path. Received: out=''" in err


@pytest.mark.parametrize(
    "make, named",
    [
        (lambda out: (out / "init").symlink_to(out / "elsewhere"), "init"),  # dangling
        (lambda out: ((out / "real").mkdir(), (out / "init").symlink_to(out / "real")), "init"),
        (lambda out: (out / "README.md").symlink_to(out / "missing.md"), "README.md"),
        (lambda out: (out / "README.md").write_text(REPORT_TITLE + "!\n"), "README.md"),
        (lambda out: (out / "README.md").write_bytes(b"\xff\xfe"), "README.md"),
    ],
)
def test_a_link_or_a_title_past_the_reports_is_refused(tmp_path, make, named):
    """Past the limits of check_out's acceptance: a symbolic link where the experiment's
    folder goes (even to an empty folder: `rmtree` would delete what it points at, or fail),
    a README.md link to nothing, a first line that only starts as the report's, a README.md
    that is not text. Catches `exists()` without `is_symlink()` and `startswith` for `==`."""
    make(tmp_path)
    with pytest.raises(ValueError, match=named):
        experiments.check_out(("init",), tmp_path)


@pytest.mark.parametrize("text", [REPORT_TITLE, REPORT_TITLE + "\n", REPORT_TITLE + "\nold\n"])
def test_the_reports_title_with_or_without_its_line_end_is_the_report(tmp_path, text):
    """At the limit: the title alone, without a line end, is tfnn's report."""
    (tmp_path / "README.md").write_text(text)
    experiments.check_out(("init",), tmp_path)


def test_a_name_given_twice_runs_once_in_its_first_place(tmp_path, monkeypatch, prestart_calls):
    """Catches the names taken as given (an experiment run twice, its folder replaced while
    the report counts it twice) or reordered."""
    ran = prestart_calls
    run = lambda names, **kwargs: ran.append(names)  # noqa: E731
    monkeypatch.setattr(__main__.experiments, "run_experiments", run)
    __main__.main(["dropout", "init", "dropout", "--workers", "1", "--out", str(tmp_path)])
    assert ran[1] == ("dropout", "init")


def test_no_name_runs_every_experiment(tmp_path, monkeypatch, prestart_calls):
    """The limit of the names given (none): catches an empty tuple run (nothing measured,
    an empty report) instead of all of them."""
    ran = prestart_calls
    run = lambda names, **kwargs: ran.append(names)  # noqa: E731
    monkeypatch.setattr(__main__.experiments, "run_experiments", run)
    __main__.main(["--workers", "1", "--out", str(tmp_path)])
    assert ran[1] == NAMES


def _run_with(monkeypatch, prestart_calls, tmp_path, run, *flags):
    """main() on `tmp_path` with run_experiments replaced by `run`; its SystemExit code (None:
    returned)."""
    monkeypatch.setattr(__main__.experiments, "run_experiments", run)
    try:
        __main__.main(["init", "--out", str(tmp_path), *flags])
    except SystemExit as stop:
        return stop.code
    return None


def test_failed_measurements_are_one_line_each_and_exit_1(
    tmp_path, monkeypatch, capsys, prestart_calls
):
    """Catches the exit status (2 is a refusal, before anything ran) or the lines' prefix
    and text changed: each failure is `prog: its name and last line`, nothing else."""
    from tfnn.recipe import errors

    failure = errors.ItemsFailed({"init measure()": "ValueError: bad", "b": "OSError: full"})

    def run(names, **kwargs):
        raise failure

    assert _run_with(monkeypatch, prestart_calls, tmp_path, run, "--workers", "2") == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"python -m tfnn.experiments: {line}" for line in str(failure).splitlines()]
    assert len(lines) == 2 and lines[0].endswith("ValueError: bad")


def test_a_stop_is_one_line_and_128_plus_the_signal(tmp_path, monkeypatch, capsys, prestart_calls):
    """Catches the stop's line without the command's name (`ending.stopped`'s prog)."""

    def run(names, **kwargs):
        raise KeyboardInterrupt("SIGTERM")

    assert _run_with(monkeypatch, prestart_calls, tmp_path, run, "--workers", "2") == 143
    assert capsys.readouterr().err == (
        "python -m tfnn.experiments: stopped by SIGTERM; the same command again continues "
        "where it stopped\n"
    )


def test_log_lines_and_the_closing_line_name_the_command_and_the_minutes(
    tmp_path, monkeypatch, capsys, prestart_calls
):
    """Catches the log lines printed without the command's name (`print_log_lines`'s prog),
    and the minutes miscounted (seconds × 60, a start added, another divisor)."""
    import logging

    clock = iter([100.0, 700.0])
    monkeypatch.setattr(__main__.time, "perf_counter", lambda: next(clock))

    def run(names, **kwargs):
        logging.getLogger("tfnn.recipe.pool").info("init measure(): 4 s")

    assert _run_with(monkeypatch, prestart_calls, tmp_path, run, "--workers", "2") is None
    captured = capsys.readouterr()
    assert captured.err == "python -m tfnn.experiments: init measure(): 4 s\n"
    assert captured.out == (
        f"python -m tfnn.experiments: 1 experiments in 10.0 min; see {tmp_path}/README.md\n"
    )


def test_one_worker_runs_on_where_tensorflow_was_configured_before(
    tmp_path, monkeypatch, prestart_calls
):
    """main() called in a process where TensorFlow already runs (configure raises
    RuntimeError): catches the error let through instead of the run going on."""
    from tfnn.recipe import process

    def configure(**kwargs):
        raise RuntimeError("Intra op parallelism cannot be modified after initialization.")

    ran = []
    monkeypatch.setattr(process, "configure", configure)
    run = lambda names, **kwargs: ran.append(names)  # noqa: E731
    assert _run_with(monkeypatch, prestart_calls, tmp_path, run, "--workers", "1") is None
    assert ran == [("init",)]


def test_the_defaults_out_and_tensorflows_log_level(monkeypatch, prestart_calls, tmp_path):
    """Catches another default folder, and TensorFlow's C++ log lines (level 2: errors only)
    left on, or a level the user set overridden."""
    assert __main__.parser().parse_args([]).out == "experiments"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    _run_with(monkeypatch, prestart_calls, tmp_path, lambda names, **kwargs: None)
    assert __main__.os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    _run_with(monkeypatch, prestart_calls, tmp_path, lambda names, **kwargs: None)
    assert __main__.os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_an_unknown_name_is_refused_naming_the_argument(tmp_path, capsys):
    """In this process (the subprocess test above checks the import): catches the refusal
    naming another argument than `name`."""
    with pytest.raises(SystemExit) as stop:
        __main__.main(["nope", "--out", str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith("Received: name='nope'")
