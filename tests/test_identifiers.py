"""One rule for every `get`: a name gives tfnn's object wherever tfnn has one for it, Keras's
otherwise, and a name neither knows is a ValueError listing the names allowed."""

import keras
import pytest

from tfnn import activations, constraints, initializers, regularizers

# Every name each module resolves to its own object, written out by hand: tfnn's names, the
# class or function names, the registered names and the names Keras gives the twins.
TFNN_NAMES = {
    activations: {
        **{name: getattr(activations, name) for name in activations.ALL},
        "silu": activations.swish,  # Keras's name of swish
    },
    initializers: {
        "fan_in_uniform": initializers.FanInUniform,
        "FanInUniform": initializers.FanInUniform,
        "glorot_uniform": initializers.GlorotUniform,
        "GlorotUniform": initializers.GlorotUniform,
        "he_normal": initializers.HeNormal,
        "HeNormal": initializers.HeNormal,
        "lecun_normal": initializers.LeCunNormal,
        "LeCunNormal": initializers.LeCunNormal,
        "LecunNormal": initializers.LeCunNormal,  # Keras's spelling
        "tfnn>GlorotUniform": initializers.GlorotUniform,
    },
    regularizers: {
        "l1": regularizers.L1,
        "L1": regularizers.L1,
        "l2": regularizers.L2,
        "L2": regularizers.L2,
        "l1l2": regularizers.L1L2,
        "L1L2": regularizers.L1L2,
        "l1_l2": regularizers.L1L2,  # keras.regularizers.l1_l2
        "tfnn>L2": regularizers.L2,
    },
    constraints: {
        "max_norm": constraints.MaxNorm,
        "MaxNorm": constraints.MaxNorm,
        "non_neg": constraints.NonNeg,
        "NonNeg": constraints.NonNeg,
        "unit_norm": constraints.UnitNorm,
        "UnitNorm": constraints.UnitNorm,
        "tfnn>MaxNorm": constraints.MaxNorm,
    },
}


@pytest.mark.parametrize(
    "module, name, expected",
    [
        (module, name, expected)
        for module, names in TFNN_NAMES.items()
        for name, expected in names.items()
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_a_name_tfnn_has_an_object_for_gives_tfnns(module, name, expected):
    got = module.get(name)
    if isinstance(expected, type):
        assert type(got) is expected
    else:
        assert got is expected


@pytest.mark.parametrize("module", TFNN_NAMES, ids=lambda module: module.__name__)
def test_every_keras_name_of_a_tfnn_twin_gives_tfnns(module):
    """Each public name of keras.<kind> whose object has a tfnn twin (the same name, any case)
    gives the twin: a name Keras adds later is not missed."""
    kind = module.__name__.split(".")[-1]
    twins = {twin.__name__.lower(): twin for twin in TFNN_NAMES[module].values()}
    checked = 0
    for name in dir(getattr(keras, kind)):
        twin = twins.get(getattr(getattr(getattr(keras, kind), name), "__name__", "").lower())
        if twin is not None:
            got = module.get(name)
            assert (type(got) if isinstance(twin, type) else got) is twin, name
            checked += 1
    assert checked


@pytest.mark.parametrize(
    "module, name, keras_class",
    [
        (activations, "gelu", None),
        (initializers, "zeros", keras.initializers.Zeros),
        (initializers, "he_uniform", keras.initializers.HeUniform),
        (regularizers, "orthogonal_regularizer", keras.regularizers.OrthogonalRegularizer),
        (constraints, "min_max_norm", keras.constraints.MinMaxNorm),
    ],
)
def test_a_name_only_keras_knows_gives_keras(module, name, keras_class):
    got = module.get(name)
    if keras_class is None:
        assert got is keras.activations.gelu
    else:
        assert type(got) is keras_class


@pytest.mark.parametrize("module", TFNN_NAMES, ids=lambda module: module.__name__)
def test_an_unknown_name_is_a_value_error_naming_it_and_the_names_allowed(module):
    with pytest.raises(ValueError) as error:
        module.get("no_such_name")
    text = str(error.value)
    assert text.endswith("Received: identifier='no_such_name'")
    for name in TFNN_NAMES[module]:
        assert name in text


@pytest.mark.parametrize("module", TFNN_NAMES, ids=lambda module: module.__name__)
def test_instances_and_configs_still_go_through_keras(module):
    name, expected = next(iter(TFNN_NAMES[module].items()))
    made = module.get(name)
    assert module.get(made) is made
    if isinstance(expected, type):
        assert type(module.get(keras.saving.serialize_keras_object(made))) is expected
