"""TensorFlow's process-wide settings, made once where a process starts: train.py's main, a
pool worker's start (tfnn.recipe.pool), a test session. Never inside `tfnn.train`, which
may be one call of many in a process that chose its own.

    process.configure(threads=1, deterministic=True)

Thread pools and logical devices are fixed once TensorFlow runs its first op; op
determinism is global, and Keras does not XLA-compile under it.
"""

import tensorflow as tf


def configure(*, threads=1, inter_op_threads=None, deterministic=True, cpu_devices=0):
    """Sets TensorFlow's `threads` an op (intra-op; 0: TensorFlow's choice, all cores) and
    `inter_op_threads`, the ops that may run at once (None: as many as `threads`), turns op
    determinism on (`deterministic`: the same seed gives the same run; off for XLA),
    and splits the CPU into `cpu_devices` logical devices (>1; replicas of a mirrored
    strategy without GPUs).

    Raises:
        RuntimeError: TensorFlow already runs in this process (threads or devices are fixed).
    """
    # First: op determinism can change at any time, and the setters below raise where
    # TensorFlow already runs with other counts; a caller that goes on must still get it.
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:
        # TensorFlow exports the enabler but not this one; it is the enabler's module's.
        from tensorflow.python.framework import config

        config.disable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(
        threads if inter_op_threads is None else inter_op_threads
    )
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )


def deterministic():
    """Whether op determinism is on in this process (by `configure` or by anyone else)."""
    # TensorFlow exports the setter but not this getter; it is the setter's module's.
    from tensorflow.python.framework import config

    return config.is_op_determinism_enabled()
