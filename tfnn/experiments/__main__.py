"""python -m tfnn.experiments [NAME ...] [--quick] [--out DIR] [--workers N]

Runs the named experiments (all by default) and regenerates DIR/README.md. An unknown name,
a DIR that cannot be created or written, or one whose experiment folder or README.md is not
tfnn's (DIR/NAME holding other files than its result.json, a README.md of the user's), is
one line on stderr and exit status 2, before TensorFlow is imported. With workers, a
measurement that failed is one line naming it and exit status 1, the other experiments
written; the same command again measures only what is missing.
"""

import contextlib
import os
import time

from tfnn import experiments, validation
from tfnn.cli import ending
from tfnn.cli.flags import OneLineParser, positive_int, print_log_lines
from tfnn.recipe import pool
from tfnn.recipe import run as runs


def parser():
    p = OneLineParser(
        prog="python -m tfnn.experiments",
        description="Measure the lecture's claims: each experiment writes its figures, their "
        "values and a section of DIR/README.md.",
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"experiments to run, of {', '.join(experiments.NAMES)} (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="the small size the tests run (the whole set in about two minutes)",
    )
    p.add_argument("--out", default="experiments", help="folder of the figures and the report")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="processes measuring at once, each (experiment, configuration, seed) one "
        "measurement (default: one a CPU this process may use; 1: all in this process)",
    )
    return p


def main(argv=None):
    p = parser()
    arguments = p.parse_args(argv)
    try:
        for name in arguments.names:
            validation.one_of("name", name, experiments.NAMES)
        names = tuple(dict.fromkeys(arguments.names)) or experiments.NAMES
        experiments.check_out(names, arguments.out)  # no file of the user's replaced
        runs.check_writable("out", arguments.out)  # as train.py checks its folders
    except ValueError as error:
        p.error(str(error))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The pool's workers start (and import TensorFlow) at once; this process goes on with its
    # own start-up, and imports TensorFlow only where it measures itself (one worker).
    workers = pool.worker_count(arguments.workers, items=None)[0]
    with pool.prestarted(workers):
        _run(p, arguments, names, workers)


def _run(p, arguments, names, workers):
    """The experiments `names`, with a pool worker's process-wide settings made first where
    this process measures (`workers` 1; with more it imports no TensorFlow: it replays the
    experiments and draws them while the workers measure); failed measurements are one line
    each and exit status 1."""
    from tfnn.recipe import errors

    with ending.stopped(p.prog), print_log_lines(p.prog):
        if workers == 1:  # the process-wide settings, where the process starts: a worker's
            from tfnn.recipe import process

            with contextlib.suppress(RuntimeError):  # main() where TensorFlow already runs
                process.configure(threads=1, deterministic=True)
        start = time.perf_counter()
        try:
            experiments.run_experiments(
                names, quick=arguments.quick, out=arguments.out, workers=arguments.workers
            )
        except errors.ItemsFailed as error:
            p.exit(1, "".join(f"{p.prog}: {line}\n" for line in str(error).splitlines()))
    minutes = (time.perf_counter() - start) / 60
    print(f"{p.prog}: {len(names)} experiments in {minutes:.1f} min; see {arguments.out}/README.md")


if __name__ == "__main__":
    main()
