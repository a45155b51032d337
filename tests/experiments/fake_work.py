"""A measurement for tests/experiments/test_experiments.py's pool tests: importable by name in
the spawned workers (the test puts this folder on sys.path, which they inherit)."""

import os
import pathlib


def square(seed, size, x):
    """{"value": x² + seed}. Leaves a file `x-seed-pid` in $FAKE_CALLS, so a test counts the
    measurements made and the processes they ran in; raises when x is $FAKE_FAIL."""
    pathlib.Path(os.environ["FAKE_CALLS"], f"{x}-{seed}-{os.getpid()}").write_text("")
    if str(x) == os.environ.get("FAKE_FAIL"):
        raise ValueError(f"no square of {x}")
    return {"value": x * x + seed}
