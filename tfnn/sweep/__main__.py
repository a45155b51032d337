"""python -m tfnn.sweep --search TERM [TERM ...] [--trials N] [--workers N] [--storage URL]
    [--study NAME] [--pruner {median,hyperband,none}] [--out DIR] [train.py flags]

The train.py flags fix the options not searched. A bad term or flag is one line on stderr
and exit status 2, before anything runs or is written (so is another process running the
same sweep on its default storage); a worker process that died is one line and exit 1 (the
same command continues the study). At the end, a table of the trials, and DIR/sweep.json.
"""

import argparse
import os

from tfnn.cli import ending
from tfnn.cli import train as train_cli
from tfnn.cli.flags import positive_int, print_log_lines
from tfnn.recipe import pool

SWEEP_FLAGS = ("search", "trials", "workers", "storage", "study", "pruner", "out")


def parser():
    """train.py's flags (the fixed options; only those given are passed) and the sweep's."""
    p = train_cli.parser()
    p.prog = "python -m tfnn.sweep"
    p.description = (
        "Search the recipe's options on the validation split (Optuna); the best trial is "
        "evaluated on the test split once and exported. train.py's flags fix the options not "
        "searched (train.py --help shows their defaults)."
    )
    for action in p._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS  # only the flags given are fixed
    p.conflict_handler = "resolve"  # --workers is the sweep's: a trial is not an ensemble
    group = p.add_argument_group("sweep")
    group.add_argument(
        "--search",
        nargs="+",
        required=True,
        metavar="TERM",
        help="NAME=LOW:HIGH (uniform), NAME=LOW:HIGH:log (log-uniform) or NAME=A,B,C "
        "(choices); NAME is a train.py option",
    )
    group.add_argument("--trials", type=positive_int, default=24, help="the study's total")
    group.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="processes running trials (default: one a CPU this process may use)",
    )
    group.add_argument(
        "--storage",
        default=None,
        help="an Optuna storage URL shared by every process of the study, e.g. "
        "postgresql://user:pass@host/db (default: DIR/study.db, one process at a time)",
    )
    group.add_argument(
        "--study",
        default=None,
        help="the study's name, a plain name (default: the data set's model name and a hash)",
    )
    group.add_argument(
        "--pruner",
        default="median",
        choices=("median", "hyperband", "none"),
        help="stops trials by their validation figure after each epoch",
    )
    group.add_argument("--out", default=None, help="the sweep's folder (default: sweeps/STUDY)")
    return p


def main(argv=None):
    p = parser()
    flags = vars(p.parse_args(argv))
    arguments = {name: flags.pop(name) for name in SWEEP_FLAGS}
    from tfnn import sweep

    try:
        sweep.check(
            search=arguments["search"],
            trials=arguments["trials"],
            workers=arguments["workers"],
            pruner=arguments["pruner"],
            options=flags,
            study=arguments["study"],
            out=arguments["out"],
        )
    except ValueError as error:
        p.error(str(error))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The pool's workers start before this process imports TensorFlow: their imports and
    # this process's run at once.
    workers = pool.worker_count(arguments["workers"], items=arguments["trials"])[0]
    with pool.prestarted(workers, imports=("tfnn.recipe.train", "tfnn.sweep.study")):
        # With its trials on workers, this process runs no TensorFlow: the workers check the
        # search's bounds, run the trials, and evaluate and export the best one.
        result = _sweep(p, arguments, flags, threads=1 if workers == 1 else None)
    from tfnn.sweep import report

    print("\n".join(report.table(result)))
    if result["best"] is None:  # every trial failed or was pruned: nothing read or exported
        states = [trial["state"] for trial in result["trials"]]
        counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        p.exit(1, f"{p.prog}: no trial completed ({counts}): no test figure, nothing exported\n")


def _sweep(p, arguments, flags, *, threads):
    """`tfnn.sweep(**arguments, **flags)` with the process-wide settings made first where
    the trials run here (`threads`: its TensorFlow threads; None: none, it runs no
    TensorFlow); a refusal is one line and exit status 2, a dead worker one line and 1."""
    from tfnn import sweep
    from tfnn.recipe import errors

    with ending.stopped(p.prog), print_log_lines(p.prog):
        if threads is not None:
            _configure(threads, flags)
        try:
            result = sweep.sweep(**arguments, **flags)
        except (ValueError, errors.RunError) as error:  # OptionError, a study of another search
            p.error(str(error))
        except errors.ItemsFailed as error:
            p.exit(1, "".join(f"{p.prog}: {line}\n" for line in str(error).splitlines()))
    return result


def _configure(threads, flags):
    """The process-wide settings, where the process starts, as a pool worker's."""
    from tfnn.recipe import fit, process
    from tfnn.recipe.options import Options

    try:
        process.configure(threads=threads, deterministic=not fit.uses_xla(Options(**flags)))
    except RuntimeError:  # main() called in a process where TensorFlow already runs
        pass


if __name__ == "__main__":
    main()
