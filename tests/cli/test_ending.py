"""tfnn.cli.ending: a command's process ends with its status after its exit work, without
the interpreter finalizing its objects. Each case is a process of its own (no TensorFlow)."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Buffered output, as a command has unless told otherwise: the exit must flush it.
BUFFERED = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

# A process that leaves work for the exit: a buffered line, a non-daemon thread still
# writing, an atexit handler, and an object whose finalizer says when objects are finalized.
PROCESS = """
import atexit, sys, threading, time
from tfnn.cli import ending
class Probe:
    def __del__(self):
        print("finalized", file=sys.stderr, flush=True)
probe = Probe()
print("result")
threading.Thread(target=lambda: (time.sleep(0.2), print("thread"))).start()
atexit.register(print, "atexit")
def main(argv):
    {main}
ending.run(main)
"""


@pytest.mark.parametrize(
    "main, status, stderr",
    [
        ("pass", 0, ""),
        ("sys.exit(2)", 2, ""),
        ("sys.exit(None)", 0, ""),
        ("sys.exit('train.py: the message')", 1, "train.py: the message\n"),
    ],
)
def test_the_process_ends_with_mains_status_after_its_exit_work_without_finalizing(
    main, status, stderr
):
    result = subprocess.run(
        [sys.executable, "-c", PROCESS.format(main=main)],
        cwd=ROOT,
        env=BUFFERED,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == status
    # The thread is waited for, the handlers run, the output flushed, in the exit's order.
    assert result.stdout == "result\nthread\natexit\n"
    assert result.stderr == stderr  # no "finalized"


@pytest.mark.parametrize("status, ends_with", [(0, 120), (2, 2)])
def test_output_that_cannot_be_written_turns_success_into_120(status, ends_with):
    """As Python's own exit: a run whose stdout cannot be flushed (here a pipe nobody reads
    any more) did not succeed."""
    script = f"from tfnn.cli import ending\nprint('result')\nending.end({status})"
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=BUFFERED,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # before the child flushes its line, at its end
    child.stderr.read()
    assert child.wait(timeout=60) == ends_with


@pytest.mark.parametrize(
    "raised, status, name",
    [
        (KeyboardInterrupt("SIGTERM"), 143, "SIGTERM"),
        (KeyboardInterrupt("SIGHUP"), 129, "SIGHUP"),
        (KeyboardInterrupt("sigterm"), 130, "SIGINT"),
        (KeyboardInterrupt("stopped"), 130, "SIGINT"),
        (KeyboardInterrupt(), 130, "SIGINT"),
    ],
)
def test_a_stop_is_named_by_its_signal_only_when_its_message_is_one(capsys, raised, status, name):
    """At the limit of `str(error) in signal.Signals.__members__` (a signal's exact name) and
    past it (another case, another word, none: Ctrl-C's SIGINT): catches a KeyError on a
    message that is not a signal's name, or every stop reported as SIGINT. In-process."""
    from tfnn.cli import ending

    with pytest.raises(SystemExit) as exited, ending.stopped("prog"):
        raise raised
    assert exited.value.code == status
    assert capsys.readouterr().err == (
        f"prog: stopped by {name}; the same command again continues where it stopped\n"
    )
