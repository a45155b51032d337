"""tfnn.sweep.space: each form of a search term, each refusal, checked through the recipe's
options (no TensorFlow), and drawn from an in-memory Optuna study."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tfnn.sweep import space
from tfnn.sweep.space import Choices, Range

MLP = {"model": "mlp"}


@pytest.mark.parametrize(
    "term, expected",
    [
        ("dropout=0:0.6", ("dropout", Range(0.0, 0.6))),
        ("l2=1e-6:1e-2:log", ("l2", Range(1e-6, 1e-2, log=True))),
        ("label_smoothing=0,0.1,0.2", ("label_smoothing", Choices((0.0, 0.1, 0.2)))),
        ("epochs=2:8", ("epochs", Range(2, 8))),  # an int option draws ints
        ("batch_size=32,64", ("batch_size", Choices((32, 64)))),
        ("hidden_layers=64,128+128", ("hidden_layers", Choices(((64,), (128, 128))))),
        ("optimizer=adam,sgd", ("optimizer", Choices(("adam", "sgd")))),
        # augment: each choice one setting, its parts joined by "+", "none" for none
        (
            "augment=none,shift=10,shift=10+stretch=0.1",
            ("augment", Choices(("none", "shift=10", "shift=10+stretch=0.1"))),
        ),
        ("dropout=0.3:0.3", ("dropout", Range(0.3, 0.3))),  # LOW == HIGH: the limit
        ("learning_rate=1e-4:1e-4:log", ("learning_rate", Range(1e-4, 1e-4, log=True))),
    ],
)
def test_each_form_parses_to_its_space(term, expected):
    """Catches a form read as another (a log range as uniform, choices as a range), an int
    option drawn as floats, or LOW == HIGH refused."""
    name, parsed = space.parse_term(term)
    assert (name, parsed) == expected
    assert type(parsed.values[0] if isinstance(parsed, Choices) else parsed.low) is type(
        expected[1].values[0] if isinstance(expected[1], Choices) else expected[1].low
    )
    assert space.parse([term], MLP) == {name: parsed}


@pytest.mark.parametrize(
    "terms, fixed, message",
    [
        (["nonsense=0:1"], MLP, "Received: 'nonsense'"),  # unknown option
        (["logdir=a,b"], MLP, "Received: 'logdir'"),  # an output option changes no result
        (["ensemble=1:4"], MLP, "Received: 'ensemble'"),  # a trial is one model
        (["dropout=0.6:0"], MLP, "LOW <= HIGH"),
        (["dropout=0:1"], MLP, "Received: dropout=1"),  # dropout is in [0, 1): 1 is past it
        (["learning_rate=0:1e-2"], MLP, "Received: learning_rate=0"),  # lr > 0
        (["l2=0:1e-2:log"], MLP, "LOW > 0 for a log range"),
        (["l2=-1e-3:1e-2:log"], MLP, "LOW > 0 for a log range"),
        (["dropout"], MLP, "Expected NAME=LOW:HIGH"),
        (["=0:1"], MLP, "Expected NAME=LOW:HIGH"),
        (["dropout=0:0.5:lin"], MLP, "LOW:HIGH or LOW:HIGH:log"),
        (["dropout=0:0.2:0.5"], MLP, "LOW:HIGH or LOW:HIGH:log"),
        (["dropout=a:b"], MLP, "LOW and HIGH of type float"),
        (["epochs=1.5:3"], MLP, "LOW and HIGH of type int"),  # ints stay ints
        (["dropout=0:inf"], MLP, "finite LOW and HIGH"),
        (["dropout=0.1,,0.2"], MLP, "none empty"),
        (["dropout=0.1,0.1"], MLP, "distinct choices"),
        (["optimizer=adam:sgd"], MLP, "a range needs a number option"),
        (["hidden_layers=16:64"], MLP, "a range needs a number option"),
        (["optimizer=adam,nope"], MLP, "Received: optimizer='nope'"),
        (["dropout=0:0.5", "dropout=0.1,0.2"], MLP, "dropout twice"),
        (["dropout=0:0.5"], {**MLP, "dropout": 0.1}, "dropout both"),
        (["dropout=0:0.5"], {"model": "cnn"}, "no effect"),  # the CNN's dropout is its spec's
        (["momentum=0:0.9"], MLP, "optimizer='momentum'"),  # adam takes no momentum
        (["l2=0:1e-3"], {**MLP, "ensemble": 2}, "ensemble 1 in a sweep"),
        # every trial failed on its worker: logical CPU devices are made where a process starts
        (["l2=0:1e-3"], {**MLP, "strategy": "mirrored", "cpu_devices": 2}, "cpu_devices=2"),
        (["cpu_devices=0,3"], {**MLP, "strategy": "mirrored"}, "cpu_devices=3"),
        (["l2=0:1e-3"], {**MLP, "epochs": 0}, "Received: epochs=0"),  # a bad fixed option
        ([], MLP, "at least one searched option"),
        (["seed=1,2"], MLP, "Expected dataset, validation_fraction, seed fixed in a sweep"),
        (["validation_fraction=0.1:0.3"], MLP, "Received: 'validation_fraction' searched"),
        (["dataset=digits,breast_cancer"], MLP, "Received: 'dataset' searched"),
    ],
)
def test_each_refusal_is_one_line_naming_the_term(terms, fixed, message):
    """Catches each refusal the issue lists let through (it would fail later, in a trial, or
    run a sweep over nothing), and a message on several lines."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")) as raised:
        space.parse(terms, fixed)
    assert "\n" not in str(raised.value)


def test_python_takes_the_same_forms_and_lists_as_choices():
    """Catches tfnn.sweep(search={...}) reading its values differently from the flag."""
    search = space.parse(
        {"dropout": "0:0.6", "l2": "1e-6:1e-2:log", "label_smoothing": [0, 0.1, 0.2]}, MLP
    )
    assert search == {
        "dropout": Range(0.0, 0.6),
        "l2": Range(1e-6, 1e-2, log=True),
        "label_smoothing": Choices((0.0, 0.1, 0.2)),
    }
    assert space.parse({"hidden_layers": [[64], [128, 128]]}, MLP)["hidden_layers"] == Choices(
        ((64,), (128, 128))
    )


def test_one_term_string_is_one_term_and_a_tuple_of_terms_is_terms():
    """Catches parse's `map(parse_term, terms)` over a str (it iterated characters:
    "Received: 'd'"); the limit: a list, a tuple and one string give one search."""
    expected = {"dropout": Range(0.0, 0.5)}
    assert space.parse("dropout=0:0.5", MLP) == expected
    assert space.parse(("dropout=0:0.5",), MLP) == expected
    assert space.parse(["dropout=0:0.5"], MLP) == expected
    # A tuple as an option's body is choices, as a list is (tfnn.sweep.sweep's docstring).
    assert space.parse({"dropout": (0, 0.5)}, MLP) == {"dropout": Choices((0.0, 0.5))}


@pytest.mark.parametrize(
    "terms, message",
    [
        (None, "Received: search=None"),  # was a bare TypeError: 'NoneType' is not iterable
        (3, "Received: search=3"),
        (["dropout=0:0.5", 3], "Received: search=['dropout=0:0.5', 3]"),
        ({"dropout": [0.1, [0.2]]}, "a list of single values"),  # was accepted
        ({"dropout": [(0.1,), 0.2]}, "a list of single values"),
    ],
)
def test_a_search_of_the_wrong_kind_or_a_nested_choice_is_refused_naming_it(terms, message):
    """Catches parse taking any iterable as terms and parse_body flattening a nested choice
    of a one-value option (`_scalar(tuple(v))` made [0.2] the choice 0.2)."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        space.parse(terms, MLP)


@pytest.mark.parametrize(
    "terms, fixed, message",
    [
        (
            {"dropout": 0.5},
            MLP,
            "Expected 'LOW:HIGH', 'LOW:HIGH:log', 'A,B,C' or a list of choices for dropout. "
            "Received: dropout=0.5",
        ),
        (
            ["dropout=0.1,,0.2"],
            MLP,
            "Expected choices A,B,C, none empty for dropout. Received: dropout='0.1,,0.2'",
        ),
        (
            ["dropout=a,b"],
            MLP,
            "Expected choices of type float for dropout. Received: dropout='a,b'",
        ),
        (
            ["calibrate=yes,no"],
            MLP,
            "Expected choices of type bool for calibrate. Received: calibrate='yes,no'",
        ),
        (
            ["dropout=0.1,0.1"],
            MLP,
            "Expected distinct choices for dropout. Received: dropout='0.1,0.1'",
        ),
        (
            ["optimizer=adam:sgd"],
            MLP,
            "Expected choices A,B,C (a range needs a number option) for optimizer. "
            "Received: optimizer='adam:sgd'",
        ),
        (
            ["dropout=0:0.5:lin"],
            MLP,
            "Expected LOW:HIGH or LOW:HIGH:log for dropout. Received: dropout='0:0.5:lin'",
        ),
        (
            ["dropout=0:inf"],
            MLP,
            "Expected finite LOW and HIGH for dropout. Received: dropout='0:inf'",
        ),
        (["dropout=0.6:0"], MLP, "Expected LOW <= HIGH for dropout. Received: dropout='0.6:0'"),
        (
            ["l2=0:1e-2:log"],
            MLP,
            "Expected LOW > 0 for a log range (log 0 is -inf) for l2. Received: l2='0:1e-2:log'",
        ),
        ([], MLP, "Expected at least one searched option. Received: search={}"),
        (
            ["l2=0:1e-3"],
            {**MLP, "ensemble": 2},
            "Expected ensemble 1 in a sweep (each trial is one model). Received: ensemble=2",
        ),
        (
            ["dropout=0:0.5", "l2=0:1e-3"],
            {**MLP, "l2": 0.0, "dropout": 0.1},
            "Expected each option either searched or fixed. Received: dropout, l2 both",
        ),
        (
            None,
            MLP,
            "Expected search as {option: space}, a term 'NAME=...' or a list of such terms. "
            "Received: search=None",
        ),
    ],
)
def test_each_refusals_message_is_whole(terms, fixed, message):
    """Catches a refusal's message changed (its words, its case) or its joined names run
    together: each `malformed(...)`, check's and parse's ValueError, matched whole."""
    with pytest.raises(ValueError) as raised:
        space.parse(terms, fixed)
    assert str(raised.value) == message


def test_an_unknown_option_is_refused_listing_the_searchable_ones():
    """Catches _field's list of searchable options joined other than by ', ', or listing an
    option a sweep never searches."""
    with pytest.raises(ValueError) as raised:
        space.parse(["nonsense=0:1"], MLP)
    message = str(raised.value)
    assert message.startswith(
        "Expected a searched option of train.py's (activation, augment, batch_size, calibrate, "
    )
    assert message.endswith(", weight_decay). Received: 'nonsense'")
    assert "logdir" not in message and "ensemble" not in message


def test_a_bool_option_takes_true_and_false_in_any_case():
    """Catches _value's bool reading ("true" tested in another case, or compared the wrong
    way round): calibrate=true,False are the choices True and False."""
    assert space.parse(["calibrate=true,False"], MLP) == {"calibrate": Choices((True, False))}
    assert space.parse(["calibrate=TRUE"], MLP) == {"calibrate": Choices((True,))}


def test_each_space_draws_its_kind_of_value_from_optuna():
    """Catches Range.suggest drawing floats for an int option (or ints for a float one), its
    log flag or bounds not passed, and Choices.suggest's "+"-joined text of a tuple not split
    back into ints (a single choice too: `self.values[0]`, its only one)."""
    made = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    made.enqueue_trial({"hidden_layers": "128+128", "optimizer": "sgd", "one": "64"})
    trial = made.ask()
    drawn = {
        "epochs": Range(2, 8).suggest(trial, "epochs"),
        "batch_size": Range(16, 256, log=True).suggest(trial, "batch_size"),
        "dropout": Range(0.0, 0.5).suggest(trial, "dropout"),
        "l2": Range(1e-6, 1e-2, log=True).suggest(trial, "l2"),
        "hidden_layers": Choices(((64,), (128, 128))).suggest(trial, "hidden_layers"),
        "optimizer": Choices(("adam", "sgd")).suggest(trial, "optimizer"),
        "one": Choices(((64,),)).suggest(trial, "one"),
    }
    assert trial.distributions == {
        "epochs": IntDistribution(2, 8),
        "batch_size": IntDistribution(16, 256, log=True),
        "dropout": FloatDistribution(0.0, 0.5),
        "l2": FloatDistribution(1e-6, 1e-2, log=True),
        "hidden_layers": CategoricalDistribution(("64", "128+128")),
        "optimizer": CategoricalDistribution(("adam", "sgd")),
        "one": CategoricalDistribution(("64",)),
    }
    assert type(drawn["epochs"]) is int and type(drawn["batch_size"]) is int
    assert type(drawn["dropout"]) is float and type(drawn["l2"]) is float
    assert drawn["hidden_layers"] == (128, 128) and drawn["optimizer"] == "sgd"
    assert drawn["one"] == (64,)


def test_each_space_as_sweep_json_has_it():
    """Catches as_dict's keys renamed, and a tuple choice written as a tuple (JSON's list
    read back would differ) or a scalar choice wrapped."""
    assert Range(1e-6, 1e-2, log=True).as_dict() == {"low": 1e-6, "high": 1e-2, "log": True}
    assert Range(0.0, 0.5).as_dict() == {"low": 0.0, "high": 0.5, "log": False}
    assert Choices(((64,), (128, 128))).as_dict() == {"choices": [[64], [128, 128]]}
    assert Choices(("adam", "sgd")).as_dict() == {"choices": ["adam", "sgd"]}


def test_one_logical_cpu_device_is_the_most_a_sweep_takes():
    """At the limit and past it: cpu_devices 1 (one device, as a worker has) is taken, 2 is
    refused in full. Catches `> 1` made `>= 1`, or the refusal's text changed."""
    assert space.parse(["l2=0:1e-3"], {**MLP, "cpu_devices": 1}) == {"l2": Range(0.0, 1e-3)}
    with pytest.raises(ValueError) as raised:
        space.parse(["l2=0:1e-3"], {**MLP, "strategy": "mirrored", "cpu_devices": 2})
    assert str(raised.value) == (
        "Expected cpu_devices 0 or 1 in a sweep (its trials run in processes without logical "
        "CPU devices). Received: cpu_devices=2"
    )
