"""python -m tfnn.experiments --quick, run once in-process: the directions the lecture predicts
that are deterministic at the quick size, and the report that links everything.

Each test names in its docstring the wrong line it is there to catch.
"""

import json
import pathlib
import re
import sys
import types

import numpy as np
import pytest

from tfnn import experiments
from tfnn.experiments import init, report

# The quick experiments (the module's fixture, ~1.5 min) run once, on one test worker.
pytestmark = pytest.mark.xdist_group("experiments-quick")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """(results, out folder) of every experiment at the quick size."""
    out = tmp_path_factory.mktemp("experiments")
    results = experiments.run_experiments(
        experiments.NAMES, quick=True, out=str(out), log=lambda *a, **k: None, workers=1
    )
    return results, out


def test_this_module_runs_on_one_test_worker(request):
    """Catches --dist loadgroup ignoring the module's xdist_group (pytest 9.2.0 with
    pytest-xdist 3.8 does, silently): the quick experiments would then run once on each test
    worker, ~2 minutes of the suite twice. xdist marks a grouped test's id with its group."""
    if not getattr(request.config.option, "loadgroup", False):  # set on a test worker
        pytest.skip("not run on pytest-xdist's test workers with --dist loadgroup")
    assert request.node.nodeid.endswith("@experiments-quick"), request.node.nodeid


def column(result, name, key):
    """The row of `result` whose first cell is `name`, its `key`."""
    first = result["columns"][0]
    return next(row for row in result["rows"] if row[first] == name)[key]


def test_e2_glorot_keeps_its_scale_where_zeros_collapse_and_n01_saturates(quick):
    """Catches an initializer with the wrong bound (e.g. Glorot's √(6/(m+n)) as √(3/(m+n)),
    whose activations shrink ~√2 a layer) or the statistics taken of the wrong tensors."""
    _, out = quick
    values = json.loads((out / "init" / "at_initialization.json").read_text())
    for seed in range(3):
        glorot = values["Glorot"]
        assert init.within_band(glorot["activation_std"][seed])
        assert init.within_band(glorot["gradient_std"][seed])
        assert max(values["zeros"]["activation_std"][seed]) == 0.0
        assert max(values["zeros"]["gradient_std"][seed]) == 0.0
        assert np.mean(values["N(0, 1)"]["saturated"][seed][1:]) > 0.5
        assert max(glorot["saturated"][seed]) < 0.05
        shrinking = values["U[±1/√n]"]["activation_std"][seed]
        assert shrinking[-1] / shrinking[0] < 0.1


def test_within_band_is_relative_to_the_geometric_mean():
    assert init.within_band([0.5, 1.0, 2.0]) and init.within_band([3.0, 3.0])
    assert not init.within_band([0.2, 1.0, 5.0]) and not init.within_band([0.0, 1.0])


def test_e1_sigmoid_gradients_vanish_through_depth_and_relus_do_not(quick):
    """Catches an activation name mapped to another function in the MLP builder, or the
    per-layer norms taken in the wrong order."""
    results, _ = quick
    result = results["saturation"]
    ratio = "‖∂L/∂W₁‖ / ‖∂L/∂W₉‖ at init"
    assert max(column(result, "sigmoid", ratio)) < 1e-3
    assert min(column(result, "relu", ratio)) > 0.1
    assert min(column(result, "tanh", ratio)) > 0.1


def test_e3_clipping_keeps_the_exploding_setup_bounded(quick):
    """Catches clip_mode not reaching the optimizer (every mode explodes) or a clip that
    rescales by the wrong norm; the unclipped run must explode in every seed."""
    results, _ = quick
    result = results["clipping"]
    assert column(result, "none", "exploded (share of seeds)") == 1.0
    for mode in ("norm (c = 0.25)", "global_norm (c = 0.25)"):
        assert column(result, mode, "exploded (share of seeds)") == 0.0
        assert all(loss < 10 for loss in column(result, mode, "final training loss"))
        assert all(0 < rate <= 1 for rate in column(result, mode, "clip rate"))
    # global-norm clipping clipped every step of this setup: its norms stay above c = 0.25
    assert column(result, "global_norm (c = 0.25)", "clip rate") == pytest.approx([1.0] * 3)


def test_d4_l1_gives_exact_zeros_and_l2_none(quick):
    """Catches --l1 applied as a loss term (a subgradient never lands on 0) or not at all."""
    results, _ = quick
    rows = results["penalties"]["rows"]
    l1 = [row for row in rows if row["penalty"] == "l1"]
    assert min(l1[-1]["exact zeros"]) > 0.5
    assert all(max(row["exact zeros"]) == 0.0 for row in rows if row["penalty"] != "l1")


def test_temperature_scaling_lowers_the_validation_nll(quick):
    """T minimizes the validation NLL, and T = 1 is a candidate: after ≤ before in every seed.
    Catches T fitted on another split or applied as z·T."""
    results, _ = quick
    for row in results["calibration"]["rows"]:
        for before, after in zip(row["val NLL before"], row["val NLL after"], strict=True):
            assert after <= before + 1e-9
        assert row["test accuracy before"] == row["test accuracy after"]


def test_the_report_links_every_figure_and_states_each_verdict(quick):
    """Catches a figure saved under another name than the one linked, a figure without its
    JSON, or an experiment left out of the report."""
    results, out = quick
    text = (out / "README.md").read_text()
    linked = set(re.findall(r"\]\(([^)#]+\.png)\)", text))
    drawn = {str(p.relative_to(out)) for p in out.glob("*/*.png")}
    assert drawn and linked == drawn
    for png in drawn:
        assert (out / png).with_suffix(".json").is_file()
    for name, result in results.items():
        assert result["verdict"] in ("supported", "not supported")
        assert f'<a id="{name}"></a>' in text
        assert f"## {result['item']} {result['title']} — {result['verdict']}" in text
        assert json.loads((out / name / "result.json").read_text())["verdict"] == result["verdict"]
        assert f"`python -m tfnn.experiments {name} --quick`" in text


def test_a_rerun_of_one_experiment_keeps_the_others_sections(quick, tmp_path):
    """The report is rebuilt from every result.json, not only from this run's."""
    _, out = quick
    before = (out / "README.md").read_text()
    report.write(out)
    assert (out / "README.md").read_text() == before
    copy = pathlib.Path(tmp_path)
    for name in ("init", "convolution"):
        (copy / name).mkdir()
        (copy / name / "result.json").write_text((out / name / "result.json").read_text())
    report.write(copy)
    text = (copy / "README.md").read_text()
    assert '<a id="init"></a>' in text and '<a id="convolution"></a>' in text
    assert '<a id="dropout"></a>' not in text


def test_two_workers_measure_what_one_process_measures(tmp_path, monkeypatch):
    """Catches figures paired with the wrong configuration or seed, a measurement that
    depends on the process it runs in, or an experiment whose second configuration depends
    on its first (convolution's MLP width) run before it: the result.json values and the
    figures' values equal one process's (all but the seconds), and the finished
    measurements are not kept after a complete run."""
    from tfnn.recipe import pool

    monkeypatch.setattr(pool, "cpus", lambda: 2)
    quiet = {"quick": True, "log": lambda *a, **k: None}
    one = experiments.run_experiments(
        ["convolution"], out=str(tmp_path / "one"), workers=1, **quiet
    )
    two = experiments.run_experiments(
        ["convolution"], out=str(tmp_path / "two"), workers=2, **quiet
    )
    for result in (one, two):
        assert result["convolution"].pop("seconds") > 0
    assert one == two
    for name in ("shifts.json", "result.json"):
        one, two = (
            json.loads((tmp_path / run / "convolution" / name).read_text())
            for run in ("one", "two")
        )
        one.pop("seconds", None), two.pop("seconds", None)
        assert one == two, name
    assert not (tmp_path / "two" / ".measured").exists()


HERE = pathlib.Path(__file__).parent


def _chained_experiment(name, values):
    """A stand-in experiment module: one measurement per value, each asked for after the
    last one's figures were read (as dropout's rates are)."""
    import fake_work

    from tfnn.experiments import common

    module = types.ModuleType(f"tfnn.experiments.{name}")
    module.ITEM, module.TITLE, module.CLAIM = "X0", name, "squares are squares"

    def run(size, folder):
        rows = []
        for x in values:
            runs = common.over_seeds(size, fake_work.square, x)
            rows.append({"x": x, "value": [r["value"] for r in runs]})
        return common.Result(True, "", ["x", "value"], rows, [])

    module.run = run
    return module


def test_measurements_stream_on_one_pool_and_a_failure_fails_only_its_experiment(
    tmp_path, monkeypatch
):
    """Catches a new pool (a TensorFlow import a worker) for each round of measurements, a
    failed measurement that stops the others or loses what they measured, and a rerun that
    measures again what was kept: four measurements, three of them one after another, run on
    the two workers started once; the failed one's experiment is missing, the other written;
    the rerun measures only it."""
    from tfnn.recipe import errors, pool

    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    monkeypatch.setattr(pool, "memory_available", lambda: 64 * pool.WORKER_BYTES)
    for name, values in (("chain", (1, 2, 3)), ("single", (5,))):
        monkeypatch.setitem(
            sys.modules, f"tfnn.experiments.{name}", _chained_experiment(name, values)
        )
    started = []
    start = pool._start
    monkeypatch.setattr(pool, "_start", lambda *args: started.append(1) or start(*args))
    calls = tmp_path / "calls"
    calls.mkdir()
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("FAKE_FAIL", "5")
    out = tmp_path / "out"
    quiet = {"quick": True, "out": str(out), "workers": 2, "log": lambda *a, **k: None}

    with pytest.raises(errors.ItemsFailed) as caught:
        experiments.run_experiments(["chain", "single"], **quiet)
    assert caught.value.failures == {"fake_work square(5)": "ValueError: no square of 5"}
    assert len(started) == 2
    chain = json.loads((out / "chain" / "result.json").read_text())
    assert [row["value"] for row in chain["rows"]] == [
        [x * x + s for s in (1, 2, 3)] for x in (1, 2, 3)
    ]
    assert not (out / "single").exists() or not (out / "single" / "result.json").exists()
    assert len(list((out / ".measured").glob("*.pickle"))) == 3
    assert sorted(p.name.split("-")[0] for p in calls.iterdir()) == ["1"] * 3 + ["2"] * 3 + [
        "3"
    ] * 3 + ["5"]

    monkeypatch.delenv("FAKE_FAIL")
    # a measurement whose write a kill cut short: a temporary, never read as a measurement
    (out / ".measured" / ".tmp-cut-0123.pickle").write_bytes(b"\x80 not a whole pickle")
    again = experiments.run_experiments(["chain", "single"], **quiet)
    assert [row["value"] for row in again["single"]["rows"]] == [[26, 27, 28]]
    assert sorted(p.name.split("-")[0] for p in calls.iterdir()).count("1") == 3  # kept, not redone
    assert sorted(p.name.split("-")[0] for p in calls.iterdir()).count("5") == 4
    assert not (out / ".measured").exists()


@pytest.mark.parametrize(
    "longest_first, order",
    [(("chain", "single"), [1, 2, 3, 5]), (("single", "chain"), [5, 1, 2, 3]), ((), [1, 2, 3, 5])],
)
def test_the_pool_finishes_the_longest_experiment_first_one_measurement_after_another(
    tmp_path, monkeypatch, longest_first, order
):
    """The experiments start in LONGEST_FIRST's order (those not in it after, in the order
    given), and each one's next measurement goes ahead of those waiting. Catches a next
    measurement queued behind every other experiment's (all of them then finish together,
    at the end, where the longest keeps one worker busy while the other idles) or the
    order given used instead of LONGEST_FIRST."""
    from tfnn.recipe import pool

    ran = []

    class Here(pool.Pool):  # one pool that runs its items here, in its queue's order
        def __init__(self, workers, **kwargs):
            super().__init__(1, **kwargs)

        def next_outcome(self):
            ran.extend(item.kwargs["call"].args[0] for item in list(self._pending)[:1])
            return super().next_outcome()

    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setattr(pool, "cpus", lambda: 2)
    monkeypatch.setattr(pool, "Pool", Here)
    monkeypatch.setattr(experiments, "LONGEST_FIRST", longest_first)
    for name, values in (("chain", (1, 2, 3)), ("single", (5,))):
        monkeypatch.setitem(
            sys.modules, f"tfnn.experiments.{name}", _chained_experiment(name, values)
        )
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path))
    quiet = {"quick": True, "out": str(tmp_path / "out"), "log": lambda *a, **k: None}
    results = experiments.run_experiments(["chain", "single"], workers=2, **quiet)
    assert ran == order
    assert [row["x"] for row in results["chain"]["rows"]] == [1, 2, 3]
