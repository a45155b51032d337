import keras
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from tfnn import constraints, initializers, layers, regularizers
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


STANDARD = (np.zeros(4), np.ones(4))  # statistics that leave inputs as they are


def dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, layers.Dense)]


def test_the_mlp_computes_f_of_wx_plus_b_per_hidden_layer_then_linear_logits():
    """h1 = tanh(W1 x̃ + b1), h2 = tanh(W2 h1 + b2), z = W3 h2 + b3 with x̃ = (x − mean)/std."""
    mean, variance = np.array([1.0, -2.0, 0.5, 3.0]), np.array([4.0, 1.0, 0.25, 9.0])
    model = mlp((4,), 3, statistics=(mean, variance), hidden_layers=(5, 6), activation="tanh")
    x = np.random.default_rng(0).normal(size=(7, 4)).astype("float32")
    (w1, b1), (w2, b2), (w3, b3) = (layer.get_weights() for layer in dense_layers(model))
    h = (x - mean) / np.sqrt(variance)
    h = np.tanh(np.tanh(h @ w1 + b1) @ w2 + b2)
    assert_close(model(x), h @ w3 + b3, rtol=1e-4, atol=1e-5, what="logits")
    assert [layer.units for layer in dense_layers(model)] == [5, 6, 3]
    assert model.name == "mlp"
    assert model.input.name == "inputs"  # the exported signature's input key


def test_no_hidden_layers_is_a_linear_model_and_prelu_learns_a_slope_after_each_dense():
    linear = mlp((4,), 2, statistics=STANDARD, hidden_layers=())
    [(w, b)] = [layer.get_weights() for layer in dense_layers(linear)]
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")  # negative values too
    assert_close(linear(x), x @ w + b, rtol=1e-5, atol=1e-6, what="linear logits")
    prelu = mlp((4,), 2, statistics=STANDARD, hidden_layers=(3, 3), activation="prelu")
    kinds = [type(layer).__name__ for layer in prelu.layers[2:]]
    assert kinds == ["Dense", "PReLU", "Dense", "PReLU", "Dense"]
    x = -np.ones((1, 4), "float32")
    for layer in dense_layers(prelu):  # negative pre-activations: a linear Dense keeps them
        layer.set_weights([np.ones_like(w) for w in layer.get_weights()])
    prelu_0 = prelu.layers[3]
    prelu_0.set_weights([np.full_like(prelu_0.get_weights()[0], 0.5)])
    h = keras.Model(prelu.input, prelu_0.output)(x)
    assert_close(h, np.full((1, 3), 0.5 * -3.0), what="PReLU(W x + b)")  # W x + b = −4 + 1


@pytest.mark.parametrize("init", ["fan_in", "glorot", "he", "lecun"])
def test_every_kernel_starts_from_the_named_initialization_and_every_bias_at_zero(init):
    from tfnn.names import INITIALIZERS

    model = mlp((4,), 2, statistics=STANDARD, hidden_layers=(3,), init=init)
    expected = type(initializers.get(INITIALIZERS[init]))
    for layer in dense_layers(model):
        assert type(layer.kernel_initializer) is expected
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0)


@pytest.mark.parametrize(
    "l1, l2, kind",
    [
        (0.0, 0.0, None),
        (0.1, 0.0, regularizers.L1),
        (0.0, 0.2, regularizers.L2),
        (0.1, 0.2, regularizers.L1L2),
    ],
    ids=["none", "l1", "l2", "both"],
)
def test_every_kernel_gets_the_penalty_asked_and_no_other(l1, l2, kind):
    """The penalty of each kernel: l1 Σ|W| + l2 Σ W² (a penalty of 0 is no penalty at all)."""
    model = mlp((4,), 2, statistics=STANDARD, hidden_layers=(3,), l1=l1, l2=l2)
    penalties = [layer.kernel_regularizer for layer in dense_layers(model)]
    assert [type(p) if p else None for p in penalties] == [kind, kind]
    kernels = [layer.kernel.numpy() for layer in dense_layers(model)]
    expected = sum(l1 * np.abs(w).sum() + l2 * np.square(w).sum() for w in kernels)
    assert_close(sum(model.losses) if model.losses else 0.0, expected, rtol=1e-5)


@pytest.mark.parametrize("max_norm", [0.0, 1.5])
def test_max_norm_caps_every_kernel_and_zero_turns_it_off(max_norm):
    model = mlp((4,), 2, statistics=STANDARD, hidden_layers=(3,), max_norm=max_norm)
    for layer in dense_layers(model):
        if max_norm:
            assert isinstance(layer.kernel_constraint, constraints.MaxNorm)
            assert layer.kernel_constraint.max_value == max_norm
        else:
            assert layer.kernel_constraint is None


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_dropout_follows_every_hidden_layer_and_zero_adds_none(dropout):
    model = mlp((4,), 2, statistics=STANDARD, hidden_layers=(3, 3), dropout=dropout)
    rates = [layer.rate for layer in model.layers if isinstance(layer, layers.Dropout)]
    assert rates == ([dropout, dropout] if dropout else [])


def test_a_target_scale_gives_mean_plus_std_times_the_linear_output():
    keras.utils.set_random_seed(0)
    plain = mlp((4,), 1, statistics=STANDARD, hidden_layers=(3,))
    keras.utils.set_random_seed(0)
    scaled = mlp((4,), 1, statistics=STANDARD, hidden_layers=(3,), target_scale=(150.0, 70.0))
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    assert_close(scaled(x), 150.0 + 70.0 * plain(x), rtol=1e-5, what="scaled output")


@pytest.mark.parametrize("shape", [(4, 2), (3, 3, 1)], ids=["signals with channels", "images"])
def test_inputs_of_more_than_one_axis_are_flattened_and_not_standardized(shape):
    """Only vector inputs need statistics; [T, C] and [H, W, C] go through a Flatten."""
    model = mlp(list(shape), 2, hidden_layers=(), name="flat")
    assert isinstance(model.layers[1], keras.layers.Flatten) and model.name == "flat"
    assert not any(isinstance(layer, keras.layers.Normalization) for layer in model.layers)
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype("float32")
    (w, b) = dense_layers(model)[0].get_weights()
    assert_close(model(x), x.reshape(2, -1) @ w + b, rtol=1e-5, atol=1e-6)


def test_given_statistics_win_over_the_training_inputs():
    mean, variance = np.full(30, 2.0), np.full(30, 16.0)
    model = mlp(TRAIN, 1, statistics=(mean, variance), hidden_layers=(8,))
    standardize = keras.Model(model.input, model.layers[1].output)
    assert_close(standardize(TEST), (TEST - 2.0) / 4.0, rtol=1e-5, atol=1e-5)


def test_the_missing_statistics_message_names_the_shape():
    with pytest.raises(ValueError) as error:
        mlp((30,), 1)
    assert str(error.value) == (
        "Expected `statistics` (mean, variance) for vector inputs given by their shape. "
        "Received: inputs=(30,), statistics=None"
    )


@pytest.mark.parametrize(
    "options, named",
    [({"activation": "gelu"}, "activation='gelu'"), ({"init": "zeros"}, "init='zeros'")],
)
def test_an_unknown_activation_or_init_is_refused_by_name(options, named):
    with pytest.raises(ValueError, match=named):
        mlp((4,), 2, statistics=STANDARD, **options)


def test_the_statistics_of_training_inputs_are_computed_in_float64():
    """float32 values near 3000 that differ by 1e-4: a float32 variance is 2.9 times too large."""
    x = (3e3 + (np.arange(4000) % 7) * 1e-4).astype(np.float32)[:, None]
    standardize = mlp(x, 1, hidden_layers=()).layers[1]
    config = standardize.get_config()
    exact = x.astype(np.float64)
    np.testing.assert_allclose(config["mean"], exact.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(config["variance"], exact.var(axis=0), rtol=1e-9)


def test_the_defaults_are_one_hidden_layer_of_100_relu_units_without_regularization():
    model = mlp((4,), 2, statistics=STANDARD)
    hidden, output = dense_layers(model)
    assert (hidden.units, output.units) == (100, 2)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    (w1, b1), (w2, b2) = hidden.get_weights(), output.get_weights()
    assert_close(model(x), np.maximum(x @ w1 + b1, 0.0) @ w2 + b2, rtol=1e-5, atol=1e-5)
    assert type(hidden.kernel_initializer) is type(initializers.get("glorot_uniform"))
    for layer in (hidden, output):
        assert layer.kernel_regularizer is None and layer.kernel_constraint is None
    assert not any(isinstance(layer, layers.Dropout) for layer in model.layers)
