import keras
import numpy as np
import pytest

from tfnn import layers
from tfnn.models import spec as specs
from tfnn.models.cnn import cnn
from tfnn.models.spec import SpecError
from tfnn.testing import MIXED_POLICIES, check_save_load, dtype_policy

SPEC = "C-8-5-1-same,CB-8-3-1-same,M-2-2,R-[C-8-3-1-same,C-8-3-1-same],A-2-2,F,H-16,D-0.3"


@pytest.mark.parametrize(
    "shape, conv, pool",
    [((40,), layers.Conv1D, layers.MaxPooling1D), ((8, 8, 1), layers.Conv2D, layers.MaxPooling2D)],
)
def test_the_same_spec_builds_1d_and_2d_networks(shape, conv, pool):
    x = np.random.default_rng(0).normal(size=(6, *shape)).astype("float32")
    model = cnn(x, 10, SPEC)
    kinds = [type(layer) for layer in model.layers]
    assert kinds.count(conv) == 4 and pool in kinds
    assert layers.BatchNormalization in kinds and keras.layers.Add in kinds
    assert model(x).shape == (6, 10)
    convs = [layer for layer in model.layers if isinstance(layer, conv)]
    assert [c.use_bias for c in convs] == [True, False, True, True]  # CB: BN's β replaces the bias


def test_a_cnn_learns_shifted_patterns():
    """F5: conv → ReLU → pooling learns a class given by a shape at any position."""
    rng = np.random.default_rng(0)
    x = rng.normal(scale=0.3, size=(512, 40)).astype("float32")
    y = rng.integers(0, 2, size=512)
    bump, step = np.hanning(7), np.r_[np.ones(4), -np.ones(3)]
    for i, label in enumerate(y):
        start = rng.integers(0, 33)
        x[i, start : start + 7] += 2.0 * (bump if label else step)
    keras.utils.set_random_seed(0)
    model = cnn(x[:400], 2, "C-8-7-1-same,M-2-2,C-8-3-1-same,A-20-20,F")
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x[:400], y[:400], epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(x[400:], y[400:], verbose=0)[1] > 0.95


@pytest.mark.parametrize("shape", [(40,), (10,), (8, 8, 1), (28, 28, 1)])
def test_the_default_spec_fits_any_input_size(shape):
    from tfnn.recipe.options import DEFAULT_CNN

    x = np.zeros((2, *shape), "float32")
    assert cnn(x, 10, DEFAULT_CNN)(x).shape == (2, 10)


def test_residual_blocks_must_keep_their_shape():
    x = np.zeros((2, 40), "float32")
    with pytest.raises(SpecError, match="residual"):
        cnn(x, 3, "C-8-3-1-same,R-[C-16-3-1-same]")


@pytest.mark.parametrize(
    "text, shape",
    [
        ("C-4-3-2-valid,M-3-2,C-4-4-3-same,A-2-1", (40,)),
        ("C-4-5-4-valid,M-9-1", (40, 2)),  # down to exactly 1 position
        ("C-4-3-2-valid,M-3-2,C-4-4-3-same,A-2-1", (23, 21, 1)),
        ("M-8-8,C-4-3-2-same", (8, 8, 3)),  # 'same' keeps 1 position at 1
        ("C-8-3-1-same,R-[C-8-5-1-same,CB-8-3-1-same],M-2-3,H-5", (11, 9, 1)),
    ],
)
def test_output_shape_is_the_shape_keras_builds(text, shape):
    """The oracle of `spec.output_shape`'s formulas: Keras's own layers, up to the Flatten
    and Dense that `cnn` adds."""
    model = cnn(shape, 3, text, statistics=(0.0, 1.0))
    assert isinstance(model.layers[-2], keras.layers.Flatten)
    before_head = model.layers[-3]
    assert tuple(before_head.output.shape[1:]) == specs.output_shape(specs.parse(text), shape)


@pytest.mark.parametrize(
    "text, shape, message",
    [
        ("C-8-3-1-same,M-8-8,M-8-8,F", (8, 8, 1), "layer 3 'M-8-8' maps shape (1, 1, 8)"),
        ("C-4-5-4-valid,M-10-1", (40,), "layer 2 'M-10-1' maps shape (9, 4) to (0, 4)"),
    ],
)
def test_a_spec_the_input_cannot_take_is_refused_before_keras_builds_it(text, shape, message):
    with pytest.raises(SpecError) as error:
        cnn(shape, 3, text, statistics=(0.0, 1.0))
    assert message in str(error.value)


def test_saves_and_loads():
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    check_save_load(cnn(x, 3, SPEC), x, atol=1e-5)


def test_given_statistics_standardize_signals_like_the_training_inputs():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 40)).astype("float32")
    keras.utils.set_random_seed(0)
    from_array = cnn(x, 3, "C-4-3-1-same,F")
    keras.utils.set_random_seed(0)
    from_statistics = cnn((40,), 3, "C-4-3-1-same,F", statistics=(x.mean(), x.var()))
    np.testing.assert_allclose(from_statistics(x), from_array(x), rtol=1e-5, atol=1e-5)
    keras.utils.set_random_seed(0)
    wrong = cnn((40,), 3, "C-4-3-1-same,F", statistics=(0.0, 1.0))
    assert not np.allclose(wrong(x), from_array(x), atol=1e-3)


@pytest.mark.parametrize("shape", [(40,), (40, 3)])
@pytest.mark.parametrize(
    "statistics",
    [(3.0, 4.0), (np.float64(3.0), np.float32(4.0)), (np.array(3.0), np.array(4.0))],
    ids=["floats", "numpy scalars", "0-d arrays"],
)
def test_statistics_are_one_mean_and_one_variance_of_all_values(shape, statistics):
    """Whatever the channels, the signals are standardized by one mean and one variance."""
    model = cnn(shape, 3, "C-4-3-1-same,F", statistics=statistics)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, *shape)).astype("float32")
    standardize = next(
        layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)
    )
    standardized = np.reshape(standardize(x), x.shape)  # signals [T] gained a channel axis
    np.testing.assert_allclose(standardized, (x - 3.0) / 2.0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape, statistics, received",
    [
        ((40,), (np.zeros(1), np.ones(1)), "shapes ((1,), (1,))"),
        ((40, 3), (np.zeros(3), np.ones(3)), "shapes ((3,), (3,))"),  # per channel: not this
        ((40,), (0.0, np.ones((1, 1))), "shapes ((), (1, 1))"),
        ((40,), (0.0, 1.0, 2.0), "statistics=(0.0, 1.0, 2.0)"),
        ((40,), (0.0,), "statistics=(0.0,)"),
        ((40,), 1.0, "statistics=1.0"),
        ((40,), ("zero", 1.0), "statistics=('zero', 1.0)"),
        ((40,), (float("nan"), 1.0), "statistics[0]=nan"),
        ((40,), (0.0, -1e-12), "statistics[1]=-1e-12"),  # a variance is >= 0
    ],
)
def test_other_statistics_are_refused_naming_what_they_are_and_what_is_expected(
    shape, statistics, received
):
    with pytest.raises(ValueError) as error:
        cnn(shape, 3, "C-4-3-1-same,F", statistics=statistics)
    text = str(error.value)
    assert text.startswith("Expected ") and received in text, text
    if "shapes" in received:
        assert "of shape () each" in text


def test_a_variance_of_zero_is_at_the_limit_and_accepted():
    model = cnn((40,), 3, "C-4-3-1-same,F", statistics=(1.0, 0.0))
    assert np.isfinite(model(np.ones((2, 40), "float32"))).all()


def described(model):
    """Each layer after the input as (class, its spec-relevant settings)."""

    def name(identifier):
        if identifier is None:
            return None
        if isinstance(identifier, dict):
            config = identifier["config"]
            if isinstance(config, dict) and config.get("l2") is not None:
                return f"{identifier['class_name']}({config['l2']})"
            return config if isinstance(config, str) else identifier["class_name"]
        return identifier

    keys = ("filters", "kernel_size", "strides", "padding", "use_bias", "pool_size", "units")
    rows = []
    for layer in model.layers[1:]:
        config = layer.get_config()
        settings = {key: config[key] for key in keys if key in config}
        for key in ("activation", "kernel_initializer", "kernel_regularizer", "rate"):
            if key in config:
                settings[key] = name(config[key])
        rows.append((type(layer).__name__, settings))
    return rows


def conv(dim, filters, kernel, stride, padding, bias, activation, l2):
    return (
        f"Conv{dim}D",
        {
            "filters": filters,
            "kernel_size": (kernel,) * dim,
            "strides": (stride,) * dim,
            "padding": padding,
            "use_bias": bias,
            "activation": activation,
            "kernel_initializer": "LeCunNormal",
            "kernel_regularizer": f"L2({l2})" if l2 else None,
        },
    )


@pytest.mark.parametrize("l2", [0.0, 0.01], ids=["no penalty", "l2"])
@pytest.mark.parametrize("shape", [(12,), (12, 12, 1)], ids=["1D", "2D"])
def test_every_spec_item_builds_its_layer_with_its_settings(shape, l2):
    """Convolution (stride, padding, bias but for BN, ReLU after BN), both poolings, the
    residual sum, global pooling, hidden units, dropout: in order, in the input's rank; the
    kernels from `init`, each with the L2 penalty asked (none for 0); the output layer
    Glorot's, without a penalty."""
    spec = "C-4-3-2-valid,CB-4-3-1-same,M-2-1,A-2-2,R-[C-4-3-1-same],G,H-5,D-0.25"
    model = cnn(shape, 3, spec, statistics=(0.0, 1.0), init="lecun", l2=l2)
    d = len(shape) if len(shape) < 3 else 2
    expected = [
        *([("Reshape", {}), ("Normalization", {})] if d == 1 else []),
        conv(d, 4, 3, 2, "valid", True, "tfnn>relu", l2),
        conv(d, 4, 3, 1, "same", False, "tfnn>linear", l2),
        ("BatchNormalization", {}),
        ("Activation", {"activation": "tfnn>relu"}),
        (f"MaxPooling{d}D", {"strides": (1,) * d, "padding": "valid", "pool_size": (2,) * d}),
        (f"AveragePooling{d}D", {"strides": (2,) * d, "padding": "valid", "pool_size": (2,) * d}),
        conv(d, 4, 3, 1, "same", True, "tfnn>relu", l2),
        ("Add", {}),
        (f"GlobalAveragePooling{d}D", {}),
        (
            "Dense",
            {
                "units": 5,
                "use_bias": True,
                "activation": "tfnn>relu",
                "kernel_initializer": "LeCunNormal",
                "kernel_regularizer": f"L2({l2})" if l2 else None,
            },
        ),
        ("Dropout", {"rate": 0.25}),
        (
            "Dense",
            {
                "units": 3,
                "use_bias": True,
                "activation": "tfnn>linear",
                "kernel_initializer": "GlorotUniform",
                "kernel_regularizer": None,
            },
        ),
    ]
    assert described(model) == expected
    assert model.name == "cnn"


def test_a_spec_may_be_given_as_parsed_items():
    items = specs.parse("C-4-3-1-same,M-2-2,F")
    keras.utils.set_random_seed(0)
    from_items = cnn((8,), 2, items, statistics=(0.0, 1.0), name="parsed")
    keras.utils.set_random_seed(0)
    from_text = cnn((8,), 2, "C-4-3-1-same,M-2-2,F", statistics=(0.0, 1.0))
    assert described(from_items) == described(from_text) and from_items.name == "parsed"


def test_a_flatten_is_added_only_when_the_spec_leaves_spatial_axes():
    flat = [
        type(layer).__name__ for layer in cnn((8,), 2, "C-4-3-1-same,G", statistics=(0, 1)).layers
    ]
    assert "Flatten" not in flat
    open_ = [
        type(layer).__name__ for layer in cnn((8,), 2, "C-4-3-1-same", statistics=(0, 1)).layers
    ]
    assert open_[-2:] == ["Flatten", "Dense"]


def test_signals_with_channels_are_standardized_without_a_reshape():
    model = cnn((8, 2), 2, "C-4-3-1-same,G", statistics=(1.0, 4.0))
    assert [type(layer).__name__ for layer in model.layers[1:3]] == ["Normalization", "Conv1D"]


def test_a_target_scale_gives_mean_plus_std_times_the_linear_output():
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    keras.utils.set_random_seed(0)
    plain = cnn((8,), 1, "C-4-3-1-same,G", statistics=(0.0, 1.0))
    keras.utils.set_random_seed(0)
    scaled = cnn((8,), 1, "C-4-3-1-same,G", statistics=(0.0, 1.0), target_scale=(150.0, 70.0))
    np.testing.assert_allclose(scaled(x), 150.0 + 70.0 * plain(x), rtol=1e-5)


@pytest.mark.parametrize("shape", [(), (2, 8, 8, 1)], ids=["scalars", "volumes"])
def test_examples_of_other_ranks_are_refused_naming_the_shape(shape):
    with pytest.raises(ValueError) as error:
        cnn(shape, 2, "F", statistics=(0.0, 1.0))
    assert str(error.value) == (
        "Expected signals [N, T], [N, T, C] or images [N, H, W, C]. "
        f"Received: example shape {shape}"
    )


@pytest.mark.parametrize("shape", [(8,), (8, 2)])
def test_signals_given_by_their_shape_need_statistics(shape):
    with pytest.raises(ValueError) as error:
        cnn(shape, 2, "F")
    assert str(error.value) == (
        "Expected `statistics` (mean, variance) for signals given by their shape. "
        f"Received: inputs={shape}, statistics=None"
    )


def test_images_need_no_statistics_and_are_not_standardized():
    model = cnn((8, 8, 1), 2, "C-4-3-1-same,G")
    assert not any(isinstance(layer, keras.layers.Normalization) for layer in model.layers)


def test_an_unknown_init_is_refused_by_name():
    with pytest.raises(ValueError, match="init='zeros'"):
        cnn((8, 8, 1), 2, "F", init="zeros")


@pytest.mark.parametrize("statistics", [1.0, (0.0,), ("zero", 1.0)], ids=["number", "one", "text"])
def test_statistics_that_are_no_pair_of_numbers_are_refused_saying_what_is_expected(statistics):
    """Catches `validation.fail("statistics", statistics, None)` (or the expectation in other
    words): the message says a pair (mean, variance) of numbers is expected."""
    with pytest.raises(ValueError) as error:
        cnn((40,), 3, "C-4-3-1-same,F", statistics=statistics)
    assert str(error.value) == (
        f"Expected a pair (mean, variance) of numbers. Received: statistics={statistics!r}"
    )


@pytest.mark.parametrize("shape", [(8,), (8, 8, 1)], ids=["signals", "images"])
def test_the_input_is_named_inputs(shape):
    """Catches `keras.Input(shape, name=None)` (or another name): "inputs" is the exported
    signature's input key."""
    assert cnn(shape, 2, "C-4-3-1-same,G", statistics=(0.0, 1.0)).input.name == "inputs"


@pytest.mark.parametrize("policy", MIXED_POLICIES)
def test_signals_are_standardized_in_float32_under_mixed_precision(policy):
    """Catches `Normalization(..., dtype=None)` (or no dtype): raw signals and their variance
    (here 3·10⁵, past float16's largest number 65504) are standardized in float32."""
    x = np.random.default_rng(0).normal(1000.0, 550.0, size=(4, 8)).astype("float32")
    with dtype_policy(policy):
        model = cnn((8,), 2, "C-4-3-1-same,G", statistics=(1000.0, 3.0e5))
    standardize = next(
        layer for layer in model.layers if isinstance(layer, keras.layers.Normalization)
    )
    assert standardize.compute_dtype == "float32"
    standardized = np.reshape(standardize(x[..., None]), x.shape)
    np.testing.assert_allclose(standardized, (x - 1000.0) / np.sqrt(3.0e5), rtol=1e-5, atol=1e-5)
