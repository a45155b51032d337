"""tfnn.recipe.process: which settings reach TensorFlow.

TensorFlow takes its thread counts and logical devices once, before its first op, and this
test session's have been set already (tests/conftest.py): those setters are replaced by
recorders here, so a test sees what `configure` asks of TensorFlow. Op determinism can
change at any time: it is set for real and read back, then turned on again as this
session has it."""

import pytest
import tensorflow as tf

from tfnn.recipe import process


@pytest.fixture
def asked(monkeypatch):
    """{setter: its arguments} of each thread or device setter `configure` called."""
    calls = {}

    def recorder(name):
        def record(*args):
            calls[name] = args

        return record

    threading = tf.config.threading
    monkeypatch.setattr(threading, "set_intra_op_parallelism_threads", recorder("intra"))
    monkeypatch.setattr(threading, "set_inter_op_parallelism_threads", recorder("inter"))
    monkeypatch.setattr(tf.config, "set_logical_device_configuration", recorder("devices"))
    yield calls
    tf.config.experimental.enable_op_determinism()  # this session's setting (conftest.py)


def test_the_defaults_are_one_thread_op_determinism_and_no_split(asked):
    """Catches a default of two threads or of op determinism off."""
    tf.config.experimental.enable_op_determinism()
    process.configure()
    assert asked == {"intra": (1,), "inter": (1,)}
    assert process.deterministic() is True


def test_threads_reach_both_pools_and_determinism_can_be_turned_off(asked):
    """Catches `deterministic=False` failing: TensorFlow 2.21 exports no
    tf.config.experimental.disable_op_determinism (XLA runs and sweeps called it)."""
    tf.config.experimental.enable_op_determinism()
    process.configure(threads=0, deterministic=False)
    assert asked == {"intra": (0,), "inter": (0,)}
    assert process.deterministic() is False


@pytest.mark.parametrize(
    "threads, inter_op_threads, inter",
    [(1, 2, 2), (1, 0, 0), (3, None, 3), (0, None, 0)],
)
def test_inter_op_threads_reach_the_inter_op_pool_alone(asked, threads, inter_op_threads, inter):
    """Catches `inter_op_threads` ignored, sent to the intra-op pool, or read as falsy (0,
    TensorFlow's choice, taken for None and replaced by `threads`), and None not meaning as
    many as `threads`."""
    process.configure(threads=threads, inter_op_threads=inter_op_threads)
    assert asked == {"intra": (threads,), "inter": (inter,)}


def test_deterministic_turns_op_determinism_back_on(asked):
    process.configure(deterministic=False)
    process.configure(deterministic=True)
    assert process.deterministic() is True


def test_one_cpu_device_is_no_split(asked):
    """At the limit: 1 is the CPU as it is (catches `cpu_devices >= 1`)."""
    process.configure(cpu_devices=1)
    assert "devices" not in asked


@pytest.mark.parametrize("cpu_devices", [2, 3])
def test_cpu_devices_splits_the_physical_cpu_into_that_many(asked, cpu_devices):
    """Just past the limit (2; catches `cpu_devices > 2`) and one more: the first physical
    CPU, split into exactly `cpu_devices` logical devices."""
    process.configure(cpu_devices=cpu_devices)
    device, logical = asked["devices"]
    assert device == tf.config.list_physical_devices("CPU")[0]
    assert len(logical) == cpu_devices
    assert all(isinstance(d, tf.config.LogicalDeviceConfiguration) for d in logical)


def test_the_cpu_is_split_on_a_machine_that_lists_a_gpu_first(asked, monkeypatch):
    """Catches the first physical device of any type taken for the CPU."""
    cpu = tf.config.PhysicalDevice("/physical_device:CPU:0", "CPU")
    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    listed = {None: [gpu, cpu], "CPU": [cpu], "GPU": [gpu]}
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: listed[kind])
    process.configure(cpu_devices=2)
    assert asked["devices"][0] == cpu


def test_op_determinism_is_set_even_where_the_thread_counts_are_refused():
    """Where TensorFlow runs, another inter-op count raises. train.py goes on after that
    refusal (a notebook, a test), so op determinism must already be set: catches it set after
    the thread setters (left on for an XLA run)."""
    tf.add(1, 1)  # TensorFlow runs: its thread counts are fixed from here on
    other = tf.config.threading.get_inter_op_parallelism_threads() + 1
    try:
        with pytest.raises(RuntimeError):
            process.configure(threads=1, inter_op_threads=other, deterministic=False)
        assert process.deterministic() is False
    finally:
        tf.config.experimental.enable_op_determinism()  # this session's setting
