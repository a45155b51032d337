"""tfnn.sweep.space: each form of a search term, each refusal, checked through the recipe's
options (no TensorFlow)."""

import pytest

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
        (["l2=0:1e-3"], {**MLP, "epochs": 0}, "Received: epochs=0"),  # a bad fixed option
        ([], MLP, "at least one searched option"),
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
