import os
import signal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tfnn.recipe import process  # noqa: E402

# The process-wide settings train.py makes at its start (one thread, op determinism), made
# once here: tfnn.train leaves them to the process.
process.configure(threads=1, deterministic=True)


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test starts from the same random state and the float32 policy."""
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield


@pytest.fixture
def sigint_interrupts():
    """Within the test, SIGINT raises KeyboardInterrupt in its thread, whatever an earlier test
    in the same process left behind (another handler, or the signal blocked in this thread:
    in a full run a test's own SIGINT once did nothing), restored afterwards."""
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    signal.signal(signal.SIGINT, handler)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A TFDS data folder of the test module's own: each data set is prepared once a module."""
    import tensorflow_datasets as tfds

    tfds.display_progress_bar(False)
    return str(tmp_path_factory.mktemp("tfds"))


def _write_folder(root, per_class=(6, 2), size=(12, 10), mode="RGB", seed=0):
    """An image folder root/<train|test>/<cat|dog|eel>/<i>.png of `per_class` images per
    class and split, whose bright band of rows (top, middle, bottom third) is the class."""
    rng = np.random.default_rng(seed)
    height, width = size
    channels = 3 if mode == "RGB" else 1
    for split, n in zip(("train", "test"), per_class, strict=True):
        for k, name in enumerate(("cat", "dog", "eel")):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 30, (height, width, channels))
                band = slice(k * height // 3, (k + 1) * height // 3)
                pixels[band] = rng.integers(200, 255, pixels[band].shape)
                image = Image.fromarray(pixels.astype(np.uint8).squeeze(), mode)
                image.save(root / split / name / f"{i}.png")
    return root


@pytest.fixture
def write_folder():
    """`write_folder(root, per_class=(6, 2), size=(12, 10), mode="RGB", seed=0)`: writes an
    image folder of three classes (cat, dog, eel) that a small model tells apart."""
    return _write_folder


@pytest.fixture
def prestart_calls(monkeypatch):
    """`tfnn.recipe.pool.prestarted` replaced by a recorder, on two CPUs with memory for many
    workers: the list it returns gets ("prestarted", workers) when a command enters the
    block and ("stopped", workers) when it leaves; a test appends its own calls between."""
    import contextlib

    from tfnn.recipe import pool

    calls = []

    @contextlib.contextmanager
    def prestarted(workers, imports=None):
        calls.append(("prestarted", workers))
        yield []
        calls.append(("stopped", workers))

    monkeypatch.setattr(pool, "cpus", lambda: 2)
    monkeypatch.setattr(pool, "memory_available", lambda: 64 * pool.WORKER_BYTES)
    monkeypatch.setattr(pool, "prestarted", prestarted)
    return calls
