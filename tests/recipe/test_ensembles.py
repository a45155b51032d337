"""The ensemble stage and the Monte-Carlo dropout report (docs/lecture.md D6, D7)."""

import csv
import json
import logging
import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import data, files
from tfnn.models import ensemble
from tfnn.recipe import ensembles, errors, fit, plan
from tfnn.recipe.options import Options


def ensemble_checks(metrics, folder, n):
    table = json.loads((folder / "ensemble.json").read_text())
    assert table == metrics["ensemble"]
    assert len(table["members"]) == n and [e["members"] for e in table["ensembles"]] == [
        *range(1, n + 1)
    ]
    # The ensemble of one member is that member; the run's result is the whole ensemble.
    first, single = table["members"][0], table["ensembles"][0]
    assert single["val"]["accuracy"] == pytest.approx(first["val"]["accuracy"])
    assert single["test"]["accuracy"] == pytest.approx(first["test"]["accuracy"])
    assert metrics["test"]["accuracy"] == pytest.approx(table["ensembles"][-1]["test"]["accuracy"])
    assert (folder / "ensemble.png").stat().st_size > 0
    return table


@pytest.mark.parametrize("kind", ["init", "bagging"])
def test_an_ensemble_of_members_is_trained_reported_and_exported(run, kind, caplog):
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    metrics, folder = run(dataset="digits", epochs=2, ensemble=3, ensemble_kind=kind)
    table = ensemble_checks(metrics, folder, 3)
    assert len({m["test"]["accuracy"] for m in table["members"]}) > 1  # the members differ
    for i in (1, 2, 3):
        assert (folder / f"member-{i}" / "history.csv").is_file()
        assert (folder / f"member-{i}" / "model.weights.h5").is_file()
    err = caplog.text
    assert all(f"member {i}/3: training" in err for i in (1, 2, 3))
    # One SavedModel, serving the members' averaged probabilities.
    options = Options(**metrics["options"])
    dataset = data.load("digits", seed=42, data_dir=options.data_dir)
    the_plan = plan.make_plan(options, dataset, tf.distribute.get_strategy())
    members = []
    for i in (1, 2, 3):
        member = fit.build_model(the_plan, name=f"member_{i}")
        member.load_weights(str(folder / f"member-{i}" / "model.weights.h5"))
        members.append(member)
    x = dataset.test[0][:16]
    expected = np.mean([tf.nn.softmax(member(x)).numpy() for member in members], axis=0)
    served = tf.saved_model.load(metrics["export_path"]).signatures["serving_default"]
    probabilities = served(inputs=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_a_checkpoint_ensemble_averages_the_last_epochs(run):
    metrics, folder = run(dataset="digits", epochs=4, ensemble=3, ensemble_kind="checkpoints")
    ensemble_checks(metrics, folder, 3)
    assert sorted(p.name for p in (folder / "snapshots").iterdir()) == [
        "epoch-002.weights.h5",
        "epoch-003.weights.h5",
        "epoch-004.weights.h5",
    ]
    # The last member is the model as training left it.
    with (folder / "history.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert metrics["ensemble"]["members"][-1]["val"]["accuracy"] == pytest.approx(
        float(rows[-1]["val_accuracy"]), abs=1e-6
    )


@pytest.mark.parametrize(
    "figure, members, mode, limit",
    [
        (0.85, [0.95, 0.90], "max", 0.855),  # below 0.90 − 5 % of 0.90
        (0.86, [0.95, 0.90], "max", None),
        (0.333, [0.965], "max", 0.91675),  # the failure this guards against
        (52.6, [48.0, 50.0], "min", 52.5),  # RMSE above 50 + 5 % of 50
        (52.4, [48.0, 50.0], "min", None),
    ],
)
def test_an_ensemble_collapses_when_far_worse_than_its_worst_member(figure, members, mode, limit):
    found = ensembles.collapsed(figure, members, mode)
    assert found == (None if limit is None else pytest.approx(limit, abs=1e-3))


def test_a_collapsed_checkpoint_average_is_refused_and_not_exported(run, tmp_path, monkeypatch):
    """A weight average whose copy lost its state (as Normalization's once did) scores far
    below the epochs it averages, as history.csv recorded them: the run stops before export."""
    averaged = ensemble.weight_averaged

    def broken(model, weights, name):
        copy = averaged(model, weights, name=name)
        if name == "ensemble":
            copy.set_weights([w * 0 for w in copy.get_weights()])
        return copy

    monkeypatch.setattr(ensemble, "weight_averaged", broken)
    with pytest.raises(ensembles.EnsembleCollapsed) as raised:
        run(dataset="digits", epochs=3, ensemble=2, ensemble_kind="checkpoints")
    message = str(raised.value)
    assert "\n" not in message and message.endswith("nothing exported")
    assert "val accuracy" in message
    assert not list((tmp_path / "saved_models").glob("*/[0-9]*"))  # no version exported


def test_an_interrupted_ensemble_resumes_with_the_members_it_finished(run, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    options = {"dataset": "breast_cancer", "epochs": 2, "ensemble": 2}

    class InterruptSecondMember(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            if self.model.name == "member_2":
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(callbacks=[InterruptSecondMember()], **options)
    caplog.clear()
    metrics, folder = run(**options)
    err = caplog.text
    assert "member 1/2: trained earlier" in err and "member 2/2: training" in err
    assert len(metrics["ensemble"]["members"]) == 2


def test_monte_carlo_dropout_is_reported_beside_weight_scaling(run):
    metrics, _ = run(dataset="digits", epochs=2, mc_dropout=8)
    mc = metrics["mc_dropout"]
    assert mc["samples"] == 8
    for split in ("val", "test"):
        assert 0.0 <= mc[split]["ece"] <= 1.0 and 0.0 <= metrics[split]["ece"] <= 1.0
        assert mc[split]["accuracy"] > 0.5
    metrics, _ = run(dataset="digits", epochs=1, dropout=0.0)
    assert "mc_dropout" not in metrics  # no dropout, nothing to average


class Killed(Exception):
    """Stands for a kill in the middle of a write."""


HALF_AN_HDF5_FILE = b"\x89HDF\r\n\x1a\n" + b"\0" * 40


def kill_while_writing(monkeypatch, *parts):
    """Makes the first save_weights to a path containing all of `parts` write half a file
    there and raise, as a kill in the middle of that write would leave it."""
    save = keras.Model.save_weights
    killed = []

    def save_weights(self, filepath, *args, **kwargs):
        if all(part in str(filepath) for part in parts) and not killed:
            killed.append(filepath)
            pathlib.Path(filepath).write_bytes(HALF_AN_HDF5_FILE)
            raise Killed(filepath)
        return save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", save_weights)


def test_a_member_killed_while_its_weights_are_written_is_resumed_not_trusted(
    run, tmp_path, monkeypatch, caplog, epoch_counter
):
    """The rerun does not load the half-written file: it restores member 2's kept backup,
    trains no epoch, and the ensemble's figures are the uninterrupted run's."""
    options = {"dataset": "breast_cancer", "hidden_layers": (16,), "epochs": 2, "ensemble": 2}
    reference, _ = run(logdir="reference", model_name="reference", **options)
    kill_while_writing(monkeypatch, f"member-2{os.sep}", "model.weights.h5")
    with pytest.raises(Killed):
        run(**options)
    monkeypatch.undo()
    folder = next((tmp_path / "logs").glob("2*"))
    # What a kill during an in-place write leaves, and a temporary a kill left.
    (folder / "member-2" / "model.weights.h5").write_bytes(HALF_AN_HDF5_FILE)
    (folder / "member-2" / f"{files.PREFIX}x-model.weights.h5").write_bytes(b"half")
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    metrics, _ = run(callbacks=[epoch_counter], **options)
    said = "\n".join(caplog.messages)
    assert "member 1/2: trained earlier" in said and "member 2/2: training" in said
    assert epoch_counter.epochs == 0
    assert metrics["ensemble"] == reference["ensemble"]
    assert metrics["val"] == reference["val"] and metrics["test"] == reference["test"]
    assert json.loads((folder / "lifecycle.json").read_text())["members"] == [1, 2]
    assert [p for p in tmp_path.rglob("*") if p.name.startswith(files.PREFIX)] == []


def test_a_snapshot_killed_while_written_trains_its_epoch_again(run, tmp_path, monkeypatch):
    """The snapshot is written before the epoch's backup, so its epoch trains again after a
    kill; a snapshot file without its record (epoch 1, never a member) is not read."""
    options = {"dataset": "digits", "epochs": 4, "ensemble": 3, "ensemble_kind": "checkpoints"}
    kill_while_writing(monkeypatch, "epoch-003")
    with pytest.raises(Killed):
        run(**options)
    monkeypatch.undo()
    folder = next((tmp_path / "logs").glob("2*"))
    (folder / "snapshots" / "epoch-001.weights.h5").write_bytes(HALF_AN_HDF5_FILE)
    metrics, _ = run(**options)
    ensemble_checks(metrics, folder, 3)
    assert json.loads((folder / "lifecycle.json").read_text())["snapshots"] == [2, 3, 4]
    with (folder / "history.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    for member, row in zip(metrics["ensemble"]["members"], rows[1:], strict=True):
        assert member["val"]["accuracy"] == pytest.approx(float(row["val_accuracy"]), abs=1e-6)


@pytest.fixture
def two_cpus(monkeypatch):
    """The pool's default count on any machine: two workers."""
    from tfnn.recipe import pool

    monkeypatch.setattr(pool, "cpus", lambda: 2)


def test_members_trained_on_two_workers_equal_members_trained_here(run, two_cpus):
    """Catches a member trained on the pool with another seed or bootstrap sample (bagging
    draws both from the member's index), or members paired with the wrong folder: the
    table, the figures and the exported ensemble's equal one process's."""
    options = {"dataset": "digits", "epochs": 2, "ensemble": 3, "ensemble_kind": "bagging"}
    here, here_folder = run(logdir="one", **options)
    pooled, folder = run(logdir="two", workers=2, **options)
    assert pooled["ensemble"] == here["ensemble"]
    assert (pooled["val"], pooled["test"]) == (here["val"], here["test"])
    for i in (1, 2, 3):  # each member's own log, in its folder
        said = (folder / f"member-{i}" / "train.log").read_text()
        assert said.count(f"member {i}/3: training (seed {41 + i}, bagging)") == 1
        assert not (here_folder / f"member-{i}" / "train.log").exists()


def test_a_killed_member_fails_alone_and_a_rerun_trains_only_it(run, two_cpus, monkeypatch, caplog):
    """Catches one member's death failing the others, a failure that does not name the
    member, or a rerun that trains finished members again."""
    options = {"dataset": "breast_cancer", "epochs": 2, "ensemble": 3, "workers": 2}
    monkeypatch.setenv("TFNN_FAULT_AT", "member-2:SIGKILL")
    with pytest.raises(errors.ItemsFailed) as caught:
        run(**options)
    assert str(caught.value) == "member-2 failed: worker killed by SIGKILL"
    monkeypatch.delenv("TFNN_FAULT_AT")
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    metrics, folder = run(**options)
    lines = caplog.messages
    assert [m for m in lines if "training (seed" in m] == ["member 2/3: training (seed 43, init)"]
    assert sum("trained earlier" in m for m in lines) == 2
    assert len(metrics["ensemble"]["members"]) == 3
