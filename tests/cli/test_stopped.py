"""A command stopped by SIGTERM or Ctrl-C (tfnn.recipe.pool raises KeyboardInterrupt once its
workers are stopped): one line on stderr, exit status 128 + the signal's number, no
traceback. In-process: the command's work raises the KeyboardInterrupt."""

import pytest

import tfnn.experiments
import tfnn.recipe.train
import tfnn.sweep
from tfnn.cli import train as train_cli
from tfnn.experiments import __main__ as experiments_cli
from tfnn.sweep import __main__ as sweep_cli

TINY = ["--model", "mlp", "--hidden_layers", "8", "--epochs", "1", "--mc_dropout", "0"]


def _train(monkeypatch, tmp_path, interrupt):
    monkeypatch.setattr(tfnn.recipe.train, "train", interrupt)
    train_cli.main([*TINY, "--ensemble", "3", "--workers", "2", "--logdir", str(tmp_path)])


def _sweep(monkeypatch, tmp_path, interrupt):
    monkeypatch.setattr(tfnn.sweep, "sweep", interrupt)
    sweep_cli.main([*TINY, "--search", "dropout=0:0.5", "--out", str(tmp_path / "s")])


def _experiments(monkeypatch, tmp_path, interrupt):
    monkeypatch.setattr(tfnn.experiments, "run_experiments", interrupt)
    experiments_cli.main(["dropout", "--quick", "--workers", "2", "--out", str(tmp_path)])


@pytest.mark.parametrize("command", [_train, _sweep, _experiments])
@pytest.mark.parametrize(
    "raised, status, name",
    [(KeyboardInterrupt("SIGTERM"), 143, "SIGTERM"), (KeyboardInterrupt(), 130, "SIGINT")],
)
def test_a_stopped_command_is_one_line_and_128_plus_the_signal(
    monkeypatch, tmp_path, capsys, command, raised, status, name
):
    """Catches each main() letting pool.py's `raise KeyboardInterrupt(...)` (from
    _stopped_by_sigterm) reach the interpreter: a traceback and exit 130 even for SIGTERM."""

    def interrupt(*args, **kwargs):
        raise raised

    try:
        with pytest.raises(SystemExit) as exited:
            command(monkeypatch, tmp_path, interrupt)
    except KeyboardInterrupt:  # would stop the whole test session
        pytest.fail("the KeyboardInterrupt left main(): a traceback, exit status 130")
    err = capsys.readouterr().err
    assert exited.value.code == status
    assert err.splitlines()[-1].endswith(
        f": stopped by {name}; the same command again continues where it stopped"
    )
    assert "Traceback" not in err and err.count("stopped by") == 1
