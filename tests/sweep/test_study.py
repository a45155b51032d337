"""tfnn.sweep.study and the sweep's lock, in process and without training: the pruners by
name, the storage's heartbeat, a trial of a dead process failed and run again, a second
process refused on the default storage."""

import os
import time

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from tfnn import sweep
from tfnn.sweep import __main__ as cli
from tfnn.sweep import space, study


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
    # Hyperband puts a trial in a bracket by a hash of the study's name and the trial's
    # number: an unnamed study (a random name) put the stuck trial in a bracket that prunes
    # only at epoch 9 or never in about a quarter of runs.
    loaded = optuna.create_study(
        direction="maximize", pruner=study.pruner("hyperband"), study_name="s"
    )
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


@pytest.mark.parametrize(
    "lost",
    [
        sqlalchemy.exc.OperationalError("CREATE TABLE", {}, Exception("table x already exists")),
        sqlalchemy.exc.OperationalError("INSERT", {}, Exception("database is locked")),
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")),
    ],
)
def test_two_processes_creating_one_new_database_both_open_it(tmp_path, monkeypatch, lost):
    """Catches a process that lost the race to create a new database's tables (SQLite says
    the table it was about to create exists, or is locked) refused as a bad --storage: two
    sweeps started together on a new shared file, one exited 2."""
    real = optuna.storages.RDBStorage
    calls = []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise lost
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(study.time, "sleep", lambda seconds: None)
    assert study.storage(f"sqlite:///{tmp_path / 'new.db'}", heartbeat=False) is not None
    assert len(calls) == 2


def test_a_database_that_cannot_be_reached_is_refused_at_once(tmp_path, monkeypatch):
    """Catches every OperationalError retried (an unreachable server would take the retries'
    sleeps before its one line), or a creation race retried without end."""
    calls = []

    def unreachable(*args, **kwargs):
        calls.append(1)
        raise sqlalchemy.exc.OperationalError("connect", {}, Exception("connection refused"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", unreachable)
    with pytest.raises(ValueError, match="cannot connect: connection refused"):
        study.storage("postgresql://u:secret@127.0.0.1:1/db", heartbeat=False)
    assert len(calls) == 1

    def always_racing(*args, **kwargs):
        calls.append(1)
        raise sqlalchemy.exc.OperationalError("CREATE", {}, Exception("table x already exists"))

    calls.clear()
    monkeypatch.setattr(optuna.storages, "RDBStorage", always_racing)
    monkeypatch.setattr(study.time, "sleep", lambda seconds: None)
    with pytest.raises(ValueError, match="already exists"):
        study.storage(f"sqlite:///{tmp_path / 'new.db'}", heartbeat=False)
    assert len(calls) == study.CREATION_ATTEMPTS


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


def _made(tmp_path, dropout):
    """A new study and (search, fixed) of a sweep over dropout 0:`dropout` of the MLP."""
    loaded = study.load(
        f"sqlite:///{tmp_path / 'made.db'}", "s", heartbeat=False, seed=0, pruner_choice="none",
        mode="max",
    )
    fixed = {"model": "mlp", "dataset": "breast_cancer"}
    return loaded, space.parse({"dropout": f"0:{dropout}"}, fixed), fixed


def test_a_study_made_by_another_search_is_refused_and_its_own_is_continued(tmp_path):
    """Catches a command continuing a study of another search (its trials would mix two
    searches), or refusing its own study when run again."""
    loaded, search, fixed = _made(tmp_path, 0.5)
    sweep._same_sweep(loaded, search, fixed)
    sweep._same_sweep(loaded, search, fixed)  # the same command again
    other = space.parse({"dropout": "0:0.4"}, fixed)
    with pytest.raises(ValueError, match="a study of this search"):
        sweep._same_sweep(loaded, other, fixed)
    with pytest.raises(ValueError, match="a study of this search"):
        sweep._same_sweep(loaded, search, {**fixed, "epochs": 3})


def test_the_same_command_started_twice_on_a_new_study_runs_in_both(tmp_path, monkeypatch):
    """Catches the search and the fixed options recorded in two writes: the second process,
    reading between them, saw half a record and refused its own command (exit 2)."""
    loaded, search, fixed = _made(tmp_path, 0.5)
    write = loaded.set_user_attr
    seen = []

    def interleaved(key, value):  # the other process checks between this one's writes
        write(key, value)
        if not seen:
            seen.append(key)
            again = optuna.load_study(study_name="s", storage=loaded._storage)
            sweep._same_sweep(again, search, fixed)

    monkeypatch.setattr(loaded, "set_user_attr", interleaved)
    sweep._same_sweep(loaded, search, fixed)
    assert seen


def test_two_commands_racing_to_record_a_new_study_leave_one_running(tmp_path, monkeypatch):
    """Catches both of two different searches, each having seen the new study empty, going on
    to run trials in it: the one whose record was overwritten is refused."""
    loaded, search, fixed = _made(tmp_path, 0.5)
    (tmp_path / "other").mkdir()
    recorded, other, _ = _made(tmp_path / "other", 0.4)
    sweep._same_sweep(recorded, other, fixed)  # what the other command records
    write = loaded.set_user_attr
    done = []

    def overwritten(key, value):  # the other command's record lands just after this one's
        write(key, value)
        if not done:
            done.append(key)
            for k, v in recorded.user_attrs.items():
                write(k, v)

    monkeypatch.setattr(loaded, "set_user_attr", overwritten)
    with pytest.raises(ValueError, match="a study of this search"):
        sweep._same_sweep(loaded, search, fixed)
