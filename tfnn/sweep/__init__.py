"""A sweep: a search over the recipe's options (A5), each trial one training run, chosen on
the validation split; the test split is read once, for the best trial, which is exported.

    result = tfnn.sweep(search={"dropout": "0:0.6", "l2": "1e-6:1e-2:log",
                                "label_smoothing": [0, 0.1, 0.2]},
                        trials=24, workers=2, model="mlp")
    python -m tfnn.sweep --search dropout=0:0.6 l2=1e-6:1e-2:log label_smoothing=0,0.1,0.2 \\
        --trials 24 --workers 2 --model mlp

Optuna runs the search (a TPE sampler seeded by the options' `seed`, a pruner fed each
epoch's validation figure) on its storage: by default an SQLite file in the sweep's folder;
any Optuna RDB URL (PostgreSQL, MySQL) shares one study between processes and machines.
The workers are the pool's processes (tfnn.recipe.pool), each running trials against the
storage until `trials` count; with more than one, one pool also checks the search's bounds
and finishes the best trial, so this process imports no TensorFlow.
space.py reads the search, study.py holds the study and the trials, report.py writes what
the sweep leaves. `tfnn.sweep` is this module, callable.
"""

import fcntl
import functools
import hashlib
import json
import logging
import os
import pathlib
import sys
import types

from tfnn import files, validation

log = logging.getLogger("tfnn.recipe")

__all__ = ["sweep"]


def _compared(fixed):
    """The fixed options that make a study (output options aside), as JSON holds them; a
    data set folder as its normalized path, so `data`, `data/` and `./data` are one study."""
    from tfnn import names
    from tfnn.recipe.options import OUTPUT_ONLY

    kept = {
        k: list(v) if isinstance(v, tuple) else v for k, v in fixed.items() if k not in OUTPUT_ONLY
    }
    if "dataset" in kept and names.is_dataset_path(kept["dataset"]):
        kept["dataset"] = os.path.normpath(os.path.expanduser(kept["dataset"]))
    return json.loads(json.dumps(kept, default=list))


def default_study(search, fixed):
    """The study name of a sweep: its data set's model name (a folder's own name, as
    `tfnn.recipe.options.default_model_name`) and a hash of what it searches and fixes
    (output options aside), so the same command continues its study and another starts one."""
    from tfnn.recipe.options import default_model_name

    text = json.dumps(
        {"search": {k: s.as_dict() for k, s in search.items()}, "fixed": _compared(fixed)},
        sort_keys=True,
        default=list,
    )
    dataset = default_model_name(fixed.get("dataset", "mnist1d"))
    return f"{dataset}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def check_study(study):
    """`study` if it is a plain name (one folder under sweeps/: no '/', not '.', '..' or
    empty) or None; raises ValueError naming it otherwise."""
    if study is not None and (
        not isinstance(study, str) or "/" in study or study in ("", ".", "..")
    ):
        validation.fail("study", study, "a plain name (no '/', not '.', '..' or empty)")
    return study


def check(*, search, trials, workers, pruner, options, study=None, out=None):
    """The checked (search space, fixed options); raises ValueError naming a bad argument
    before anything runs or is written (tfnn.sweep.space for the search)."""
    from tfnn.sweep import space
    from tfnn.sweep import study as studies

    check_study(study)
    if out is not None:  # None: the default folder
        validation.path("out", out)
    validation.integer("trials", trials, low=1)
    if workers is not None:
        validation.integer("workers", workers, low=1)
    if isinstance(pruner, str) or pruner is None:
        validation.one_of("pruner", pruner, studies.PRUNERS)
    # a path option given as a pathlib.Path is its text, as train's options read it
    fixed = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}
    return space.parse(search, fixed), fixed


def _bounds(search, fixed):
    """`_plan_each_bound` as a pool item: ("planned", monitor, mode), or ("refused", the
    message) for an option the data set cannot take (its refusal read where the sweep runs)."""
    from tfnn.recipe.errors import OptionError

    try:
        return ("planned", *_plan_each_bound(search, fixed))
    except OptionError as error:
        return ("refused", str(error))


def _plan_each_bound(search, fixed):
    """(monitor, mode) of the sweep's data set; each bound and choice is planned on it, so
    one the data set cannot take (label smoothing for a regression) is refused here.

    Raises:
        tfnn.recipe.errors.OptionError: naming the option and value."""
    import tensorflow as tf

    from tfnn.recipe import errors, plan, train
    from tfnn.recipe.options import Options
    from tfnn.sweep.space import Choices

    base = Options(**fixed)
    prepared = train._prepare(base, tf.distribute.get_strategy())
    for name, space in search.items():
        for value in space.values if isinstance(space, Choices) else (space.low, space.high):
            try:
                plan.make_plan(
                    Options(**{**fixed, name: value}), prepared.dataset, prepared.strategy
                )
            except ValueError as error:
                raise errors.OptionError(f"search {name}: {error}") from None
    return prepared.objective.monitor, prepared.objective.mode


def _hold(path):
    """Holds an flock on `path` for the process's life; raises RunLocked when another has it."""
    from tfnn.recipe.errors import RunLocked

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLocked(
            "Expected no other process running this sweep on its default storage (give "
            f"--storage to share a study). Received: out={str(path.parent)!r}"
        ) from None
    return fd


def _same_sweep(study, search, fixed):
    """Records the search and fixed options in a new study (one attribute, so another
    process never reads half of it); refuses a study made by another command (its trials
    would mix two searches), or one that another command recorded at the same moment."""
    made = {"search": {k: s.as_dict() for k, s in search.items()}, "fixed": _compared(fixed)}
    made = json.loads(json.dumps(made))
    earlier = study.user_attrs.get("sweep")
    if earlier is None:
        study.set_user_attr("sweep", made)
        earlier = study.user_attrs["sweep"]  # read back: the last write wins
    if earlier != made:
        validation.fail(
            "study",
            study.study_name,
            f"a study of this search and these fixed options (it has {earlier})",
        )


def _finish(options):
    """The best trial's run finished by the recipe (a pool item): its metrics."""
    import tfnn

    return tfnn.train(**options)


def _final(study, *, monitor, finish=_finish):
    """The best trial's test figure and export: its run, left at "trained", resumed by the
    recipe with the test split and export on (`finish(options)`, here or on a worker; once:
    a study that recorded it, or a run that finished, is read, not run again). None figures
    when the run folder is not on this machine (where it is, the same command finishes it)."""
    from tfnn.recipe import run as runs
    from tfnn.recipe.options import Options

    try:
        best = study.best_trial
    except ValueError:  # no complete trial
        return None
    recorded = study.user_attrs.get("best")
    if recorded and recorded["number"] == best.number:
        return recorded
    result = {"number": best.number, "params": best.params, "val": None, "test": None}
    result["export_path"] = None
    run = pathlib.Path(best.user_attrs.get("run") or "")
    if not best.user_attrs.get("run") or not run.is_dir():
        log.info(f"best trial {best.number}: its run folder {str(run)!r} is not on this machine")
        return result
    with files.locked(run / ".final.lock"):  # another process finishing it: wait, then read
        metrics_path = run / "metrics.json"
        if metrics_path.is_file():
            metrics = json.loads(metrics_path.read_text())
        elif runs.unfinished_folder(Options(**best.user_attrs["options"])) == str(run):
            log.info(f"best trial {best.number}: evaluating its model on the test split, exporting")
            metrics = finish(best.user_attrs["options"])
        else:
            log.info(f"best trial {best.number}: its run {run} cannot be resumed")
            return result
    result.update(val=metrics["val"], test=metrics["test"], export_path=metrics.get("export_path"))
    study.set_user_attr("best", result)
    return result


def sweep(
    *,
    search,
    trials=24,
    workers=None,
    storage=None,
    study=None,
    pruner="median",
    out=None,
    **options,
):
    """Searches the `search` space over `trials` trials of the recipe with the fixed
    `options` (train.py's, named as its flags); returns what DIR/sweep.json holds.

    Args:
        search: {option: "LOW:HIGH" | "LOW:HIGH:log" | "A,B,C" | [choices]}
            (tfnn.sweep.space; a tuple is choices as a list is: (0, 0.5) is the two values 0
            and 0.5, not a range), or the CLI's "NAME=..." terms: one string, or a list or
            tuple of them.
        trials: the study's total; workers joining an existing study stop once that many
            trials finished or started (workers racing may each start one more).
        workers: processes running trials (tfnn.recipe.pool's rule; None: one a CPU).
        storage: an Optuna storage URL shared by every process of the study (None: an
            SQLite file in `out`, one process at a time).
        study: the study's name, a plain name (None: the data set's model name and a hash
            of the search and options).
        pruner: "median", "hyperband", "none", or an `optuna.pruners.BasePruner`.
        out: the sweep's folder (None: sweeps/<study>); trials' runs go to out/runs unless
            `logdir` is given.

    Raises:
        ValueError: a bad argument or search term, before anything is written;
            tfnn.recipe.errors.RunLocked: another process runs this sweep on its default
            storage; tfnn.recipe.errors.ItemsFailed: a worker process died.
    """
    search, fixed = check(
        search=search,
        trials=trials,
        workers=workers,
        pruner=pruner,
        options=options,
        study=study,
        out=out,
    )
    name = study or default_study(search, fixed)
    out = pathlib.Path(out if out is not None else pathlib.Path("sweeps") / name)
    if storage is not None:  # opened here, so a bad URL is refused before anything is written
        from tfnn.sweep import study as studies

        studies.storage(storage, heartbeat=True)
    fixed.setdefault("logdir", str(out / "runs"))

    from tfnn.recipe import pool
    from tfnn.recipe import run as runs
    from tfnn.recipe.options import Options
    from tfnn.sweep import report
    from tfnn.sweep import study as studies

    count = pool.counted(workers, items=trials)
    # One pool from the check of the bounds to the best trial's export: with more than one
    # worker this process imports no TensorFlow (its workers import theirs while it starts)
    # and trains nothing; with one, the pool runs everything here, one item after another.
    start = functools.partial(_start_worker, fixed=fixed)
    with pool.Pool(count, start=start, describe=_described) as running:
        # Before the sweep's folder exists: a refusal writes nothing, so no log either.
        monitor, mode = _planned(_one(running, "bounds", _bounds, search=search, fixed=fixed))
        runs.check_writable("out", str(out))
        lock = None if storage else _hold(out / ".lock")
        url = storage or f"sqlite:///{out.resolve() / 'study.db'}"
        try:
            seed = Options(**fixed).seed
            heartbeat = storage is not None
            loaded = studies.load(
                url, name, heartbeat=heartbeat, seed=seed, pruner_choice=pruner, mode=mode
            )
            _same_sweep(loaded, search, fixed)
            again = studies.retry_interrupted(loaded, running_are_dead=storage is None)
            if again:
                log.info(
                    f"trials {', '.join(map(str, again))} were interrupted: running them again"
                )
            remaining = trials - studies.counted(loaded)
            if remaining > 0:
                item = {
                    "url": url,
                    "heartbeat": heartbeat,
                    "name": name,
                    "trials": trials,
                    "search": search,
                    "fixed": fixed,
                    "monitor": monitor,
                    "mode": mode,
                    "pruner_choice": pruner,
                }
                running.run(
                    pool.Item(
                        f"worker-{k}",
                        studies.optimize,
                        {**item, "seed": seed + k},
                        log=str(out / f"worker-{k}.log"),
                    )
                    for k in range(1, min(count, remaining) + 1)
                )
            best = _final(
                loaded,
                monitor=monitor,
                finish=lambda options: _one(
                    running, "best", _finish, log=str(out / "best.log"), options=options
                ),
            )
            shown = _shown(url)
            return report.write(
                loaded, storage=shown, search=search, metric=monitor, best=best, out=out
            )
        finally:
            if lock is not None:
                os.close(lock)


def _planned(outcome):
    """(monitor, mode) of `_bounds`'s outcome; its refusal raised here as OptionError."""
    from tfnn.recipe.errors import OptionError

    if outcome[0] == "refused":
        raise OptionError(outcome[1])
    return outcome[1:]


def _described(result):
    """The line of a sweep's pool item when it finishes: a worker's trials; none for the
    sweep's own steps (the bounds' check, the best trial's finish), which say what they do."""
    return f"{result} trials" if isinstance(result, int) else None


def _one(running, name, function, log=None, **kwargs):
    """`function(**kwargs)` as item `name` on the pool `running` (here with one worker)."""
    from tfnn.recipe import pool

    return running.run([pool.Item(name, function, kwargs, log=log)])[name]


def _start_worker(fixed):
    """A sweep's pool worker: one TensorFlow thread, op determinism on unless the trials
    XLA-compile (Keras does not XLA-compile under it)."""
    from tfnn.recipe import fit, process
    from tfnn.recipe.options import Options

    process.configure(threads=1, deterministic=not fit.uses_xla(Options(**fixed)))


def _shown(url):
    """The storage URL without its password, for sweep.json."""
    import sqlalchemy

    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


class _CallableModule(types.ModuleType):
    """`tfnn.sweep(...)` calls `tfnn.sweep.sweep(...)`: the package is the function's name."""

    def __call__(self, **kwargs):
        return sweep(**kwargs)


sys.modules[__name__].__class__ = _CallableModule
