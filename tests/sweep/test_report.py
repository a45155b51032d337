"""tfnn.sweep.report, in process on an in-memory Optuna study (no training): sweep.json's
trials, the pruned trials' plotted figure, what sweep.json and sweep.png receive, and the
table printed at a sweep's end."""

import json

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tfnn import plots
from tfnn.sweep import report
from tfnn.sweep.space import Choices, Range

DROPOUT = {"dropout": FloatDistribution(0.0, 0.5)}


def _study(direction="maximize"):
    """A study of four trials: 0 complete (0.8), 1 pruned after steps 0, 3 and 1 (its last
    step's figure 0.7, not its highest, 0.9), 2 failed, 3 pruned before any report."""
    made = optuna.create_study(direction=direction)
    made.add_trial(
        create_trial(
            params={"dropout": 0.25},
            distributions=DROPOUT,
            value=0.8,
            intermediate_values={0: 0.5, 1: 0.6},
            user_attrs={"run": "runs/0"},
        )
    )
    made.enqueue_trial({"dropout": 0.1})
    pruned = made.ask(DROPOUT)  # pruned as a sweep prunes: Optuna keeps its last report as value
    for step, figure in ((0, 0.5), (3, 0.7), (1, 0.9)):
        pruned.report(figure, step)
    pruned.set_user_attr("run", "runs/1")
    made.tell(pruned, state=TrialState.PRUNED)
    made.add_trial(
        create_trial(params={"dropout": 0.4}, distributions=DROPOUT, state=TrialState.FAIL)
    )
    made.add_trial(
        create_trial(params={"dropout": 0.3}, distributions=DROPOUT, state=TrialState.PRUNED)
    )
    return made


def test_each_trial_is_one_row_its_value_only_when_complete():
    """Catches `t.value if t.state == TrialState.COMPLETE else None` inverted or dropped (a
    pruned trial has its last report as Optuna's value), and a row's number, params, state or
    run read wrong."""
    made = _study()
    assert made.trials[1].value == 0.7
    assert report.trial_rows(made) == [
        {
            "number": 0,
            "params": {"dropout": 0.25},
            "value": 0.8,
            "state": "COMPLETE",
            "run": "runs/0",
        },
        {
            "number": 1,
            "params": {"dropout": 0.1},
            "value": None,
            "state": "PRUNED",
            "run": "runs/1",
        },
        {"number": 2, "params": {"dropout": 0.4}, "value": None, "state": "FAIL", "run": None},
        {"number": 3, "params": {"dropout": 0.3}, "value": None, "state": "PRUNED", "run": None},
    ]


def test_a_pruned_trial_is_plotted_at_its_last_reported_figure():
    """Catches `t.intermediate_values[max(t.intermediate_values)]` read as another step's
    figure (the highest figure, the first step), a pruned trial without reports given a
    value (or failing), and a complete trial's value replaced by its last report."""
    made = _study()
    plotted = report._plotted(made, report.trial_rows(made))
    assert [row["value"] for row in plotted] == [0.8, 0.7, None, None]
    assert [row["state"] for row in plotted] == ["COMPLETE", "PRUNED", "FAIL", "PRUNED"]


@pytest.mark.parametrize("direction, maximize", [("maximize", True), ("minimize", False)])
def test_write_records_the_sweep_and_plots_it(tmp_path, monkeypatch, direction, maximize):
    """Catches sweep.json missing a key or holding another value, written without its last
    newline, and the plot given the rows without the pruned trials' figures, the search's
    dicts as something else, or the study's direction the wrong way round."""
    drawn = []
    monkeypatch.setattr(plots, "sweep_history", lambda *args: drawn.append(args))
    made = _study(direction)
    search = {"dropout": Range(0.0, 0.5), "optimizer": Choices(("adam", "sgd"))}
    best = {"number": 0, "val": {"accuracy": 0.8}, "test": {"accuracy": 0.75}}
    result = report.write(
        made, storage="sqlite:///s.db", search=search, metric="accuracy", best=best, out=tmp_path
    )
    expected = {
        "study": made.study_name,
        "storage": "sqlite:///s.db",
        "metric": "accuracy",
        "search": {
            "dropout": {"low": 0.0, "high": 0.5, "log": False},
            "optimizer": {"choices": ["adam", "sgd"]},
        },
        "trials": report.trial_rows(made),
        "best": best,
    }
    assert result == expected
    text = (tmp_path / "sweep.json").read_text()
    assert text == json.dumps(expected, indent=2) + "\n"
    assert drawn == [
        (
            report._plotted(made, expected["trials"]),
            expected["search"],
            "accuracy",
            maximize,
            tmp_path / "sweep.png",
        )
    ]


def test_write_draws_sweep_png(tmp_path):
    """Catches sweep.png not written (the plot's path wrong) beside sweep.json."""
    report.write(
        _study(),
        storage="s",
        search={"dropout": Range(0.0, 0.5)},
        metric="accuracy",
        best=None,
        out=tmp_path,
    )
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "sweep.json").read_text())["best"] is None


RESULT = {
    "search": {"dropout": {}, "optimizer": {}},
    "metric": "accuracy",
    "trials": [
        {
            "number": 0,
            "params": {"dropout": 0.123456, "optimizer": "adam"},
            "value": 0.8,
            "state": "COMPLETE",
        },
        {"number": 1, "params": {"dropout": 0.5}, "value": None, "state": "PRUNED"},
        {
            "number": 12,
            "params": {"dropout": 1, "optimizer": "sgd"},
            "value": 0.91234,
            "state": "COMPLETE",
        },
    ],
    "best": {
        "number": 12,
        "val": {"accuracy": 0.91234},
        "test": {"accuracy": 0.875},
        "export_path": "saved_models/x/3",
    },
}


def test_the_table_lines_each_trial_marks_the_best_and_ends_with_its_figures():
    """Catches a column's width or alignment, a value shown without 4 decimals (or a None
    value shown), a float not in 3 significant digits, a missing param not blank, the mark on
    another trial, and the closing line's figures or export read from the wrong place."""
    assert report.table(RESULT) == [
        "trial  state     val accuracy  dropout  optimizer",
        "    0  COMPLETE        0.8000  0.123    adam     ",
        "    1  PRUNED                  0.5               ",
        "   12  COMPLETE        0.9123  1        sgd       *",
        "best: trial 12, val accuracy 0.9123, test accuracy 0.8750, exported to saved_models/x/3",
    ]


def test_the_table_without_a_best_or_its_test_figure_has_no_closing_line():
    """Catches the closing line written when the best has no test figure (its run not on this
    machine: test None) or when no trial completed (best None), and a trial marked as the
    best when there is none."""
    no_test = {**RESULT, "best": {**RESULT["best"], "test": None}}
    assert len(report.table(no_test)) == 4 and report.table(no_test)[3].endswith(" *")
    none = {**RESULT, "best": None}
    lines = report.table(none)
    assert len(lines) == 4 and not any(line.endswith("*") for line in lines)
