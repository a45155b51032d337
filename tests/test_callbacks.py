import csv
import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import clipping, losses
from tfnn.callbacks import (
    BackupAndRestore,
    ClipTelemetry,
    EpochCSVLogger,
    LastEpochsWeights,
    snapshots,
)
from tfnn.layers import Dense, Dropout


@pytest.mark.parametrize("threshold, rate", [(1e-6, 1.0), (1e6, 0.0)])
def test_clip_telemetry_reaches_the_history(threshold, rate):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 2, size=40)
    model = keras.Sequential([keras.Input((4,)), Dense(2)])
    model.compile(
        clipping.ClipGradients(keras.optimizers.SGD(0.1), "global_norm", threshold),
        losses.SoftmaxNLL(),
    )
    history = model.fit(
        x, y, batch_size=10, epochs=2, verbose=0, callbacks=[ClipTelemetry()]
    ).history
    assert history["clip_rate"] == [rate, rate]
    assert all(
        0 < n <= m for n, m in zip(history["grad_norm"], history["grad_norm_max"], strict=True)
    )


def test_clip_telemetry_needs_a_clipping_optimizer():
    model = keras.Sequential([keras.Input((4,)), Dense(2)])
    model.compile("sgd", losses.SoftmaxNLL())
    with pytest.raises(ValueError, match="ClipGradients"):
        model.fit(np.ones((4, 4)), np.zeros(4), verbose=0, callbacks=[ClipTelemetry()])


def test_last_epochs_weights_keeps_exactly_the_last_epochs(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    seen, saved = [], []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(model.get_weights())
    )
    model.fit(
        x,
        x[:, :2],
        epochs=5,
        verbose=0,
        callbacks=[LastEpochsWeights(tmp_path / "snapshots", 3, on_saved=saved.append), record],
    )
    assert saved == [3, 4, 5]  # told once each file is in place, 1-based
    files = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert files == ["epoch-003.weights.h5", "epoch-004.weights.h5", "epoch-005.weights.h5"]
    final = model.get_weights()
    kept = snapshots(model, tmp_path / "snapshots")
    for snapshot, expected in zip(kept, seen[2:], strict=True):
        for a, b in zip(snapshot, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_weights(), final, strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "snapshots" / "epoch-003.weights.h5").write_bytes(b"half")  # not asked for
    (only,) = snapshots(model, tmp_path / "snapshots", epochs=[5])
    for a, b in zip(only, seen[4], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="last"):
        LastEpochsWeights(tmp_path, 0)


def test_each_epochs_figures_are_over_its_own_steps():
    """grad_norm is the mean and grad_norm_max the maximum of that epoch's step norms."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 2, size=40)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), Dense(2)])
    model.compile(
        clipping.ClipGradients(keras.optimizers.SGD(1.0), "global_norm", 1e6), losses.SoftmaxNLL()
    )
    steps = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: steps.append([]),
        on_train_batch_end=lambda batch, logs: steps[-1].append(logs["grad_norm"]),
    )
    history = model.fit(
        x, y, batch_size=10, epochs=3, verbose=0, callbacks=[ClipTelemetry(), record]
    ).history
    np.testing.assert_allclose(history["grad_norm"], [np.mean(s) for s in steps], rtol=1e-6)
    np.testing.assert_allclose(history["grad_norm_max"], [max(s) for s in steps], rtol=1e-6)
    assert max(steps[0]) > max(steps[-1])  # a carried-over maximum would show


def test_clip_telemetry_writes_a_scalar_at_every_compiled_calls_end(tmp_path):
    """With steps_per_execution 3 and 9 steps per epoch, Keras ends a call at steps 3, 6, …, 18
    of two epochs: each is written, stepped by the optimizer's iterations (a fixed every-N-steps
    count would miss every call end that is not a multiple of N)."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(90, 4)).astype("float32"), rng.integers(0, 2, size=90)
    model = keras.Sequential([keras.Input((4,)), Dense(2)])
    model.compile(
        clipping.ClipGradients(keras.optimizers.SGD(0.1), "global_norm", 1.0),
        losses.SoftmaxNLL(),
        steps_per_execution=3,
    )
    telemetry = ClipTelemetry(tmp_path / "clipping")
    model.fit(x, y, batch_size=10, epochs=2, verbose=0, callbacks=[telemetry])
    steps = {}
    for path in (tmp_path / "clipping").glob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    assert steps == {"grad_norm": [*range(3, 19, 3)], "clip_rate": [*range(3, 19, 3)]}


def test_the_epoch_csv_logger_counts_epochs_from_1(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.ones((8, 3), "float32")
    path = tmp_path / "history.csv"
    model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[EpochCSVLogger(str(path))])
    with path.open() as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["1", "2", "3"]


def small_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), losses.SoftmaxNLL())
    return model


XY = (np.random.default_rng(0).normal(size=(8, 3)), np.array([0, 1] * 4))


def test_backup_and_restore_leaves_the_last_complete_backup_when_a_save_dies(tmp_path, monkeypatch):
    """Catches Keras's `self.model.save_weights(filepath=self._weights_path)`, written in
    place: a kill mid-write left a broken latest.weights.h5 and the rerun started again."""
    model, backup = small_model(), tmp_path / "backup"
    model.fit(
        *XY, epochs=1, verbose=0, callbacks=[BackupAndRestore(backup, delete_checkpoint=False)]
    )
    before = {p.name: p.read_bytes() for p in backup.iterdir()}
    assert json.loads(before["training_metadata.json"]) == {
        "epoch": 1,
        "batch": 0,
        "seed_states": [],
    }

    def dies_midway(self, filepath, overwrite=True, **kwargs):
        with open(filepath, "wb") as half:
            half.write(b"\x89HDF\r\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save_weights", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            *XY, epochs=3, verbose=0, callbacks=[BackupAndRestore(backup, delete_checkpoint=False)]
        )
    assert {p.name: p.read_bytes() for p in backup.iterdir()} == before  # no temporaries


def test_a_backup_it_wrote_restores_in_a_new_fit_at_the_next_epoch(tmp_path):
    """Catches a backup under other names or a wrong epoch (Keras reads "epoch" as the
    epochs done): the resumed fit runs only the missing epochs, from the saved weights,
    and ends where an uninterrupted fit ends."""
    backup = tmp_path / "backup"
    model = small_model()
    model.fit(*XY, epochs=2, verbose=0, shuffle=False, callbacks=[BackupAndRestore(backup)])
    whole = model.get_weights()
    first = small_model()
    first.fit(
        *XY,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[BackupAndRestore(backup, delete_checkpoint=False)],
    )
    resumed = small_model(seed=1)  # other initial weights: the backup's must be loaded
    history = resumed.fit(
        *XY, epochs=2, verbose=0, shuffle=False, callbacks=[BackupAndRestore(backup)]
    )
    assert history.epoch == [1]
    for got, expected in zip(resumed.get_weights(), whole, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not backup.exists()  # Keras's delete_checkpoint still applies


def dropout_model(seed=0):
    """Two dropout layers (tfnn's and Keras's) between dense layers: each fit step draws
    masks from their seed generators."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            Dense(8, activation="relu"),
            Dropout(0.5),
            Dense(8, activation="relu"),
            keras.layers.Dropout(0.5),
            Dense(2),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), losses.SoftmaxNLL())
    return model


def test_a_resumed_fit_draws_the_dropout_masks_an_uninterrupted_one_draws(tmp_path):
    """Catches the dropout layers' seed generators left out of the backup (Keras's own
    saves the weights and the optimizer only): the resumed epochs then drew the masks of
    the first epochs again, and a run killed and rerun ended at another model than the
    same run uninterrupted."""
    backup = tmp_path / "backup"
    whole = dropout_model()
    whole.fit(*XY, epochs=3, verbose=0, shuffle=False, batch_size=4)
    first = dropout_model()
    first.fit(
        *XY,
        epochs=1,
        verbose=0,
        shuffle=False,
        batch_size=4,
        callbacks=[BackupAndRestore(backup, delete_checkpoint=False)],
    )
    resumed = dropout_model(seed=1)  # another process: other weights and seed states
    history = resumed.fit(
        *XY, epochs=3, verbose=0, shuffle=False, batch_size=4, callbacks=[BackupAndRestore(backup)]
    )
    assert history.epoch == [1, 2]
    for got, expected in zip(resumed.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_a_backup_of_another_models_seed_generators_is_refused_by_count(tmp_path):
    """Catches seed states assigned by position to a model with another number of seed
    generators (the wrong layer's masks, or an IndexError mid-resume): one line naming the
    counts."""
    backup = tmp_path / "backup"
    dropout_model().fit(
        *XY, epochs=1, verbose=0, callbacks=[BackupAndRestore(backup, delete_checkpoint=False)]
    )
    metadata = json.loads((backup / "training_metadata.json").read_text())
    assert len(metadata["seed_states"]) == 2
    metadata["seed_states"].append([1, 0])
    (backup / "training_metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="this model: 2 seed generator states. Received: 3"):
        dropout_model().fit(*XY, epochs=2, verbose=0, callbacks=[BackupAndRestore(backup)])


def test_snapshots_of_a_folder_are_oldest_first_past_epoch_999(tmp_path):
    """At the file names' width (epoch-999, 3 digits) and past it (epoch-1000): catches
    `sorted(glob(...))`, which orders by name and puts epoch 1000 before epoch 999."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    folder = tmp_path / "snapshots"
    folder.mkdir()
    for epoch in (2, 999, 1000):
        model.set_weights([np.full((1, 1), epoch, "float32"), np.zeros(1, "float32")])
        model.save_weights(str(folder / f"epoch-{epoch:03d}.weights.h5"))
    found = [float(weights[0][0, 0]) for weights in snapshots(model, folder)]
    assert found == [2.0, 999.0, 1000.0]


def test_last_epochs_weights_takes_one_epoch_at_its_limit():
    """At the limit of `last` (1: the final epoch alone) and past it (0, refused above):
    catches `low=2`."""
    assert LastEpochsWeights("unused", 1).last == 1


def test_a_backup_without_seed_states_resumes_from_its_weights(tmp_path):
    """A backup an earlier version wrote (no `seed_states`): catches `states is None` read as
    zero states (a ValueError naming 2 against 0) or as a KeyError."""
    backup = tmp_path / "backup"
    dropout_model().fit(
        *XY, epochs=1, verbose=0, callbacks=[BackupAndRestore(backup, delete_checkpoint=False)]
    )
    metadata = json.loads((backup / "training_metadata.json").read_text())
    del metadata["seed_states"]
    (backup / "training_metadata.json").write_text(json.dumps(metadata))
    history = dropout_model().fit(*XY, epochs=2, verbose=0, callbacks=[BackupAndRestore(backup)])
    assert history.epoch == [1]


def test_a_double_checkpoint_keeps_the_previous_epochs_backup(tmp_path):
    """The first save (nothing previous to keep: the limit of `exists()`) and the second
    (the first's files copied whole): catches a copy of files not there yet, and the
    previous backup not kept."""
    backup = tmp_path / "backup"
    callback = BackupAndRestore(backup, delete_checkpoint=False, double_checkpoint=True)
    small_model().fit(*XY, epochs=2, verbose=0, callbacks=[callback])
    latest = json.loads(pathlib.Path(callback._training_metadata_path).read_text())
    previous = json.loads(pathlib.Path(callback._prev_training_metadata_path).read_text())
    assert (latest["epoch"], previous["epoch"]) == (2, 1)
    assert pathlib.Path(callback._prev_weights_path).stat().st_size > 0
