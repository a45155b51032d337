import keras
import numpy as np
import pytest

from tfnn import clipping, losses
from tfnn.callbacks import ClipTelemetry
from tfnn.layers import Dense


@pytest.mark.parametrize("threshold, rate", [(1e-6, 1.0), (1e6, 0.0)])
def test_clip_telemetry_reaches_the_history(threshold, rate):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)).astype("float32"), rng.integers(0, 2, size=40)
    model = keras.Sequential([keras.Input((4,)), Dense(2)])
    model.compile(
        clipping.ClipGradients(keras.optimizers.SGD(0.1), "global_norm", threshold),
        losses.SoftmaxNLL(),
    )
    history = model.fit(
        x, y, batch_size=10, epochs=2, verbose=0, callbacks=[ClipTelemetry()]
    ).history
    assert history["clip_rate"] == [rate, rate]
    assert all(
        0 < n <= m for n, m in zip(history["grad_norm"], history["grad_norm_max"], strict=True)
    )


def test_clip_telemetry_needs_a_clipping_optimizer():
    model = keras.Sequential([keras.Input((4,)), Dense(2)])
    model.compile("sgd", losses.SoftmaxNLL())
    with pytest.raises(ValueError, match="ClipGradients"):
        model.fit(np.ones((4, 4)), np.zeros(4), verbose=0, callbacks=[ClipTelemetry()])
