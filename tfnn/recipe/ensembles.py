"""The ensemble stage (D6): train the members, evaluate each and the ensembles of the first
1..N of them; the last, all N, is the run's model.

    init          members differ by their seed (initialization, order, dropout)
    bagging       … and by a bootstrap sample of the training split
    checkpoints   one run's last N epochs, their weights or their outputs averaged

Each member trains in a folder of its own; members finished before an
interruption are loaded rather than trained again.
"""

from tfnn import callbacks as tfnn_callbacks
from tfnn import export
from tfnn.models import ensemble
from tfnn.recipe.evaluate import evaluate, summary
from tfnn.recipe.fit import build_model, fit, say


def _checkpoint_members(plan, folder, callbacks):
    """(members, combine(k)) of one run whose last N epochs are the members."""
    options = plan.options
    n = options.ensemble
    snapshots = folder.path / "snapshots"
    say(f"training one model; its last {n} epochs are the members")
    model = fit(
        plan,
        folder,
        seed=options.seed,
        callbacks=[tfnn_callbacks.LastEpochsWeights(snapshots, n), *callbacks],
    ).model
    weights = tfnn_callbacks.snapshots(model, snapshots)
    members = [
        ensemble.weight_averaged(model, [w], name=f"member_{i + 1}") for i, w in enumerate(weights)
    ]
    output_function = export.OUTPUTS[plan.dataset.task.kind][1]

    def combine(k):
        if options.checkpoint_average == "weights":
            return ensemble.weight_averaged(model, weights[:k], name="ensemble")
        return ensemble.ensemble(members[:k], output_function)

    return members, combine


def _independent_members(plan, folder, callbacks):
    """(members, combine(k)) of N runs that differ by seed (and bootstrap sample)."""
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
            ).model
            member.save_weights(str(saved))
        members.append(member)
    output_function = export.OUTPUTS[plan.dataset.task.kind][1]
    return members, lambda k: ensemble.ensemble(members[:k], output_function)


def train_ensemble(plan, folder, callbacks=()):
    """Trains the options' N members and evaluates them and the ensembles of 1..N.

    Returns (the ensemble of all N, table), the table as `tfnn.plots.ensemble_table` draws it.
    """
    options, monitor = plan.options, plan.objective.monitor
    n = options.ensemble
    if options.ensemble_kind == "checkpoints":
        members, combine = _checkpoint_members(plan, folder, callbacks)
    else:
        members, combine = _independent_members(plan, folder, callbacks)
    table = {"kind": options.ensemble_kind, "metric": monitor, "members": [], "ensembles": []}
    for i, member in enumerate(members, start=1):
        table["members"].append(evaluate(plan, member))
        say(f"member {i}/{n}: {summary(table['members'][-1], monitor)}")
    for k in range(1, n + 1):
        combined = combine(k)
        table["ensembles"].append({"members": k, **evaluate(plan, combined)})
        say(f"ensemble of members 1..{k}: {summary(table['ensembles'][-1], monitor)}")
    return combined, table
