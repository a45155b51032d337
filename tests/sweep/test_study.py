"""tfnn.sweep.study and the sweep's lock, in process and without training: the pruners by
name, the storage's heartbeat, a trial of a dead process failed and run again, a second
process refused on the default storage."""

import os
import time
import warnings

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
    # number: in a study named at random (Optuna's default) the stuck trial's bracket pruned
    # it in some runs and not within 12 epochs in others. In the study "stuck" it is in one
    # that prunes at its second epoch ("hyperband" or "sweep": none within 12).
    loaded = optuna.create_study(
        study_name="stuck", direction="maximize", pruner=study.pruner("hyperband")
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


@pytest.mark.parametrize(
    "url, engine",
    [
        ("sqlite:///x.db", {"connect_args": {"timeout": 60}}),
        ("postgresql://u@h/db", {}),
    ],
)
@pytest.mark.parametrize("heartbeat", [False, True])
def test_a_storage_opens_with_its_engine_and_heartbeat(monkeypatch, url, engine, heartbeat):
    """Catches SQLite's 60-second wait for a locked file dropped (a second worker's write
    would fail at once with "database is locked") or given to another database, whose driver
    may not take it, and the heartbeat's timing passed without `heartbeat` (or not with it)."""
    opened = []
    monkeypatch.setattr(optuna.storages, "RDBStorage", lambda *a, **k: opened.append((a, k)))
    study._storage(url, heartbeat=heartbeat)
    timing = {"heartbeat_interval": study.HEARTBEAT_SECONDS, "grace_period": study.GRACE_SECONDS}
    assert opened == [((url,), {"engine_kwargs": engine, **(timing if heartbeat else {})})]


def test_a_lost_race_waits_a_second_before_each_retry(tmp_path, monkeypatch):
    """Catches the wait before a retry changed or dropped: the other process's creation
    gets one second, for each of the retries."""
    slept = []

    def always_racing(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("CREATE", {}, Exception("database is locked"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", always_racing)
    monkeypatch.setattr(study.time, "sleep", slept.append)
    with pytest.raises(ValueError, match="database is locked"):
        study.storage(f"sqlite:///{tmp_path / 'new.db'}", heartbeat=False)
    assert slept == [1] * (study.CREATION_ATTEMPTS - 1)


def test_only_optunas_experimental_warnings_are_silenced(tmp_path, monkeypatch):
    """Catches the filters around RDBStorage, TPESampler and fail_stale_trials ignoring
    every warning (one that says something is wrong would be hidden) or none of Optuna's
    experimental ones (each worker would print them)."""

    def warn(name):
        warnings.warn(
            f"{name} is experimental", optuna.exceptions.ExperimentalWarning, stacklevel=2
        )
        warnings.warn(f"{name} says something", UserWarning, stacklevel=2)

    class Storage(optuna.storages.RDBStorage):  # a subclass: Optuna checks isinstance
        def __init__(self, *args, **kwargs):
            warn("storage")
            super().__init__(*args, **kwargs)

    class Sampler(optuna.samplers.TPESampler):  # create_study makes one without arguments
        def __init__(self, *args, **kwargs):
            if kwargs.get("constant_liar"):
                warn("sampler")
            super().__init__(*args, **kwargs)

    real_stale = optuna.storages.fail_stale_trials
    monkeypatch.setattr(optuna.storages, "RDBStorage", Storage)
    monkeypatch.setattr(optuna.samplers, "TPESampler", Sampler)
    monkeypatch.setattr(
        optuna.storages, "fail_stale_trials", lambda s: warn("stale") or real_stale(s)
    )
    url = f"sqlite:///{tmp_path / 'w.db'}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = study.load(url, "w", heartbeat=True, seed=0, pruner_choice="none", mode="max")
        study.retry_interrupted(loaded, running_are_dead=False)
    assert sorted(str(w.message) for w in caught) == [
        "sampler says something",
        "stale says something",
        "storage says something",
    ]


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
        f"sqlite:///{tmp_path / 'made.db'}",
        "s",
        heartbeat=False,
        seed=0,
        pruner_choice="none",
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


@pytest.mark.parametrize(
    "url, reason",
    [
        ("nonsense", "not a database URL"),
        ("foo://x", "not a database URL SQLAlchemy knows"),
        ("mysql://u:secret@127.0.0.1:1/db", "its database driver is not installed"),
    ],
)
def test_a_bad_storage_url_is_refused_naming_why_its_password_hidden(url, reason):
    """Catches a URL that does not open refused for the wrong reason (or with a traceback:
    `_lost_creation_race` reading `orig` of an error that has none), and its password shown."""
    with pytest.raises(ValueError) as raised:
        study.storage(url, heartbeat=False)
    shown = url.replace(":secret@", ":***@")
    assert str(raised.value) == (
        f"Expected an Optuna storage URL that opens ({reason}). Received: storage={shown!r}"
    )


@pytest.mark.parametrize(
    "error, url, message",
    [
        (  # catches `_shown` not hiding the password (`hide_password` dropped or False)
            sqlalchemy.exc.OperationalError("connect", {}, Exception("connection refused")),
            "postgresql://u:secret@127.0.0.1:1/db",
            "cannot connect: connection refused). "
            "Received: storage='postgresql://u:***@127.0.0.1:1/db'",
        ),
        (  # catches storage's `getattr(error, "orig", None)` without its default: an error no
            # database raised (no `orig`) failed with an AttributeError, not the one line
            sqlalchemy.exc.InvalidRequestError("bad request\nsecond line"),
            "sqlite:///x.db",
            "cannot connect: bad request). Received: storage='sqlite:///x.db'",
        ),
    ],
)
def test_a_storage_that_does_not_open_is_one_line_naming_it(monkeypatch, error, url, message):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(optuna.storages, "RDBStorage", failing)
    with pytest.raises(ValueError) as raised:
        study.storage(url, heartbeat=False)
    assert str(raised.value) == "Expected an Optuna storage URL that opens (" + message


def test_a_race_is_read_from_the_databases_message_not_the_statement(monkeypatch):
    """Catches `_lost_creation_race` reading the whole error (its SQL statement too) rather than
    the database's message: a statement that mentions "already exists" is no race, and is
    refused at once, not retried."""
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        raise sqlalchemy.exc.OperationalError(
            "SELECT 'already exists'", {}, Exception("disk I/O error")
        )

    monkeypatch.setattr(optuna.storages, "RDBStorage", failing)
    monkeypatch.setattr(study.time, "sleep", lambda seconds: None)
    with pytest.raises(ValueError, match=r"\(cannot connect: disk I/O error\)"):
        study.storage("sqlite:///x.db", heartbeat=False)
    assert len(calls) == 1


@pytest.mark.parametrize("mode, direction", [("max", "MAXIMIZE"), ("min", "MINIMIZE")])
def test_a_study_is_loaded_in_its_direction_and_loaded_again(tmp_path, mode, direction):
    """Catches the monitored figure's mode not reaching the study (a study minimizing
    accuracy), and a second load of the same study refused as a duplicate."""
    url = f"sqlite:///{tmp_path / 'd.db'}"
    first = study.load(url, "s", heartbeat=False, seed=0, pruner_choice="none", mode=mode)
    first.add_trial(optuna.trial.create_trial(value=0.5))
    again = study.load(url, "s", heartbeat=False, seed=0, pruner_choice="none", mode=mode)
    assert first.direction.name == direction and again.direction.name == direction
    assert [t.value for t in again.trials] == [0.5]


def _first_draw(sampler):
    made = optuna.create_study(sampler=sampler)
    return made.ask().suggest_float("x", 0.0, 1.0)


@pytest.mark.parametrize("seed, started", [(5, 0), (5, 2), (2**32 - 1, 1)])
def test_a_continued_study_draws_from_its_seed_offset_by_its_trials(tmp_path, seed, started):
    """Catches the sampler's seed not `(seed + 7919 * started) % 2**32` (a continued study
    drawing its first trials again, or a seed past NumPy's 2**32 refused), and its constant
    liar off (workers in parallel would draw the same point)."""
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    made = study.load(url, "s", heartbeat=False, seed=seed, pruner_choice="none", mode="max")
    for _ in range(started):
        made.add_trial(optuna.trial.create_trial(value=0.5))
    loaded = study.load(url, "s", heartbeat=False, seed=seed, pruner_choice="none", mode="max")
    assert loaded.sampler._constant_liar is True
    draw = loaded.ask().suggest_float("x", 0.0, 1.0)
    expected = (seed + 7919 * started) % 2**32
    assert draw == _first_draw(optuna.samplers.TPESampler(seed=expected))
    assert draw != _first_draw(optuna.samplers.TPESampler(seed=expected + 1))


def test_a_failed_trial_that_ended_counts_and_is_not_run_again():
    """Catches `interrupted` reading another attribute than "ended": a trial that failed in
    its objective (recorded "ended") would run again forever, or not count."""
    made = optuna.create_study()
    made.add_trial(
        optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"ended": "failed: x"})
    )
    made.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))  # interrupted
    made.add_trial(optuna.trial.create_trial(value=0.5))
    assert [study.interrupted(t) for t in made.trials] == [False, True, False]
    assert study.counted(made) == 2
    assert study.retry_interrupted(made, running_are_dead=True) == [1]
    assert study.counted(made) == 2  # the waiting retry does not count yet


def test_on_the_default_storage_every_running_trial_is_dead_and_run_again():
    """Catches `running_are_dead` failing no trial, failing the finished ones, or not the
    running one: on a sweep's own file, a running trial was left by a dead process."""
    made = optuna.create_study()
    made.add_trial(optuna.trial.create_trial(value=0.5))
    running = made.ask({"dropout": optuna.distributions.FloatDistribution(0.0, 0.5)})
    assert study.retry_interrupted(made, running_are_dead=True) == [running.number]
    assert [t.state for t in made.trials] == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.WAITING,
    ]
    assert made.trials[2].user_attrs == {"retry_of": running.number}


SEARCH = {"dropout": space.Range(0.0, 0.5), "hidden_layers": space.Choices(((8,), (16, 16)))}


def _objective_of(tmp_path, monkeypatch, raised=None):
    """An in-memory trial drawing hidden_layers (16, 16), and tfnn.train replaced by a stand-in
    that starts the fit, reports one epoch, then raises `raised` or returns its figures."""
    import tfnn
    from tfnn.recipe import run as runs

    calls = []

    def train(*, callbacks, test_and_export, **options):
        calls.append({"callbacks": callbacks, "test_and_export": test_and_export, **options})
        for callback in callbacks:
            callback.on_train_begin()
        for callback in callbacks:
            callback.on_epoch_end(0, {"val_accuracy": 0.625, "loss": 0.5})
        if raised is not None:
            raise raised
        return {"val": {"accuracy": 0.75, "loss": 0.25}, "test": None}

    monkeypatch.setattr(tfnn, "train", train)
    monkeypatch.setattr(runs, "unfinished_folder", lambda options: f"runs/{options.dropout}")
    made = optuna.create_study(direction="maximize")
    made.enqueue_trial({"dropout": 0.25, "hidden_layers": "16+16"})
    return made, made.ask(), calls


FIXED = {"model": "mlp", "dataset": "breast_cancer", "epochs": 3}


def test_a_trial_trains_its_draw_with_the_fixed_options_and_returns_its_val_figure(
    tmp_path, monkeypatch
):
    """Catches the trial's draw or the fixed options not reaching tfnn.train (or the test
    split and export not turned off), its options recorded with tuples, the run folder not
    recorded, each epoch's val figure not reported, and another figure returned."""
    made, trial, calls = _objective_of(tmp_path, monkeypatch)
    value = study.objective(trial, search=SEARCH, fixed=FIXED, monitor="accuracy")
    assert value == 0.75
    [call] = calls
    assert call.pop("test_and_export") is False
    callbacks = call.pop("callbacks")
    assert call == {**FIXED, "dropout": 0.25, "hidden_layers": (16, 16)}
    assert callbacks[1].monitor == "val_accuracy"
    attrs = made.trials[0].user_attrs
    assert attrs == {
        "options": {**FIXED, "dropout": 0.25, "hidden_layers": [16, 16]},
        "run": "runs/0.25",
        "ended": "complete",
    }
    assert made.trials[0].intermediate_values == {0: 0.625}


def test_a_trial_whose_options_are_refused_records_no_run(tmp_path, monkeypatch):
    """Catches record_run's refused options (no run folder) failing the trial's record."""
    from tfnn.recipe import run as runs

    made, trial, _ = _objective_of(tmp_path, monkeypatch)

    def refused(options):
        raise ValueError("refused")

    monkeypatch.setattr(runs, "unfinished_folder", refused)
    assert study.objective(trial, search=SEARCH, fixed=FIXED, monitor="accuracy") == 0.75
    assert "run" not in made.trials[0].user_attrs
    assert made.trials[0].user_attrs["ended"] == "complete"


def _ended(tmp_path, monkeypatch, raised):
    made, trial, _ = _objective_of(tmp_path, monkeypatch, raised)
    with pytest.raises(type(raised)):
        study.objective(trial, search=SEARCH, fixed=FIXED, monitor="accuracy")
    return made.trials[0].user_attrs


def test_how_a_trial_ended_is_recorded_with_its_run(tmp_path, monkeypatch):
    """Catches a pruned, diverged or failed trial recorded as another ending (or not at all),
    a failure's message on several lines or without its first, and the run not recorded."""
    from tfnn.recipe import errors

    cases = [
        (optuna.TrialPruned("p"), "pruned"),
        (errors.TrainingDiverged("nan"), "diverged"),
        (errors.OptionError("bad option\nsecond line"), "failed: bad option"),
        (RuntimeError("broken"), "failed: broken"),
    ]
    for raised, ended in cases:
        attrs = _ended(tmp_path, monkeypatch, raised)
        assert (attrs["ended"], attrs["run"]) == (ended, "runs/0.25")


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no message")


def test_a_failure_whose_message_cannot_be_read_still_ends_failed(tmp_path, monkeypatch):
    """Catches objective's first `ended = "failed"` changed: an error whose message raises
    as it is formatted leaves that value, and without it the trial would count as interrupted
    and run again forever (or record another ending)."""
    made, trial, _ = _objective_of(tmp_path, monkeypatch, _Unprintable())
    with pytest.raises(RuntimeError, match="no message"):
        study.objective(trial, search=SEARCH, fixed=FIXED, monitor="accuracy")
    attrs = made.trials[0].user_attrs
    assert (attrs["ended"], attrs["run"]) == ("failed", "runs/0.25")


def test_an_interrupted_trial_records_no_ending(tmp_path, monkeypatch):
    """Catches Ctrl-C (or a killed worker's SystemExit) recorded as an ending: the trial
    would count as finished and never run again; and its run folder not recorded as its fit
    starts (`on_train_begin=record_run`), where only a finished trial records it."""
    attrs = _ended(tmp_path, monkeypatch, KeyboardInterrupt())
    assert "ended" not in attrs
    assert attrs["run"] == "runs/0.25"  # recorded as its fit started: the retry resumes it


def _optimize(tmp_path, objective, monkeypatch, *, trials, mode="max", seed=3, heartbeat=False):
    monkeypatch.setattr(study, "objective", objective)
    return study.optimize(
        url=f"sqlite:///{tmp_path / 'o.db'}",
        heartbeat=heartbeat,
        name="o",
        trials=trials,
        search=SEARCH,
        fixed=FIXED,
        monitor="accuracy",
        mode=mode,
        seed=seed,
        pruner_choice="hyperband",
    )


def test_a_worker_runs_trials_until_the_total_counts_and_no_more(tmp_path, monkeypatch):
    """Catches the stop at `counted >= trials` off by one (a trial too many or too few), a
    study already at its total running one more, and the objective given other arguments,
    the study another mode, pruner or seed."""
    seen = []

    def objective(trial, **kwargs):
        seen.append((kwargs, trial.study.direction.name, type(trial.study.pruner)))
        return trial.suggest_float("x", 0.0, 1.0)

    assert _optimize(tmp_path, objective, monkeypatch, trials=3, mode="min") == 3
    assert (
        seen
        == [
            (
                {"search": SEARCH, "fixed": FIXED, "monitor": "accuracy"},
                "MINIMIZE",
                optuna.pruners.HyperbandPruner,
            )
        ]
        * 3
    )
    first = optuna.load_study(study_name="o", storage=f"sqlite:///{tmp_path / 'o.db'}").trials[0]
    assert first.params["x"] == _first_draw(optuna.samplers.TPESampler(seed=3))
    assert _optimize(tmp_path, objective, monkeypatch, trials=3) == 0  # at its total: none
    assert _optimize(tmp_path, objective, monkeypatch, trials=4) == 1
    assert len(seen) == 4


def test_a_worker_on_a_new_study_maximizes_a_figure_to_maximize(tmp_path, monkeypatch):
    """Catches optimize's `mode` not reaching `load` (a new study minimizing accuracy)."""
    seen = []

    def objective(trial, **kwargs):
        seen.append(trial.study.direction.name)
        return 0.5

    assert _optimize(tmp_path, objective, monkeypatch, trials=2, mode="max") == 2
    assert seen == ["MAXIMIZE", "MAXIMIZE"]


def test_a_worker_goes_on_past_a_diverged_or_refused_trial_not_past_a_bug(tmp_path, monkeypatch):
    """Catches `catch` missing one of the recipe's expected failures (the worker would stop
    at a diverged trial) or catching every error (a bug in tfnn would fail trial after
    trial silently)."""
    from tfnn.recipe import errors

    raised = [errors.TrainingDiverged("nan"), errors.OptionError("o"), errors.RunError("r")]

    def objective(trial, **kwargs):
        trial.set_user_attr("ended", "failed")  # as the objective records each ending
        if trial.number < len(raised):
            raise raised[trial.number]
        if trial.number == 4:
            raise KeyError("bug")
        return 0.5

    assert _optimize(tmp_path, objective, monkeypatch, trials=4) == 4
    with pytest.raises(KeyError):
        _optimize(tmp_path, objective, monkeypatch, trials=5)


def test_a_worker_collects_garbage_after_each_trial(tmp_path, monkeypatch):
    """Catches `gc_after_trial` off: a long sweep's models and graphs would pile up."""
    import gc

    collected = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *args: collected.append(1) or real(*args))
    _optimize(tmp_path, lambda trial, **kwargs: 0.5, monkeypatch, trials=2)
    assert len(collected) >= 2


def test_a_worker_on_a_shared_storage_beats(tmp_path, monkeypatch):
    """Catches optimize's `heartbeat` not reaching the storage (a dead worker's trial would
    stay running forever)."""
    intervals = []

    def objective(trial, **kwargs):
        intervals.append(trial.study._storage.get_heartbeat_interval())
        return 0.5

    _optimize(tmp_path, objective, monkeypatch, trials=1, heartbeat=True)
    assert intervals == [study.HEARTBEAT_SECONDS]
