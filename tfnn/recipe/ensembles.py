"""The ensemble stage (D6): train the members, evaluate each and the ensembles of the first
1..N of them; the last, all N, is the run's model.

    init          members differ by their seed (initialization, order, dropout)
    bagging       … and by a bootstrap sample of the training split
    checkpoints   one run's last N epochs, their weights or their outputs averaged

Each member trains in a folder of its own; members whose weights were written
whole and recorded in the run's lifecycle.json before an interruption are
loaded rather than trained again (a file without its record is not trusted).

An ensemble collapses when its validation figure is worse than its worst
member's by more than COLLAPSE of that figure (accuracy 0.90 → below 0.855;
RMSE 50 → above 52.5). Averaging outputs never does that for the loss or
the RMSE (both convex in the outputs) and rarely for accuracy; averaging
weights can, and so can a copy of a model that lost part of its state. A
collapsed ensemble raises `EnsembleCollapsed`: the run stops before export.
For checkpoints the members' figures are history.csv's, computed on the
trained model itself, not on copies of it.
"""

import functools
import json
import pathlib

import tensorflow as tf

from tfnn import callbacks as tfnn_callbacks
from tfnn import files
from tfnn.models import ensemble
from tfnn.recipe import pool, process
from tfnn.recipe import run as runs
from tfnn.recipe.errors import EnsembleCollapsed
from tfnn.recipe.evaluate import evaluate, monte_carlo_dropout, summary
from tfnn.recipe.fit import build_model, fit, say, uses_xla
from tfnn.recipe.options import Options
from tfnn.recipe.phases import Stopwatch

COLLAPSE = 0.05


def collapsed(figure, members, mode):
    """The limit `figure` crossed, or None: worse than the worst of `members` by more than
    COLLAPSE of the worst's size (mode "max": higher is better)."""
    worst = min(members) if mode == "max" else max(members)
    limit = worst - COLLAPSE * abs(worst) if mode == "max" else worst + COLLAPSE * abs(worst)
    crossed = figure < limit if mode == "max" else figure > limit
    return limit if crossed else None


def _checkpoint_members(plan, folder, callbacks, stopwatch):
    """(members, combine(k), the members' validation figures from history.csv) of one run
    whose last N epochs are the members."""
    options = plan.options
    n = options.ensemble
    say(f"training one model; its last {n} epochs are the members")
    # fit's callbacks write the snapshots and record each in the run's lifecycle.json
    model = fit(plan, folder, seed=options.seed, callbacks=callbacks, stopwatch=stopwatch).model
    weights = tfnn_callbacks.snapshots(model, folder.path / "snapshots", folder.snapshots_done())
    members = [
        ensemble.weight_averaged(model, [w], name=f"member_{i + 1}") for i, w in enumerate(weights)
    ]
    members_figures = folder.history()[f"val_{plan.objective.monitor}"][-n:]

    def combine(k):
        if options.checkpoint_average == "weights":
            return ensemble.weight_averaged(model, weights[:k], name="ensemble")
        return ensemble.ensemble(members[:k], plan.output_function)

    return members, combine, members_figures


def _members_here(plan, folder, callbacks, stopwatch):
    """(members, combine(k)) of N runs that differ by seed (and bootstrap sample), trained
    here one after another (or loaded where recorded)."""
    n = plan.options.ensemble
    members = [
        train_member(plan, folder, i, callbacks=callbacks, stopwatch=stopwatch)
        for i in range(1, n + 1)
    ]
    return members, lambda k: ensemble.ensemble(members[:k], plan.output_function)


def member_weights(folder, i):
    """Where member `i` of the run in `folder` keeps its trained weights."""
    return folder.member(i).path / "model.weights.h5"


def train_member(plan, folder, i, *, callbacks=(), stopwatch=None):
    """Member `i` (1-based) of the run in `folder`: loaded if recorded as written (here or
    on the pool), else trained here (`_fit_member`)."""
    stopwatch = stopwatch or Stopwatch()
    if folder.member_done(i):
        saved = member_weights(folder, i)
        say(f"member {i}/{plan.options.ensemble}: trained earlier, loading {saved}")
        with stopwatch.phase("build"):
            member = build_model(plan, name=f"member_{i}")
            member.load_weights(str(saved))
        return member
    return _fit_member(plan, folder, i, callbacks=callbacks, stopwatch=stopwatch).model


def _fit_member(plan, folder, i, *, callbacks=(), stopwatch=None):
    """Trains member `i` with seed + i − 1 (and that bootstrap sample for bagging), writes
    its weights whole, records it in the run's lifecycle.json and drops its resume backup;
    returns `fit`'s `Fitted`."""
    options = plan.options
    seed = options.seed + i - 1
    say(f"member {i}/{options.ensemble}: training (seed {seed}, {options.ensemble_kind})")
    member_folder = folder.member(i)
    fitted = fit(
        plan,
        member_folder,
        seed=seed,
        bootstrap_seed=seed if options.ensemble_kind == "bagging" else None,
        callbacks=callbacks,
        name=f"member_{i}",
        stopwatch=stopwatch or Stopwatch(),
    )
    with files.replacing(member_weights(folder, i)) as temporary:
        fitted.model.save_weights(str(temporary))
    folder.record_member(i)
    member_folder.drop_backup()
    return fitted


def _on_pool(plan, folder, stopwatch, count, meanwhile=None):
    """(the ensemble of all N, the table's rows) of independent members on a pool of `count`
    workers: the members not recorded yet train there, each measured where it trained
    (`pool_member`); then the workers measure the other rows but the last ensemble's (a
    member's too where its figures were not recorded), and Monte-Carlo dropout, while this
    process loads the members, measures the ensemble it returns (the same figures as
    `_measured_here`'s: the same models, and inference's figures do not depend on the
    process's threads) and calls `meanwhile(that ensemble)` (None: nothing)."""
    options, n = plan.options, plan.options.ensemble
    run = {"options": options.as_dict(), "path": str(folder.path), "resume": str(folder.resume)}

    def item(name, function, log, **kwargs):
        return pool.Item(name, function, {**run, **kwargs}, log=str(log))

    start = functools.partial(process.configure, threads=1, deterministic=not uses_xla(options))

    with pool.Pool(count, start=start, describe=_described, here=False) as running:
        missing = [i for i in range(1, n + 1) if not folder.member_done(i)]
        if missing:
            with stopwatch.phase("fit"):
                running.run(
                    item(f"member-{i}", pool_member, folder.member(i).path / "train.log", index=i)
                    for i in missing
                )
        with stopwatch.phase("evaluation"):
            log = folder.path / "figures.log"  # the members' logs stay their training's
            recorded = {i: folder.member_figures(i) for i in range(1, n + 1)}
            jobs = [("mc-dropout", n, "mc_dropout")] if options.mc_dropout else []
            jobs += [(f"ensemble-{k}", k, "ensemble") for k in range(n - 1, 0, -1)]
            jobs += [
                (f"figures-{i}", i, "member")
                for i in range(n, 0, -1)
                if recorded[i] is None  # trained before figures were recorded with members
            ]
            for name, members, kind in jobs:  # the longest first
                running.submit(item(name, pool_figures, log, members=members, kind=kind))
            members = [train_member(plan, folder, i) for i in range(1, n + 1)]
            combined = ensemble.ensemble(members, plan.output_function)
            last = evaluate(plan, combined)
        if meanwhile:
            with stopwatch.phase("export"):
                meanwhile(combined)
        with stopwatch.phase("evaluation"):
            measured = running.gather([job[0] for job in jobs])
    return combined, {
        "members": [recorded[i] or measured[f"figures-{i}"] for i in range(1, n + 1)],
        "ensembles": [
            *({"members": k, **measured[f"ensemble-{k}"]} for k in range(1, n)),
            {"members": n, **last},
        ],
        "mc_dropout": measured.get("mc-dropout"),
    }


def _described(result):
    """A pool item's line: a member's epochs; none for the figures (the table says them)."""
    return f"{result['epochs']} epochs" if isinstance(result, dict) and "epochs" in result else None


# A worker's plan, kept for its next item of the same options (its data set loaded once).
_plan = {}


def _worker_run(options, path, resume):
    """(plan, run folder) of a pool item of the run with `options` (a dict) in `path`."""
    from tfnn.recipe import train  # the run's stages; it imports this module

    checked = Options(**options)
    train._configure(checked)
    key = json.dumps(options, sort_keys=True)
    if key not in _plan:
        _plan.clear()
        _plan[key] = train._prepare(checked, tf.distribute.get_strategy())
    return _plan[key], runs.RunFolder(pathlib.Path(path), pathlib.Path(resume))


def pool_member(*, options, index, path, resume):
    """A pool item: trains member `index` of the run with `options` (a dict; run folder
    `path`, resume folder `resume`) as the loop in the run's own process would, then
    records its figures (`RunFolder.record_member_figures`); returns {"epochs": the epochs
    it trained}."""
    plan, folder = _worker_run(options, path, resume)
    runs.fault_point(f"member-{index}")  # tests: TFNN_FAULT_AT=member-2:SIGKILL
    fitted = _fit_member(plan, folder, index)
    # its row of the table, measured here while the other workers still train
    folder.record_member_figures(index, evaluate(plan, fitted.model))
    return {"epochs": fitted.epochs}


def pool_figures(*, options, path, resume, members, kind):
    """A pool item of the run with `options` in `path` (see `pool_member`), its members
    recorded as written: `kind` "member", the figures of member `members` alone; "ensemble",
    those of the ensemble of members 1..`members`; "mc_dropout", that ensemble's Monte-Carlo
    dropout figures (or None)."""
    plan, folder = _worker_run(options, path, resume)
    if kind == "member":
        return evaluate(plan, train_member(plan, folder, members))
    loaded = [train_member(plan, folder, i) for i in range(1, members + 1)]
    combined = ensemble.ensemble(loaded, plan.output_function)
    if kind == "ensemble":
        return evaluate(plan, combined)
    return monte_carlo_dropout(plan, combined)


def _measured_here(plan, members, combine, stopwatch):
    """(the ensemble of all N, the table's rows): each member's figures, each ensemble of
    1..N's, and the last one's Monte-Carlo dropout figures (None without dropout)."""
    n = len(members)
    with stopwatch.phase("evaluation"):
        rows = {"members": [evaluate(plan, member) for member in members], "ensembles": []}
        for k in range(1, n + 1):
            combined = combine(k)
            rows["ensembles"].append({"members": k, **evaluate(plan, combined)})
    with stopwatch.phase("mc_dropout"):
        rows["mc_dropout"] = monte_carlo_dropout(plan, combined)
    return combined, rows


def train_ensemble(plan, folder, callbacks=(), stopwatch=None, workers=1, *, meanwhile=None):
    """Trains the options' N members and evaluates them and the ensembles of 1..N, timing
    the phases on `stopwatch` (tfnn.recipe.phases). Independent members train on `workers`
    processes (tfnn.recipe.pool; None: one a CPU), without `callbacks`, objects of this
    process; a checkpoint ensemble is one run, here. On a pool, `meanwhile(the ensemble of
    all N)` runs here while the workers measure the table (train.py writes the export).

    Returns (the ensemble of all N, table), the table as `tfnn.plots.ensemble_table` draws it.

    Raises:
        EnsembleCollapsed: the ensemble of all N collapsed against its members (see above).
    """
    options, monitor = plan.options, plan.objective.monitor
    n = options.ensemble
    stopwatch = stopwatch or Stopwatch()
    figures = None
    if options.ensemble_kind == "checkpoints":
        members, combine, figures = _checkpoint_members(plan, folder, callbacks, stopwatch)
        combined, rows = _measured_here(plan, members, combine, stopwatch)
    elif (count := pool.counted(workers, items=n)) > 1:
        combined, rows = _on_pool(plan, folder, stopwatch, count, meanwhile)
    else:
        members, combine = _members_here(plan, folder, callbacks, stopwatch)
        combined, rows = _measured_here(plan, members, combine, stopwatch)
    table = {"kind": options.ensemble_kind, "metric": monitor, **rows}
    for i, row in enumerate(table["members"], start=1):
        say(f"member {i}/{n}: {summary(row, monitor)}")
    for row in table["ensembles"]:
        say(f"ensemble of members 1..{row['members']}: {summary(row, monitor)}")
    figures = figures or [member["val"][monitor] for member in table["members"]]
    figure = table["ensembles"][-1]["val"][monitor]
    limit = collapsed(figure, figures, plan.objective.mode)
    if limit is not None:
        raise EnsembleCollapsed(
            f"the ensemble of {n} ({_kind(options)}) collapsed: val {monitor} {figure:.4f} "
            f"against its members' {', '.join(f'{f:.4f}' for f in figures)} (limit "
            f"{limit:.4f}); nothing exported"
        )
    return combined, table


def _kind(options):
    if options.ensemble_kind == "checkpoints":
        return f"checkpoints, {options.checkpoint_average} averaged"
    return options.ensemble_kind
