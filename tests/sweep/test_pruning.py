"""tfnn.sweep.pruning.ReportToTrial, in process on an in-memory Optuna study (no training):
what it reports after an epoch, what it skips, and the pruner's word."""

import math

import optuna
import pytest

from tfnn.sweep.pruning import ReportToTrial


class _Always(optuna.pruners.BasePruner):
    """A pruner that prunes any trial that reported (or, `never`, none)."""

    def __init__(self, never=False):
        self.never = never

    def prune(self, study, trial):
        return not self.never


def _trial(never=True):
    made = optuna.create_study(direction="maximize", pruner=_Always(never))
    return made, made.ask()


def _reported(made):
    return made.get_trials(deepcopy=False)[0].intermediate_values


def test_each_epoch_reports_its_validation_figure_at_its_epoch():
    """Catches the figure not reported, reported under another step than its epoch, another
    key's figure reported, or a report without a training loss in the logs skipped."""
    made, trial = _trial()
    callback = ReportToTrial(trial, "val_accuracy")
    callback.on_epoch_end(0, {"val_accuracy": 0.5, "loss": 0.7, "accuracy": 0.1})
    callback.on_epoch_end(1, {"val_accuracy": 0.625})  # no training loss: reported
    assert _reported(made) == {0: 0.5, 1: 0.625}
    assert all(type(v) is float for v in _reported(made).values())


@pytest.mark.parametrize(
    "logs",
    [
        None,
        {},
        {"loss": 0.5, "accuracy": 0.9},  # no validation figure this epoch
        {"val_accuracy": math.nan, "loss": 0.5},
        {"val_accuracy": math.inf, "loss": 0.5},
        {"val_accuracy": 0.5, "loss": math.nan},  # a diverging fit: not pruned on it
        {"val_accuracy": 0.5, "loss": -math.inf},
    ],
)
def test_an_epoch_without_a_finite_figure_or_loss_is_not_reported(logs):
    """Catches `logs or {}` reading None, a missing figure reported (or failing), and a
    non-finite figure or training loss reported: a diverging trial would be pruned, not
    failed as diverged."""
    made, trial = _trial(never=False)  # a report would be pruned: none must be made
    ReportToTrial(trial, "val_accuracy").on_epoch_end(3, logs)
    assert _reported(made) == {}


def test_a_figure_of_zero_is_reported():
    """Catches `value is None` tested as falsiness: a validation figure of 0 (every example
    wrong) skipped, never pruned."""
    made, trial = _trial()
    ReportToTrial(trial, "val_accuracy").on_epoch_end(0, {"val_accuracy": 0.0, "loss": 0.0})
    assert _reported(made) == {0: 0.0}


def test_the_pruners_word_raises_trial_pruned_naming_the_epoch_and_figure():
    """Catches `should_prune` not consulted (or its answer inverted), and the message's epoch
    counted from 0 or the figure not given to 4 decimals."""
    made, trial = _trial(never=True)
    ReportToTrial(trial, "val_accuracy").on_epoch_end(0, {"val_accuracy": 0.5, "loss": 0.7})
    made, trial = _trial(never=False)
    with pytest.raises(optuna.TrialPruned) as pruned:
        ReportToTrial(trial, "val_accuracy").on_epoch_end(2, {"val_accuracy": 0.12345})
    assert str(pruned.value) == "pruned after epoch 3: val_accuracy 0.1235"
    assert _reported(made) == {2: 0.12345}
