"""Tiny work functions for tests/recipe/test_pool.py: picklable by name in a spawned worker
(the test puts this folder on sys.path, which spawned workers inherit)."""

import os
import pathlib
import signal
import time


def pid(value):
    """(value, this process's id), after a pause long enough for two workers to overlap."""
    time.sleep(0.3)
    return value, os.getpid()


def fail(message):
    raise ValueError(message)


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def say(text):
    print(text, flush=True)
    return text


def sleep(seconds, folder):
    """Writes <folder>/<pid>.started, sleeps, writes <pid>.finished."""
    folder = pathlib.Path(folder)
    (folder / f"{os.getpid()}.started").write_text("")
    time.sleep(seconds)
    (folder / f"{os.getpid()}.finished").write_text("")
    return seconds


def started(folder):
    """A worker's start function: writes <folder>/<pid>.start (one file a start)."""
    path = pathlib.Path(folder) / f"{os.getpid()}.start"
    path.write_text(path.read_text() + "x" if path.exists() else "x")


def exit_with(status):
    """Ends the worker at once with `status`, as a crash in native code would."""
    os._exit(status)


def hang(seconds):
    """Closes this worker's connection to its pool, then sleeps `seconds` (a worker gone
    silent but still running)."""
    import gc
    from multiprocessing import connection

    for held in gc.get_objects():
        if isinstance(held, connection.Connection) and not held.closed:
            held.close()
    time.sleep(seconds)


class Unsendable:
    """A result that does not pickle (its pickling raises TypeError)."""

    def __reduce__(self):
        raise TypeError("no way back")


def unsendable():
    return Unsendable()
