"""tfnn.plots: what each picture draws at its limits (the figure kept, not read from PNG)."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tfnn import plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plots would write, kept (and closed at the end) instead."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda figure, path: figures.append(figure))
    yield figures
    for figure in figures:
        plt.close(figure)


def shown(figure):
    """(rows, columns) of the figure's grid and how many of its panels are drawn."""
    axes = figure.get_axes()
    rows, columns = axes[0].get_subplotspec().get_gridspec().get_geometry()
    return rows, columns, sum(axis.axison for axis in axes)


@pytest.mark.parametrize("filters, grid", [(1, (1, 1)), (8, (1, 8)), (9, (2, 8)), (17, (3, 8))])
def test_filters_are_drawn_eight_a_row_the_rest_of_the_last_row_blank(drawn, filters, grid):
    """At the limit of a row (8) and past it (9: a second row, 7 blank): catches `min(8, …)`
    moved, the rows' count rounded down, and `index > filters` (a panel past the last filter
    drawn: an IndexError)."""
    plots.first_layer_filters(np.ones((3, 3, 1, filters)), "unused")
    assert shown(drawn[0]) == (*grid, filters)


@pytest.mark.parametrize("channels, shape", [(1, (3, 3)), (2, (3, 3)), (3, (3, 3, 3))])
def test_a_filter_tile_is_colour_for_3_channels_else_channel_0_and_a_flat_one_is_finite(
    drawn, channels, shape
):
    """A constant filter (high == low) is drawn as zeros, not NaN (catches the `+ 1e-12`
    dropped); 3 channels are colour, any other count its channel 0."""
    kernel = np.zeros((3, 3, channels, 2))
    kernel[..., 0, 1] = np.arange(9).reshape(3, 3)  # filter 1: 0..8 on channel 0
    plots.first_layer_filters(kernel, "unused")
    flat, ramp = (axis.images[0].get_array() for axis in drawn[0].get_axes())
    assert flat.shape == ramp.shape == shape
    assert np.all(np.asarray(flat) == 0)
    assert np.asarray(ramp).max() == pytest.approx(1.0)


def test_a_conv1d_filter_is_a_curve_per_input_channel(drawn):
    """Catches a Conv1D kernel (3 dimensions) drawn as an image."""
    plots.first_layer_filters(np.ones((5, 2, 3)), "unused")
    assert [len(axis.get_lines()) for axis in drawn[0].get_axes()] == [3, 3, 3]  # 2 + zero line


@pytest.mark.parametrize("count, grid", [(1, (1, 1)), (4, (1, 4)), (5, (2, 4))])
def test_signals_are_drawn_four_a_row(drawn, count, grid):
    """At the limit of a row (4) and past it (5): catches `min(4, …)` moved and
    `index > count`."""
    signals = np.ones((count, 6, 1))
    plots.augmented_samples(signals, signals, "unused")
    assert shown(drawn[0]) == (*grid, count)


@pytest.mark.parametrize("channels, shape", [(1, (4, 4)), (2, (4, 4)), (3, (4, 4, 3))])
def test_images_are_two_rows_of_tiles_clipped_to_0_1(drawn, channels, shape):
    """3 channels are colour, any other count its channel 0 (catches `>= 2`: a 2-channel
    tile given to imshow); values outside [0, 1] clipped."""
    images = np.full((3, 4, 4, channels), 2.0)
    plots.augmented_samples(images, -images, "unused")
    axes = drawn[0].get_axes()
    assert shown(drawn[0]) == (2, 3, 6)
    assert all(axis.images[0].get_array().shape == shape for axis in axes)
    assert np.asarray(axes[0].images[0].get_array()).max() == 1.0
    assert np.asarray(axes[3].images[0].get_array()).min() == 0.0


def test_the_zero_share_counts_exact_zeros_only(drawn):
    """-0.0 is 0; 1e-30 is not (catches a tolerance): 2 of 4."""
    share = plots.weight_histogram([np.array([0.0, -0.0]), np.array([[1e-30, 1.0]])], "L1", "x")
    assert share == 0.5
    assert drawn[0].get_axes()[0].get_title() == "L1: 50.0% of 4 weights are exactly 0"


def test_learning_curves_count_epochs_from_1_and_mark_the_kept_one(drawn):
    """Catches epochs counted from 0 (the kept epoch, 1-based, marked one epoch off)."""
    history = {"loss": [3, 2, 1], "val_loss": [3, 2, 2], "mae": [1, 1, 1], "val_mae": [2, 2, 2]}
    plots.learning_curves(history, "mae", 2, "unused")
    for axis in drawn[0].get_axes():
        train, validation, kept = axis.get_lines()
        assert list(train.get_xdata()) == [1, 2, 3]
        assert list(kept.get_xdata()) == [2, 2] and kept.get_label() == "kept: epoch 2"


def test_the_ensemble_table_has_a_tick_per_member_from_1(drawn):
    """Catches members counted from 0 (member n drawn at the ensemble of n - 1)."""
    row = {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.4}}
    table = {"members": [row] * 3, "ensembles": [{"members": k, **row} for k in (1, 2, 3)]}
    plots.ensemble_table(table, "accuracy", "unused")
    axis = drawn[0].get_axes()[0]
    assert list(axis.get_xticks()) == [1, 2, 3]
    assert list(axis.get_lines()[0].get_xdata()) == [1, 2, 3]


@pytest.mark.parametrize("states, best", [(["PRUNED"], False), (["COMPLETE", "PRUNED"], True)])
def test_a_sweep_is_drawn_with_a_best_line_only_when_a_trial_completed(drawn, states, best):
    """At the limit (no trial complete: nothing to draw a best figure of) and past it (one);
    a choice the search does not hold (an older study's) is left out, not an error; a
    figure of 0 is drawn."""
    trials = [
        {"number": i, "params": {"units": [4, 2], "lr": 0.1}, "value": 0.5, "state": state}
        for i, state in enumerate(states)
    ]
    trials.append({"number": 8, "params": {"units": 7, "lr": 0.1}, "value": 0.0, "state": "PRUNED"})
    trials.append({"number": 9, "params": {"units": 8, "lr": 0.1}, "value": None, "state": "FAIL"})
    search = {"units": {"choices": [[4, 2], 8]}, "lr": {"low": 0.01, "high": 1.0, "log": True}}
    plots.sweep_history(trials, search, "accuracy", True, "unused")
    history, units, lr = drawn[0].get_axes()
    assert ([line.get_label() for line in history.get_lines()] == ["best"]) is best
    assert [label.get_text() for label in units.get_xticklabels()] == ["4+2", "8"]
    assert lr.get_xscale() == "log" and units.get_xscale() == "linear"
    pruned = units.collections[-1].get_offsets()  # [4, 2] at 0; 7, not a choice: no point
    assert np.ma.getmaskarray(pruned)[-1, 0]  # NaN, masked
    # a figure of 0.0 drawn (catches `if t["value"]`), a failed trial's None not
    assert sum(len(c.get_offsets()) for c in history.collections) == len(states) + 1
