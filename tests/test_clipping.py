import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import clipping, losses, optimizers
from tfnn.layers import Dense
from tfnn.testing import assert_close, dtype_policy

# Hand-made gradients: ‖a‖ = 5, ‖b‖ = 1, global ‖(a, b)‖ = √26.
A, B = np.array([3.0, 4.0], "float32"), np.array([[0.6], [0.8]], "float32")


def clip(mode, threshold, grads=(A, B)):
    clipped, norm, fired = clipping.clip_gradients([tf.constant(g) for g in grads], mode, threshold)
    return [np.asarray(g) for g in clipped], float(norm), bool(fired)


def test_value_mode_clips_each_weight():
    """E3 per weight: ‖g_i‖ = |g_i|, so g_i ← clip(g_i, −c, c)."""
    (a, b), norm, fired = clip("value", 0.7)
    np.testing.assert_allclose(a, [0.7, 0.7])
    np.testing.assert_allclose(b, [[0.6], [0.7]])
    assert fired and norm == pytest.approx(np.sqrt(26))


def test_norm_mode_clips_each_variable_by_its_own_norm():
    """E3 per matrix: a (‖a‖ = 5 > 2) becomes 2·a/5; b (‖b‖ = 1 ≤ 2) stays."""
    (a, b), _, fired = clip("norm", 2.0)
    np.testing.assert_allclose(a, 2.0 * A / 5.0, rtol=1e-6)
    np.testing.assert_allclose(b, B, rtol=1e-6)
    assert fired


def test_global_norm_mode_rescales_everything_by_one_factor():
    """E3 as a whole: both become c·g/√26, keeping the step's direction."""
    (a, b), _, fired = clip("global_norm", 2.0)
    factor = 2.0 / np.sqrt(26.0)
    np.testing.assert_allclose(a, factor * A, rtol=1e-6)
    np.testing.assert_allclose(b, factor * B, rtol=1e-6)
    assert fired


def test_norm_mode_fires_on_a_variable_norm_not_on_the_global_norm():
    """c = 5: ‖a‖ = 5 and ‖b‖ = 1 are within c, though the global norm √26 is not."""
    (a, b), norm, fired = clip("norm", 5.0)
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(b, B)
    assert norm == pytest.approx(np.sqrt(26)) and not fired


def test_reset_telemetry_starts_every_figure_afresh():
    """After a reset, mean, max and clip rate cover only the steps that follow it."""
    variable = keras.Variable(np.zeros(2, "float32"))
    optimizer = clipping.ClipGradients(keras.optimizers.SGD(0.1), "global_norm", 2.0)
    optimizer.apply([tf.constant(A)], [variable])  # ‖g‖ = 5: clipped
    assert optimizer.telemetry() == pytest.approx(
        {"grad_norm": 5.0, "grad_norm_max": 5.0, "clip_rate": 1.0}
    )
    optimizer.reset_telemetry()
    optimizer.apply([tf.constant([0.6, 0.8])], [variable])  # ‖g‖ = 1: kept
    assert optimizer.telemetry() == pytest.approx(
        {"grad_norm": 1.0, "grad_norm_max": 1.0, "clip_rate": 0.0}
    )


@pytest.mark.parametrize("mode", clipping.MODES)
def test_gradients_within_the_threshold_are_unchanged(mode):
    (a, b), _, fired = clip(mode, 10.0)
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(b, B)
    assert not fired


def test_none_gradients_pass_through():
    clipped, _, _ = clipping.clip_gradients([None, tf.constant(A)], "norm", 1.0)
    assert clipped[0] is None
    np.testing.assert_allclose(clipped[1], A / 5.0, rtol=1e-6)


KERAS_ARGUMENT = {"value": "clipvalue", "norm": "clipnorm", "global_norm": "global_clipnorm"}


@pytest.mark.parametrize("mode", clipping.MODES)
def test_training_equals_keras_clipping_on_one_device(mode):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 3, size=64)
    weights = []
    for optimizer in (
        clipping.ClipGradients(keras.optimizers.SGD(0.5), mode, 0.05),
        keras.optimizers.SGD(0.5, **{KERAS_ARGUMENT[mode]: 0.05}),
    ):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), Dense(8, "tanh"), Dense(3)])
        model.compile(optimizer, losses.SoftmaxNLL())
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for ours, theirs in zip(*weights, strict=True):
        assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_clipping_sees_unscaled_gradients_under_mixed_float16():
    """Keras puts LossScaleOptimizer outside: unscale → clip → apply, with float32's norms."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.integers(0, 3, size=32)
    telemetry = {}
    for policy in ("float32", "mixed_float16"):
        with dtype_policy(policy):
            keras.utils.set_random_seed(0)
            model = keras.Sequential(
                [keras.Input((6,)), Dense(8, "tanh"), Dense(3, dtype="float32")]
            )
            model.compile(
                clipping.ClipGradients(keras.optimizers.SGD(0.1), "global_norm", 0.1),
                losses.SoftmaxNLL(),
            )
            model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            telemetry[policy] = optimizers.find(model.optimizer, clipping.ClipGradients).telemetry()
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"
    assert telemetry["mixed_float16"]["grad_norm"] == pytest.approx(
        telemetry["float32"]["grad_norm"], rel=2e-3
    )
    assert telemetry["mixed_float16"]["clip_rate"] == telemetry["float32"]["clip_rate"] == 1.0


def test_config_and_save_load_round_trips(tmp_path):
    optimizer = clipping.ClipGradients(keras.optimizers.Adam(0.01), "norm", 0.5)
    config = optimizer.get_config()
    clone = clipping.ClipGradients.from_config(config)
    assert clone.get_config() == config
    model = keras.Sequential([keras.Input((3,)), Dense(2)])
    model.compile(optimizer, losses.SoftmaxNLL())
    model.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, clipping.ClipGradients)
    assert (loaded.optimizer.mode, loaded.optimizer.threshold) == ("norm", 0.5)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: clipping.ClipGradients(keras.optimizers.SGD(), "elementwise", 1.0), "mode"),
        (lambda: clipping.ClipGradients(keras.optimizers.SGD(), "norm", 0.0), "threshold"),
        (
            lambda: clipping.ClipGradients(keras.optimizers.SGD(clipnorm=1.0), "norm", 1.0),
            "clipnorm",
        ),
        (lambda: clipping.clip_gradients([tf.ones(2)], "norm", -1.0), "threshold"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


REPLICAS_SCRIPT = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from tfnn import clipping, losses

rng = np.random.default_rng(0)
x = rng.normal(size=(32, 5)).astype("float32")
y = rng.integers(0, 3, 32)

def step(strategy, ours):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
        if ours:
            optimizer = clipping.ClipGradients(keras.optimizers.SGD(1.0), "global_norm", 0.01)
        else:
            optimizer = keras.optimizers.SGD(1.0, global_clipnorm=0.01)
        model.compile(optimizer, losses.SoftmaxNLL())
    before = model.get_weights()
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    change = np.concatenate([(a - b).ravel() for a, b in zip(model.get_weights(), before)])
    return float(np.linalg.norm(change))

one = tf.distribute.get_strategy()
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
print(json.dumps({name: [step(one, ours), step(two, ours)] for name, ours in
                  (("tfnn", True), ("keras", False))}))
"""


def test_replicas_clip_the_whole_batch_gradient_like_one_device():
    """PITFALLS: Keras clips each replica's part of the gradient before summing, so two
    replicas can step up to 2c; ClipGradients clips the sum, so the step is c · lr."""
    result = subprocess.run(
        [sys.executable, "-c", REPLICAS_SCRIPT], capture_output=True, text=True, check=True
    )
    steps = json.loads(result.stdout.strip().splitlines()[-1])
    one, two = steps["tfnn"]
    assert one == pytest.approx(0.01, rel=1e-4) and two == pytest.approx(one, rel=1e-4)
    keras_one, keras_two = steps["keras"]
    assert keras_one == pytest.approx(0.01, rel=1e-4)
    assert keras_two > 1.5 * keras_one  # the pitfall, reproduced
