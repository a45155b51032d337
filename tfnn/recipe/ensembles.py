"""The ensemble stage (D6): train the members, evaluate each and the ensembles of the first
1..N of them; the last, all N, is the run's model.

    init          members differ by their seed (initialization, order, dropout)
    bagging       … and by a bootstrap sample of the training split
    checkpoints   one run's last N epochs, their weights or their outputs averaged

Each member trains in a folder of its own; members finished before an
interruption are loaded rather than trained again.

An ensemble collapses when its validation figure is worse than its worst
member's by more than COLLAPSE of that figure (accuracy 0.90 → below 0.855;
RMSE 50 → above 52.5). Averaging outputs never does that for the loss or
the RMSE (both convex in the outputs) and rarely for accuracy; averaging
weights can, and so can a copy of a model that lost part of its state. A
collapsed ensemble raises `EnsembleCollapsed`: the run stops before export.
For checkpoints the members' figures are history.csv's, computed on the
trained model itself, not on copies of it.
"""

from tfnn import callbacks as tfnn_callbacks
from tfnn.models import ensemble
from tfnn.recipe.errors import EnsembleCollapsed
from tfnn.recipe.evaluate import evaluate, summary
from tfnn.recipe.fit import build_model, fit, say
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
    snapshots = folder.path / "snapshots"
    say(f"training one model; its last {n} epochs are the members")
    model = fit(
        plan,
        folder,
        seed=options.seed,
        callbacks=[tfnn_callbacks.LastEpochsWeights(snapshots, n), *callbacks],
        stopwatch=stopwatch,
    ).model
    weights = tfnn_callbacks.snapshots(model, snapshots)
    members = [
        ensemble.weight_averaged(model, [w], name=f"member_{i + 1}") for i, w in enumerate(weights)
    ]
    members_figures = folder.history()[f"val_{plan.objective.monitor}"][-n:]

    def combine(k):
        if options.checkpoint_average == "weights":
            return ensemble.weight_averaged(model, weights[:k], name="ensemble")
        return ensemble.ensemble(members[:k], plan.output_function)

    return members, combine, members_figures


def _independent_members(plan, folder, callbacks, stopwatch):
    """(members, combine(k), None) of N runs that differ by seed (and bootstrap sample)."""
    options = plan.options
    n = options.ensemble
    members = []
    for i in range(1, n + 1):
        seed = options.seed + i - 1
        member_folder = folder.member(i)
        saved = member_folder.path / "model.weights.h5"
        name = f"member_{i}"
        if saved.is_file():  # finished before an interruption
            say(f"member {i}/{n}: trained earlier, loading {saved}")
            with stopwatch.phase("build"):
                member = build_model(plan, name=name)
                member.load_weights(str(saved))
        else:
            say(f"member {i}/{n}: training (seed {seed}, {options.ensemble_kind})")
            bootstrap = seed if options.ensemble_kind == "bagging" else None
            member = fit(
                plan,
                member_folder,
                seed=seed,
                bootstrap_seed=bootstrap,
                callbacks=callbacks,
                name=name,
                stopwatch=stopwatch,
            ).model
            member.save_weights(str(saved))
        members.append(member)
    return members, lambda k: ensemble.ensemble(members[:k], plan.output_function), None


def train_ensemble(plan, folder, callbacks=(), stopwatch=None):
    """Trains the options' N members and evaluates them and the ensembles of 1..N, timing
    the phases on `stopwatch` (tfnn.recipe.phases).

    Returns (the ensemble of all N, table), the table as `tfnn.plots.ensemble_table` draws it.

    Raises:
        EnsembleCollapsed: the ensemble of all N collapsed against its members (see above).
    """
    options, monitor = plan.options, plan.objective.monitor
    n = options.ensemble
    stopwatch = stopwatch or Stopwatch()
    members_of = (
        _checkpoint_members if options.ensemble_kind == "checkpoints" else _independent_members
    )
    members, combine, figures = members_of(plan, folder, callbacks, stopwatch)
    table = {"kind": options.ensemble_kind, "metric": monitor, "members": [], "ensembles": []}
    with stopwatch.phase("evaluation"):
        for i, member in enumerate(members, start=1):
            table["members"].append(evaluate(plan, member))
            say(f"member {i}/{n}: {summary(table['members'][-1], monitor)}")
        for k in range(1, n + 1):
            combined = combine(k)
            table["ensembles"].append({"members": k, **evaluate(plan, combined)})
            say(f"ensemble of members 1..{k}: {summary(table['ensembles'][-1], monitor)}")
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
