"""The ensemble stage and the Monte-Carlo dropout report (docs/lecture.md D6, D7)."""

import csv
import functools
import json
import logging
import os
import pathlib
import random
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import callbacks as tfnn_callbacks
from tfnn import data, files
from tfnn.models import ensemble
from tfnn.recipe import ensembles, errors, fit, phases, plan, process
from tfnn.recipe import evaluate as evaluation
from tfnn.recipe import run as runs
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


@pytest.fixture
def zeroed_average(monkeypatch):
    """Every weight of a checkpoint ensemble's weight average set to 0 (a copy that lost its
    state, as Normalization's once did); the members keep theirs."""
    real = ensemble.weight_averaged

    def zeroed(model, weights, name):
        copy = real(model, weights, name=name)
        if name == "ensemble":
            copy.set_weights([w * 0 for w in copy.get_weights()])
        return copy

    monkeypatch.setattr(ensemble, "weight_averaged", zeroed)


def test_a_collapsed_checkpoint_average_is_refused_and_not_exported(run, tmp_path, zeroed_average):
    """A weight average whose copy lost its state (as Normalization's once did) scores far
    below the epochs it averages, as history.csv recorded them: the run stops before export."""
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
    kill; a snapshot file without its record (epoch 1, never a member) is not read; and the
    figures are the uninterrupted run's (catches members taken from other epochs, or the
    resumed epochs drawing the first epochs' dropout masks again)."""
    options = {"dataset": "digits", "epochs": 4, "ensemble": 3, "ensemble_kind": "checkpoints"}
    reference, _ = run(logdir="reference", model_name="reference", **options)
    kill_while_writing(monkeypatch, "epoch-003")
    with pytest.raises(Killed):
        run(**options)
    monkeypatch.undo()
    folder = next((tmp_path / "logs").glob("2*"))
    (folder / "snapshots" / "epoch-001.weights.h5").write_bytes(HALF_AN_HDF5_FILE)
    metrics, _ = run(**options)
    ensemble_checks(metrics, folder, 3)
    assert metrics["ensemble"] == reference["ensemble"]
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
    # the pooled run's export, written while its workers measured the table, serves the same
    x = tf.constant(data.load("digits", seed=42).test[0][:32], tf.float32)
    served = [
        tf.saved_model.load(metrics["export_path"]).signatures["serving_default"](inputs=x)
        for metrics in (here, pooled)
    ]
    np.testing.assert_array_equal(served[0]["probabilities"], served[1]["probabilities"])
    assert not list(folder.parent.rglob("export.*"))  # nothing written ahead is left
    assert not set(runs.RUN_STATE) & {*pooled, *here}  # metrics.json holds results only
    for i in (1, 2, 3):  # each member's own log, in its folder
        said = (folder / f"member-{i}" / "train.log").read_text()
        assert said.count(f"member {i}/3: training (seed {41 + i}, bagging)") == 1
        assert not (here_folder / f"member-{i}" / "train.log").exists()


def test_a_killed_member_fails_alone_and_a_rerun_trains_only_it(
    run, two_cpus, monkeypatch, caplog, tmp_path
):
    """Catches one member's death failing the others, a failure that does not name the
    member, or a rerun that trains finished members again (or the one left in this
    process, whose threads may not be a worker's one)."""
    options = {"dataset": "breast_cancer", "epochs": 2, "ensemble": 3, "workers": 2}
    monkeypatch.setenv("TFNN_FAULT_AT", "member-2:SIGKILL")
    with pytest.raises(errors.ItemsFailed) as caught:
        run(**options)
    assert str(caught.value) == "member-2 failed: worker killed by SIGKILL"
    logs = {i: f"member-{i}/train.log" for i in (1, 2, 3)}
    folder = next((tmp_path / "logs").glob("2*"))
    before = {i: (folder / log).read_text() for i, log in logs.items()}
    monkeypatch.delenv("TFNN_FAULT_AT")
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    metrics, folder = run(**options)
    lines = caplog.messages
    assert [m for m in lines if "training (seed" in m] == []  # nothing trained here
    assert sum("trained earlier" in m for m in lines) == 3
    after = {i: (folder / log).read_text() for i, log in logs.items()}
    assert after[1] == before[1] and after[3] == before[3]
    assert after[2][len(before[2]) :].count("member 2/3: training (seed 43, init)") == 1
    assert len(metrics["ensemble"]["members"]) == 3


# In this process, on a tiny data set (3 classes, 4 features, 20 training examples): the
# stage's functions, without a run around them.


@pytest.fixture
def tiny_plan(tiny_plan):
    """The recipe's tiny plan (conftest.py) of an ensemble of two."""
    return functools.partial(tiny_plan, ensemble=2)


def breast_cancer_plan(data_dir, **options):
    """The plan of a small MLP on breast_cancer, as a pool worker makes it from the options."""
    from tfnn.recipe import train

    checked = Options(
        **{
            "dataset": "breast_cancer",
            "data_dir": data_dir,
            "model": "mlp",
            "hidden_layers": (4,),
            "batch_size": 200,
            "epochs": 1,
            "verbose": 0,
            "ensemble": 2,
            **options,
        }
    )
    return train._prepare(checked, tf.distribute.get_strategy())


def probabilities(model, x):
    return tf.nn.softmax(model(x)).numpy()


def test_independent_members_train_with_their_seeds_and_the_table_evaluates_them(
    run_folder, tiny_plan, tmp_path, caplog
):
    """init, 2 members in this process: member i trains with seed + i − 1, its weights are
    written and recorded; the table holds each member's figures and those of the ensembles
    of 1 and 2 members; the model returned averages both members' probabilities."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    the_plan, folder = tiny_plan(seed=7), run_folder(tmp_path)
    model, table = ensembles.train_ensemble(the_plan, folder)
    said = caplog.messages
    assert "member 1/2: training (seed 7, init)" in said
    assert "member 2/2: training (seed 8, init)" in said
    assert folder.lifecycle()["members"] == [1, 2]
    members = []
    for i in (1, 2):
        member = fit.build_model(the_plan, name=f"member_{i}")
        member.load_weights(str(ensembles.member_weights(folder, i)))
        members.append(member)
    assert table["kind"] == "init" and table["metric"] == "accuracy"
    for figures, member in zip(table["members"], members, strict=True):
        assert figures == evaluation.evaluate(the_plan, member)
    assert [row["members"] for row in table["ensembles"]] == [1, 2]
    assert table["ensembles"][0]["val"] == pytest.approx(table["members"][0]["val"])
    expected = evaluation.evaluate(the_plan, ensemble.ensemble(members, "softmax"))
    for split in ("val", "test"):
        assert table["ensembles"][1][split] == pytest.approx(expected[split])
    x = the_plan.dataset.test.x
    average = np.mean([probabilities(m, x) for m in members], axis=0)
    np.testing.assert_allclose(probabilities(model, x), average, rtol=1e-5, atol=1e-6)
    line = f"member 1/2: {evaluation.summary(table['members'][0], 'accuracy')}"
    assert line in said
    assert f"ensemble of members 1..2: {evaluation.summary(table['ensembles'][1], 'accuracy')}" in (
        said
    )


def test_a_bagging_member_trains_on_its_seeds_bootstrap_sample(run_folder, tiny_plan, tmp_path):
    """Member 2 of seed 7 equals a fit with seed 8 on bootstrap sample 8 (and not the fit
    without a bootstrap sample)."""
    the_plan = tiny_plan(seed=7, ensemble_kind="bagging")
    member = ensembles.train_member(the_plan, run_folder(tmp_path), 2)
    twin = fit.fit(the_plan, run_folder(tmp_path / "twin"), seed=8, bootstrap_seed=8).model
    plain = fit.fit(the_plan, run_folder(tmp_path / "plain"), seed=8).model
    for mine, its in zip(member.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, its)
    assert any(
        not np.array_equal(mine, its)
        for mine, its in zip(member.get_weights(), plain.get_weights(), strict=True)
    )
    assert member.name == "member_2"


def test_recorded_members_are_loaded_not_trained_again(
    run_folder, tiny_plan, tmp_path, caplog, epoch_counter
):
    the_plan, folder = tiny_plan(), run_folder(tmp_path)
    _, first = ensembles.train_ensemble(the_plan, folder)
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    stopwatch = phases.Stopwatch()
    _, again = ensembles.train_ensemble(the_plan, folder, [epoch_counter], stopwatch)
    assert epoch_counter.epochs == 0 and again == first
    saved = ensembles.member_weights(folder, 2)
    assert f"member 2/2: trained earlier, loading {saved}" in caplog.messages
    assert "build" in stopwatch.seconds and "fit" not in stopwatch.seconds


def test_a_member_trains_with_the_callbacks_given(run_folder, tiny_plan, tmp_path, epoch_counter):
    the_plan = tiny_plan(epochs=2)
    ensembles.train_ensemble(the_plan, run_folder(tmp_path), [epoch_counter])
    assert epoch_counter.epochs == 2 * 2


def test_a_checkpoint_ensemble_takes_the_last_epochs_and_their_history(
    run_folder, tiny_plan, tmp_path, caplog
):
    """3 epochs, 2 members: epochs 2 and 3, weights averaged by default; the collapse check
    reads history.csv's figures of those epochs."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    the_plan, folder = tiny_plan(epochs=3, ensemble_kind="checkpoints"), run_folder(tmp_path)
    model, table = ensembles.train_ensemble(the_plan, folder)
    assert "training one model; its last 2 epochs are the members" in caplog.messages
    assert folder.snapshots_done() == [2, 3]
    assert table["kind"] == "checkpoints" and len(table["members"]) == 2
    history = folder.history()
    assert table["members"][1]["val"]["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    snapshots = tfnn_callbacks.snapshots(model, folder.path / "snapshots", [2, 3])
    averaged = [np.mean(ws, axis=0) for ws in zip(*snapshots, strict=True)]
    for mine, expected in zip(model.get_weights(), averaged, strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-6, atol=1e-7)


def test_a_checkpoint_ensemble_can_average_outputs(run_folder, tiny_plan, tmp_path):
    the_plan = tiny_plan(epochs=2, ensemble_kind="checkpoints", checkpoint_average="outputs")
    folder = run_folder(tmp_path)
    model, table = ensembles.train_ensemble(the_plan, folder)
    members = [
        ensemble.weight_averaged(model.layers[1], [w], name=f"m{i}")
        for i, w in enumerate(
            tfnn_callbacks.snapshots(model.layers[1], folder.path / "snapshots", [1, 2])
        )
    ]
    x = the_plan.dataset.test.x
    average = np.mean([probabilities(m, x) for m in members], axis=0)
    np.testing.assert_allclose(probabilities(model, x), average, rtol=1e-5, atol=1e-6)


def test_members_missing_go_to_the_pool_with_their_folders_and_one_thread(
    run_folder, tiny_plan, tmp_path, pool_here
):
    """With workers 2 and two members to train, the pool (two workers, one thread each, op
    determinism) gets one item per missing member (its index, the run's folders, its log);
    recorded members are not sent again. Catches a member sent twice, to another folder or
    log, or workers started with TensorFlow's default threads."""
    pool_here.plan = tiny_plan(ensemble=3, workers=2, mc_dropout=0)
    folder = run_folder(tmp_path)
    ensembles.train_member(pool_here.plan, folder, 2)
    ensembles.train_ensemble(pool_here.plan, folder, workers=2)
    ((workers, start, describe, here),) = pool_here.pools
    assert (workers, here) == (2, False)
    assert (start.func, start.keywords) == (
        process.configure,
        {"threads": 1, "deterministic": True},
    )
    members = [item for item in pool_here.items if item.function is ensembles.pool_member]
    assert [item.name for item in members] == ["member-1", "member-3"]
    assert members[1].kwargs == {
        "options": pool_here.plan.options.as_dict(),
        "path": str(folder.path),
        "resume": str(folder.resume),
        "index": 3,
    }
    assert members[1].log == str(folder.path / "member-3" / "train.log")
    assert describe({"epochs": 3}) == "3 epochs"
    assert folder.lifecycle()["members"] == [1, 2, 3]


def test_a_member_trained_on_the_pool_is_measured_there(run_folder, tiny_plan, tmp_path, pool_here):
    """A member the pool trains records its figures where it trained, so the table's
    measurement sends no item for it; one trained here (before a resume) gets its item.
    Catches the figures measured twice, or a member trained here left without a row."""
    pool_here.plan = tiny_plan(ensemble=3, workers=2, mc_dropout=0)
    folder = run_folder(tmp_path)
    ensembles.train_member(pool_here.plan, folder, 2)
    _, table = ensembles.train_ensemble(pool_here.plan, folder, workers=2)
    names = [item.name for item in pool_here.items if item.function is ensembles.pool_figures]
    assert names == ["ensemble-2", "ensemble-1", "figures-2"]
    assert folder.member_figures(2) is None
    for i in (1, 3):
        assert table["members"][i - 1] == folder.member_figures(i)
        member = fit.build_model(pool_here.plan, name=f"member_{i}")
        member.load_weights(str(ensembles.member_weights(folder, i)))
        assert folder.member_figures(i) == evaluation.evaluate(pool_here.plan, member)


@pytest.mark.parametrize("dropout, samples", [(0.5, 3), (0.5, 0), (0.0, 3)])
def test_a_table_measured_on_the_pool_equals_the_one_measured_here(
    run_folder, tiny_plan, tmp_path, pool_here, dropout, samples
):
    """The same members measured here and on the pool: the same rows in the same places,
    the same Monte-Carlo dropout figures (None with T = 0 or without dropout) and the same
    ensemble returned. Catches a worker's row put in another row's place, the ensemble of
    N measured on fewer members, or Monte-Carlo dropout of another ensemble or seed."""
    pool_here.plan = tiny_plan(ensemble=3, dropout=dropout, mc_dropout=samples, seed=3)
    here_folder = run_folder(tmp_path / "here")
    model, here = ensembles.train_ensemble(pool_here.plan, here_folder)
    assert not pool_here.pools
    if samples and dropout:  # members trained and measured there (once: it trains them)
        there = run_folder(tmp_path / "there")
        assert ensembles.train_ensemble(pool_here.plan, there, workers=2)[1] == here
    folder = run_folder(tmp_path / "pool")
    for i in (1, 2, 3):  # the same members, written where the pool's run reads them
        ensembles.member_weights(folder, i).parent.mkdir(parents=True)
        shutil.copy(ensembles.member_weights(here_folder, i), ensembles.member_weights(folder, i))
        folder.record_member(i)
    pooled_model, pooled = ensembles.train_ensemble(pool_here.plan, folder, workers=2)
    assert len(pool_here.pools) == (2 if samples and dropout else 1)
    assert pooled == here
    assert (here["mc_dropout"] is None) == (samples == 0 or dropout == 0.0)
    x = pool_here.plan.dataset.test.x
    np.testing.assert_array_equal(pooled_model(x).numpy(), model(x).numpy())
    assert pooled_model.name == model.name


def test_a_figure_that_fails_on_the_pool_fails_the_ensemble_naming_it(
    run_folder, tiny_plan, tmp_path, pool_here
):
    """Catches a failed row left out of the table (or a KeyError) instead of ItemsFailed."""
    pool_here.plan = tiny_plan(workers=2, mc_dropout=0)

    def broken(**kwargs):
        if kwargs["kind"] == "ensemble":
            raise ValueError("broken")
        return real(**kwargs)

    real = ensembles.pool_figures
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ensembles, "pool_figures", broken)
        with pytest.raises(errors.ItemsFailed, match=r"^ensemble-1 failed: ValueError: broken$"):
            ensembles.train_ensemble(pool_here.plan, run_folder(tmp_path), workers=2)


def test_a_resumed_runs_last_member_trains_on_a_worker_and_only_figures_when_all_are_done(
    run_folder, tiny_plan, tmp_path, pool_here
):
    """Catches the one member left after a resume trained here, in a process that may run
    other threads than a worker's one (train.py's parent of a pool runs all: its figures
    would differ from the same member trained on a worker), or members sent again when all
    are done."""
    pool_here.plan = tiny_plan(workers=2, mc_dropout=0)
    folder = run_folder(tmp_path)
    ensembles.train_member(pool_here.plan, folder, 1)
    ensembles.train_ensemble(pool_here.plan, folder, workers=2)
    trained = [item.name for item in pool_here.items if item.function is ensembles.pool_member]
    assert trained == ["member-2"]
    pool_here.items.clear()
    ensembles.train_ensemble(pool_here.plan, folder, workers=2)  # every member done
    assert [item.name for item in pool_here.items] == ["ensemble-1", "figures-1"]


def test_a_pool_member_trains_its_index_into_the_run_folder(run_folder, tmp_path, data_dir):
    the_plan = breast_cancer_plan(data_dir, seed=7, epochs=2)
    folder = run_folder(tmp_path)
    result = ensembles.pool_member(
        options=the_plan.options.as_dict(),
        index=2,
        path=str(folder.path),
        resume=str(folder.resume),
    )
    assert result == {"epochs": 2}
    assert folder.lifecycle()["members"] == [2]
    here = ensembles.train_member(the_plan, run_folder(tmp_path / "here"), 2)
    loaded = ensembles.train_member(the_plan, folder, 2)
    for mine, its in zip(loaded.get_weights(), here.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, its)
    assert folder.member_figures(2) == evaluation.evaluate(the_plan, loaded)
    assert folder.member_figures(1) is None


def test_an_ensembles_monte_carlo_figures_are_its_tables(tiny_plan, monkeypatch):
    """The evaluation stage takes an ensemble's Monte-Carlo dropout figures from its table
    (None: none), and measures them only for a table without them (a run trained before
    tables held them). Catches them measured again (on one core, after the pool measured
    them) or the table's None read as "not measured"."""
    from tfnn.recipe import train as stages

    the_plan = tiny_plan(dropout=0.5, mc_dropout=2)
    row = {split: {"accuracy": 0.5, "loss": 1.0} for split in ("val", "test")}
    mc = {"samples": 2, **row}
    table = {"ensembles": [{"members": 2, **row}], "mc_dropout": mc}
    measured = []
    monkeypatch.setattr(stages, "monte_carlo_dropout", lambda *a: measured.append(a) or mc)
    model = fit.build_model(the_plan)
    assert stages._evaluate(the_plan, model, phases.Stopwatch(), table)["mc_dropout"] == mc
    assert "mc_dropout" not in stages._evaluate(
        the_plan, model, phases.Stopwatch(), {**table, "mc_dropout": None}
    )
    assert not measured
    del table["mc_dropout"]
    assert stages._evaluate(the_plan, model, phases.Stopwatch(), table)["mc_dropout"] == mc
    assert measured == [(the_plan, model)]


def test_a_worker_prepares_a_runs_plan_once_for_all_its_items(tmp_path, data_dir, monkeypatch):
    """A worker's items of one run (a member, then rows of its table) share one plan; other
    options get their own, and each item starts from the run's seed. Catches the data set
    loaded again for every item, a plan kept for other options, or the seeding skipped."""
    from tfnn.recipe import train

    options = breast_cancer_plan(data_dir, seed=5).options.as_dict()
    prepared = []
    real = train._prepare
    monkeypatch.setattr(train, "_prepare", lambda o, s: prepared.append(o) or real(o, s))
    monkeypatch.setattr(ensembles, "_plan", {})
    paths = str(tmp_path / "run"), str(tmp_path / "resume")
    first, folder = ensembles._worker_run(options, *paths)
    assert (folder.path, folder.resume) == (tmp_path / "run", tmp_path / "resume")
    random.seed(0)
    again, _ = ensembles._worker_run(dict(reversed(options.items())), *paths)
    seeded = random.random()
    random.seed(5)
    assert again is first and len(prepared) == 1 and seeded == random.random()
    other, _ = ensembles._worker_run({**options, "seed": 6}, *paths)
    assert other is not first and other.options.seed == 6 and len(prepared) == 2


def test_meanwhile_runs_once_on_a_pool_with_the_ensemble_returned(
    run_folder, tiny_plan, tmp_path, pool_here
):
    """Catches `meanwhile` given another model than the one exported (a member, or the
    ensemble of fewer), run twice, or run where nothing waits (no pool)."""
    pool_here.plan = tiny_plan(workers=2, mc_dropout=0)
    seen = []
    model, _ = ensembles.train_ensemble(
        pool_here.plan, run_folder(tmp_path), workers=2, meanwhile=seen.append
    )
    assert seen == [model]
    ensembles.train_ensemble(
        tiny_plan(mc_dropout=0), run_folder(tmp_path / "here"), meanwhile=seen.append
    )
    assert seen == [model]


def test_an_export_written_ahead_is_the_one_published(run_folder, tiny_plan, tmp_path):
    """`_write_ahead` writes the trained model's SavedModel whole under its own name (a
    kill's half-written folder and an older one replaced) and the export stage publishes
    that folder; a half-written one alone is not published; a calibrated run writes none
    ahead (its T comes later). Catches the export written again beside it, a partial folder
    published, or a calibrated export without its temperature."""
    from tfnn.recipe import train as stages

    the_plan = tiny_plan(export_dir=str(tmp_path / "exports"))
    folder = run_folder(tmp_path)
    folder.path.mkdir(parents=True)
    folder.resume.mkdir(parents=True)
    model = fit.build_model(the_plan)
    partial = folder.written_export.with_name("export.partial")
    for leftover in (partial, folder.written_export):
        leftover.mkdir()
        (leftover / "leftover").write_text("")
    stages._write_ahead(the_plan, folder)(model)
    assert not partial.exists() and not (folder.written_export / "leftover").exists()
    (folder.written_export / "ahead").write_text("")
    published = pathlib.Path(stages._export(the_plan, model, folder)["export_path"])
    assert (published / "ahead").is_file() and not folder.written_export.exists()
    x = the_plan.dataset.test.x
    served = tf.saved_model.load(str(published)).signatures["serving_default"]
    np.testing.assert_allclose(
        served(inputs=tf.constant(x))["probabilities"], probabilities(model, x), rtol=1e-5
    )
    partial.mkdir()
    (partial / "half").write_text("")
    fresh = run_folder(tmp_path / "fresh")
    fresh.path.mkdir(parents=True)
    fresh.resume.mkdir(parents=True)
    shutil.move(partial, fresh.written_export.with_name("export.partial"))
    shutil.copytree(fresh.written_export.with_name("export.partial"), fresh.written_export)
    again = pathlib.Path(stages._export(the_plan, model, fresh)["export_path"])
    assert again != published and not (again / "half").exists()  # not recorded: not used
    assert stages._write_ahead(tiny_plan(calibrate=True), folder) is None
