"""Fixtures of the train command's tests: a TFDS folder, and a small in-process run."""

import pytest
import tensorflow_datasets as tfds

from tfnn.cli import args as cli_args
from tfnn.cli import train as cli_train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    tfds.display_progress_bar(False)
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture
def run(tmp_path, data_dir):
    """Runs the train command in-process with small settings; returns (metrics, run folder)."""

    def run_train(*flags, callbacks=(), logdir="logs"):
        argv = [
            "--data_dir",
            data_dir,
            "--logdir",
            str(tmp_path / logdir),
            "--export_dir",
            str(tmp_path / "saved_models"),
            "--verbose",
            "0",
            *("--model", "mlp", "--hidden_layers", "64", "--init", "glorot", "--batch_size", "50"),
            *("--epochs", "4", "--learning_rate", "0.01", "--label_smoothing", "0"),
            *flags,
        ]
        metrics = cli_train.train(cli_args.parse(argv), callbacks=callbacks)
        folders = [p for p in (tmp_path / logdir).iterdir() if not p.name.startswith(".")]
        return metrics, max(folders, key=lambda p: p.stat().st_mtime)

    return run_train
