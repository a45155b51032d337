"""A run stopped at a fault point after training (a kill while it evaluates, exports or writes
its model) and run again: nothing trained again, the same figures, one export."""

import json

import pytest

from tfnn.recipe import run as runs


class Stop(Exception):
    """Stands for a kill at a fault point."""


def stop_at(monkeypatch, point):
    def fault_point(name):
        if name == point:
            raise Stop(name)

    monkeypatch.setattr(runs, "fault_point", fault_point)


def stopped_run(run, tmp_path, monkeypatch, point, **options):
    """Runs `options` until the fault point `point` stops it; returns the run folder."""
    stop_at(monkeypatch, point)
    with pytest.raises(Stop):
        run(**options)
    monkeypatch.undo()
    return next((tmp_path / "logs").glob("2*"))


@pytest.mark.parametrize("point", ["evaluate", "export", "published"])
def test_a_rerun_after_training_evaluates_the_kept_model_and_never_retrains(
    run, tmp_path, monkeypatch, point
):
    """The model kept at the end of training gives the figures the trained one gives."""
    options = {"dataset": "breast_cancer", "hidden_layers": (16,), "dropout": 0.2}
    reference, _ = run(logdir="reference", model_name="reference", **options)
    stopped = stopped_run(run, tmp_path, monkeypatch, point, **options)
    history = (stopped / "history.csv").read_text()
    metrics, folder = run(**options)
    assert (folder / "history.csv").read_text() == history  # no epoch trained again
    assert metrics["val"] == reference["val"] and metrics["test"] == reference["test"]
    assert metrics["epochs"] == metrics["best_epoch"] == 4
    assert metrics["export_path"].endswith("breast_cancer/1")  # one version, not two
    assert sorted(p.name for p in (tmp_path / "saved_models" / "breast_cancer").iterdir()) == [
        ".highest_version",
        "1",
    ]


def test_an_ensemble_killed_in_evaluation_is_evaluated_without_training_again(
    run, tmp_path, monkeypatch
):
    options = {"dataset": "breast_cancer", "hidden_layers": (16,), "epochs": 2, "ensemble": 2}
    folder = stopped_run(run, tmp_path, monkeypatch, "evaluate", **options)
    trained = (folder / "ensemble.json").read_text()
    metrics, _ = run(**options)
    assert (folder / "ensemble.json").read_text() == trained  # members not trained again
    assert metrics["ensemble"] == json.loads(trained)
    assert metrics["test"] == trained_figures(metrics)


def trained_figures(metrics):
    """The test figures of the ensemble of all members, as evaluated during training."""
    return metrics["ensemble"]["ensembles"][-1]["test"]


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"epochs": 10, "patience": 1, "learning_rate": 0.03, "decay": "none"},
        {"ensemble": 2, "ensemble_kind": "checkpoints"},
    ],
    ids=["plain", "early_stopped", "checkpoint_ensemble"],
)
def test_a_kill_after_the_fit_returned_trains_nothing_again(
    run, tmp_path, monkeypatch, epoch_counter, changes
):
    """Killed while the learning curves are drawn and the model written: the rerun restores
    the kept backup (an early-stopped fit is not continued) and gives the same figures."""
    options = {"dataset": "breast_cancer", "hidden_layers": (16,), **changes}
    reference, _ = run(logdir="reference", model_name="reference", **options)
    if "patience" in changes:
        assert reference["epochs"] < 10  # it did stop early
    folder = stopped_run(run, tmp_path, monkeypatch, "fitted", **options)
    history = (folder / "history.csv").read_text()
    metrics, _ = run(callbacks=[epoch_counter], **options)
    assert epoch_counter.epochs == 0
    assert (folder / "history.csv").read_text() == history
    assert metrics["val"] == reference["val"] and metrics["test"] == reference["test"]
    assert metrics.get("epochs") == reference.get("epochs")
    assert metrics.get("best_epoch") == reference.get("best_epoch")
    assert not (tmp_path / "logs" / ".resume").exists()


def test_the_backup_is_kept_until_the_trained_model_is_recorded(run, tmp_path, monkeypatch):
    """The order that loses nothing: backup, then the trained model recorded, then no backup."""
    seen = {}
    record = runs.RunFolder.record

    def watch(folder, stage, **facts):
        seen[stage] = (folder.backup.is_dir(), folder.model_path.is_file())
        record(folder, stage, **facts)

    monkeypatch.setattr(runs.RunFolder, "record", watch)
    run(dataset="breast_cancer", hidden_layers=(16,), epochs=2)
    assert seen["trained"] == (True, True) and seen["evaluated"] == (False, True)
