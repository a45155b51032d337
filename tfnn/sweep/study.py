"""The study on Optuna's storage: its storage, sampler and pruner, what each trial records,
which trials count toward the total, the retry of interrupted trials, and one worker's
loop of trials.

Each trial records (Optuna user attributes): "options", the train.py options it trained
with; "run", its run folder; "ended", how its objective ended ("complete", "pruned",
"diverged", "failed: <error>"); a retry, "retry_of", the number of the trial it repeats.
A failed trial without "ended" was interrupted (its process killed, or Ctrl-C): it does
not count toward `--trials`, and its parameters are enqueued once to run again (the
retry's run resumes the interrupted run folder, whose options are the same).

Optuna's storage is the engine that spreads a study over processes and machines: an RDB
URL; trials left running by a dead process are failed by Optuna's heartbeat
(HEARTBEAT_SECONDS, GRACE_SECONDS) on a shared storage, and at once on the sweep's own
default storage, which one process at a time uses.
"""

import functools
import itertools
import logging
import time
import warnings

import optuna
import sqlalchemy
from optuna.trial import TrialState

# A running trial writes a heartbeat this often; one silent for GRACE_SECONDS is failed.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
# Tries at opening a storage when another process is creating the same new database.
CREATION_ATTEMPTS = 3
PRUNERS = ("median", "hyperband", "none")

log = logging.getLogger("tfnn.sweep")


def storage(url, *, heartbeat):
    """Optuna's RDB storage at `url`; with `heartbeat`, trials of dead processes are failed.

    Raises:
        ValueError: naming the URL (its password hidden) and why it does not open: not a
            database URL, its driver not installed, or its database cannot be reached."""
    try:
        return _storage(url, heartbeat=heartbeat)
    except ImportError:
        reason = "its database driver is not installed"
    except sqlalchemy.exc.NoSuchModuleError:
        reason = "not a database URL SQLAlchemy knows"
    except sqlalchemy.exc.ArgumentError:
        reason = "not a database URL"
    except sqlalchemy.exc.SQLAlchemyError as error:
        cause = str(getattr(error, "orig", None) or error).splitlines()[0]
        reason = f"cannot connect: {cause}"
    raise ValueError(
        f"Expected an Optuna storage URL that opens ({reason}). Received: storage={_shown(url)!r}"
    )


def _shown(url):
    """`url` with its password hidden, when it parses."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, TypeError):
        return url


def _storage(url, *, heartbeat):
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    timing = {"heartbeat_interval": HEARTBEAT_SECONDS, "grace_period": GRACE_SECONDS}
    for attempt in itertools.count(1):  # ends by the return, or the raise at the last attempt
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, **(timing if heartbeat else {})
                )
        except sqlalchemy.exc.SQLAlchemyError as error:
            if attempt == CREATION_ATTEMPTS or not _lost_creation_race(error):
                raise
            time.sleep(1)  # the other process's tables exist, or will within its transaction


def _lost_creation_race(error):
    """Whether `error` is another process creating the same new database first: its insert
    of Optuna's schema version came first (IntegrityError), or SQLite found a table it was
    about to create, or the file locked by the other's creation."""
    if isinstance(error, sqlalchemy.exc.IntegrityError):
        return True
    cause = str(getattr(error, "orig", None) or error)
    return isinstance(error, sqlalchemy.exc.OperationalError) and (
        "already exists" in cause or "database is locked" in cause
    )


def pruner(choice):
    """The Optuna pruner named `choice` (PRUNERS), or `choice` itself when it is one."""
    if isinstance(choice, optuna.pruners.BasePruner):
        return choice
    return {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }[choice]()


def load(url, name, *, heartbeat, seed, pruner_choice, mode):
    """The study `name` at `url` (created when new), whose TPE sampler draws from `seed`
    offset by the trials it has, so a continued study does not draw its first trials again."""
    shared = storage(url, heartbeat=heartbeat)
    direction = "maximize" if mode == "max" else "minimize"
    study = optuna.create_study(
        storage=shared,
        study_name=name,
        direction=direction,
        load_if_exists=True,
        pruner=pruner(pruner_choice),
    )
    started = len(study.get_trials(deepcopy=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.TPESampler(
            seed=(seed + 7919 * started) % 2**32, constant_liar=True
        )
    return study


def interrupted(trial):
    """Whether `trial` failed without its objective ending (a killed process, Ctrl-C)."""
    return trial.state == TrialState.FAIL and "ended" not in trial.user_attrs


def counted(study):
    """The trials that count toward the total: finished (complete, pruned, failed) or
    running, not waiting and not interrupted (their retries count instead)."""
    return sum(
        trial.state != TrialState.WAITING and not interrupted(trial)
        for trial in study.get_trials(deepcopy=False)
    )


def retry_interrupted(study, *, running_are_dead):
    """Fails the trials left running by dead processes (all of them when `running_are_dead`,
    else those whose heartbeat stopped) and enqueues each interrupted trial's parameters once
    to run again. Returns the numbers of the trials enqueued."""
    if running_are_dead:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}
    again = [t for t in trials if interrupted(t) and t.number not in retried]
    for trial in again:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
    return [trial.number for trial in again]


def objective(trial, *, search, fixed, monitor):
    """One trial: the `search`'s draw with the `fixed` options, trained by the recipe without
    the test split or export (`tfnn.train(test_and_export=False)`), its validation figure
    reported each epoch (pruning); returns val `monitor`. A diverged or refused training
    raises, the trial failing."""
    import keras

    import tfnn
    from tfnn.recipe import errors
    from tfnn.recipe import run as runs
    from tfnn.recipe.options import Options
    from tfnn.sweep.pruning import ReportToTrial

    drawn = {name: space.suggest(trial, name) for name, space in search.items()}
    options = {**fixed, **drawn}
    trial.set_user_attr(
        "options", {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    )
    ended = "failed"

    def record_run(logs=None):
        try:
            trial.set_user_attr("run", runs.unfinished_folder(Options(**options)))
        except ValueError:  # options the recipe refused: no run folder
            pass

    # The run folder is recorded as its fit starts, so a killed trial names it too.
    callbacks = [keras.callbacks.LambdaCallback(on_train_begin=record_run)]
    callbacks.append(ReportToTrial(trial, f"val_{monitor}"))
    try:
        result = tfnn.train(callbacks=callbacks, test_and_export=False, **options)
        ended = "complete"
        return result["val"][monitor]
    except optuna.TrialPruned:
        ended = "pruned"
        raise
    except errors.TrainingDiverged:
        ended = "diverged"
        raise
    except Exception as error:
        ended = f"failed: {error}".splitlines()[0]
        raise
    except BaseException:  # interrupted: no "ended", so the trial runs again
        ended = None
        raise
    finally:
        if ended is not None:
            trial.set_user_attr("ended", ended)
            record_run()
        keras.backend.clear_session()  # a long sweep's models do not pile up in memory


def optimize(*, url, heartbeat, name, trials, search, fixed, monitor, mode, seed, pruner_choice):
    """One worker's loop (a pool item): runs the study's trials until `trials` count
    (`counted`; workers racing may start one more each); returns how many it ran."""
    study = load(url, name, heartbeat=heartbeat, seed=seed, pruner_choice=pruner_choice, mode=mode)
    ran = 0

    def stop(study, trial):
        nonlocal ran
        ran += 1
        if counted(study) >= trials:
            study.stop()

    if counted(study) < trials:
        from tfnn.recipe import errors

        study.optimize(
            functools.partial(objective, search=search, fixed=fixed, monitor=monitor),
            catch=(errors.TrainingDiverged, errors.OptionError, errors.RunError),
            callbacks=[stop],
            gc_after_trial=True,
        )
    return ran
