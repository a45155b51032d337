"""How a command's process ends once its work is done: at once, without the interpreter
finalizing the objects TensorFlow and Keras made, which takes 1.1–1.4 s after a training
run's last line (docs/benchmarks.md, "Where a run's time goes").

`end(status)` does the rest of what the interpreter's exit does, in its order: it waits
for the non-daemon threads (and runs the hooks of `concurrent.futures`' pools), runs the
atexit handlers (tfnn's image-folder views, autograph's temporary modules, TFDS's,
multiprocessing's children, and `logging.shutdown`, which logging registers there), and
flushes stdout and stderr; then `os._exit(status)`.
"""

import atexit
import contextlib
import os
import signal
import sys
import threading


@contextlib.contextmanager
def stopped(prog):
    """Inside, a KeyboardInterrupt (Ctrl-C, or SIGTERM as tfnn.recipe.pool raises it once
    its workers are stopped) ends the command with one line on stderr and exit status
    128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports a
    process a signal ended; no traceback. The work finished is kept: the same command
    continues."""
    try:
        yield
    except KeyboardInterrupt as error:
        name = str(error) if str(error) in signal.Signals.__members__ else "SIGINT"
        print(
            f"{prog}: stopped by {name}; the same command again continues where it stopped",
            file=sys.stderr,
        )
        raise SystemExit(128 + signal.Signals[name]) from None


def run(main, argv=None):
    """Runs a command's `main(argv)`, which ends as argparse does (`SystemExit`, or returns
    for success), then `end`s the process with its status. Other exceptions propagate: the
    traceback and the interpreter's own exit."""
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    if code is None or isinstance(code, int):
        end(code or 0)
    print(code, file=sys.stderr)  # SystemExit("message"): Python's own handling
    end(1)


def end(status):
    """Ends the process with `status` after the exit work that matters (module docstring),
    skipping only the finalization of objects. Status 120 for a run that succeeded but whose
    output could not be flushed (a closed pipe, a full disk), as Python's exit reports it."""
    written = _flush()
    threading._shutdown()
    atexit._run_exitfuncs()
    written = _flush() and written
    os._exit(status if written or status else 120)


def _flush():
    """Flushes stdout and stderr; False when one cannot be written."""
    written = True
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # ValueError: a closed stream
            written = False
    return written
