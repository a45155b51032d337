import keras
import pytest

from tfnn import optimizers
from tfnn.clipping import ClipGradients
from tfnn.optimizer_factory import learning_rate_schedule, make_optimizer


@pytest.mark.parametrize(
    "name, cls, momentum",
    [
        ("sgd", keras.optimizers.SGD, 0.0),
        ("momentum", keras.optimizers.SGD, 0.9),
        ("rmsprop", keras.optimizers.RMSprop, None),
        ("adam", keras.optimizers.Adam, None),
        ("adamw", keras.optimizers.AdamW, None),
    ],
)
def test_names_give_the_keras_update_rules(name, cls, momentum):
    """A4, B4: the update rules are Keras's, at the given rate."""
    optimizer = make_optimizer(name, learning_rate=0.05)
    assert type(optimizer) is cls
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    if momentum is not None:
        assert optimizer.momentum == momentum


@pytest.mark.parametrize("decay", ["linear", "cosine", "exponential"])
def test_decay_runs_from_the_learning_rate_to_the_final_rate(decay):
    schedule = learning_rate_schedule(0.1, decay=decay, final=0.001, total_steps=500)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(500)) == pytest.approx(0.001, rel=1e-4)


@pytest.mark.parametrize(
    "decay, halfway",
    [
        ("linear", (0.1 + 0.001) / 2),  # α + (final − α)·½
        ("cosine", 0.001 + (0.1 - 0.001) / 2),  # final + (α − final)·(1 + cos(π/2))/2
        ("exponential", 0.1 * (0.001 / 0.1) ** 0.5),  # α·(final/α)^½
    ],
)
def test_decay_halfway_follows_its_formula(decay, halfway):
    schedule = learning_rate_schedule(0.1, decay=decay, final=0.001, total_steps=500)
    assert float(schedule(250)) == pytest.approx(halfway, rel=1e-5)


def test_the_default_final_rate_is_a_hundredth():
    schedule = learning_rate_schedule(0.1, decay="cosine", total_steps=10)
    assert float(schedule(10)) == pytest.approx(0.001, rel=1e-4)


def test_clip_and_l1_wrap_the_update_rule():
    optimizer = make_optimizer("sgd", l1=0.01, clip_mode="norm", clip=0.5)
    clip = optimizers.find(optimizer, ClipGradients)
    proximal = optimizers.find(optimizer, optimizers.ProximalL1)
    assert (clip.mode, clip.threshold, proximal.l1) == ("norm", 0.5, 0.01)
    assert type(proximal.inner_optimizer) is keras.optimizers.SGD
    assert type(make_optimizer("sgd")) is keras.optimizers.SGD  # no wrapper unless asked


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "lbfgs"}, "name='lbfgs'"),
        ({"learning_rate": 0.0}, "learning_rate=0.0"),
        ({"decay": "step"}, "decay='step'"),
        ({"decay": "cosine", "learning_rate_final": 0.5, "learning_rate": 0.1}, "final=0.5"),
        ({"l1": -1.0}, "l1=-1.0"),
        ({"clip_mode": "elementwise"}, "clip_mode='elementwise'"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_optimizer(**kwargs)
