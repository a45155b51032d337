import keras
import numpy as np
import pytest

from tfnn import constraints, losses
from tfnn.layers import Dense
from tfnn.testing import SEEDS, assert_close, check_config_round_trip

SHAPES_AND_AXES = [((6, 4), 0), ((6, 4), 1), ((3, 3, 2, 5), [0, 1, 2])]


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "ours, theirs",
    [
        (
            lambda axis: constraints.MaxNorm(1.5, axis),
            lambda axis: keras.constraints.MaxNorm(1.5, axis),
        ),
        (lambda axis: constraints.UnitNorm(axis), lambda axis: keras.constraints.UnitNorm(axis)),
        (lambda axis: constraints.NonNeg(), lambda axis: keras.constraints.NonNeg()),
    ],
    ids=["MaxNorm", "UnitNorm", "NonNeg"],
)
def test_equals_keras_twin(ours, theirs, shape, axis, seed):
    w = np.random.default_rng(seed).normal(size=shape).astype("float32")
    assert_close(ours(axis)(w), theirs(axis)(w), rtol=1e-6, atol=1e-7)


def test_max_norm_caps_long_vectors_and_keeps_short_ones():
    w = np.array([[3.0, 0.3], [4.0, 0.4]], "float32")  # column norms 5 and 0.5
    np.testing.assert_allclose(constraints.MaxNorm(2.0)(w), [[1.2, 0.3], [1.6, 0.4]], rtol=1e-6)


def test_max_norm_holds_after_fit_where_unconstrained_training_exceeds_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 10)).astype("float32")
    y = x @ rng.normal(size=(10, 4)).astype("float32")  # the best weights have norms ≈ 3

    def column_norms(constraint):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((10,)), Dense(4, kernel_constraint=constraint)])
        model.compile(keras.optimizers.SGD(0.5), losses.MeanSquaredError())
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return np.linalg.norm(model.get_weights()[0], axis=0)

    assert column_norms(None).min() > 1.0
    assert np.all(column_norms(constraints.MaxNorm(0.5)) <= 0.5 + 1e-5)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: constraints.MaxNorm(-1.0), "max_value"),
        (lambda: constraints.MaxNorm(0), "max_value"),
        (lambda: constraints.UnitNorm(axis="rows"), "axis"),
    ],
)
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    "constraint",
    [constraints.MaxNorm(3.0, axis=[0, 1]), constraints.NonNeg(), constraints.UnitNorm(1)],
)
def test_config_round_trip(constraint):
    check_config_round_trip(constraint)


@pytest.mark.parametrize(
    "constraint", [constraints.MaxNorm(1.0, axis=7), constraints.UnitNorm(axis=[0, 2])]
)
def test_an_axis_beyond_the_weights_rank_is_refused_at_call(constraint):
    """Catches `_norms` unchecked: axis=7 on a (2, 3) kernel raised InvalidArgumentError."""
    with pytest.raises(ValueError, match=r"rank 2, from -2 to 1\. Received: axis="):
        constraint(np.ones((2, 3), "float32"))


def test_the_last_axis_and_minus_rank_are_accepted():
    """The limits: axis rank − 1 and −rank."""
    w = np.full((2, 3), 2.0, "float32")  # each row's norm √12, each column's √8
    assert_close(constraints.MaxNorm(1.0, axis=1)(w), w / np.sqrt(12), rtol=1e-5)
    assert_close(constraints.MaxNorm(1.0, axis=-2)(w), w / np.sqrt(8), rtol=1e-5)
