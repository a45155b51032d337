"""tfnn.sweep.study and the sweep's lock, in process and without training: the pruners by
name, the storage's heartbeat, a trial of a dead process failed and run again, a second
process refused on the default storage."""

import os
import time

import optuna
import pytest
from optuna.trial import TrialState

from tfnn import sweep
from tfnn.sweep import __main__ as cli
from tfnn.sweep import study


@pytest.mark.parametrize(
    "choice, kind",
    [
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_each_pruner_name_makes_its_pruner(choice, kind):
    """Catches --pruner hyperband or none silently given the median pruner (or the reverse)."""
    assert type(study.pruner(choice)) is kind
    given = optuna.pruners.PercentilePruner(25.0)
    assert study.pruner(given) is given  # a pruner object from Python is used as it is


def test_a_hyperband_study_prunes_a_trial_far_below_the_others(tmp_path):
    """Catches --pruner hyperband not reaching the study, or never consulted: after trials
    that reached 0.9, a trial stuck at 0.1 is pruned within its first epochs."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    kind = type(
        study.load(url, "h", heartbeat=False, seed=0, pruner_choice="hyperband", mode="max").pruner
    )
    assert kind is optuna.pruners.HyperbandPruner
    loaded = optuna.create_study(direction="maximize", pruner=study.pruner("hyperband"))
    for _ in range(6):
        trial = loaded.ask()
        for epoch in range(12):  # as ReportToTrial does after each epoch
            trial.report(0.9, epoch)
            assert not trial.should_prune()
        loaded.tell(trial, 0.9)
    stuck = loaded.ask()
    pruned_at = None
    for epoch in range(12):
        stuck.report(0.1, epoch)
        if stuck.should_prune():
            pruned_at = epoch
            break
    assert pruned_at is not None and pruned_at < 6


def test_a_shared_storage_beats_and_a_file_of_one_process_does_not(tmp_path):
    """Catches --storage (several processes) without a heartbeat, whose dead processes'
    trials would stay running forever, or the default file storage given one."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    shared = study.storage(url, heartbeat=True)
    assert shared.get_heartbeat_interval() == study.HEARTBEAT_SECONDS
    assert shared.grace_period == study.GRACE_SECONDS
    assert study.storage(url, heartbeat=False).get_heartbeat_interval() is None


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask/tell here
def test_a_trial_whose_heartbeat_stopped_is_failed_and_enqueued_once(tmp_path, monkeypatch):
    """Catches a dead process's trial left running on a shared storage (the study would
    never reach its total), failed but not run again, or enqueued twice by two processes."""
    monkeypatch.setattr(study, "HEARTBEAT_SECONDS", 1)
    monkeypatch.setattr(study, "GRACE_SECONDS", 1)
    url = f"sqlite:///{tmp_path / 'beat.db'}"
    loaded = study.load(url, "s", heartbeat=True, seed=0, pruner_choice="none", mode="max")
    dead = loaded.ask({"dropout": optuna.distributions.FloatDistribution(0.0, 0.5)})
    loaded._storage.record_heartbeat(dead._trial_id)
    alive = loaded.ask({"dropout": optuna.distributions.FloatDistribution(0.0, 0.5)})
    time.sleep(2.5)  # past the grace period for the dead one ...
    loaded._storage.record_heartbeat(alive._trial_id)  # ... while the live one beats
    assert study.retry_interrupted(loaded, running_are_dead=False) == [dead.number]
    states = {t.number: t.state for t in loaded.get_trials()}
    assert states[dead.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    waiting = loaded.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [dead.params]  # its draw again
    assert [t.user_attrs["retry_of"] for t in waiting] == [dead.number]
    assert study.retry_interrupted(loaded, running_are_dead=False) == []  # once only


def test_a_second_process_on_the_default_storage_is_refused_in_one_line(tmp_path, capsys):
    """Catches two processes sharing DIR/study.db without --storage (SQLite without a
    heartbeat: each would fail the other's running trials as interrupted)."""
    out = tmp_path / "out"
    out.mkdir()
    held = sweep._hold(out / ".lock")  # another process's sweep of this folder
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main(["--search", "dropout=0:0.5", "--model", "mlp", "--out", str(out)])
    finally:
        os.close(held)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1
    assert "no other process running this sweep" in err and "--storage" in err
    assert not (out / "study.db").exists()
