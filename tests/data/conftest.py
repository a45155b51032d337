"""A small in-process training run for the data tests."""

import pytest

import tfnn
from tfnn import data


@pytest.fixture
def small_run(tmp_path, monkeypatch):
    """`small_run(dataset, in_memory_bytes, **options)`: a small MLP's metrics, with
    `tfnn.data.loading.IN_MEMORY_BYTES` set for the run (0: every split streamed)."""

    def run(dataset, in_memory_bytes, **options):
        monkeypatch.setattr(data.loading, "IN_MEMORY_BYTES", in_memory_bytes)
        folder = tmp_path / f"run{in_memory_bytes}"
        settings = {"model": "mlp", "hidden_layers": (16,), "learning_rate": 0.01, "verbose": 0}
        return tfnn.train(
            dataset=str(dataset),
            logdir=str(folder / "logs"),
            export_dir=str(folder / "saved_models"),
            **{**settings, **options},
        )

    return run
