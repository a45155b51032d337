"""What a sweep leaves: DIR/sweep.json (the study, its storage, the search, every trial and
the best with its test figure and export), DIR/sweep.png (tfnn.plots.sweep_history) and the
table printed at its end."""

import json

from optuna.trial import TrialState

from tfnn import files, plots


def trial_rows(study):
    """sweep.json's trials: [{"number", "params", "value", "state", "run"}], value None
    unless complete."""
    return [
        {
            "number": t.number,
            "params": t.params,
            "value": t.value if t.state == TrialState.COMPLETE else None,
            "state": t.state.name,
            "run": t.user_attrs.get("run"),
        }
        for t in study.get_trials(deepcopy=False)
    ]


def _plotted(study, rows):
    """The rows with a pruned trial's last reported figure as its value."""
    last = {
        t.number: t.intermediate_values[max(t.intermediate_values)]
        for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        if t.intermediate_values
    }
    return [{**row, "value": last.get(row["number"], row["value"])} for row in rows]


def write(study, *, storage, search, metric, best, out):
    """Writes DIR/sweep.json and DIR/sweep.png; returns what sweep.json holds."""
    rows = trial_rows(study)
    result = {
        "study": study.study_name,
        "storage": storage,
        "metric": metric,
        "search": {name: space.as_dict() for name, space in search.items()},
        "trials": rows,
        "best": best,
    }
    files.write_atomically(out / "sweep.json", json.dumps(result, indent=2) + "\n")
    maximize = study.direction.name == "MAXIMIZE"
    plots.sweep_history(
        _plotted(study, rows), result["search"], metric, maximize, out / "sweep.png"
    )
    return result


def table(result):
    """The lines printed at a sweep's end: one per trial (the best marked), then the best's
    validation and test figures and its export."""
    names = list(result["search"])
    metric = result["metric"]
    lines = [f"{'trial':>5}  {'state':<8}  {'val ' + metric:>12}  " + "  ".join(names)]
    best = result["best"] or {}
    for row in result["trials"]:
        value = "" if row["value"] is None else f"{row['value']:.4f}"
        params = "  ".join(f"{_short(row['params'].get(n, '')):<{len(n)}}" for n in names)
        mark = " *" if row["number"] == best.get("number") else ""
        lines.append(f"{row['number']:>5}  {row['state']:<8}  {value:>12}  {params}{mark}")
    if best.get("test"):
        lines.append(
            f"best: trial {best['number']}, val {metric} {best['val'][metric]:.4f}, "
            f"test {metric} {best['test'][metric]:.4f}, exported to {best['export_path']}"
        )
    return lines


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else str(value)
