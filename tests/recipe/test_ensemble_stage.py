"""The ensemble stage's own logic (tfnn/recipe/ensembles.py), with stand-ins for what it calls
that trains or measures networks: which member trains with which seed, in which folder, is
loaded rather than trained, which rows the table holds and where each is measured, and when
an ensemble collapses. Each test runs in well under a second; the stage's tests on real
networks are in test_ensembles.py."""

import logging
import pathlib
import types

import pytest

from tfnn.recipe import ensembles, errors, phases
from tfnn.recipe import run as runs
from tfnn.recipe import train as stages
from tfnn.recipe.options import Options


@pytest.mark.parametrize(
    "figure, members, mode, limit",
    [
        (0.85, [0.95, 0.90], "max", 0.855),  # below 0.90 − 5 % of 0.90
        (0.86, [0.95, 0.90], "max", None),
        (0.333, [0.965], "max", 0.91675),  # the failure this guards against
        (52.6, [48.0, 50.0], "min", 52.5),  # RMSE above 50 + 5 % of 50
        (52.4, [48.0, 50.0], "min", None),
    ],
)
def test_an_ensemble_collapses_when_far_worse_than_its_worst_member(figure, members, mode, limit):
    """Catches the best member taken for the worst, or the limit on the wrong side."""
    found = ensembles.collapsed(figure, members, mode)
    assert found == (None if limit is None else pytest.approx(limit, abs=1e-3))


@pytest.mark.parametrize(
    "figure, members, mode, collapses",
    [
        (0.95, [1.0], "max", False),  # at the limit 1.0 − 5 % of 1.0: not below it
        (0.9499, [1.0], "max", True),
        (2.1, [2.0], "min", False),  # at the limit 2.0 + 5 % of 2.0: not above it
        (2.1001, [2.0], "min", True),
        (-2.1, [-2.0], "max", False),  # a negative figure: 5 % of its size, −2.0 − 0.1
        (-2.1001, [-2.0], "max", True),
    ],
)
def test_an_ensemble_at_the_collapse_limit_has_not_collapsed(figure, members, mode, collapses):
    """Catches `<=` for `<` (or `>=` for `>`) and the limit's share of a negative figure."""
    assert (ensembles.collapsed(figure, members, mode) is not None) is collapses


@pytest.mark.parametrize(
    "result, line",
    [({"epochs": 3}, "3 epochs"), ({"epochs": 0}, "0 epochs"), ({"val": {}}, None), (None, None)],
)
def test_a_members_item_is_a_line_of_its_epochs_and_a_figures_item_none(result, line):
    """At the limit of a member's line (0 epochs: a resumed member trained none, still a
    line) and past it (figures, or Monte-Carlo dropout's None): catches `result.get("epochs")`
    read by truth and a line for every item."""
    assert ensembles._described(result) == line


# Stand-ins: a network is its name and one number, its "weights", which is also its figure;
# an ensemble's figure is its members' mean (less `Stage.penalty`, to make it collapse).


class Net:
    def __init__(self, name, score):
        self.name, self.score, self.loaded = name, score, None

    def save_weights(self, path):
        pathlib.Path(path).write_text(repr(self.score))

    def load_weights(self, path):
        assert isinstance(path, str)
        self.loaded, self.score = path, float(pathlib.Path(path).read_text())


class Average:
    def __init__(self, members, output, penalty):
        self.members, self.output = list(members), output
        self.score = sum(m.score for m in self.members) / len(self.members) - penalty


def figures(score, monitor="accuracy"):
    """A stand-in evaluation's figures of a network whose figure is `score`."""
    return {"val": {monitor: score}, "test": {monitor: score + 1.0}}


class Stage:
    """Records what the stage hands fit, build_model, the ensembles and Monte-Carlo dropout."""

    def __init__(self, monkeypatch):
        self.fits, self.built, self.averaged, self.snapshots, self.mc = [], [], [], [], []
        self.built_for = []  # the plans build_model was given
        self.penalty = 0.0
        monkeypatch.setattr(ensembles, "fit", self.fit)
        monkeypatch.setattr(ensembles, "build_model", self.build_model)
        monkeypatch.setattr(ensembles, "evaluate", self.evaluate)
        monkeypatch.setattr(ensembles, "monte_carlo_dropout", self.monte_carlo_dropout)
        monkeypatch.setattr(
            ensembles,
            "ensemble",
            types.SimpleNamespace(ensemble=self.ensemble, weight_averaged=self.weight_averaged),
        )
        monkeypatch.setattr(
            ensembles, "tfnn_callbacks", types.SimpleNamespace(snapshots=self.snapshot_weights)
        )
        self.fault_points = []
        monkeypatch.setattr(ensembles.runs, "fault_point", self.fault_points.append)

    def fit(self, plan, folder, **kwargs):
        """A member's figure is its seed / 100 (+ 0.001 with a bootstrap sample); it trained
        seed % 5 epochs; it leaves its folder, as a fit does."""
        self.fits.append((plan, folder, kwargs))
        folder.path.mkdir(parents=True, exist_ok=True)
        score = kwargs["seed"] / 100 + (0.001 if kwargs.get("bootstrap_seed") else 0.0)
        self.model = Net(kwargs.get("name", "model"), score)
        return types.SimpleNamespace(model=self.model, epochs=kwargs["seed"] % 5)

    def build_model(self, plan, name=None):
        self.built.append(name)
        self.built_for.append(plan)
        return Net(name, None)

    def evaluate(self, plan, model):
        return figures(model.score, plan.objective.monitor)

    def monte_carlo_dropout(self, plan, model):
        self.mc.append(model)
        return {"samples": plan.options.mc_dropout, "of": model.score}

    def ensemble(self, members, output):
        return Average(members, output, self.penalty)

    def weight_averaged(self, model, weights, name):
        self.averaged.append((model, weights, name))
        return Net(
            name, sum(w[0] for w in weights) / len(weights) - self.penalty * (len(weights) > 1)
        )

    def snapshot_weights(self, model, folder, epochs):
        """Epoch e's weights: [e / 10]."""
        self.snapshots.append((model, folder, epochs))
        return [[e / 10] for e in epochs]


@pytest.fixture
def stage(monkeypatch):
    return Stage(monkeypatch)


def make_plan(monitor="accuracy", mode="max", **options):
    """A plan's parts the stage reads: the options (seed 7, 3 members, Monte-Carlo dropout
    T = 2), the objective's monitor and mode, the output function."""
    checked = Options(**{"model": "mlp", "ensemble": 3, "seed": 7, "mc_dropout": 2, **options})
    objective = types.SimpleNamespace(monitor=monitor, mode=mode)
    return types.SimpleNamespace(options=checked, objective=objective, output_function="soft")


def record_member(folder, i, score):
    """Member `i` written whole with figure `score` and recorded, as a finished fit leaves it."""
    path = ensembles.member_weights(folder, i)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(repr(score))
    folder.record_member(i)


@pytest.mark.parametrize("kind, bootstrap", [("init", False), ("bagging", True)])
def test_each_member_trains_with_its_seed_in_its_folder_and_is_recorded(
    run_folder, stage, tmp_path, caplog, kind, bootstrap
):
    """Member i of seed 7 trains with seed 6 + i (bagging: that bootstrap sample too), in its
    own folder, named member_i, with the callbacks and stopwatch given; its weights are
    written whole to its folder, recorded, and its backup dropped. Catches another seed or
    sample, a member trained in another's (or the run's) folder, the callbacks or stopwatch
    lost, a member not recorded or its backup kept."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    plan, folder = make_plan(ensemble_kind=kind), run_folder(tmp_path)
    for i in (1, 2, 3):
        (folder.member(i).backup / "chief").mkdir(parents=True)
    callbacks, stopwatch = ["callback"], phases.Stopwatch()
    members, combine = ensembles._members_here(plan, folder, callbacks, stopwatch)
    for i, (given, member_folder, kwargs) in enumerate(stage.fits, start=1):
        assert given is plan and member_folder == folder.member(i)
        assert kwargs == {
            "seed": 6 + i,
            "bootstrap_seed": 6 + i if bootstrap else None,
            "callbacks": callbacks,
            "name": f"member_{i}",
            "stopwatch": stopwatch,
        }
        assert f"member {i}/3: training (seed {6 + i}, {kind})" in caplog.messages
        saved = float(ensembles.member_weights(folder, i).read_text())
        assert saved == members[i - 1].score == (6 + i) / 100 + 0.001 * bootstrap
        assert not folder.member(i).backup.exists()
    assert len(stage.fits) == 3
    assert ensembles.member_weights(folder, 2) == tmp_path / "run" / "member-2" / "model.weights.h5"
    assert folder.lifecycle()["members"] == [1, 2, 3]
    assert [m.name for m in members] == ["member_1", "member_2", "member_3"]
    two = combine(2)
    assert two.members == members[:2] and two.output == "soft"


def test_a_member_trained_alone_gets_a_stopwatch_of_its_own(run_folder, stage, tmp_path):
    """Catches `stopwatch and Stopwatch()` (None handed to fit) in `train_member` and in
    `_fit_member` when the caller gave none, as a pool's member does."""
    ensembles.train_member(make_plan(), run_folder(tmp_path), 1)
    ensembles._fit_member(make_plan(), run_folder(tmp_path), 2)
    for _, _, kwargs in stage.fits:
        assert isinstance(kwargs["stopwatch"], phases.Stopwatch)
        assert kwargs["callbacks"] == ()


def test_a_recorded_member_is_loaded_not_trained(run_folder, stage, tmp_path, caplog):
    """Member 2, recorded as written, is built as member_2 and loaded from its file, timed as
    "build" on the stopwatch given; the others train. Catches a recorded member trained
    again, built for no plan, loaded from another's file or with another name, or its time
    lost."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    plan, folder = make_plan(), run_folder(tmp_path)
    record_member(folder, 2, 0.5)
    stopwatch = phases.Stopwatch()
    members, _ = ensembles._members_here(plan, folder, (), stopwatch)
    assert [kwargs["seed"] for _, _, kwargs in stage.fits] == [7, 9]
    assert stage.built == ["member_2"] and stage.built_for == [plan]
    saved = ensembles.member_weights(folder, 2)
    assert members[1].loaded == str(saved) and members[1].score == 0.5
    assert f"member 2/3: trained earlier, loading {saved}" in caplog.messages
    assert "build" in stopwatch.seconds
    loaded = ensembles.train_member(plan, folder, 2)  # no stopwatch given
    assert loaded.score == 0.5 and len(stage.fits) == 2


def test_the_table_holds_each_member_and_each_ensemble_of_the_first_k(
    run_folder, stage, tmp_path, caplog
):
    """Three members trained here: the table's kind and metric, each member's figures, the
    ensembles of 1, 2 and 3 (each its first k members), Monte-Carlo dropout of the ensemble
    of all 3 (the one returned), and a line per row; the members get the callbacks and
    stopwatch given. Catches a row of another ensemble, the ensemble of N missing or measured
    on fewer, the wrong members combined, the callbacks or stopwatch not handed on."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    plan, stopwatch = make_plan(), phases.Stopwatch()
    model, table = ensembles.train_ensemble(plan, run_folder(tmp_path), ["callback"], stopwatch)
    scores = [0.07, 0.08, 0.09]
    rows = table.pop("ensembles")
    assert table == {
        "kind": "init",
        "metric": "accuracy",
        "members": [figures(s) for s in scores],
        "mc_dropout": {"samples": 2, "of": pytest.approx(0.08)},
    }
    assert [row.pop("members") for row in rows] == [1, 2, 3]
    for k, row in enumerate(rows, start=1):
        mean = sum(scores[:k]) / k
        assert row == {
            "val": {"accuracy": pytest.approx(mean)},
            "test": pytest.approx(figures(mean)["test"]),
        }
    assert stage.mc == [model] and [m.score for m in model.members] == scores
    assert model.output == "soft"
    assert "member 2/3: val accuracy 0.0800, test accuracy 1.0800" in caplog.messages
    assert "ensemble of members 1..3: val accuracy 0.0800, test accuracy 1.0800" in caplog.messages
    assert {"evaluation", "mc_dropout"} <= set(stopwatch.seconds)
    assert [kwargs["stopwatch"] for _, _, kwargs in stage.fits] == [stopwatch] * 3
    assert [kwargs["callbacks"] for _, _, kwargs in stage.fits] == [["callback"]] * 3


@pytest.mark.parametrize("penalty, collapses", [(0.013, False), (0.014, True)])
def test_an_ensemble_of_independent_members_collapses_below_its_worst_member(
    run_folder, stage, tmp_path, penalty, collapses
):
    """Members 0.07, 0.08, 0.09: the limit is 0.07 less 5 %, 0.0665; the ensemble's 0.08 less
    `penalty` on either side of it. Catches the collapse judged against the best member or
    on the test split, or the message without its kind, figures or limit."""
    stage.penalty = penalty
    plan = make_plan()
    if not collapses:
        ensembles.train_ensemble(plan, run_folder(tmp_path))
        return
    with pytest.raises(errors.EnsembleCollapsed) as raised:
        ensembles.train_ensemble(plan, run_folder(tmp_path))
    assert str(raised.value) == (
        "the ensemble of 3 (init) collapsed: val accuracy 0.0660 against its members' "
        "0.0700, 0.0800, 0.0900 (limit 0.0665); nothing exported"
    )


def test_a_lower_is_better_figure_collapses_above_its_worst_member(run_folder, stage, tmp_path):
    """Mode "min" (an RMSE): members 0.071–0.091, the ensemble of all 3 at 0.081 + 0.02 is
    above 0.091 + 5 %. Catches the objective's mode or monitor not passed on."""
    stage.penalty = -0.02
    plan = make_plan(monitor="rmse", mode="min", ensemble_kind="bagging")
    with pytest.raises(errors.EnsembleCollapsed) as raised:
        ensembles.train_ensemble(plan, run_folder(tmp_path))
    assert str(raised.value) == (
        "the ensemble of 3 (bagging) collapsed: val rmse 0.1010 against its members' "
        "0.0710, 0.0810, 0.0910 (limit 0.0955); nothing exported"
    )


def checkpoint_run(folder, epochs=4, history=(0.4, 0.5, 0.6, 0.7)):
    """Run folder `folder` as its fit left it: history.csv of `history`, the snapshots of
    epochs 2-4."""
    folder.path.mkdir(parents=True)
    rows = [f"{e},{v},{1 - v}" for e, v in enumerate(history, start=1)]
    folder.history_path.write_text("epoch,val_accuracy,val_loss\n" + "\n".join(rows) + "\n")
    for epoch in range(epochs - 2, epochs + 1):
        folder.record_snapshot(epoch)
    return folder


@pytest.mark.parametrize("average", ["weights", "outputs"])
def test_a_checkpoint_ensemble_is_one_fit_and_its_last_epochs(
    run_folder, stage, tmp_path, caplog, average
):
    """One fit with the run's seed, callbacks and stopwatch (no member name, no bootstrap);
    the members are the recorded snapshots, each alone, named member_1..3; the figures the
    collapse check reads are history.csv's last 3; the ensembles average the first k
    snapshots' weights (named "ensemble") or the first k members' outputs. Catches another
    seed, the snapshots of other epochs or folder, members of several snapshots, and the
    other average."""
    caplog.set_level(logging.INFO, logger="tfnn.recipe")
    plan = make_plan(ensemble_kind="checkpoints", epochs=4, checkpoint_average=average)
    folder, stopwatch = checkpoint_run(run_folder(tmp_path)), phases.Stopwatch()
    members, combine, members_figures = ensembles._checkpoint_members(
        plan, folder, ["callback"], stopwatch
    )
    ((given, fit_folder, kwargs),) = stage.fits
    assert given is plan and fit_folder is folder
    assert kwargs == {"seed": 7, "callbacks": ["callback"], "stopwatch": stopwatch}
    assert "training one model; its last 3 epochs are the members" in caplog.messages
    assert stage.snapshots == [(stage.model, folder.path / "snapshots", [2, 3, 4])]
    assert [(m, w, name) for m, w, name in stage.averaged] == [
        (stage.model, [[0.2]], "member_1"),
        (stage.model, [[0.3]], "member_2"),
        (stage.model, [[0.4]], "member_3"),
    ]
    assert [m.name for m in members] == ["member_1", "member_2", "member_3"]
    assert members_figures == [0.5, 0.6, 0.7]
    stage.averaged.clear()
    two = combine(2)
    if average == "weights":
        assert stage.averaged == [(stage.model, [[0.2], [0.3]], "ensemble")]
        assert two.name == "ensemble" and two.score == pytest.approx(0.25)
    else:
        assert not stage.averaged
        assert two.members == members[:2] and two.output == "soft"


def test_a_checkpoint_ensemble_collapses_against_its_epochs_history(run_folder, stage, tmp_path):
    """The members' figures are history.csv's (0.5, 0.6, 0.7), not the copies' (0.2-0.4):
    the weight average, 0.3, collapses below 0.5 − 5 %. Catches the copies' figures used
    (the average would then not collapse), the history's first epochs read, or the message
    without its kind."""
    plan = make_plan(ensemble_kind="checkpoints", epochs=4)
    folder = checkpoint_run(run_folder(tmp_path), history=(0.4, 0.5, 0.6, 0.7))
    with pytest.raises(errors.EnsembleCollapsed) as raised:
        ensembles.train_ensemble(plan, folder)
    assert str(raised.value) == (
        "the ensemble of 3 (checkpoints, weights averaged) collapsed: val accuracy 0.3000 "
        "against its members' 0.5000, 0.6000, 0.7000 (limit 0.4750); nothing exported"
    )


def test_a_checkpoint_ensembles_table_measures_the_copies(run_folder, stage, tmp_path):
    """The table's rows are the copies' own figures (each snapshot alone, the averages of
    the first k); the collapse check reads history.csv's, here 0.2-0.4, which the average
    of all three, 0.3, does not cross. Catches the table's rows taken from history.csv, or
    the callbacks or stopwatch not handed on to the fit."""
    plan = make_plan(ensemble_kind="checkpoints", epochs=4, checkpoint_average="outputs")
    folder = checkpoint_run(run_folder(tmp_path), history=(0.1, 0.2, 0.3, 0.4))
    stopwatch = phases.Stopwatch()
    model, table = ensembles.train_ensemble(plan, folder, ["callback"], stopwatch)
    ((_, _, kwargs),) = stage.fits  # the callbacks and stopwatch given, not None
    assert kwargs["callbacks"] == ["callback"] and kwargs["stopwatch"] is stopwatch
    assert table["kind"] == "checkpoints"
    assert [row["val"]["accuracy"] for row in table["members"]] == [0.2, 0.3, 0.4]
    means = [row["val"]["accuracy"] for row in table["ensembles"]]
    assert means == pytest.approx([0.2, 0.25, 0.3])
    assert model.output == "soft" and [m.name for m in model.members] == [
        "member_1",
        "member_2",
        "member_3",
    ]


# On a pool: conftest's `pool_here` runs each item here, with the test's plan.


def pool_items(pool_here, function):
    return [item for item in pool_here.items if item.function is function]


def test_the_members_missing_train_on_the_pool_and_the_table_is_measured_there(
    run_folder, stage, tmp_path, pool_here
):
    """Of 4 members, 1 and 3 recorded (without figures), 2 and 4 missing, workers 2: the
    pool (two workers, one thread each, op determinism, members' lines) trains 2 and 4, each
    in its folder with its seed, logging to its train.log, measured where it trained; then
    gets Monte-Carlo dropout of all 4, the ensembles of 3, 2 and 1 and the figures of
    members 3 and 1, longest first, logging to figures.log; the ensemble of 4 is measured
    here. Catches a member sent again or to another folder, seed or log, a row in another's
    place, the last ensemble sent too, a recorded member's figures measured again, or a
    missing member's (the first's too) not."""
    plan = pool_here.plan = make_plan(ensemble=4)
    folder, stopwatch = run_folder(tmp_path), phases.Stopwatch()
    record_member(folder, 1, 0.5)
    record_member(folder, 3, 0.6)
    model, table = ensembles.train_ensemble(plan, folder, stopwatch=stopwatch, workers=2)
    ((workers, start, describe, here),) = pool_here.pools
    assert (workers, describe, here) == (2, ensembles._described, False)
    assert (start.func, start.args, start.keywords) == (
        ensembles.process.configure,
        (),
        {"threads": 1, "deterministic": True},
    )
    run = {
        "options": plan.options.as_dict(),
        "path": str(folder.path),
        "resume": str(folder.resume),
    }
    trained = pool_items(pool_here, ensembles.pool_member)
    assert [(item.name, item.kwargs, item.log) for item in trained] == [
        (f"member-{i}", {**run, "index": i}, str(folder.member(i).path / "train.log"))
        for i in (2, 4)
    ]
    assert stage.fault_points == ["member-2", "member-4"]
    assert [(f, k["seed"]) for _, f, k in stage.fits] == [
        (folder.member(2), 8),
        (folder.member(4), 10),
    ]
    measured = pool_items(pool_here, ensembles.pool_figures)
    log = str(folder.path / "figures.log")
    assert [(item.name, item.kwargs, item.log) for item in measured] == [
        ("mc-dropout", {**run, "members": 4, "kind": "mc_dropout"}, log),
        ("ensemble-3", {**run, "members": 3, "kind": "ensemble"}, log),
        ("ensemble-2", {**run, "members": 2, "kind": "ensemble"}, log),
        ("ensemble-1", {**run, "members": 1, "kind": "ensemble"}, log),
        ("figures-3", {**run, "members": 3, "kind": "member"}, log),
        ("figures-1", {**run, "members": 1, "kind": "member"}, log),
    ]
    assert len(pool_here.items) == 8
    scores = [0.5, 0.08, 0.6, 0.1]
    assert table["members"] == [figures(s) for s in scores]
    recorded = [folder.member_figures(i) for i in (1, 2, 3, 4)]
    assert recorded == [None, figures(0.08), None, figures(0.1)]
    assert [row["members"] for row in table["ensembles"]] == [1, 2, 3, 4]
    for k, row in enumerate(table["ensembles"], start=1):
        assert row["val"]["accuracy"] == pytest.approx(sum(scores[:k]) / k)
    assert table["mc_dropout"] == {"samples": 2, "of": pytest.approx(sum(scores) / 4)}
    assert [m.score for m in model.members] == scores and model.output == "soft"
    assert [m.name for m in model.members] == [f"member_{i}" for i in (1, 2, 3, 4)]
    assert table["kind"] == "init" and table["metric"] == "accuracy"
    assert {"fit", "evaluation"} <= set(stopwatch.seconds) and "export" not in stopwatch.seconds


def test_a_pool_with_every_member_done_measures_only_and_runs_meanwhile_once(
    run_folder, stage, tmp_path, pool_here
):
    """Every member recorded with its figures, T = 0: no member item, no fit phase, the
    ensembles of 2 and 1 only, no Monte-Carlo row; `meanwhile` gets the ensemble returned,
    once, timed as the export. Catches members trained again, a figures item for a member
    whose figures were recorded, `meanwhile` skipped or given another model."""
    plan = pool_here.plan = make_plan(mc_dropout=0)
    folder, stopwatch = run_folder(tmp_path), phases.Stopwatch()
    for i, score in ((1, 0.3), (2, 0.4), (3, 0.5)):
        record_member(folder, i, score)
        folder.record_member_figures(i, figures(score + 0.01))  # measured where it trained
    seen = []
    model, table = ensembles.train_ensemble(
        plan, folder, stopwatch=stopwatch, workers=2, meanwhile=seen.append
    )
    assert [item.name for item in pool_here.items] == ["ensemble-2", "ensemble-1"]
    assert seen == [model] and [m.score for m in model.members] == [0.3, 0.4, 0.5]
    assert table["members"] == [figures(s + 0.01) for s in (0.3, 0.4, 0.5)]
    assert table["mc_dropout"] is None
    assert "fit" not in stopwatch.seconds and {"evaluation", "export"} <= set(stopwatch.seconds)
    assert stage.fits == []


def test_workers_compiled_with_xla_start_without_op_determinism(
    run_folder, stage, tmp_path, pool_here
):
    """Catches `deterministic` not following the XLA option (XLA has no deterministic ops)."""
    plan = pool_here.plan = make_plan(jit_compile="on", mc_dropout=0)
    ensembles.train_ensemble(plan, run_folder(tmp_path), workers=2)
    ((_, start, _, _),) = pool_here.pools
    assert start.keywords == {"threads": 1, "deterministic": False}


@pytest.mark.parametrize("workers, pooled", [(1, None), (2, 2), (None, 3)])
def test_the_pool_runs_as_many_workers_as_asked_and_members(
    run_folder, stage, tmp_path, pool_here, monkeypatch, workers, pooled
):
    """With 4 CPUs and 3 members: 1 worker trains here (the limit), 2 run a pool of 2, None
    a pool of one a member (3, not 4); on a pool every member trains there, the first too.
    Catches the members' count not capping the workers, a pool of one, or the first member
    left to train here."""
    monkeypatch.setattr(ensembles.pool, "cpus", lambda: 4)
    monkeypatch.setattr(ensembles.pool, "memory_available", lambda: None)
    plan = pool_here.plan = make_plan(mc_dropout=0)
    _, table = ensembles.train_ensemble(plan, run_folder(tmp_path), workers=workers)
    assert [p[0] for p in pool_here.pools] == ([] if pooled is None else [pooled])
    on_pool = [] if pooled is None else ["member-1", "member-2", "member-3"]
    assert stage.fault_points == on_pool  # a pool item's only
    assert table["members"] == [figures(s) for s in (0.07, 0.08, 0.09)]


def test_a_pool_member_trains_its_index_and_records_its_figures(
    run_folder, stage, tmp_path, pool_here
):
    """Catches the fault point of another name, another member trained, its figures not
    recorded (or another's), or another count of epochs returned."""
    plan = pool_here.plan = make_plan()
    folder = run_folder(tmp_path)
    result = ensembles.pool_member(
        options=plan.options.as_dict(), index=2, path=str(folder.path), resume=str(folder.resume)
    )
    assert result == {"epochs": 3}  # seed 8
    assert stage.fault_points == ["member-2"]
    ((_, member_folder, kwargs),) = stage.fits
    assert member_folder == folder.member(2) and kwargs["seed"] == 8
    assert folder.member_figures(2) == figures(0.08) and folder.member_figures(1) is None
    assert folder.lifecycle()["members"] == [2]


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("member", figures(0.5)),
        ("ensemble", figures(0.375)),
        ("mc_dropout", {"samples": 2, "of": 0.375}),
    ],
)
def test_a_figures_item_measures_its_member_or_the_ensemble_of_the_first(
    run_folder, stage, tmp_path, pool_here, kind, expected
):
    """members=2: member 2 alone, the ensemble of members 1 and 2, or its Monte-Carlo
    dropout. Catches another member, the ensemble of 1..3 or of 1, or the kinds mixed up."""
    plan = pool_here.plan = make_plan()
    folder = run_folder(tmp_path)
    for i in (1, 2, 3):
        record_member(folder, i, i / 4)
    found = ensembles.pool_figures(
        options=plan.options.as_dict(),
        path=str(folder.path),
        resume=str(folder.resume),
        members=2,
        kind=kind,
    )
    assert found == expected
    if kind != "member":
        assert stage.built == ["member_1", "member_2"]
    else:
        assert stage.built == ["member_2"]
    if kind == "mc_dropout":
        (model,) = stage.mc
        assert [m.score for m in model.members] == [0.25, 0.5] and model.output == "soft"


def test_a_worker_prepares_a_plan_once_for_the_items_of_one_run(tmp_path, monkeypatch):
    """The run's options configured for every item; its plan prepared once (options in any
    order are one run's), in this process's strategy; other options replace it. Catches a
    plan prepared for every item, options of another order taken for another run, two
    runs' plans kept, or the folder's paths swapped."""
    configured, prepared = [], []
    monkeypatch.setattr(stages, "_configure", configured.append)
    monkeypatch.setattr(
        stages, "_prepare", lambda o, s: prepared.append((o, s)) or types.SimpleNamespace(o=o)
    )
    monkeypatch.setattr(ensembles, "_plan", {})
    options = Options(model="mlp", ensemble=2, seed=5).as_dict()
    paths = str(tmp_path / "run"), str(tmp_path / "resume")
    first, folder = ensembles._worker_run(options, *paths)
    assert folder == runs.RunFolder(tmp_path / "run", tmp_path / "resume")
    assert first.o == Options(**options) and configured == [Options(**options)]
    assert prepared[0][1] is ensembles.tf.distribute.get_strategy()
    again, _ = ensembles._worker_run(dict(reversed(options.items())), *paths)
    assert again is first and len(prepared) == 1 and len(configured) == 2
    other, _ = ensembles._worker_run({**options, "seed": 6}, *paths)
    assert other.o.seed == 6 and len(prepared) == 2
    assert ensembles._worker_run(options, *paths)[0] is not first  # replaced, prepared again
    assert len(prepared) == 3
