"""train.py's ensembles (LECTURE.md D6) and Monte-Carlo dropout report (D7).

`train(…)` trains the --ensemble members with the recipe of `tfnn.cli.train`
(a folder per member; members finished before an interruption are loaded)
and evaluates each member and the ensembles of its first 1..N members.
`monte_carlo_dropout(…)` evaluates T stochastic passes of a trained model
beside its usual deterministic pass.
"""

from tfnn.cli import train as recipe


def train(args, dataset, run, resume, callbacks, strategy):
    """Trains the --ensemble members (D6) and the ensembles of the first 1..N of them.

    Returns (final model, table), the table as described by `tfnn.plots.ensemble_table`.
    """
    from tfnn import callbacks as tfnn_callbacks
    from tfnn import export
    from tfnn.models import ensemble

    output_function = export.OUTPUTS[dataset.task.kind][1]
    n = args.ensemble
    if args.ensemble_kind == "checkpoints":
        folder = run / "snapshots"
        recipe.say(f"training one model; its last {n} epochs are the members")
        model, _, _ = recipe.fit_model(
            args,
            dataset,
            run,
            resume,
            seed=args.seed,
            strategy=strategy,
            callbacks=[tfnn_callbacks.LastEpochsWeights(folder, n), *callbacks],
        )
        weights = tfnn_callbacks.snapshots(model, folder)
        members = [
            ensemble.weight_averaged(model, [w], name=f"member_{i + 1}")
            for i, w in enumerate(weights)
        ]

        def combine(k):
            if args.checkpoint_average == "weights":
                return ensemble.weight_averaged(model, weights[:k], name="ensemble")
            return ensemble.ensemble(members[:k], output_function)

    else:
        members = []
        for i in range(1, n + 1):
            seed = args.seed + i - 1
            member_run, member_resume = run / f"member-{i}", resume / f"member-{i}"
            saved = member_run / "model.weights.h5"
            name = f"member_{i}"
            if saved.is_file():  # finished before an interruption
                recipe.say(f"member {i}/{n}: trained earlier, loading {saved}")
                member = recipe.build_model(args, dataset, name=name)
                member.load_weights(str(saved))
            else:
                recipe.say(f"member {i}/{n}: training (seed {seed}, {args.ensemble_kind})")
                bootstrap = seed if args.ensemble_kind == "bagging" else None
                member, _, _ = recipe.fit_model(
                    args,
                    dataset,
                    member_run,
                    member_resume,
                    seed=seed,
                    strategy=strategy,
                    bootstrap_seed=bootstrap,
                    callbacks=callbacks,
                    name=name,
                )
                member.save_weights(str(saved))
            members.append(member)

        def combine(k):
            return ensemble.ensemble(members[:k], output_function)

    monitor = recipe.loss_and_metrics(dataset.task, args.label_smoothing, bool(args.mixup))[2]
    table = {"kind": args.ensemble_kind, "metric": monitor, "members": [], "ensembles": []}
    for i, member in enumerate(members, start=1):
        table["members"].append(recipe.evaluate(args, dataset, member))
        recipe.say(f"member {i}/{n}: {recipe.summary(table['members'][-1], monitor)}")
    for k in range(1, n + 1):
        combined = combine(k)
        table["ensembles"].append({"members": k, **recipe.evaluate(args, dataset, combined)})
        recipe.say(f"ensemble of members 1..{k}: {recipe.summary(table['ensembles'][-1], monitor)}")
    return combined, table


def monte_carlo_dropout(args, dataset, model):
    """Validation and test figures of Monte-Carlo dropout (D7), or None when not asked
    for or the model has no dropout."""
    from tfnn import export, layers
    from tfnn.models import ensemble

    def all_layers(model):
        for layer in model.layers:
            yield layer
            if hasattr(layer, "layers"):
                yield from all_layers(layer)

    dropout = [
        layer for layer in all_layers(model) if isinstance(layer, layers.Dropout) and layer.rate
    ]
    if not args.mc_dropout or not dropout:
        return None
    output_function = export.OUTPUTS[dataset.task.kind][1]
    mc = ensemble.monte_carlo_dropout(model, args.mc_dropout, output_function)
    return {"samples": args.mc_dropout, **recipe.evaluate(args, dataset, mc)}
