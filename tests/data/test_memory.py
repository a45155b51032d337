"""Memory stays flat as the data set grows: the streamed path holds no whole-split copy."""

import pathlib
import subprocess
import sys

SCRIPT = pathlib.Path(__file__).with_name("synthetic.py")


def step(*args):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_peak_memory_of_one_epoch_at_ten_times_the_examples(tmp_path):
    """20,000 × 8 KB examples (160 MB as float32) against 2,000: a design that copies the
    splits into memory (numpy, then a tf.constant) would add several hundred MB; the
    streamed run's peak RSS (getrusage, in separate processes) grows by at most 25%."""
    peaks = {}
    for scale in (1, 10):
        step("generate", tmp_path, scale)
        peaks[scale] = int(step("run", tmp_path, scale).split()[-1])
    assert peaks[10] <= 1.25 * peaks[1], peaks
