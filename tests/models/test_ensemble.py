import keras
import numpy as np
import pytest
import tensorflow as tf

from tfnn import layers
from tfnn.models import ensemble as E
from tfnn.testing import MIXED_POLICIES, check_config_round_trip, check_save_load, dtype_policy


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def member(seed, outputs=3, features=5, dropout=0.0, name=None):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features,))
    hidden = layers.Dense(16, activation="relu")(inputs)
    hidden = layers.Dropout(dropout)(hidden)
    return keras.Model(inputs, layers.Dense(outputs)(hidden), name=name or f"member_{seed}")


X = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("members", [2, 5])
def test_classes_average_the_members_distributions(seed, members):
    rng = np.random.default_rng(seed)
    z = 3.0 * rng.normal(size=(members, 16, 4)).astype("float32")
    logits = E.average_logits(tf.constant(z), "softmax").numpy()
    # The logits are log p̄ itself, not merely a shift of it: exp(logits) = p̄, Σ_k = 1.
    np.testing.assert_allclose(np.exp(logits), softmax(z).mean(axis=0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_averages_the_members_probabilities(seed):
    z = 4.0 * np.random.default_rng(seed).normal(size=(3, 16, 1)).astype("float32")
    logit = E.average_logits(tf.constant(z), "sigmoid").numpy()
    np.testing.assert_allclose(sigmoid(logit), sigmoid(z).mean(axis=0), rtol=1e-5, atol=1e-7)


def test_regression_averages_the_values_and_extreme_logits_stay_finite():
    z = np.random.default_rng(2).normal(size=(4, 8, 1)).astype("float32")
    np.testing.assert_allclose(E.average_logits(tf.constant(z), "linear"), z.mean(0), rtol=1e-6)
    extreme = tf.constant([[[500.0, -500.0]], [[-500.0, 500.0]]])
    np.testing.assert_allclose(softmax(E.average_logits(extreme, "softmax").numpy()), [[0.5, 0.5]])
    assert np.isfinite(E.average_logits(tf.constant([[[300.0]], [[200.0]]]), "sigmoid")).all()


def test_an_ensemble_of_identical_members_equals_the_member():
    one = member(0)
    twin = member(0, name="twin")
    model = E.ensemble([one, twin, one], "softmax")
    np.testing.assert_allclose(
        softmax(model(X).numpy()), softmax(one(X).numpy()), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
def test_the_ensemble_is_one_keras_model(output):
    outputs = 3 if output == "softmax" else 1
    members = [member(seed, outputs) for seed in range(3)]
    model = E.ensemble(members, output)
    expected = E.average_logits(tf.stack([m(X) for m in members]), output)
    np.testing.assert_allclose(model(X), expected, rtol=1e-5, atol=1e-6)
    loaded = check_save_load(model, X, atol=1e-5)
    assert loaded.name == "ensemble"
    loss = {"softmax": "sparse_categorical_crossentropy", "sigmoid": "binary_crossentropy"}
    model.compile(loss=keras.losses.get(loss.get(output, "mse")))
    assert np.isfinite(model.evaluate(X, np.arange(32) % outputs, verbose=0))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="output_function"):
        E.EnsembleAverage("tanh")
    with pytest.raises(ValueError, match="members"):
        E.ensemble([], "softmax")
    with pytest.raises(ValueError, match="samples"):
        E.monte_carlo_dropout(member(0), 0, "softmax")
    check_config_round_trip(E.EnsembleAverage("sigmoid"))
    check_config_round_trip(E.MonteCarloAverage(7, "linear"))


def test_weight_averaging_is_the_mean_of_the_snapshots():
    snapshots = [member(seed, name="m").get_weights() for seed in range(3)]
    averaged = E.weight_averaged(member(9), snapshots)
    for index, weights in enumerate(averaged.get_weights()):
        expected = np.mean([snapshot[index] for snapshot in snapshots], axis=0)
        np.testing.assert_allclose(weights, expected, rtol=1e-6, atol=1e-7)


def test_monte_carlo_dropout_with_rate_zero_is_the_deterministic_pass():
    model = member(0, dropout=0.0)
    mc = E.monte_carlo_dropout(model, 5, "softmax")
    np.testing.assert_allclose(softmax(mc(X).numpy()), softmax(model(X).numpy()), atol=1e-6)


def test_monte_carlo_dropout_averages_independent_stochastic_passes():
    model = member(0, outputs=1, dropout=0.5)
    deterministic = model(X).numpy()
    one_pass = E.monte_carlo_dropout(model, 1, "linear")
    passes = np.stack([one_pass(X).numpy() for _ in range(400)])
    assert passes.std(axis=0).min() > 0  # each pass is one random sub-network
    # T = 400 passes in one call estimate the same mean as 400 separate calls:
    # within 5 standard errors of the difference of two such means.
    average = E.monte_carlo_dropout(model, 400, "linear")(X).numpy()
    tolerance = 5 * passes.std(axis=0) * np.sqrt(2 / 400)
    assert np.all(np.abs(average - passes.mean(axis=0)) < tolerance)
    stochastic = E.monte_carlo_dropout(model, 400, "linear").get_layer(index=2)
    dropouts = [layer for layer in stochastic.layers if isinstance(layer, layers.Dropout)]
    assert dropouts and all(isinstance(layer, layers.MonteCarloDropout) for layer in dropouts)
    np.testing.assert_array_equal(model(X), deterministic)  # the original model is untouched
    check_save_load(E.monte_carlo_dropout(member(1, dropout=0.0), 3, "softmax"), X, atol=1e-5)


def test_monte_carlo_dropout_keeps_batch_normalization_in_inference_mode():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    hidden = layers.BatchNormalization()(layers.Dense(8)(inputs))
    model = keras.Model(inputs, layers.Dense(2)(layers.Dropout(0.0)(hidden)))
    model.layers[2].moving_mean.assign(np.full(8, 3.0, "float32"))  # far from batch statistics
    mc = E.monte_carlo_dropout(model, 4, "softmax")
    np.testing.assert_allclose(softmax(mc(X).numpy()), softmax(model(X).numpy()), atol=1e-6)


@pytest.mark.parametrize("policy", MIXED_POLICIES)
def test_under_mixed_precision_the_averages_are_float32(policy):
    with dtype_policy(policy):
        members = [member(seed) for seed in range(2)]
        model = E.ensemble(members, "softmax")
        out = model(X)
        mc = E.monte_carlo_dropout(member(3, dropout=0.3), 4, "softmax")(X)
        repeated = E.RepeatBatch(3)(tf.cast(X, model.compute_dtype))
    assert out.dtype == tf.float32 and mc.dtype == tf.float32
    assert repeated.dtype == keras.DTypePolicy(policy).compute_dtype and repeated.shape[0] == 96
    expected = np.mean([softmax(tf.cast(m(X), tf.float32).numpy()) for m in members], axis=0)
    np.testing.assert_allclose(softmax(out.numpy()), expected, atol=1e-6)
    check_config_round_trip(E.RepeatBatch(3))


def adapted_model(dropout):
    """A user's model whose first layer is a Keras Normalization adapted to data far from 0."""
    keras.utils.set_random_seed(0)
    normalization = keras.layers.Normalization()
    normalization.adapt(100.0 + 10.0 * X)
    inputs = keras.Input((5,))
    hidden = layers.Dropout(dropout)(layers.Dense(16, activation="relu")(normalization(inputs)))
    return keras.Model(inputs, layers.Dense(3)(hidden))


def test_copies_of_a_model_with_adapted_preprocessing_predict_like_it():
    """An adapted Normalization's mean/variance survive the copy that MC dropout and weight
    averaging make (Keras rebuilds them only on adapt() or load, not on set_weights())."""
    x = 100.0 + 10.0 * X
    model = adapted_model(dropout=0.0)
    expected = softmax(model(x).numpy())
    mc = E.monte_carlo_dropout(model, 3, "softmax")
    np.testing.assert_allclose(softmax(mc(x).numpy()), expected, atol=1e-6)
    averaged = E.weight_averaged(model, [model.get_weights()])
    np.testing.assert_allclose(softmax(averaged(x).numpy()), expected, atol=1e-6)


@pytest.mark.parametrize("output", ["softmax", "sigmoid", "linear"])
def test_the_average_of_a_number_of_members_known_only_at_run_time(output):
    """A tf.function traced for any N (its first axis None) averages like an eager call: log N
    from the run-time shape (a log of the integer shape was a TypeError)."""
    z = 3.0 * np.random.default_rng(0).normal(size=(3, 4, 2)).astype("float32")
    traced = tf.function(
        lambda z: E.average_logits(z, output), input_signature=[tf.TensorSpec([None, None, 2])]
    )
    np.testing.assert_allclose(traced(z), E.average_logits(tf.constant(z), output), rtol=1e-6)
    # One member: its own distribution, as log-probabilities (softmax) or logits.
    alone = z[0] - np.log(np.exp(z[0]).sum(-1, keepdims=True)) if output == "softmax" else z[0]
    np.testing.assert_allclose(traced(z[:1]), alone, rtol=1e-5, atol=1e-5)


def test_the_output_shapes_of_the_average_and_repeat_layers():
    """T passes of B examples are T·B rows; their average B rows; an unknown batch stays
    unknown. The ensemble's output has its (every) member's shape, one member included."""
    assert E.RepeatBatch(3).compute_output_shape((4, 5)) == (12, 5)
    assert E.RepeatBatch(3).compute_output_shape((None, 5, 2)) == (None, 5, 2)
    assert E.MonteCarloAverage(3, "linear").compute_output_shape((12, 5)) == (4, 5)
    assert E.MonteCarloAverage(3, "linear").compute_output_shape((None, 5)) == (None, 5)
    assert E.EnsembleAverage("linear").compute_output_shape([(None, 5)]) == (None, 5)


def test_repeat_batch_tiles_the_whole_batch_t_times_over_any_rank():
    x = np.arange(12, dtype="float32").reshape(2, 3, 2)
    np.testing.assert_array_equal(E.RepeatBatch(3)(x), np.concatenate([x, x, x]))
    np.testing.assert_array_equal(E.RepeatBatch(1)(x), x)  # T = 1, the least allowed


def test_monte_carlo_average_averages_pass_t_of_each_example():
    """Rows t·B + b are pass t of example b: [T·B, K] → [T, B, K] → mean over T."""
    passes = np.array([[1.0], [10.0], [3.0], [30.0]], "float32")  # T = 2, B = 2
    np.testing.assert_allclose(E.MonteCarloAverage(2, "linear")(passes), [[2.0], [20.0]])


def test_the_models_names_and_inputs():
    members = [member(0), member(1)]
    model = E.ensemble(members, "softmax")
    assert model.name == "ensemble" and model.input.name == "inputs"
    assert model.get_layer("average").output_function == "softmax"
    assert E.ensemble(members, "softmax", name="pair").name == "pair"
    mc = E.monte_carlo_dropout(members[0], 2, "softmax")
    assert mc.name == "member_0_mc_dropout" and mc.input.name == "inputs"
    assert mc.get_layer("repeat").samples == 2 and mc.get_layer("average").samples == 2
    assert E.monte_carlo_dropout(members[0], 2, "softmax", name="mc").name == "mc"
    snapshots = [members[0].get_weights()]
    assert E.weight_averaged(members[0], snapshots, name="swa").name == "swa"
    assert E.weight_averaged(members[0], snapshots).name == "member_0"


def test_the_empty_ensemble_and_average_messages():
    with pytest.raises(ValueError) as error:
        E.ensemble([], "softmax")
    assert str(error.value) == "Expected at least one model in `members`. Received: members=[]"
    with pytest.raises(ValueError) as error:
        E.weight_averaged(member(0), [])
    assert str(error.value) == "Expected at least one weight snapshot. Received: snapshots=[]"


@pytest.mark.parametrize("output", ["tanh", None])
def test_monte_carlo_dropout_refuses_an_unknown_output_function(output):
    with pytest.raises(ValueError, match="output_function"):
        E.monte_carlo_dropout(member(0), 2, output)


def test_monte_carlo_dropout_also_turns_keras_dropout_layers_on():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dropout(0.5)(layers.Dense(16, activation="relu")(inputs))
    model = keras.Model(inputs, layers.Dense(1)(hidden))
    stochastic = E.monte_carlo_dropout(model, 1, "linear")
    inner = stochastic.get_layer(index=2)
    assert any(isinstance(layer, layers.MonteCarloDropout) for layer in inner.layers)
    passes = np.stack([stochastic(X).numpy() for _ in range(3)])
    assert not np.allclose(passes[0], passes[1])


def test_the_refusals_name_the_argument_and_what_is_allowed():
    """Catches `validation.one_of("XXoutput_functionXX", …)` and
    `validation.integer("XXsamplesXX", …)`: the messages name the argument itself."""
    with pytest.raises(ValueError) as error:
        E.EnsembleAverage("tanh")
    assert str(error.value) == (
        "Expected one of 'softmax', 'sigmoid', 'linear'. Received: output_function='tanh'"
    )
    with pytest.raises(ValueError) as error:
        E.RepeatBatch(0)
    assert str(error.value) == "Expected an integer >= 1. Received: samples=0"


def test_a_traced_average_with_a_known_batch_and_any_number_of_members():
    """Catches `if z.shape[1] is not None:` for `z.shape[0]`: N unknown (None) while the
    batch is known takes N from the run-time shape, not log(None)."""
    z = 3.0 * np.random.default_rng(1).normal(size=(3, 4, 2)).astype("float32")
    for output in ("softmax", "sigmoid"):
        traced = tf.function(
            lambda z, output=output: E.average_logits(z, output),
            input_signature=[tf.TensorSpec([None, 4, 2])],
        )
        np.testing.assert_allclose(traced(z), E.average_logits(tf.constant(z), output), rtol=1e-6)


def test_an_ensemble_of_one_member_is_that_member():
    """Catches `members[1].input_shape`: the input is the first (here the only) member's."""
    one = member(0)
    model = E.ensemble([one], "softmax")
    np.testing.assert_allclose(softmax(model(X).numpy()), softmax(one(X).numpy()), atol=1e-6)


def nested(dropout):
    """A model whose dropout and dense layers sit inside an inner Functional model."""
    keras.utils.set_random_seed(0)
    inner_inputs = keras.Input((16,))
    inner = keras.Model(
        inner_inputs, layers.Dense(3)(layers.Dropout(dropout)(inner_inputs)), name="inner"
    )
    inputs = keras.Input((5,))
    return keras.Model(inputs, inner(layers.Dense(16, activation="relu")(inputs)))


def test_copies_reach_into_nested_models():
    """Catches `clone_model(..., recursive=False)` (or None, or left out): a nested model's
    dropout turns on too, and a copy's weights are its own, never the original's inner ones."""
    model = nested(dropout=0.5)
    original = [w.copy() for w in model.get_weights()]
    stochastic = E.monte_carlo_dropout(model, 1, "linear")
    passes = np.stack([stochastic(X).numpy() for _ in range(3)])
    assert not np.allclose(passes[0], passes[1])
    snapshots = [original, [w + 1.0 for w in original]]
    averaged = E.weight_averaged(model, snapshots)
    for index, weights in enumerate(averaged.get_weights()):
        np.testing.assert_allclose(weights, original[index] + 0.5, rtol=1e-6)
    for index, weights in enumerate(model.get_weights()):
        np.testing.assert_array_equal(weights, original[index])


def test_snapshots_of_another_number_of_arrays_are_refused():
    """Catches `zip(*snapshots, strict=False)` (or None, or left out): a snapshot with an array
    too few or too many is refused by name, not averaged over the arrays all of them have."""
    model = member(0)
    weights = model.get_weights()
    for snapshots in ([weights, weights[:-1]], [weights[:-1]], [weights + [weights[0]]]):
        with pytest.raises(ValueError) as error:
            E.weight_averaged(model, snapshots)
        sizes = [len(snapshot) for snapshot in snapshots]
        assert str(error.value) == (
            "Expected snapshots of 4 arrays each, as model.get_weights() gives. "
            f"Received: snapshots of {sizes} arrays"
        )


def test_the_layers_are_built_when_made():
    """Catches `self.built = False` (or None) in the three layers' __init__: they have no
    weights to make, so they are built, with 0 parameters, before any call."""
    for layer in (E.EnsembleAverage("softmax"), E.RepeatBatch(2), E.MonteCarloAverage(2, "linear")):
        assert layer.built is True and layer.count_params() == 0


@pytest.mark.parametrize("policy", MIXED_POLICIES)
def test_under_mixed_precision_the_averages_take_float32_inputs_whole(policy):
    """Catches `kwargs.setdefault("dtype", None)` (or no dtype) in EnsembleAverage and
    MonteCarloAverage: under a mixed policy they still compute in float32, so float32 logits
    are not rounded to 16 bits first."""
    a = np.array([[1.0001, 3.0e5]], "float32")
    b = np.array([[1.0003, 3.0e5]], "float32")
    with dtype_policy(policy):
        ensemble_average = E.EnsembleAverage("linear")
        monte_carlo_average = E.MonteCarloAverage(2, "linear")
    assert ensemble_average.compute_dtype == monte_carlo_average.compute_dtype == "float32"
    expected = [[1.0002, 3.0e5]]
    np.testing.assert_allclose(ensemble_average([a, b]), expected, rtol=1e-6)
    np.testing.assert_allclose(monte_carlo_average(np.concatenate([a, b])), expected, rtol=1e-6)


def test_monte_carlo_average_of_outputs_of_any_rank():
    """Catches `inputs.shape[+1]` for `[-1]` in `call` and in `compute_output_shape`: passes
    [T·B, S, K] average to [B, S, K], every axis after the batch kept."""
    passes = np.arange(24, dtype="float32").reshape(4, 3, 2)  # T = 2, B = 2
    average = E.MonteCarloAverage(2, "linear")
    np.testing.assert_allclose(average(passes), (passes[:2] + passes[2:]) / 2)
    assert average.compute_output_shape((4, 3, 2)) == (2, 3, 2)
    assert average.compute_output_shape((None, 3, 2)) == (None, 3, 2)


def test_the_averaged_batch_size_is_an_integer():
    """Catches `input_shape[0] / self.samples` for `//`: 12 rows of 3 passes are 4 examples,
    the int 4, not the float 4.0."""
    batch, classes = E.MonteCarloAverage(3, "softmax").compute_output_shape((12, 5))
    assert type(batch) is int and batch == 4 and classes == 5


def _two_dropouts(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    hidden = layers.Dropout(0.5)(layers.Dense(16, activation="relu")(inputs))
    hidden = keras.layers.Dropout(0.5)(layers.Dense(16, activation="relu")(hidden))
    return keras.Model(inputs, layers.Dense(3)(hidden))


def test_a_seeded_monte_carlo_dropout_draws_the_same_masks_whatever_ran_before():
    """Catches the seed ignored (the masks then depend on every random draw the process
    made before: a run whose members trained here and one whose members trained on pool
    workers gave other Monte-Carlo figures), one seed for every layer (layers masked
    alike), or a seed that changes the original model."""
    model = _two_dropouts()
    first = E.monte_carlo_dropout(model, 4, "softmax", seed=7)(X).numpy()
    keras.utils.set_random_seed(99)  # other draws in between
    np.random.default_rng().normal(size=3), tf.random.normal([3])
    _ = [keras.random.SeedGenerator() for _ in range(5)]
    again = E.monte_carlo_dropout(model, 4, "softmax", seed=7)
    np.testing.assert_array_equal(again(X).numpy(), first)
    other = E.monte_carlo_dropout(model, 4, "softmax", seed=8)(X).numpy()
    assert not np.allclose(other, first)
    seeds = [
        layer.seed
        for layer in again.get_layer(index=2).layers
        if isinstance(layer, layers.MonteCarloDropout)
    ]
    assert seeds == [7, 8]
    assert [layer.seed for layer in model.layers if "dropout" in layer.name] == [None, None]


def test_an_unseeded_monte_carlo_dropout_draws_new_masks_each_time():
    """The limit: seed None keeps Keras's behaviour, each copy's masks drawn anew."""
    model = _two_dropouts()
    first = E.monte_carlo_dropout(model, 4, "softmax")(X).numpy()
    second = E.monte_carlo_dropout(model, 4, "softmax")(X).numpy()
    assert not np.allclose(first, second)


def test_a_monte_carlo_seed_is_a_non_negative_integer():
    """At the limit 0 a seed (the options' smallest), past it a ValueError naming it."""
    model = _two_dropouts()
    E.monte_carlo_dropout(model, 2, "softmax", seed=0)
    for bad in (-1, 1.5, "7"):
        with pytest.raises(ValueError, match="seed"):
            E.monte_carlo_dropout(model, 2, "softmax", seed=bad)
