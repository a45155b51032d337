"""The train command: flags → `tfnn.train(**options)` → exit status.

    python train.py [flags]          (or the console script tfnn-train)

The flags are the fields of `tfnn.recipe.options.Options`, with their help
text and defaults. A bad flag, or one the data set cannot take, prints one
line and exits 2 with nothing written, as does an output folder that cannot be
written or a second process running the same command; a diverged training, or an
ensemble that collapsed against its members, exits 1 with one line and nothing exported.
`command` is the script's entry: `main`, then the process ends at once (`tfnn.cli.ending`).
"""

import json
import os

from tfnn.cli import ending
from tfnn.cli.flags import OneLineParser, print_log_lines
from tfnn.recipe import options as recipe_options
from tfnn.recipe import pool


def parser():
    """train.py's argparse parser, one flag per option, grouped as the options are."""
    p = OneLineParser(
        prog="train.py",
        description="Train a network with the lecture's recipe, evaluate, draw and export it.",
    )
    groups = {}
    for field in recipe_options.fields():
        meta = field.metadata
        if meta["group"] not in groups:
            groups[meta["group"]] = p.add_argument_group(meta["group"])
        flag = {"default": field.default, "help": meta["help"], "type": meta["kind"]}
        if meta["kind"] is bool:  # a switch: --calibrate
            flag = {"default": field.default, "help": meta["help"], "action": "store_true"}
        if meta["choices"]:
            flag["metavar"] = "{" + ",".join(map(str, meta["choices"])) + "}"
        if meta["many"]:
            flag["nargs"] = "*"
        groups[meta["group"]].add_argument(f"--{field.name}", **flag)
    return p


def argv(**options):
    """The flags that give `options` (the inverse of parsing): {"epochs": 5} → ["--epochs", "5"],
    {"calibrate": True} → ["--calibrate"]."""
    flags = []
    for name, value in options.items():
        if isinstance(value, bool):  # a switch: present when True
            flags += [f"--{name}"] if value else []
            continue
        if isinstance(value, dict):  # augment: the flag's "translate=0.1,flip" form
            value = ",".join(k if v is True else f"{k}={v}" for k, v in value.items())
        values = value if isinstance(value, (list, tuple)) else [value]
        flags += [f"--{name}", *map(str, values)]
    return flags


def main(argv=None):
    p = parser()
    flags = vars(p.parse_args(argv))
    try:
        options = recipe_options.Options(**flags)
    except ValueError as error:
        p.error(str(error))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # The pool's workers start before this process imports TensorFlow: their imports and
    # this process's run at once.
    workers = pool.worker_count(options.workers, items=options.pooled_members())[0]
    with pool.prestarted(workers):
        result = _train(p, options, flags, thread_counts=process_threads(options, workers))
    printed = {key: result[key] for key in ("run", "val", "test", "export_path")}
    printed.update({"chief": False} if result.get("chief") is False else {})
    print(json.dumps(printed))


def process_threads(options, workers, *, available_cpus=None):
    """TensorFlow's thread counts in this process, `process.configure`'s `threads` and
    `inter_op_threads`: the options' `threads` for both where given; else all cores
    (`pool.parent_threads`) where its members train on `workers` > 1 pool processes and it
    only evaluates and exports (the figures are the same either way: tests/cli/test_train.py);
    else, where it trains, one thread an op and two ops at once when `available_cpus` (this
    process's) are two or more. Under op determinism a second inter-op thread changes when
    independent ops run, not what they compute: the figures are those of one
    (tests/cli/test_train.py; its time in docs/benchmarks.md)."""
    if options.threads is not None:
        return {"threads": options.threads, "inter_op_threads": options.threads}
    threads = pool.parent_threads(workers)  # the pool's rule: 1 where it trains, else all
    if threads != 1:
        return {"threads": threads, "inter_op_threads": threads}
    cpus = pool.cpus() if available_cpus is None else available_cpus
    return {"threads": 1, "inter_op_threads": min(2, cpus)}


def _train(p, options, flags, *, thread_counts):
    """`tfnn.train(**flags)` with the process-wide settings made first (`thread_counts`:
    `process_threads`'s); a caller's error is one line and exit status 2, a failed run one
    line and 1."""
    # Imported here, after the flags are checked: TensorFlow's import takes ~4 s, the check
    # above ~0.05 s.
    from tfnn.recipe import errors, fit, phases, process, train

    with ending.stopped(p.prog), print_log_lines(p.prog):
        try:  # the process-wide settings, where the process starts
            process.configure(
                **thread_counts,
                deterministic=not fit.uses_xla(options),
                cpu_devices=options.cpu_devices,
            )
        except RuntimeError:  # main() called in a process where TensorFlow already runs
            pass
        try:
            result = train.train(stopwatch=phases.Stopwatch(from_process_start=True), **flags)
        except (errors.OptionError, errors.RunError) as error:
            p.error(str(error))
        except (errors.TrainingDiverged, errors.EnsembleCollapsed) as error:
            p.exit(1, f"{p.prog}: {error}\n")
        except errors.ItemsFailed as error:
            p.exit(1, "".join(f"{p.prog}: {line}\n" for line in str(error).splitlines()))
    return result


def command(argv=None):
    """train.py's and tfnn-train's entry: `main(argv)`, then the process ends with its status
    once its results are written and its atexit work is done, without the interpreter
    finalizing TensorFlow's objects (`tfnn.cli.ending.end`)."""
    ending.run(main, argv)
