import keras
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from tfnn.models import ensemble as E
from tfnn.models.mlp import mlp
from tfnn.testing import MIXED_POLICIES, assert_close, check_copies, dtype_policy

# scikit-learn's bundled breast cancer features: means from 0.004 to 880, far from 0.
X = load_breast_cancer().data.astype("float32")
TRAIN, TEST = X[:400], X[400:464]


def binary_mlp(dropout=0.0, seed=0, policy="float32"):
    keras.utils.set_random_seed(seed)
    with dtype_policy(policy):
        return mlp(TRAIN, 1, hidden_layers=(32,), dropout=dropout)


@pytest.mark.parametrize("policy", ["float32", *MIXED_POLICIES])
def test_vector_inputs_are_standardized_with_the_training_statistics(policy):
    """The first layer computes (x − mean)/std per feature, mean and std of `train_x`, in
    float32 under every policy: the variances reach 3·10⁵, past float16's largest number,
    and bfloat16 rounds values near 2,500 to steps of 16."""
    model = binary_mlp(policy=policy)
    standardize = keras.Model(model.input, model.layers[1].output)
    expected = (TEST - TRAIN.mean(axis=0)) / TRAIN.std(axis=0)
    assert_close(standardize(TEST), expected, rtol=1e-4, atol=1e-4, what="standardized inputs")


def test_every_copy_of_the_model_keeps_its_standardization():
    """Clones, configs and `.keras` files predict like the original: the statistics travel."""
    check_copies(binary_mlp(), TEST, atol=1e-5)


def test_monte_carlo_dropout_with_a_vanishing_rate_is_the_weight_scaling_pass():
    """As p → 0 every pass keeps every unit: the average of T passes is the inference pass."""
    model = binary_mlp(dropout=1e-9)
    mc = E.monte_carlo_dropout(model, 8, "sigmoid")
    assert_close(mc(TEST), model(TEST), rtol=1e-4, atol=1e-4, what="MC dropout logits")


def test_weight_averaging_one_snapshot_gives_the_model_back():
    model = binary_mlp()
    averaged = E.weight_averaged(model, [model.get_weights()])
    assert_close(averaged(TEST), model(TEST), rtol=1e-5, atol=1e-5, what="averaged logits")


def test_given_statistics_standardize_without_the_training_inputs():
    """Statistics from a streaming pass replace the training array; copies keep them."""
    mean, variance = TRAIN.mean(axis=0), TRAIN.var(axis=0)
    model = mlp((30,), 1, statistics=(mean, variance), hidden_layers=(8,))
    standardize = keras.Model(model.input, model.layers[1].output)
    expected = (TEST - mean) / np.sqrt(variance)
    assert_close(standardize(TEST), expected, rtol=1e-4, atol=1e-4, what="standardized inputs")
    check_copies(model, TEST, atol=1e-5)


def test_a_shape_without_statistics_is_refused_for_vector_inputs():
    with pytest.raises(ValueError, match="statistics"):
        mlp((30,), 1)
