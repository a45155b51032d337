import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

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
